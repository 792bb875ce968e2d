package core

import (
	"fmt"
	"testing"
)

// TestAuditBounded: the audit keeps at most its limit in memory, dropping
// the oldest; sequence numbers keep counting; a persisted audit drops only
// what the log on disk has.
func TestAuditBounded(t *testing.T) {
	record := func(a *Audit, n int) {
		for i := range n {
			a.Record(&Call{Action: fmt.Sprint("A", i)}, nil, 200)
		}
	}
	a := NewAudit(100, false)
	record(a, 250)
	if a.Len() != 250 || a.Dropped() < 150 || len(a.Entries(AuditFilter{})) > 100 {
		t.Fatalf("len %d dropped %d in memory %d", a.Len(), a.Dropped(), len(a.Entries(AuditFilter{})))
	}
	last, ok := a.At(250)
	if !ok || last.Seq != 250 || last.Action != "A249" {
		t.Fatalf("last entry %+v %v", last, ok)
	}
	if _, ok := a.At(1); ok {
		t.Fatal("a dropped entry is still there")
	}
	if got := a.Entries(AuditFilter{SinceSeq: 245}); len(got) != 5 || got[0].Seq != 246 {
		t.Fatalf("since 245: %d entries, first %+v", len(got), got[0])
	}

	p := NewAudit(100, true)
	record(p, 250)
	if p.Dropped() != 0 {
		t.Fatalf("a persisted audit dropped %d unsaved entries", p.Dropped())
	}
	if n := len(p.TakeUnsaved()); n != 250 {
		t.Fatalf("unsaved %d, want 250", n)
	}
	record(p, 1)
	if p.Dropped() == 0 || p.Len() != 251 {
		t.Fatalf("after saving, dropped %d len %d", p.Dropped(), p.Len())
	}
	if n := len(p.TakeUnsaved()); n != 1 {
		t.Fatalf("unsaved after the save: %d, want 1", n)
	}
}
