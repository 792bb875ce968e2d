package ec2_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// rawEC2 sends a signed EC2 Query call and returns the status and body.
func rawEC2(x *emutest.Env, account, region string, form url.Values) (int, string) {
	x.T.Helper()
	body := form.Encode()
	req, err := http.NewRequestWithContext(x.Ctx, http.MethodPost, x.Srv.URL()+"/", strings.NewReader(body))
	if err != nil {
		x.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	ak, sk, err := x.Srv.Emulator().Credentials(account)
	if err != nil {
		x.T.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}
	if err := v4.NewSigner().SignHTTP(x.Ctx, creds, req, hex.EncodeToString(sum[:]), "ec2", region, time.Now()); err != nil {
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

// ruleFixture is a build account with AMIs under the AWS-managed key, under
// the customer key, and an unencrypted snapshot and running instance.
type ruleFixture struct {
	managedAMI, managedSnap string
	custAMI, custSnap       string
	plainSnap, instance     string
	buildKey                string
}

func newRuleFixture(x *emutest.Env) ruleFixture {
	x.T.Helper()
	var f ruleFixture
	f.buildKey = x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
	f.managedAMI, f.managedSnap = x.EncryptedAMI(emutest.AcctBuild, emutest.East, "", "managed-1")
	f.custAMI, f.custSnap = x.EncryptedAMI(emutest.AcctBuild, emutest.East, "alias/amicrypt-build", "cust-1")
	c := x.EC2(emutest.AcctBuild, emutest.East)
	run := emutest.Must[*ec2.RunInstancesOutput](x.T, "RunInstances")(c.RunInstances(x.Ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))
	f.instance = aws.ToString(run.Instances[0].InstanceId)
	x.WaitInstance(c, f.instance)
	vol := aws.ToString(x.Instance(c, f.instance).BlockDeviceMappings[0].Ebs.VolumeId)
	snap := emutest.Must[*ec2.CreateSnapshotOutput](x.T, "CreateSnapshot")(c.CreateSnapshot(x.Ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)}))
	f.plainSnap = aws.ToString(snap.SnapshotId)
	x.WaitSnapshot(c, f.plainSnap)
	return f
}

// TestEC2ErrorRules checks the synchronous error of every rule of
// docs/aws-behaviour.md section 3 that has one, code and text.
func TestEC2ErrorRules(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	f := newRuleFixture(x)
	ctx := x.Ctx
	b := x.EC2(emutest.AcctBuild, emutest.East)
	t2 := x.EC2(emutest.AcctT2, emutest.East)
	share := func(u string) *types.LaunchPermissionModifications {
		return &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String(u)}}}
	}
	tests := []struct {
		name string
		call func() error
		code string
		msg  string // exact message when set; a regexp when it starts with ^
	}{
		{"rule 1: CopySnapshot unencrypted copy of encrypted", func() error {
			_, err := b.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(f.custSnap), SourceRegion: aws.String(emutest.East), Encrypted: aws.Bool(false)})
			return err
		}, "InvalidRequest", "Snapshot " + f.custSnap + " is encrypted. Creating an unencrypted copy from an encrypted snapshot is not supported."},
		{"rule 1: CopyImage unencrypted copy of encrypted", func() error {
			_, err := b.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(f.custAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("x-1"), Encrypted: aws.Bool(false)})
			return err
		}, "InvalidRequest", "Snapshot " + f.custSnap + " is encrypted. Creating an unencrypted copy from an encrypted snapshot is not supported."},
		{"rule 2: CopySnapshot KmsKeyId without Encrypted", func() error {
			_, err := b.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(f.plainSnap), SourceRegion: aws.String(emutest.East), KmsKeyId: aws.String(f.buildKey)})
			return err
		}, "InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set."},
		{"rule 2: CopyImage KmsKeyId with Encrypted=false", func() error {
			_, err := b.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("x-2"),
				Encrypted: aws.Bool(false), KmsKeyId: aws.String(f.buildKey)})
			return err
		}, "InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set."},
		{"rule 2: RunInstances KmsKeyId without Encrypted", func() error {
			_, err := b.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
				BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{KmsKeyId: aws.String(f.buildKey)}}}})
			return err
		}, "InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set."},
		{"rule 3: share an AMI under the AWS managed key", func() error {
			_, err := b.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(f.managedAMI), LaunchPermission: share(emutest.AcctT2)})
			return err
		}, "InvalidParameter", "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify another snapshot."},
		{"rule 3: share a snapshot under the AWS managed key", func() error {
			_, err := b.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(f.managedSnap),
				Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeAdd, UserIds: []string{emutest.AcctT2}})
			return err
		}, "OperationNotPermitted", "Encrypted snapshots with EBS default key cannot be shared"},
		{"rule 3: an encrypted AMI can't be public", func() error {
			_, err := b.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(f.custAMI),
				LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{Group: types.PermissionGroupAll}}}})
			return err
		}, "InvalidParameter", ""},
		{"rule 3: an encrypted snapshot can't be public", func() error {
			_, err := b.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(f.custSnap),
				Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeAdd, GroupNames: []string{"all"}})
			return err
		}, "OperationNotPermitted", ""},
		{"rule 4: unshared AMI is invisible", func() error {
			_, err := t2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{f.custAMI}})
			return err
		}, "InvalidAMIID.NotFound", "The image id '[" + f.custAMI + "]' does not exist"},
		{"rule 4: unshared snapshot is invisible", func() error {
			_, err := t2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{f.custSnap}})
			return err
		}, "InvalidSnapshot.NotFound", "The snapshot '" + f.custSnap + "' does not exist."},
		{"rule 4: unshared AMI can't be copied", func() error {
			_, err := t2.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(f.custAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("x-3")})
			return err
		}, "InvalidAMIID.NotFound", "The image id '[" + f.custAMI + "]' does not exist"},
		{"rule 4: unshared AMI can't be launched", func() error {
			_, err := t2.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(f.custAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
			return err
		}, "InvalidAMIID.NotFound", "The image id '[" + f.custAMI + "]' does not exist"},
		{"rule 11: duplicate AMI name", func() error {
			_, err := b.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("cust-1"), RootDeviceName: aws.String("/dev/xvda"),
				BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(f.plainSnap)}}}})
			return err
		}, "InvalidAMIName.Duplicate", "AMI name cust-1 is already in use by AMI " + f.custAMI},
		{"rule 11: AMI name too short", func() error {
			_, err := b.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("ab")})
			return err
		}, "InvalidAMIName.Malformed", ""},
		{"rule 11: AMI name with a bad character", func() error {
			_, err := b.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(f.instance), Name: aws.String("bad#name")})
			return err
		}, "InvalidAMIName.Malformed", ""},
		{"rule 12: snapshot in use", func() error {
			_, err := b.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(f.custSnap)})
			return err
		}, "InvalidSnapshot.InUse", "The snapshot " + f.custSnap + " is currently in use by " + f.custAMI},
		{"malformed AMI ID", func() error {
			_, err := b.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{"ami-xyz"}})
			return err
		}, "InvalidAMIID.Malformed", ""},
		{"unknown filter", func() error {
			_, err := b.DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("colour"), Values: []string{"red"}}}})
			return err
		}, "InvalidParameterValue", "The filter 'colour' is invalid"},
		{"DryRun allowed", func() error {
			_, err := b.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), DryRun: aws.Bool(true)})
			return err
		}, "DryRunOperation", "Request would have succeeded, but DryRun flag is set."},
		{"reserved tag key", func() error {
			_, err := b.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{f.custAMI}, Tags: []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("y")}}})
			return err
		}, "InvalidParameterValue", ""},
		{"CreateTags on an unknown AMI", func() error {
			_, err := b.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"ami-0123456789abcdef0"}, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}})
			return err
		}, "InvalidAMIID.NotFound", ""},
		{"copy from a disabled region", func() error {
			_, err := b.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String("ap-southeast-3"), Name: aws.String("x-4")})
			return err
		}, "InvalidParameterValue", ""},
		{"unknown key pair at launch", func() error {
			_, err := b.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), KeyName: aws.String("nope")})
			return err
		}, "InvalidKeyPair.NotFound", "The key pair 'nope' does not exist"},
		{"unknown subnet at launch", func() error {
			_, err := b.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: aws.String("subnet-0123456789abcdef0")})
			return err
		}, "InvalidSubnetID.NotFound", "The subnet ID 'subnet-0123456789abcdef0' does not exist"},
		{"default security group can't be deleted", func() error {
			_, err := b.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupName: aws.String("default")})
			return err
		}, "CannotDelete", ""},
		{"unknown instance", func() error {
			_, err := b.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
			return err
		}, "InvalidInstanceID.NotFound", "The instance ID 'i-0123456789abcdef0' does not exist"},
		{"modify another account's AMI", func() error {
			_, err := b.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(emutest.SeedAMI), LaunchPermission: share(emutest.AcctT2)})
			return err
		}, "AuthFailure", ""},
		{"delete another account's snapshot", func() error {
			_, err := t2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(f.custSnap)})
			return err
		}, "InvalidSnapshot.NotFound", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if got := emutest.APICode(err); got != tc.code {
				t.Fatalf("code %q (%v), want %q", got, err, tc.code)
			}
			msg := emutest.APIMessage(err)
			switch {
			case tc.msg == "":
			case strings.HasPrefix(tc.msg, "^"):
				if !regexp.MustCompile(tc.msg).MatchString(msg) {
					t.Fatalf("message %q does not match %s", msg, tc.msg)
				}
			case msg != tc.msg:
				t.Fatalf("message %q, want %q", msg, tc.msg)
			}
		})
	}
}

func TestEC2WireDetails(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	tests := []struct {
		name   string
		form   url.Values
		status int
		body   string
	}{
		{"unknown action", url.Values{"Action": {"FrobnicateImages"}, "Version": {"2016-11-15"}}, 400, "<Code>InvalidAction</Code>"},
		{"DryRun is HTTP 412", url.Values{"Action": {"DescribeImages"}, "Version": {"2016-11-15"}, "DryRun": {"true"}}, 412, "<Code>DryRunOperation</Code>"},
		{"response envelope", url.Values{"Action": {"DescribeImages"}, "Version": {"2016-11-15"}, "ImageId.1": {emutest.SeedAMI}}, 200,
			`<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>`},
		{"lists are items in sets", url.Values{"Action": {"DescribeImages"}, "Version": {"2016-11-15"}, "ImageId.1": {emutest.SeedAMI}}, 200,
			"<imagesSet><item><imageId>" + emutest.SeedAMI + "</imageId>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawEC2(x, emutest.AcctBuild, emutest.East, tc.form)
			if status != tc.status || !strings.Contains(body, tc.body) {
				t.Fatalf("HTTP %d %s\nwant %d containing %s", status, body, tc.status, tc.body)
			}
		})
	}
}

// TestEC2DryRunDenied: a principal whose IAM denies the action gets
// UnauthorizedOperation, with and without DryRun.
func TestEC2DryRunDenied(t *testing.T) {
	w, err := awsemu.DefaultWorld()
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Accounts {
		if w.Accounts[i].ID == emutest.AcctT2 {
			w.Accounts[i].Users[0].Deny = []string{"ec2:RunInstances", "ec2:Copy*"}
		}
	}
	x := emutest.NewEnv(t, awsemu.Options{World: w})
	c := x.EC2(emutest.AcctT2, emutest.East)
	for _, dry := range []bool{true, false} {
		_, err := c.RunInstances(x.Ctx, &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), DryRun: aws.Bool(dry)})
		if emutest.APICode(err) != "UnauthorizedOperation" {
			t.Fatalf("RunInstances DryRun=%t: %v", dry, err)
		}
	}
	_, err = c.CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("abc"), DryRun: aws.Bool(true)})
	if emutest.APICode(err) != "UnauthorizedOperation" {
		t.Fatalf("CopyImage DryRun: %v", err)
	}
	if _, err := c.DescribeImages(x.Ctx, &ec2.DescribeImagesInput{DryRun: aws.Bool(true)}); emutest.APICode(err) != "DryRunOperation" {
		t.Fatalf("DescribeImages DryRun (allowed): %v", err)
	}
}

// TestEC2AsyncKeyFailures: without key permission, or with an unusable
// destination key, CopyImage and CopySnapshot are accepted and fail later
// (docs/aws-behaviour.md 3.4); a launch fails with Client error on launch (docs/aws-behaviour.md 3.5).
func TestEC2AsyncKeyFailures(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	ctx := x.Ctx
	f := newRuleFixture(x)
	x.Share(emutest.AcctBuild, emutest.East, f.custAMI, f.custSnap, emutest.AcctT3)
	x.Share(emutest.AcctBuild, emutest.East, f.custAMI, f.custSnap, emutest.AcctT2)
	// 222222222222 gets a grant on the source key; 333333333333 none.
	_, err := x.KMS(emutest.AcctBuild, emutest.East).CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(f.buildKey), GranteePrincipal: aws.String("arn:aws:iam::" + emutest.AcctT2 + ":root"),
		Operations: []kmstypes.GrantOperation{"Decrypt", "DescribeKey", "CreateGrant", "ReEncryptFrom", "GenerateDataKeyWithoutPlaintext"}})
	if err != nil {
		t.Fatal(err)
	}
	t2Key := x.KeyARN(emutest.AcctT2, emutest.East, "alias/amicrypt-target")
	t3Key := x.KeyARN(emutest.AcctT3, emutest.East, "alias/amicrypt-target")
	disabled := emutest.Must[*kms.CreateKeyOutput](t, "CreateKey")(x.KMS(emutest.AcctT2, emutest.East).CreateKey(ctx, &kms.CreateKeyInput{}))
	emutest.Must[*kms.DisableKeyOutput](t, "DisableKey")(x.KMS(emutest.AcctT2, emutest.East).DisableKey(ctx, &kms.DisableKeyInput{KeyId: disabled.KeyMetadata.KeyId}))
	missing := "arn:aws:kms:us-east-1:222222222222:key/00000000-0000-0000-0000-000000000000"

	tests := []struct {
		name     string
		account  string
		key      string
		wantOK   bool
		inReason string
	}{
		{"no permission on the source key", emutest.AcctT3, t3Key, false, f.buildKey},
		{"grant on the source key", emutest.AcctT2, t2Key, true, ""},
		{"disabled destination key", emutest.AcctT2, aws.ToString(disabled.KeyMetadata.Arn), false, aws.ToString(disabled.KeyMetadata.Arn)},
		{"unknown destination key", emutest.AcctT2, missing, false, missing},
		{"destination key of another account", emutest.AcctT2, t3Key, false, t3Key},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := x.EC2(tc.account, emutest.East)
			out, err := c.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(f.custAMI), SourceRegion: aws.String(emutest.East),
				Name: aws.String("copy-" + string(rune('a'+i))), Encrypted: aws.Bool(true), KmsKeyId: aws.String(tc.key)})
			if err != nil {
				t.Fatalf("CopyImage must be accepted: %v", err)
			}
			img := x.WaitImage(c, aws.ToString(out.ImageId))
			if tc.wantOK {
				if img.State != types.ImageStateAvailable {
					t.Fatalf("copy %s: %+v", img.State, img.StateReason)
				}
				return
			}
			if img.State != types.ImageStateFailed || img.StateReason == nil || aws.ToString(img.StateReason.Code) != "Client.InvalidKMSKey.InvalidState" ||
				!strings.Contains(aws.ToString(img.StateReason.Message), tc.inReason) || !strings.Contains(aws.ToString(img.StateReason.Message), tc.account) {
				t.Fatalf("copy: %s %+v, want failed naming %s and %s", img.State, img.StateReason, tc.inReason, tc.account)
			}
			sc, err := c.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(f.custSnap), SourceRegion: aws.String(emutest.East),
				Encrypted: aws.Bool(true), KmsKeyId: aws.String(tc.key)})
			if err != nil {
				t.Fatalf("CopySnapshot must be accepted: %v", err)
			}
			snap := x.WaitSnapshot(c, aws.ToString(sc.SnapshotId))
			if snap.State != types.SnapshotStateError || !strings.Contains(aws.ToString(snap.StateMessage), tc.inReason) {
				t.Fatalf("snapshot copy: %s %q", snap.State, aws.ToString(snap.StateMessage))
			}
		})
	}

	t.Run("launch without key permission", func(t *testing.T) {
		c := x.EC2(emutest.AcctT3, emutest.East)
		run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(f.custAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))
		if run.Instances[0].State.Name != types.InstanceStateNamePending {
			t.Fatalf("launch state %s, want pending", run.Instances[0].State.Name)
		}
		inst := x.WaitInstance(c, aws.ToString(run.Instances[0].InstanceId))
		if inst.State.Name != types.InstanceStateNameTerminated || inst.StateReason == nil ||
			aws.ToString(inst.StateReason.Code) != "Client.InternalError" || aws.ToString(inst.StateReason.Message) != "Client.InternalError: Client error on launch" {
			t.Fatalf("instance %s %+v", inst.State.Name, inst.StateReason)
		}
	})
	t.Run("launch with a grant", func(t *testing.T) {
		c := x.EC2(emutest.AcctT2, emutest.East)
		run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(f.custAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))
		inst := x.WaitInstance(c, aws.ToString(run.Instances[0].InstanceId))
		if inst.State.Name != types.InstanceStateNameRunning {
			t.Fatalf("instance %s %+v", inst.State.Name, inst.StateReason)
		}
		vol := x.EC2(emutest.AcctT2, emutest.East)
		vols := emutest.Must[*ec2.DescribeVolumesOutput](t, "DescribeVolumes")(vol.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{aws.ToString(inst.BlockDeviceMappings[0].Ebs.VolumeId)}}))
		if aws.ToString(vols.Volumes[0].KmsKeyId) != f.buildKey {
			t.Fatalf("volume restored from a shared snapshot keeps its key: %s", aws.ToString(vols.Volumes[0].KmsKeyId))
		}
	})
}
