package ec2_test

import (
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestEC2BuildSequence drives docs/aws-behaviour.md section 4 "Build" end to
// end and then asks the invariant checker whether anything leaked.
func TestEC2BuildSequence(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	ctx := x.Ctx
	c := x.EC2(emutest.AcctBuild, emutest.East)
	mark := x.Srv.Emulator().CheckMark()

	imgs := emutest.Must[*ec2.DescribeImagesOutput](t, "DescribeImages")(c.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners:  []string{"amazon"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.6.*-kernel-6.1-x86_64"}}},
	}))
	if len(imgs.Images) != 1 || aws.ToString(imgs.Images[0].ImageId) != emutest.SeedAMI {
		t.Fatalf("source AMI lookup: %+v", imgs.Images)
	}
	src := imgs.Images[0]
	if aws.ToString(src.ImageOwnerAlias) != "amazon" || src.BootMode != types.BootModeValuesUefiPreferred ||
		src.ImdsSupport != types.ImdsSupportValuesV20 || !aws.ToBool(src.EnaSupport) || aws.ToBool(src.BlockDeviceMappings[0].Ebs.Encrypted) {
		t.Fatalf("source AMI fields: %+v", src)
	}

	kp := emutest.Must[*ec2.CreateKeyPairOutput](t, "CreateKeyPair")(c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("packer_tmp")}))
	if aws.ToString(kp.KeyMaterial) == "" || aws.ToString(kp.KeyPairId) == "" {
		t.Fatalf("CreateKeyPair: %+v", kp)
	}
	sg := emutest.Must[*ec2.CreateSecurityGroupOutput](t, "CreateSecurityGroup")(c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("packer_tmp"), Description: aws.String("temporary")}))
	emutest.Must[*ec2.AuthorizeSecurityGroupIngressOutput](t, "AuthorizeSecurityGroupIngress")(c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: sg.GroupId, IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}}))

	run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: src.ImageId, InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		KeyName: aws.String("packer_tmp"), SecurityGroupIds: []string{aws.ToString(sg.GroupId)}, ClientToken: aws.String("build-1"),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("builder")}}},
			{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("builder-root")}}},
		},
	}))
	instID := aws.ToString(run.Instances[0].InstanceId)
	if run.Instances[0].State.Name != types.InstanceStateNamePending {
		t.Fatalf("new instance state %s, want pending", run.Instances[0].State.Name)
	}
	inst := x.WaitInstance(c, instID)
	if inst.State.Name != types.InstanceStateNameRunning || aws.ToString(inst.KeyName) != "packer_tmp" || aws.ToString(inst.SubnetId) == "" ||
		inst.MetadataOptions.HttpTokens != types.HttpTokensStateRequired {
		t.Fatalf("running instance: %+v", inst)
	}
	vols := emutest.Must[*ec2.DescribeVolumesOutput](t, "DescribeVolumes")(c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{
		Filters: []types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{instID}}}}))
	if len(vols.Volumes) != 1 || aws.ToBool(vols.Volumes[0].Encrypted) || aws.ToInt32(vols.Volumes[0].Size) != 8 ||
		len(vols.Volumes[0].Tags) != 1 || vols.Volumes[0].State != types.VolumeStateInUse {
		t.Fatalf("root volume: %+v", vols.Volumes)
	}
	volID := aws.ToString(vols.Volumes[0].VolumeId)

	emutest.Must[*ec2.StopInstancesOutput](t, "StopInstances")(c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{instID}}))
	if inst := x.WaitInstance(c, instID); inst.State.Name != types.InstanceStateNameStopped {
		t.Fatalf("after StopInstances: %s", inst.State.Name)
	}

	snap := emutest.Must[*ec2.CreateSnapshotOutput](t, "CreateSnapshot")(c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(volID), Description: aws.String("root")}))
	if snap.State != types.SnapshotStatePending {
		t.Fatalf("new snapshot %s", snap.State)
	}
	plain := x.WaitSnapshot(c, aws.ToString(snap.SnapshotId))
	if plain.State != types.SnapshotStateCompleted || aws.ToString(plain.Progress) != "100%" || aws.ToBool(plain.Encrypted) {
		t.Fatalf("snapshot: %+v", plain)
	}

	buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
	cp := emutest.Must[*ec2.CopySnapshotOutput](t, "CopySnapshot")(c.CopySnapshot(ctx, &ec2.CopySnapshotInput{
		SourceSnapshotId: plain.SnapshotId, SourceRegion: aws.String(emutest.East), Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/amicrypt-build"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("root-encrypted")}}}},
	}))
	enc := x.WaitSnapshot(c, aws.ToString(cp.SnapshotId))
	if enc.State != types.SnapshotStateCompleted || !aws.ToBool(enc.Encrypted) || aws.ToString(enc.KmsKeyId) != buildKey || len(enc.Tags) != 1 {
		t.Fatalf("encrypted copy: %+v (want key %s)", enc, buildKey)
	}

	reg := emutest.Must[*ec2.RegisterImageOutput](t, "RegisterImage")(c.RegisterImage(ctx, &ec2.RegisterImageInput{
		Name: aws.String("amicrypt-test 1"), RootDeviceName: src.RootDeviceName, Architecture: src.Architecture,
		VirtualizationType: aws.String(string(src.VirtualizationType)), EnaSupport: src.EnaSupport, BootMode: src.BootMode,
		ImdsSupport: src.ImdsSupport,
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: src.RootDeviceName, Ebs: &types.EbsBlockDevice{
			SnapshotId: enc.SnapshotId, VolumeType: types.VolumeTypeGp3, DeleteOnTermination: aws.Bool(true)}}},
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String("Team"), Value: aws.String("pci")}}}},
	}))
	img := x.WaitImage(c, aws.ToString(reg.ImageId))
	if img.State != types.ImageStateAvailable || img.Architecture != types.ArchitectureValuesX8664 || img.BootMode != types.BootModeValuesUefiPreferred ||
		!aws.ToBool(img.BlockDeviceMappings[0].Ebs.Encrypted) || x.ImageKey(c, img) != buildKey ||
		aws.ToInt32(img.BlockDeviceMappings[0].Ebs.VolumeSize) != 8 || len(img.Tags) != 1 {
		t.Fatalf("registered image: %+v", img)
	}

	if _, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: enc.SnapshotId}); emutest.APICode(err) != "InvalidSnapshot.InUse" {
		t.Fatalf("DeleteSnapshot of the AMI's snapshot: %v", err)
	}
	emutest.Must[*ec2.DeleteSnapshotOutput](t, "DeleteSnapshot")(c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: plain.SnapshotId}))
	emutest.Must[*ec2.TerminateInstancesOutput](t, "TerminateInstances")(c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{instID}}))
	if inst := x.WaitInstance(c, instID); inst.State.Name != types.InstanceStateNameTerminated {
		t.Fatalf("after TerminateInstances: %s", inst.State.Name)
	}
	if _, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{volID}}); emutest.APICode(err) != "InvalidVolume.NotFound" {
		t.Fatalf("root volume after termination (DeleteOnTermination): %v", err)
	}
	emutest.Must[*ec2.DeleteKeyPairOutput](t, "DeleteKeyPair")(c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("packer_tmp")}))
	emutest.Must[*ec2.DeleteSecurityGroupOutput](t, "DeleteSecurityGroup")(c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}))

	report := x.Srv.Emulator().Check(awsemu.CheckOptions{SinceSeq: mark, Principal: "arn:aws:iam::111111111111:user/packer"})
	if !report.Pass {
		t.Fatalf("checker after a clean build:\n%s", report)
	}
	if report.TotalCalls < 15 {
		t.Fatalf("checker counted %d calls: %+v", report.TotalCalls, report.CallCounts)
	}
}

// TestEC2CrossAccountCopySequence drives docs/aws-behaviour.md section 4
// "Cross-account re-encrypted copy" with an assumed role in the target.
func TestEC2CrossAccountCopySequence(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	ctx := x.Ctx
	buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
	amiID, snapID := x.EncryptedAMI(emutest.AcctBuild, emutest.East, "alias/amicrypt-build", "golden-1")
	s := x.EC2(emutest.AcctBuild, emutest.East)
	emutest.Must[*ec2.CreateTagsOutput](t, "CreateTags")(s.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{amiID},
		Tags: []types.Tag{{Key: aws.String("Owner"), Value: aws.String("platform")}}}))
	mark := x.Srv.Emulator().CheckMark()

	tc := x.RoleEC2(emutest.AcctT2, emutest.East)
	// Not shared yet: the target does not see the AMI (docs/aws-behaviour.md 3.4).
	_, err := tc.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}})
	if emutest.APICode(err) != "InvalidAMIID.NotFound" || emutest.APIMessage(err) != "The image id '["+amiID+"]' does not exist" {
		t.Fatalf("DescribeImages before sharing: %v", err)
	}

	// Step 2 in S: launch + createVolume permissions and a grant for T's role.
	x.Share(emutest.AcctBuild, emutest.East, amiID, snapID, emutest.AcctT2)
	targetRole := "arn:aws:iam::" + emutest.AcctT2 + ":role/amicrypt-copy"
	grant := emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant")(x.KMS(emutest.AcctBuild, emutest.East).CreateGrant(ctx, &kms.CreateGrantInput{
		KeyId: aws.String(buildKey), GranteePrincipal: aws.String(targetRole),
		Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt, kmstypes.GrantOperationDescribeKey, kmstypes.GrantOperationCreateGrant,
			kmstypes.GrantOperationReEncryptFrom, kmstypes.GrantOperationGenerateDataKeyWithoutPlaintext},
	}))

	// The shared AMI shows without the owner's tags (docs/aws-behaviour.md 3.6).
	shared := x.Image(tc, amiID)
	if len(shared.Tags) != 0 || aws.ToString(shared.OwnerId) != emutest.AcctBuild {
		t.Fatalf("shared AMI as seen by the target: %+v", shared)
	}

	// Steps 3-5 in T.
	targetKey := x.KeyARN(emutest.AcctT2, emutest.East, "alias/amicrypt-target")
	in := &ec2.CopyImageInput{
		SourceImageId: aws.String(amiID), SourceRegion: aws.String(emutest.East), Name: aws.String("golden-1-copy"),
		Encrypted: aws.Bool(true), KmsKeyId: aws.String(targetKey), ClientToken: aws.String("copy-golden-1-222"), CopyImageTags: aws.Bool(true),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String("Owner"), Value: aws.String("platform")}, {Key: aws.String("amicrypt:source"), Value: aws.String(amiID)}}},
			{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("amicrypt:source"), Value: aws.String(amiID)}}},
		},
	}
	out := emutest.Must[*ec2.CopyImageOutput](t, "CopyImage")(tc.CopyImage(ctx, in))
	again := emutest.Must[*ec2.CopyImageOutput](t, "CopyImage again")(tc.CopyImage(ctx, in))
	if aws.ToString(again.ImageId) != aws.ToString(out.ImageId) {
		t.Fatalf("same ClientToken gave %s then %s", aws.ToString(out.ImageId), aws.ToString(again.ImageId))
	}
	changed := *in
	changed.Name = aws.String("other-name")
	if _, err := tc.CopyImage(ctx, &changed); emutest.APICode(err) != "IdempotentParameterMismatch" {
		t.Fatalf("same ClientToken, other parameters: %v", err)
	}
	cp := x.WaitImage(tc, aws.ToString(out.ImageId))
	if cp.State != types.ImageStateAvailable {
		t.Fatalf("copy: %s %+v", cp.State, cp.StateReason)
	}
	if got := x.ImageKey(tc, cp); got != targetKey || aws.ToString(cp.OwnerId) != emutest.AcctT2 ||
		aws.ToString(cp.SourceImageId) != amiID || len(cp.Tags) != 2 {
		t.Fatalf("copy fields: key %s (want %s), %+v", got, targetKey, cp)
	}
	cpSnap := x.Snapshot(tc, aws.ToString(cp.BlockDeviceMappings[0].Ebs.SnapshotId))
	if !aws.ToBool(cpSnap.Encrypted) || aws.ToString(cpSnap.KmsKeyId) != targetKey || len(cpSnap.Tags) != 1 {
		t.Fatalf("copy snapshot: %+v", cpSnap)
	}

	// Step 6 in S: unshare and retire.
	emutest.Must[*ec2.ModifyImageAttributeOutput](t, "unshare")(s.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID),
		LaunchPermission: &types.LaunchPermissionModifications{Remove: []types.LaunchPermission{{UserId: aws.String(emutest.AcctT2)}}}}))
	report := x.Srv.Emulator().Check(awsemu.CheckOptions{SinceSeq: mark})
	if report.Pass || len(report.Findings) != 2 {
		t.Fatalf("checker with a createVolume permission and a grant left: %s", report)
	}
	for _, f := range report.Findings {
		if f.Check != awsemu.CheckLeftoverVolumePerm && f.Check != awsemu.CheckLeftoverGrant {
			t.Fatalf("unexpected finding %+v", f)
		}
	}
	emutest.Must[*ec2.ModifySnapshotAttributeOutput](t, "unshare snapshot")(s.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snapID),
		Attribute:              types.SnapshotAttributeNameCreateVolumePermission,
		CreateVolumePermission: &types.CreateVolumePermissionModifications{Remove: []types.CreateVolumePermission{{UserId: aws.String(emutest.AcctT2)}}}}))
	emutest.Must[*kms.RevokeGrantOutput](t, "RevokeGrant")(x.KMS(emutest.AcctBuild, emutest.East).RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(buildKey), GrantId: grant.GrantId}))
	if report := x.Srv.Emulator().Check(awsemu.CheckOptions{SinceSeq: mark}); !report.Pass {
		t.Fatalf("checker after cleanup: %s", report)
	}
	// After unsharing, the target no longer sees the source.
	if _, err := tc.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}}); emutest.APICode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("DescribeImages after unsharing: %v", err)
	}
}
