package copy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/checker"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

func TestGrantNameRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		want grantRef
		ok   bool
	}{
		{grantName("run1", "tpl", "222222222222", "ami-0abc1234", shared{}), grantRef{Run: "run1", Template: "tpl", Account: "222222222222", Image: "ami-0abc1234"}, true},
		{grantName("run1", "tpl", "222222222222", "ami-0abc1234", shared{launch: true}), grantRef{Run: "run1", Template: "tpl", Account: "222222222222", Image: "ami-0abc1234", Held: shared{launch: true}}, true},
		{grantName("r2", "t", "333333333333", "ami-0abc1234", shared{volume: true}), grantRef{Run: "r2", Template: "t", Account: "333333333333", Image: "ami-0abc1234", Held: shared{volume: true}}, true},
		{grantName("r2", "t", "444444444444", "ami-0123456789abcdef0", shared{launch: true, volume: true}),
			grantRef{Run: "r2", Template: "t", Account: "444444444444", Image: "ami-0123456789abcdef0", Held: shared{launch: true, volume: true}}, true},
		// Names of amicrypt-copy before leases: the AMI and account are in them.
		{"amicrypt-copy-ami-0abc1234-222222222222-launch-volume", grantRef{Account: "222222222222", Image: "ami-0abc1234", Held: shared{launch: true, volume: true}}, true},
		{"amicrypt-copy-ami-0abc1234-222222222222", grantRef{Account: "222222222222", Image: "ami-0abc1234"}, true},
		{"amicrypt-copy-ami-0abc1234-autoscaling", grantRef{}, false},
		{"amicrypt-autoscaling", grantRef{}, false},
		{"amicrypt-copy:RUN:tpl:222222222222:ami-0abc1234", grantRef{}, false},       // upper case: not a run ID
		{"amicrypt-copy:run:tpl:22222222222:ami-0abc1234", grantRef{}, false},        // 11 digits
		{"amicrypt-copy:run:tpl:222222222222:ami-0abc1234:owner", grantRef{}, false}, // unknown flag
		{"", grantRef{}, false},
	}
	for _, tt := range tests {
		got, ok := parseGrantName(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseGrantName(%q) = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
		if ok && len(tt.name) > 256 {
			t.Errorf("grant name %q is longer than KMS's 256 characters", tt.name)
		}
	}
}

func TestLeaseRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 15, 0, 250*int(time.Millisecond), time.UTC)
	l := lease{Run: "k3j9x2m1p0", Template: "3f9a1c2b7d4e", Expires: at}
	got, ok := parseLease(leaseTagKey(l.Run), l.tagValue())
	if !ok || got != l {
		t.Fatalf("parseLease(%q, %q) = %+v, %v; want %+v", leaseTagKey(l.Run), l.tagValue(), got, ok, l)
	}
	if len(leaseTagKey(l.Run)) > 128 || len(l.tagValue()) > 256 {
		t.Errorf("lease tag %q = %q exceeds AWS's tag limits", leaseTagKey(l.Run), l.tagValue())
	}
	for _, bad := range [][2]string{
		{"amicrypt:lease:run", "template=t"},                   // no expiry
		{"amicrypt:lease:run", "expires=2026-11-23T10:15:00Z"}, // no template
		{"amicrypt:lease:run", "template=t expires=tomorrow"},  // bad time
		{"amicrypt:lease:", "template=t expires=2026-11-23T10:15:00Z"},
		{"amicrypt:template", "template=t expires=2026-11-23T10:15:00Z"},
	} {
		if l, ok := parseLease(bad[0], bad[1]); ok {
			t.Errorf("parseLease(%q, %q) = %+v, want not a lease", bad[0], bad[1], l)
		}
	}
	if id := newRunID(); !validRunID(id) || len(id) != 10 || id == newRunID() {
		t.Errorf("newRunID() = %q: want 10 random characters of [0-9a-z]", id)
	}
}

func TestTemplateID(t *testing.T) {
	mk := func(accounts ...string) []*target {
		var ts []*target
		for _, a := range accounts {
			ts = append(ts, &target{Account: a, RoleARN: "arn:aws:iam::" + a + ":role/r", KeyRefs: map[string]string{"us-east-1": "alias/k", "eu-west-1": "alias/k"}})
		}
		return ts
	}
	base := templateID("111111111111", []string{"us-east-1"}, mk("222222222222", "333333333333"), "n-{{ .Account }}")
	if len(base) != 12 {
		t.Fatalf("template ID %q: want 12 hex characters", base)
	}
	if got := templateID("111111111111", []string{"us-east-1"}, mk("333333333333", "222222222222"), "n-{{ .Account }}"); got != base {
		t.Errorf("the order of targets changed the template ID: %s vs %s", got, base)
	}
	otherKey := mk("222222222222", "333333333333")
	otherKey[0].KeyRefs["us-east-1"] = "alias/other"
	for name, got := range map[string]string{
		"source account": templateID("999999999999", []string{"us-east-1"}, mk("222222222222", "333333333333"), "n-{{ .Account }}"),
		"source region":  templateID("111111111111", []string{"eu-west-1"}, mk("222222222222", "333333333333"), "n-{{ .Account }}"),
		"targets":        templateID("111111111111", []string{"us-east-1"}, mk("222222222222"), "n-{{ .Account }}"),
		"keys":           templateID("111111111111", []string{"us-east-1"}, otherKey, "n-{{ .Account }}"),
		"name":           templateID("111111111111", []string{"us-east-1"}, mk("222222222222", "333333333333"), "m-{{ .Account }}"),
	} {
		if got == base {
			t.Errorf("changing the %s left the template ID %s", name, base)
		}
	}
}

// crashProxy stands between one run and the emulator: kill makes every
// call after it fail on the wire, as if the process had died (kill -9, a
// lost runner) at that moment. The emulator keeps whatever it had done.
type crashProxy struct {
	srv  *http.Server
	url  string
	dead atomic.Bool
}

func newCrashProxy(t *testing.T, target string) *crashProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &crashProxy{url: "http://" + ln.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.dead.Load() {
			// Nothing reaches AWS any more. The dead run's goroutine gets
			// an error no SDK retries, so the test need not wait for it.
			w.WriteHeader(http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// killUI kills the run through its proxy when it says a line containing at.
type killUI struct {
	*testUI
	at    string
	proxy *crashProxy
	once  sync.Once
}

func (u *killUI) Say(s string) {
	u.testUI.Say(s)
	if strings.Contains(s, u.at) {
		u.once.Do(func() { u.proxy.dead.Store(true) })
	}
}

// runKilled runs the post-processor through a crash proxy and kills it when
// it says at. It returns once the dead run's goroutine gives up (its calls
// fail fast: max_retries = 1).
func runKilled(t *testing.T, srv *emutest.Server, raw map[string]interface{}, leaseFor time.Duration, artifact fakeArtifact, at string) *killUI {
	t.Helper()
	proxy := newCrashProxy(t, srv.URL())
	t.Setenv("AWS_ENDPOINT_URL", proxy.url)
	defer t.Setenv("AWS_ENDPOINT_URL", srv.URL())
	victim := cloneRaw(raw)
	victim["max_retries"] = 1
	p := newPP(t, victim)
	p.config.leaseDuration = leaseFor
	ui := &killUI{testUI: newUI(), at: at, proxy: proxy}
	_, _, _, err := p.PostProcess(context.Background(), ui, artifact)
	if !proxy.dead.Load() {
		t.Fatalf("the run never said %q, so it was not killed (err %v):\n%s", at, err, ui.buf)
	}
	if err == nil {
		t.Logf("the killed run reported success (it was killed after its last call)")
	}
	return ui
}

func cloneRaw(raw map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(raw))
	for k, v := range raw {
		out[k] = v
	}
	return out
}

// TestKilledRunIsTakenBack kills a run outright at each step and runs the
// same template again once the dead run's lease has expired. The rerun
// takes back everything the dead run lent (grants on the source key,
// launch and createVolume permissions, its lease tags), adopts the copies it
// made (none doubled) and reports every copy; the invariant checker finds
// nothing left of either run.
func TestKilledRunIsTakenBack(t *testing.T) {
	steps := []struct {
		name, at string
		// takeBack: the rerun must take back a lease (and grants) of the
		// dead run.
		lease, grants bool
	}{
		{"preflight", "planning copies", false, false},
		{"before the lease", "preflight passed", false, false},
		{"lend after the lease", "lease: run", true, false},
		{"lend after the grants", ": granted ", true, true},
		{"lend after the launch permission", "may be launched by", true, true},
		{"copies in flight", ": copying ", true, true},
		{"cleanup", "cleaning up:", true, true},
		{"cleanup half done", "remove createVolume permission", true, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			srv := emu(t, awsemu.Options{})
			srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
			raw := baseConfig(t)
			raw["target"] = []map[string]interface{}{{"account_id": "222222222222"}, {"account_id": "444444444444", "external_id": "amicrypt-demo"}}
			art := fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI}
			mark := srv.Emulator().CheckMark()
			const leaseFor = 300 * time.Millisecond
			dead := runKilled(t, srv, raw, leaseFor, art, st.at)
			time.Sleep(leaseFor + 100*time.Millisecond)

			ui := newUI()
			out, _, _, err := newPP(t, raw).PostProcess(context.Background(), ui, art)
			if err != nil {
				t.Fatalf("rerun: %v\n--- dead run:\n%s\n--- rerun:\n%s", err, dead.buf, ui.buf)
			}
			if got := len(strings.Split(out.Id(), ",")); got != 4 {
				t.Errorf("rerun artifact %q, want 4 copies", out.Id())
			}
			said, _, _ := strings.Cut(ui.buf.String(), "preflight passed") // what it took back
			if took := strings.Contains(said, "taking back what run "); took != st.lease {
				t.Errorf("the rerun took back a dead run's lease: %v, want %v:\n%s", took, st.lease, said)
			}
			if took := strings.Contains(said, "  retire grant: "); took != st.grants {
				t.Errorf("the rerun retired a dead run's grant: %v, want %v:\n%s", took, st.grants, said)
			}
			assertNothingLeftInSource(t, srv, "us-east-1", srcAMI)
			assertNoLeaseTags(t, srv, "us-east-1", srcAMI)
			assertOneCopyPerDest(t, srv, srcAMI, []string{"222222222222", "444444444444"}, []string{"us-east-1", "eu-west-1"})
			check(t, srv, mark)
		})
	}
}

// TestKilledRunOfARebuiltAMI: the builder makes a new source AMI for every
// run, so the rerun after a kill copies another AMI under the same names.
// With on_failure = "rollback" the dead run's unreported copies are removed
// (as it would have done) and the rerun succeeds; with "keep" they are kept
// and reported, and the one holding a name the rerun needs is a preflight
// problem naming it.
func TestKilledRunOfARebuiltAMI(t *testing.T) {
	for _, onFailure := range []string{OnFailureRollback, OnFailureKeep} {
		t.Run(onFailure, func(t *testing.T) {
			srv := emu(t, awsemu.Options{})
			first := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
			raw := baseConfig(t)
			raw["on_failure"] = onFailure
			raw["ami_name"] = "app-{{ .Account }}" // fixed across builds
			raw["regions"] = []string{"us-east-1"}
			raw["target"] = []map[string]interface{}{{"account_id": "222222222222"}, {"account_id": "333333333333"}}
			mark := srv.Emulator().CheckMark()
			const leaseFor = 300 * time.Millisecond
			dead := runKilled(t, srv, raw, leaseFor, fakeArtifact{"amicrypt.ebs", "us-east-1:" + first}, "cleaning up:")
			time.Sleep(leaseFor + 100*time.Millisecond)

			second := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
			ui := newUI()
			_, _, _, err := newPP(t, raw).PostProcess(context.Background(), ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + second})
			// Whatever the outcome, the dead run's loan is taken back.
			assertNothingLeftInSource(t, srv, "us-east-1", first)
			assertNoLeaseTags(t, srv, "us-east-1", first)
			assertNothingLeftInSource(t, srv, "us-east-1", second)
			switch onFailure {
			case OnFailureRollback:
				if err != nil {
					t.Fatalf("rerun: %v\n--- dead run:\n%s\n--- rerun:\n%s", err, dead.buf, ui.buf)
				}
				if !strings.Contains(ui.buf.String(), "a copy of "+first+" that a killed run of this template made and never reported") {
					t.Errorf("the rerun does not report removing the dead run's copies:\n%s", ui.buf)
				}
				assertOneCopyPerDest(t, srv, second, []string{"222222222222", "333333333333"}, []string{"us-east-1"})
				assertCopies(t, srv, first, []string{"222222222222", "333333333333"}, []string{"us-east-1"}, 0, true)
				check(t, srv, mark)
			case OnFailureKeep:
				var perr *PreflightError
				if !asPreflight(err, &perr) {
					t.Fatalf("rerun error %v, want a preflight problem about the dead run's copies\n%s", err, ui.buf)
				}
				msg := err.Error()
				if !strings.Contains(msg, "a killed run of this template made and never reported") || !strings.Contains(msg, "on_failure") {
					t.Errorf("the problem does not explain the dead run's copy and the fix:\n%s", msg)
				}
				assertCopies(t, srv, first, []string{"222222222222", "333333333333"}, []string{"us-east-1"}, 1, false)
				// Kept copies aren't leftovers; what was lent is.
				rep := srv.Emulator().Check(awsemu.CheckOptions{SinceSeq: mark})
				for _, f := range rep.Findings {
					if f.Check != checker.OrphanSnapshot {
						t.Errorf("finding after keep: %s", f.Message)
					}
				}
			}
		})
	}
}

// TestLiveRunIsLeftAlone: a run that renews its lease is not taken for dead
// by another run that starts meanwhile from the same source account, even
// long after the first lease it wrote has run out.
func TestLiveRunIsLeftAlone(t *testing.T) {
	srv := emu(t, awsemu.Options{TimeScale: 0.01}) // copies take seconds
	srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
	raw := baseConfig(t)
	raw["regions"] = []string{"eu-west-1"}
	raw["target"] = []map[string]interface{}{{"account_id": "222222222222"}}
	mark := srv.Emulator().CheckMark()
	first := newPP(t, raw)
	first.config.leaseDuration = 250 * time.Millisecond
	started := make(chan struct{})
	var once sync.Once
	ui1 := &hookUI{testUI: newUI(), hook: func(s string) {
		if strings.Contains(s, ": copying ") {
			once.Do(func() { close(started) })
		}
	}}
	var firstErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _, firstErr = first.PostProcess(context.Background(), ui1, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI})
	}()
	<-started
	time.Sleep(600 * time.Millisecond) // more than two leases
	raw2 := baseConfig(t)
	raw2["regions"] = []string{"us-east-1"}
	raw2["target"] = []map[string]interface{}{{"account_id": "333333333333"}}
	ui2 := newUI()
	if _, _, _, err := newPP(t, raw2).PostProcess(context.Background(), ui2, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI}); err != nil {
		t.Fatalf("second run: %v\n%s", err, ui2.buf)
	}
	if strings.Contains(ui2.buf.String(), "taking back what run") {
		t.Errorf("the second run took the live first run for dead:\n%s", ui2.buf)
	}
	<-done
	if firstErr != nil {
		t.Fatalf("first run: %v\n%s", firstErr, ui1.buf)
	}
	renewals := 0
	for _, e := range srv.Emulator().Audit(awsemu.AuditFilter{Action: "CreateTags", Account: srcAccount, SinceSeq: mark}) {
		if e.Outcome == "ok" && strings.Contains(e.Params["Tag.1.Key"], TagLeasePrefix) {
			renewals++
		}
	}
	if renewals < 3 {
		t.Errorf("%d lease writes in the source account; a run that outlives its lease must renew it", renewals)
	}
	assertNothingLeftInSource(t, srv, "us-east-1", srcAMI)
	assertNoLeaseTags(t, srv, "us-east-1", srcAMI)
	check(t, srv, mark)
}

// TestTakesBackLegacyGrants: grants named by amicrypt-copy before leases
// (amicrypt-copy-AMI-ACCOUNT[-launch][-volume]) that are older than a lease
// are a dead run's: taken back with the permissions their names record; a
// share no grant claims is left alone.
func TestTakesBackLegacyGrants(t *testing.T) {
	srv := emu(t, awsemu.Options{})
	srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
	ctx := context.Background()
	cfg := srv.Config(ctx, srcAccount, "us-east-1")
	client := ec2.NewFromConfig(cfg)
	kc := kms.NewFromConfig(cfg)
	key, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-build")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := ebs.FindImageByID(ctx, client, srcAMI)
	if err != nil {
		t.Fatal(err)
	}
	snap := ebs.ImageSnapshotIDs(img)[0]
	for acct, suffix := range map[string]string{"222222222222": "-launch-volume", "444444444444": "-launch"} {
		if _, err := kc.CreateGrant(ctx, &kms.CreateGrantInput{
			KeyId: key.KeyMetadata.Arn, GranteePrincipal: aws.String("arn:aws:iam::" + acct + ":role/amicrypt-copy"),
			Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt}, Name: aws.String("amicrypt-copy-" + srcAMI + "-" + acct + suffix),
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ebs.ShareImage(ctx, client, srcAMI, ebs.Sharing{Users: []string{"222222222222", "333333333333", "444444444444"}}); err != nil {
		t.Fatal(err)
	}
	if err := ebs.ShareSnapshot(ctx, client, snap, []string{"222222222222", "333333333333"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)

	raw := baseConfig(t)
	raw["regions"] = []string{"us-east-1"}
	raw["target"] = []map[string]interface{}{{"account_id": "222222222222"}}
	ui := newUI()
	p := newPP(t, raw)
	p.config.leaseDuration = 100 * time.Millisecond
	if _, _, _, err := p.PostProcess(ctx, ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI}); err != nil {
		t.Fatalf("PostProcess: %v\n%s", err, ui.buf)
	}
	if n := strings.Count(ui.buf.String(), "taking back what an earlier version's run lent"); n != 2 {
		t.Errorf("%d legacy grants taken back, want both:\n%s", n, ui.buf)
	}
	assertSharedOnlyWith(t, client, srcAMI, snap, "333333333333")
	grants, err := kc.ListGrants(ctx, &kms.ListGrantsInput{KeyId: key.KeyMetadata.Arn})
	if err != nil {
		t.Fatal(err)
	}
	if len(grants.Grants) != 0 {
		t.Errorf("%d grants left on the source key: %+v", len(grants.Grants), grants.Grants)
	}
}

// hookUI calls hook with every line said.
type hookUI struct {
	*testUI
	hook func(string)
}

func (u *hookUI) Say(s string) {
	u.testUI.Say(s)
	u.hook(s)
}

func asPreflight(err error, target **PreflightError) bool { return errors.As(err, target) }

// assertNoLeaseTags checks no lease tag is left on the AMI or its snapshots.
func assertNoLeaseTags(t *testing.T, srv *emutest.Server, region, amiID string) {
	t.Helper()
	ctx := context.Background()
	client := ec2.NewFromConfig(srv.Config(ctx, srcAccount, region))
	imgs, err := ebs.FindOwnImagesWithTagKey(ctx, client, TagLeasePrefix+"*")
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		t.Errorf("image %s still carries a lease: %v", aws.ToString(img.ImageId), ebs.TagMap(img.Tags))
	}
	snaps, err := ebs.FindOwnSnapshotsWithTagKey(ctx, client, TagLeasePrefix+"*")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		t.Errorf("snapshot %s still carries a lease: %v", aws.ToString(s.SnapshotId), ebs.TagMap(s.Tags))
	}
}

// assertOneCopyPerDest checks each account/region holds exactly one live
// copy of srcAMI, reported (not marked unreported).
func assertOneCopyPerDest(t *testing.T, srv *emutest.Server, srcAMI string, accounts, regions []string) {
	t.Helper()
	assertCopies(t, srv, srcAMI, accounts, regions, 1, true)
}

// assertCopies checks each account/region holds n live copies of srcAMI,
// and with reported that none is still marked unreported.
func assertCopies(t *testing.T, srv *emutest.Server, srcAMI string, accounts, regions []string, n int, reported bool) {
	t.Helper()
	ctx := context.Background()
	for _, a := range accounts {
		for _, r := range regions {
			client := ec2.NewFromConfig(srv.Config(ctx, a, r))
			imgs, err := ebs.FindImagesByFilter(ctx, client, []string{"self"}, map[string]string{"tag:" + TagSourceAMI: srcAMI})
			if err != nil {
				t.Fatal(err)
			}
			live := 0
			for _, img := range imgs {
				if img.State == ec2types.ImageStateDeregistered {
					continue
				}
				live++
				if v, ok := ebs.TagMap(img.Tags)[TagUnreported]; ok && reported {
					t.Errorf("%s/%s: copy %s is still tagged %s=%s after a run that reported it", a, r, aws.ToString(img.ImageId), TagUnreported, v)
				}
			}
			if live != n {
				t.Errorf("%s/%s holds %d copies of %s, want %d", a, r, live, srcAMI, n)
			}
		}
	}
}
