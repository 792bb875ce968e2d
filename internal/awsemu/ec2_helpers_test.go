package awsemu

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

// Accounts and regions of the default world.
const (
	acctAmazon = "137112412989"
	acctBuild  = "111111111111"
	acctT2     = "222222222222"
	acctT3     = "333333333333"
	acctT4     = "444444444444"
	east       = "us-east-1"
	west       = "us-west-2"
	seedAMI    = "ami-0a1b2c3d4e5f60001"
	seedSnap   = "snap-0a1b2c3d4e5f60001"
)

// ec2Env is one emulator and its clients for an EC2 test.
type ec2Env struct {
	t   *testing.T
	ctx context.Context
	srv *Server
}

func newEC2Env(t *testing.T, opts Options) *ec2Env {
	t.Helper()
	return &ec2Env{t: t, ctx: context.Background(), srv: Start(t, opts)}
}

// sdkAttempts lets the SDK retry what it deems retryable (never the error
// codes these tests assert): aws-sdk-go-v2 can lose a connection while it
// decodes a large response over loopback and retries it
// (aws/aws-sdk-go-v2#2737).
const sdkAttempts = 3

func (x *ec2Env) ec2(account, region string) *ec2.Client {
	return ec2.NewFromConfig(x.srv.Config(x.ctx, account, region), func(o *ec2.Options) { o.RetryMaxAttempts = sdkAttempts })
}

func (x *ec2Env) roleEC2(account, region string) *ec2.Client {
	cfg := x.srv.RoleConfig(x.ctx, acctBuild, "arn:aws:iam::"+account+":role/amicrypt-copy", externalIDFor(account), region)
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.RetryMaxAttempts = sdkAttempts })
}

func externalIDFor(account string) string {
	if account == acctT4 {
		return "amicrypt-demo"
	}
	return ""
}

func (x *ec2Env) kms(account, region string) *kms.Client {
	return kms.NewFromConfig(x.srv.Config(x.ctx, account, region), func(o *kms.Options) { o.RetryMaxAttempts = sdkAttempts })
}

// keyARN resolves a key reference of account in region through KMS.
func (x *ec2Env) keyARN(account, region, ref string) string {
	x.t.Helper()
	out, err := x.kms(account, region).DescribeKey(x.ctx, &kms.DescribeKeyInput{KeyId: aws.String(ref)})
	if err != nil {
		x.t.Fatalf("DescribeKey %s in %s/%s: %v", ref, account, region, err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// apiCode is the API error code of err, "" for nil.
func apiCode(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return "not-an-api-error: " + err.Error()
}

func apiMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return ""
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// poll calls f until it reports done, failing after 10 s of wall time.
func poll[T any](t *testing.T, what string, f func() (T, bool)) T {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, done := f()
		if done {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last: %+v)", what, v)
		}
		time.Sleep(3 * time.Millisecond)
	}
}

func (x *ec2Env) image(c *ec2.Client, id string) types.Image {
	x.t.Helper()
	out := must[*ec2.DescribeImagesOutput](x.t, "DescribeImages "+id)(c.DescribeImages(x.ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}}))
	if len(out.Images) != 1 {
		x.t.Fatalf("DescribeImages %s: %d images", id, len(out.Images))
	}
	return out.Images[0]
}

// waitImage waits until the image leaves pending.
func (x *ec2Env) waitImage(c *ec2.Client, id string) types.Image {
	x.t.Helper()
	return poll(x.t, "image "+id, func() (types.Image, bool) {
		img := x.image(c, id)
		return img, img.State != types.ImageStatePending
	})
}

func (x *ec2Env) snapshot(c *ec2.Client, id string) types.Snapshot {
	x.t.Helper()
	out := must[*ec2.DescribeSnapshotsOutput](x.t, "DescribeSnapshots "+id)(c.DescribeSnapshots(x.ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}}))
	if len(out.Snapshots) != 1 {
		x.t.Fatalf("DescribeSnapshots %s: %d snapshots", id, len(out.Snapshots))
	}
	return out.Snapshots[0]
}

func (x *ec2Env) waitSnapshot(c *ec2.Client, id string) types.Snapshot {
	x.t.Helper()
	return poll(x.t, "snapshot "+id, func() (types.Snapshot, bool) {
		s := x.snapshot(c, id)
		return s, s.State != types.SnapshotStatePending
	})
}

func (x *ec2Env) instance(c *ec2.Client, id string) types.Instance {
	x.t.Helper()
	out := must[*ec2.DescribeInstancesOutput](x.t, "DescribeInstances "+id)(c.DescribeInstances(x.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}))
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		x.t.Fatalf("DescribeInstances %s: %+v", id, out.Reservations)
	}
	return out.Reservations[0].Instances[0]
}

// waitInstance waits until the instance is in a stable state.
func (x *ec2Env) waitInstance(c *ec2.Client, id string) types.Instance {
	x.t.Helper()
	return poll(x.t, "instance "+id, func() (types.Instance, bool) {
		inst := x.instance(c, id)
		switch inst.State.Name {
		case types.InstanceStateNameRunning, types.InstanceStateNameStopped, types.InstanceStateNameTerminated:
			return inst, true
		}
		return inst, false
	})
}

// encryptedAMI makes an available AMI in account/region whose root snapshot
// is encrypted under keyRef ("" for the default EBS key): launch with an
// encrypted root volume, stop, CreateImage, terminate.
func (x *ec2Env) encryptedAMI(account, region, keyRef, name string) (amiID, snapID string) {
	x.t.Helper()
	c := x.ec2(account, region)
	src := seedImageIn(region)
	ebs := &types.EbsBlockDevice{Encrypted: aws.Bool(true)}
	if keyRef != "" {
		ebs.KmsKeyId = aws.String(keyRef)
	}
	run := must[*ec2.RunInstancesOutput](x.t, "RunInstances")(c.RunInstances(x.ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(src), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: types.InstanceTypeT3Micro,
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: ebs}},
	}))
	id := aws.ToString(run.Instances[0].InstanceId)
	if inst := x.waitInstance(c, id); inst.State.Name != types.InstanceStateNameRunning {
		x.t.Fatalf("instance %s: %s (%v)", id, inst.State.Name, inst.StateReason)
	}
	must[*ec2.StopInstancesOutput](x.t, "StopInstances")(c.StopInstances(x.ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}))
	x.waitInstance(c, id)
	ci := must[*ec2.CreateImageOutput](x.t, "CreateImage")(c.CreateImage(x.ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String(name)}))
	img := x.waitImage(c, aws.ToString(ci.ImageId))
	if img.State != types.ImageStateAvailable {
		x.t.Fatalf("image %s: %s %v", aws.ToString(img.ImageId), img.State, img.StateReason)
	}
	must[*ec2.TerminateInstancesOutput](x.t, "TerminateInstances")(c.TerminateInstances(x.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}))
	x.waitInstance(c, id)
	return aws.ToString(img.ImageId), aws.ToString(img.BlockDeviceMappings[0].Ebs.SnapshotId)
}

func seedImageIn(region string) string {
	return map[string]string{east: "ami-0a1b2c3d4e5f60001", west: "ami-0a1b2c3d4e5f60002",
		"eu-west-1": "ami-0a1b2c3d4e5f60003", "eu-central-1": "ami-0a1b2c3d4e5f60004"}[region]
}

// share gives account launch permission on the AMI and createVolume
// permission on its snapshot.
func (x *ec2Env) share(owner, region, amiID, snapID, account string) {
	x.t.Helper()
	c := x.ec2(owner, region)
	must[*ec2.ModifyImageAttributeOutput](x.t, "ModifyImageAttribute")(c.ModifyImageAttribute(x.ctx, &ec2.ModifyImageAttributeInput{
		ImageId: aws.String(amiID), LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String(account)}}}}))
	must[*ec2.ModifySnapshotAttributeOutput](x.t, "ModifySnapshotAttribute")(c.ModifySnapshotAttribute(x.ctx, &ec2.ModifySnapshotAttributeInput{
		SnapshotId: aws.String(snapID), Attribute: types.SnapshotAttributeNameCreateVolumePermission,
		CreateVolumePermission: &types.CreateVolumePermissionModifications{Add: []types.CreateVolumePermission{{UserId: aws.String(account)}}}}))
}
