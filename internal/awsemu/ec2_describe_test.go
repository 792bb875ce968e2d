package awsemu

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"golang.org/x/crypto/ssh"
)

func imageIDs(imgs []types.Image) []string {
	out := []string{}
	for _, i := range imgs {
		out = append(out, aws.ToString(i.ImageId))
	}
	sort.Strings(out)
	return out
}

func sameIDs(got, want []string) bool {
	sort.Strings(want)
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// TestEC2DescribeImages covers owners, executable-users and filters.
func TestEC2DescribeImages(t *testing.T) {
	x := newEC2Env(t, Options{})
	f := newRuleFixture(x)
	b := x.ec2(acctBuild, east)
	x.share(acctBuild, east, f.custAMI, f.custSnap, acctT2)
	must[*ec2.CreateTagsOutput](t, "CreateTags")(b.CreateTags(x.ctx, &ec2.CreateTagsInput{Resources: []string{f.custAMI},
		Tags: []types.Tag{{Key: aws.String("Team"), Value: aws.String("pci")}}}))
	tests := []struct {
		name    string
		account string
		in      ec2.DescribeImagesInput
		want    []string
	}{
		{"owner amazon", acctBuild, ec2.DescribeImagesInput{Owners: []string{"amazon"}}, []string{seedAMI}},
		{"owner self", acctBuild, ec2.DescribeImagesInput{Owners: []string{"self"}}, []string{f.custAMI, f.managedAMI}},
		{"owner by account ID", acctT2, ec2.DescribeImagesInput{Owners: []string{acctBuild}}, []string{f.custAMI}},
		{"executable by self (shared with me)", acctT2, ec2.DescribeImagesInput{ExecutableUsers: []string{"self"}}, []string{f.custAMI}},
		{"executable by all", acctT2, ec2.DescribeImagesInput{ExecutableUsers: []string{"all"}}, []string{seedAMI}},
		{"name with wildcard", acctBuild, ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"cust-?", "al2023-*"}}}}, []string{f.custAMI, seedAMI}},
		{"tag filter", acctBuild, ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("tag:Team"), Values: []string{"pci"}}}}, []string{f.custAMI}},
		{"tag-key filter", acctBuild, ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("tag-key"), Values: []string{"Team"}}}}, []string{f.custAMI}},
		{"state and is-public", acctBuild, ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("state"), Values: []string{"available"}},
			{Name: aws.String("is-public"), Values: []string{"true"}}}}, []string{seedAMI}},
		{"image-id filter", acctBuild, ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("image-id"), Values: []string{f.managedAMI}}}}, []string{f.managedAMI}},
		{"encrypted mapping", acctBuild, ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []types.Filter{{Name: aws.String("block-device-mapping.encrypted"), Values: []string{"true"}}}}, []string{f.custAMI, f.managedAMI}},
		{"other region", acctBuild, ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"*"}}}}, []string{f.custAMI, f.managedAMI}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			out := must[*ec2.DescribeImagesOutput](t, "DescribeImages")(x.ec2(tc.account, east).DescribeImages(x.ctx, &in))
			if got := imageIDs(out.Images); !sameIDs(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	west := must[*ec2.DescribeImagesOutput](t, "west")(x.ec2(acctBuild, "us-west-2").DescribeImages(x.ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}}))
	if len(west.Images) != 0 {
		t.Fatalf("images are regional, us-west-2 shows %v", imageIDs(west.Images))
	}

	// Pagination.
	p := ec2.NewDescribeImagesPaginator(b, &ec2.DescribeImagesInput{MaxResults: aws.Int32(1)})
	var pages, n int
	for p.HasMorePages() {
		page := must[*ec2.DescribeImagesOutput](t, "page")(p.NextPage(x.ctx))
		pages++
		n += len(page.Images)
	}
	if pages != 3 || n != 3 {
		t.Fatalf("paginated 3 images into %d pages / %d images", pages, n)
	}

	// Deprecation hides an AMI from other accounts' listings, not by ID.
	must[*ec2.EnableImageDeprecationOutput](t, "EnableImageDeprecation")(b.EnableImageDeprecation(x.ctx, &ec2.EnableImageDeprecationInput{
		ImageId: aws.String(f.custAMI), DeprecateAt: aws.Time(time.Now().Add(-time.Minute))}))
	t2 := x.ec2(acctT2, east)
	listed := must[*ec2.DescribeImagesOutput](t, "list")(t2.DescribeImages(x.ctx, &ec2.DescribeImagesInput{ExecutableUsers: []string{"self"}}))
	if len(listed.Images) != 0 {
		t.Fatalf("deprecated AMI listed for another account: %v", imageIDs(listed.Images))
	}
	withDep := must[*ec2.DescribeImagesOutput](t, "list")(t2.DescribeImages(x.ctx, &ec2.DescribeImagesInput{ExecutableUsers: []string{"self"}, IncludeDeprecated: aws.Bool(true)}))
	if len(withDep.Images) != 1 || aws.ToString(withDep.Images[0].DeprecationTime) == "" {
		t.Fatalf("IncludeDeprecated: %+v", withDep.Images)
	}
	if img := x.image(t2, f.custAMI); aws.ToString(img.DeprecationTime) == "" {
		t.Fatal("DeprecationTime missing")
	}
	must[*ec2.DisableImageDeprecationOutput](t, "DisableImageDeprecation")(b.DisableImageDeprecation(x.ctx, &ec2.DisableImageDeprecationInput{ImageId: aws.String(f.custAMI)}))
}

// TestEC2ImageAttributesAndDeregistration covers image and snapshot
// attributes, deregistration protection and DeleteAssociatedSnapshots.
func TestEC2ImageAttributesAndDeregistration(t *testing.T) {
	x := newEC2Env(t, Options{})
	f := newRuleFixture(x)
	b := x.ec2(acctBuild, east)
	x.share(acctBuild, east, f.custAMI, f.custSnap, acctT2)
	must[*ec2.ModifyImageAttributeOutput](t, "org")(b.ModifyImageAttribute(x.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(f.custAMI),
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{
			{OrganizationArn: aws.String("arn:aws:organizations::111111111111:organization/o-abc123")},
			{OrganizationalUnitArn: aws.String("arn:aws:organizations::111111111111:ou/o-abc123/ou-ab12-cd34")}}}}))
	must[*ec2.ModifyImageAttributeOutput](t, "description")(b.ModifyImageAttribute(x.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(f.custAMI),
		Description: &types.AttributeValue{Value: aws.String("golden")}}))
	lp := must[*ec2.DescribeImageAttributeOutput](t, "launchPermission")(b.DescribeImageAttribute(x.ctx, &ec2.DescribeImageAttributeInput{
		ImageId: aws.String(f.custAMI), Attribute: types.ImageAttributeNameLaunchPermission}))
	var users, orgs, ous int
	for _, p := range lp.LaunchPermissions {
		switch {
		case aws.ToString(p.UserId) == acctT2:
			users++
		case p.OrganizationArn != nil:
			orgs++
		case p.OrganizationalUnitArn != nil:
			ous++
		}
	}
	if users != 1 || orgs != 1 || ous != 1 {
		t.Fatalf("launch permissions: %+v", lp.LaunchPermissions)
	}
	desc := must[*ec2.DescribeImageAttributeOutput](t, "description")(b.DescribeImageAttribute(x.ctx, &ec2.DescribeImageAttributeInput{
		ImageId: aws.String(f.custAMI), Attribute: types.ImageAttributeNameDescription}))
	if aws.ToString(desc.Description.Value) != "golden" {
		t.Fatalf("description %q", aws.ToString(desc.Description.Value))
	}
	cvp := must[*ec2.DescribeSnapshotAttributeOutput](t, "createVolumePermission")(b.DescribeSnapshotAttribute(x.ctx, &ec2.DescribeSnapshotAttributeInput{
		SnapshotId: aws.String(f.custSnap), Attribute: types.SnapshotAttributeNameCreateVolumePermission}))
	if len(cvp.CreateVolumePermissions) != 1 || aws.ToString(cvp.CreateVolumePermissions[0].UserId) != acctT2 {
		t.Fatalf("createVolumePermission: %+v", cvp.CreateVolumePermissions)
	}
	// Shared snapshot is restorable by the target.
	rb := must[*ec2.DescribeSnapshotsOutput](t, "restorable")(x.ec2(acctT2, east).DescribeSnapshots(x.ctx, &ec2.DescribeSnapshotsInput{RestorableByUserIds: []string{"self"}}))
	if len(rb.Snapshots) != 1 || aws.ToString(rb.Snapshots[0].SnapshotId) != f.custSnap {
		t.Fatalf("RestorableBy self: %+v", rb.Snapshots)
	}

	must[*ec2.EnableImageDeregistrationProtectionOutput](t, "protect")(b.EnableImageDeregistrationProtection(x.ctx, &ec2.EnableImageDeregistrationProtectionInput{ImageId: aws.String(f.custAMI)}))
	if _, err := b.DeregisterImage(x.ctx, &ec2.DeregisterImageInput{ImageId: aws.String(f.custAMI)}); apiCode(err) != "OperationNotPermitted" {
		t.Fatalf("DeregisterImage with protection: %v", err)
	}
	dp := must[*ec2.DescribeImageAttributeOutput](t, "protection")(b.DescribeImageAttribute(x.ctx, &ec2.DescribeImageAttributeInput{
		ImageId: aws.String(f.custAMI), Attribute: types.ImageAttributeNameDeregistrationProtection}))
	if aws.ToString(dp.DeregistrationProtection.Value) != "enabled" {
		t.Fatalf("deregistrationProtection %q", aws.ToString(dp.DeregistrationProtection.Value))
	}
	must[*ec2.DisableImageDeregistrationProtectionOutput](t, "unprotect")(b.DisableImageDeregistrationProtection(x.ctx, &ec2.DisableImageDeregistrationProtectionInput{ImageId: aws.String(f.custAMI)}))

	out := must[*ec2.DeregisterImageOutput](t, "DeregisterImage")(b.DeregisterImage(x.ctx, &ec2.DeregisterImageInput{ImageId: aws.String(f.custAMI), DeleteAssociatedSnapshots: aws.Bool(true)}))
	if len(out.DeleteSnapshotResults) != 1 || aws.ToString(out.DeleteSnapshotResults[0].SnapshotId) != f.custSnap ||
		out.DeleteSnapshotResults[0].ReturnCode != types.SnapshotReturnCodesSuccess {
		t.Fatalf("DeleteSnapshotResults: %+v", out.DeleteSnapshotResults)
	}
	if _, err := b.DescribeSnapshots(x.ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{f.custSnap}}); apiCode(err) != "InvalidSnapshot.NotFound" {
		t.Fatalf("snapshot after DeleteAssociatedSnapshots: %v", err)
	}
	// Without DeleteAssociatedSnapshots the snapshot stays and becomes deletable.
	must[*ec2.DeregisterImageOutput](t, "DeregisterImage")(b.DeregisterImage(x.ctx, &ec2.DeregisterImageInput{ImageId: aws.String(f.managedAMI)}))
	must[*ec2.DeleteSnapshotOutput](t, "DeleteSnapshot")(b.DeleteSnapshot(x.ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(f.managedSnap)}))
	// The checker remembers that the deregistered AMIs were encrypted: no findings of kind 1.
	report := x.srv.Emulator().Check(CheckOptions{Account: acctBuild})
	for _, fd := range report.Findings {
		if fd.Check == CheckUnencryptedAMI {
			t.Fatalf("unexpected finding %+v", fd)
		}
	}
}

// TestEC2NetworkAndAccount covers key pairs, security groups, VPCs,
// subnets, regions, zones and instance types.
func TestEC2NetworkAndAccount(t *testing.T) {
	x := newEC2Env(t, Options{})
	c := x.ec2(acctT3, "eu-west-1")
	ctx := x.ctx

	vpcs := must[*ec2.DescribeVpcsOutput](t, "DescribeVpcs")(c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{
		Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}}))
	if len(vpcs.Vpcs) != 1 || aws.ToString(vpcs.Vpcs[0].CidrBlock) != "172.31.0.0/16" || !aws.ToBool(vpcs.Vpcs[0].IsDefault) || aws.ToString(vpcs.Vpcs[0].OwnerId) != acctT3 {
		t.Fatalf("default VPC: %+v", vpcs.Vpcs)
	}
	subnets := must[*ec2.DescribeSubnetsOutput](t, "DescribeSubnets")(c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{
		Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{aws.ToString(vpcs.Vpcs[0].VpcId)}}, {Name: aws.String("default-for-az"), Values: []string{"true"}}}}))
	if len(subnets.Subnets) != 3 || aws.ToString(subnets.Subnets[0].AvailabilityZone) != "eu-west-1a" || aws.ToString(subnets.Subnets[0].AvailabilityZoneId) != "euw1-az1" {
		t.Fatalf("default subnets: %+v", subnets.Subnets)
	}
	sgs := must[*ec2.DescribeSecurityGroupsOutput](t, "DescribeSecurityGroups")(c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupNames: []string{"default"}}))
	if len(sgs.SecurityGroups) != 1 || len(sgs.SecurityGroups[0].IpPermissionsEgress) != 1 {
		t.Fatalf("default security group: %+v", sgs.SecurityGroups)
	}
	regions := must[*ec2.DescribeRegionsOutput](t, "DescribeRegions")(c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{AllRegions: aws.Bool(true)}))
	status := map[string]string{}
	for _, r := range regions.Regions {
		status[aws.ToString(r.RegionName)] = aws.ToString(r.OptInStatus)
	}
	if len(status) != 5 || status["ap-southeast-3"] != "not-opted-in" || status["us-east-1"] != "opt-in-not-required" {
		t.Fatalf("DescribeRegions AllRegions: %v", status)
	}
	enabled := must[*ec2.DescribeRegionsOutput](t, "DescribeRegions")(c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{}))
	if len(enabled.Regions) != 4 {
		t.Fatalf("DescribeRegions: %d regions", len(enabled.Regions))
	}
	azs := must[*ec2.DescribeAvailabilityZonesOutput](t, "DescribeAvailabilityZones")(c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{}))
	if len(azs.AvailabilityZones) != 3 || azs.AvailabilityZones[0].State != types.AvailabilityZoneStateAvailable {
		t.Fatalf("zones: %+v", azs.AvailabilityZones)
	}
	types_ := must[*ec2.DescribeInstanceTypesOutput](t, "DescribeInstanceTypes")(c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{types.InstanceTypeT3Micro}}))
	if len(types_.InstanceTypes) != 1 || aws.ToInt32(types_.InstanceTypes[0].VCpuInfo.DefaultVCpus) != 2 {
		t.Fatalf("instance types: %+v", types_.InstanceTypes)
	}
	offers := must[*ec2.DescribeInstanceTypeOfferingsOutput](t, "offerings")(c.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: types.LocationTypeAvailabilityZone, Filters: []types.Filter{{Name: aws.String("instance-type"), Values: []string{"t3.micro"}}}}))
	if len(offers.InstanceTypeOfferings) != 3 {
		t.Fatalf("offerings: %+v", offers.InstanceTypeOfferings)
	}

	// Key pairs.
	edPub, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		t.Fatal(err)
	}
	pub := string(ssh.MarshalAuthorizedKey(edPub))
	imp := must[*ec2.ImportKeyPairOutput](t, "ImportKeyPair")(c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("imported"), PublicKeyMaterial: []byte(pub)}))
	must[*ec2.CreateKeyPairOutput](t, "CreateKeyPair")(c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("made"), KeyType: types.KeyTypeEd25519}))
	if _, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("made")}); apiCode(err) != "InvalidKeyPair.Duplicate" {
		t.Fatalf("duplicate key pair: %v", err)
	}
	kps := must[*ec2.DescribeKeyPairsOutput](t, "DescribeKeyPairs")(c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{}))
	if len(kps.KeyPairs) != 2 || aws.ToString(kps.KeyPairs[0].KeyPairId) != aws.ToString(imp.KeyPairId) {
		t.Fatalf("key pairs: %+v", kps.KeyPairs)
	}
	if _, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"none"}}); apiCode(err) != "InvalidKeyPair.NotFound" {
		t.Fatalf("unknown key pair: %v", err)
	}
	for _, name := range []string{"made", "imported", "never-existed"} {
		must[*ec2.DeleteKeyPairOutput](t, "DeleteKeyPair")(c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String(name)}))
	}

	// Security groups: a group in use can't be deleted.
	sg := must[*ec2.CreateSecurityGroupOutput](t, "CreateSecurityGroup")(c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("tmp"), Description: aws.String("tmp")}))
	if _, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("tmp"), Description: aws.String("tmp")}); apiCode(err) != "InvalidGroup.Duplicate" {
		t.Fatalf("duplicate group: %v", err)
	}
	perm := []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}}}
	must[*ec2.AuthorizeSecurityGroupIngressOutput](t, "Authorize")(c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: perm}))
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: perm}); apiCode(err) != "InvalidPermission.Duplicate" {
		t.Fatalf("duplicate rule: %v", err)
	}
	run := must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-0a1b2c3d4e5f60003"),
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SecurityGroupIds: []string{aws.ToString(sg.GroupId)},
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\n"))), IamInstanceProfile: &types.IamInstanceProfileSpecification{Name: aws.String("builder")}}))
	if _, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}); apiCode(err) != "DependencyViolation" {
		t.Fatalf("deleting a group in use: %v", err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	if inst := x.waitInstance(c, id); aws.ToString(inst.IamInstanceProfile.Arn) != "arn:aws:iam::333333333333:instance-profile/builder" {
		t.Fatalf("instance profile: %+v", inst.IamInstanceProfile)
	}
	must[*ec2.TerminateInstancesOutput](t, "Terminate")(c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}))
	x.waitInstance(c, id)
	must[*ec2.DeleteSecurityGroupOutput](t, "DeleteSecurityGroup")(c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}))
	if r := x.srv.Emulator().Check(CheckOptions{Account: acctT3}); !r.Pass {
		t.Fatalf("checker: %s", r)
	}
}

// TestEC2CheckerFindings makes each kind of finding and checks the report.
func TestEC2CheckerFindings(t *testing.T) {
	x := newEC2Env(t, Options{})
	ctx := x.ctx
	emu := x.srv.Emulator()
	b := x.ec2(acctBuild, east)
	mark := emu.CheckMark()
	// (1) an unencrypted AMI, deregistered afterwards: still a finding.
	run := must[*ec2.RunInstancesOutput](t, "RunInstances")(b.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(seedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))
	id := aws.ToString(run.Instances[0].InstanceId)
	x.waitInstance(b, id)
	ci := must[*ec2.CreateImageOutput](t, "CreateImage")(b.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("plain")}))
	img := x.waitImage(b, aws.ToString(ci.ImageId))
	must[*ec2.DeregisterImageOutput](t, "DeregisterImage")(b.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: ci.ImageId}))
	// (2) the instance, its snapshot now behind no AMI, a key pair.
	must[*ec2.CreateKeyPairOutput](t, "CreateKeyPair")(b.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("left")}))
	// (3) a copy in another account under the build account's key.
	amiID, snapID := x.encryptedAMI(acctBuild, east, "alias/amicrypt-build", "enc")
	x.share(acctBuild, east, amiID, snapID, acctT2)
	buildKey := x.keyARN(acctBuild, east, "alias/amicrypt-build")
	_ = img
	t2 := x.ec2(acctT2, east)
	// "One key shared by every account": a grant lets 222222222222 encrypt its copy under the build key.
	must[*kms.CreateGrantOutput](t, "CreateGrant")(x.kms(acctBuild, east).CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
		GranteePrincipal: aws.String("arn:aws:iam::222222222222:root"), Operations: []kmstypes.GrantOperation{"Decrypt", "DescribeKey", "CreateGrant",
			"ReEncryptFrom", "ReEncryptTo", "GenerateDataKeyWithoutPlaintext"}}))
	cp := must[*ec2.CopyImageOutput](t, "CopyImage")(t2.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(amiID), SourceRegion: aws.String(east),
		Name: aws.String("foreign"), Encrypted: aws.Bool(true), KmsKeyId: aws.String(buildKey)}))
	if img := x.waitImage(t2, aws.ToString(cp.ImageId)); img.State != types.ImageStateAvailable {
		t.Fatalf("copy under the shared key: %s %+v", img.State, img.StateReason)
	}

	report := emu.Check(CheckOptions{SinceSeq: mark})
	kinds := map[string]int{}
	for _, f := range report.Findings {
		kinds[f.Check]++
	}
	want := map[string]int{CheckUnencryptedAMI: 1, CheckLeftoverInstance: 1, CheckLeftoverKeyPair: 1, CheckOrphanSnapshot: 1,
		CheckLeftoverLaunchPerm: 1, CheckLeftoverVolumePerm: 1, CheckForeignKeyCopy: 1, CheckLeftoverGrant: 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%s: %d findings, want %d", k, kinds[k], n)
		}
	}
	if report.Pass || len(report.CallCounts) == 0 {
		t.Fatalf("report: %s", report)
	}
	// Scoped to another principal, nothing is found.
	if r := emu.Check(CheckOptions{SinceSeq: mark, Principal: "arn:aws:iam::333333333333:user/admin"}); !r.Pass || r.TotalCalls != 0 {
		t.Fatalf("checker for an idle principal: %s", r)
	}
	// Ignore lists drop checks.
	all := []string{CheckUnencryptedAMI, CheckLeftoverInstance, CheckLeftoverKeyPair, CheckOrphanSnapshot, CheckLeftoverLaunchPerm, CheckLeftoverVolumePerm, CheckForeignKeyCopy, CheckLeftoverGrant}
	if r := emu.Check(CheckOptions{SinceSeq: mark, Ignore: all}); !r.Pass {
		t.Fatalf("checker ignoring every kind: %s", r)
	}
	// The admin endpoint serves the same report as JSON.
	tests := []struct {
		query  string
		status int
		pass   bool
	}{
		{"since_seq=" + strconv.Itoa(mark), http.StatusOK, false},
		{"since_seq=" + strconv.Itoa(mark) + "&principal=arn:aws:iam::333333333333:user/admin", http.StatusOK, true},
		{"since_seq=" + strconv.Itoa(mark) + "&ignore=" + strings.Join(all, ","), http.StatusOK, true},
		{"since_seq=minus-one", http.StatusBadRequest, false},
	}
	for _, tc := range tests {
		resp, err := http.Get(x.srv.URL() + "/_emu/check?" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		var got CheckReport
		derr := json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != tc.status || (tc.status == http.StatusOK && (derr != nil || got.Pass != tc.pass)) {
			t.Fatalf("GET /_emu/check?%s: HTTP %d pass=%t (%v), want %d pass=%t", tc.query, resp.StatusCode, got.Pass, derr, tc.status, tc.pass)
		}
	}
}
