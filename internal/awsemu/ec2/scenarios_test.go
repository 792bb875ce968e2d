package ec2_test

import (
	"errors"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestEC2CrossAccountScenarios: the variants of docs/aws-behaviour.md section 4's
// fan-out: an AWS-managed source key re-encrypted in S first, a target role
// that needs an ExternalId, and a copy into another region.
func TestEC2CrossAccountScenarios(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	ctx := x.Ctx
	s := x.EC2(emutest.AcctBuild, emutest.East)
	buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
	managedAMI, managedSnap := x.EncryptedAMI(emutest.AcctBuild, emutest.East, "", "managed-src")

	// Step 1: the source uses alias/aws/ebs, which can't be shared...
	_, err := s.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(managedAMI),
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String(emutest.AcctT2)}}}})
	if emutest.APICode(err) != "InvalidParameter" {
		t.Fatalf("sharing the AWS-managed-key AMI: %v", err)
	}
	_ = managedSnap
	// ...so S first re-encrypts it under its customer key.
	re := emutest.Must[*ec2.CopyImageOutput](t, "re-encrypt")(s.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(managedAMI), SourceRegion: aws.String(emutest.East),
		Name: aws.String("managed-src-cmk"), Encrypted: aws.Bool(true), KmsKeyId: aws.String(buildKey)}))
	src := x.WaitImage(s, aws.ToString(re.ImageId))
	if src.State != types.ImageStateAvailable || x.ImageKey(s, src) != buildKey {
		t.Fatalf("re-encrypted source: %s %+v", src.State, src.BlockDeviceMappings)
	}
	srcID, srcSnap := aws.ToString(src.ImageId), aws.ToString(src.BlockDeviceMappings[0].Ebs.SnapshotId)

	tests := []struct {
		name    string
		account string
		region  string
	}{
		{"same region", emutest.AcctT2, emutest.East},
		{"role with ExternalId", emutest.AcctT4, emutest.East},
		{"into another region", emutest.AcctT3, emutest.West},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x.Share(emutest.AcctBuild, emutest.East, srcID, srcSnap, tc.account)
			role := "arn:aws:iam::" + tc.account + ":role/amicrypt-copy"
			grant := emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant")(x.KMS(emutest.AcctBuild, emutest.East).CreateGrant(ctx, &kms.CreateGrantInput{
				KeyId: aws.String(buildKey), GranteePrincipal: aws.String(role), RetiringPrincipal: aws.String("arn:aws:iam::" + emutest.AcctBuild + ":root"),
				Operations: []kmstypes.GrantOperation{"Decrypt", "DescribeKey", "CreateGrant", "ReEncryptFrom", "GenerateDataKeyWithoutPlaintext"}}))
			target := x.RoleEC2(tc.account, tc.region)
			targetKey := x.KeyARN(tc.account, tc.region, "alias/amicrypt-target")
			out := emutest.Must[*ec2.CopyImageOutput](t, "CopyImage")(target.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(srcID), SourceRegion: aws.String(emutest.East),
				Name: aws.String("fanout-copy"), Encrypted: aws.Bool(true), KmsKeyId: aws.String(targetKey), ClientToken: aws.String("fanout-" + tc.account)}))
			img := x.WaitImage(target, aws.ToString(out.ImageId))
			if img.State != types.ImageStateAvailable || x.ImageKey(target, img) != targetKey ||
				aws.ToString(img.SourceImageRegion) != emutest.East {
				t.Fatalf("copy in %s/%s: %s %+v %+v", tc.account, tc.region, img.State, img.StateReason, img.BlockDeviceMappings)
			}
			// Step 5 extras in T: deprecation and deregistration protection.
			emutest.Must[*ec2.EnableImageDeprecationOutput](t, "deprecate")(target.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{
				ImageId: out.ImageId, DeprecateAt: aws.Time(time.Now().Add(365 * 24 * time.Hour))}))
			emutest.Must[*ec2.EnableImageDeregistrationProtectionOutput](t, "protect")(target.EnableImageDeregistrationProtection(ctx, &ec2.EnableImageDeregistrationProtectionInput{
				ImageId: out.ImageId, WithCooldown: aws.Bool(true)}))
			if got := x.Image(target, aws.ToString(out.ImageId)); aws.ToString(got.DeregistrationProtection) != "enabled-with-cooldown" || aws.ToString(got.DeprecationTime) == "" {
				t.Fatalf("protection %q deprecation %q", aws.ToString(got.DeregistrationProtection), aws.ToString(got.DeprecationTime))
			}
			// Step 6 in S.
			emutest.Must[*ec2.ModifyImageAttributeOutput](t, "unshare")(s.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(srcID),
				LaunchPermission: &types.LaunchPermissionModifications{Remove: []types.LaunchPermission{{UserId: aws.String(tc.account)}}}}))
			emutest.Must[*ec2.ModifySnapshotAttributeOutput](t, "unshare snapshot")(s.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(srcSnap),
				Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeRemove, UserIds: []string{tc.account}}))
			emutest.Must[*kms.RetireGrantOutput](t, "RetireGrant")(x.KMS(emutest.AcctBuild, emutest.East).RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(buildKey), GrantId: grant.GrantId}))
		})
	}
	if r := x.Srv.Emulator().Check(awsemu.CheckOptions{Account: emutest.AcctBuild, Ignore: []string{awsemu.CheckLeftoverInstance}}); !r.Pass {
		t.Fatalf("checker after the fan-out: %s", r)
	}
}

// TestEC2MoreActions covers the remaining actions, one call each.
func TestEC2MoreActions(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	ctx := x.Ctx
	c := x.EC2(emutest.AcctT2, emutest.East)
	amiID, snapID := x.EncryptedAMI(emutest.AcctT2, emutest.East, "alias/amicrypt-target", "more-1")
	run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(amiID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))
	instID := aws.ToString(run.Instances[0].InstanceId)
	x.WaitInstance(c, instID)
	sg := emutest.Must[*ec2.CreateSecurityGroupOutput](t, "CreateSecurityGroup")(c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("more"), Description: aws.String("more")}))
	perm := []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443), IpRanges: []types.IpRange{{CidrIp: aws.String("10.1.0.0/16")}}}}
	var volID string
	steps := []struct {
		name  string
		call  func() error
		check func() bool
	}{
		{"ResetImageAttribute", func() error {
			x.Share(emutest.AcctT2, emutest.East, amiID, snapID, emutest.AcctT3)
			_, err := c.ResetImageAttribute(ctx, &ec2.ResetImageAttributeInput{ImageId: aws.String(amiID), Attribute: types.ResetImageAttributeNameLaunchPermission})
			return err
		}, func() bool {
			_, err := x.EC2(emutest.AcctT3, emutest.East).DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}})
			return emutest.APICode(err) == "InvalidAMIID.NotFound"
		}},
		{"DescribeInstanceAttribute", func() error {
			out, err := c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(instID), Attribute: types.InstanceAttributeNameInstanceType})
			if err == nil && aws.ToString(out.InstanceType.Value) != "m1.small" {
				t.Errorf("instance type %q", aws.ToString(out.InstanceType.Value))
			}
			return err
		}, nil},
		{"ModifyInstanceAttribute needs a stopped instance", func() error {
			_, err := c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(instID), EnaSupport: &types.AttributeBooleanValue{Value: aws.Bool(false)}})
			if emutest.APICode(err) != "IncorrectInstanceState" {
				t.Errorf("ModifyInstanceAttribute on a running instance: %v", err)
			}
			return nil
		}, nil},
		{"AuthorizeSecurityGroupEgress", func() error {
			_, err := c.AuthorizeSecurityGroupEgress(ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: sg.GroupId, IpPermissions: perm})
			return err
		}, nil},
		{"RevokeSecurityGroupIngress", func() error {
			if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: perm}); err != nil {
				return err
			}
			_, err := c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: perm})
			return err
		}, func() bool {
			out, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aws.ToString(sg.GroupId)}})
			return err == nil && len(out.SecurityGroups[0].IpPermissions) == 0 && len(out.SecurityGroups[0].IpPermissionsEgress) == 2
		}},
		{"CreateVolume from an encrypted snapshot", func() error {
			out, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(snapID), VolumeType: types.VolumeTypeGp3})
			if err == nil {
				volID = aws.ToString(out.VolumeId)
			}
			return err
		}, func() bool {
			vol := emutest.Poll(t, "volume available", func() (types.Volume, bool) {
				out := emutest.Must[*ec2.DescribeVolumesOutput](t, "DescribeVolumes")(c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{volID}}))
				return out.Volumes[0], out.Volumes[0].State != types.VolumeStateCreating
			})
			return aws.ToBool(vol.Encrypted) && vol.State == types.VolumeStateAvailable
		}},
		{"DeleteVolume", func() error {
			_, err := c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(volID)})
			return err
		}, func() bool {
			_, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{volID}})
			return emutest.APICode(err) == "InvalidVolume.NotFound"
		}},
		{"Disable encryption by default", func() error {
			if _, err := c.EnableEbsEncryptionByDefault(ctx, &ec2.EnableEbsEncryptionByDefaultInput{}); err != nil {
				return err
			}
			_, err := c.DisableEbsEncryptionByDefault(ctx, &ec2.DisableEbsEncryptionByDefaultInput{})
			return err
		}, func() bool {
			out, err := c.GetEbsEncryptionByDefault(ctx, &ec2.GetEbsEncryptionByDefaultInput{})
			return err == nil && !aws.ToBool(out.EbsEncryptionByDefault)
		}},
		{"ResetEbsDefaultKmsKeyId", func() error {
			if _, err := c.ModifyEbsDefaultKmsKeyId(ctx, &ec2.ModifyEbsDefaultKmsKeyIdInput{KmsKeyId: aws.String("alias/amicrypt-target")}); err != nil {
				return err
			}
			_, err := c.ResetEbsDefaultKmsKeyId(ctx, &ec2.ResetEbsDefaultKmsKeyIdInput{})
			return err
		}, func() bool {
			out, err := c.GetEbsDefaultKmsKeyId(ctx, &ec2.GetEbsDefaultKmsKeyIdInput{})
			return err == nil && aws.ToString(out.KmsKeyId) == "arn:aws:kms:us-east-1:222222222222:alias/aws/ebs"
		}},
		{"StartInstances on a stopped instance", func() error {
			if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{instID}}); err != nil {
				return err
			}
			x.WaitInstance(c, instID)
			_, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{instID}})
			return err
		}, func() bool { return x.WaitInstance(c, instID).State.Name == types.InstanceStateNameRunning }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.call(); err != nil {
				t.Fatal(err)
			}
			if st.check != nil && !st.check() {
				t.Fatal("the call had no visible effect")
			}
		})
	}
}

// TestEC2AutoScalingLaunchKeyAccess: docs/aws-behaviour.md 3.5's Auto Scaling case, through
// CheckLaunch: the service-linked role needs its own access to the key.
func TestEC2AutoScalingLaunchKeyAccess(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	ctx := x.Ctx
	amiID, snapID := x.EncryptedAMI(emutest.AcctBuild, emutest.East, "alias/amicrypt-build", "asg-src")
	buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
	x.Share(emutest.AcctBuild, emutest.East, amiID, snapID, emutest.AcctT2)
	emu := x.Srv.Emulator()
	slr := awsemu.AutoScalingRoleARN(emutest.AcctT2)
	if err := emu.CheckLaunch(emutest.AcctT2, emutest.East, slr, amiID); err == nil {
		t.Fatal("the Auto Scaling role launched without any access to the source key")
	}
	var notShared *awsemu.APIError
	if err := emu.CheckLaunch(emutest.AcctT3, emutest.East, awsemu.AutoScalingRoleARN(emutest.AcctT3), amiID); !errors.As(err, &notShared) || notShared.Code != "InvalidAMIID.NotFound" {
		t.Fatalf("an account without the launch permission: %v", err)
	}
	emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant")(x.KMS(emutest.AcctBuild, emutest.East).CreateGrant(ctx, &kms.CreateGrantInput{
		KeyId: aws.String(buildKey), GranteePrincipal: aws.String(slr),
		Operations: []kmstypes.GrantOperation{"Decrypt", "DescribeKey", "CreateGrant", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKeyWithoutPlaintext"}}))
	if err := emu.CheckLaunch(emutest.AcctT2, emutest.East, slr, amiID); err != nil {
		t.Fatalf("with a grant for the Auto Scaling role: %v", err)
	}
}

// TestEC2CallerIAMOnKeyUse: the using account's own IAM policy must allow
// the key operations EC2 performs for it (docs/aws-behaviour.md 3.4), even with a grant.
func TestEC2CallerIAMOnKeyUse(t *testing.T) {
	w, err := awsemu.DefaultWorld()
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Accounts {
		if w.Accounts[i].ID == emutest.AcctT3 {
			w.Accounts[i].Users[0].Deny = []string{"kms:ReEncrypt*"}
		}
	}
	x := emutest.NewEnv(t, awsemu.Options{World: w})
	amiID, snapID := x.EncryptedAMI(emutest.AcctBuild, emutest.East, "alias/amicrypt-build", "iam-src")
	buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
	x.Share(emutest.AcctBuild, emutest.East, amiID, snapID, emutest.AcctT3)
	emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant")(x.KMS(emutest.AcctBuild, emutest.East).CreateGrant(x.Ctx, &kms.CreateGrantInput{
		KeyId: aws.String(buildKey), GranteePrincipal: aws.String("arn:aws:iam::" + emutest.AcctT3 + ":root"),
		Operations: []kmstypes.GrantOperation{"Decrypt", "DescribeKey", "CreateGrant", "ReEncryptFrom", "GenerateDataKeyWithoutPlaintext"}}))
	c := x.EC2(emutest.AcctT3, emutest.East)
	out := emutest.Must[*ec2.CopyImageOutput](t, "CopyImage")(c.CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(amiID), SourceRegion: aws.String(emutest.East),
		Name: aws.String("iam-copy"), Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/amicrypt-target")}))
	img := x.WaitImage(c, aws.ToString(out.ImageId))
	if img.State != types.ImageStateFailed || aws.ToString(img.StateReason.Code) != "Client.InvalidKMSKey.InvalidState" {
		t.Fatalf("copy with kms:ReEncrypt* denied by the caller's IAM: %s %+v", img.State, img.StateReason)
	}
}
