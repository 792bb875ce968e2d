package copy

// The fault suite: the copy of one AMI to two accounts × two regions under
// the emulator's fault profiles and under changes made while it runs (a
// target key disabled, the source AMI deregistered, Ctrl-C…), each with
// its expected outcome. After every scenario the invariant checker finds
// nothing lent left behind, no unencrypted AMI and no copy under a foreign
// key, and every line the run reported about what it removed is what the
// emulator's audit shows.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/checker"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// The suite's destinations.
var (
	faultAccounts = []string{"222222222222", "444444444444"}
	faultRegions  = []string{"us-east-1", "eu-west-1"}
)

// faultWant is a scenario's expected outcome.
type faultWant struct {
	ok bool
	// any: the outcome depends on timing; only the invariants are checked.
	any    bool
	errHas []string
	// copies: non-DryRun CopyImage calls per destination ("account/region"),
	// when given.
	copies map[string]int
	// live: live (not deregistered) copies of the source per destination
	// after the run; -1 leaves it unchecked. Defaults: 1 on success, 0
	// after a rollback.
	live int
	// says: lines the output must contain.
	says []string
	// findings: checker findings the run itself reports as left behind.
	findings map[string]int
}

type faultScenario struct {
	name  string
	rules []awsemu.FaultRule
	opts  func(*awsemu.Options)
	world func(*awsemu.World)
	raw   func(map[string]interface{})
	// source makes the source AMI (default: under alias/amicrypt-build).
	source func(t *testing.T, srv *emutest.Server) string
	// hookAt is a line of output at which act runs, once (as another
	// principal: the accounts' administrators).
	hookAt string
	act    func(t *testing.T, srv *emutest.Server, srcAMI string)
	// cancelAt is a line at which the run is interrupted (Ctrl-C).
	cancelAt string
	// before runs before the run (after the source AMI is made).
	before func(t *testing.T, srv *emutest.Server, raw map[string]interface{}, srcAMI string)
	// rerun: once the run's lease has expired, the same template runs
	// again and must leave nothing behind at all.
	rerun bool
	want  faultWant
}

func faultDest(account, region string) string { return account + "/" + region }

func TestFaultScenarios(t *testing.T) {
	const leaseFor = 300 * time.Millisecond
	scenarios := []faultScenario{
		{name: "no fault", want: faultWant{ok: true, copies: everyDest(1)}},
		{name: "throttled target describes", rules: []awsemu.FaultRule{
			{Kind: awsemu.FaultThrottle, Service: "ec2", Action: "Describe*", Account: "222222222222", Probability: 0.15},
			{Kind: awsemu.FaultThrottle, Service: "ec2", Action: "Describe*", Account: "444444444444", Probability: 0.15},
		}, want: faultWant{ok: true, copies: everyDest(1)}},
		{name: "throttled CopyImage", rules: []awsemu.FaultRule{
			{Kind: awsemu.FaultThrottle, Action: "CopyImage", Account: "222222222222", Nth: []int{2, 3}},
			{Kind: awsemu.FaultThrottle, Action: "CopyImage", Account: "444444444444", Nth: []int{2, 4}}},
			want: faultWant{ok: true, copies: everyDest(1)}},
		{name: "throttled KMS", rules: []awsemu.FaultRule{{Kind: awsemu.FaultThrottle, Service: "kms", Probability: 0.1}},
			want: faultWant{ok: true, copies: everyDest(1)}},
		{name: "InternalError on one CopyImage call", rules: []awsemu.FaultRule{{Kind: awsemu.FaultInternalError, Action: "CopyImage", Account: "222222222222", Nth: []int{2}}},
			want: faultWant{ok: true, live: 1}},
		{name: "CopyImage answers InternalError in one destination every time",
			rules: []awsemu.FaultRule{{Kind: awsemu.FaultInternalError, Action: "CopyImage", Account: "444444444444", Region: "eu-west-1"}},
			raw:   func(r map[string]interface{}) { r["max_retries"] = 1 },
			want:  faultWant{errHas: []string{"444444444444/eu-west-1", "InternalError"}, says: []string{"trying again (3 of 3)"}}},
		{name: "a copy fails once", rules: []awsemu.FaultRule{{Kind: awsemu.FaultCopyFails, Action: "CopyImage", Account: "222222222222", Region: "eu-west-1", Max: 1}},
			want: faultWant{ok: true, copies: withDest(everyDest(1), "222222222222/eu-west-1", 2), says: []string{"Server.InternalError", "copying again (2 of 3)"}}},
		{name: "a copy fails twice", rules: []awsemu.FaultRule{{Kind: awsemu.FaultCopyFails, Action: "CopyImage", Account: "222222222222", Region: "eu-west-1", Max: 2}},
			want: faultWant{ok: true, copies: withDest(everyDest(1), "222222222222/eu-west-1", 3)}},
		{name: "a copy keeps failing, rollback", rules: []awsemu.FaultRule{{Kind: awsemu.FaultCopyFails, Action: "CopyImage", Account: "222222222222", Region: "eu-west-1"}},
			want: faultWant{errHas: []string{"222222222222/eu-west-1", "the copy failed 3 times", "Server.InternalError"},
				copies: withDest(everyDest(1), "222222222222/eu-west-1", 3), says: []string{"roll back copy"}}},
		{name: "a copy keeps failing, keep", rules: []awsemu.FaultRule{{Kind: awsemu.FaultCopyFails, Action: "CopyImage", Account: "222222222222", Region: "eu-west-1"}},
			raw:  func(r map[string]interface{}) { r["on_failure"] = OnFailureKeep },
			want: faultWant{errHas: []string{"the copy failed 3 times"}, live: 1, says: []string{"kept (on_failure = \"keep\")"}}},
		{name: "new copies invisible for a moment", rules: []awsemu.FaultRule{
			{Kind: awsemu.FaultNotFoundAfterNew, Action: "CopyImage", Account: "222222222222"},
			{Kind: awsemu.FaultNotFoundAfterNew, Action: "CopyImage", Account: "444444444444"}},
			opts: func(o *awsemu.Options) { o.TimeScale = 0.004 },
			want: faultWant{ok: true, copies: everyDest(1)}},
		{name: "an invisible new copy fails", rules: []awsemu.FaultRule{
			{Kind: awsemu.FaultNotFoundAfterNew, Action: "CopyImage", Account: "444444444444"},
			{Kind: awsemu.FaultCopyFails, Action: "CopyImage", Account: "444444444444", Region: "us-east-1", Max: 1}},
			opts: func(o *awsemu.Options) { o.TimeScale = 0.004 },
			want: faultWant{ok: true, copies: withDest(everyDest(1), "444444444444/us-east-1", 2)}},
		{name: "a grant slow to take effect", rules: []awsemu.FaultRule{{Kind: awsemu.FaultSlowGrant, Action: "CreateGrant"}},
			opts: func(o *awsemu.Options) { o.SlowGrantDelay = 2 * time.Minute },
			want: faultWant{ok: true, copies: everyDest(1)}},
		{name: "a grant that does not take effect in time", rules: []awsemu.FaultRule{{Kind: awsemu.FaultSlowGrant, Action: "CreateGrant", Account: srcAccount}},
			opts: func(o *awsemu.Options) { o.SlowGrantDelay = 24 * time.Hour },
			raw:  func(r map[string]interface{}) { r["grant_propagation_timeout"] = "300ms" },
			want: faultWant{errHas: []string{"did not take effect", "grant_propagation_timeout", "before any copy"}, copies: everyDest(0)}},
		{name: "target key disabled before the run",
			world: func(w *awsemu.World) { setKeyState(w, "444444444444", "us-east-1", "Disabled") },
			want:  faultWant{errHas: []string{"preflight found", "444444444444/us-east-1", "disabled"}, copies: everyDest(0)}},
		{name: "target key disabled during the run", hookAt: "lease: run",
			act: func(t *testing.T, srv *emutest.Server, _ string) {
				targetKeyAdmin(t, srv, "222222222222", "eu-west-1", "disable")
			},
			want: faultWant{errHas: []string{"222222222222/eu-west-1", "the target key is the cause", "is Disabled", "not retried"}, copies: withDest(nil, "222222222222/eu-west-1", 1)}},
		{name: "target key scheduled for deletion during the run", hookAt: "lease: run",
			act: func(t *testing.T, srv *emutest.Server, _ string) {
				targetKeyAdmin(t, srv, "444444444444", "eu-west-1", "delete")
			},
			want: faultWant{errHas: []string{"444444444444/eu-west-1", "the target key is the cause", "PendingDeletion", "not retried"}, copies: withDest(nil, "444444444444/eu-west-1", 1)}},
		{name: "source key disabled during the run", hookAt: "lease: run",
			act:  func(t *testing.T, srv *emutest.Server, _ string) { sourceKeyAdmin(t, srv, "disable") },
			want: faultWant{errHas: []string{"DisabledException", "is disabled"}, copies: everyDest(0)}},
		{name: "source AMI deregistered before the copies", hookAt: "may be launched by",
			act:  func(t *testing.T, srv *emutest.Server, ami string) { deregisterSource(t, srv, ami, false) },
			want: faultWant{errHas: []string{"no longer sees the source AMI"}, says: []string{"remove launch permission", "already gone"}, copies: everyDest(0)}},
		{name: "source AMI deregistered with copies in flight", hookAt: ": copying ",
			opts: func(o *awsemu.Options) { o.TimeScale = 0.005 },
			act:  func(t *testing.T, srv *emutest.Server, ami string) { deregisterSource(t, srv, ami, false) },
			want: faultWant{any: true, says: []string{"remove launch permission", "already gone"}}},
		{name: "source AMI and snapshots deleted before the copies", hookAt: "may be launched by",
			act:  func(t *testing.T, srv *emutest.Server, ami string) { deregisterSource(t, srv, ami, true) },
			want: faultWant{errHas: []string{"the source snapshot", "is gone"}, says: []string{"remove createVolume permission", "already gone"}, copies: everyDest(0)}},
		{name: "RetireGrant fails once", rules: []awsemu.FaultRule{{Kind: awsemu.FaultInternalError, Action: "RetireGrant", Nth: []int{1}}},
			want: faultWant{ok: true, copies: everyDest(1)}},
		{name: "DeregisterImage fails once during the rollback", rules: []awsemu.FaultRule{
			{Kind: awsemu.FaultCopyFails, Action: "CopyImage", Account: "444444444444", Region: "eu-west-1"},
			{Kind: awsemu.FaultInternalError, Action: "DeregisterImage", Account: "222222222222", Nth: []int{1}}},
			want: faultWant{errHas: []string{"the copy failed 3 times"}, says: []string{"roll back copy"}}},
		{name: "DeleteSnapshot keeps failing during the rollback", rules: []awsemu.FaultRule{
			{Kind: awsemu.FaultCopyFails, Action: "CopyImage", Account: "444444444444", Region: "eu-west-1"},
			// Every DeleteSnapshot after the preflight's DryRun.
			{Kind: awsemu.FaultInternalError, Action: "DeleteSnapshot", Account: "222222222222", Region: "us-east-1", Nth: []int{2, 3, 4, 5, 6, 7, 8, 9}}},
			raw: func(r map[string]interface{}) { r["max_retries"] = 1 },
			want: faultWant{errHas: []string{"cleanup incomplete", "still there"}, live: -1,
				says: []string{"roll back copy", "FAILED", "rollback failed"}, findings: map[string]int{checker.OrphanSnapshot: 1}}},
		{name: "removing the launch permission keeps failing", rules: []awsemu.FaultRule{
			// 1: the preflight's DryRun, 2: the share, 3 and 4: its removal.
			{Kind: awsemu.FaultInternalError, Action: "ModifyImageAttribute", Account: srcAccount, Nth: []int{3, 4}}},
			raw: func(r map[string]interface{}) { r["max_retries"] = 1 },
			// The lease stays: the next run takes the permission back.
			rerun: true,
			want: faultWant{errHas: []string{"cleanup incomplete", "the launch permission on"}, live: 1,
				says: []string{"stays on what it lent", "retire grant"}, findings: map[string]int{checker.LeftoverLaunchPerm: 2, checker.LeftoverGrant: 2}}},
		{name: "interrupted while lending", cancelAt: ": granted ",
			want: faultWant{errHas: []string{"context canceled"}, copies: everyDest(0)}},
		{name: "interrupted with copies in flight", cancelAt: ": copying ", opts: func(o *awsemu.Options) { o.TimeScale = 0.003 },
			want: faultWant{errHas: []string{"context canceled"}, says: []string{"roll back copy"}}},
		{name: "a dead run's leftovers", before: func(t *testing.T, srv *emutest.Server, raw map[string]interface{}, ami string) {
			runKilled(t, srv, raw, leaseFor, fakeArtifact{"amicrypt.ebs", "us-east-1:" + ami}, "may be launched by")
			time.Sleep(leaseFor + 100*time.Millisecond)
		}, want: faultWant{ok: true, says: []string{"taking back what run", "retire grant"}}},
		{name: "the transit copy fails",
			source: func(t *testing.T, srv *emutest.Server) string {
				return makeSourceAMI(t, srv, "us-east-1", publicAMI, "")
			},
			// The 1st CopyImage of the source account makes the source AMI.
			rules: []awsemu.FaultRule{{Kind: awsemu.FaultCopyFails, Action: "CopyImage", Account: srcAccount, Nth: []int{2}}},
			raw:   func(r map[string]interface{}) { r["transit_kms_key_id"] = "alias/amicrypt-build" },
			want:  faultWant{errHas: []string{"transit copy", "Server.InternalError"}, says: []string{"delete transit copy"}, copies: everyDest(0)}},
	}
	if len(scenarios) < 20 {
		t.Fatalf("%d scenarios; the suite promises at least 20", len(scenarios))
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { runFaultScenario(t, sc) })
	}
}

func runFaultScenario(t *testing.T, sc faultScenario) {
	opts := awsemu.Options{}
	if sc.world != nil {
		w := defaultWorld(t)
		sc.world(w)
		opts.World = w
	}
	if sc.opts != nil {
		sc.opts(&opts)
	}
	if len(sc.rules) > 0 {
		opts.Faults = &awsemu.FaultProfile{Seed: 7, Rules: sc.rules}
	}
	srv := emu(t, opts)
	var srcAMI string
	if sc.source != nil {
		srcAMI = sc.source(t, srv)
	} else {
		srcAMI = makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
	}
	raw := baseConfig(t)
	raw["regions"] = faultRegions
	raw["target"] = []map[string]interface{}{{"account_id": "222222222222"}, {"account_id": "444444444444", "external_id": "amicrypt-demo"}}
	if sc.raw != nil {
		sc.raw(raw)
	}
	mark := srv.Emulator().CheckMark()
	if sc.before != nil {
		sc.before(t, srv, raw, srcAMI)
	}
	runMark := srv.Emulator().CheckMark()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	ui := &hookUI{testUI: newUI(), hook: func(s string) {
		if sc.hookAt != "" && strings.Contains(s, sc.hookAt) {
			once.Do(func() { sc.act(t, srv, srcAMI) })
		}
		if sc.cancelAt != "" && strings.Contains(s, sc.cancelAt) {
			cancel()
		}
	}}
	p := newPP(t, raw)
	p.config.leaseDuration = 300 * time.Millisecond
	_, _, _, err := p.PostProcess(ctx, ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI})
	out := ui.buf.String()
	w := sc.want
	switch {
	case w.any:
	case w.ok && err != nil:
		t.Fatalf("want success, got %v\n%s", err, out)
	case !w.ok && err == nil:
		t.Fatalf("want a failure saying %q, got success\n%s", w.errHas, out)
	}
	for _, s := range w.errHas {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q: %v", s, err)
		}
	}
	for _, s := range w.says {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	for dest, n := range w.copies {
		acct, region, _ := strings.Cut(dest, "/")
		// Copies made: calls EC2 answered with an image.
		got := len(srv.Emulator().Audit(awsemu.AuditFilter{Action: "CopyImage", Account: acct, Region: region, SinceSeq: runMark, Outcome: "ok"}))
		if got != n {
			t.Errorf("%s: %d CopyImage calls, want %d", dest, got, n)
		}
	}
	if !w.any {
		live := w.live
		if live == 0 && w.ok {
			live = 1
		}
		if live >= 0 {
			for _, a := range faultAccounts {
				for _, r := range faultRegions {
					if n := liveCopiesOf(t, srv, a, r, srcAMI); n != live {
						t.Errorf("%s/%s holds %d live copies of %s, want %d", a, r, n, srcAMI, live)
					}
				}
			}
		}
	}
	m := readManifest(t, raw["manifest_output"].(string))
	assertRecordsMatchAudit(t, srv, mark, append(m.Reclaimed, m.Cleanup...))
	// The invariants. What the run says it left is all that is left.
	rep := srv.Emulator().Check(awsemu.CheckOptions{SinceSeq: mark})
	got := map[string]int{}
	for _, f := range rep.Findings {
		got[f.Check]++
	}
	for check, n := range got {
		if w.findings[check] != n {
			t.Errorf("invariant checker: %d %s finding(s), want %d:\n%s", n, check, w.findings[check], rep)
		}
	}
	for check, n := range w.findings {
		if got[check] != n {
			t.Errorf("invariant checker: %d %s finding(s), want %d (the run reports them):\n%s", got[check], check, n, rep)
		}
		for _, f := range rep.Findings {
			if f.Check == check && err != nil && !strings.Contains(err.Error(), f.Resource) {
				t.Errorf("the run does not report %s, which the checker finds left: %s", f.Resource, f.Message)
			}
		}
	}
	if sc.rerun {
		time.Sleep(p.config.leaseDuration + 100*time.Millisecond)
		ui2 := newUI()
		if _, _, _, err := newPP(t, raw).PostProcess(context.Background(), ui2, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI}); err != nil {
			t.Fatalf("rerun: %v\n%s", err, ui2.buf)
		}
		if !strings.Contains(ui2.buf.String(), "taking back what run") {
			t.Errorf("the rerun did not take back what the first run left:\n%s", ui2.buf)
		}
		m2 := readManifest(t, raw["manifest_output"].(string))
		assertRecordsMatchAudit(t, srv, mark, append(m2.Reclaimed, m2.Cleanup...))
		check(t, srv, mark)
	} else if len(w.findings) > 0 {
		return
	}
	assertNoLeaseTags(t, srv, "us-east-1", srcAMI)
}

func everyDest(n int) map[string]int {
	m := map[string]int{}
	for _, a := range faultAccounts {
		for _, r := range faultRegions {
			m[faultDest(a, r)] = n
		}
	}
	return m
}

func withDest(m map[string]int, dest string, n int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = v
	}
	out[dest] = n
	return out
}

func setKeyState(w *awsemu.World, account, region, state string) {
	a := account_(w, account)
	for i := range a.Keys {
		if a.Keys[i].Region == region && slices.Contains(a.Keys[i].Aliases, "alias/amicrypt-target") {
			a.Keys[i].State = state
		}
	}
}

func account_(w *awsemu.World, id string) *awsemu.WorldAccount { return account(w, id) }

// targetKeyAdmin disables ("disable") or schedules the deletion ("delete")
// of a target account's alias/amicrypt-target, as that account's admin.
func targetKeyAdmin(t *testing.T, srv *emutest.Server, account, region, what string) {
	keyAdmin(t, srv, account, region, "alias/amicrypt-target", what)
}

// sourceKeyAdmin does the same to the source key in us-east-1.
func sourceKeyAdmin(t *testing.T, srv *emutest.Server, what string) {
	keyAdmin(t, srv, srcAccount, "us-east-1", "alias/amicrypt-build", what)
}

func keyAdmin(t *testing.T, srv *emutest.Server, account, region, alias, what string) {
	ctx := context.Background()
	kc := kms.NewFromConfig(srv.Config(ctx, account, region))
	var err error
	switch what {
	case "disable":
		_, err = kc.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(alias)})
	case "delete":
		_, err = kc.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(alias), PendingWindowInDays: aws.Int32(7)})
	}
	if err != nil {
		t.Errorf("%s %s in %s/%s: %v", what, alias, account, region, err)
	}
}

// deregisterSource deregisters the source AMI as its owner, and with snaps
// deletes its snapshots too.
func deregisterSource(t *testing.T, srv *emutest.Server, ami string, snaps bool) {
	ctx := context.Background()
	c := ec2.NewFromConfig(srv.Config(ctx, srcAccount, "us-east-1"))
	_, err := c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(ami), DeleteAssociatedSnapshots: aws.Bool(snaps)})
	if err != nil {
		t.Errorf("deregistering %s: %v", ami, err)
	}
}

func liveCopiesOf(t *testing.T, srv *emutest.Server, account, region, srcAMI string) int {
	t.Helper()
	client := ec2.NewFromConfig(srv.Config(context.Background(), account, region))
	imgs, err := ebs.FindImagesByFilter(context.Background(), client, []string{"self"}, map[string]string{"tag:" + TagSourceAMI: srcAMI})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, img := range imgs {
		if img.State != ec2types.ImageStateDeregistered {
			n++
		}
	}
	return n
}

// assertRecordsMatchAudit checks every record a run reported against the
// emulator's audit: "done" is a successful call that removed exactly that,
// "already gone" a call the API answered not-found, and every copy
// reported rolled back is gone with its snapshots.
func assertRecordsMatchAudit(t *testing.T, srv *emutest.Server, mark int, records []Record) {
	t.Helper()
	emu := srv.Emulator()
	entries := emu.Audit(awsemu.AuditFilter{SinceSeq: mark})
	find := func(action string, ok func(awsemu.AuditEntry) bool) bool {
		for _, e := range entries {
			if e.Action == action && ok(e) {
				return true
			}
		}
		return false
	}
	for _, r := range records {
		var err error
		switch {
		case r.Outcome == outcomeLeft || r.Outcome == outcomeFailed:
			continue // not claimed done
		case r.Action == actionLaunch || r.Action == actionVolume:
			call, note, gone := "ModifyImageAttribute", "launchPermission.remove.", "InvalidAMIID.NotFound"
			if r.Action == actionVolume {
				call, note, gone = "ModifySnapshotAttribute", "createVolumePermission.remove.", "InvalidSnapshot.NotFound"
			}
			for _, acct := range r.For {
				if r.Outcome == outcomeGone {
					if !find(call, func(e awsemu.AuditEntry) bool {
						return e.Outcome == gone && strings.Contains(fmt.Sprint(e.Params), r.Resource)
					}) {
						err = errors.Join(err, fmt.Errorf("no %s answered %s for %s", call, gone, r.Resource))
					}
					continue
				}
				if !find(call, func(e awsemu.AuditEntry) bool { return e.Outcome == "ok" && e.Notes[note+acct] == r.Resource }) {
					err = errors.Join(err, fmt.Errorf("no successful %s removing %s from %s", call, acct, r.Resource))
				}
			}
		case r.Action == actionGrant:
			if !find("RetireGrant", func(e awsemu.AuditEntry) bool {
				return e.Params["GrantId"] == r.Resource && (e.Outcome == "ok") == (r.Outcome == outcomeDone)
			}) &&
				!find("RevokeGrant", func(e awsemu.AuditEntry) bool {
					return e.Params["GrantId"] == r.Resource && (e.Outcome == "ok") == (r.Outcome == outcomeDone)
				}) {
				err = fmt.Errorf("no RetireGrant or RevokeGrant of %s answered as reported (%s)", r.Resource, r.Outcome)
			}
			for _, g := range emu.Grants() {
				if g.GrantID == r.Resource {
					err = errors.Join(err, fmt.Errorf("grant %s still exists", r.Resource))
				}
			}
		case r.Action == actionRollback || r.Action == actionDead || r.Action == actionTransit:
			if r.Outcome == outcomeDone && !find("DeregisterImage", func(e awsemu.AuditEntry) bool { return e.Outcome == "ok" && e.Notes["imageId"] == r.Resource }) {
				err = fmt.Errorf("no successful DeregisterImage of %s", r.Resource)
			}
			for _, s := range r.Snapshots {
				if !find("DeleteSnapshot", func(e awsemu.AuditEntry) bool { return e.Outcome == "ok" && e.Notes["snapshotId"] == s }) {
					err = errors.Join(err, fmt.Errorf("no successful DeleteSnapshot of %s", s))
				}
			}
			client := ec2.NewFromConfig(srv.Config(context.Background(), r.Account, r.Region))
			imgs, snaps, rerr := ebs.StillThere(context.Background(), client, []string{r.Resource}, r.Snapshots)
			if rerr != nil || len(imgs)+len(snaps) > 0 {
				err = errors.Join(err, fmt.Errorf("reported removed, yet still there: %v %v", imgs, snaps), rerr)
			}
		case r.Action == actionLease:
			for _, id := range strings.Split(r.Resource, ",") {
				if !find("DeleteTags", func(e awsemu.AuditEntry) bool {
					return strings.Contains(fmt.Sprint(e.Params), id) && (e.Outcome == "ok" || strings.HasSuffix(e.Outcome, ".NotFound"))
				}) {
					err = errors.Join(err, fmt.Errorf("no DeleteTags on %s", id))
				}
			}
		default:
			err = fmt.Errorf("record of an unknown action")
		}
		if err != nil {
			t.Errorf("the run reported %q, but the audit says otherwise: %v", r.String(), err)
		}
	}
}
