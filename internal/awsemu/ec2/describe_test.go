package ec2_test

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

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
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
	x := emutest.NewEnv(t, awsemu.Options{})
	f := newRuleFixture(x)
	b := x.EC2(emutest.AcctBuild, emutest.East)
	x.Share(emutest.AcctBuild, emutest.East, f.custAMI, f.custSnap, emutest.AcctT2)
	emutest.Must[*ec2.CreateTagsOutput](t, "CreateTags")(b.CreateTags(x.Ctx, &ec2.CreateTagsInput{Resources: []string{f.custAMI},
		Tags: []types.Tag{{Key: aws.String("Team"), Value: aws.String("pci")}}}))
	tests := []struct {
		name    string
		account string
		in      ec2.DescribeImagesInput
		want    []string
	}{
		{"owner amazon", emutest.AcctBuild, ec2.DescribeImagesInput{Owners: []string{"amazon"}}, []string{emutest.SeedAMI}},
		{"owner self", emutest.AcctBuild, ec2.DescribeImagesInput{Owners: []string{"self"}}, []string{f.custAMI, f.managedAMI}},
		{"owner by account ID", emutest.AcctT2, ec2.DescribeImagesInput{Owners: []string{emutest.AcctBuild}}, []string{f.custAMI}},
		{"executable by self (shared with me)", emutest.AcctT2, ec2.DescribeImagesInput{ExecutableUsers: []string{"self"}}, []string{f.custAMI}},
		{"executable by all", emutest.AcctT2, ec2.DescribeImagesInput{ExecutableUsers: []string{"all"}}, []string{emutest.SeedAMI}},
		{"name with wildcard", emutest.AcctBuild, ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"cust-?", "al2023-*"}}}}, []string{f.custAMI, emutest.SeedAMI}},
		{"tag filter", emutest.AcctBuild, ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("tag:Team"), Values: []string{"pci"}}}}, []string{f.custAMI}},
		{"tag-key filter", emutest.AcctBuild, ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("tag-key"), Values: []string{"Team"}}}}, []string{f.custAMI}},
		{"state and is-public", emutest.AcctBuild, ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("state"), Values: []string{"available"}},
			{Name: aws.String("is-public"), Values: []string{"true"}}}}, []string{emutest.SeedAMI}},
		{"image-id filter", emutest.AcctBuild, ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("image-id"), Values: []string{f.managedAMI}}}}, []string{f.managedAMI}},
		{"encrypted mapping", emutest.AcctBuild, ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []types.Filter{{Name: aws.String("block-device-mapping.encrypted"), Values: []string{"true"}}}}, []string{f.custAMI, f.managedAMI}},
		{"other region", emutest.AcctBuild, ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"*"}}}}, []string{f.custAMI, f.managedAMI}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			out := emutest.Must[*ec2.DescribeImagesOutput](t, "DescribeImages")(x.EC2(tc.account, emutest.East).DescribeImages(x.Ctx, &in))
			if got := imageIDs(out.Images); !sameIDs(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	west := emutest.Must[*ec2.DescribeImagesOutput](t, "west")(x.EC2(emutest.AcctBuild, "us-west-2").DescribeImages(x.Ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}}))
	if len(west.Images) != 0 {
		t.Fatalf("images are regional, us-west-2 shows %v", imageIDs(west.Images))
	}

	// Pagination.
	p := ec2.NewDescribeImagesPaginator(b, &ec2.DescribeImagesInput{MaxResults: aws.Int32(1)})
	var pages, n int
	for p.HasMorePages() {
		page := emutest.Must[*ec2.DescribeImagesOutput](t, "page")(p.NextPage(x.Ctx))
		pages++
		n += len(page.Images)
	}
	if pages != 3 || n != 3 {
		t.Fatalf("paginated 3 images into %d pages / %d images", pages, n)
	}

	// Deprecation hides an AMI from other accounts' listings, not by ID.
	emutest.Must[*ec2.EnableImageDeprecationOutput](t, "EnableImageDeprecation")(b.EnableImageDeprecation(x.Ctx, &ec2.EnableImageDeprecationInput{
		ImageId: aws.String(f.custAMI), DeprecateAt: aws.Time(time.Now().Add(-time.Minute))}))
	t2 := x.EC2(emutest.AcctT2, emutest.East)
	listed := emutest.Must[*ec2.DescribeImagesOutput](t, "list")(t2.DescribeImages(x.Ctx, &ec2.DescribeImagesInput{ExecutableUsers: []string{"self"}}))
	if len(listed.Images) != 0 {
		t.Fatalf("deprecated AMI listed for another account: %v", imageIDs(listed.Images))
	}
	withDep := emutest.Must[*ec2.DescribeImagesOutput](t, "list")(t2.DescribeImages(x.Ctx, &ec2.DescribeImagesInput{ExecutableUsers: []string{"self"}, IncludeDeprecated: aws.Bool(true)}))
	if len(withDep.Images) != 1 || aws.ToString(withDep.Images[0].DeprecationTime) == "" {
		t.Fatalf("IncludeDeprecated: %+v", withDep.Images)
	}
	if img := x.Image(t2, f.custAMI); aws.ToString(img.DeprecationTime) == "" {
		t.Fatal("DeprecationTime missing")
	}
	emutest.Must[*ec2.DisableImageDeprecationOutput](t, "DisableImageDeprecation")(b.DisableImageDeprecation(x.Ctx, &ec2.DisableImageDeprecationInput{ImageId: aws.String(f.custAMI)}))
}

// TestEC2ImageAttributesAndDeregistration covers image and snapshot
// attributes, deregistration protection and DeleteAssociatedSnapshots.
func TestEC2ImageAttributesAndDeregistration(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	f := newRuleFixture(x)
	b := x.EC2(emutest.AcctBuild, emutest.East)
	x.Share(emutest.AcctBuild, emutest.East, f.custAMI, f.custSnap, emutest.AcctT2)
	emutest.Must[*ec2.ModifyImageAttributeOutput](t, "org")(b.ModifyImageAttribute(x.Ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(f.custAMI),
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{
			{OrganizationArn: aws.String("arn:aws:organizations::111111111111:organization/o-abc123")},
			{OrganizationalUnitArn: aws.String("arn:aws:organizations::111111111111:ou/o-abc123/ou-ab12-cd34")}}}}))
	emutest.Must[*ec2.ModifyImageAttributeOutput](t, "description")(b.ModifyImageAttribute(x.Ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(f.custAMI),
		Description: &types.AttributeValue{Value: aws.String("golden")}}))
	lp := emutest.Must[*ec2.DescribeImageAttributeOutput](t, "launchPermission")(b.DescribeImageAttribute(x.Ctx, &ec2.DescribeImageAttributeInput{
		ImageId: aws.String(f.custAMI), Attribute: types.ImageAttributeNameLaunchPermission}))
	var users, orgs, ous int
	for _, p := range lp.LaunchPermissions {
		switch {
		case aws.ToString(p.UserId) == emutest.AcctT2:
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
	desc := emutest.Must[*ec2.DescribeImageAttributeOutput](t, "description")(b.DescribeImageAttribute(x.Ctx, &ec2.DescribeImageAttributeInput{
		ImageId: aws.String(f.custAMI), Attribute: types.ImageAttributeNameDescription}))
	if aws.ToString(desc.Description.Value) != "golden" {
		t.Fatalf("description %q", aws.ToString(desc.Description.Value))
	}
	cvp := emutest.Must[*ec2.DescribeSnapshotAttributeOutput](t, "createVolumePermission")(b.DescribeSnapshotAttribute(x.Ctx, &ec2.DescribeSnapshotAttributeInput{
		SnapshotId: aws.String(f.custSnap), Attribute: types.SnapshotAttributeNameCreateVolumePermission}))
	if len(cvp.CreateVolumePermissions) != 1 || aws.ToString(cvp.CreateVolumePermissions[0].UserId) != emutest.AcctT2 {
		t.Fatalf("createVolumePermission: %+v", cvp.CreateVolumePermissions)
	}
	// Shared snapshot is restorable by the target.
	rb := emutest.Must[*ec2.DescribeSnapshotsOutput](t, "restorable")(x.EC2(emutest.AcctT2, emutest.East).DescribeSnapshots(x.Ctx, &ec2.DescribeSnapshotsInput{RestorableByUserIds: []string{"self"}}))
	if len(rb.Snapshots) != 1 || aws.ToString(rb.Snapshots[0].SnapshotId) != f.custSnap {
		t.Fatalf("RestorableBy self: %+v", rb.Snapshots)
	}

	emutest.Must[*ec2.EnableImageDeregistrationProtectionOutput](t, "protect")(b.EnableImageDeregistrationProtection(x.Ctx, &ec2.EnableImageDeregistrationProtectionInput{ImageId: aws.String(f.custAMI)}))
	if _, err := b.DeregisterImage(x.Ctx, &ec2.DeregisterImageInput{ImageId: aws.String(f.custAMI)}); emutest.APICode(err) != "OperationNotPermitted" {
		t.Fatalf("DeregisterImage with protection: %v", err)
	}
	dp := emutest.Must[*ec2.DescribeImageAttributeOutput](t, "protection")(b.DescribeImageAttribute(x.Ctx, &ec2.DescribeImageAttributeInput{
		ImageId: aws.String(f.custAMI), Attribute: types.ImageAttributeNameDeregistrationProtection}))
	if aws.ToString(dp.DeregistrationProtection.Value) != "enabled" {
		t.Fatalf("deregistrationProtection %q", aws.ToString(dp.DeregistrationProtection.Value))
	}
	emutest.Must[*ec2.DisableImageDeregistrationProtectionOutput](t, "unprotect")(b.DisableImageDeregistrationProtection(x.Ctx, &ec2.DisableImageDeregistrationProtectionInput{ImageId: aws.String(f.custAMI)}))

	out := emutest.Must[*ec2.DeregisterImageOutput](t, "DeregisterImage")(b.DeregisterImage(x.Ctx, &ec2.DeregisterImageInput{ImageId: aws.String(f.custAMI), DeleteAssociatedSnapshots: aws.Bool(true)}))
	if len(out.DeleteSnapshotResults) != 1 || aws.ToString(out.DeleteSnapshotResults[0].SnapshotId) != f.custSnap ||
		out.DeleteSnapshotResults[0].ReturnCode != types.SnapshotReturnCodesSuccess {
		t.Fatalf("DeleteSnapshotResults: %+v", out.DeleteSnapshotResults)
	}
	if _, err := b.DescribeSnapshots(x.Ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{f.custSnap}}); emutest.APICode(err) != "InvalidSnapshot.NotFound" {
		t.Fatalf("snapshot after DeleteAssociatedSnapshots: %v", err)
	}
	// Without DeleteAssociatedSnapshots the snapshot stays and becomes deletable.
	emutest.Must[*ec2.DeregisterImageOutput](t, "DeregisterImage")(b.DeregisterImage(x.Ctx, &ec2.DeregisterImageInput{ImageId: aws.String(f.managedAMI)}))
	emutest.Must[*ec2.DeleteSnapshotOutput](t, "DeleteSnapshot")(b.DeleteSnapshot(x.Ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(f.managedSnap)}))
	// The checker remembers that the deregistered AMIs were encrypted: no findings of kind 1.
	report := x.Srv.Emulator().Check(awsemu.CheckOptions{Account: emutest.AcctBuild})
	for _, fd := range report.Findings {
		if fd.Check == awsemu.CheckUnencryptedAMI {
			t.Fatalf("unexpected finding %+v", fd)
		}
	}
}

// TestEC2NetworkAndAccount covers key pairs, security groups, VPCs,
// subnets, regions, zones and instance types.
func TestEC2NetworkAndAccount(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{World: emutest.DefaultWorldWith(t, func(w *awsemu.World) {
		for i := range w.Accounts {
			if w.Accounts[i].ID == emutest.AcctT3 {
				w.Accounts[i].Roles = append(w.Accounts[i].Roles, awsemu.WorldRole{Name: "builder", TrustedBy: []string{"ec2.amazonaws.com"}})
				w.Accounts[i].InstanceProfiles = append(w.Accounts[i].InstanceProfiles, awsemu.WorldInstanceProfile{Name: "builder", Role: "builder"})
			}
		}
	})})
	c := x.EC2(emutest.AcctT3, "eu-west-1")
	ctx := x.Ctx

	vpcs := emutest.Must[*ec2.DescribeVpcsOutput](t, "DescribeVpcs")(c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{
		Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}}))
	if len(vpcs.Vpcs) != 1 || aws.ToString(vpcs.Vpcs[0].CidrBlock) != "172.31.0.0/16" || !aws.ToBool(vpcs.Vpcs[0].IsDefault) || aws.ToString(vpcs.Vpcs[0].OwnerId) != emutest.AcctT3 {
		t.Fatalf("default VPC: %+v", vpcs.Vpcs)
	}
	subnets := emutest.Must[*ec2.DescribeSubnetsOutput](t, "DescribeSubnets")(c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{
		Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{aws.ToString(vpcs.Vpcs[0].VpcId)}}, {Name: aws.String("default-for-az"), Values: []string{"true"}}}}))
	if len(subnets.Subnets) != 3 || aws.ToString(subnets.Subnets[0].AvailabilityZone) != "eu-west-1a" || aws.ToString(subnets.Subnets[0].AvailabilityZoneId) != "euw1-az1" {
		t.Fatalf("default subnets: %+v", subnets.Subnets)
	}
	sgs := emutest.Must[*ec2.DescribeSecurityGroupsOutput](t, "DescribeSecurityGroups")(c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupNames: []string{"default"}}))
	if len(sgs.SecurityGroups) != 1 || len(sgs.SecurityGroups[0].IpPermissionsEgress) != 1 {
		t.Fatalf("default security group: %+v", sgs.SecurityGroups)
	}
	regions := emutest.Must[*ec2.DescribeRegionsOutput](t, "DescribeRegions")(c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{AllRegions: aws.Bool(true)}))
	status := map[string]string{}
	for _, r := range regions.Regions {
		status[aws.ToString(r.RegionName)] = aws.ToString(r.OptInStatus)
	}
	if len(status) != 5 || status["ap-southeast-3"] != "not-opted-in" || status["us-east-1"] != "opt-in-not-required" {
		t.Fatalf("DescribeRegions AllRegions: %v", status)
	}
	enabled := emutest.Must[*ec2.DescribeRegionsOutput](t, "DescribeRegions")(c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{}))
	if len(enabled.Regions) != 4 {
		t.Fatalf("DescribeRegions: %d regions", len(enabled.Regions))
	}
	azs := emutest.Must[*ec2.DescribeAvailabilityZonesOutput](t, "DescribeAvailabilityZones")(c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{}))
	if len(azs.AvailabilityZones) != 3 || azs.AvailabilityZones[0].State != types.AvailabilityZoneStateAvailable {
		t.Fatalf("zones: %+v", azs.AvailabilityZones)
	}
	types_ := emutest.Must[*ec2.DescribeInstanceTypesOutput](t, "DescribeInstanceTypes")(c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{types.InstanceTypeT3Micro}}))
	if len(types_.InstanceTypes) != 1 || aws.ToInt32(types_.InstanceTypes[0].VCpuInfo.DefaultVCpus) != 2 {
		t.Fatalf("instance types: %+v", types_.InstanceTypes)
	}
	offers := emutest.Must[*ec2.DescribeInstanceTypeOfferingsOutput](t, "offerings")(c.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{
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
	imp := emutest.Must[*ec2.ImportKeyPairOutput](t, "ImportKeyPair")(c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("imported"), PublicKeyMaterial: []byte(pub)}))
	emutest.Must[*ec2.CreateKeyPairOutput](t, "CreateKeyPair")(c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("made"), KeyType: types.KeyTypeEd25519}))
	if _, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("made")}); emutest.APICode(err) != "InvalidKeyPair.Duplicate" {
		t.Fatalf("duplicate key pair: %v", err)
	}
	kps := emutest.Must[*ec2.DescribeKeyPairsOutput](t, "DescribeKeyPairs")(c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{}))
	if len(kps.KeyPairs) != 2 || aws.ToString(kps.KeyPairs[0].KeyPairId) != aws.ToString(imp.KeyPairId) {
		t.Fatalf("key pairs: %+v", kps.KeyPairs)
	}
	if _, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"none"}}); emutest.APICode(err) != "InvalidKeyPair.NotFound" {
		t.Fatalf("unknown key pair: %v", err)
	}
	for _, name := range []string{"made", "imported", "never-existed"} {
		emutest.Must[*ec2.DeleteKeyPairOutput](t, "DeleteKeyPair")(c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String(name)}))
	}

	// Security groups: a group in use can't be deleted.
	sg := emutest.Must[*ec2.CreateSecurityGroupOutput](t, "CreateSecurityGroup")(c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("tmp"), Description: aws.String("tmp")}))
	if _, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("tmp"), Description: aws.String("tmp")}); emutest.APICode(err) != "InvalidGroup.Duplicate" {
		t.Fatalf("duplicate group: %v", err)
	}
	perm := []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}}}
	emutest.Must[*ec2.AuthorizeSecurityGroupIngressOutput](t, "Authorize")(c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: perm}))
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: perm}); emutest.APICode(err) != "InvalidPermission.Duplicate" {
		t.Fatalf("duplicate rule: %v", err)
	}
	run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-0a1b2c3d4e5f60003"),
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SecurityGroupIds: []string{aws.ToString(sg.GroupId)},
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\n"))), IamInstanceProfile: &types.IamInstanceProfileSpecification{Name: aws.String("builder")}}))
	if _, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}); emutest.APICode(err) != "DependencyViolation" {
		t.Fatalf("deleting a group in use: %v", err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	if inst := x.WaitInstance(c, id); aws.ToString(inst.IamInstanceProfile.Arn) != "arn:aws:iam::333333333333:instance-profile/builder" {
		t.Fatalf("instance profile: %+v", inst.IamInstanceProfile)
	}
	emutest.Must[*ec2.TerminateInstancesOutput](t, "Terminate")(c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}))
	x.WaitInstance(c, id)
	emutest.Must[*ec2.DeleteSecurityGroupOutput](t, "DeleteSecurityGroup")(c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}))
	if r := x.Srv.Emulator().Check(awsemu.CheckOptions{Account: emutest.AcctT3}); !r.Pass {
		t.Fatalf("checker: %s", r)
	}
}

// TestEC2CheckerFindings makes each kind of finding and checks the report.
func TestEC2CheckerFindings(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	ctx := x.Ctx
	emu := x.Srv.Emulator()
	b := x.EC2(emutest.AcctBuild, emutest.East)
	mark := emu.CheckMark()
	// (1) an unencrypted AMI, deregistered afterwards: still a finding.
	run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(b.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))
	id := aws.ToString(run.Instances[0].InstanceId)
	x.WaitInstance(b, id)
	ci := emutest.Must[*ec2.CreateImageOutput](t, "CreateImage")(b.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("plain")}))
	img := x.WaitImage(b, aws.ToString(ci.ImageId))
	emutest.Must[*ec2.DeregisterImageOutput](t, "DeregisterImage")(b.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: ci.ImageId}))
	// (2) the instance, its snapshot now behind no AMI, a key pair.
	emutest.Must[*ec2.CreateKeyPairOutput](t, "CreateKeyPair")(b.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("left")}))
	// (3) a copy in another account under the build account's key.
	amiID, snapID := x.EncryptedAMI(emutest.AcctBuild, emutest.East, "alias/amicrypt-build", "enc")
	x.Share(emutest.AcctBuild, emutest.East, amiID, snapID, emutest.AcctT2)
	buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
	_ = img
	t2 := x.EC2(emutest.AcctT2, emutest.East)
	// "One key shared by every account": a grant lets 222222222222 encrypt its copy under the build key.
	emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant")(x.KMS(emutest.AcctBuild, emutest.East).CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
		GranteePrincipal: aws.String("arn:aws:iam::222222222222:root"), Operations: []kmstypes.GrantOperation{"Decrypt", "DescribeKey", "CreateGrant",
			"ReEncryptFrom", "ReEncryptTo", "GenerateDataKeyWithoutPlaintext"}}))
	cp := emutest.Must[*ec2.CopyImageOutput](t, "CopyImage")(t2.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(amiID), SourceRegion: aws.String(emutest.East),
		Name: aws.String("foreign"), Encrypted: aws.Bool(true), KmsKeyId: aws.String(buildKey)}))
	if img := x.WaitImage(t2, aws.ToString(cp.ImageId)); img.State != types.ImageStateAvailable {
		t.Fatalf("copy under the shared key: %s %+v", img.State, img.StateReason)
	}

	report := emu.Check(awsemu.CheckOptions{SinceSeq: mark})
	kinds := map[string]int{}
	for _, f := range report.Findings {
		kinds[f.Check]++
	}
	want := map[string]int{awsemu.CheckUnencryptedAMI: 1, awsemu.CheckLeftoverInstance: 1, awsemu.CheckLeftoverKeyPair: 1, awsemu.CheckOrphanSnapshot: 1,
		awsemu.CheckLeftoverLaunchPerm: 1, awsemu.CheckLeftoverVolumePerm: 1, awsemu.CheckForeignKeyCopy: 1, awsemu.CheckLeftoverGrant: 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%s: %d findings, want %d", k, kinds[k], n)
		}
	}
	if report.Pass || len(report.CallCounts) == 0 {
		t.Fatalf("report: %s", report)
	}
	// Scoped to another principal, nothing is found.
	if r := emu.Check(awsemu.CheckOptions{SinceSeq: mark, Principal: "arn:aws:iam::333333333333:user/admin"}); !r.Pass || r.TotalCalls != 0 {
		t.Fatalf("checker for an idle principal: %s", r)
	}
	// Ignore lists drop checks.
	all := []string{awsemu.CheckUnencryptedAMI, awsemu.CheckLeftoverInstance, awsemu.CheckLeftoverKeyPair, awsemu.CheckOrphanSnapshot, awsemu.CheckLeftoverLaunchPerm, awsemu.CheckLeftoverVolumePerm, awsemu.CheckForeignKeyCopy, awsemu.CheckLeftoverGrant}
	if r := emu.Check(awsemu.CheckOptions{SinceSeq: mark, Ignore: all}); !r.Pass {
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
		resp, err := http.Get(x.Srv.URL() + "/_emu/check?" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		var got awsemu.CheckReport
		derr := json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != tc.status || (tc.status == http.StatusOK && (derr != nil || got.Pass != tc.pass)) {
			t.Fatalf("GET /_emu/check?%s: HTTP %d pass=%t (%v), want %d pass=%t", tc.query, resp.StatusCode, got.Pass, derr, tc.status, tc.pass)
		}
	}
}
