// Package fanout runs many (account, region) operations at once: a global
// cap, a limiter per destination, backoff on quota errors and an undo ledger.
// (Batched waiting is internal/ebs's ImageWaiter, one per account-region.)
package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// Dest is one destination of a fan-out: an account in a region.
type Dest struct {
	Account string
	Region  string
}

func (d Dest) String() string { return d.Account + "/" + d.Region }

// Limiter bounds how many operations run at once in each destination, so a
// fan-out stays under per account-region quotas such as concurrent AMI
// copies. Capacity 0 means no limit.
type Limiter struct {
	capacity int
	mu       sync.Mutex
	slots    map[Dest]chan struct{}
}

// NewLimiter returns a Limiter allowing capacity operations per destination.
func NewLimiter(capacity int) *Limiter {
	return &Limiter{capacity: capacity, slots: map[Dest]chan struct{}{}}
}

// Acquire blocks until d has a free slot or ctx ends. The returned function
// frees the slot; it is safe to call more than once.
func (l *Limiter) Acquire(ctx context.Context, d Dest) (release func(), err error) {
	if l == nil || l.capacity <= 0 {
		return func() {}, ctx.Err()
	}
	l.mu.Lock()
	slot, ok := l.slots[d]
	if !ok {
		slot = make(chan struct{}, l.capacity)
		l.slots[d] = slot
	}
	l.mu.Unlock()
	select {
	case slot <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-slot }) }, nil
	case <-ctx.Done():
		return func() {}, ctx.Err()
	}
}

// Job is one unit of a fan-out.
type Job[T any] struct {
	Dest Dest
	Item T
}

// Result is the outcome of one Job.
type Result[T any] struct {
	Job[T]
	Err error
}

// Run calls fn for every job, at most concurrency at once (0: all at once)
// and at most the limiter's capacity per destination. One job's failure
// does not stop the others: every job gets its chance and its own result,
// in the order of jobs. Only ctx ending stops jobs not yet started.
func Run[T any](ctx context.Context, concurrency int, lim *Limiter, jobs []Job[T], fn func(context.Context, Job[T]) error) []Result[T] {
	results := make([]Result[T], len(jobs))
	// The global cap is taken after the destination slot, so a job holding
	// one of the global slots is never stuck behind a busy destination.
	global := semaphore.NewWeighted(int64(max(concurrency, len(jobs), 1)))
	if concurrency > 0 {
		global = semaphore.NewWeighted(int64(concurrency))
	}
	var g errgroup.Group
	for i, job := range jobs {
		results[i].Job = job
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				results[i].Err = fmt.Errorf("%s: not started: %w", job.Dest, err)
				return nil
			}
			release, err := lim.Acquire(ctx, job.Dest)
			if err != nil {
				results[i].Err = fmt.Errorf("%s: waiting for a free copy slot: %w", job.Dest, err)
				return nil
			}
			defer release()
			if err := global.Acquire(ctx, 1); err != nil {
				results[i].Err = fmt.Errorf("%s: not started: %w", job.Dest, err)
				return nil
			}
			defer global.Release(1)
			results[i].Err = fn(ctx, job)
			return nil
		})
	}
	_ = g.Wait() // jobs report through results, never through the group
	return results
}

// Errors joins the errors of failed results.
func Errors[T any](results []Result[T]) error {
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errors.Join(errs...)
}
