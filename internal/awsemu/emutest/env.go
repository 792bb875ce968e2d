package emutest

// env.go: Env, one emulator and its SDK clients for a conformance test, and
// the helpers every service package's tests share.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

// Accounts, regions and seeded resources of the default world.
const (
	AcctAmazon = "137112412989"
	AcctBuild  = "111111111111"
	AcctT2     = "222222222222"
	AcctT3     = "333333333333"
	AcctT4     = "444444444444"
	East       = "us-east-1"
	West       = "us-west-2"
	SeedAMI    = "ami-0a1b2c3d4e5f60001"
	SeedSnap   = "snap-0a1b2c3d4e5f60001"
)

// SDKAttempts lets the SDK retry what it deems retryable (never the error
// codes these tests assert): aws-sdk-go-v2 can lose a connection while it
// decodes a large response over loopback and retries it
// (aws/aws-sdk-go-v2#2737).
const SDKAttempts = 3

// Env is one emulator and its clients for a test.
type Env struct {
	T   *testing.T
	Ctx context.Context
	Srv *Server
}

// NewEnv starts an emulator for a test.
func NewEnv(t *testing.T, opts awsemu.Options) *Env {
	t.Helper()
	return &Env{T: t, Ctx: context.Background(), Srv: Start(t, opts)}
}

func (x *Env) EC2(account, region string) *ec2.Client {
	return ec2.NewFromConfig(x.Srv.Config(x.Ctx, account, region), func(o *ec2.Options) { o.RetryMaxAttempts = SDKAttempts })
}

func (x *Env) RoleEC2(account, region string) *ec2.Client {
	cfg := x.Srv.RoleConfig(x.Ctx, AcctBuild, "arn:aws:iam::"+account+":role/amicrypt-copy", ExternalIDFor(account), region)
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.RetryMaxAttempts = SDKAttempts })
}

func (x *Env) KMS(account, region string) *kms.Client {
	return kms.NewFromConfig(x.Srv.Config(x.Ctx, account, region), func(o *kms.Options) { o.RetryMaxAttempts = SDKAttempts })
}

// keyARN resolves a key reference of account in region through KMS.
func (x *Env) KeyARN(account, region, ref string) string {
	x.T.Helper()
	out, err := x.KMS(account, region).DescribeKey(x.Ctx, &kms.DescribeKeyInput{KeyId: aws.String(ref)})
	if err != nil {
		x.T.Fatalf("DescribeKey %s in %s/%s: %v", ref, account, region, err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

func (x *Env) Image(c *ec2.Client, id string) types.Image {
	x.T.Helper()
	out := Must[*ec2.DescribeImagesOutput](x.T, "DescribeImages "+id)(c.DescribeImages(x.Ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}}))
	if len(out.Images) != 1 {
		x.T.Fatalf("DescribeImages %s: %d images", id, len(out.Images))
	}
	return out.Images[0]
}

// waitImage waits until the image leaves pending.
func (x *Env) WaitImage(c *ec2.Client, id string) types.Image {
	x.T.Helper()
	return Poll(x.T, "image "+id, func() (types.Image, bool) {
		img := x.Image(c, id)
		return img, img.State != types.ImageStatePending
	})
}

func (x *Env) Snapshot(c *ec2.Client, id string) types.Snapshot {
	x.T.Helper()
	out := Must[*ec2.DescribeSnapshotsOutput](x.T, "DescribeSnapshots "+id)(c.DescribeSnapshots(x.Ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}}))
	if len(out.Snapshots) != 1 {
		x.T.Fatalf("DescribeSnapshots %s: %d snapshots", id, len(out.Snapshots))
	}
	return out.Snapshots[0]
}

func (x *Env) WaitSnapshot(c *ec2.Client, id string) types.Snapshot {
	x.T.Helper()
	return Poll(x.T, "snapshot "+id, func() (types.Snapshot, bool) {
		s := x.Snapshot(c, id)
		return s, s.State != types.SnapshotStatePending
	})
}

func (x *Env) Instance(c *ec2.Client, id string) types.Instance {
	x.T.Helper()
	out := Must[*ec2.DescribeInstancesOutput](x.T, "DescribeInstances "+id)(c.DescribeInstances(x.Ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}))
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		x.T.Fatalf("DescribeInstances %s: %+v", id, out.Reservations)
	}
	return out.Reservations[0].Instances[0]
}

// waitInstance waits until the instance is in a stable state.
func (x *Env) WaitInstance(c *ec2.Client, id string) types.Instance {
	x.T.Helper()
	return Poll(x.T, "instance "+id, func() (types.Instance, bool) {
		inst := x.Instance(c, id)
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
func (x *Env) EncryptedAMI(account, region, keyRef, name string) (amiID, snapID string) {
	x.T.Helper()
	c := x.EC2(account, region)
	src := SeedImageIn(region)
	ebs := &types.EbsBlockDevice{Encrypted: aws.Bool(true)}
	if keyRef != "" {
		ebs.KmsKeyId = aws.String(keyRef)
	}
	run := Must[*ec2.RunInstancesOutput](x.T, "RunInstances")(c.RunInstances(x.Ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(src), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: types.InstanceTypeT3Micro,
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: ebs}},
	}))
	id := aws.ToString(run.Instances[0].InstanceId)
	if inst := x.WaitInstance(c, id); inst.State.Name != types.InstanceStateNameRunning {
		x.T.Fatalf("instance %s: %s (%v)", id, inst.State.Name, inst.StateReason)
	}
	Must[*ec2.StopInstancesOutput](x.T, "StopInstances")(c.StopInstances(x.Ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}))
	x.WaitInstance(c, id)
	ci := Must[*ec2.CreateImageOutput](x.T, "CreateImage")(c.CreateImage(x.Ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String(name)}))
	img := x.WaitImage(c, aws.ToString(ci.ImageId))
	if img.State != types.ImageStateAvailable {
		x.T.Fatalf("image %s: %s %v", aws.ToString(img.ImageId), img.State, img.StateReason)
	}
	Must[*ec2.TerminateInstancesOutput](x.T, "TerminateInstances")(c.TerminateInstances(x.Ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}))
	x.WaitInstance(c, id)
	return aws.ToString(img.ImageId), aws.ToString(img.BlockDeviceMappings[0].Ebs.SnapshotId)
}

// share gives account launch permission on the AMI and createVolume
// permission on its snapshot.
func (x *Env) Share(owner, region, amiID, snapID, account string) {
	x.T.Helper()
	c := x.EC2(owner, region)
	Must[*ec2.ModifyImageAttributeOutput](x.T, "ModifyImageAttribute")(c.ModifyImageAttribute(x.Ctx, &ec2.ModifyImageAttributeInput{
		ImageId: aws.String(amiID), LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String(account)}}}}))
	Must[*ec2.ModifySnapshotAttributeOutput](x.T, "ModifySnapshotAttribute")(c.ModifySnapshotAttribute(x.Ctx, &ec2.ModifySnapshotAttributeInput{
		SnapshotId: aws.String(snapID), Attribute: types.SnapshotAttributeNameCreateVolumePermission,
		CreateVolumePermission: &types.CreateVolumePermissionModifications{Add: []types.CreateVolumePermission{{UserId: aws.String(account)}}}}))
}

// userCfg is an aws.Config of account for a user other than the first.
func (x *Env) UserCfg(account, region, accessKey, secret string) aws.Config {
	cfg := x.Srv.Config(x.Ctx, account, region)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(accessKey, secret, "")
	cfg.RetryMaxAttempts = SDKAttempts
	return cfg
}

// rawCall sends a signed request to the emulator and returns its status and
// body: the wire format itself is what some facts are about.
func (x *Env) RawCall(account, region, service, body string, header map[string]string) (int, string) {
	x.T.Helper()
	req, err := http.NewRequestWithContext(x.Ctx, http.MethodPost, x.Srv.URL()+"/", strings.NewReader(body))
	if err != nil {
		x.T.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	ak, sk, err := x.Srv.Emulator().Credentials(account)
	if err != nil {
		x.T.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(x.Ctx, aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}, req, hex.EncodeToString(sum[:]), service, region, time.Now()); err != nil {
		x.T.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		x.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// copyOf copies srcAMI (in srcRegion) into account/region and waits until
// the copy leaves pending.
func (x *Env) CopyOf(c *ec2.Client, srcAMI, srcRegion, name string, encrypted *bool, keyRef string) types.Image {
	x.T.Helper()
	in := &ec2.CopyImageInput{SourceImageId: aws.String(srcAMI), SourceRegion: aws.String(srcRegion), Name: aws.String(name), Encrypted: encrypted}
	if keyRef != "" {
		in.KmsKeyId = aws.String(keyRef)
	}
	out := Must[*ec2.CopyImageOutput](x.T, "CopyImage "+name)(c.CopyImage(x.Ctx, in))
	return x.WaitImage(c, aws.ToString(out.ImageId))
}

// ownEncryptedAMI is an available AMI of account in region encrypted under
// keyRef, made by copying the public seed AMI (cheaper than a launch).
func (x *Env) OwnEncryptedAMI(account, region, keyRef, name string) (amiID, snapID string) {
	x.T.Helper()
	img := x.CopyOf(x.EC2(account, region), SeedImageIn(region), region, name, aws.Bool(true), keyRef)
	if img.State != types.ImageStateAvailable {
		x.T.Fatalf("encrypted AMI %s: %s %+v", name, img.State, img.StateReason)
	}
	return aws.ToString(img.ImageId), aws.ToString(img.BlockDeviceMappings[0].Ebs.SnapshotId)
}

// apiCode is the API error code of err, "" for nil.
func APICode(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return "not-an-api-error: " + err.Error()
}

func APIMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return ""
}

func Must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// poll calls f until it reports done, failing after 10 s of wall time.
func Poll[T any](t *testing.T, what string, f func() (T, bool)) T {
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

func SeedImageIn(region string) string {
	return map[string]string{East: "ami-0a1b2c3d4e5f60001", West: "ami-0a1b2c3d4e5f60002",
		"eu-West-1": "ami-0a1b2c3d4e5f60003", "eu-central-1": "ami-0a1b2c3d4e5f60004"}[region]
}

func ExternalIDFor(account string) string {
	if account == AcctT4 {
		return "amicrypt-demo"
	}
	return ""
}

// wantFailedOnKey asserts the docs/aws-behaviour.md 3.4 convention: image failed with
// Client.InvalidKMSKey.InvalidState, naming the key and the caller account.
func WantFailedOnKey(t *testing.T, img types.Image, key, account string) {
	t.Helper()
	if img.State != types.ImageStateFailed || img.StateReason == nil ||
		aws.ToString(img.StateReason.Code) != "Client.InvalidKMSKey.InvalidState" ||
		!strings.Contains(aws.ToString(img.StateReason.Message), key) || !strings.Contains(aws.ToString(img.StateReason.Message), account) {
		t.Fatalf("image %s %+v: want failed, Client.InvalidKMSKey.InvalidState naming %s and %s", img.State, img.StateReason, key, account)
	}
}

// SourceKeyGrantOps are the five operations a grant on a source key gives
// an account that copies an AMI encrypted under it.
func SourceKeyGrantOps() []kmstypes.GrantOperation {
	return []kmstypes.GrantOperation{"Decrypt", "DescribeKey", "CreateGrant", "ReEncryptFrom", "GenerateDataKeyWithoutPlaintext"}
}

// WantCode fails the test unless err is the AWS API error code ("" for no
// error).
func WantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := APICode(err); got != code {
		t.Fatalf("%s: got error code %q (%v), want %q", what, got, err, code)
	}
}

// KMSClient is a KMS client of the account's default user that never
// retries, for tests that count or provoke errors.
func KMSClient(ctx context.Context, srv *Server, account, region string) *kms.Client {
	return kms.NewFromConfig(srv.Config(ctx, account, region), func(o *kms.Options) { o.RetryMaxAttempts = 1 })
}

// KeyARNOf resolves a key reference through DescribeKey.
func KeyARNOf(t *testing.T, ctx context.Context, c *kms.Client, ref string) string {
	t.Helper()
	out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(ref)})
	if err != nil {
		t.Fatalf("DescribeKey %s: %v", ref, err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// ImageKey is the key ARN of an image's first EBS snapshot, read as AWS
// clients must read it: from DescribeSnapshots (DescribeImages does not
// return KmsKeyId in an image's block device mappings).
func (x *Env) ImageKey(c *ec2.Client, img types.Image) string {
	x.T.Helper()
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs != nil && m.Ebs.SnapshotId != nil {
			return aws.ToString(x.Snapshot(c, aws.ToString(m.Ebs.SnapshotId)).KmsKeyId)
		}
	}
	x.T.Fatalf("image %s has no EBS snapshot", aws.ToString(img.ImageId))
	return ""
}
