//go:build e2e

package e2e

// amicrypt-ebs chained into amicrypt-copy with the real Packer against
// cmd/awsemu: the README demo template (three target accounts × two
// regions), proven by the invariant checker and by each target account's own
// view of its copies; and the same run interrupted with SIGINT while copies
// are in flight.

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// copyManifest is the part of amicrypt-copy's manifest_output these tests read.
type copyManifest struct {
	SourceAccount string `json:"source_account"`
	Succeeded     int    `json:"succeeded"`
	Failed        int    `json:"failed"`
	Error         string `json:"error"`
	Copies        []struct {
		Account  string `json:"account"`
		Region   string `json:"region"`
		ImageID  string `json:"ami_id"`
		KeyARN   string `json:"kms_key_arn"`
		State    string `json:"state"`
		Reason   string `json:"reason"`
		Reused   bool   `json:"reused"`
		Verified bool   `json:"verified"`
	} `json:"copies"`
}

var copyTargets = map[string][2]string{ // account → access key, secret
	"222222222222": {"AKIA2222222222222222", "emu-secret-222222222222"},
	"333333333333": {"AKIA3333333333333333", "emu-secret-333333333333"},
	"444444444444": {"AKIA4444444444444444", "emu-secret-444444444444"},
}

func targetEC2(emu *Emulator, account, region string) *ec2.Client {
	creds := copyTargets[account]
	return ec2.NewFromConfig(aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(creds[0], creds[1], ""),
		BaseEndpoint: aws.String(emu.URL),
	})
}

// exampleDir copies example/NAME/NAME.pkr.hcl into a fresh directory, so
// the manifest lands in the test's own space.
func exampleDir(t *testing.T, env *Env, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(env.Root, "example", name, name+".pkr.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	WriteFile(t, dir, name+".pkr.hcl", string(data))
	return dir
}

func demoDir(t *testing.T, env *Env) string { return exampleDir(t, env, "demo") }

func readCopyManifest(t *testing.T, path string) copyManifest {
	t.Helper()
	var m copyManifest
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("manifest_output: %v", err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("manifest_output: %v\n%s", err, data)
	}
	return m
}

// liveCopies lists, as each target account sees it, every image it owns that
// amicrypt-copy tagged as a copy (whatever its state but deregistered).
func liveCopies(t *testing.T, emu *Emulator) map[string]ec2types.Image {
	t.Helper()
	out := map[string]ec2types.Image{}
	for account := range copyTargets {
		for _, region := range []string{"us-east-1", "eu-west-1"} {
			res, err := targetEC2(emu, account, region).DescribeImages(context.Background(), &ec2.DescribeImagesInput{
				Owners:  []string{"self"},
				Filters: []ec2types.Filter{{Name: aws.String("tag-key"), Values: []string{"amicrypt:source-ami"}}},
			})
			if err != nil {
				t.Fatalf("%s/%s DescribeImages: %v", account, region, err)
			}
			for _, img := range res.Images {
				if img.State != ec2types.ImageStateDeregistered {
					out[aws.ToString(img.ImageId)] = img
				}
			}
		}
	}
	return out
}

// assertCopiesAsOwnersSeeThem checks every copy of the manifest as its own
// account sees it: available, every device encrypted under a key of that
// account, with each of tags.
func assertCopiesAsOwnersSeeThem(t *testing.T, emu *Emulator, m copyManifest, tags []string) {
	t.Helper()
	live := liveCopies(t, emu)
	for _, c := range m.Copies {
		img, ok := live[c.ImageID]
		if !ok {
			t.Errorf("%s/%s: %s not visible to its own account", c.Account, c.Region, c.ImageID)
			continue
		}
		if img.State != ec2types.ImageStateAvailable || !strings.Contains(c.KeyARN, ":"+c.Account+":key/") {
			t.Errorf("%s/%s: %s is %s under %s", c.Account, c.Region, c.ImageID, img.State, c.KeyARN)
		}
		seen := map[string]string{}
		for _, tg := range img.Tags {
			seen[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		for _, k := range tags {
			if seen[k] == "" {
				t.Errorf("%s/%s: %s lacks tag %s as its account sees it: %v", c.Account, c.Region, c.ImageID, k, seen)
			}
		}
		// Keys come from DescribeSnapshots: DescribeImages doesn't return them.
		var snaps []string
		for _, bdm := range img.BlockDeviceMappings {
			if bdm.Ebs == nil {
				continue
			}
			if !aws.ToBool(bdm.Ebs.Encrypted) {
				t.Errorf("%s/%s: %s device %s is not encrypted", c.Account, c.Region, c.ImageID, aws.ToString(bdm.DeviceName))
			}
			if bdm.Ebs.SnapshotId != nil {
				snaps = append(snaps, aws.ToString(bdm.Ebs.SnapshotId))
			}
		}
		out, err := targetEC2(emu, c.Account, c.Region).DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: snaps})
		if err != nil || len(snaps) == 0 || len(out.Snapshots) != len(snaps) {
			t.Errorf("%s/%s: snapshots %v of %s as their owner sees them: %v", c.Account, c.Region, snaps, c.ImageID, err)
			continue
		}
		for _, s := range out.Snapshots {
			if !aws.ToBool(s.Encrypted) || aws.ToString(s.KmsKeyId) != c.KeyARN {
				t.Errorf("%s/%s: %s snapshot %s encrypted=%v key %s, want %s", c.Account, c.Region, c.ImageID, aws.ToString(s.SnapshotId), aws.ToBool(s.Encrypted), aws.ToString(s.KmsKeyId), c.KeyARN)
			}
		}
	}
}

func TestCopyDemoChain(t *testing.T) {
	env := New(t)
	for k, v := range offlineProxy {
		env.Vars[k] = v
	}
	emu := env.StartEmulator(t, EmulatorOptions{})
	env.Vars["AWS_POLL_DELAY_SECONDS"] = "0.02"
	dir := demoDir(t, env)
	if res := env.Packer(t, dir, "validate", "."); res.ExitCode != 0 {
		t.Fatalf("packer validate: exit %d\n%s", res.ExitCode, res.Output)
	}
	mark := emu.Mark(t)
	res := env.Packer(t, dir, "build", "-color=false", ".")
	if res.ExitCode != 0 {
		t.Fatalf("packer build: exit %d\n%s", res.ExitCode, res.Output)
	}
	for _, want := range []string{"preflight passed: 6 copies planned", "ACCOUNT", "DURATION", "Encrypted AMI copies:", "remove launch permission: the launch permission on", ": done", " pending after "} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("packer build output lacks %q:\n%s", want, res.Output)
		}
	}
	m := readCopyManifest(t, filepath.Join(dir, "amicrypt-demo-copies.json"))
	if m.Succeeded != 6 || m.Failed != 0 || len(m.Copies) != 6 {
		t.Fatalf("manifest: %d ok, %d failed, %d copies", m.Succeeded, m.Failed, len(m.Copies))
	}
	for _, c := range m.Copies {
		if !c.Verified || !strings.Contains(res.Output, c.ImageID+" read back: snap-") {
			t.Errorf("%s/%s %s: not read back (manifest verified %v)", c.Account, c.Region, c.ImageID, c.Verified)
		}
	}
	assertCopiesAsOwnersSeeThem(t, emu, m, []string{"Name", "Team", "Compliance", "CopiedBy", "Encrypted", "CopiedFromAMI", "amicrypt:kms-key-arn"})
	report := emu.Check(t, url.Values{"since_seq": {strconv.Itoa(mark)}})
	if !report.Pass {
		t.Errorf("invariant checker:\n%s", report)
	}
	t.Logf("demo chain: %d API calls", report.TotalCalls)
}

// TestCopyExamples builds the runnable examples: example/copy (every
// option), per-account-keys and copy-with-tags. Grants made by
// grant_autoscaling_role and launch permissions from ami_users stay in the
// target accounts on purpose, so the invariant checker is run three ways:
// strict on everything the source principal did (the temporary shares and
// grants must be gone), strict on everything else but those two checks, and
// unfiltered, where every finding must be one of the intended grants or
// permissions, and all of them there.
func TestCopyExamples(t *testing.T) {
	tests := []struct {
		example  string
		manifest string
		copies   int
		asGrants int      // one Auto Scaling grant per target key
		perms    int      // ami_users launch permissions: one per copy of 222222222222
		tags     []string // tags every copy carries as its own account sees it
	}{
		// 222 and 444 in us-east-1 and us-west-2, 333 in eu-west-1, 111 in both.
		{"copy", "copies.json", 7, 7, 2, nil},
		{"per-account-keys", "per-account-keys-copies.json", 4, 4, 0, []string{"Name", "Stack", "Encrypted", "CopiedFromAMI", "amicrypt:kms-key-arn"}},
		{"copy-with-tags", "copy-with-tags-copies.json", 2, 0, 0, []string{"Recipe", "BuildId", "AmigoStage", "CopiedBy", "Encrypted", "CopiedFromAMI"}},
	}
	for _, tt := range tests {
		t.Run(tt.example, func(t *testing.T) {
			env := New(t)
			for k, v := range offlineProxy {
				env.Vars[k] = v
			}
			emu := env.StartEmulator(t, EmulatorOptions{})
			env.Vars["AWS_POLL_DELAY_SECONDS"] = "0.02"
			dir := exampleDir(t, env, tt.example)
			mark := emu.Mark(t)
			res := env.Packer(t, dir, "build", "-color=false", ".")
			if res.ExitCode != 0 {
				t.Fatalf("packer build: exit %d\n%s", res.ExitCode, res.Output)
			}
			m := readCopyManifest(t, filepath.Join(dir, tt.manifest))
			if m.Succeeded != tt.copies || m.Failed != 0 {
				t.Fatalf("manifest: %d ok, %d failed; want %d and 0", m.Succeeded, m.Failed, tt.copies)
			}
			if tt.tags != nil {
				assertCopiesAsOwnersSeeThem(t, emu, m, tt.tags)
			}
			since := strconv.Itoa(mark)

			sourceOnly := emu.Check(t, url.Values{"since_seq": {since}, "principal": {"arn:aws:iam::111111111111:user/packer"}})
			if !sourceOnly.Pass || sourceOnly.TotalCalls == 0 {
				t.Errorf("invariant checker, source principal:\n%s", sourceOnly)
			}
			ignored := emu.Check(t, url.Values{"since_seq": {since}, "ignore": {"leftover-grant,leftover-launch-permission"}})
			if !ignored.Pass {
				t.Errorf("invariant checker, all but the intended grants and launch permissions:\n%s", ignored)
			}
			all := emu.Check(t, url.Values{"since_seq": {since}})
			grants, perms := 0, 0
			for _, f := range all.Findings {
				switch {
				case f.Check == "leftover-grant" && strings.Contains(f.Message, "/AWSServiceRoleForAutoScaling"):
					grants++
				case f.Check == "leftover-launch-permission" && f.Account == "222222222222" && strings.Contains(f.Message, "launch permission for 333333333333"):
					perms++
				default:
					t.Errorf("unintended finding: %+v", f)
				}
			}
			if grants != tt.asGrants || perms != tt.perms {
				t.Errorf("%d Auto Scaling grants and %d ami_users launch permissions found, want %d and %d:\n%s", grants, perms, tt.asGrants, tt.perms, all)
			}
			t.Logf("example/%s: %d API calls, %d by the source principal", tt.example, all.TotalCalls, sourceOnly.TotalCalls)
		})
	}
}

func TestCopyInterruptedBySIGINT(t *testing.T) {
	env := New(t)
	for k, v := range offlineProxy {
		env.Vars[k] = v
	}
	// Slow time down so the copies are still in flight at the interrupt.
	emu := env.StartEmulator(t, EmulatorOptions{TimeScale: 0.02})
	env.Vars["AWS_POLL_DELAY_SECONDS"] = "0.05"
	dir := demoDir(t, env)
	mark := emu.Mark(t)
	run := env.StartPacker(t, dir, "build", "-color=false", ".")
	run.WaitForOutput(t, ": copying ami-", 5*time.Minute)
	if err := run.Interrupt(); err != nil {
		t.Fatal(err)
	}
	res := run.Wait(t)
	if res.ExitCode == 0 {
		t.Fatalf("packer build exited 0 after SIGINT:\n%s", res.Output)
	}
	if !strings.Contains(res.Output, "remove launch permission: the launch permission on") || !strings.Contains(res.Output, "roll back copy: copy ami-") {
		t.Errorf("the interrupted run did not report its cleanup and rollback:\n%s", res.Output)
	}

	// Nothing shared or granted is left in the source, and nothing the run
	// made survives unreported: with on_failure = "rollback" (the default)
	// nothing survives at all.
	report := emu.Check(t, url.Values{"since_seq": {strconv.Itoa(mark)}})
	if !report.Pass {
		t.Errorf("invariant checker after SIGINT:\n%s", report)
	}
	m := readCopyManifest(t, filepath.Join(dir, "amicrypt-demo-copies.json"))
	reported := map[string]bool{}
	made := 0
	for _, c := range m.Copies {
		if c.ImageID != "" {
			reported[c.ImageID] = true
			made++
		}
		if c.State != "available" && c.Reason == "" {
			t.Errorf("%s/%s is %s without a reason", c.Account, c.Region, c.State)
		}
	}
	if made == 0 {
		t.Fatalf("no copy was in flight at the interrupt: %+v", m.Copies)
	}
	for id, img := range liveCopies(t, emu) {
		t.Errorf("%s (%s, owner %s) survived the interrupted run (reported in manifest: %v)", id, img.State, aws.ToString(img.OwnerId), reported[id])
	}
	// The AMI the build made is not the copies': it survives Ctrl-C.
	f := builtAMIFate(t, emu, res.Output)
	assertBuiltAMIKept(t, f, res.Output)
	t.Logf("after Ctrl-C during the copies: %s", f)
}

// TestCopyValidateRejects runs `packer validate` on a template with bad
// amicrypt-copy settings: every one is reported, naming field and value,
// before any API call (no emulator is running).
func TestCopyValidateRejects(t *testing.T) {
	env := New(t)
	dir := t.TempDir()
	WriteFile(t, dir, "bad.pkr.hcl", `
packer {
  required_plugins {
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = ">= 0.1.0"
    }
  }
}

source "amicrypt-ebs" "x" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "x-{{timestamp}}"
}

build {
  sources = ["source.amicrypt-ebs.x"]
  post-processor "amicrypt-copy" {
    role_name    = "amicrypt-copy"
    kms_key_id   = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    on_failure   = "ignore"
    deprecate_at = "tomorrow"
    source_ami   = "ami-0a1b2c3d4e5f60001"
    source_ami_filter {
      filters = { name = "app-*" }
      owners  = ["self"]
    }
    target { account_id = "2222" }
    target {
      account_id = "333333333333"
      kms_key_id = "alias/aws/ebs"
    }
    target { account_id = "444444444444" }
  }
}
`)
	res := env.Packer(t, dir, "validate", ".")
	if res.ExitCode == 0 {
		t.Fatalf("packer validate accepted bad settings:\n%s", res.Output)
	}
	// Packer wraps long lines; compare with the spaces collapsed.
	out := strings.Join(strings.Fields(res.Output), " ")
	for _, want := range []string{
		`target[0].account_id: "2222"`,
		`on_failure: "ignore"`,
		`deprecate_at: "tomorrow"`,
		`alias/aws/ebs`,
		"is a key of account 111111111111, but target[2] (account 444444444444) inherits it",
		"source_ami, source_ami_filter: both set",
		`source_ami: set, yet this amicrypt-copy follows a "amicrypt-ebs" source, whose AMIs it copies`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("packer validate output lacks %q:\n%s", want, res.Output)
		}
	}

	// What was accepted but wrong: an external ID AWS refuses, counts written
	// as 0 (which meant "default"), a lease out of range.
	zeros := t.TempDir()
	WriteFile(t, zeros, "zeros.pkr.hcl", `
packer {
  required_plugins {
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = ">= 0.1.0"
    }
  }
}

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]
  post-processor "amicrypt-copy" {
    region                 = "us-east-1"
    source_ami             = "ami-0a1b2c3d4e5f60001"
    role_name              = "amicrypt-copy"
    kms_key_id             = "alias/amicrypt-target"
    external_id            = "x"
    copy_concurrency       = 0
    destination_copy_limit = 0
    max_retries            = 0
    lease_duration         = "1s"
    aws_polling {
      max_attempts = 0
    }
    target {
      account_id  = "222222222222"
      external_id = "has spaces!"
    }
  }
}
`)
	res = env.Packer(t, zeros, "validate", ".")
	out = strings.Join(strings.Fields(res.Output), " ")
	if res.ExitCode == 0 {
		t.Fatalf("packer validate accepted zero counts and bad external IDs:\n%s", res.Output)
	}
	for _, want := range []string{
		`external_id: "x" is 1 characters; AWS takes an external ID of 2 to 1224 characters`,
		`target[0] (account 222222222222).external_id: "has spaces!" contains " !"`,
		"copy_concurrency: 0 is not a setting", "destination_copy_limit: 0 is not a setting",
		"max_retries: 0 is not a setting", "aws_polling.max_attempts: 0 is not a setting", "remove the field",
		`lease_duration: "1s" is out of range`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("packer validate output lacks %q:\n%s", want, res.Output)
		}
	}

	// Behind the null builder source_ami is at home, but needs a region.
	null := t.TempDir()
	WriteFile(t, null, "existing.pkr.hcl", `
packer {
  required_plugins {
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = ">= 0.1.0"
    }
  }
}

source "null" "existing" {
  communicator = "none"
}

build {
  sources = ["source.null.existing"]
  post-processor "amicrypt-copy" {
    source_ami = "ami-0a1b2c3d4e5f60001"
    role_name  = "amicrypt-copy"
    kms_key_id = "alias/amicrypt-target"
    target { account_id = "222222222222" }
  }
}
`)
	res = env.Packer(t, null, "validate", ".")
	out = strings.Join(strings.Fields(res.Output), " ")
	if res.ExitCode == 0 || !strings.Contains(out, "region: not set, and source_ami needs it") || strings.Contains(out, "follows a") {
		t.Errorf("packer validate of source_ami behind the null builder without region: exit %d\n%s", res.ExitCode, res.Output)
	}
}
