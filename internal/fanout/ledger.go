package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
)

// UnwindConcurrency bounds how many undos of one batch run at once.
const UnwindConcurrency = 32

// Kind says when an undo runs.
type Kind int

const (
	// Cleanup undoes run as the run ends, whatever its outcome: temporary
	// shares, grants, transit copies.
	Cleanup Kind = iota
	// Rollback undoes run only when the run failed and asked for rollback:
	// the copies this run made.
	Rollback
)

// ErrGone is what an undo returns (wrapped or not) when it found its
// resource already gone: that counts as undone, and the outcome says so.
var ErrGone = errors.New("already gone")

// Entry is one change a run made and how to undo it.
type Entry struct {
	Kind Kind
	What string // e.g. "grant amicrypt-copy-ami-1-222222222222 on arn:aws:kms:…"
	Undo func(context.Context) error
	// Detail is the caller's own description of the change, handed back
	// in Undone for its report.
	Detail any
	// Batch, when set, lets the undo run at once with the undos of the
	// entries next to it (in the ledger's order) that have the same Batch:
	// changes independent of each other, such as the grants of one source
	// key to many accounts.
	Batch string
}

// Undone is the outcome of undoing one Entry.
type Undone struct {
	Entry
	// Err is the undo's error; nil when it succeeded or found the resource
	// gone.
	Err error
	// Gone says the undo found the resource already gone.
	Gone bool
}

// Ledger records the changes of a run so they can be undone in reverse
// order, from any goroutine. Undo funcs must be idempotent enough to be
// called after a partial failure.
type Ledger struct {
	mu      sync.Mutex
	entries []*Entry
}

// Add records a change. It returns a function that forgets the entry, for a
// change that was undone (or handed over) by other means.
func (l *Ledger) Add(kind Kind, what string, undo func(context.Context) error) (forget func()) {
	return l.AddDetail(kind, what, nil, undo)
}

// AddDetail is Add with the caller's description of the change.
func (l *Ledger) AddDetail(kind Kind, what string, detail any, undo func(context.Context) error) (forget func()) {
	return l.AddEntry(Entry{Kind: kind, What: what, Undo: undo, Detail: detail})
}

// AddEntry records e; see Add.
func (l *Ledger) AddEntry(e0 Entry) (forget func()) {
	e := &e0
	l.mu.Lock()
	l.entries = append(l.entries, e)
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, x := range l.entries {
			if x == e {
				l.entries = append(l.entries[:i], l.entries[i+1:]...)
				return
			}
		}
	}
}

// Pending lists the recorded entries of kind, oldest first.
func (l *Ledger) Pending(kind Kind) []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Entry
	for _, e := range l.entries {
		if e.Kind == kind {
			out = append(out, *e)
		}
	}
	return out
}

// Unwind undoes every entry of kind, newest first, and removes those that
// succeeded. Failed undos stay recorded and are reported. Give it a context
// that is not the cancelled one of an interrupted run.
func (l *Ledger) Unwind(ctx context.Context, kind Kind) ([]Undone, error) {
	return l.UnwindEach(ctx, kind, nil)
}

// UnwindEach is Unwind that hands each outcome to each, when set, as soon
// as it is known.
func (l *Ledger) UnwindEach(ctx context.Context, kind Kind, each func(Undone)) ([]Undone, error) {
	l.mu.Lock()
	var todo []*Entry
	for i := len(l.entries) - 1; i >= 0; i-- {
		if l.entries[i].Kind == kind {
			todo = append(todo, l.entries[i])
		}
	}
	l.mu.Unlock()

	var done []Undone
	var errs []error
	for len(todo) > 0 {
		// A run of entries of one batch is undone at once; any other entry
		// alone, in order.
		n := 1
		for n < len(todo) && todo[0].Batch != "" && todo[n].Batch == todo[0].Batch {
			n++
		}
		batch := make([]Undone, n)
		var g errgroup.Group
		g.SetLimit(UnwindConcurrency)
		for i, e := range todo[:n] {
			g.Go(func() error {
				err := e.Undo(ctx)
				gone := errors.Is(err, ErrGone)
				if gone {
					err = nil
				}
				batch[i] = Undone{Entry: *e, Err: err, Gone: gone}
				return nil
			})
		}
		_ = g.Wait() // undos report through batch
		for i, e := range todo[:n] {
			done = append(done, batch[i])
			if each != nil {
				each(batch[i])
			}
			if err := batch[i].Err; err != nil {
				errs = append(errs, fmt.Errorf("undoing %s: %w", e.What, err))
				continue
			}
			l.mu.Lock()
			for i, x := range l.entries {
				if x == e {
					l.entries = append(l.entries[:i], l.entries[i+1:]...)
					break
				}
			}
			l.mu.Unlock()
		}
		todo = todo[n:]
	}
	return done, errors.Join(errs...)
}
