package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrWaitTimeout is returned by BatchWaiter.Wait when the polls run out.
var ErrWaitTimeout = errors.New("timed out")

// ErrNotFound is returned by BatchWaiter.Wait when a resource stays invisible
// longer than eventual consistency explains.
var ErrNotFound = errors.New("not found")

// PollFunc describes many resources of one destination in one call. An ID
// missing from the returned map is not (yet) visible.
type PollFunc[S any] func(ctx context.Context, d Dest, ids []string) (map[string]S, error)

// BatchWaiter waits for many resources at once with one poll per destination
// per round, whatever the number of waiters there (the pattern of
// aws-ebs-csi-driver's batched DescribeVolumes). No maintained library
// batches waiters, hence this hand-written one.
type BatchWaiter[S any] struct {
	Poll     PollFunc[S]
	Terminal func(S) bool          // true once a resource has reached its final state
	Delay    time.Duration         // pause before each poll
	MaxPolls int                   // polls a waiter sees before ErrWaitTimeout; 0: no limit
	Missing  int                   // polls an ID may be missing before ErrNotFound; default 10
	Progress func(Dest, string, S) // optional, called with each non-final status
	// PollErrors is how many polls in a row may fail before the waiters of a
	// destination get the error; default 3. The SDK retries each call first.
	PollErrors int

	mu    sync.Mutex
	dests map[Dest]map[*waiter[S]]struct{}
}

type waiter[S any] struct {
	id      string
	polls   int
	missing int
	done    chan outcome[S]
}

type outcome[S any] struct {
	status S
	err    error
}

// Wait blocks until id in d reaches a terminal state, the polls run out, or
// ctx ends. It returns the final status.
func (w *BatchWaiter[S]) Wait(ctx context.Context, d Dest, id string) (S, error) {
	me := &waiter[S]{id: id, done: make(chan outcome[S], 1)}
	w.mu.Lock()
	if w.dests == nil {
		w.dests = map[Dest]map[*waiter[S]]struct{}{}
	}
	set, running := w.dests[d]
	if !running {
		set = map[*waiter[S]]struct{}{}
		w.dests[d] = set
	}
	set[me] = struct{}{}
	w.mu.Unlock()
	if !running {
		go w.loop(d)
	}
	select {
	case out := <-me.done:
		return out.status, out.err
	case <-ctx.Done():
		w.mu.Lock()
		delete(w.dests[d], me)
		w.mu.Unlock()
		var zero S
		return zero, fmt.Errorf("waiting for %s in %s: %w", id, d, ctx.Err())
	}
}

// loop polls d until it has no waiters left.
func (w *BatchWaiter[S]) loop(d Dest) {
	failures := 0
	maxFailures := w.PollErrors
	if maxFailures <= 0 {
		maxFailures = 3
	}
	for {
		time.Sleep(w.Delay)
		ids := w.ids(d)
		if len(ids) == 0 {
			return
		}
		// A poll outlives any single waiter's context; it is bounded by the
		// SDK's own timeouts and retries.
		statuses, err := w.Poll(context.Background(), d, ids)
		if err != nil {
			failures++
			if failures >= maxFailures {
				w.finishAll(d, fmt.Errorf("polling %s: %w", d, err))
			}
			continue
		}
		failures = 0
		if w.deliver(d, ids, statuses) {
			return
		}
	}
}

func (w *BatchWaiter[S]) ids(d Dest) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]bool{}
	var ids []string
	for wt := range w.dests[d] {
		if !seen[wt.id] {
			seen[wt.id] = true
			ids = append(ids, wt.id)
		}
	}
	if len(ids) == 0 {
		delete(w.dests, d)
	}
	return ids
}

// deliver hands statuses to the waiters of d and reports whether the loop
// should stop because none are left.
func (w *BatchWaiter[S]) deliver(d Dest, polled []string, statuses map[string]S) bool {
	missingLimit := w.Missing
	if missingLimit <= 0 {
		missingLimit = 10
	}
	w.mu.Lock()
	set := w.dests[d]
	asked := map[string]bool{}
	for _, id := range polled {
		asked[id] = true
	}
	var progress []func()
	type final struct {
		wt  *waiter[S]
		out outcome[S]
	}
	var finals []final
	for wt := range set {
		if !asked[wt.id] {
			continue // arrived during the poll; the next one covers it
		}
		wt.polls++
		status, found := statuses[wt.id]
		switch {
		case found && w.Terminal(status):
			finals = append(finals, final{wt, outcome[S]{status: status}})
			delete(set, wt)
			continue
		case !found:
			wt.missing++
			if wt.missing > missingLimit {
				finals = append(finals, final{wt, outcome[S]{err: fmt.Errorf("%s in %s: %w after %d polls", wt.id, d, ErrNotFound, wt.missing)}})
				delete(set, wt)
				continue
			}
		default:
			wt.missing = 0
			if w.Progress != nil {
				id := wt.id
				progress = append(progress, func() { w.Progress(d, id, status) })
			}
		}
		if w.MaxPolls > 0 && wt.polls >= w.MaxPolls {
			finals = append(finals, final{wt, outcome[S]{status: status, err: fmt.Errorf("%s in %s: %w after %d polls", wt.id, d, ErrWaitTimeout, wt.polls)}})
			delete(set, wt)
		}
	}
	empty := len(set) == 0
	if empty {
		delete(w.dests, d)
	}
	w.mu.Unlock()
	// Progress first, so a waiter never hears of its resource after Wait
	// has returned.
	for _, p := range progress {
		p()
	}
	for _, f := range finals {
		f.wt.done <- f.out
	}
	return empty
}

func (w *BatchWaiter[S]) finishAll(d Dest, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for wt := range w.dests[d] {
		wt.done <- outcome[S]{err: err}
		delete(w.dests[d], wt)
	}
}
