package ec2_test

// The EC2 behaviour amazon-ebs (and amicrypt-ebs) rely on beyond a plain
// launch: RunInstances options as DescribeInstances reports them, spot
// instances through an instant EC2 Fleet from a launch template, Windows
// passwords, key pair types and narrowed security group rules.

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

func TestEC2RunInstancesOptionsAreReported(t *testing.T) {
	x := realTime(t, awsemu.Options{})
	c := x.EC2(emutest.AcctBuild, emutest.East)
	lic := "arn:aws:license-manager:us-east-1:111111111111:license-configuration:lic-0123456789abcdef0123456789abcdef"
	id, _ := runningInstance(x, emutest.AcctBuild, &ec2.RunInstancesInput{
		InstanceType: types.InstanceTypeM5Large,
		MetadataOptions: &types.InstanceMetadataOptionsRequest{HttpEndpoint: types.InstanceMetadataEndpointStateEnabled,
			HttpTokens: types.HttpTokensStateRequired, HttpPutResponseHopLimit: aws.Int32(2), InstanceMetadataTags: types.InstanceMetadataTagsStateEnabled},
		EbsOptimized:                      aws.Bool(true),
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
		Placement:                         &types.Placement{Tenancy: types.TenancyDedicated, AvailabilityZone: aws.String("us-east-1b")},
		EnclaveOptions:                    &types.EnclaveOptionsRequest{Enabled: aws.Bool(true)},
		LicenseSpecifications:             []types.LicenseConfigurationRequest{{LicenseConfigurationArn: aws.String(lic)}},
		CapacityReservationSpecification: &types.CapacityReservationSpecification{
			CapacityReservationTarget: &types.CapacityReservationTarget{CapacityReservationId: aws.String("cr-0123456789abcdef0")}},
	})
	inst := x.Instance(c, id)
	mo := inst.MetadataOptions
	if mo.HttpTokens != types.HttpTokensStateRequired || aws.ToInt32(mo.HttpPutResponseHopLimit) != 2 ||
		mo.HttpEndpoint != types.InstanceMetadataEndpointStateEnabled || mo.InstanceMetadataTags != types.InstanceMetadataTagsStateEnabled {
		t.Errorf("MetadataOptions = %+v", mo)
	}
	if !aws.ToBool(inst.EbsOptimized) || inst.Placement.Tenancy != types.TenancyDedicated || aws.ToString(inst.Placement.AvailabilityZone) != "us-east-1b" {
		t.Errorf("EbsOptimized %v, placement %+v", aws.ToBool(inst.EbsOptimized), inst.Placement)
	}
	if inst.EnclaveOptions == nil || !aws.ToBool(inst.EnclaveOptions.Enabled) {
		t.Errorf("EnclaveOptions = %+v", inst.EnclaveOptions)
	}
	if len(inst.Licenses) != 1 || aws.ToString(inst.Licenses[0].LicenseConfigurationArn) != lic {
		t.Errorf("Licenses = %+v", inst.Licenses)
	}
	if crs := inst.CapacityReservationSpecification; crs == nil || crs.CapacityReservationTarget == nil ||
		aws.ToString(crs.CapacityReservationTarget.CapacityReservationId) != "cr-0123456789abcdef0" {
		t.Errorf("CapacityReservationSpecification = %+v", crs)
	}
	attr := emutest.Must[*ec2.DescribeInstanceAttributeOutput](t, "DescribeInstanceAttribute")(c.DescribeInstanceAttribute(x.Ctx,
		&ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: types.InstanceAttributeNameInstanceInitiatedShutdownBehavior}))
	if aws.ToString(attr.InstanceInitiatedShutdownBehavior.Value) != "terminate" {
		t.Errorf("shutdown behavior = %v", aws.ToString(attr.InstanceInitiatedShutdownBehavior.Value))
	}
}

func TestEC2RunInstancesRefusesBadOptions(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	c := x.EC2(emutest.AcctBuild, emutest.East)
	cases := []struct {
		name string
		in   ec2.RunInstancesInput
		code string
	}{
		{"http tokens", ec2.RunInstancesInput{MetadataOptions: &types.InstanceMetadataOptionsRequest{HttpTokens: "v2"}}, "InvalidParameterValue"},
		{"hop limit", ec2.RunInstancesInput{MetadataOptions: &types.InstanceMetadataOptionsRequest{HttpPutResponseHopLimit: aws.Int32(65)}}, "InvalidParameterValue"},
		{"shutdown behavior", ec2.RunInstancesInput{InstanceInitiatedShutdownBehavior: "halt"}, "InvalidParameterValue"},
		{"tenancy", ec2.RunInstancesInput{Placement: &types.Placement{Tenancy: "shared"}}, "InvalidParameterValue"},
		{"host with dedicated tenancy", ec2.RunInstancesInput{Placement: &types.Placement{Tenancy: types.TenancyDedicated, HostId: aws.String("h-0123456789abcdef0")}}, "InvalidParameterCombination"},
		{"license arn", ec2.RunInstancesInput{LicenseSpecifications: []types.LicenseConfigurationRequest{{LicenseConfigurationArn: aws.String("lic-1")}}}, "InvalidParameterValue"},
		{"spot into a reservation", ec2.RunInstancesInput{InstanceMarketOptions: &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot},
			CapacityReservationSpecification: &types.CapacityReservationSpecification{CapacityReservationTarget: &types.CapacityReservationTarget{CapacityReservationId: aws.String("cr-0123456789abcdef0")}}},
			"InvalidParameterCombination"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.ImageId, in.MinCount, in.MaxCount = aws.String(emutest.SeedAMI), aws.Int32(1), aws.Int32(1)
			_, err := c.RunInstances(x.Ctx, &in)
			emutest.WantCode(t, "RunInstances", err, tc.code)
		})
	}
}

// Spot as amazon-ebs asks for it: a launch template, then CreateFleet of
// type instant with spot capacity and type overrides. The instance is a
// spot instance of a one-time request, which can't be stopped.
func TestEC2InstantFleetLaunchesSpot(t *testing.T) {
	x := realTime(t, awsemu.Options{})
	c := x.EC2(emutest.AcctBuild, emutest.East)
	lt := emutest.Must[*ec2.CreateLaunchTemplateOutput](t, "CreateLaunchTemplate")(c.CreateLaunchTemplate(x.Ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("packer-fleet-launch-template-abc1234"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{
			ImageId: aws.String(emutest.SeedAMI),
			MetadataOptions: &types.LaunchTemplateInstanceMetadataOptionsRequest{HttpTokens: types.LaunchTemplateHttpTokensStateRequired,
				HttpEndpoint: types.LaunchTemplateInstanceMetadataEndpointStateEnabled, HttpPutResponseHopLimit: aws.Int32(1)},
			InstanceMarketOptions: &types.LaunchTemplateInstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot},
			TagSpecifications: []types.LaunchTemplateTagSpecificationRequest{{ResourceType: types.ResourceTypeInstance,
				Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("spot build")}}}},
		},
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeLaunchTemplate, Tags: []types.Tag{{Key: aws.String("spot"), Value: aws.String("yes")}}}},
	}))
	fleet := emutest.Must[*ec2.CreateFleetOutput](t, "CreateFleet")(c.CreateFleet(x.Ctx, &ec2.CreateFleetInput{
		Type: types.FleetTypeInstant,
		LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{LaunchTemplateName: lt.LaunchTemplate.LaunchTemplateName, Version: aws.String("1")},
			Overrides:                   []types.FleetLaunchTemplateOverridesRequest{{InstanceType: types.InstanceTypeT3Micro}, {InstanceType: types.InstanceTypeT3aMicro}},
		}},
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{TotalTargetCapacity: aws.Int32(1), DefaultTargetCapacityType: types.DefaultTargetCapacityTypeSpot},
		SpotOptions:                 &types.SpotOptionsRequest{AllocationStrategy: types.SpotAllocationStrategyPriceCapacityOptimized},
		TagSpecifications:           []types.TagSpecification{{ResourceType: types.ResourceTypeFleet, Tags: []types.Tag{{Key: aws.String("fleet"), Value: aws.String("yes")}}}},
	}))
	if len(fleet.Errors) != 0 || len(fleet.Instances) != 1 || len(fleet.Instances[0].InstanceIds) != 1 {
		t.Fatalf("CreateFleet = errors %+v, instances %+v", fleet.Errors, fleet.Instances)
	}
	id := fleet.Instances[0].InstanceIds[0]
	x.Srv.Emulator().Advance(time.Minute)
	inst := x.Instance(c, id)
	if inst.InstanceLifecycle != types.InstanceLifecycleTypeSpot || aws.ToString(inst.SpotInstanceRequestId) == "" || inst.InstanceType != types.InstanceTypeT3Micro {
		t.Errorf("instance lifecycle %q, request %q, type %q", inst.InstanceLifecycle, aws.ToString(inst.SpotInstanceRequestId), inst.InstanceType)
	}
	if inst.MetadataOptions.HttpTokens != types.HttpTokensStateRequired {
		t.Errorf("the launch template's HttpTokens did not reach the instance: %+v", inst.MetadataOptions)
	}
	if tags := tagMap(inst.Tags); tags["Name"] != "spot build" {
		t.Errorf("instance tags = %v", tags)
	}
	// amazon-ebs tags the spot request after the launch.
	emutest.Must[*ec2.CreateTagsOutput](t, "CreateTags")(c.CreateTags(x.Ctx, &ec2.CreateTagsInput{
		Resources: []string{aws.ToString(inst.SpotInstanceRequestId)}, Tags: []types.Tag{{Key: aws.String("req"), Value: aws.String("1")}}}))
	reqs := emutest.Must[*ec2.DescribeSpotInstanceRequestsOutput](t, "DescribeSpotInstanceRequests")(c.DescribeSpotInstanceRequests(x.Ctx,
		&ec2.DescribeSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{aws.ToString(inst.SpotInstanceRequestId)}}))
	if len(reqs.SpotInstanceRequests) != 1 || reqs.SpotInstanceRequests[0].State != types.SpotInstanceStateActive || tagMap(reqs.SpotInstanceRequests[0].Tags)["req"] != "1" {
		t.Errorf("spot requests = %+v", reqs.SpotInstanceRequests)
	}
	_, err := c.StopInstances(x.Ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
	emutest.WantCode(t, "StopInstances of a one-time spot instance", err, "UnsupportedOperation")

	emutest.Must[*ec2.TerminateInstancesOutput](t, "TerminateInstances")(c.TerminateInstances(x.Ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}))
	x.Srv.Emulator().Advance(time.Minute)
	reqs = emutest.Must[*ec2.DescribeSpotInstanceRequestsOutput](t, "DescribeSpotInstanceRequests")(c.DescribeSpotInstanceRequests(x.Ctx, &ec2.DescribeSpotInstanceRequestsInput{}))
	if len(reqs.SpotInstanceRequests) != 1 || reqs.SpotInstanceRequests[0].State != types.SpotInstanceStateClosed {
		t.Errorf("spot request after termination = %+v", reqs.SpotInstanceRequests)
	}
	emutest.Must[*ec2.DeleteLaunchTemplateOutput](t, "DeleteLaunchTemplate")(c.DeleteLaunchTemplate(x.Ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: lt.LaunchTemplate.LaunchTemplateName}))
	_, err = c.DeleteLaunchTemplate(x.Ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: lt.LaunchTemplate.LaunchTemplateName})
	emutest.WantCode(t, "DeleteLaunchTemplate twice", err, "InvalidLaunchTemplateName.NotFoundException")
}

// An instant fleet reports a launch it can't make in Errors, not as a
// failed call.
func TestEC2InstantFleetReportsLaunchErrors(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	c := x.EC2(emutest.AcctBuild, emutest.East)
	emutest.Must[*ec2.CreateLaunchTemplateOutput](t, "CreateLaunchTemplate")(c.CreateLaunchTemplate(x.Ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("lt-missing-image"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String("ami-00000000000000000")},
	}))
	out, err := c.CreateFleet(x.Ctx, &ec2.CreateFleetInput{Type: types.FleetTypeInstant,
		LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{
			LaunchTemplateName: aws.String("lt-missing-image"), Version: aws.String("1")}, Overrides: []types.FleetLaunchTemplateOverridesRequest{{InstanceType: types.InstanceTypeT3Micro}}}},
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{TotalTargetCapacity: aws.Int32(1), DefaultTargetCapacityType: types.DefaultTargetCapacityTypeSpot}})
	if err != nil {
		t.Fatalf("CreateFleet: %v", err)
	}
	if len(out.Instances) != 0 || len(out.Errors) != 1 || !strings.HasPrefix(aws.ToString(out.Errors[0].ErrorCode), "InvalidAMIID") {
		t.Errorf("CreateFleet = instances %+v, errors %+v", out.Instances, out.Errors)
	}
}

// A Windows instance's password is available a few minutes after launch,
// encrypted with the key pair's RSA public key; a Linux instance has none.
func TestEC2GetPasswordData(t *testing.T) {
	x := realTime(t, awsemu.Options{World: emutest.DefaultWorldWith(t, windowsWorld)})
	c := x.EC2(emutest.AcctBuild, emutest.East)
	key := emutest.Must[*ec2.CreateKeyPairOutput](t, "CreateKeyPair")(c.CreateKeyPair(x.Ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("win")}))
	win := windowsImage(t, x)
	run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(x.Ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(win), KeyName: aws.String("win"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))
	id := aws.ToString(run.Instances[0].InstanceId)
	x.Srv.Emulator().Advance(time.Minute)
	early := emutest.Must[*ec2.GetPasswordDataOutput](t, "GetPasswordData")(c.GetPasswordData(x.Ctx, &ec2.GetPasswordDataInput{InstanceId: aws.String(id)}))
	if aws.ToString(early.PasswordData) != "" {
		t.Errorf("password data a minute after launch = %q, want empty (not ready)", aws.ToString(early.PasswordData))
	}
	x.Srv.Emulator().Advance(5 * time.Minute)
	out := emutest.Must[*ec2.GetPasswordDataOutput](t, "GetPasswordData")(c.GetPasswordData(x.Ctx, &ec2.GetPasswordDataInput{InstanceId: aws.String(id)}))
	block, _ := pem.Decode([]byte(aws.ToString(key.KeyMaterial)))
	priv, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := base64.StdEncoding.DecodeString(aws.ToString(out.PasswordData))
	if err != nil {
		t.Fatalf("password data %q: %v", aws.ToString(out.PasswordData), err)
	}
	plain, err := rsa.DecryptPKCS1v15(nil, priv, enc) //nolint:staticcheck // SA1019: AWS encrypts Windows passwords with PKCS #1 v1.5
	if err != nil || len(plain) < 16 {
		t.Fatalf("decrypting the password: %q, %v", plain, err)
	}
	if inst := x.Instance(c, id); inst.Platform != "windows" { // AWS writes it in lower case
		t.Errorf("platform = %q, want windows", inst.Platform)
	}
	linux, _ := runningInstance(x, emutest.AcctBuild, &ec2.RunInstancesInput{KeyName: aws.String("win")})
	x.Srv.Emulator().Advance(10 * time.Minute)
	none := emutest.Must[*ec2.GetPasswordDataOutput](t, "GetPasswordData")(c.GetPasswordData(x.Ctx, &ec2.GetPasswordDataInput{InstanceId: aws.String(linux)}))
	if aws.ToString(none.PasswordData) != "" {
		t.Errorf("a Linux instance has password data %q", aws.ToString(none.PasswordData))
	}
}

// ED25519 key pairs are made and described as such, and refused for
// Windows; imported keys report their type and size in the audit.
func TestEC2KeyPairTypes(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{World: emutest.DefaultWorldWith(t, windowsWorld)})
	c := x.EC2(emutest.AcctBuild, emutest.East)
	ed := emutest.Must[*ec2.CreateKeyPairOutput](t, "CreateKeyPair")(c.CreateKeyPair(x.Ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("ed"), KeyType: types.KeyTypeEd25519}))
	if !strings.Contains(aws.ToString(ed.KeyMaterial), "PRIVATE KEY") {
		t.Errorf("ed25519 key material = %q", aws.ToString(ed.KeyMaterial))
	}
	kps := emutest.Must[*ec2.DescribeKeyPairsOutput](t, "DescribeKeyPairs")(c.DescribeKeyPairs(x.Ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"ed"}, IncludePublicKey: aws.Bool(true)}))
	if kps.KeyPairs[0].KeyType != types.KeyTypeEd25519 || !strings.HasPrefix(aws.ToString(kps.KeyPairs[0].PublicKey), "ssh-ed25519 ") {
		t.Errorf("key pair = %+v", kps.KeyPairs[0])
	}
	_, err := c.RunInstances(x.Ctx, &ec2.RunInstancesInput{ImageId: aws.String(windowsImage(t, x)), KeyName: aws.String("ed"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	emutest.WantCode(t, "RunInstances of Windows with an ED25519 key", err, "InvalidKeyPair.Format")
	rsaPub := "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDDmEsaIm8jFRaT8tBkv5y2sqWA4aRXsHnFmU9QZXMNM5uD4HZm66jxXBhm2qTFHxOw6uXtV5dN4I0K3JxkUhs2O5qY8I8ydxAaX4IkhLSrMF5U6xVqoRszs6ZRNgXg2WSCF06U8Rv1lM3pKJ9hKcyM8MNz0rTYLsvPQ7HEkSsFnw=="
	emutest.Must[*ec2.ImportKeyPairOutput](t, "ImportKeyPair")(c.ImportKeyPair(x.Ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("imp"), PublicKeyMaterial: []byte(rsaPub)}))
	entries := x.Srv.Emulator().Audit(awsemu.AuditFilter{Action: "ImportKeyPair"})
	if len(entries) != 1 || entries[0].Notes["keyType"] != "rsa" || entries[0].Notes["keyBits"] != "1024" {
		t.Errorf("ImportKeyPair audit notes = %+v", entries)
	}
}

// windowsAMI is the public Windows AMI windowsWorld adds in us-east-1.
const windowsAMI = "ami-0a1b2c3d4e5f6a001"

// windowsWorld is the default world with Amazon's public Windows AMI in
// us-east-1 (platform windows, root /dev/sda1).
func windowsWorld(w *awsemu.World) {
	w.Images = append(w.Images, awsemu.WorldImage{
		ID: windowsAMI, Owner: emutest.AcctAmazon, Region: emutest.East, Name: "Windows_Server-2022-English-Full-Base-2025.01.15",
		Public: true, Architecture: "x86_64", VirtualizationType: "hvm", RootDeviceName: "/dev/sda1", EnaSupport: true, Platform: "windows",
		Volumes: []awsemu.WorldVolume{{DeviceName: "/dev/sda1", SnapshotID: "snap-0a1b2c3d4e5f6a001", SizeGiB: 30, VolumeType: "gp3"}},
	})
}

// windowsImage is the Windows AMI of an emulator of windowsWorld.
func windowsImage(t *testing.T, x *emutest.Env) string {
	t.Helper()
	x.Image(x.EC2(emutest.AcctBuild, emutest.East), windowsAMI) // fails the test if the world lacks it
	return windowsAMI
}

// The narrowed rule of a temporary security group: one /32, and an IPv6
// range, as amicrypt-ebs and amazon-ebs authorize them.
func TestEC2SecurityGroupSourceRanges(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	c := x.EC2(emutest.AcctBuild, emutest.East)
	sg := emutest.Must[*ec2.CreateSecurityGroupOutput](t, "CreateSecurityGroup")(c.CreateSecurityGroup(x.Ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("packer_narrow"), Description: aws.String("narrow")}))
	emutest.Must[*ec2.AuthorizeSecurityGroupIngressOutput](t, "AuthorizeSecurityGroupIngress")(c.AuthorizeSecurityGroupIngress(x.Ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: sg.GroupId, IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			IpRanges: []types.IpRange{{CidrIp: aws.String("203.0.113.7/32")}}, Ipv6Ranges: []types.Ipv6Range{{CidrIpv6: aws.String("2001:db8::/32")}}}}}))
	out := emutest.Must[*ec2.DescribeSecurityGroupsOutput](t, "DescribeSecurityGroups")(c.DescribeSecurityGroups(x.Ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aws.ToString(sg.GroupId)}}))
	perms := out.SecurityGroups[0].IpPermissions
	if len(perms) != 1 || len(perms[0].IpRanges) != 1 || aws.ToString(perms[0].IpRanges[0].CidrIp) != "203.0.113.7/32" ||
		len(perms[0].Ipv6Ranges) != 1 || aws.ToString(perms[0].Ipv6Ranges[0].CidrIpv6) != "2001:db8::/32" {
		t.Errorf("ingress = %+v", perms)
	}
}

func tagMap(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// A spot build's launch template, fleet and spot request are leaks while
// they last, as its instance is: the checker names each until the
// instance is terminated and the template deleted. An undeleted instant
// fleet whose instances are gone is no leak (a one-time request).
func TestEC2CheckerSpotLeftovers(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	c := x.EC2(emutest.AcctBuild, emutest.East)
	mark := x.Srv.Mark()
	emutest.Must[*ec2.CreateLaunchTemplateOutput](t, "CreateLaunchTemplate")(c.CreateLaunchTemplate(x.Ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("packer-leak"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(emutest.SeedAMI),
			InstanceMarketOptions: &types.LaunchTemplateInstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot}},
	}))
	fleet := emutest.Must[*ec2.CreateFleetOutput](t, "CreateFleet")(c.CreateFleet(x.Ctx, &ec2.CreateFleetInput{
		Type: types.FleetTypeInstant,
		LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{LaunchTemplateName: aws.String("packer-leak"), Version: aws.String("1")},
		}},
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{TotalTargetCapacity: aws.Int32(1), DefaultTargetCapacityType: types.DefaultTargetCapacityTypeSpot},
	}))
	if len(fleet.Instances) != 1 {
		t.Fatalf("CreateFleet = %+v", fleet)
	}
	inst := fleet.Instances[0].InstanceIds[0]
	findings := func() map[string]int {
		n := map[string]int{}
		for _, f := range x.Srv.Emulator().Check(awsemu.CheckOptions{SinceSeq: mark}).Findings {
			n[f.Check]++
			if f.Principal != "arn:aws:iam::111111111111:user/packer" {
				t.Errorf("finding %+v: principal is not the caller", f)
			}
		}
		return n
	}
	steps := []struct {
		name string
		act  func()
		want map[string]int
	}{
		{"after the launch", func() {}, map[string]int{awsemu.CheckLeftoverInstance: 1, awsemu.CheckLeftoverLaunchTmpl: 1,
			awsemu.CheckLeftoverFleet: 1, awsemu.CheckOpenSpotRequest: 1}},
		{"spot request cancelled", func() {
			reqs := emutest.Must[*ec2.DescribeSpotInstanceRequestsOutput](t, "DescribeSpotInstanceRequests")(c.DescribeSpotInstanceRequests(x.Ctx, &ec2.DescribeSpotInstanceRequestsInput{}))
			emutest.Must[*ec2.CancelSpotInstanceRequestsOutput](t, "CancelSpotInstanceRequests")(c.CancelSpotInstanceRequests(x.Ctx, &ec2.CancelSpotInstanceRequestsInput{
				SpotInstanceRequestIds: []string{aws.ToString(reqs.SpotInstanceRequests[0].SpotInstanceRequestId)}}))
		}, map[string]int{awsemu.CheckLeftoverInstance: 1, awsemu.CheckLeftoverLaunchTmpl: 1, awsemu.CheckLeftoverFleet: 1}},
		{"instance terminated", func() {
			emutest.Must[*ec2.TerminateInstancesOutput](t, "TerminateInstances")(c.TerminateInstances(x.Ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{inst}}))
		}, map[string]int{awsemu.CheckLeftoverLaunchTmpl: 1}},
		{"template deleted", func() {
			emutest.Must[*ec2.DeleteLaunchTemplateOutput](t, "DeleteLaunchTemplate")(c.DeleteLaunchTemplate(x.Ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: aws.String("packer-leak")}))
		}, map[string]int{}},
	}
	for _, s := range steps {
		s.act()
		if got := findings(); !maps.Equal(got, s.want) {
			t.Errorf("%s: findings %v, want %v", s.name, got, s.want)
		}
	}
	// Another principal's run is not charged with them.
	if r := x.Srv.Emulator().Check(awsemu.CheckOptions{SinceSeq: mark, Principal: emutest.AcctT2}); !r.Pass {
		t.Errorf("check of another account: %s", r)
	}
}
