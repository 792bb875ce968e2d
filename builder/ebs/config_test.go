package ebs

import (
	"fmt"
	"strings"
	"testing"
)

const buildKeyARN = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"

func validRaw() map[string]interface{} {
	return map[string]interface{}{
		"region":        "us-east-1",
		"source_ami":    "ami-0a1b2c3d4e5f60001",
		"instance_type": "t3.micro",
		"communicator":  "none",
		"kms_key_id":    "alias/amicrypt-build",
		"ami_name":      "amicrypt-test",
	}
}

func with(kv ...interface{}) map[string]interface{} {
	raw := validRaw()
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(raw, k)
			continue
		}
		raw[k] = kv[i+1]
	}
	return raw
}

func TestPrepareValid(t *testing.T) {
	cases := map[string]map[string]interface{}{
		"minimal launch": validRaw(),
		"key ARN":        with("kms_key_id", buildKeyARN),
		"skip launch":    with("skip_launch", true, "instance_type", nil),
		"regions": with("ami_regions", []string{"us-west-2", "eu-west-1"}, "region_kms_key_ids",
			map[string]string{"us-west-2": "alias/amicrypt-build", "eu-west-1": "arn:aws:kms:eu-west-1:111111111111:alias/amicrypt-build"}),
		"sharing":               with("ami_users", []string{"222222222222"}, "snapshot_users", []string{"333333333333"}),
		"encrypted launch":      with("launch_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/xvda", "encrypted": true, "kms_key_id": "alias/amicrypt-build"}}),
		"deprecate":             with("deprecate_at", "2030-01-02T03:04:05Z"),
		"filter":                with("source_ami", nil, "source_ami_filter", map[string]interface{}{"filters": map[string]string{"name": "al2023-*"}, "owners": []string{"amazon"}, "most_recent": true}),
		"aws/ebs launch volume": with("launch_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/xvda", "encrypted": true, "kms_key_id": "alias/aws/ebs"}}),
		"ephemeral mappings":    with("ami_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/sdb", "virtual_name": "ephemeral0"}, {"device_name": "/dev/sdc", "no_device": true}}),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			var b Builder
			generated, _, err := b.Prepare(raw)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(generated, ",") != "SourceAMIName,BuildRegion,SourceAMI,SourceAMICreationDate,SourceAMIOwner,SourceAMIOwnerName,KmsKeyArn" {
				t.Errorf("generated data = %v", generated)
			}
		})
	}
}

// Every bad input of issue 5 is refused at Prepare (packer validate), with
// the field, the value and the fix in the message.
func TestPrepareRejects(t *testing.T) {
	cases := []struct {
		name string
		raw  map[string]interface{}
		want []string
	}{
		{"no key", with("kms_key_id", nil), []string{"kms_key_id: not set", "customer-managed key", `kms_key_id = "alias/NAME"`}},
		{"malformed key id", with("kms_key_id", "1234abcd-12ab"), []string{"kms_key_id:", `"1234abcd-12ab" is not a KMS key reference`, "alias ARN"}},
		{"malformed key ARN", with("kms_key_id", "arn:aws:kms:us-east-1:1111:key/abc"), []string{"kms_key_id:", `"arn:aws:kms:us-east-1:1111:key/abc"`, "key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)"}},
		{"malformed alias", with("kms_key_id", "amicrypt-build"), []string{`"amicrypt-build" is not a KMS key reference`, "alias name (alias/NAME)"}},
		{"key of another region", with("kms_key_id", "arn:aws:kms:us-west-2:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"), []string{"kms_key_id:", "is a key of us-west-2 but is used in us-east-1", "use a key of us-east-1"}},
		{"aws managed alias", with("kms_key_id", "alias/aws/ebs"), []string{"kms_key_id:", `"alias/aws/ebs" is an AWS-managed key`, "Snapshots encrypted with the AWS Managed CMK can't be shared", "create a customer-managed key"}},
		{"region keys missing for a key ARN", with("kms_key_id", buildKeyARN, "ami_regions", []string{"us-west-2", "eu-west-1"}, "region_kms_key_ids", map[string]string{"us-west-2": "alias/amicrypt-build"}),
			[]string{`region_kms_key_ids: no key for "eu-west-1"`, "names a key of one region only", `add region_kms_key_ids = { "eu-west-1" = "alias/NAME" }`}},
		{"region key for unlisted region", with("region_kms_key_ids", map[string]string{"us-west-2": "alias/amicrypt-build"}), []string{`region_kms_key_ids: "us-west-2" is not in ami_regions`}},
		{"region key malformed", with("ami_regions", []string{"us-west-2"}, "region_kms_key_ids", map[string]string{"us-west-2": "key/abc"}), []string{`region_kms_key_ids["us-west-2"]: "key/abc" is not a KMS key reference`}},
		{"bad ami_users", with("ami_users", []string{"22222222222x"}), []string{`ami_users: "22222222222x" is not an AWS account ID`, "12-digit"}},
		{"short ami_users", with("ami_users", []string{"2222"}), []string{`ami_users: "2222"`}},
		{"bad snapshot_users", with("snapshot_users", []string{"abc"}), []string{`snapshot_users: "abc" is not an AWS account ID`}},
		{"skip launch with launch fields", with("skip_launch", true, "user_data", "#!/bin/sh", "run_tags", map[string]string{"a": "b"}),
			[]string{"skip_launch: true, yet launch settings are set", "instance_type", "user_data", "run_tags", "remove them, or set skip_launch = false"}},
		{"skip launch with ssh", with("skip_launch", true, "instance_type", nil, "communicator", "ssh", "ssh_username", "ec2-user"), []string{`communicator = "ssh"`}},
		{"deprecate_at not a time", with("deprecate_at", "next tuesday"), []string{`deprecate_at: "next tuesday" is not an RFC 3339 time`, "2030-01-02T15:04:05Z"}},
		{"deprecate_at past", with("deprecate_at", "2001-01-01T00:00:00Z"), []string{`deprecate_at: "2001-01-01T00:00:00Z" is in the past`}},
		{"deprecate_at beyond 10 years", with("deprecate_at", "2199-01-01T00:00:00Z"), []string{`deprecate_at: "2199-01-01T00:00:00Z" is more than 10 years ahead`, "use an earlier time"}},
		{"ami_description too long", with("ami_description", strings.Repeat("d", 256)), []string{"ami_description: 256 characters", "at most 255"}},
		{"51 tags", with("tags", manyTags(48)), []string{"tags: 48 tags", "adds 3 of its own to the AMI", "keep at most 47"}},
		{"snapshot tags with run tags", with("snapshot_tags", manyTags(41), "run_tags", map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6"}),
			[]string{"snapshot_tags: 47 tags (with run_tags", "keep at most 46"}},
		{"max_retries written as 0", with("max_retries", 0), []string{"max_retries: 0 is not a setting", "remove the field for the default"}},
		{"aws_polling written as 0", with("aws_polling", map[string]interface{}{"max_attempts": 0, "delay_seconds": 0}), []string{"aws_polling.max_attempts: 0 is not a setting", "aws_polling.delay_seconds: 0 is not a setting"}},
		{"assume_role external_id characters", with("assume_role", map[string]interface{}{"role_arn": "arn:aws:iam::111111111111:role/x", "external_id": "x y!"}),
			[]string{`assume_role.external_id: "x y!" contains " !"`, "use the one the role's trust policy names"}},
		{"assume_role external_id too short", with("assume_role", map[string]interface{}{"role_arn": "arn:aws:iam::111111111111:role/x", "external_id": "x"}),
			[]string{`assume_role.external_id: "x" is 1 characters`, "2 to 1224"}},
		{"empty ami_name", with("ami_name", nil), []string{"ami_name: not set", "ami_name = "}},
		{"malformed ami_name", with("ami_name", "my ami!"), []string{`ami_name: "my ami!" is not a valid AMI name`, "()[] ./-'@_"}},
		{"short ami_name", with("ami_name", "ab"), []string{`ami_name: "ab"`}},
		{"no source", with("source_ami", nil), []string{"source_ami: not set"}},
		{"no instance type", with("instance_type", nil), []string{"instance_type: not set", "skip_launch = true"}},
		{"no region", with("region", nil), []string{"region: not set"}},
		{"launch kms without encrypted", with("launch_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/xvda", "kms_key_id": "alias/amicrypt-build"}}),
			[]string{"launch_block_device_mappings[0].kms_key_id: set without encrypted = true"}},
		{"ami mapping encrypted", with("ami_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/sdb", "encrypted": true}}), []string{"ami_block_device_mappings[0]: encrypted/kms_key_id apply to launch volumes only"}},
		{"ami mapping snapshot_id", with("ami_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/sdb", "snapshot_id": "snap-0123456789abcdef0"}}),
			[]string{`ami_block_device_mappings[0].snapshot_id: "snap-0123456789abcdef0" can't be put in the AMI as is`, "move the device to launch_block_device_mappings"}},
		{"malformed source_ami", with("source_ami", "ami123"), []string{`source_ami: "ami123" is not an AMI ID`, "source_ami_filter"}},
		{"bad volume_type", with("launch_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/xvda", "volume_type": "gp4"}}),
			[]string{`launch_block_device_mappings[0].volume_type: "gp4" is not an EBS volume type`, "gp3"}},
		{"bad org arn", with("ami_org_arns", []string{"o-123"}), []string{`ami_org_arns: "o-123" is not an organization ARN`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			noRegionInEnv(t)
			var b Builder
			_, _, err := b.Prepare(tc.raw)
			if err == nil {
				t.Fatalf("Prepare accepted %v", tc.raw)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// noRegionInEnv hides the machine's AWS region settings, so "no region"
// means none.
func noRegionInEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/config")
}

// manyTags is n distinct tags.
func manyTags(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%02d", i)] = "v"
	}
	return m
}
