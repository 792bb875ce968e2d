//go:build e2e

package e2e

// amicrypt-copy stopped at each step by SIGINT, SIGTERM and SIGKILL with the
// real Packer, and what it leaves; a killed run of a rebuilt AMI; and no
// secret the emulator issued in anything a run writes.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// pluginsBlock requires the installed amicrypt plugin.
const pluginsBlock = `packer {
  required_plugins {
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = ">= 0.1.0"
    }
  }
}
`

// leaseSeconds is the lease_duration of the templates here: a killed run's
// loan is taken back by a run that starts this long after.
const leaseSeconds = 5

// existingCopyTemplate copies an existing AMI (%s) behind the null builder
// into two accounts × two regions.
const existingCopyTemplate = pluginsBlock + `
source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]
  post-processor "amicrypt-copy" {
    region          = "us-east-1"
    source_ami      = "%s"
    role_name       = "amicrypt-copy"
    kms_key_id      = "alias/amicrypt-target"
    regions         = ["us-east-1", "eu-west-1"]
    lease_duration  = "%ds"
    manifest_output = "copies.json"
    target { account_id = "222222222222" }
    target {
      account_id  = "444444444444"
      external_id = "amicrypt-demo"
    }
  }
}
`

// makeSourceAMI makes an AMI of the build account encrypted under
// alias/amicrypt-build, as a build would have.
func makeSourceAMI(t *testing.T, emu *Emulator) string {
	t.Helper()
	client, _ := emuClients(t, emu, BuildRegion)
	ctx := context.Background()
	out, err := client.CopyImage(ctx, &ec2.CopyImageInput{
		SourceImageId: aws.String("ami-0a1b2c3d4e5f60001"), SourceRegion: aws.String(BuildRegion),
		Name: aws.String(fmt.Sprintf("golden-%d", time.Now().UnixNano())), Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/amicrypt-build"),
	})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.ImageId)
	for deadline := time.Now().Add(time.Minute); ; {
		img, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if err == nil && len(img.Images) == 1 && img.Images[0].State == ec2types.ImageStateAvailable {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("source AMI %s not available: %v", id, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// interruptStep is a point of an amicrypt-copy run, held open by a fault
// long enough for a signal to land there, and recognised in the audit.
type interruptStep struct {
	name      string
	faults    string
	timeScale float64
	at        func(e awsemu.AuditEntry) bool
	// lent: at this point the run has lent something (a lease, a grant).
	lent bool
}

func notDryRun(e awsemu.AuditEntry) bool {
	return e.Params["DryRun"] != "true" && e.Outcome != "DryRunOperation" && e.Outcome != "DryRunOperationException"
}

var interruptSteps = []interruptStep{
	{name: "preflight", // the target roles' DescribeRegions is throttled: the SDK backs off
		faults: `{"rules": [{"kind": "throttle", "action": "DescribeRegions", "nth": [1, 2, 3, 4]}]}`,
		at: func(e awsemu.AuditEntry) bool {
			return e.Action == "DescribeRegions" && e.Outcome == "RequestLimitExceeded"
		}},
	{name: "lend", lent: true, // the launch permission (after the lease and the grants) answers InternalError
		faults: `{"rules": [{"kind": "internal-error", "action": "ModifyImageAttribute", "account": "111111111111", "nth": [2, 3, 4, 5]}]}`,
		at: func(e awsemu.AuditEntry) bool {
			return e.Action == "ModifyImageAttribute" && e.Outcome == "InternalError" && notDryRun(e)
		}},
	{name: "copies in flight", lent: true, timeScale: 0.02,
		at: func(e awsemu.AuditEntry) bool {
			return e.Action == "CopyImage" && e.Outcome == "ok" && notDryRun(e) && e.Account != BuildAccount
		}},
	{name: "cleanup", lent: true, // retiring the first grant answers KMSInternalException (the 1st RetireGrant is preflight's DryRun)
		faults: `{"rules": [{"kind": "internal-error", "action": "RetireGrant", "nth": [2, 3, 4, 5]}]}`,
		at: func(e awsemu.AuditEntry) bool {
			return e.Action == "RetireGrant" && e.Outcome == "KMSInternalException" && notDryRun(e)
		}},
}

// TestCopyInterruptMatrix stops an amicrypt-copy run with SIGINT (Ctrl-C),
// SIGTERM (a CI runner stopping the job) and SIGKILL (a lost runner, the
// OOM killer) at each step: preflight, lending, copies in flight, cleanup.
// After SIGINT and SIGTERM the run itself leaves nothing lent and no copy
// unreported. After SIGKILL, the next run of the same template, once the
// dead run's lease has expired, leaves nothing of it behind and makes no
// copy twice. The invariant checker proves both.
func TestCopyInterruptMatrix(t *testing.T) {
	env := New(t)
	for k, v := range offlineProxy {
		env.Vars[k] = v
	}
	env.Vars["AWS_POLL_DELAY_SECONDS"] = "0.05"
	for _, step := range interruptSteps {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
			t.Run(step.name+"/"+sig.String(), func(t *testing.T) {
				opts := EmulatorOptions{TimeScale: step.timeScale}
				if step.faults != "" {
					opts.Faults = WriteFile(t, t.TempDir(), "faults.json", step.faults)
				}
				emu := env.StartEmulator(t, opts)
				srcAMI := makeSourceAMI(t, emu)
				dir := t.TempDir()
				WriteFile(t, dir, "copy.pkr.hcl", fmt.Sprintf(existingCopyTemplate, srcAMI, leaseSeconds))
				mark := emu.Mark(t)

				run := env.StartPacker(t, dir, "build", "-color=false", ".")
				emu.WaitForAudit(t, mark, 3*time.Minute, step.at)
				if err := run.Signal(sig); err != nil {
					t.Fatal(err)
				}
				res := run.Wait(t)
				if sig != syscall.SIGKILL {
					if res.ExitCode == 0 && step.name != "cleanup" {
						t.Errorf("packer build exited 0 after %s during %s:\n%s", sig, step.name, res.Output)
					}
					assertNothingLent(t, emu, mark, res.Output)
					assertCopiesReported(t, emu, filepath.Join(dir, "copies.json"), res.Output)
					// Stopped before the copies ended, the run rolls back; stopped in
					// its cleanup, after every copy succeeded, it keeps and reports them.
					want := 0
					if step.name == "cleanup" {
						want = 4
					}
					if n := len(liveCopies(t, emu)); n != want {
						t.Errorf("%d copies live after %s during %s, want %d:\n%s", n, sig, step.name, want, res.Output)
					}
					return
				}
				// The dead run could not clean up. The next run of the template
				// takes back what it lent, once its lease has expired.
				time.Sleep((leaseSeconds + 1) * time.Second)
				res2 := env.Packer(t, dir, "build", "-color=false", ".")
				if res2.ExitCode != 0 {
					t.Fatalf("the run after SIGKILL during %s failed: exit %d\n%s", step.name, res2.ExitCode, res2.Output)
				}
				if took := strings.Contains(res2.Output, "taking back what run "); took != step.lent {
					t.Errorf("the next run took back a dead run's loan: %v, want %v\n%s", took, step.lent, res2.Output)
				}
				assertNothingLent(t, emu, mark, res2.Output)
				assertCopiesReported(t, emu, filepath.Join(dir, "copies.json"), res2.Output)
				perDest := map[string]int{}
				for _, dest := range liveCopyDests(t, emu) {
					perDest[dest]++
				}
				if len(perDest) != 4 {
					t.Errorf("copies live in %d destinations, want 4: %v", len(perDest), perDest)
				}
				for dest, n := range perDest {
					if n != 1 {
						t.Errorf("%s holds %d copies after the run that followed the kill, want 1", dest, n)
					}
				}
			})
		}
	}
}

// TestCopyKilledThenRebuilt: amicrypt-ebs into amicrypt-copy, killed with
// copies in flight. The builder makes a new AMI on the next run, with the
// same copy names: the rerun takes back the dead run's grants and
// permissions, removes its unreported copies of the old AMI (on_failure =
// "rollback"), and copies the new one.
func TestCopyKilledThenRebuilt(t *testing.T) {
	env := New(t)
	for k, v := range offlineProxy {
		env.Vars[k] = v
	}
	env.Vars["AWS_POLL_DELAY_SECONDS"] = "0.05"
	emu := env.StartEmulator(t, EmulatorOptions{TimeScale: 0.02})
	dir := t.TempDir()
	WriteFile(t, dir, "rebuild.pkr.hcl", pluginsBlock+fmt.Sprintf(`
locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "amicrypt-ebs" "app" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "app-${local.stamp}"
}

build {
  sources = ["source.amicrypt-ebs.app"]
  post-processor "amicrypt-copy" {
    role_name       = "amicrypt-copy"
    kms_key_id      = "alias/amicrypt-target"
    regions         = ["us-east-1", "eu-west-1"]
    ami_name        = "app-{{ .Account }}"
    lease_duration  = "%ds"
    manifest_output = "copies.json"
    target { account_id = "222222222222" }
    target {
      account_id  = "444444444444"
      external_id = "amicrypt-demo"
    }
  }
}
`, leaseSeconds))
	mark := emu.Mark(t)
	run := env.StartPacker(t, dir, "build", "-color=false", ".")
	emu.WaitForAudit(t, mark, 5*time.Minute, interruptSteps[2].at)
	if err := run.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	run.Wait(t)
	time.Sleep((leaseSeconds + 1) * time.Second)
	res := env.Packer(t, dir, "build", "-color=false", ".")
	if res.ExitCode != 0 {
		t.Fatalf("the rebuild after SIGKILL failed: exit %d\n%s", res.ExitCode, res.Output)
	}
	for _, want := range []string{"taking back what run ", "retire grant: ", "that a killed run of this template made and never reported", "remove copy of a dead run: "} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("the rebuild's output lacks %q:\n%s", want, res.Output)
		}
	}
	assertNothingLent(t, emu, mark, res.Output)
	assertCopiesReported(t, emu, filepath.Join(dir, "copies.json"), res.Output)
	m := readCopyManifest(t, filepath.Join(dir, "copies.json"))
	live := liveCopies(t, emu)
	if len(live) != 4 || m.Succeeded != 4 {
		t.Errorf("%d live copies, %d in the manifest; want exactly the rebuild's 4", len(live), m.Succeeded)
	}
}

// assertNothingLent checks the invariant checker finds nothing lent left
// behind since mark (grants, launch and createVolume permissions), nothing
// unencrypted, no copy under a foreign key, and that no lease tag is left
// in the build account.
func assertNothingLent(t *testing.T, emu *Emulator, mark int, output string) {
	t.Helper()
	rep := emu.Check(t, url.Values{"since_seq": {strconv.Itoa(mark)}})
	if !rep.Pass {
		t.Errorf("invariant checker:\n%s\n--- packer output:\n%s", rep, output)
	}
	client, _ := emuClients(t, emu, BuildRegion)
	ctx := context.Background()
	leased := ec2types.Filter{Name: aws.String("tag-key"), Values: []string{"amicrypt:lease:*"}}
	imgs, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []ec2types.Filter{leased}})
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: []ec2types.Filter{leased}})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs.Images)+len(snaps.Snapshots) > 0 {
		t.Errorf("lease tags left on %d images and %d snapshots", len(imgs.Images), len(snaps.Snapshots))
	}
}

// assertCopiesReported checks every live copy is one the last run's
// manifest reports, and none still carries amicrypt:unreported.
func assertCopiesReported(t *testing.T, emu *Emulator, manifest, output string) {
	t.Helper()
	reported := map[string]bool{}
	if _, err := os.Stat(manifest); err == nil {
		for _, c := range readCopyManifest(t, manifest).Copies {
			if c.ImageID != "" && c.State != "rolled back" {
				reported[c.ImageID] = true
			}
		}
	}
	for id, img := range liveCopies(t, emu) {
		if !reported[id] {
			t.Errorf("copy %s (%s) in %s is not in the manifest\n%s", id, img.State, aws.ToString(img.OwnerId), output)
		}
		for _, tg := range img.Tags {
			if aws.ToString(tg.Key) == "amicrypt:unreported" {
				t.Errorf("copy %s still carries amicrypt:unreported after a run that reported it", id)
			}
		}
	}
}

// TestCopySecretsStayOut runs amicrypt-ebs into amicrypt-copy and Packer's
// manifest with PACKER_LOG=1, watching the emulator's state while it runs,
// and collects every secret the emulator issued or knows: the users' secret
// keys, the role sessions' secret keys and session tokens, the KMS grant
// tokens. None may appear in Packer's log, its output, amicrypt-copy's
// manifest or Packer's manifest (the artifacts and their state).
func TestCopySecretsStayOut(t *testing.T) {
	env := New(t)
	for k, v := range offlineProxy {
		env.Vars[k] = v
	}
	env.Vars["AWS_POLL_DELAY_SECONDS"] = "0.05"
	emu := env.StartEmulator(t, EmulatorOptions{TimeScale: 0.02})
	dir := t.TempDir()
	logPath := filepath.Join(dir, "packer.log")
	env.Vars["PACKER_LOG"] = "1"
	env.Vars["PACKER_LOG_PATH"] = logPath
	WriteFile(t, dir, "secrets.pkr.hcl", pluginsBlock+`
source "amicrypt-ebs" "app" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "secrets-{{timestamp}}"
}

build {
  sources = ["source.amicrypt-ebs.app"]
  post-processors {
    post-processor "amicrypt-copy" {
      role_name       = "amicrypt-copy"
      kms_key_id      = "alias/amicrypt-target"
      regions         = ["us-east-1", "eu-west-1"]
      manifest_output = "copies.json"
      target { account_id = "222222222222" }
      target { account_id = "333333333333" }
      target {
        account_id  = "444444444444"
        external_id = "amicrypt-demo"
      }
    }
    post-processor "manifest" {
      output = "packer-manifest.json"
    }
  }
}
`)
	secrets := map[string]string{} // secret → what it is
	var mu sync.Mutex
	collect := func() {
		var st struct {
			KMS json.RawMessage `json:"kms"`
			STS struct {
				Sessions map[string]struct {
					Secret string `json:"secret_access_key"`
					Token  string `json:"session_token"`
					ARN    string `json:"arn"`
				} `json:"sessions"`
			} `json:"sts"`
		}
		emu.AdminJSON(t, "state", nil, &st)
		mu.Lock()
		defer mu.Unlock()
		for _, s := range st.STS.Sessions {
			secrets[s.Secret] = "secret key of " + s.ARN
			secrets[s.Token] = "session token of " + s.ARN
		}
		var grants []struct {
			ID    string `json:"grant_id"`
			Token string `json:"token"`
		}
		collectGrants(st.KMS, &grants)
		for _, g := range grants {
			if g.Token != "" {
				secrets[g.Token] = "token of grant " + g.ID
			}
		}
	}
	run := env.StartPacker(t, dir, "build", "-color=false", "-machine-readable", ".")
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
				collect()
			}
		}
	}()
	res := run.Wait(t)
	close(done)
	collect()
	if res.ExitCode != 0 {
		t.Fatalf("packer build: exit %d\n%s", res.ExitCode, res.Output)
	}
	var world struct {
		Accounts []struct {
			Users []struct {
				Name   string `json:"name"`
				Secret string `json:"secret_key"`
			} `json:"users"`
		} `json:"accounts"`
	}
	emu.AdminJSON(t, "world", nil, &world)
	for _, a := range world.Accounts {
		for _, u := range a.Users {
			secrets[u.Secret] = "secret key of user " + u.Name
		}
	}
	grants, sessions := 0, 0
	for _, what := range secrets {
		switch {
		case strings.HasPrefix(what, "token of grant"):
			grants++
		case strings.HasPrefix(what, "session token"):
			sessions++
		}
	}
	// Three target roles were assumed and three grants lent: a scan that
	// saw fewer has nothing to prove.
	if grants < 3 || sessions < 3 {
		t.Fatalf("collected %d grant tokens and %d session tokens; the scan would prove nothing", grants, sessions)
	}
	files := map[string]string{"Packer's output (-machine-readable)": res.Output}
	for _, f := range []string{logPath, filepath.Join(dir, "copies.json"), filepath.Join(dir, "packer-manifest.json")} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(data) == 0 {
			t.Fatalf("%s is empty", f)
		}
		files[filepath.Base(f)] = string(data)
	}
	if !strings.Contains(files["packer.log"], "amicrypt-copy") {
		t.Fatalf("the Packer log holds nothing of amicrypt-copy; PACKER_LOG was not in effect")
	}
	for secret, what := range secrets {
		if len(secret) < 8 {
			t.Fatalf("%s is %q: too short to scan for", what, secret)
		}
		for name, content := range files {
			if strings.Contains(content, secret) {
				t.Errorf("%s appears in %s", what, name)
			}
		}
	}
	t.Logf("scanned %d bytes in %d files for %d secrets (%d grant tokens, %d session tokens)", len(files["packer.log"]), len(files), len(secrets), grants, sessions)
}

// collectGrants finds every object with grant_id and token in the KMS state,
// whatever its nesting.
func collectGrants(raw json.RawMessage, out *[]struct {
	ID    string `json:"grant_id"`
	Token string `json:"token"`
}) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			id, _ := x["grant_id"].(string)
			tok, _ := x["token"].(string)
			if id != "" && tok != "" {
				*out = append(*out, struct {
					ID    string `json:"grant_id"`
					Token string `json:"token"`
				}{id, tok})
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
}
