package ec2_test

// conformance_dropin_test.go: the EC2 cases of section 8 of
// docs/aws-behaviour.md, what HashiCorp's amazon-ebs (and amicrypt-ebs, its
// drop-in) meet beyond the encrypted-copy rules.

import (
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func dropInConformance() []emutest.Case {
	return []emutest.Case{
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
