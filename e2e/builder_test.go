//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// copyExample copies example/build into a fresh directory, so Packer's
// manifest lands in the test's own space.
func copyExample(t *testing.T, env *Env) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(env.Root, "example", "build", "build.pkr.hcl")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, dir, "build.pkr.hcl", string(data))
	return dir
}

func emuCheck(t *testing.T, emu *Emulator, since int) awsemu.CheckReport {
	t.Helper()
	return emu.Check(t, url.Values{"account": {"111111111111"}, "since_seq": {strconv.Itoa(since)}})
}

func emuClients(t *testing.T, emu *Emulator, region string) (*ec2.Client, *kms.Client) {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(BuildAccessKey, BuildSecretKey, "")),
		config.WithBaseEndpoint(emu.URL),
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	return ec2.NewFromConfig(cfg), kms.NewFromConfig(cfg)
}

// TestBuilderExample runs packer init, validate and build of example/build
// against cmd/awsemu and proves the result through the invariant checker.
func TestBuilderExample(t *testing.T) {
	env := New(t)
	for k, v := range offlineProxy {
		env.Vars[k] = v
	}
	emu := env.StartEmulator(t, EmulatorOptions{})
	env.Vars["AWS_POLL_DELAY_SECONDS"] = "0.02"
	dir := copyExample(t, env)

	for _, args := range [][]string{{"init", "."}, {"validate", "."}} {
		if res := env.Packer(t, dir, args...); res.ExitCode != 0 {
			t.Fatalf("packer %s: exit %d\n%s", strings.Join(args, " "), res.ExitCode, res.Output)
		}
	}
	mark := emu.Mark(t)
	res := env.Packer(t, dir, "build", "-color=false", ".")
	if res.ExitCode != 0 {
		t.Fatalf("packer build: exit %d\n%s", res.ExitCode, res.Output)
	}
	// Checked now, so the call counts are the build's alone, not this test's
	// own Describe calls below.
	rep := emuCheck(t, emu, mark)
	for _, want := range []string{
		"building from al2023-ami-2023.6.20241212.0-kernel-6.1-x86_64 (ami-0a1b2c3d4e5f60001), key arn:aws:kms:us-east-1:111111111111:key/",
		"Deleted intermediate snapshot", "Encrypted AMIs were created", "us-east-1: ami-",
	} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("packer build output lacks %q:\n%s", want, res.Output)
		}
	}
	// Every generated data value reaches HCL as build.NAME.
	if !regexp.MustCompile(`source owner 137112412989, created \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z, build region us-east-1`).MatchString(res.Output) {
		t.Errorf("packer build output lacks build.SourceAMIOwner, build.SourceAMICreationDate or build.BuildRegion:\n%s", res.Output)
	}

	// The manifest names the AMI; every snapshot behind it is encrypted
	// under the build key.
	var manifest struct {
		Builds []struct {
			ArtifactID string `json:"artifact_id"`
		} `json:"builds"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &manifest); err != nil || len(manifest.Builds) != 1 {
		t.Fatalf("manifest: %v\n%s", err, data)
	}
	region, amiID, ok := strings.Cut(manifest.Builds[0].ArtifactID, ":")
	if !ok || region != "us-east-1" || !strings.HasPrefix(amiID, "ami-") {
		t.Fatalf("artifact id = %q", manifest.Builds[0].ArtifactID)
	}
	ec2c, kmsc := emuClients(t, emu, region)
	key, err := kmsc.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-build")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := ec2c.DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{amiID}})
	if err != nil || len(img.Images) != 1 {
		t.Fatalf("DescribeImages %s: %v", amiID, err)
	}
	// Keys come from DescribeSnapshots: DescribeImages doesn't return them.
	var snaps []string
	for _, m := range img.Images[0].BlockDeviceMappings {
		if m.Ebs != nil && m.Ebs.SnapshotId != nil {
			snaps = append(snaps, aws.ToString(m.Ebs.SnapshotId))
		}
	}
	described, err := ec2c.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: snaps})
	if err != nil || len(snaps) == 0 || len(described.Snapshots) != len(snaps) {
		t.Fatalf("DescribeSnapshots %v of %s: %v", snaps, amiID, err)
	}
	for _, s := range described.Snapshots {
		if !aws.ToBool(s.Encrypted) || aws.ToString(s.KmsKeyId) != aws.ToString(key.KeyMetadata.Arn) {
			t.Errorf("snapshot %s: encrypted=%v key=%s", aws.ToString(s.SnapshotId), aws.ToBool(s.Encrypted), aws.ToString(s.KmsKeyId))
		}
	}
	if !strings.Contains(res.Output, "us-east-1: AMI "+amiID+" read back: "+strings.Join(snaps, ", ")+" encrypted under "+aws.ToString(key.KeyMetadata.Arn)) {
		t.Errorf("packer build output does not report the read-back of %s:\n%s", amiID, res.Output)
	}

	// No unencrypted AMI ever registered, no leftovers.
	if !rep.Pass {
		t.Fatalf("invariant checker:\n%s", rep)
	}
	logCallCounts(t, rep)
}

// logCallCounts prints the API calls of the run, by action, from the audit.
func logCallCounts(t *testing.T, rep awsemu.CheckReport) {
	byAction := map[string]int{}
	for _, c := range rep.CallCounts {
		byAction[c.Service+":"+c.Action] += c.Calls
	}
	keys := make([]string, 0, len(byAction))
	for k := range byAction {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-40s %d\n", k, byAction[k])
	}
	t.Logf("API calls of the build (%d in all):\n%s", rep.TotalCalls, b.String())
}

// TestBuilderInterrupt sends SIGINT while the encrypted snapshot copy is in
// flight: Packer exits and the checker finds nothing left behind.
func TestBuilderInterrupt(t *testing.T) {
	env := New(t)
	for k, v := range offlineProxy {
		env.Vars[k] = v
	}
	// Slow time down so the copy lasts long enough to be interrupted.
	emu := env.StartEmulator(t, EmulatorOptions{TimeScale: 0.05})
	env.Vars["AWS_POLL_DELAY_SECONDS"] = "0.1"
	dir := copyExample(t, env)
	if res := env.Packer(t, dir, "init", "."); res.ExitCode != 0 {
		t.Fatalf("packer init: exit %d\n%s", res.ExitCode, res.Output)
	}

	mark := emu.Mark(t)
	run := env.StartPacker(t, dir, "build", "-color=false", ".")
	run.WaitForOutput(t, "encrypted copy for /dev/xvda", 5*time.Minute)
	if err := run.Interrupt(); err != nil {
		t.Fatal(err)
	}
	res := run.Wait(t)
	if res.ExitCode == 0 {
		t.Fatalf("packer build exited 0 after SIGINT\n%s", res.Output)
	}
	for _, want := range []string{"Deleted encrypted copy", "Deleted intermediate snapshot", "terminated"} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("output lacks %q:\n%s", want, res.Output)
		}
	}
	if strings.Contains(res.Output, "Encrypted AMIs were created") {
		t.Errorf("an artifact was reported after the interrupt:\n%s", res.Output)
	}
	rep := emuCheck(t, emu, mark)
	if !rep.Pass {
		t.Fatalf("invariant checker after interrupt:\n%s\npacker output:\n%s", rep, res.Output)
	}
}

// TestBuilderValidateRejects runs `packer validate` on bad amicrypt-ebs
// templates: each fails naming the field and the fix, and no AWS call is made.
func TestBuilderValidateRejects(t *testing.T) {
	env := New(t)
	for k, v := range offlineProxy {
		env.Vars[k] = v
	}
	emu := env.StartEmulator(t, EmulatorOptions{})
	const tmpl = `
source "amicrypt-ebs" "bad" {
  region        = "us-east-1"
  source_ami    = "ami-0a1b2c3d4e5f60001"
  communicator  = "none"
%s
}

build {
  sources = ["source.amicrypt-ebs.bad"]
}
`
	cases := []struct {
		name, body string
		want       []string
	}{
		{"no key", `instance_type = "t3.micro"
  ami_name = "x-1"`, []string{"kms_key_id: not set"}},
		{"malformed key", `instance_type = "t3.micro"
  ami_name = "x-1"
  kms_key_id = "amicrypt-build"`, []string{`"amicrypt-build" is not a KMS key reference`}},
		{"regions without keys for a key ARN", `instance_type = "t3.micro"
  ami_name = "x-1"
  kms_key_id = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  ami_regions = ["us-west-2"]`, []string{`region_kms_key_ids: no key for "us-west-2"`}},
		{"bad ami_users", `instance_type = "t3.micro"
  ami_name = "x-1"
  kms_key_id = "alias/amicrypt-build"
  ami_users = ["1234"]`, []string{`ami_users: "1234" is not an AWS account ID`}},
		{"skip_launch with launch fields", `skip_launch = true
  instance_type = "t3.micro"
  ami_name = "x-1"
  kms_key_id = "alias/amicrypt-build"`, []string{"skip_launch: true, yet launch settings are set", "instance_type"}},
		{"bad deprecate_at", `instance_type = "t3.micro"
  ami_name = "x-1"
  kms_key_id = "alias/amicrypt-build"
  deprecate_at = "soon"`, []string{`deprecate_at: "soon" is not an RFC 3339 time`}},
		{"malformed key ARN", `instance_type = "t3.micro"
  ami_name = "x-1"
  kms_key_id = "arn:aws:kms:us-east-1:1111:key/abc"`, []string{`kms_key_id: "arn:aws:kms:us-east-1:1111:key/abc" is not a KMS key reference`}},
		{"empty ami_name", `instance_type = "t3.micro"
  ami_name = ""
  kms_key_id = "alias/amicrypt-build"`, []string{"ami_name: not set"}},
		{"malformed ami_name", `instance_type = "t3.micro"
  ami_name = "bad name!"
  kms_key_id = "alias/amicrypt-build"`, []string{`ami_name: "bad name!" is not a valid AMI name`}},
	}
	mark := emu.Mark(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			WriteFile(t, dir, "bad.pkr.hcl", fmt.Sprintf(tmpl, "  "+tc.body))
			res := env.Packer(t, dir, "validate", ".")
			if res.ExitCode == 0 {
				t.Fatalf("packer validate accepted it:\n%s", res.Output)
			}
			flat := strings.Join(strings.Fields(res.Output), " ")
			for _, w := range tc.want {
				if !strings.Contains(flat, w) {
					t.Errorf("output lacks %q:\n%s", w, res.Output)
				}
			}
		})
	}
	if entries := emu.Audit(t, url.Values{"since": {strconv.Itoa(mark)}}); len(entries) != 0 {
		t.Errorf("packer validate made %d AWS calls, e.g. %s", len(entries), entries[0].Action)
	}
}
