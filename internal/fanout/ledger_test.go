package fanout

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLedgerUnwind(t *testing.T) {
	var l Ledger
	var order []string
	undo := func(name string, err error) func(context.Context) error {
		return func(context.Context) error {
			order = append(order, name)
			return err
		}
	}
	l.Add(Cleanup, "share", undo("share", nil))
	l.Add(Rollback, "copy-1", undo("copy-1", nil))
	l.Add(Cleanup, "grant", undo("grant", errors.New("kms down")))
	forget := l.Add(Cleanup, "handed-over", undo("handed-over", nil))
	l.Add(Rollback, "copy-2", undo("copy-2", nil))
	forget()

	done, err := l.Unwind(context.Background(), Cleanup)
	if want := []string{"grant", "share"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("cleanup order %v, want %v (newest first, forgotten skipped)", order, want)
	}
	if err == nil || len(done) != 2 || done[0].Err == nil || done[1].Err != nil {
		t.Fatalf("Unwind = %v, %v", done, err)
	}
	if left := l.Pending(Cleanup); len(left) != 1 || left[0].What != "grant" {
		t.Fatalf("pending cleanup %v, want only the failed grant", left)
	}
	if len(l.Pending(Rollback)) != 2 {
		t.Fatalf("rollback entries touched by a cleanup unwind")
	}
	order = nil
	if _, err := l.Unwind(context.Background(), Rollback); err != nil {
		t.Fatal(err)
	}
	if want := []string{"copy-2", "copy-1"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("rollback order %v, want %v", order, want)
	}
}

// TestLedgerGoneAndEach: an undo that finds its resource gone counts as
// done and says so; UnwindEach hands every outcome over as it happens, a
// failed one included, and a failed undo stays recorded.
func TestLedgerGoneAndEach(t *testing.T) {
	var l Ledger
	l.AddDetail(Cleanup, "permission", "detail-1", func(context.Context) error { return fmt.Errorf("unsharing: %w", ErrGone) })
	l.AddDetail(Cleanup, "grant", "detail-2", func(context.Context) error { return errors.New("throttled") })
	l.Add(Cleanup, "lease", func(context.Context) error { return nil })
	var seen []string
	done, err := l.UnwindEach(context.Background(), Cleanup, func(u Undone) {
		seen = append(seen, fmt.Sprintf("%s gone=%v err=%v detail=%v", u.What, u.Gone, u.Err != nil, u.Detail))
	})
	want := []string{"lease gone=false err=false detail=<nil>", "grant gone=false err=true detail=detail-2", "permission gone=true err=false detail=detail-1"}
	if !reflect.DeepEqual(seen, want) || len(done) != 3 {
		t.Errorf("outcomes %v, want %v (newest first)", seen, want)
	}
	if err == nil || !strings.Contains(err.Error(), "throttled") {
		t.Errorf("Unwind error = %v, want the failed undo's", err)
	}
	if left := l.Pending(Cleanup); len(left) != 1 || left[0].What != "grant" {
		t.Errorf("pending after unwind: %+v, want only the failed grant", left)
	}
}

// TestLedgerUnwindsABatchAtOnce: the entries of one batch are undone at
// once (each waits for all the others to have started), a failure among
// them stops none of the others and stays recorded, and the entries
// recorded after the batch are undone before it, as always.
func TestLedgerUnwindsABatchAtOnce(t *testing.T) {
	var l Ledger
	const grants = 5
	started := make(chan struct{}, grants)
	var mu sync.Mutex
	var order []string
	note := func(s string) {
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	}
	for i := range grants {
		name := fmt.Sprintf("grant-%d", i)
		l.AddEntry(Entry{Kind: Cleanup, What: name, Batch: "grants", Undo: func(ctx context.Context) error {
			started <- struct{}{}
			for len(started) < grants { // all must be under way together
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Millisecond):
				}
			}
			note(name)
			if i == 2 {
				return errors.New("kms down")
			}
			return nil
		}})
	}
	l.Add(Cleanup, "share", func(context.Context) error { note("share"); return nil })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done, err := l.Unwind(ctx, Cleanup)
	if err == nil || !strings.Contains(err.Error(), "undoing grant-2: kms down") {
		t.Fatalf("error = %v, want grant-2's", err)
	}
	if len(done) != grants+1 || order[0] != "share" {
		t.Fatalf("undone %d, order %v; want the share first, then the %d grants", len(done), order, grants)
	}
	for _, d := range done {
		if (d.What == "grant-2") != (d.Err != nil) {
			t.Errorf("%s: err %v", d.What, d.Err)
		}
	}
	if left := l.Pending(Cleanup); len(left) != 1 || left[0].What != "grant-2" {
		t.Errorf("pending after unwind: %v, want grant-2 alone", left)
	}
}
