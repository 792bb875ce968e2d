package ebs

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// fakeEC2 is a tiny in-memory EC2 for one region: resources finish at once
// (snapshots completed, images available) unless told otherwise. It
// implements the calls the steps make; others panic via the nil embed.
type fakeEC2 struct {
	ebs.BuildAPI
	mu        sync.Mutex
	region    string
	seq       int
	calls     []string
	images    map[string]*types.Image
	snapshots map[string]*types.Snapshot
	volumes   map[string]*types.Volume
	instances map[string]*types.Instance
	// failCopies makes CopySnapshot/CopyImage results end in error/failed.
	failCopies bool
	// wrongKey, when set, is the key EC2 "uses" for CopySnapshot/CopyImage
	// results instead of the one asked for: what verification must catch.
	wrongKey   string
	runInput   *ec2.RunInstancesInput
	regInput   *ec2.RegisterImageInput
	copyInputs []*ec2.CopySnapshotInput
	imageAttrs []*ec2.ModifyImageAttributeInput
}

func newFakeEC2(region string) *fakeEC2 {
	return &fakeEC2{region: region, images: map[string]*types.Image{}, snapshots: map[string]*types.Snapshot{},
		volumes: map[string]*types.Volume{}, instances: map[string]*types.Instance{}}
}

func (f *fakeEC2) id(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s-%s%04d", prefix, f.region[:2], f.seq)
}

func (f *fakeEC2) record(op string) {
	f.calls = append(f.calls, op)
}

func (f *fakeEC2) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == op {
			n++
		}
	}
	return n
}

func notFound(code, id string) error {
	return &smithy.GenericAPIError{Code: code, Message: "The id '" + id + "' does not exist"}
}

func (f *fakeEC2) DescribeImages(_ context.Context, in *ec2.DescribeImagesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("DescribeImages")
	out := &ec2.DescribeImagesOutput{}
	for _, id := range in.ImageIds {
		img, ok := f.images[id]
		if !ok {
			return nil, notFound("InvalidAMIID.NotFound", id)
		}
		out.Images = append(out.Images, asDescribed(img))
	}
	if len(in.ImageIds) == 0 {
		for _, img := range f.images {
			match := true
			for _, flt := range in.Filters {
				if aws.ToString(flt.Name) == "name" && aws.ToString(img.Name) != flt.Values[0] {
					match = false
				}
			}
			if match && img.State != types.ImageStateDeregistered {
				out.Images = append(out.Images, asDescribed(img))
			}
		}
	}
	return out, nil
}

// asDescribed is an image as DescribeImages returns it: AWS gives each EBS
// mapping's Encrypted but never its KmsKeyId (keys come from
// DescribeSnapshots), so nothing here may come to depend on it.
func asDescribed(img *types.Image) types.Image {
	out := *img
	out.BlockDeviceMappings = nil
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs != nil {
			e := *m.Ebs
			e.KmsKeyId = nil
			m.Ebs = &e
		}
		out.BlockDeviceMappings = append(out.BlockDeviceMappings, m)
	}
	return out
}

func (f *fakeEC2) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("DescribeSnapshots")
	out := &ec2.DescribeSnapshotsOutput{}
	for _, id := range in.SnapshotIds {
		s, ok := f.snapshots[id]
		if !ok {
			return nil, notFound("InvalidSnapshot.NotFound", id)
		}
		out.Snapshots = append(out.Snapshots, *s)
	}
	return out, nil
}

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("DescribeInstances")
	out := &ec2.DescribeInstancesOutput{}
	for _, id := range in.InstanceIds {
		inst, ok := f.instances[id]
		if !ok {
			return nil, notFound("InvalidInstanceID.NotFound", id)
		}
		out.Reservations = append(out.Reservations, types.Reservation{Instances: []types.Instance{*inst}})
	}
	return out, nil
}

func (f *fakeEC2) DescribeVolumes(_ context.Context, in *ec2.DescribeVolumesInput, _ ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("DescribeVolumes")
	out := &ec2.DescribeVolumesOutput{}
	for _, id := range in.VolumeIds {
		out.Volumes = append(out.Volumes, *f.volumes[id])
	}
	return out, nil
}

func (f *fakeEC2) RunInstances(_ context.Context, in *ec2.RunInstancesInput, _ ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("RunInstances")
	f.runInput = in
	src := f.images[aws.ToString(in.ImageId)]
	inst := &types.Instance{InstanceId: aws.String(f.id("i")), State: &types.InstanceState{Name: types.InstanceStateNameRunning},
		PrivateIpAddress: aws.String("172.31.0.10")}
	for _, m := range src.BlockDeviceMappings {
		if m.Ebs == nil {
			continue
		}
		vol := &types.Volume{VolumeId: aws.String(f.id("vol")), Size: m.Ebs.VolumeSize, VolumeType: m.Ebs.VolumeType}
		for _, lm := range in.BlockDeviceMappings {
			if aws.ToString(lm.DeviceName) == aws.ToString(m.DeviceName) && lm.Ebs != nil && aws.ToBool(lm.Ebs.Encrypted) {
				vol.Encrypted, vol.KmsKeyId = aws.Bool(true), lm.Ebs.KmsKeyId
			}
		}
		f.volumes[*vol.VolumeId] = vol
		inst.BlockDeviceMappings = append(inst.BlockDeviceMappings, types.InstanceBlockDeviceMapping{
			DeviceName: m.DeviceName, Ebs: &types.EbsInstanceBlockDevice{VolumeId: vol.VolumeId, DeleteOnTermination: aws.Bool(true)}})
	}
	f.instances[*inst.InstanceId] = inst
	return &ec2.RunInstancesOutput{Instances: []types.Instance{*inst}}, nil
}

func (f *fakeEC2) setInstanceState(id string, st types.InstanceStateName) {
	if inst, ok := f.instances[id]; ok {
		inst.State = &types.InstanceState{Name: st}
	}
}

func (f *fakeEC2) StopInstances(_ context.Context, in *ec2.StopInstancesInput, _ ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("StopInstances")
	f.setInstanceState(in.InstanceIds[0], types.InstanceStateNameStopped)
	return &ec2.StopInstancesOutput{}, nil
}

func (f *fakeEC2) TerminateInstances(_ context.Context, in *ec2.TerminateInstancesInput, _ ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("TerminateInstances")
	f.setInstanceState(in.InstanceIds[0], types.InstanceStateNameTerminated)
	return &ec2.TerminateInstancesOutput{}, nil
}

func (f *fakeEC2) CreateSnapshot(_ context.Context, in *ec2.CreateSnapshotInput, _ ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("CreateSnapshot")
	vol := f.volumes[aws.ToString(in.VolumeId)]
	s := &types.Snapshot{SnapshotId: aws.String(f.id("snap")), State: types.SnapshotStateCompleted, Progress: aws.String("100%"),
		VolumeId: in.VolumeId, VolumeSize: vol.Size, Encrypted: aws.Bool(aws.ToBool(vol.Encrypted)), KmsKeyId: vol.KmsKeyId}
	f.snapshots[*s.SnapshotId] = s
	return &ec2.CreateSnapshotOutput{SnapshotId: s.SnapshotId}, nil
}

func (f *fakeEC2) CopySnapshot(_ context.Context, in *ec2.CopySnapshotInput, _ ...func(*ec2.Options)) (*ec2.CopySnapshotOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("CopySnapshot")
	f.copyInputs = append(f.copyInputs, in)
	s := &types.Snapshot{SnapshotId: aws.String(f.id("snap")), State: types.SnapshotStateCompleted, Progress: aws.String("100%"),
		Encrypted: in.Encrypted, KmsKeyId: f.keyUsed(in.KmsKeyId)}
	if f.failCopies {
		s.State, s.StateMessage = types.SnapshotStateError, aws.String("Given key ID is not accessible")
	}
	f.snapshots[*s.SnapshotId] = s
	return &ec2.CopySnapshotOutput{SnapshotId: s.SnapshotId}, nil
}

func (f *fakeEC2) DeleteSnapshot(_ context.Context, in *ec2.DeleteSnapshotInput, _ ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("DeleteSnapshot")
	id := aws.ToString(in.SnapshotId)
	if _, ok := f.snapshots[id]; !ok {
		return nil, notFound("InvalidSnapshot.NotFound", id)
	}
	delete(f.snapshots, id)
	return &ec2.DeleteSnapshotOutput{}, nil
}

func (f *fakeEC2) RegisterImage(_ context.Context, in *ec2.RegisterImageInput, _ ...func(*ec2.Options)) (*ec2.RegisterImageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("RegisterImage")
	f.regInput = in
	img := &types.Image{ImageId: aws.String(f.id("ami")), Name: in.Name, State: types.ImageStateAvailable, RootDeviceType: types.DeviceTypeEbs}
	for _, m := range in.BlockDeviceMappings {
		if m.Ebs != nil {
			snap := f.snapshots[aws.ToString(m.Ebs.SnapshotId)]
			copied := *m.Ebs
			copied.Encrypted, copied.KmsKeyId = snap.Encrypted, snap.KmsKeyId
			m.Ebs = &copied
		}
		img.BlockDeviceMappings = append(img.BlockDeviceMappings, m)
	}
	f.images[*img.ImageId] = img
	return &ec2.RegisterImageOutput{ImageId: img.ImageId}, nil
}

func (f *fakeEC2) DeregisterImage(_ context.Context, in *ec2.DeregisterImageInput, _ ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("DeregisterImage")
	delete(f.images, aws.ToString(in.ImageId))
	return &ec2.DeregisterImageOutput{}, nil
}

func (f *fakeEC2) CopyImage(_ context.Context, in *ec2.CopyImageInput, _ ...func(*ec2.Options)) (*ec2.CopyImageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("CopyImage")
	snap := &types.Snapshot{SnapshotId: aws.String(f.id("snap")), State: types.SnapshotStateCompleted, Encrypted: aws.Bool(true), KmsKeyId: f.keyUsed(in.KmsKeyId)}
	f.snapshots[*snap.SnapshotId] = snap
	img := &types.Image{ImageId: aws.String(f.id("ami")), Name: in.Name, State: types.ImageStateAvailable, RootDeviceType: types.DeviceTypeEbs,
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: snap.SnapshotId, Encrypted: aws.Bool(true), KmsKeyId: in.KmsKeyId}}}}
	if f.failCopies {
		img.State = types.ImageStateFailed
		img.StateReason = &types.StateReason{Code: aws.String("Client.InvalidKMSKey.InvalidState"), Message: aws.String("The KMS key may not be used")}
	}
	f.images[*img.ImageId] = img
	return &ec2.CopyImageOutput{ImageId: img.ImageId}, nil
}

func (f *fakeEC2) keyUsed(asked *string) *string {
	if f.wrongKey != "" {
		return aws.String(f.wrongKey)
	}
	return asked
}

func (f *fakeEC2) CreateTags(_ context.Context, _ *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("CreateTags")
	return &ec2.CreateTagsOutput{}, nil
}

func (f *fakeEC2) ModifyImageAttribute(_ context.Context, in *ec2.ModifyImageAttributeInput, _ ...func(*ec2.Options)) (*ec2.ModifyImageAttributeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ModifyImageAttribute")
	f.imageAttrs = append(f.imageAttrs, in)
	return &ec2.ModifyImageAttributeOutput{}, nil
}

func (f *fakeEC2) ModifySnapshotAttribute(_ context.Context, _ *ec2.ModifySnapshotAttributeInput, _ ...func(*ec2.Options)) (*ec2.ModifySnapshotAttributeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ModifySnapshotAttribute")
	return &ec2.ModifySnapshotAttributeOutput{}, nil
}

// fakeKMS answers DescribeKey from a table of key references.
type fakeKMS struct {
	ebs.KMSAPI
	keys map[string]kmstypes.KeyMetadata
}

func (f *fakeKMS) DescribeKey(_ context.Context, in *kms.DescribeKeyInput, _ ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	md, ok := f.keys[aws.ToString(in.KeyId)]
	if !ok {
		return nil, &smithy.GenericAPIError{Code: "NotFoundException", Message: "Key '" + aws.ToString(in.KeyId) + "' does not exist"}
	}
	return &kms.DescribeKeyOutput{KeyMetadata: &md}, nil
}

func customerKey(region string) kmstypes.KeyMetadata {
	return kmstypes.KeyMetadata{
		Arn: aws.String("arn:aws:kms:" + region + ":111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"), KeyId: aws.String("1234abcd-12ab-34cd-56ef-1234567890ab"),
		AWSAccountId: aws.String("111111111111"), KeyManager: kmstypes.KeyManagerTypeCustomer, KeyState: kmstypes.KeyStateEnabled,
		KeySpec: kmstypes.KeySpecSymmetricDefault, KeyUsage: kmstypes.KeyUsageTypeEncryptDecrypt,
	}
}

// fakeClients is a fake account across regions.
type fakeClients struct {
	ec2s map[string]*fakeEC2
	kmss map[string]*fakeKMS
}

func newFakeClients(regions ...string) *fakeClients {
	c := &fakeClients{ec2s: map[string]*fakeEC2{}, kmss: map[string]*fakeKMS{}}
	for _, r := range regions {
		c.ec2s[r] = newFakeEC2(r)
		key := customerKey(r)
		c.kmss[r] = &fakeKMS{keys: map[string]kmstypes.KeyMetadata{"alias/amicrypt-build": key, *key.Arn: key}}
	}
	return c
}

func (c *fakeClients) EC2(region string) ebs.BuildAPI { return dryRunEC2{c.ec2s[region]} }
func (c *fakeClients) KMS(region string) ebs.KMSAPI   { return c.kmss[region] }
func (c *fakeClients) IAM() IAMAPI                    { return fakeIAM{"builder": true} }
func (c *fakeClients) SSM(string) SSMAPI              { return nil }
func (c *fakeClients) Config() aws.Config             { return aws.Config{} }
func (c *fakeClients) Identity(context.Context) (awsauth.Identity, error) {
	return awsauth.Identity{Account: "111111111111", ARN: "arn:aws:iam::111111111111:user/packer"}, nil
}

// sourceImage is the public AL2023 image of the default world, in short.
func sourceImage() *types.Image {
	return &types.Image{
		ImageId: aws.String(sourceAMI), Name: aws.String("al2023"), OwnerId: aws.String("137112412989"), State: types.ImageStateAvailable,
		RootDeviceType: types.DeviceTypeEbs, RootDeviceName: aws.String("/dev/xvda"), Architecture: types.ArchitectureValuesX8664,
		VirtualizationType: types.VirtualizationTypeHvm, EnaSupport: aws.Bool(true), BootMode: types.BootModeValuesUefiPreferred,
		ImdsSupport: types.ImdsSupportValuesV20, SriovNetSupport: aws.String("simple"), TpmSupport: types.TpmSupportValuesV20,
		BlockDeviceMappings: []types.BlockDeviceMapping{
			{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(sourceSnap), VolumeSize: aws.Int32(8), VolumeType: types.VolumeTypeGp3, DeleteOnTermination: aws.Bool(true)}},
			{DeviceName: aws.String("/dev/sdb"), VirtualName: aws.String("ephemeral0")},
		},
	}
}

// stepState prepares a config and a state bag over the fake clients.
func stepState(t *testing.T, clients *fakeClients, raw map[string]interface{}) (multistep.StateBag, *buildState) {
	t.Helper()
	t.Setenv("AWS_POLL_DELAY_SECONDS", "0.001")
	t.Setenv("AWS_MAX_ATTEMPTS", "")
	var c Config
	if _, _, err := c.Prepare(raw); err != nil {
		t.Fatal(err)
	}
	b := &buildState{config: &c, clients: clients, runID: "test"}
	state := new(multistep.BasicStateBag)
	state.Put("build", b)
	state.Put("ui", packersdk.TestUi(t))
	return state, b
}

func (f *fakeEC2) DescribeRegions(context.Context, *ec2.DescribeRegionsInput, ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error) {
	f.mu.Lock()
	f.record("DescribeRegions")
	f.mu.Unlock()
	var out ec2.DescribeRegionsOutput
	for _, r := range []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1"} {
		out.Regions = append(out.Regions, types.Region{RegionName: aws.String(r), OptInStatus: aws.String("opt-in-not-required")})
	}
	out.Regions = append(out.Regions, types.Region{RegionName: aws.String("me-south-1"), OptInStatus: aws.String("not-opted-in")})
	return &out, nil
}

// fakeIAM knows instance profiles by name.
type fakeIAM map[string]bool

func (f fakeIAM) GetInstanceProfile(_ context.Context, in *iam.GetInstanceProfileInput, _ ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error) {
	if !f[aws.ToString(in.InstanceProfileName)] {
		return nil, &smithy.GenericAPIError{Code: "NoSuchEntity", Message: "Instance Profile " + aws.ToString(in.InstanceProfileName) + " cannot be found."}
	}
	return &iam.GetInstanceProfileOutput{}, nil
}

// dryRunEC2 answers DryRun calls (preflight's probes) as EC2 does when
// the call would be allowed, and passes every other call to the fake.
type dryRunEC2 struct{ *fakeEC2 }

// dryRunAllowed is EC2's answer to an allowed DryRun call.
var dryRunAllowed = &smithy.GenericAPIError{Code: "DryRunOperation", Message: "Request would have succeeded, but DryRun flag is set."}

func (d dryRunEC2) DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, o ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DescribeImages(ctx, in, o...)
}

func (d dryRunEC2) DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, o ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DescribeSnapshots(ctx, in, o...)
}

func (d dryRunEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, o ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DescribeInstances(ctx, in, o...)
}

func (d dryRunEC2) DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, o ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DescribeVolumes(ctx, in, o...)
}

func (d dryRunEC2) DescribeKeyPairs(ctx context.Context, in *ec2.DescribeKeyPairsInput, o ...func(*ec2.Options)) (*ec2.DescribeKeyPairsOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DescribeKeyPairs(ctx, in, o...)
}

func (d dryRunEC2) DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, o ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DescribeLaunchTemplates(ctx, in, o...)
}

func (d dryRunEC2) DescribeVpcs(ctx context.Context, in *ec2.DescribeVpcsInput, o ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DescribeVpcs(ctx, in, o...)
}

func (d dryRunEC2) DescribeSecurityGroups(ctx context.Context, in *ec2.DescribeSecurityGroupsInput, o ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DescribeSecurityGroups(ctx, in, o...)
}

func (d dryRunEC2) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, o ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.CreateTags(ctx, in, o...)
}

func (d dryRunEC2) DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, o ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DeleteTags(ctx, in, o...)
}

func (d dryRunEC2) RunInstances(ctx context.Context, in *ec2.RunInstancesInput, o ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.RunInstances(ctx, in, o...)
}

func (d dryRunEC2) StopInstances(ctx context.Context, in *ec2.StopInstancesInput, o ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.StopInstances(ctx, in, o...)
}

func (d dryRunEC2) TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, o ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.TerminateInstances(ctx, in, o...)
}

func (d dryRunEC2) DeleteVolume(ctx context.Context, in *ec2.DeleteVolumeInput, o ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DeleteVolume(ctx, in, o...)
}

func (d dryRunEC2) ImportKeyPair(ctx context.Context, in *ec2.ImportKeyPairInput, o ...func(*ec2.Options)) (*ec2.ImportKeyPairOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.ImportKeyPair(ctx, in, o...)
}

func (d dryRunEC2) CreateKeyPair(ctx context.Context, in *ec2.CreateKeyPairInput, o ...func(*ec2.Options)) (*ec2.CreateKeyPairOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.CreateKeyPair(ctx, in, o...)
}

func (d dryRunEC2) DeleteKeyPair(ctx context.Context, in *ec2.DeleteKeyPairInput, o ...func(*ec2.Options)) (*ec2.DeleteKeyPairOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DeleteKeyPair(ctx, in, o...)
}

func (d dryRunEC2) CreateSecurityGroup(ctx context.Context, in *ec2.CreateSecurityGroupInput, o ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.CreateSecurityGroup(ctx, in, o...)
}

func (d dryRunEC2) AuthorizeSecurityGroupIngress(ctx context.Context, in *ec2.AuthorizeSecurityGroupIngressInput, o ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.AuthorizeSecurityGroupIngress(ctx, in, o...)
}

func (d dryRunEC2) DeleteSecurityGroup(ctx context.Context, in *ec2.DeleteSecurityGroupInput, o ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DeleteSecurityGroup(ctx, in, o...)
}

func (d dryRunEC2) CreateSnapshot(ctx context.Context, in *ec2.CreateSnapshotInput, o ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.CreateSnapshot(ctx, in, o...)
}

func (d dryRunEC2) CopySnapshot(ctx context.Context, in *ec2.CopySnapshotInput, o ...func(*ec2.Options)) (*ec2.CopySnapshotOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.CopySnapshot(ctx, in, o...)
}

func (d dryRunEC2) RegisterImage(ctx context.Context, in *ec2.RegisterImageInput, o ...func(*ec2.Options)) (*ec2.RegisterImageOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.RegisterImage(ctx, in, o...)
}

func (d dryRunEC2) CopyImage(ctx context.Context, in *ec2.CopyImageInput, o ...func(*ec2.Options)) (*ec2.CopyImageOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.CopyImage(ctx, in, o...)
}

func (d dryRunEC2) DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, o ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DeleteSnapshot(ctx, in, o...)
}

func (d dryRunEC2) DeregisterImage(ctx context.Context, in *ec2.DeregisterImageInput, o ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DeregisterImage(ctx, in, o...)
}

// CreateGrant answers preflight's DryRun probe as KMS does when the grant
// would be allowed; the builder makes no grant itself.
func (f *fakeKMS) CreateGrant(_ context.Context, in *kms.CreateGrantInput, _ ...func(*kms.Options)) (*kms.CreateGrantOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, &smithy.GenericAPIError{Code: "DryRunOperationException", Message: "The request would have succeeded, but the DryRun option is set."}
	}
	return nil, fmt.Errorf("fakeKMS: CreateGrant %s: the builder makes no grant", aws.ToString(in.KeyId))
}

func (d dryRunEC2) ModifyImageAttribute(ctx context.Context, in *ec2.ModifyImageAttributeInput, o ...func(*ec2.Options)) (*ec2.ModifyImageAttributeOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.ModifyImageAttribute(ctx, in, o...)
}

func (d dryRunEC2) ModifySnapshotAttribute(ctx context.Context, in *ec2.ModifySnapshotAttributeInput, o ...func(*ec2.Options)) (*ec2.ModifySnapshotAttributeOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.ModifySnapshotAttribute(ctx, in, o...)
}

func (d dryRunEC2) DescribeRegions(ctx context.Context, in *ec2.DescribeRegionsInput, o ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.fakeEC2.DescribeRegions(ctx, in, o...)
}

func (d dryRunEC2) EnableImageDeprecation(ctx context.Context, in *ec2.EnableImageDeprecationInput, o ...func(*ec2.Options)) (*ec2.EnableImageDeprecationOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.BuildAPI.EnableImageDeprecation(ctx, in, o...)
}

func (d dryRunEC2) EnableImageDeregistrationProtection(ctx context.Context, in *ec2.EnableImageDeregistrationProtectionInput, o ...func(*ec2.Options)) (*ec2.EnableImageDeregistrationProtectionOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.BuildAPI.EnableImageDeregistrationProtection(ctx, in, o...)
}

func (d dryRunEC2) CreateLaunchTemplate(ctx context.Context, in *ec2.CreateLaunchTemplateInput, o ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.BuildAPI.CreateLaunchTemplate(ctx, in, o...)
}

func (d dryRunEC2) CreateFleet(ctx context.Context, in *ec2.CreateFleetInput, o ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.BuildAPI.CreateFleet(ctx, in, o...)
}

func (d dryRunEC2) DeleteLaunchTemplate(ctx context.Context, in *ec2.DeleteLaunchTemplateInput, o ...func(*ec2.Options)) (*ec2.DeleteLaunchTemplateOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.BuildAPI.DeleteLaunchTemplate(ctx, in, o...)
}

func (d dryRunEC2) GetPasswordData(ctx context.Context, in *ec2.GetPasswordDataInput, o ...func(*ec2.Options)) (*ec2.GetPasswordDataOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.BuildAPI.GetPasswordData(ctx, in, o...)
}

func (d dryRunEC2) DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, o ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	if aws.ToBool(in.DryRun) {
		return nil, dryRunAllowed
	}
	return d.BuildAPI.DescribeSubnets(ctx, in, o...)
}
