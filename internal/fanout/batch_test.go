package fanout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeImages is a fake EC2: each image becomes "available" after a number of
// polls, or "failed" when listed in fail.
type fakeImages struct {
	mu         sync.Mutex
	readyAt    map[string]int
	seen       map[string]int
	fail       map[string]bool
	calls      map[Dest]int
	idsPerCall [][]string
	err        error
}

func (f *fakeImages) poll(_ context.Context, d Dest, ids []string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[d]++
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	f.idsPerCall = append(f.idsPerCall, sorted)
	if f.err != nil {
		return nil, f.err
	}
	out := map[string]string{}
	for _, id := range ids {
		ready, known := f.readyAt[id]
		if !known {
			continue
		}
		f.seen[id]++
		switch {
		case f.seen[id] < ready:
			out[id] = "pending"
		case f.fail[id]:
			out[id] = "failed"
		default:
			out[id] = "available"
		}
	}
	return out, nil
}

func newWaiter(f *fakeImages) *BatchWaiter[string] {
	return &BatchWaiter[string]{
		Poll:     f.poll,
		Terminal: func(s string) bool { return s == "available" || s == "failed" },
		Delay:    time.Millisecond,
		MaxPolls: 50,
		Missing:  3,
	}
}

func TestBatchWaiterOnePollPerDestination(t *testing.T) {
	f := &fakeImages{readyAt: map[string]int{}, seen: map[string]int{}, fail: map[string]bool{"ami-a3": true}, calls: map[Dest]int{}}
	dests := []Dest{{"a", "us-east-1"}, {"b", "us-east-1"}}
	for _, d := range dests {
		for i := 1; i <= 4; i++ {
			f.readyAt[fmt.Sprintf("ami-%s%d", d.Account, i)] = 5
		}
	}
	w := newWaiter(f)
	var wg sync.WaitGroup
	results := sync.Map{}
	for _, d := range dests {
		for i := 1; i <= 4; i++ {
			id := fmt.Sprintf("ami-%s%d", d.Account, i)
			wg.Go(func() {
				s, err := w.Wait(context.Background(), d, id)
				results.Store(id, fmt.Sprintf("%s %v", s, err))
			})
		}
	}
	wg.Wait()
	for _, d := range dests {
		// Waiters may register across the first poll or two; far fewer
		// polls than 4 waiters × 5 polls each.
		if f.calls[d] > 7 {
			t.Errorf("%s polled %d times for 4 images ready after 5 polls", d, f.calls[d])
		}
	}
	maxIDs := 0
	for _, ids := range f.idsPerCall {
		maxIDs = max(maxIDs, len(ids))
	}
	if maxIDs != 4 {
		t.Errorf("largest poll asked for %d IDs, want all 4 of a destination in one call", maxIDs)
	}
	if v, _ := results.Load("ami-a3"); v != "failed <nil>" {
		t.Errorf("ami-a3 = %v, want failed", v)
	}
	if v, _ := results.Load("ami-b2"); v != "available <nil>" {
		t.Errorf("ami-b2 = %v, want available", v)
	}
}

func TestBatchWaiterErrors(t *testing.T) {
	t.Run("never visible", func(t *testing.T) {
		f := &fakeImages{readyAt: map[string]int{}, seen: map[string]int{}, calls: map[Dest]int{}}
		_, err := newWaiter(f).Wait(context.Background(), Dest{"a", "r"}, "ami-ghost")
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("times out", func(t *testing.T) {
		f := &fakeImages{readyAt: map[string]int{"ami-slow": 1000}, seen: map[string]int{}, calls: map[Dest]int{}}
		w := newWaiter(f)
		w.MaxPolls = 4
		var progress int
		w.Progress = func(Dest, string, string) { progress++ }
		s, err := w.Wait(context.Background(), Dest{"a", "r"}, "ami-slow")
		if !errors.Is(err, ErrWaitTimeout) || s != "pending" {
			t.Fatalf("got %q, %v; want pending, ErrWaitTimeout", s, err)
		}
		if progress != 4 {
			t.Errorf("progress reported %d times, want 4 (one per pending poll)", progress)
		}
	})
	t.Run("poll keeps failing", func(t *testing.T) {
		f := &fakeImages{readyAt: map[string]int{"ami-1": 1}, seen: map[string]int{}, calls: map[Dest]int{}, err: errors.New("boom")}
		_, err := newWaiter(f).Wait(context.Background(), Dest{"a", "r"}, "ami-1")
		if err == nil || f.calls[Dest{"a", "r"}] != 3 {
			t.Fatalf("err = %v after %d polls, want an error after 3", err, f.calls[Dest{"a", "r"}])
		}
	})
	t.Run("context ends", func(t *testing.T) {
		f := &fakeImages{readyAt: map[string]int{"ami-slow": 1000}, seen: map[string]int{}, calls: map[Dest]int{}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		_, err := newWaiter(f).Wait(ctx, Dest{"a", "r"}, "ami-slow")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
	})
}
