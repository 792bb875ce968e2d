package ebs

// Integration tests: the builder against the in-process AWS emulator, through
// the real SDK clients (AWS_ENDPOINT_URL) and the default world.

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

const (
	buildAccount = "111111111111"
	sourceAMI    = "ami-0a1b2c3d4e5f60001"
	sourceSnap   = "snap-0a1b2c3d4e5f60001"
)

// startEmulator starts the emulator and points the SDK's environment at it
// with the build account's keys.
func startEmulator(t *testing.T, opts awsemu.Options) *emutest.Server {
	t.Helper()
	srv := emutest.Start(t, opts)
	srv.PointEnv(t, buildAccount)
	t.Setenv("AWS_POLL_DELAY_SECONDS", "0.01")
	return srv
}

// syncBuffer is a Ui writer shared by parallel steps.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type buildResult struct {
	artifact *Artifact
	err      error
	output   string
	mark     int // audit sequence before the build
}

func runBuild(t *testing.T, srv *emutest.Server, raw map[string]interface{}) buildResult {
	t.Helper()
	var b Builder
	if _, _, err := b.Prepare(raw); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	out := &syncBuffer{}
	ui := &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: out, ErrorWriter: out}
	mark := srv.Emulator().CheckMark()
	art, err := b.Run(context.Background(), ui, &packersdk.MockHook{})
	res := buildResult{err: err, output: out.String(), mark: mark}
	if art != nil {
		res.artifact = art.(*Artifact)
	}
	return res
}

// audited is the emulator's audit without preflight's DryRun probes, which
// make nothing.
func audited(srv *emutest.Server, f awsemu.AuditFilter) []awsemu.AuditEntry {
	var out []awsemu.AuditEntry
	for _, e := range srv.Emulator().Audit(f) {
		if e.Params["DryRun"] != "true" {
			out = append(out, e)
		}
	}
	return out
}

// calls counts the build account's audited calls of an action since mark
// (DryRun probes aside).
func calls(srv *emutest.Server, mark int, action string) int {
	return len(audited(srv, awsemu.AuditFilter{Account: buildAccount, Action: action, SinceSeq: mark}))
}

func mustPass(t *testing.T, srv *emutest.Server, mark int, ignore ...string) {
	t.Helper()
	rep := srv.Emulator().Check(awsemu.CheckOptions{Account: buildAccount, SinceSeq: mark, Ignore: ignore})
	if !rep.Pass {
		t.Fatalf("invariant checker:\n%s", rep)
	}
}

func keyARN(t *testing.T, srv *emutest.Server, account, region, ref string) string {
	t.Helper()
	out, err := kms.NewFromConfig(srv.Config(context.Background(), account, region)).DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(ref)})
	if err != nil {
		t.Fatalf("DescribeKey %s in %s: %v", ref, region, err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

func describeImage(t *testing.T, srv *emutest.Server, account, region, id string) types.Image {
	t.Helper()
	out, err := ec2.NewFromConfig(srv.Config(context.Background(), account, region)).DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("DescribeImages %s in %s: %v", id, region, err)
	}
	return out.Images[0]
}

// assertEncryptedUnder checks every EBS snapshot of the image is encrypted
// under the key: the image's mappings say Encrypted, the snapshots
// themselves the key (DescribeImages doesn't return it).
func assertEncryptedUnder(t *testing.T, srv *emutest.Server, region, imageID, key string) []string {
	t.Helper()
	img := describeImage(t, srv, buildAccount, region, imageID)
	var snaps []string
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs == nil {
			continue
		}
		snaps = append(snaps, aws.ToString(m.Ebs.SnapshotId))
		if !aws.ToBool(m.Ebs.Encrypted) {
			t.Errorf("%s %s %s: not encrypted, want encrypted under %s", region, imageID, aws.ToString(m.DeviceName), key)
		}
	}
	if len(snaps) == 0 {
		t.Fatalf("%s has no EBS snapshot", imageID)
	}
	out, err := ec2.NewFromConfig(srv.Config(context.Background(), buildAccount, region)).DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: snaps})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Snapshots) != len(snaps) {
		t.Fatalf("DescribeSnapshots %v: %d snapshots", snaps, len(out.Snapshots))
	}
	for _, s := range out.Snapshots {
		if !aws.ToBool(s.Encrypted) || aws.ToString(s.KmsKeyId) != key || s.State != types.SnapshotStateCompleted {
			t.Errorf("snapshot %s: encrypted=%v key=%s state=%s", aws.ToString(s.SnapshotId), aws.ToBool(s.Encrypted), aws.ToString(s.KmsKeyId), s.State)
		}
	}
	return snaps
}

func TestEmulatorLaunchBuild(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	raw := with("ami_name", "amicrypt-launch", "ami_description", "launch build",
		"tags", map[string]string{"team": "platform"}, "snapshot_tags", map[string]string{"snap": "yes"},
		"run_tags", map[string]string{"purpose": "build"})
	res := runBuild(t, srv, raw)
	if res.err != nil {
		t.Fatalf("build: %v\n%s", res.err, res.output)
	}
	key := keyARN(t, srv, buildAccount, "us-east-1", "alias/amicrypt-build")
	art := res.artifact
	if art.BuilderId() != "amicrypt.ebs" || !strings.HasPrefix(art.Id(), "us-east-1:ami-") || art.KmsKeyARN != key {
		t.Fatalf("artifact = %s / %s / %s", art.BuilderId(), art.Id(), art.KmsKeyARN)
	}
	amiID := art.Amis["us-east-1"]
	assertEncryptedUnder(t, srv, "us-east-1", amiID, key)

	img := describeImage(t, srv, buildAccount, "us-east-1", amiID)
	src := describeImage(t, srv, buildAccount, "us-east-1", sourceAMI)
	if aws.ToString(img.RootDeviceName) != aws.ToString(src.RootDeviceName) || img.Architecture != src.Architecture ||
		img.VirtualizationType != src.VirtualizationType || aws.ToBool(img.EnaSupport) != aws.ToBool(src.EnaSupport) ||
		img.BootMode != src.BootMode || img.ImdsSupport != src.ImdsSupport || aws.ToString(img.Description) != "launch build" {
		t.Errorf("image settings differ from the source:\n got %+v\nwant %+v", img, src)
	}
	if tags := tagMap(img.Tags); tags["team"] != "platform" {
		t.Errorf("image tags = %v", tags)
	}

	for action, want := range map[string]int{"RunInstances": 1, "StopInstances": 1, "TerminateInstances": 1, "CreateSnapshot": 1,
		"CopySnapshot": 1, "RegisterImage": 1, "DeleteSnapshot": 1, "CopyImage": 0, "CreateImage": 0} {
		if got := calls(srv, res.mark, action); got != want {
			t.Errorf("%s calls = %d, want %d", action, got, want)
		}
	}
	copies := audited(srv, awsemu.AuditFilter{Action: "CopySnapshot", SinceSeq: res.mark})
	if len(copies) == 1 && (copies[0].Params["Encrypted"] != "true" || copies[0].Params["KmsKeyId"] != key) {
		t.Errorf("CopySnapshot params = %v", copies[0].Params)
	}
	for _, w := range []string{"Preflight", "encrypted under", "Deleted intermediate snapshot", "terminated"} {
		if !strings.Contains(res.output, w) {
			t.Errorf("UI output lacks %q:\n%s", w, res.output)
		}
	}
	mustPass(t, srv, res.mark)

	// The generated data and HCP metadata.
	gd := art.State("generated_data").(map[string]interface{})
	if gd["SourceAMI"] != sourceAMI || gd["KmsKeyArn"] != key || gd["BuildRegion"] != "us-east-1" || gd["SourceAMIOwner"] != "137112412989" {
		t.Errorf("generated data = %v", gd)
	}

	// Destroy removes the AMI and its snapshots.
	if err := art.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := ec2.NewFromConfig(srv.Config(context.Background(), buildAccount, "us-east-1")).DescribeImages(context.Background(),
		&ec2.DescribeImagesInput{ImageIds: []string{amiID}}); err == nil {
		out, _ := ec2.NewFromConfig(srv.Config(context.Background(), buildAccount, "us-east-1")).DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{amiID}})
		if len(out.Images) > 0 && out.Images[0].State != types.ImageStateDeregistered {
			t.Errorf("image %s still there after Destroy", amiID)
		}
	}
}

func tagMap(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// skip_launch of a public AMI whose snapshots this account can't read: an
// encrypted CopyImage of the AMI itself, no instance, no unencrypted AMI.
func TestEmulatorSkipLaunchPublicAMI(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	res := runBuild(t, srv, with("skip_launch", true, "instance_type", nil, "ami_name", "amicrypt-skip", "tags", map[string]string{"team": "platform"}))
	if res.err != nil {
		t.Fatalf("build: %v\n%s", res.err, res.output)
	}
	key := keyARN(t, srv, buildAccount, "us-east-1", "alias/amicrypt-build")
	assertEncryptedUnder(t, srv, "us-east-1", res.artifact.Amis["us-east-1"], key)
	for action, want := range map[string]int{"RunInstances": 0, "CreateSnapshot": 0, "CopySnapshot": 0, "RegisterImage": 0, "CopyImage": 1} {
		if got := calls(srv, res.mark, action); got != want {
			t.Errorf("%s calls = %d, want %d", action, got, want)
		}
	}
	copies := audited(srv, awsemu.AuditFilter{Action: "CopyImage", SinceSeq: res.mark})
	if len(copies) == 1 && (copies[0].Params["SourceImageId"] != sourceAMI || copies[0].Params["Encrypted"] != "true" || copies[0].Params["KmsKeyId"] != key) {
		t.Errorf("CopyImage params = %v", copies[0].Params)
	}
	mustPass(t, srv, res.mark)
}

// skip_launch of an AMI of our own (encrypted under another key): its own
// snapshots are copied under the build key and registered.
func TestEmulatorSkipLaunchOwnAMI(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	ctx := context.Background()
	otherKey, err := kms.NewFromConfig(srv.Config(ctx, buildAccount, "us-east-1")).CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("old key")})
	if err != nil {
		t.Fatal(err)
	}
	oldKey := aws.ToString(otherKey.KeyMetadata.Arn)
	first := runBuild(t, srv, with("ami_name", "amicrypt-old-key", "kms_key_id", oldKey))
	if first.err != nil {
		t.Fatalf("first build: %v", first.err)
	}
	oldAMI := first.artifact.Amis["us-east-1"]
	oldSnaps := assertEncryptedUnder(t, srv, "us-east-1", oldAMI, oldKey)

	res := runBuild(t, srv, with("skip_launch", true, "instance_type", nil, "source_ami", oldAMI, "ami_name", "amicrypt-rekeyed"))
	if res.err != nil {
		t.Fatalf("build: %v\n%s", res.err, res.output)
	}
	key := keyARN(t, srv, buildAccount, "us-east-1", "alias/amicrypt-build")
	assertEncryptedUnder(t, srv, "us-east-1", res.artifact.Amis["us-east-1"], key)
	for action, want := range map[string]int{"RunInstances": 0, "CreateSnapshot": 0, "CopySnapshot": 1, "RegisterImage": 1, "CopyImage": 0, "DeleteSnapshot": 0} {
		if got := calls(srv, res.mark, action); got != want {
			t.Errorf("%s calls = %d, want %d", action, got, want)
		}
	}
	copies := audited(srv, awsemu.AuditFilter{Action: "CopySnapshot", SinceSeq: res.mark})
	if len(copies) == 1 && copies[0].Params["SourceSnapshotId"] != oldSnaps[0] {
		t.Errorf("copied %s, want the source AMI's own snapshot %s", copies[0].Params["SourceSnapshotId"], oldSnaps[0])
	}
	// The source AMI is untouched.
	assertEncryptedUnder(t, srv, "us-east-1", oldAMI, oldKey)
	mustPass(t, srv, res.mark)
}

// Launch volumes encrypted under the key: the snapshot is already what the
// AMI needs, so no copy is made.
func TestEmulatorEncryptedLaunchVolumesMakeNoCopy(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	res := runBuild(t, srv, with("ami_name", "amicrypt-nocopy", "snapshot_tags", map[string]string{"snap": "yes"},
		"launch_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/xvda", "encrypted": true, "kms_key_id": "alias/amicrypt-build", "volume_size": 8, "volume_type": "gp3"}}))
	if res.err != nil {
		t.Fatalf("build: %v\n%s", res.err, res.output)
	}
	key := keyARN(t, srv, buildAccount, "us-east-1", "alias/amicrypt-build")
	snaps := assertEncryptedUnder(t, srv, "us-east-1", res.artifact.Amis["us-east-1"], key)
	if got := calls(srv, res.mark, "CopySnapshot"); got != 0 {
		t.Errorf("CopySnapshot calls = %d, want 0", got)
	}
	if got := calls(srv, res.mark, "DeleteSnapshot"); got != 0 {
		t.Errorf("DeleteSnapshot calls = %d: the snapshot behind the AMI must be kept", got)
	}
	created := audited(srv, awsemu.AuditFilter{Action: "CreateSnapshot", SinceSeq: res.mark, Outcome: "ok"})
	if len(created) != 1 || len(snaps) != 1 {
		t.Fatalf("CreateSnapshot calls = %d, AMI snapshots = %v", len(created), snaps)
	}
	if !strings.Contains(res.output, "no copy needed") {
		t.Errorf("UI does not say the copy was skipped:\n%s", res.output)
	}
	mustPass(t, srv, res.mark)
}

func TestEmulatorTwoExtraRegions(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	regions := []string{"us-west-2", "eu-west-1"}
	res := runBuild(t, srv, with("ami_name", "amicrypt-regions", "ami_regions", regions, "tags", map[string]string{"team": "platform"},
		"region_kms_key_ids", map[string]string{"us-west-2": "alias/amicrypt-build", "eu-west-1": "alias/amicrypt-build"}))
	if res.err != nil {
		t.Fatalf("build: %v\n%s", res.err, res.output)
	}
	art := res.artifact
	if len(art.Amis) != 3 {
		t.Fatalf("artifact AMIs = %v", art.Amis)
	}
	ids := strings.Split(art.Id(), ",")
	if len(ids) != 3 || !strings.HasPrefix(ids[0], "eu-west-1:") || !strings.HasPrefix(ids[1], "us-east-1:") || !strings.HasPrefix(ids[2], "us-west-2:") {
		t.Errorf("Id() = %q, want sorted region:ami pairs", art.Id())
	}
	for _, r := range append([]string{"us-east-1"}, regions...) {
		key := keyARN(t, srv, buildAccount, r, "alias/amicrypt-build")
		assertEncryptedUnder(t, srv, r, art.Amis[r], key)
		if tags := tagMap(describeImage(t, srv, buildAccount, r, art.Amis[r]).Tags); tags["team"] != "platform" {
			t.Errorf("%s tags = %v", r, tags)
		}
	}
	copies := audited(srv, awsemu.AuditFilter{Action: "CopyImage", SinceSeq: res.mark})
	if len(copies) != 2 {
		t.Fatalf("CopyImage calls = %d", len(copies))
	}
	for _, c := range copies {
		if c.Params["Encrypted"] != "true" || !strings.HasPrefix(c.Params["KmsKeyId"], "arn:aws:kms:"+c.Region+":") || c.Params["ClientToken"] == "" {
			t.Errorf("CopyImage in %s params = %v", c.Region, c.Params)
		}
	}
	md, ok := art.State("par.artifact.metadata").([]*registryimage.Image)
	if !ok || len(md) != 3 {
		t.Fatalf("HCP metadata = %#v", art.State("par.artifact.metadata"))
	}
	for _, m := range md {
		if m.ProviderName != "aws" || m.ImageID != art.Amis[m.ProviderRegion] || m.SourceImageID != sourceAMI ||
			m.Labels["encrypted"] != "true" || m.Labels["kms_key_arn"] != keyARN(t, srv, buildAccount, m.ProviderRegion, "alias/amicrypt-build") {
			t.Errorf("HCP metadata %+v", m)
		}
	}
	mustPass(t, srv, res.mark)
}

func TestEmulatorSharing(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	res := runBuild(t, srv, with("ami_name", "amicrypt-shared", "ami_users", []string{"222222222222"}, "snapshot_users", []string{"222222222222"},
		"deprecate_at", "2030-01-01T00:00:00Z", "deregistration_protection", map[string]interface{}{"enabled": true}))
	if res.err != nil {
		t.Fatalf("build: %v\n%s", res.err, res.output)
	}
	amiID := res.artifact.Amis["us-east-1"]
	// The target account now sees the AMI (without the owner's tags).
	img := describeImage(t, srv, "222222222222", "us-east-1", amiID)
	if aws.ToString(img.OwnerId) != buildAccount {
		t.Errorf("owner = %s", aws.ToString(img.OwnerId))
	}
	own := describeImage(t, srv, buildAccount, "us-east-1", amiID)
	if aws.ToString(own.DeprecationTime) == "" {
		t.Errorf("deprecation time not set")
	}
	// snapshot_users: the target account sees each snapshot behind the AMI.
	target := ec2.NewFromConfig(srv.Config(context.Background(), "222222222222", "us-east-1"))
	for _, snap := range ebs.ImageSnapshotIDs(&own) {
		if _, err := target.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}}); err != nil {
			t.Errorf("snapshot %s not shared with 222222222222: %v", snap, err)
		}
	}
	for action, want := range map[string]int{"ModifyImageAttribute": 1, "ModifySnapshotAttribute": 1, "EnableImageDeprecation": 1, "EnableImageDeregistrationProtection": 1} {
		if got := calls(srv, res.mark, action); got != want {
			t.Errorf("%s calls = %d, want %d", action, got, want)
		}
	}
	mustPass(t, srv, res.mark, awsemu.CheckLeftoverLaunchPerm, awsemu.CheckLeftoverVolumePerm)
}

// Each preflight refusal stops the build before anything is created, with a
// message naming the problem and the fix.
func TestEmulatorPreflightRefusals(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	awsManaged := keyARN(t, srv, buildAccount, "us-east-1", "alias/aws/ebs")

	// A build whose name the collision case then reuses.
	first := runBuild(t, srv, with("skip_launch", true, "instance_type", nil, "ami_name", "amicrypt-taken"))
	if first.err != nil {
		t.Fatalf("first build: %v", first.err)
	}
	taken := first.artifact.Amis["us-east-1"]

	kmsClient := kms.NewFromConfig(srv.Config(context.Background(), buildAccount, "us-east-1"))
	disabled, err := kmsClient.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kmsClient.DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: disabled.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	disabledARN := aws.ToString(disabled.KeyMetadata.Arn)

	cases := []struct {
		name string
		raw  map[string]interface{}
		env  map[string]string
		want []string
	}{
		{"disabled key", with("kms_key_id", disabledARN), nil, []string{"kms_key_id:", disabledARN, "disabled", "enable the key"}},
		{"AWS-managed key with sharing", with("kms_key_id", awsManaged, "ami_users", []string{"222222222222"}),
			nil, []string{"kms_key_id:", "AWS-managed", "Snapshots encrypted with the AWS Managed CMK can't be shared", "Create a customer-managed key", "sharing is configured"}},
		{"AWS-managed key without sharing", with("kms_key_id", awsManaged),
			nil, []string{"kms_key_id:", "AWS-managed", "Create a customer-managed key"}},
		{"unknown key", with("kms_key_id", "alias/does-not-exist"), nil, []string{`KMS key "alias/does-not-exist" in us-east-1: not found`, "create the key"}},
		{"unknown region key", with("ami_regions", []string{"eu-central-1"}, "region_kms_key_ids", map[string]string{"eu-central-1": "alias/nope"}),
			nil, []string{`region_kms_key_ids["eu-central-1"]`, "not found"}},
		{"source AMI missing", with("source_ami", "ami-0000000000000dead"), nil, []string{`source_ami: "ami-0000000000000dead" not found`}},
		{"name collision", with("ami_name", "amicrypt-taken"), nil, []string{`ami_name: "amicrypt-taken" is already used by ` + taken + " in us-east-1", "force_deregister = true"}},
		{"bad credentials", validRaw(), map[string]string{"AWS_SECRET_ACCESS_KEY": "wrong"}, []string{"sts:GetCallerIdentity"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			res := runBuild(t, srv, tc.raw)
			if res.err == nil {
				t.Fatalf("build succeeded: %v", res.artifact.Amis)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, res.err)
				}
			}
			if _, shares := tc.raw["ami_users"]; !shares && strings.Contains(res.err.Error(), "sharing is configured") {
				t.Errorf("error claims sharing is configured when it is not:\n%v", res.err)
			}
			for _, e := range audited(srv, awsemu.AuditFilter{SinceSeq: res.mark}) {
				if !strings.HasPrefix(e.Action, "Describe") && e.Action != "GetCallerIdentity" {
					t.Errorf("preflight made a %s call", e.Action)
				}
			}
			mustPass(t, srv, res.mark)
		})
	}

	// force_deregister replaces the taken name.
	res := runBuild(t, srv, with("skip_launch", true, "instance_type", nil, "ami_name", "amicrypt-taken", "force_deregister", true))
	if res.err != nil {
		t.Fatalf("force_deregister build: %v", res.err)
	}
	if calls(srv, res.mark, "DeregisterImage") != 1 || res.artifact.Amis["us-east-1"] == taken {
		t.Errorf("force_deregister did not replace %s", taken)
	}
	mustPass(t, srv, res.mark)
}

// A copy that fails after being accepted, every time it is tried: the build
// fails quoting AWS's state message and leaves nothing behind. (A snapshot
// copy is tried three times: TestEmulatorCopySnapshotRetried.)
func TestEmulatorAsyncCopyFailureLeavesNothing(t *testing.T) {
	// quote is the state the failed resource reports, as DescribeSnapshots
	// (StateMessage) and DescribeImages (StateReason code and message) give
	// it; the build error must carry it word for word.
	cases := []struct {
		name   string
		action string
		raw    map[string]interface{}
		quote  string
	}{
		{"snapshot copy", "CopySnapshot", with("ami_name", "amicrypt-fail-snap"), " is error: Internal error on copy"},
		{"region copy", "CopyImage", with("ami_name", "amicrypt-fail-region", "ami_regions", []string{"us-west-2", "eu-west-1"},
			"region_kms_key_ids", map[string]string{"us-west-2": "alias/amicrypt-build", "eu-west-1": "alias/amicrypt-build"}),
			" is failed: Server.InternalError: Server.InternalError: Internal error on copy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startEmulator(t, awsemu.Options{Faults: &awsemu.FaultProfile{Rules: []awsemu.FaultRule{
				{Kind: awsemu.FaultCopyFails, Action: tc.action},
			}}})
			res := runBuild(t, srv, tc.raw)
			if res.err == nil {
				t.Fatalf("build succeeded despite the failed %s: %v", tc.action, res.artifact.Amis)
			}
			if !strings.Contains(res.err.Error(), tc.quote) {
				t.Errorf("error does not quote AWS's state reason %q: %v", tc.quote, res.err)
			}
			mustPass(t, srv, res.mark)
			if got := calls(srv, res.mark, "TerminateInstances"); got != 1 {
				t.Errorf("TerminateInstances calls = %d", got)
			}
			if t.Failed() {
				t.Log(res.output)
			}
		})
	}
}

// An AMI shared without access to its key: RunInstances is accepted, the
// instance terminates, and the build fails quoting AWS's state reason
// ("Client.InternalError: Client error on launch"), leaving nothing.
func TestEmulatorLaunchFailureQuotesStateReason(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	// Account 222222222222 builds an AMI under its own key and shares it with
	// the build account, without any grant on the key.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIA2222222222222222")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "emu-secret-222222222222")
	shared := runBuild(t, srv, with("skip_launch", true, "instance_type", nil, "ami_name", "amicrypt-foreign-key",
		"kms_key_id", "alias/amicrypt-target", "ami_users", []string{buildAccount}, "snapshot_users", []string{buildAccount}))
	if shared.err != nil {
		t.Fatalf("sharing build: %v\n%s", shared.err, shared.output)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIA1111111111111111")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "emu-secret-111111111111")

	res := runBuild(t, srv, with("source_ami", shared.artifact.Amis["us-east-1"], "ami_name", "amicrypt-from-foreign"))
	if res.err == nil {
		t.Fatalf("build succeeded from an AMI whose key the account can't use")
	}
	if !strings.Contains(res.err.Error(), "is terminated: ") || !strings.Contains(res.err.Error(), "Client error on launch") {
		t.Errorf("error does not quote the state reason: %v", res.err)
	}
	mustPass(t, srv, res.mark)
}

// Throttling and eventual consistency (new resources briefly invisible) are
// ridden out by the adaptive retryer and the waits' not-found grace.
func TestEmulatorBuildSurvivesThrottlingAndEventualConsistency(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{Faults: &awsemu.FaultProfile{Seed: 7, Rules: []awsemu.FaultRule{
		{Kind: awsemu.FaultThrottle, Service: "ec2", Probability: 0.2},
		{Kind: awsemu.FaultNotFoundAfterNew, Probability: 0.5},
	}}})
	res := runBuild(t, srv, with("ami_name", "amicrypt-rough-weather", "ami_regions", []string{"us-west-2"},
		"region_kms_key_ids", map[string]string{"us-west-2": "alias/amicrypt-build"}))
	if res.err != nil {
		t.Fatalf("build: %v\n%s", res.err, res.output)
	}
	throttled := audited(srv, awsemu.AuditFilter{Outcome: "RequestLimitExceeded", SinceSeq: res.mark})
	if len(throttled) == 0 {
		t.Fatal("no call was throttled; the test proves nothing")
	}
	for _, r := range []string{"us-east-1", "us-west-2"} {
		assertEncryptedUnder(t, srv, r, res.artifact.Amis[r], keyARN(t, srv, buildAccount, r, "alias/amicrypt-build"))
	}
	t.Logf("%d throttled calls ridden out", len(throttled))
	mustPass(t, srv, res.mark)
}

// With an SSH communicator and no key, the build makes a temporary key pair
// and security group, launches with them, and removes all of it.
func TestEmulatorTemporaryKeyPairAndSecurityGroup(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	var c Config
	if _, _, err := c.Prepare(with("communicator", "ssh", "ssh_username", "ec2-user", "ami_name", "amicrypt-ssh")); err != nil {
		t.Fatal(err)
	}
	access := &c.AccessConfig
	cfg, err := access.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fakeCheckIP(t, "203.0.113.9")
	b := &buildState{config: &c, clients: newAWSClients(cfg, access.EC2Options()), runID: "t"}
	state := new(multistep.BasicStateBag)
	state.Put("build", b)
	state.Put("ui", packersdk.TestUi(t))
	mark := srv.Emulator().CheckMark()

	steps := []multistep.Step{&stepPreflight{}, &stepSourceAMIInfo{}, &stepNetwork{}, &stepKeyPair{}, &stepSecurityGroup{}, &stepRunInstance{}}
	for i, s := range steps {
		if s.Run(context.Background(), state) != multistep.ActionContinue {
			for j := i - 1; j >= 0; j-- {
				steps[j].Cleanup(state)
			}
			t.Fatalf("step %T: %v", s, state.Get("error"))
		}
	}
	if len(c.Comm.SSHPrivateKey) == 0 {
		t.Error("no private key for the communicator")
	}
	if host, err := instanceHost(state); err != nil || host == "" {
		t.Errorf("host = %q, %v", host, err)
	}
	run := audited(srv, awsemu.AuditFilter{Action: "RunInstances", SinceSeq: mark})
	if len(run) != 1 || run[0].Params["KeyName"] != b.keyPairName || run[0].Params["SecurityGroupId.1"] != b.tempSGID {
		t.Errorf("RunInstances params = %v (key %s, group %s)", run[0].Params, b.keyPairName, b.tempSGID)
	}
	ingress := audited(srv, awsemu.AuditFilter{Action: "AuthorizeSecurityGroupIngress", SinceSeq: mark})
	if len(ingress) != 1 || ingress[0].Params["IpPermissions.1.FromPort"] != "22" || ingress[0].Params["IpPermissions.1.IpRanges.1.CidrIp"] != "203.0.113.9/32" {
		t.Errorf("ingress = %v, want port 22 from this machine's public IP only", ingress)
	}
	for j := len(steps) - 1; j >= 0; j-- {
		steps[j].Cleanup(state)
	}
	for action, want := range map[string]int{"DeleteKeyPair": 1, "DeleteSecurityGroup": 1, "TerminateInstances": 1} {
		if got := calls(srv, mark, action); got != want {
			t.Errorf("%s calls = %d, want %d", action, got, want)
		}
	}
	mustPass(t, srv, mark)
}
