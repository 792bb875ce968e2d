//go:build e2e

package e2e

// What a failed amicrypt-copy leaves, with the real Packer. Packer v1.12
// destroys the builder's artifact when a post-processor fails, whatever the
// post-processors said about keeping their input; amicrypt-copy asks
// amicrypt-ebs's artifact to keep its AMI, so the AMI the build made must
// survive a preflight refusal, an asynchronous copy failure under "rollback"
// and under "keep", and Ctrl-C during the copies (TestCopyInterruptedBySIGINT)
// — with its snapshots, as the emulator's audit shows — and the run's output
// must say so and name it. After the "keep" failure, example/copy-existing
// (amicrypt-copy behind the null builder) finishes the copies: the kept ones
// are reused, none is doubled. Last, Packer's own rule the docs rely on for
// other builders: a manifest block of its own keeps a builder's artifact.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// builtAMIPattern finds the AMI amicrypt-ebs made, and its snapshots, in
// Packer's output: the builder's read-back line.
var builtAMIPattern = regexp.MustCompile(`us-east-1: AMI (ami-[0-9a-f]+) read back: (snap-[0-9a-f]+(?:, snap-[0-9a-f]+)*) encrypted under`)

// amiFate is what became of the build's AMI: its state now, as the build
// account sees it, and what the emulator's audit recorded against it.
type amiFate struct {
	ImageID, Name, State string
	Snapshots            []string
	// SnapshotsLive are the snapshots that still exist, completed and
	// encrypted under the build key.
	SnapshotsLive int
	// Deregisters and SnapshotDeletes count the DeregisterImage calls on
	// the AMI and DeleteSnapshot calls on its snapshots, whatever their
	// outcome, in the whole audit.
	Deregisters, SnapshotDeletes int
}

func (f amiFate) String() string {
	return f.ImageID + " " + f.State + ", " + strconv.Itoa(f.SnapshotsLive) + "/" + strconv.Itoa(len(f.Snapshots)) +
		" snapshots live (" + strings.Join(f.Snapshots, ", ") + "); audit: " + strconv.Itoa(f.Deregisters) + " DeregisterImage, " +
		strconv.Itoa(f.SnapshotDeletes) + " DeleteSnapshot"
}

// builtAMIFate finds the build's AMI in Packer's output and reads its fate.
func builtAMIFate(t *testing.T, emu *Emulator, output string) amiFate {
	t.Helper()
	m := builtAMIPattern.FindStringSubmatch(output)
	if m == nil {
		t.Fatalf("no built AMI in the output:\n%s", output)
	}
	f := amiFate{ImageID: m[1], Snapshots: strings.Split(m[2], ", ")}
	ec2c, kmsc := emuClients(t, emu, BuildRegion)
	ctx := context.Background()
	key, err := kmsc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-build")})
	if err != nil {
		t.Fatal(err)
	}
	// An image ID stays describable for a while after deregistration, as in
	// AWS; its state tells.
	imgs, err := ec2c.DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: []ec2types.Filter{{Name: aws.String("image-id"), Values: []string{f.ImageID}}}})
	if err != nil {
		t.Fatal(err)
	}
	f.State = "gone"
	if len(imgs.Images) == 1 {
		f.State, f.Name = string(imgs.Images[0].State), aws.ToString(imgs.Images[0].Name)
	}
	for _, id := range f.Snapshots {
		out, err := ec2c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
		if err != nil || len(out.Snapshots) != 1 {
			continue
		}
		s := out.Snapshots[0]
		if s.State == ec2types.SnapshotStateCompleted && aws.ToBool(s.Encrypted) && aws.ToString(s.KmsKeyId) == aws.ToString(key.KeyMetadata.Arn) {
			f.SnapshotsLive++
		}
	}
	for _, e := range emu.Audit(t, url.Values{"action": {"DeregisterImage"}}) {
		if e.Params["ImageId"] == f.ImageID {
			f.Deregisters++
		}
	}
	snaps := strings.Join(f.Snapshots, " ")
	for _, e := range emu.Audit(t, url.Values{"action": {"DeleteSnapshot"}}) {
		if id := e.Params["SnapshotId"]; id != "" && strings.Contains(snaps, id) {
			f.SnapshotDeletes++
		}
	}
	return f
}

// assertBuiltAMIKept checks the build's AMI outlived the failed run, with
// its snapshots, untouched, and that the output said so and named it.
func assertBuiltAMIKept(t *testing.T, f amiFate, output string) {
	t.Helper()
	if f.State != string(ec2types.ImageStateAvailable) || len(f.Snapshots) == 0 || f.SnapshotsLive != len(f.Snapshots) ||
		f.Deregisters != 0 || f.SnapshotDeletes != 0 {
		t.Errorf("the build's AMI did not survive the failed copy run: %s", f)
	}
	flat := strings.Join(strings.Fields(output), " ")
	if want := "the build's AMI " + f.ImageID + " in us-east-1 is kept (read back just now: available, snapshots " + f.Snapshots[0]; !strings.Contains(flat, want) {
		t.Errorf("the output does not say the build's AMI is kept, naming it (%q):\n%s", want, output)
	}
}

func keepDir(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "keep", "keep.pkr.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	WriteFile(t, dir, "keep.pkr.hcl", string(data))
	return dir
}

// copyFailsEveryAttempt makes the copy into 333333333333/eu-west-1 end
// failed each of the three times amicrypt-copy makes it (a copy that fails
// once is made again, on its own), then lets it succeed: the rerun finishes.
const copyFailsEveryAttempt = `{"rules": [{"kind": "copy-fails", "action": "CopyImage", "account": "333333333333", "region": "eu-west-1", "max": 3}]}`

func TestCopyFailureKeepsTheBuiltAMI(t *testing.T) {
	env := New(t)
	for k, v := range offlineProxy {
		env.Vars[k] = v
	}
	env.Vars["AWS_POLL_DELAY_SECONDS"] = "0.02"
	faults := WriteFile(t, t.TempDir(), "faults.json", copyFailsEveryAttempt)

	t.Run("preflight refusal", func(t *testing.T) {
		emu := env.StartEmulator(t, EmulatorOptions{})
		dir := keepDir(t)
		res := env.Packer(t, dir, "build", "-color=false", "-var", "key_333=alias/missing", ".")
		if res.ExitCode == 0 {
			t.Fatalf("packer build passed with a missing target key:\n%s", res.Output)
		}
		if !strings.Contains(res.Output, "nothing was lent and no copy was started") || !strings.Contains(res.Output, "alias/missing") {
			t.Errorf("the refusal is not reported:\n%s", res.Output)
		}
		f := builtAMIFate(t, emu, res.Output)
		assertBuiltAMIKept(t, f, res.Output)
		t.Logf("after a preflight refusal: %s", f)
	})

	t.Run("copy fails, rollback", func(t *testing.T) {
		emu := env.StartEmulator(t, EmulatorOptions{Faults: faults})
		dir := keepDir(t)
		res := env.Packer(t, dir, "build", "-color=false", ".")
		if res.ExitCode == 0 {
			t.Fatalf("packer build passed although a copy failed:\n%s", res.Output)
		}
		m := readCopyManifest(t, filepath.Join(dir, "copies.json"))
		if m.Succeeded != 0 || m.Failed != 6 || !strings.Contains(res.Output, "rolled back") {
			t.Errorf("rollback: manifest %d ok, %d failed; want every copy rolled back", m.Succeeded, m.Failed)
		}
		if live := liveCopies(t, emu); len(live) != 0 {
			t.Errorf("%d copies survived the rollback", len(live))
		}
		f := builtAMIFate(t, emu, res.Output)
		assertBuiltAMIKept(t, f, res.Output)
		t.Logf("after a failed copy, on_failure = rollback: %s", f)
	})

	t.Run("copy fails, keep, then the copies are finished behind the null builder", func(t *testing.T) {
		emu := env.StartEmulator(t, EmulatorOptions{Faults: faults})
		dir := keepDir(t)
		res := env.Packer(t, dir, "build", "-color=false", "-var", "on_failure=keep", ".")
		if res.ExitCode == 0 {
			t.Fatalf("packer build passed although a copy failed:\n%s", res.Output)
		}
		m := readCopyManifest(t, filepath.Join(dir, "copies.json"))
		var failed string
		for _, c := range m.Copies {
			if c.State != "available" {
				failed = c.ImageID
			}
		}
		if m.Succeeded != 5 || m.Failed != 1 || failed == "" {
			t.Fatalf("keep: manifest %d ok, %d failed; want 5 and the failed copy kept", m.Succeeded, m.Failed)
		}
		f := builtAMIFate(t, emu, res.Output)
		assertBuiltAMIKept(t, f, res.Output)
		t.Logf("after a failed copy, on_failure = keep: %s", f)

		// Finish the fan-out with the runnable example, as a user would.
		rerun := exampleDir(t, env, "copy-existing")
		mark := emu.Mark(t)
		res2 := env.Packer(t, rerun, "build", "-color=false", "-var", "ami_name="+f.Name, ".")
		if res2.ExitCode != 0 {
			t.Fatalf("finishing the copies through source_ami_filter: exit %d\n%s", res2.ExitCode, res2.Output)
		}
		m2 := readCopyManifest(t, filepath.Join(rerun, "copy-existing-copies.json"))
		if m2.Succeeded != 6 || m2.Failed != 0 {
			t.Errorf("rerun: manifest %d ok, %d failed; want all 6", m2.Succeeded, m2.Failed)
		}
		reused := 0
		for _, c := range m2.Copies {
			if c.Reused {
				reused++
			}
			if !c.Verified {
				t.Errorf("rerun: %s/%s %s not read back", c.Account, c.Region, c.ImageID)
			}
		}
		if reused != 5 || !strings.Contains(res2.Output, "removed "+failed+", a failed copy an earlier run kept") {
			t.Errorf("rerun reused %d copies (want 5) and must say it replaced the failed %s:\n%s", reused, failed, res2.Output)
		}
		perDest := map[string]int{}
		for _, dest := range liveCopyDests(t, emu) {
			perDest[dest]++
		}
		if len(perDest) != 6 {
			t.Errorf("copies live in %d destinations, want 6: %v", len(perDest), perDest)
		}
		for dest, n := range perDest {
			if n != 1 {
				t.Errorf("%s holds %d copies, want 1 (no duplicates)", dest, n)
			}
		}
		if n := len(emu.Audit(t, url.Values{"action": {"CopyImage"}, "outcome": {"ok"}, "since": {strconv.Itoa(mark)}})); n > 2 {
			t.Errorf("the rerun made %d CopyImage calls; only the failed copy is made again", n)
		}
		assertCopiesAsOwnersSeeThem(t, emu, m2, []string{"Name", "Team", "CopiedBy", "Encrypted", "CopiedFromAMI"})
		rep := emu.Check(t, url.Values{"since_seq": {strconv.Itoa(mark)}})
		if !rep.Pass {
			t.Errorf("invariant checker after the rerun:\n%s", rep)
		}
		after := builtAMIFate(t, emu, res.Output)
		if after.State != "available" || after.Deregisters+after.SnapshotDeletes != 0 {
			t.Errorf("the rerun touched the source AMI: %s", after)
		}
	})

	packerKeepsWhatAPostProcessorBlockKept(t, env)
}

// liveCopyDests maps every live copy liveCopies would find to its
// account/region.
func liveCopyDests(t *testing.T, emu *Emulator) map[string]string {
	t.Helper()
	dests := map[string]string{}
	for account := range copyTargets {
		for _, region := range []string{"us-east-1", "eu-west-1"} {
			out, err := targetEC2(emu, account, region).DescribeImages(context.Background(), &ec2.DescribeImagesInput{
				Owners:  []string{"self"},
				Filters: []ec2types.Filter{{Name: aws.String("tag-key"), Values: []string{"amicrypt:source-ami"}}},
			})
			if err != nil {
				t.Fatalf("%s/%s DescribeImages: %v", account, region, err)
			}
			for _, img := range out.Images {
				if img.State != ec2types.ImageStateDeregistered {
					dests[aws.ToString(img.ImageId)] = account + "/" + region
				}
			}
		}
	}
	return dests
}

// failingPPTemplate is an amicrypt-ebs build followed by a post-processor
// that fails and never asks the builder's artifact to keep anything, and
// optionally by a manifest block of its own.
const failingPPTemplate = `
packer {
  required_plugins {
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = ">= 0.1.0"
    }
  }
}

source "amicrypt-ebs" "app" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "amicrypt-pp-fails"
}

build {
  sources = ["source.amicrypt-ebs.app"]
  post-processor "shell-local" {
    inline = ["exit 1"]
  }
%s
}
`

// packerKeepsWhatAPostProcessorBlockKept checks, with the real Packer, the
// rule the docs give users of builders that don't answer amicrypt-copy:
// after a failed post-processor Packer destroys the builder's artifact
// (amicrypt-ebs's Destroy deregisters its AMI, as nobody asked to keep it),
// unless another post-processor block that ran without error kept its input,
// as a manifest block of its own does.
func packerKeepsWhatAPostProcessorBlockKept(t *testing.T, env *Env) {
	for _, tc := range []struct {
		name     string
		extra    string
		wantKept bool
	}{
		{"alone", "", false},
		{"with a manifest block of its own", `  post-processor "manifest" {}`, true},
	} {
		t.Run("another post-processor fails, "+tc.name, func(t *testing.T) {
			emu := env.StartEmulator(t, EmulatorOptions{})
			dir := t.TempDir()
			WriteFile(t, dir, "pp.pkr.hcl", fmt.Sprintf(failingPPTemplate, tc.extra))
			res := env.Packer(t, dir, "build", "-color=false", ".")
			if res.ExitCode == 0 {
				t.Fatalf("packer build passed although shell-local exits 1:\n%s", res.Output)
			}
			f := builtAMIFate(t, emu, res.Output)
			kept := f.State == "available" && f.Deregisters == 0 && f.SnapshotDeletes == 0 && f.SnapshotsLive == len(f.Snapshots)
			destroyed := f.State == "gone" && f.Deregisters == 1 && f.SnapshotDeletes == len(f.Snapshots)
			if tc.wantKept && !kept || !tc.wantKept && !destroyed {
				t.Errorf("want kept %v: %s", tc.wantKept, f)
			}
			t.Logf("%s: %s", tc.name, f)
		})
	}
}
