//go:build e2e

package e2e

// amicrypt-ebs as a drop-in for amazon-ebs, with the real Packer: every
// name of amazon-ebs v1.8.0's HCL2 spec is honoured or refused with a
// reason; values unknown at validate pass; example/amazon-ebs builds after
// its type is swapped, to the AMI amazon-ebs builds; and a build killed or
// interrupted at a step boundary leaves nothing behind once the template
// runs again.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/hcl/v2/hcldec"

	amicryptebs "github.com/amicrypt/packer-plugin-amicrypt/builder/ebs"
)

// amazonSpecOnce lists amazon-ebs's spec names with scripts/amazon-spec.sh,
// built from the same module version as scripts/amazon-plugin.sh.
var amazonSpecOnce = sync.OnceValues(func() ([]string, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	out, err := runIn(root, nil, "bash", "scripts/amazon-spec.sh")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	list, err := runIn(root, nil, strings.TrimSpace(lines[len(lines)-1]))
	if err != nil {
		return nil, err
	}
	return strings.Fields(list), nil
})

// specNames lists a spec's names, nested blocks as "block.name".
func specNames(prefix string, spec hcldec.ObjectSpec, out map[string]bool) {
	for name, s := range spec {
		path := prefix + name
		out[path] = true
		var nested hcldec.Spec
		switch b := s.(type) {
		case *hcldec.BlockSpec:
			nested = b.Nested
		case *hcldec.BlockListSpec:
			nested = b.Nested
		}
		if o, ok := nested.(hcldec.ObjectSpec); ok {
			specNames(path+".", o, out)
		}
	}
}

// Every name of amazon-ebs's spec (top-level and in blocks) is in
// amicrypt-ebs's: it is accepted with its meaning, or refused at validate
// with the reason (builder/ebs RefusedFields); none is unknown to it.
func TestAmazonEBSSpecNamesHonouredOrRefused(t *testing.T) {
	amazon, err := amazonSpecOnce()
	if err != nil {
		t.Fatalf("scripts/amazon-spec.sh: %v", err)
	}
	ours := map[string]bool{}
	specNames("", (&amicryptebs.Builder{}).ConfigSpec(), ours)
	refused := amicryptebs.RefusedFields()
	var top, accepted, refusedNames []string
	nested := 0
	for _, name := range amazon {
		if !ours[name] {
			t.Errorf("amazon-ebs's %q is neither accepted nor refused by amicrypt-ebs: Packer would reject it as an unsupported argument", name)
			continue
		}
		if strings.Contains(name, ".") {
			nested++
			continue
		}
		top = append(top, name)
		if _, ok := refused[name]; ok {
			refusedNames = append(refusedNames, name)
		} else {
			accepted = append(accepted, name)
		}
	}
	for name := range refused {
		if !ours[name] {
			t.Errorf("refused field %q is not in amicrypt-ebs's spec", name)
		}
	}
	if len(top) < 150 || nested < 90 {
		t.Fatalf("amazon-ebs's spec has %d top-level and %d nested names: the listing is broken", len(top), nested)
	}
	sort.Strings(refusedNames)
	t.Logf("amazon-ebs v%s: %d top-level names (%d accepted, %d refused: %v) and %d names in blocks, all in amicrypt-ebs's spec",
		AmazonPluginVersion, len(top), len(accepted), len(refusedNames), refusedNames, nested)
}

// packer validate: the refused fields are refused with their reasons, in
// one run; values a data source gives only at build time pass.
func TestDropInValidate(t *testing.T) {
	bin, err := amazonPluginOnce()
	if err != nil {
		t.Fatalf("scripts/amazon-plugin.sh: %v", err)
	}
	env := New(t)
	env.InstallPlugin(t, bin, AmazonPluginSource)
	emu := env.StartEmulator(t, EmulatorOptions{})
	mark := emu.Mark(t)

	refused := amicryptebs.RefusedFields()
	dir := t.TempDir()
	WriteFile(t, dir, "refused.pkr.hcl", `
source "amicrypt-ebs" "refused" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "refused-1"

  encrypt_boot           = false
  ami_groups             = ["all"]
  snapshot_groups        = ["all"]
  block_duration_minutes = 60
  fast_launch {
    enable_fast_launch = true
  }
  temporary_iam_instance_profile_policy_document {
    Version = "2012-10-17"
    Statement {
      Effect   = "Allow"
      Action   = ["ssm:*"]
      Resource = ["*"]
    }
  }
}

build {
  sources = ["source.amicrypt-ebs.refused"]
}
`)
	res := env.Packer(t, dir, "validate", ".")
	if res.ExitCode == 0 {
		t.Fatalf("packer validate accepted the refused fields:\n%s", res.Output)
	}
	flat := strings.Join(strings.Fields(res.Output), " ")
	for name, r := range refused {
		want := strings.Join(strings.Fields(name+": "+r.Reason), " ")
		if !strings.Contains(flat, want[:min(len(want), 90)]) {
			t.Errorf("packer validate output lacks %q", want[:min(len(want), 90)])
		}
	}

	unknown := t.TempDir()
	WriteFile(t, unknown, "unknown.pkr.hcl", `
data "amazon-ami" "al2023" {
  region      = "us-east-1"
  filters     = { name = "al2023-ami-2023.*-x86_64" }
  owners      = ["amazon"]
  most_recent = true
}

source "amicrypt-ebs" "app" {
  region        = "us-east-1"
  source_ami    = data.amazon-ami.al2023.id
  instance_type = "t3.micro"
  communicator  = "none"
  kms_key_id    = "alias/amicrypt-build"
  ami_name      = "app-${data.amazon-ami.al2023.name}"
  ami_users     = [data.amazon-ami.al2023.owner]
  ami_regions   = ["us-east-1", "us-west-2"]
  tags          = { Base = data.amazon-ami.al2023.name }
}

build {
  sources = ["source.amicrypt-ebs.app"]
}
`)
	res = env.Packer(t, unknown, "validate", ".")
	if res.ExitCode != 0 {
		t.Fatalf("packer validate refused values a data source gives at build time:\n%s", res.Output)
	}
	if !strings.Contains(res.Output, `"us-east-1" is the build region`) {
		t.Errorf("validate does not say the build region is dropped from ami_regions:\n%s", res.Output)
	}
	for _, e := range emu.Audit(t, nil) {
		if e.Seq > mark {
			t.Errorf("packer validate made an AWS call: %s %s", e.Service, e.Action)
		}
	}
}

// dropInTemplate is example/amazon-ebs with its source's type swapped.
func dropInTemplate(t *testing.T, env *Env) (amazon, amicrypt string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(env.Root, "example", "amazon-ebs", "amazon-ebs.pkr.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	amazon = string(data)
	amicrypt = strings.NewReplacer(`source "amazon-ebs"`, `source "amicrypt-ebs"`, "source.amazon-ebs.", "source.amicrypt-ebs.").Replace(amazon)
	if amicrypt == amazon || strings.Contains(amicrypt, `"amazon-ebs"`) {
		t.Fatal("example/amazon-ebs no longer has the source the test swaps")
	}
	return amazon, amicrypt
}

// example/amazon-ebs builds with amicrypt-ebs once its type is swapped, to
// an AMI with the tags and description amazon-ebs gives its AMI, encrypted
// under the same key, and without the unencrypted intermediate AMI
// amazon-ebs registers.
func TestDropInAmazonEBSExample(t *testing.T) {
	env, emu := amazonEnv(t)
	env.Vars["AWS_POLL_DELAY_SECONDS"] = "0.02"
	amazonSrc, amicryptSrc := dropInTemplate(t, env)
	build := amzAWS(emu, BuildAccessKey, BuildSecretKey, BuildRegion)
	key := amzKeyARN(t, build, "alias/amicrypt-build")

	run := func(name, src string) (ec2types.Image, int) {
		dir := t.TempDir()
		WriteFile(t, dir, name+".pkr.hcl", src)
		if res := env.Packer(t, dir, "init", "."); res.ExitCode != 0 {
			t.Fatalf("%s: packer init: exit %d\n%s", name, res.ExitCode, res.Output)
		}
		mark := amzMark(t, emu)
		res := env.Packer(t, dir, "build", "-var", "ami_name="+name, ".")
		if res.ExitCode != 0 {
			t.Fatalf("%s: packer build: exit %d\n%s", name, res.ExitCode, res.Output)
		}
		out, err := ec2.NewFromConfig(build).DescribeImages(context.Background(), &ec2.DescribeImagesInput{Owners: []string{"self"},
			Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{name + "-*"}}}})
		if err != nil || len(out.Images) != 1 {
			t.Fatalf("%s: the AMI: %v (%d images)", name, err, len(out.Images))
		}
		return out.Images[0], mark
	}
	amzImg, _ := run("amazon", amazonSrc)
	img, mark := run("amicrypt", amicryptSrc)

	amzAssertEncryptedUnder(t, build, img, key)
	if pass, findings := amzCheck(t, emu, mark); !pass {
		t.Errorf("the amicrypt-ebs build: checker findings %+v", findings)
	}
	mine, theirs := amzTags(img.Tags), amzTags(amzImg.Tags)
	for k, v := range theirs {
		if mine[k] != v {
			t.Errorf("tag %s: amicrypt-ebs %q, amazon-ebs %q", k, mine[k], v)
		}
	}
	for k := range mine {
		if _, ok := theirs[k]; !ok && !strings.HasPrefix(k, "amicrypt:") {
			t.Errorf("tag %s=%q only on amicrypt-ebs's AMI", k, mine[k])
		}
	}
	if aws.ToString(img.Description) != aws.ToString(amzImg.Description) || !strings.HasSuffix(aws.ToString(img.Description), " hardened") {
		t.Errorf("description: amicrypt-ebs %q, amazon-ebs %q", aws.ToString(img.Description), aws.ToString(amzImg.Description))
	}
	if img.ImdsSupport != amzImg.ImdsSupport {
		t.Errorf("imds_support: amicrypt-ebs %q, amazon-ebs %q", img.ImdsSupport, amzImg.ImdsSupport)
	}
	var runs []amzAuditEntry
	for _, e := range amzAudit(t, emu, mark) {
		if e.Action == "RunInstances" && e.Params["DryRun"] != "true" { // preflight's probe aside
			runs = append(runs, e)
		}
		if e.Action == "CreateImage" {
			t.Errorf("amicrypt-ebs called CreateImage")
		}
	}
	if len(runs) != 1 || runs[0].Params["MetadataOptions.HttpTokens"] != "required" || runs[0].Params["EbsOptimized"] != "true" ||
		runs[0].Params["InstanceInitiatedShutdownBehavior"] != "terminate" {
		t.Errorf("amicrypt-ebs's RunInstances: %+v", runs)
	}
}

// example/build as the interrupt tests run it: slow enough to stop at a
// given step.
func interruptEnv(t *testing.T) (*Env, *Emulator, string) {
	t.Helper()
	env := New(t)
	for k, v := range offlineProxy {
		env.Vars[k] = v
	}
	emu := env.StartEmulator(t, EmulatorOptions{TimeScale: 0.05})
	env.Vars["AWS_POLL_DELAY_SECONDS"] = "0.1"
	dir := copyExample(t, env)
	if res := env.Packer(t, dir, "init", "."); res.ExitCode != 0 {
		t.Fatalf("packer init: exit %d\n%s", res.ExitCode, res.Output)
	}
	return env, emu, dir
}

// A signal at a step boundary (SIGINT as Ctrl-C, SIGTERM as a CI runner
// stopping a job): the build cleans up and the checker finds nothing.
func TestBuilderSignalsAtStepBoundaries(t *testing.T) {
	env, emu, dir := interruptEnv(t)
	cases := []struct {
		after string
		sig   syscall.Signal
	}{
		{"Preflight: checking", syscall.SIGTERM},
		{"Launching a t3.micro instance", syscall.SIGINT},
		{"is running", syscall.SIGTERM},
		{"Stopping instance", syscall.SIGINT},
		{"Snapshotting 1 volume", syscall.SIGTERM},
		{"copying snapshot", syscall.SIGINT},
		{"Registering AMI", syscall.SIGTERM},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s after %q", tc.sig, tc.after), func(t *testing.T) {
			mark := emu.Mark(t)
			run := env.StartPacker(t, dir, "build", "-color=false", ".")
			run.WaitForOutput(t, tc.after, 5*time.Minute)
			if err := run.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			res := run.Wait(t)
			if strings.Contains(res.Output, "Encrypted AMIs were created") && res.ExitCode != 0 {
				t.Errorf("an artifact was reported by a failed build:\n%s", res.Output)
			}
			rep := emuCheck(t, emu, mark)
			if !rep.Pass {
				t.Fatalf("checker after %s:\n%s\npacker output:\n%s", tc.sig, rep, res.Output)
			}
		})
	}
}

// SIGKILL at a step boundary leaves the dead build's resources (nothing of
// it runs again); the next run of the same template removes them all once
// their lease has expired.
func TestBuilderSIGKILLThenRerun(t *testing.T) {
	env, emu, dir := interruptEnv(t)
	for _, after := range []string{"is running", "Snapshotting 1 volume", "copying snapshot"} {
		t.Run(after, func(t *testing.T) {
			mark := emu.Mark(t)
			env.Vars["AMICRYPT_BUILD_LEASE"] = "2s"
			run := env.StartPacker(t, dir, "build", "-color=false", ".")
			run.WaitForOutput(t, after, 5*time.Minute)
			if err := run.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			res := run.Wait(t)
			if res.ExitCode == 0 {
				t.Fatalf("packer exited 0 after SIGKILL:\n%s", res.Output)
			}
			if rep := emuCheck(t, emu, mark); rep.Pass {
				t.Fatalf("the killed build left nothing; the test proves nothing:\n%s", res.Output)
			}
			delete(env.Vars, "AMICRYPT_BUILD_LEASE")
			time.Sleep(2500 * time.Millisecond)
			res = env.Packer(t, dir, "build", "-color=false", ".")
			if res.ExitCode != 0 {
				t.Fatalf("the next run: exit %d\n%s", res.ExitCode, res.Output)
			}
			if !strings.Contains(res.Output, "left by dead builds") {
				t.Errorf("the next run does not say it removed the dead build's resources:\n%s", res.Output)
			}
			rep := emu.Check(t, url.Values{"account": {"111111111111"}, "since_seq": {fmt.Sprint(mark)}})
			if !rep.Pass {
				t.Fatalf("checker over the killed build and the next run:\n%s\nnext run:\n%s", rep, res.Output)
			}
		})
	}
}
