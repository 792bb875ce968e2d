package ec2_test

// conformance_dropin_test.go: the EC2 cases of section 8 of
// docs/aws-behaviour.md, what HashiCorp's amazon-ebs (and amicrypt-ebs, its
// drop-in) meet beyond the encrypted-copy rules.

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// denyingPolicies gives the build account's user an identity policy
// that allows describing and decoding, and denies launching outright.
func denyingPolicies(w *awsemu.World) {
	for i := range w.Accounts {
		if w.Accounts[i].ID == emutest.AcctBuild {
			w.Accounts[i].Users[0].Policies = []string{`{"Version":"2012-10-17","Statement":[
				{"Effect":"Allow","Action":["ec2:Describe*","sts:DecodeAuthorizationMessage"],"Resource":"*"},
				{"Sid":"NoLaunch","Effect":"Deny","Action":"ec2:RunInstances","Resource":"*"}]}`}
		}
	}
}

func dropInConformance() []emutest.Case {
	return []emutest.Case{
		{Rule: "8.4", Name: "UnauthorizedOperation texts and encoded messages", World: denyingPolicies, Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			const user = "arn:aws:iam::111111111111:user/packer"
			encoded := regexp.MustCompile(` Encoded authorization failure message: ([A-Za-z0-9_-]{40,})$`)
			tests := []struct {
				name   string
				call   func() error
				prefix string // the message before the encoded part; "" when there is none
				plain  string // the whole message when not encoded
			}{
				{"explicit deny of RunInstances", func() error {
					_, err := c.RunInstances(x.Ctx, &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
					return err
				}, "You are not authorized to perform this operation. User: " + user + " is not authorized to perform: ec2:RunInstances on resource: arn:aws:ec2:us-east-1:111111111111:instance/* with an explicit deny in an identity-based policy.", ""},
				{"explicit deny with DryRun", func() error {
					_, err := c.RunInstances(x.Ctx, &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), DryRun: aws.Bool(true)})
					return err
				}, "You are not authorized to perform this operation. User: " + user + " is not authorized to perform: ec2:RunInstances on resource: arn:aws:ec2:us-east-1:111111111111:instance/* with an explicit deny in an identity-based policy.", ""},
				{"no statement allows CopyImage", func() error {
					_, err := c.CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("x-copy")})
					return err
				}, "You are not authorized to perform this operation. User: " + user + " is not authorized to perform: ec2:CopyImage on resource: arn:aws:ec2:us-east-1::image/" + emutest.SeedAMI + " because no identity-based policy allows the ec2:CopyImage action.", ""},
				{"no statement allows CreateKeyPair", func() error {
					_, err := c.CreateKeyPair(x.Ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k")})
					return err
				}, "You are not authorized to perform this operation. User: " + user + " is not authorized to perform: ec2:CreateKeyPair on resource: arn:aws:ec2:us-east-1:111111111111:key-pair/k because no identity-based policy allows the ec2:CreateKeyPair action.", ""},
				{"a read call carries no encoded message", func() error {
					_, err := c.GetEbsEncryptionByDefault(x.Ctx, &ec2.GetEbsEncryptionByDefaultInput{})
					return err
				}, "", "You are not authorized to perform this operation."},
			}
			for _, tc := range tests {
				err := tc.call()
				msg := emutest.APIMessage(err)
				if emutest.APICode(err) != "UnauthorizedOperation" || httpStatus(err) != 403 {
					t.Errorf("%s: %v (HTTP %d), want UnauthorizedOperation 403", tc.name, err, httpStatus(err))
					continue
				}
				if tc.prefix == "" {
					if msg != tc.plain {
						t.Errorf("%s: message %q, want %q", tc.name, msg, tc.plain)
					}
					continue
				}
				m := encoded.FindStringSubmatchIndex(msg)
				if m == nil || msg[:m[0]] != tc.prefix {
					t.Errorf("%s: message %q\nwant %q followed by an encoded message", tc.name, msg, tc.prefix)
				}
			}
			// Allowed calls still work, and describing is allowed.
			emutest.Must[*ec2.DescribeImagesOutput](t, "DescribeImages")(c.DescribeImages(x.Ctx, &ec2.DescribeImagesInput{ImageIds: []string{emutest.SeedAMI}}))
		}},
		{Rule: "8.7", Name: "image platform and billing fields", World: windowsWorld, Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			type billing struct {
				platform         types.PlatformValues
				details, usageOp string
			}
			linux := billing{"", "Linux/UNIX", "RunInstances"}
			windows := billing{"windows", "Windows", "RunInstances:0002"} // AWS writes the platform in lower case
			of := func(img types.Image) billing {
				return billing{img.Platform, aws.ToString(img.PlatformDetails), aws.ToString(img.UsageOperation)}
			}
			// A Windows instance, its root volume's snapshot, and a Linux one.
			run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(x.Ctx, &ec2.RunInstancesInput{
				ImageId: aws.String(windowsAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))
			instID := aws.ToString(run.Instances[0].InstanceId)
			x.Srv.Emulator().Advance(time.Hour)
			inst := x.Instance(c, instID)
			if got := (billing{inst.Platform, aws.ToString(inst.PlatformDetails), aws.ToString(inst.UsageOperation)}); got != windows {
				t.Errorf("Windows instance: %+v, want %+v", got, windows)
			}
			winSnap := emutest.Must[*ec2.CreateSnapshotOutput](t, "CreateSnapshot")(c.CreateSnapshot(x.Ctx, &ec2.CreateSnapshotInput{
				VolumeId: inst.BlockDeviceMappings[0].Ebs.VolumeId}))
			linuxSnap := ownSnapshot(x, emutest.AcctBuild)
			created := emutest.Must[*ec2.CreateImageOutput](t, "CreateImage")(c.CreateImage(x.Ctx, &ec2.CreateImageInput{
				InstanceId: aws.String(instID), Name: aws.String("from-windows-instance")}))
			copied := emutest.Must[*ec2.CopyImageOutput](t, "CopyImage")(c.CopyImage(x.Ctx, &ec2.CopyImageInput{
				SourceImageId: aws.String(windowsAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("windows-copy")}))
			x.Srv.Emulator().Advance(time.Hour)
			register := func(name, snap string) string {
				out := emutest.Must[*ec2.RegisterImageOutput](t, "RegisterImage")(c.RegisterImage(x.Ctx, &ec2.RegisterImageInput{
					Name: aws.String(name), RootDeviceName: aws.String("/dev/sda1"), Architecture: types.ArchitectureValuesX8664,
					VirtualizationType: aws.String("hvm"), BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"),
						Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(snap)}}}}))
				return aws.ToString(out.ImageId)
			}
			tests := []struct {
				name, image string
				want        billing
			}{
				{"the public Linux AMI", emutest.SeedAMI, linux},
				{"the public Windows AMI", windowsAMI, windows},
				{"CreateImage of a Windows instance", aws.ToString(created.ImageId), windows},
				{"CopyImage of a Windows AMI", aws.ToString(copied.ImageId), windows},
				{"RegisterImage of a Windows root snapshot", register("registered-windows", aws.ToString(winSnap.SnapshotId)), windows},
				{"RegisterImage of a Linux snapshot, whatever its name", register("Windows_Server-not-really", linuxSnap), linux},
			}
			for _, tc := range tests {
				if got := of(x.Image(c, tc.image)); got != tc.want {
					t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
				}
			}
			// The platform filter: only windows is a value.
			out := emutest.Must[*ec2.DescribeImagesOutput](t, "DescribeImages")(c.DescribeImages(x.Ctx, &ec2.DescribeImagesInput{
				Owners: []string{"amazon"}, Filters: []types.Filter{{Name: aws.String("platform"), Values: []string{"windows"}}}}))
			if len(out.Images) != 1 || aws.ToString(out.Images[0].ImageId) != windowsAMI {
				t.Errorf("platform=windows: %d images", len(out.Images))
			}
			// On the wire a Linux image has no platform element at all.
			_, body := x.RawCall(emutest.AcctBuild, emutest.East, "ec2", "Action=DescribeImages&Version=2016-11-15&ImageId.1="+emutest.SeedAMI+"&ImageId.2="+windowsAMI,
				map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
			if n := strings.Count(body, "<platform>"); n != 1 || !strings.Contains(body, "<platform>windows</platform>") {
				t.Errorf("DescribeImages of a Linux and a Windows AMI has %d <platform> elements:\n%s", n, body)
			}
		}},
		{Rule: "8.6", Name: "ModifyImageAttribute refuses product codes", Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			own := emutest.Must[*ec2.CopyImageOutput](t, "CopyImage")(c.CopyImage(x.Ctx, &ec2.CopyImageInput{
				SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("product-codes")}))
			tests := []struct {
				name    string
				in      ec2.ModifyImageAttributeInput
				code    string
				message string
			}{
				{"ProductCode.N", ec2.ModifyImageAttributeInput{ProductCodes: []string{"1abc2defghijklm3nopqrs4tu"}}, "InvalidParameterValue",
					"Product code in ami manifest does not have a configured relationship with Amazon EC2: 1abc2defghijklm3nopqrs4tu"},
				{"Attribute productCodes", ec2.ModifyImageAttributeInput{Attribute: aws.String("productCodes"), ProductCodes: []string{"1abc2defghijklm3nopqrs4tu"}},
					"InvalidParameterValue", "Product code in ami manifest does not have a configured relationship with Amazon EC2: 1abc2defghijklm3nopqrs4tu"},
				{"Attribute productCodes without codes", ec2.ModifyImageAttributeInput{Attribute: aws.String("productCodes")}, "InvalidParameterValue",
					"Value (productCodes) for parameter attribute is invalid. Valid values are description, imdsSupport and launchPermission."},
				{"the image must still be the caller's", ec2.ModifyImageAttributeInput{ImageId: aws.String("ami-0123456789abcdef0"), ProductCodes: []string{"1abc2defghijklm3nopqrs4tu"}},
					"InvalidAMIID.NotFound", ""},
				{"a description still works", ec2.ModifyImageAttributeInput{Description: &types.AttributeValue{Value: aws.String("d")}}, "", ""},
			}
			for _, tc := range tests {
				in := tc.in
				if in.ImageId == nil {
					in.ImageId = own.ImageId
				}
				_, err := c.ModifyImageAttribute(x.Ctx, &in)
				if emutest.APICode(err) != tc.code || tc.message != "" && emutest.APIMessage(err) != tc.message {
					t.Errorf("%s: %v, want %s %q", tc.name, err, tc.code, tc.message)
				}
			}
			attr := emutest.Must[*ec2.DescribeImageAttributeOutput](t, "DescribeImageAttribute")(c.DescribeImageAttribute(x.Ctx, &ec2.DescribeImageAttributeInput{
				ImageId: own.ImageId, Attribute: types.ImageAttributeNameProductCodes}))
			if len(attr.ProductCodes) != 0 {
				t.Errorf("product codes after the refused calls: %+v", attr.ProductCodes)
			}
		}},
	}
}

// httpStatus is the HTTP status of an SDK error.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
