package ebs

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
)

// The generated HCL2 spec accepts every block and attribute the docs show.
func TestHCL2SpecDecodesEveryBlock(t *testing.T) {
	src := `
region = "us-east-1"
profile = "build"
assume_role {
  role_arn     = "arn:aws:iam::111111111111:role/amicrypt-build"
  external_id  = "x"
  session_name = "s"
  duration_seconds = 3600
}
aws_polling {
  delay_seconds = 30
  max_attempts  = 500
}
max_retries = 5
custom_endpoint_ec2 = "https://ec2.example"
skip_credential_validation = true
kms_key_id = "alias/amicrypt-build"
ami_name = "x-1"
source_ami_filter {
  filters = { name = "al2023-*" }
  owners = ["amazon"]
  most_recent = true
}
instance_type = "t3.micro"
subnet_filter {
  filters = { "tag:Name" = "build" }
  most_free = true
}
associate_public_ip_address = true
launch_block_device_mappings {
  device_name = "/dev/xvda"
  encrypted   = true
  kms_key_id  = "alias/amicrypt-build"
  volume_size = 20
}
ami_block_device_mappings {
  device_name  = "/dev/sdb"
  virtual_name = "ephemeral0"
}
ami_regions = ["us-west-2"]
region_kms_key_ids = { "us-west-2" = "alias/amicrypt-build" }
ami_users = ["222222222222"]
tags = { a = "b" }
deprecate_at = "2030-01-01T00:00:00Z"
deregistration_protection {
  enabled = true
}
communicator = "none"
`
	f, diags := hclparse.NewParser().ParseHCL([]byte(src), "t.pkr.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var b Builder
	val, diags := hcldec.Decode(f.Body, b.ConfigSpec(), &hcl.EvalContext{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	checks := map[string]cty.Value{
		"kms_key_id": cty.StringVal("alias/amicrypt-build"),
	}
	for k, want := range checks {
		if got := val.GetAttr(k); !got.RawEquals(want) {
			t.Errorf("%s = %#v", k, got)
		}
	}
	if val.GetAttr("assume_role").GetAttr("external_id").AsString() != "x" ||
		val.GetAttr("aws_polling").GetAttr("delay_seconds").AsBigFloat().String() != "30" ||
		val.GetAttr("launch_block_device_mappings").LengthInt() != 1 ||
		!val.GetAttr("deregistration_protection").GetAttr("enabled").True() {
		t.Errorf("decoded = %#v", val)
	}
}
