package fanout

import (
	"context"
	"errors"
	"reflect"
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
