package awsemu

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestEC2BuildSequence drives aws-behaviour.md section 4 "Build" end to
// end and then asks the invariant checker whether anything leaked.
func TestEC2BuildSequence(t *testing.T) {
	x := newEC2Env(t, Options{})
	ctx := x.ctx
	c := x.ec2(acctBuild, east)
	mark := x.srv.Emulator().CheckMark()

	imgs := must[*ec2.DescribeImagesOutput](t, "DescribeImages")(c.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners:  []string{"amazon"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.6.*-kernel-6.1-x86_64"}}},
	}))
	if len(imgs.Images) != 1 || aws.ToString(imgs.Images[0].ImageId) != seedAMI {
		t.Fatalf("source AMI lookup: %+v", imgs.Images)
	}
	src := imgs.Images[0]
	if aws.ToString(src.ImageOwnerAlias) != "amazon" || src.BootMode != types.BootModeValuesUefiPreferred ||
		src.ImdsSupport != types.ImdsSupportValuesV20 || !aws.ToBool(src.EnaSupport) || aws.ToBool(src.BlockDeviceMappings[0].Ebs.Encrypted) {
		t.Fatalf("source AMI fields: %+v", src)
	}

	kp := must[*ec2.CreateKeyPairOutput](t, "CreateKeyPair")(c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("packer_tmp")}))
	if aws.ToString(kp.KeyMaterial) == "" || aws.ToString(kp.KeyPairId) == "" {
		t.Fatalf("CreateKeyPair: %+v", kp)
	}
	sg := must[*ec2.CreateSecurityGroupOutput](t, "CreateSecurityGroup")(c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("packer_tmp"), Description: aws.String("temporary")}))
	must[*ec2.AuthorizeSecurityGroupIngressOutput](t, "AuthorizeSecurityGroupIngress")(c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: sg.GroupId, IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}}))

	run := must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(ctx, &ec2.RunInstancesInput{
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
	inst := x.waitInstance(c, instID)
	if inst.State.Name != types.InstanceStateNameRunning || aws.ToString(inst.KeyName) != "packer_tmp" || aws.ToString(inst.SubnetId) == "" ||
		inst.MetadataOptions.HttpTokens != types.HttpTokensStateRequired {
		t.Fatalf("running instance: %+v", inst)
	}
	vols := must[*ec2.DescribeVolumesOutput](t, "DescribeVolumes")(c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{
		Filters: []types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{instID}}}}))
	if len(vols.Volumes) != 1 || aws.ToBool(vols.Volumes[0].Encrypted) || aws.ToInt32(vols.Volumes[0].Size) != 8 ||
		len(vols.Volumes[0].Tags) != 1 || vols.Volumes[0].State != types.VolumeStateInUse {
		t.Fatalf("root volume: %+v", vols.Volumes)
	}
	volID := aws.ToString(vols.Volumes[0].VolumeId)

	must[*ec2.StopInstancesOutput](t, "StopInstances")(c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{instID}}))
	if inst := x.waitInstance(c, instID); inst.State.Name != types.InstanceStateNameStopped {
		t.Fatalf("after StopInstances: %s", inst.State.Name)
	}

	snap := must[*ec2.CreateSnapshotOutput](t, "CreateSnapshot")(c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(volID), Description: aws.String("root")}))
	if snap.State != types.SnapshotStatePending {
		t.Fatalf("new snapshot %s", snap.State)
	}
	plain := x.waitSnapshot(c, aws.ToString(snap.SnapshotId))
	if plain.State != types.SnapshotStateCompleted || aws.ToString(plain.Progress) != "100%" || aws.ToBool(plain.Encrypted) {
		t.Fatalf("snapshot: %+v", plain)
	}

	buildKey := x.keyARN(acctBuild, east, "alias/amicrypt-build")
	cp := must[*ec2.CopySnapshotOutput](t, "CopySnapshot")(c.CopySnapshot(ctx, &ec2.CopySnapshotInput{
		SourceSnapshotId: plain.SnapshotId, SourceRegion: aws.String(east), Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/amicrypt-build"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("root-encrypted")}}}},
	}))
	enc := x.waitSnapshot(c, aws.ToString(cp.SnapshotId))
	if enc.State != types.SnapshotStateCompleted || !aws.ToBool(enc.Encrypted) || aws.ToString(enc.KmsKeyId) != buildKey || len(enc.Tags) != 1 {
		t.Fatalf("encrypted copy: %+v (want key %s)", enc, buildKey)
	}

	reg := must[*ec2.RegisterImageOutput](t, "RegisterImage")(c.RegisterImage(ctx, &ec2.RegisterImageInput{
		Name: aws.String("amicrypt-test 1"), RootDeviceName: src.RootDeviceName, Architecture: src.Architecture,
		VirtualizationType: aws.String(string(src.VirtualizationType)), EnaSupport: src.EnaSupport, BootMode: src.BootMode,
		ImdsSupport: src.ImdsSupport,
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: src.RootDeviceName, Ebs: &types.EbsBlockDevice{
			SnapshotId: enc.SnapshotId, VolumeType: types.VolumeTypeGp3, DeleteOnTermination: aws.Bool(true)}}},
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String("Team"), Value: aws.String("pci")}}}},
	}))
	img := x.waitImage(c, aws.ToString(reg.ImageId))
	if img.State != types.ImageStateAvailable || img.Architecture != types.ArchitectureValuesX8664 || img.BootMode != types.BootModeValuesUefiPreferred ||
		!aws.ToBool(img.BlockDeviceMappings[0].Ebs.Encrypted) || aws.ToString(img.BlockDeviceMappings[0].Ebs.KmsKeyId) != buildKey ||
		aws.ToInt32(img.BlockDeviceMappings[0].Ebs.VolumeSize) != 8 || len(img.Tags) != 1 {
		t.Fatalf("registered image: %+v", img)
	}

	if _, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: enc.SnapshotId}); apiCode(err) != "InvalidSnapshot.InUse" {
		t.Fatalf("DeleteSnapshot of the AMI's snapshot: %v", err)
	}
	must[*ec2.DeleteSnapshotOutput](t, "DeleteSnapshot")(c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: plain.SnapshotId}))
	must[*ec2.TerminateInstancesOutput](t, "TerminateInstances")(c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{instID}}))
	if inst := x.waitInstance(c, instID); inst.State.Name != types.InstanceStateNameTerminated {
		t.Fatalf("after TerminateInstances: %s", inst.State.Name)
	}
	if _, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{volID}}); apiCode(err) != "InvalidVolume.NotFound" {
		t.Fatalf("root volume after termination (DeleteOnTermination): %v", err)
	}
	must[*ec2.DeleteKeyPairOutput](t, "DeleteKeyPair")(c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("packer_tmp")}))
	must[*ec2.DeleteSecurityGroupOutput](t, "DeleteSecurityGroup")(c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}))

	report := x.srv.Emulator().Check(CheckOptions{SinceSeq: mark, Principal: "arn:aws:iam::111111111111:user/packer"})
	if !report.Pass {
		t.Fatalf("checker after a clean build:\n%s", report)
	}
	if report.TotalCalls < 15 {
		t.Fatalf("checker counted %d calls: %+v", report.TotalCalls, report.CallCounts)
	}
}

// TestEC2CrossAccountCopySequence drives aws-behaviour.md section 4
// "Cross-account re-encrypted copy" with an assumed role in the target.
func TestEC2CrossAccountCopySequence(t *testing.T) {
	x := newEC2Env(t, Options{})
	ctx := x.ctx
	buildKey := x.keyARN(acctBuild, east, "alias/amicrypt-build")
	amiID, snapID := x.encryptedAMI(acctBuild, east, "alias/amicrypt-build", "golden-1")
	s := x.ec2(acctBuild, east)
	must[*ec2.CreateTagsOutput](t, "CreateTags")(s.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{amiID},
		Tags: []types.Tag{{Key: aws.String("Owner"), Value: aws.String("platform")}}}))
	mark := x.srv.Emulator().CheckMark()

	tc := x.roleEC2(acctT2, east)
	// Not shared yet: the target does not see the AMI (rule 3.4).
	_, err := tc.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}})
	if apiCode(err) != "InvalidAMIID.NotFound" || apiMessage(err) != "The image id '["+amiID+"]' does not exist" {
		t.Fatalf("DescribeImages before sharing: %v", err)
	}

	// Step 2 in S: launch + createVolume permissions and a grant for T's role.
	x.share(acctBuild, east, amiID, snapID, acctT2)
	targetRole := "arn:aws:iam::" + acctT2 + ":role/amicrypt-copy"
	grant := must[*kms.CreateGrantOutput](t, "CreateGrant")(x.kms(acctBuild, east).CreateGrant(ctx, &kms.CreateGrantInput{
		KeyId: aws.String(buildKey), GranteePrincipal: aws.String(targetRole),
		Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt, kmstypes.GrantOperationDescribeKey, kmstypes.GrantOperationCreateGrant,
			kmstypes.GrantOperationReEncryptFrom, kmstypes.GrantOperationGenerateDataKeyWithoutPlaintext},
	}))

	// The shared AMI shows without the owner's tags (rule 3.6).
	shared := x.image(tc, amiID)
	if len(shared.Tags) != 0 || aws.ToString(shared.OwnerId) != acctBuild {
		t.Fatalf("shared AMI as seen by the target: %+v", shared)
	}

	// Steps 3-5 in T.
	targetKey := x.keyARN(acctT2, east, "alias/amicrypt-target")
	in := &ec2.CopyImageInput{
		SourceImageId: aws.String(amiID), SourceRegion: aws.String(east), Name: aws.String("golden-1-copy"),
		Encrypted: aws.Bool(true), KmsKeyId: aws.String(targetKey), ClientToken: aws.String("copy-golden-1-222"), CopyImageTags: aws.Bool(true),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String("Owner"), Value: aws.String("platform")}, {Key: aws.String("amicrypt:source"), Value: aws.String(amiID)}}},
			{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("amicrypt:source"), Value: aws.String(amiID)}}},
		},
	}
	out := must[*ec2.CopyImageOutput](t, "CopyImage")(tc.CopyImage(ctx, in))
	again := must[*ec2.CopyImageOutput](t, "CopyImage again")(tc.CopyImage(ctx, in))
	if aws.ToString(again.ImageId) != aws.ToString(out.ImageId) {
		t.Fatalf("same ClientToken gave %s then %s", aws.ToString(out.ImageId), aws.ToString(again.ImageId))
	}
	changed := *in
	changed.Name = aws.String("other-name")
	if _, err := tc.CopyImage(ctx, &changed); apiCode(err) != "IdempotentParameterMismatch" {
		t.Fatalf("same ClientToken, other parameters: %v", err)
	}
	cp := x.waitImage(tc, aws.ToString(out.ImageId))
	if cp.State != types.ImageStateAvailable {
		t.Fatalf("copy: %s %+v", cp.State, cp.StateReason)
	}
	if got := aws.ToString(cp.BlockDeviceMappings[0].Ebs.KmsKeyId); got != targetKey || aws.ToString(cp.OwnerId) != acctT2 ||
		aws.ToString(cp.SourceImageId) != amiID || len(cp.Tags) != 2 {
		t.Fatalf("copy fields: key %s (want %s), %+v", got, targetKey, cp)
	}
	cpSnap := x.snapshot(tc, aws.ToString(cp.BlockDeviceMappings[0].Ebs.SnapshotId))
	if !aws.ToBool(cpSnap.Encrypted) || aws.ToString(cpSnap.KmsKeyId) != targetKey || len(cpSnap.Tags) != 1 {
		t.Fatalf("copy snapshot: %+v", cpSnap)
	}

	// Step 6 in S: unshare and retire.
	must[*ec2.ModifyImageAttributeOutput](t, "unshare")(s.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID),
		LaunchPermission: &types.LaunchPermissionModifications{Remove: []types.LaunchPermission{{UserId: aws.String(acctT2)}}}}))
	report := x.srv.Emulator().Check(CheckOptions{SinceSeq: mark})
	if report.Pass || len(report.Findings) != 2 {
		t.Fatalf("checker with a createVolume permission and a grant left: %s", report)
	}
	for _, f := range report.Findings {
		if f.Check != CheckLeftoverVolumePerm && f.Check != CheckLeftoverGrant {
			t.Fatalf("unexpected finding %+v", f)
		}
	}
	must[*ec2.ModifySnapshotAttributeOutput](t, "unshare snapshot")(s.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snapID),
		Attribute:              types.SnapshotAttributeNameCreateVolumePermission,
		CreateVolumePermission: &types.CreateVolumePermissionModifications{Remove: []types.CreateVolumePermission{{UserId: aws.String(acctT2)}}}}))
	must[*kms.RevokeGrantOutput](t, "RevokeGrant")(x.kms(acctBuild, east).RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(buildKey), GrantId: grant.GrantId}))
	if report := x.srv.Emulator().Check(CheckOptions{SinceSeq: mark}); !report.Pass {
		t.Fatalf("checker after cleanup: %s", report)
	}
	// After unsharing, the target no longer sees the source.
	if _, err := tc.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}}); apiCode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("DescribeImages after unsharing: %v", err)
	}
}
