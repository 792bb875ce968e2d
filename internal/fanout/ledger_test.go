package fanout

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
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
