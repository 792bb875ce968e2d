package copy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

func defaultWorld(t *testing.T) *awsemu.World {
	t.Helper()
	w, err := awsemu.DefaultWorld()
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func account(w *awsemu.World, id string) *awsemu.WorldAccount {
	for i := range w.Accounts {
		if w.Accounts[i].ID == id {
			return &w.Accounts[i]
		}
	}
	panic("no account " + id)
}

// mutatingCalls counts the calls since mark that would change something
// shared: the share, grant and copy calls.
func mutatingCalls(srv *emutest.Server, mark int) int {
	n := 0
	for _, action := range []string{"ModifyImageAttribute", "ModifySnapshotAttribute", "CopyImage", "RetireGrant", "CreateKey"} {
		n += callsSince(srv, mark, action)
	}
	for _, e := range srv.Emulator().Audit(awsemu.AuditFilter{Action: "CreateGrant", SinceSeq: mark}) {
		if e.Outcome == "ok" && !dryRun(e) {
			n++
		}
	}
	return n
}

func TestPreflightReportsEveryProblemAndChangesNothing(t *testing.T) {
	w := defaultWorld(t)
	// The source principal is the role amicrypt-build, which may not create
	// grants; the user that made the source AMI may.
	src := account(w, srcAccount)
	for i := range src.Roles {
		if src.Roles[i].Name == "amicrypt-build" {
			src.Roles[i].Deny = append(src.Roles[i].Deny, "kms:CreateGrant")
		}
	}
	account(w, "333333333333").Keys = append(account(w, "333333333333").Keys,
		awsemu.WorldKey{Region: "us-east-1", Aliases: []string{"alias/disabled-target"}, State: "Disabled"})
	srv := emu(t, awsemu.Options{World: w})
	goodAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
	managedAMI := makeSourceAMI(t, srv, "us-west-2", "ami-0a1b2c3d4e5f60002", "")

	raw := baseConfig(t)
	raw["ami_name"] = "copy-{{ .SourceAMI }}-{{ .Account }}"
	raw["assume_role"] = map[string]interface{}{"role_arn": "arn:aws:iam::111111111111:role/amicrypt-build"}
	// 222222222222's own aws/ebs key in us-west-2: its account and region
	// are right, but it is AWS-managed.
	managed, err := kms.NewFromConfig(srv.Config(context.Background(), "222222222222", "us-west-2")).DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String("alias/aws/ebs")})
	if err != nil {
		t.Fatal(err)
	}
	raw["target"] = []map[string]interface{}{
		{"account_id": "222222222222", "regions": []string{"us-east-1", "ap-southeast-3", "us-west-2"},
			"region_kms_key_ids": map[string]string{"us-west-2": aws.ToString(managed.KeyMetadata.Arn)}},
		{"account_id": "333333333333", "kms_key_id": "alias/disabled-target", "region_kms_key_ids": map[string]string{"eu-west-1": "alias/missing"}},
		// A key of the right account, but of another region than its copies.
		{"account_id": "444444444444", "external_id": "wrong", "kms_key_id": "arn:aws:kms:us-west-2:444444444444:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},
	}
	// Another AMI already has the name 222222222222's copy would take.
	other := ec2.NewFromConfig(srv.Config(context.Background(), "222222222222", "us-east-1"))
	if _, err := other.CopyImage(context.Background(), &ec2.CopyImageInput{
		SourceImageId: aws.String(publicAMI), SourceRegion: aws.String("us-east-1"), Encrypted: aws.Bool(true),
		Name: aws.String("copy-" + goodAMI + "-222222222222"),
	}); err != nil {
		t.Fatal(err)
	}

	mark := srv.Emulator().CheckMark()
	ui := newUI()
	_, _, _, err = newPP(t, raw).PostProcess(context.Background(), ui, fakeArtifact{"mitchellh.amazonebs", "us-east-1:" + goodAMI + ",us-west-2:" + managedAMI})
	var perr *PreflightError
	if !errors.As(err, &perr) {
		t.Fatalf("PostProcess error %v, want a *PreflightError\n%s", err, ui.buf)
	}
	want := []struct{ target, check, problem string }{
		{"222222222222/ap-southeast-3", "region", "not enabled"},
		{"222222222222/us-east-1", "AMI name", "already in use"},
		{"222222222222/us-west-2", "target key", "AWS-managed"},
		{"444444444444/us-east-1", "target key", "lives in us-west-2, not us-east-1"},
		{"444444444444/eu-west-1", "target key", "lives in us-west-2, not eu-west-1"},
		{"333333333333/us-east-1", "target key", "disabled"},
		{"333333333333/eu-west-1", "target key", "not found"},
		{"444444444444", "assume role", "can't assume"},
		{"source us-west-2", "source key", "Snapshots encrypted with the AWS Managed CMK can't be shared"},
		{"222222222222", "source key grant", "may not create a grant"},
		{"333333333333", "source key grant", "may not create a grant"},
	}
	for _, w := range want {
		found := false
		for _, p := range perr.Problems {
			if p.Target == w.target && p.Check == w.check && strings.Contains(p.Problem, w.problem) && p.Fix != "" {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem %+v with a fix in:\n%s", w, problemTable(perr.Problems))
		}
	}
	if len(perr.Problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(perr.Problems), len(want), problemTable(perr.Problems))
	}
	msg := err.Error()
	for _, col := range []string{"TARGET", "CHECK", "PROBLEM", "FIX", "transit_kms_key_id"} {
		if !strings.Contains(msg, col) {
			t.Errorf("report lacks %q:\n%s", col, msg)
		}
	}
	if n := mutatingCalls(srv, mark); n != 0 {
		t.Errorf("preflight made %d changing calls; it must change nothing", n)
	}
	check(t, srv, mark)
}

func TestAsyncCopyFailure(t *testing.T) {
	for _, onFailure := range []string{OnFailureRollback, OnFailureKeep} {
		t.Run(onFailure, func(t *testing.T) {
			// The copy fails each of the copyAttempts times it is made.
			faults := &awsemu.FaultProfile{Rules: []awsemu.FaultRule{{Kind: awsemu.FaultCopyFails, Action: "CopyImage", Account: "333333333333", Region: "eu-west-1", Max: copyAttempts}}}
			srv := emu(t, awsemu.Options{Faults: faults})
			srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
			raw := baseConfig(t)
			raw["on_failure"] = onFailure
			manifestPath := raw["manifest_output"].(string)
			mark := srv.Emulator().CheckMark()
			ui := newUI()
			art, _, _, err := newPP(t, raw).PostProcess(context.Background(), ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI})
			if err == nil || !strings.Contains(err.Error(), "333333333333/eu-west-1") {
				t.Fatalf("PostProcess error = %v, want the failed copy named\n%s", err, ui.buf)
			}
			assertNothingLeftInSource(t, srv, "us-east-1", srcAMI)

			var m Manifest
			b, rerr := os.ReadFile(manifestPath)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if len(m.Copies) != 8 || m.Error == "" {
				t.Fatalf("manifest lists %d copies, error %q", len(m.Copies), m.Error)
			}
			var failed Copy
			for _, c := range m.Copies {
				if c.Account == "333333333333" && c.Region == "eu-west-1" {
					failed = c
				}
			}
			if failed.ImageID == "" || failed.Reason == "" {
				t.Errorf("the failed copy is not reported with its AMI and reason: %+v", failed)
			}

			live := 0
			for _, c := range m.Copies {
				if c.ImageID == "" {
					continue
				}
				client := ec2.NewFromConfig(srv.Config(context.Background(), c.Account, c.Region))
				img, ferr := ebs.FindImageByID(context.Background(), client, c.ImageID)
				if ferr == nil && img.State != ec2types.ImageStateDeregistered {
					live++
				}
			}
			switch onFailure {
			case OnFailureRollback:
				if live != 0 {
					t.Errorf("%d copies left after rollback", live)
				}
				if m.Succeeded != 0 {
					t.Errorf("manifest says %d succeeded after a rollback", m.Succeeded)
				}
				check(t, srv, mark)
				// Rerun once the fault is gone: the same ClientTokens led to
				// the rolled-back copies, so the run must take fresh ones.
				ui2 := newUI()
				art2, _, _, err := newPP(t, baseConfig(t)).PostProcess(context.Background(), ui2, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI})
				if err != nil {
					t.Fatalf("rerun after rollback: %v\n%s", err, ui2.buf)
				}
				for _, id := range strings.Split(art2.Id(), ",") {
					p := strings.Split(id, ":")
					assertCopy(t, srv, p[0], p[1], p[2], srcAMI)
				}
			case OnFailureKeep:
				if live != 8 || m.Succeeded != 7 || m.Failed != 1 {
					t.Errorf("keep: %d copies live, manifest %d ok / %d failed; want 8 live, 7 ok, 1 failed", live, m.Succeeded, m.Failed)
				}
				if art == nil || len(strings.Split(art.Id(), ",")) != 8 {
					t.Errorf("keep: artifact must list the kept copies, got %v", art)
				}
				// Finish only the fan-out, behind the null builder: the seven
				// kept copies are reused, the failed one replaced, none doubled.
				raw2 := baseConfig(t)
				raw2["packer_builder_type"] = "null"
				raw2["source_ami"] = srcAMI
				mark2 := srv.Emulator().CheckMark()
				ui2 := newUI()
				art2, _, _, err := newPP(t, raw2).PostProcess(context.Background(), ui2, nullArtifact)
				if err != nil {
					t.Fatalf("rerun through source_ami: %v\n%s", err, ui2.buf)
				}
				m2 := readManifest(t, raw2["manifest_output"].(string))
				reused := 0
				for _, c := range m2.Copies {
					if c.Reused {
						reused++
					}
					if !c.Verified || c.State != "available" {
						t.Errorf("rerun: %s/%s is %s, verified %v", c.Account, c.Region, c.State, c.Verified)
					}
				}
				if reused != 7 || !strings.Contains(ui2.buf.String(), "removed "+failed.ImageID+", a failed copy an earlier run kept") {
					t.Errorf("rerun reused %d copies (want 7) and must say it removed the failed %s:\n%s", reused, failed.ImageID, ui2.buf)
				}
				perDest := map[string]int{}
				for _, c := range m2.Copies {
					client := ec2.NewFromConfig(srv.Config(context.Background(), c.Account, c.Region))
					imgs, err := ebs.FindImagesByFilter(context.Background(), client, []string{"self"}, map[string]string{"tag:" + TagSourceAMI: srcAMI})
					if err != nil {
						t.Fatal(err)
					}
					for _, img := range imgs {
						if img.State != ec2types.ImageStateDeregistered {
							perDest[c.Account+"/"+c.Region]++
						}
					}
				}
				for dest, n := range perDest {
					if n != 1 {
						t.Errorf("%s holds %d copies of %s after the rerun, want 1", dest, n, srcAMI)
					}
				}
				if len(perDest) != 8 || len(strings.Split(art2.Id(), ",")) != 8 {
					t.Errorf("rerun: copies in %d destinations, artifact %q; want 8", len(perDest), art2.Id())
				}
				check(t, srv, mark2)
			}
		})
	}
}

// TestTransitKeyPath: an AMI under aws/ebs is re-encrypted in the source
// account first; the transit copy is deleted at the end. A transit copy a
// killed run left (and shared) is reused rather than blocking the name.
func TestTransitKeyPath(t *testing.T) {
	for _, leftByKilledRun := range []bool{false, true} {
		t.Run(map[bool]string{false: "fresh", true: "left by a killed run"}[leftByKilledRun], func(t *testing.T) {
			srv := emu(t, awsemu.Options{})
			ctx := context.Background()
			managedAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "") // under aws/ebs
			srcClient := ec2.NewFromConfig(srv.Config(ctx, srcAccount, "us-east-1"))
			stale := ""
			if leftByKilledRun {
				out, err := srcClient.CopyImage(ctx, &ec2.CopyImageInput{
					SourceImageId: aws.String(managedAMI), SourceRegion: aws.String("us-east-1"),
					Name: aws.String("amicrypt-transit-" + managedAMI), Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/amicrypt-build"),
					TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeImage, Tags: ebs.Tags(map[string]string{TagTransitFor: managedAMI})}},
				})
				if err != nil {
					t.Fatal(err)
				}
				stale = aws.ToString(out.ImageId)
				if _, err := ebs.WaitImageAvailable(ctx, srcClient, awsauth.NewPolling(5*time.Millisecond, 2000), stale, nil); err != nil {
					t.Fatal(err)
				}
				if err := ebs.ShareImage(ctx, srcClient, stale, ebs.Sharing{Users: []string{"222222222222"}}); err != nil {
					t.Fatal(err)
				}
			}
			raw := baseConfig(t)
			raw["transit_kms_key_id"] = "alias/amicrypt-build"
			raw["target"] = []map[string]interface{}{{"account_id": "222222222222"}, {"account_id": "444444444444", "external_id": "amicrypt-demo"}}
			mark := srv.Emulator().CheckMark()
			ui := newUI()
			art, _, _, err := newPP(t, raw).PostProcess(ctx, ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + managedAMI})
			if err != nil {
				t.Fatalf("PostProcess: %v\n%s", err, ui.buf)
			}
			ids := strings.Split(art.Id(), ",")
			if len(ids) != 4 {
				t.Fatalf("artifact %q, want 4 copies", art.Id())
			}
			for _, id := range ids {
				p := strings.Split(id, ":")
				assertCopy(t, srv, p[0], p[1], p[2], managedAMI)
			}
			transit, err := ebs.FindImagesByName(ctx, srcClient, "self", "amicrypt-transit-"+managedAMI)
			if err != nil {
				t.Fatal(err)
			}
			for _, img := range transit {
				if img.State != ec2types.ImageStateDeregistered {
					t.Errorf("transit copy %s left %s", aws.ToString(img.ImageId), img.State)
				}
			}
			if !strings.Contains(ui.buf.String(), "transit") {
				t.Errorf("UI does not mention the transit copy:\n%s", ui.buf)
			}
			if !leftByKilledRun {
				// A rerun finds every copy: no transit copy, no copy at all.
				rerun := srv.Emulator().CheckMark()
				ui2 := newUI()
				if _, _, _, err := newPP(t, raw).PostProcess(ctx, ui2, fakeArtifact{"amicrypt.ebs", "us-east-1:" + managedAMI}); err != nil {
					t.Fatalf("rerun: %v\n%s", err, ui2.buf)
				}
				if n := callsSince(srv, rerun, "CopyImage"); n != 0 {
					t.Errorf("the rerun made %d CopyImage calls, want 0 (every copy exists, so no transit copy either)\n%s", n, ui2.buf)
				}
			}
			if leftByKilledRun {
				if !strings.Contains(ui.buf.String(), "transit copy "+stale+" was left by an earlier run; reusing it") {
					t.Errorf("the stale transit copy %s was not reused:\n%s", stale, ui.buf)
				}
				if n := callsIn(srv, mark, "CopyImage", srcAccount); n != 0 {
					t.Errorf("%d CopyImage calls in the source account, want 0: the stale transit copy serves", n)
				}
			}
			check(t, srv, mark)
		})
	}
}

// interruptUI cancels the run as soon as the first copy has started, as
// Ctrl-C does to Packer's context.
type interruptUI struct {
	*testUI
	once   sync.Once
	cancel context.CancelFunc
}

func (u *interruptUI) Say(s string) {
	u.testUI.Say(s)
	if strings.Contains(s, ": copying ") {
		u.once.Do(u.cancel)
	}
}

func TestInterruptedRunCleansUp(t *testing.T) {
	for _, onFailure := range []string{OnFailureRollback, OnFailureKeep} {
		t.Run(onFailure, func(t *testing.T) {
			// Slow copies, so they are in flight when the run is cancelled.
			srv := emu(t, awsemu.Options{TimeScale: 0.01})
			srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
			raw := baseConfig(t)
			raw["on_failure"] = onFailure
			manifestPath := raw["manifest_output"].(string)
			mark := srv.Emulator().CheckMark()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ui := &interruptUI{testUI: newUI(), cancel: cancel}
			_, _, _, err := newPP(t, raw).PostProcess(ctx, ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("PostProcess error = %v, want context.Canceled\n%s", err, ui.buf)
			}
			assertNothingLeftInSource(t, srv, "us-east-1", srcAMI)
			var m Manifest
			b, _ := os.ReadFile(manifestPath)
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("manifest: %v", err)
			}
			inFlight := 0
			for _, c := range m.Copies {
				if c.ImageID != "" && c.State != "available" {
					inFlight++
				}
			}
			if inFlight == 0 {
				t.Fatalf("no copy was in flight when the run was interrupted: %+v", m.Copies)
			}
			for _, c := range m.Copies {
				if c.State == "available" {
					continue
				}
				if c.Reason == "" {
					t.Errorf("copy %s/%s is %s without a reason", c.Account, c.Region, c.State)
				}
				if onFailure == OnFailureKeep && c.ImageID != "" && c.State == "rolled back" {
					t.Errorf("keep rolled back %s", c.ImageID)
				}
			}
			if onFailure == OnFailureRollback {
				for _, c := range m.Copies {
					if c.ImageID != "" && c.State != "rolled back" {
						t.Errorf("copy %s in %s/%s is %s after an interrupted run with rollback", c.ImageID, c.Account, c.Region, c.State)
					}
				}
				check(t, srv, mark)
			}
		})
	}
}
