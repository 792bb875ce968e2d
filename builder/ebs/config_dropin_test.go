package ebs

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/common"
)

// ssh is a valid raw config with the SSH communicator.
func ssh(kv ...interface{}) map[string]interface{} {
	return with(append([]interface{}{"communicator", "ssh", "ssh_username", "ec2-user"}, kv...)...)
}

// Every amazon-ebs field amicrypt-ebs accepts, with a valid value, and what
// the prepared configuration holds for it.
func TestPrepareAcceptsAmazonEBSFields(t *testing.T) {
	cases := []struct {
		name     string
		raw      map[string]interface{}
		check    func(*Config) error
		wantWarn string
	}{
		// connection
		{name: "ssh_interface public_ip", raw: ssh("ssh_interface", "public_ip"), check: func(c *Config) error { return eq(c.SSHInterface, "public_ip") }},
		{name: "ssh_interface private_ip", raw: ssh("ssh_interface", "private_ip")},
		{name: "ssh_interface public_dns", raw: ssh("ssh_interface", "public_dns")},
		{name: "ssh_interface private_dns", raw: ssh("ssh_interface", "private_dns")},
		{name: "ssh_interface ipv6 with cidrs", raw: ssh("ssh_interface", "ipv6", "temporary_security_group_source_cidrs", []string{"2001:db8::/32"})},
		{name: "session_manager", raw: ssh("ssh_interface", "session_manager", "iam_instance_profile", "ssm", "session_manager_port", 8022, "pause_before_ssm", "30s"),
			check: func(c *Config) error {
				return firstErr(eq(c.SessionManagerPort, 8022), eq(c.PauseBeforeSSM, 30*time.Second))
			}},
		{name: "windows_password_timeout", raw: with("communicator", "winrm", "winrm_username", "Administrator", "windows_password_timeout", "30m"),
			check: func(c *Config) error { return eq(c.WindowsPasswordTimeout, 30*time.Minute) }},
		{name: "windows_password_timeout default", raw: with("communicator", "winrm", "winrm_username", "Administrator"),
			check: func(c *Config) error { return eq(c.WindowsPasswordTimeout, 20*time.Minute) }},
		{name: "temporary_key_pair_type ed25519", raw: ssh("temporary_key_pair_type", "ed25519"), check: func(c *Config) error { return eq(c.Comm.SSHTemporaryKeyPairType, "ed25519") }},
		{name: "temporary_key_pair_bits", raw: ssh("temporary_key_pair_bits", 4096), check: func(c *Config) error { return eq(c.Comm.SSHTemporaryKeyPairBits, 4096) }},
		{name: "ssh_clear_authorized_keys", raw: ssh("ssh_clear_authorized_keys", true), check: func(c *Config) error { return eq(c.Comm.SSHClearAuthorizedKeys, true) }},
		// security of the build instance
		{name: "metadata_options", raw: with("metadata_options", map[string]interface{}{"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 2, "instance_metadata_tags": "enabled"}),
			check: func(c *Config) error {
				return eq(c.Metadata, MetadataOptions{HttpEndpoint: "enabled", HttpTokens: "required", HttpPutResponseHopLimit: 2, InstanceMetadataTags: "enabled"})
			}},
		{name: "metadata_options defaults as amazon-ebs", raw: validRaw(), check: func(c *Config) error {
			return eq(c.Metadata, MetadataOptions{HttpEndpoint: "enabled", HttpTokens: "optional", HttpPutResponseHopLimit: 1, InstanceMetadataTags: "disabled"})
		}},
		{name: "imds_support", raw: with("imds_support", "v2.0")},
		{name: "temporary_security_group_source_cidrs", raw: ssh("temporary_security_group_source_cidrs", []string{"203.0.113.0/24"})},
		{name: "temporary_security_group_source_cidrs open warns", raw: ssh("temporary_security_group_source_cidrs", []string{"0.0.0.0/0"}), wantWarn: "opens the communicator port to the whole internet"},
		{name: "temporary_security_group_source_public_ip", raw: ssh("temporary_security_group_source_public_ip", true)},
		{name: "skip_profile_validation", raw: with("iam_instance_profile", "p", "skip_profile_validation", true)},
		{name: "security_group_id", raw: with("security_group_id", "sg-0123456789abcdef0"), check: func(c *Config) error { return eq(c.SecurityGroupIDs, []string{"sg-0123456789abcdef0"}) }},
		{name: "security_group_filter blocks", raw: with("security_group_filter", map[string]interface{}{"filter": []map[string]interface{}{{"name": "group-name", "value": "build"}}}),
			check: func(c *Config) error {
				return eq(c.SecurityGroupFilter.Filters, map[string]string{"group-name": "build"})
			}},
		{name: "vpc_filter", raw: with("vpc_filter", map[string]interface{}{"filters": map[string]string{"tag:Name": "build"}})},
		{name: "subnet_filter random and filter blocks", raw: with("subnet_filter", map[string]interface{}{"random": true, "filter": []map[string]interface{}{{"name": "tag:Tier", "value": "private"}}}),
			check: func(c *Config) error {
				return firstErr(eq(c.SubnetFilter.Random, true), eq(c.SubnetFilter.Filters, map[string]string{"tag:Tier": "private"}))
			}},
		{name: "availability_zone", raw: with("availability_zone", "us-east-1b")},
		{name: "placement tenancy", raw: with("placement", map[string]interface{}{"tenancy": "dedicated"}), check: func(c *Config) error { return eq(c.tenancy(), "dedicated") }},
		{name: "placement host", raw: with("placement", map[string]interface{}{"host_id": "h-0123456789abcdef0", "tenancy": "host"})},
		{name: "tenancy (deprecated)", raw: with("tenancy", "dedicated"), check: func(c *Config) error { return eq(c.tenancy(), "dedicated") }},
		{name: "enable_nitro_enclave", raw: with("instance_type", "m5.xlarge", "enable_nitro_enclave", true)},
		{name: "license_specifications", raw: with("license_specifications", []map[string]interface{}{{"license_configuration_request": map[string]interface{}{
			"license_configuration_arn": "arn:aws:license-manager:us-east-1:111111111111:license-configuration:lic-0123456789abcdef0123456789abcdef"}}})},
		// spot and fleet
		{name: "spot", raw: with("instance_type", nil, "spot_instance_types", []string{"t3.micro", "t3a.micro"}, "spot_price", "auto",
			"spot_allocation_strategy", "price-capacity-optimized", "spot_tags", map[string]string{"a": "1"}, "spot_tag", []map[string]interface{}{{"key": "b", "value": "2"}},
			"fleet_tags", map[string]string{"c": "3"}, "fleet_tag", []map[string]interface{}{{"key": "d", "value": "4"}}),
			check: func(c *Config) error {
				return firstErr(eq(c.spot(), true), eq(c.SpotTags, map[string]string{"a": "1", "b": "2"}), eq(c.FleetTags, map[string]string{"c": "3", "d": "4"}))
			}},
		{name: "spot price", raw: with("spot_price", "0.05")},
		{name: "spot_price 0 is on-demand", raw: with("spot_price", "0"), check: func(c *Config) error { return eq(c.spot(), false) }},
		{name: "spot_price_auto_product warns", raw: with("spot_price", "auto", "spot_price_auto_product", "Linux/UNIX"), wantWarn: "spot_price_auto_product is deprecated"},
		{name: "spot with ena_support (amazon-ebs refuses)", raw: with("spot_price", "auto", "ena_support", true, "sriov_support", true)},
		// instance options
		{name: "ebs_optimized", raw: with("ebs_optimized", true)},
		{name: "shutdown_behavior", raw: with("shutdown_behavior", "terminate")},
		{name: "shutdown_behavior default", raw: validRaw(), check: func(c *Config) error { return eq(c.InstanceInitiatedShutdownBehavior, "stop") }},
		{name: "disable_stop_instance", raw: with("disable_stop_instance", true)},
		{name: "enable_unlimited_credits", raw: with("enable_unlimited_credits", true)},
		{name: "enable_t2_unlimited warns", raw: with("instance_type", "t2.micro", "enable_t2_unlimited", true), wantWarn: "enable_t2_unlimited is deprecated",
			check: func(c *Config) error { return eq(c.EnableUnlimitedCredits, true) }},
		{name: "capacity_reservation_preference", raw: with("capacity_reservation_preference", "open")},
		{name: "capacity_reservation default none", raw: validRaw(), check: func(c *Config) error { return eq(c.CapacityReservationPreference, "none") }},
		{name: "capacity_reservation_id", raw: with("capacity_reservation_id", "cr-0123456789abcdef0"), check: func(c *Config) error { return eq(c.CapacityReservationPreference, "") }},
		{name: "capacity_reservation_group_arn", raw: with("capacity_reservation_group_arn", "arn:aws:resource-groups:us-east-1:111111111111:group/crs")},
		{name: "run_tag and run_volume_tag", raw: with("run_tags", map[string]string{"a": "1"}, "run_tag", []map[string]interface{}{{"key": "b", "value": "2"}},
			"run_volume_tag", []map[string]interface{}{{"name": "c", "value": "3"}}),
			check: func(c *Config) error {
				return firstErr(eq(c.RunTags, map[string]string{"a": "1", "b": "2"}), eq(c.RunVolumeTags, map[string]string{"c": "3"}))
			}},
		{name: "no_ephemeral", raw: with("no_ephemeral", true)},
		// AMI
		{name: "encrypt_boot true", raw: with("encrypt_boot", true)},
		{name: "force_delete_snapshot", raw: with("force_deregister", true, "force_delete_snapshot", true)},
		{name: "packer -force", raw: with(common.ForceConfigKey, true), check: func(c *Config) error { return eq(c.ForceDeregister, true) }},
		{name: "ami_virtualization_type", raw: with("ami_virtualization_type", "hvm", "ena_support", true, "sriov_support", true),
			check: func(c *Config) error {
				return firstErr(eq(c.AMIENASupport.True(), true), eq(c.AMISriovNetSupport, true))
			}},
		{name: "ena_support false", raw: with("ena_support", false), check: func(c *Config) error { return eq(c.AMIENASupport.False(), true) }},
		{name: "ami_product_codes", raw: with("ami_product_codes", []string{"1abc2defghijklm3nopqrs4tu"})},
		{name: "skip_region_validation", raw: with("skip_region_validation", true)},
		{name: "skip_save_build_region", raw: with("skip_save_build_region", true, "ami_regions", []string{"us-west-2"})},
		{name: "skip_create_ami", raw: with("skip_create_ami", true)},
		{name: "skip_ami_run_tags", raw: with("skip_ami_run_tags", true)},
		{name: "include_deprecated", raw: with("source_ami", nil, "source_ami_filter", map[string]interface{}{"filters": map[string]string{"name": "al2023-*"}, "owners": []string{"amazon"}, "include_deprecated": true}),
			check: func(c *Config) error { return eq(c.SourceAMIFilter.IncludeDeprecated, true) }},
		{name: "tag and snapshot_tag blocks", raw: with("tags", map[string]string{"a": "1"}, "tag", []map[string]interface{}{{"key": "b", "value": "2"}},
			"snapshot_tag", []map[string]interface{}{{"key": "c", "value": "3"}}),
			check: func(c *Config) error {
				return firstErr(eq(c.AMITags, map[string]string{"a": "1", "b": "2"}), eq(c.SnapshotTags, map[string]string{"c": "3"}))
			}},
		{name: "snapshot_copy_duration_minutes", raw: with("ami_regions", []string{"us-west-2"}, "snapshot_copy_duration_minutes", 60)},
		{name: "templated tags are checked at build", raw: with("tags", map[string]string{"Name": "{{ .SourceAMIName }}", "{{ .BuildRegion }}": "x"}),
			check: func(c *Config) error { return eq(c.AMITags["Name"], "{{ .SourceAMIName }}") }},
		// access
		{name: "mfa_code", raw: with("mfa_code", "123456")},
		{name: "vault_aws_engine", raw: with("vault_aws_engine", map[string]interface{}{"name": "build", "role_arn": "arn:aws:iam::111111111111:role/b", "ttl": "900s", "engine_name": "aws"})},
		{name: "insecure_skip_tls_verify", raw: with("insecure_skip_tls_verify", true)},
		{name: "skip_metadata_api_check", raw: with("skip_metadata_api_check", true)},
		{name: "decode_authorization_messages", raw: with("decode_authorization_messages", true)},
		{name: "assume_role session settings", raw: with("assume_role", map[string]interface{}{"role_arn": "arn:aws:iam::111111111111:role/b",
			"policy": `{"Version":"2012-10-17","Statement":[]}`, "policy_arns": []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"},
			"tags": map[string]string{"team": "x"}, "transitive_tag_keys": []string{"team"}})},
		// validation that was stricter than it should be
		{name: "values unknown at validate", raw: with("source_ami", "<unknown>", "ami_name", "<unknown>", "kms_key_id", "<unknown>", "ami_users", []string{"<unknown>"},
			"ami_regions", []string{"us-west-2"}, "region_kms_key_ids", map[string]string{"us-west-2": "<unknown>"}, "deprecate_at", "<unknown>")},
		{name: "build region in ami_regions is dropped", raw: with("ami_regions", []string{"us-east-1", "us-west-2"}), wantWarn: `ami_regions: "us-east-1" is the build region`,
			check: func(c *Config) error { return eq(c.AMIRegions, []string{"us-west-2"}) }},
		{name: "alias used in copy regions", raw: with("ami_regions", []string{"us-west-2", "eu-west-1"}, "region_kms_key_ids", map[string]string{"eu-west-1": "alias/eu-key"}),
			check: func(c *Config) error {
				return eq(c.copyKeys, map[string]string{"us-west-2": "alias/amicrypt-build", "eu-west-1": "alias/eu-key"})
			}},
		{name: "multi-region key used in copy regions", raw: with("kms_key_id", "mrk-1234abcd12ab34cd56ef1234567890ab", "ami_regions", []string{"us-west-2"}),
			check: func(c *Config) error { return eq(c.copyKeys["us-west-2"], "mrk-1234abcd12ab34cd56ef1234567890ab") }},
		{name: "bare device name with winrm", raw: with("communicator", "winrm", "winrm_username", "Administrator",
			"launch_block_device_mappings", []map[string]interface{}{{"device_name": "xvdf", "volume_size": 10}})},
		{name: "region from the environment", raw: with("region", nil), check: func(c *Config) error { return eq(c.RawRegion, "eu-west-1") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			noRegionInEnv(t)
			t.Setenv("AWS_REGION", "eu-west-1")
			if tc.name == "region from the environment" {
				tc.raw["kms_key_id"] = "alias/amicrypt-build"
			}
			var c Config
			_, warns, err := c.Prepare(tc.raw)
			if err != nil {
				t.Fatalf("Prepare refused %v:\n%v", tc.raw, err)
			}
			if tc.check != nil {
				if err := tc.check(&c); err != nil {
					t.Error(err)
				}
			}
			joined := strings.Join(warns, "\n")
			if tc.wantWarn != "" && !strings.Contains(joined, tc.wantWarn) {
				t.Errorf("warnings %q lack %q", warns, tc.wantWarn)
			}
			if tc.wantWarn == "" && len(warns) > 0 {
				t.Errorf("unexpected warnings %q", warns)
			}
		})
	}
}

// Bad values of the amazon-ebs fields: each refused at validate with the
// field, the value and the fix.
func TestPrepareRejectsAmazonEBSFieldValues(t *testing.T) {
	long := strings.Repeat("v", 300)
	cases := []struct {
		name string
		raw  map[string]interface{}
		want []string
	}{
		{"ssh_interface", ssh("ssh_interface", "eth0"), []string{`ssh_interface: "eth0" is not an interface`, "public_ip"}},
		{"session_manager without profile", ssh("ssh_interface", "session_manager"), []string{"needs iam_instance_profile", "AmazonSSMManagedInstanceCore"}},
		{"session_manager with winrm", with("communicator", "winrm", "winrm_username", "a", "ssh_interface", "session_manager", "iam_instance_profile", "p"), []string{`not with communicator = "winrm"`}},
		{"session_manager with a key file only", ssh("ssh_interface", "session_manager", "iam_instance_profile", "p", "ssh_private_key_file", "config_test.go"),
			[]string{"EC2 Instance Connect", "set ssh_keypair_name"}},
		{"session_manager_port without session_manager", ssh("session_manager_port", 8022), []string{`session_manager_port, pause_before_ssm: set without ssh_interface = "session_manager"`}},
		{"ipv6 without cidrs", ssh("ssh_interface", "ipv6"), []string{"never opens ::/0 by default"}},
		{"key pair type", ssh("temporary_key_pair_type", "dsa"), []string{`temporary_key_pair_type: "dsa"`, `"rsa" or "ed25519"`}},
		{"key pair bits", ssh("temporary_key_pair_bits", 1024), []string{"temporary_key_pair_bits: 1024", "4096"}},
		{"ed25519 bits", ssh("temporary_key_pair_type", "ed25519", "temporary_key_pair_bits", 256), []string{"temporary_key_pair_bits: 256 set for an ed25519 key"}},
		{"ed25519 with winrm", with("communicator", "winrm", "winrm_username", "a", "temporary_key_pair_type", "ed25519"), []string{"Windows instances need an RSA key pair"}},
		{"keypair without private key", ssh("ssh_keypair_name", "mine"), []string{"ssh_keypair_name: set ssh_private_key_file"}},
		{"http_tokens", with("metadata_options", map[string]interface{}{"http_tokens": "v2"}), []string{`metadata_options.http_tokens: "v2"`, `"required"`}},
		{"http_endpoint", with("metadata_options", map[string]interface{}{"http_endpoint": "on"}), []string{`metadata_options.http_endpoint: "on"`}},
		{"hop limit", with("metadata_options", map[string]interface{}{"http_put_response_hop_limit": 65}), []string{"http_put_response_hop_limit: 65 is out of range", "1 to 64"}},
		{"metadata tags", with("metadata_options", map[string]interface{}{"instance_metadata_tags": "yes"}), []string{`instance_metadata_tags: "yes"`}},
		{"imds_support", with("imds_support", "v1"), []string{`imds_support: "v1"`, `"v2.0"`}},
		{"sg cidr", ssh("temporary_security_group_source_cidrs", []string{"10.0.0.300/8"}), []string{`temporary_security_group_source_cidrs: "10.0.0.300/8" is not a CIDR block`}},
		{"sg cidrs and public ip", ssh("temporary_security_group_source_cidrs", []string{"10.0.0.0/8"}, "temporary_security_group_source_public_ip", true), []string{"both set; keep one"}},
		{"temp sg settings with own groups", ssh("security_group_ids", []string{"sg-0123456789abcdef0"}, "temporary_security_group_source_public_ip", true), []string{"shape the temporary group only"}},
		{"security_group_id and ids", with("security_group_id", "sg-0123456789abcdef0", "security_group_ids", []string{"sg-0123456789abcdef1"}), []string{"security_group_id, security_group_ids: both set"}},
		{"security group id malformed", with("security_group_ids", []string{"build"}), []string{`security_group_ids: "build" is not a security group ID`, "security_group_filter"}},
		{"vpc_id and vpc_filter", with("vpc_id", "vpc-0123456789abcdef0", "vpc_filter", map[string]interface{}{"filters": map[string]string{"tag:Name": "x"}}), []string{"vpc_id, vpc_filter: both set"}},
		{"availability_zone other region", with("availability_zone", "us-west-2a"), []string{`availability_zone: "us-west-2a" is a zone of us-west-2, not of the build region us-east-1`}},
		{"availability_zone malformed", with("availability_zone", "east"), []string{`availability_zone: "east" is not a zone name`}},
		{"tenancy", with("tenancy", "shared"), []string{`tenancy: "shared" is not a tenancy`}},
		{"tenancy twice", with("tenancy", "dedicated", "placement", map[string]interface{}{"tenancy": "dedicated"}), []string{"placement.tenancy, tenancy: both set"}},
		{"host without host tenancy", with("placement", map[string]interface{}{"host_id": "h-0123456789abcdef0", "tenancy": "dedicated"}), []string{`set tenancy = "host"`}},
		{"host and group", with("placement", map[string]interface{}{"host_id": "h-1", "host_resource_group_arn": "arn:x"}), []string{"placement.host_id, placement.host_resource_group_arn: both set"}},
		{"nitro enclave burstable", with("enable_nitro_enclave", true), []string{`enable_nitro_enclave: "t3.micro" is a burstable type`}},
		{"nitro enclave spot", with("instance_type", "m5.xlarge", "enable_nitro_enclave", true, "spot_price", "auto"), []string{"Nitro Enclaves can't be used with spot instances"}},
		{"license arn", with("license_specifications", []map[string]interface{}{{"license_configuration_request": map[string]interface{}{"license_configuration_arn": "lic-1"}}}),
			[]string{`license_configuration_arn: "lic-1" is not a license configuration ARN`}},
		{"spot price", with("spot_price", "cheap"), []string{`spot_price: "cheap" is not a price`, `"auto"`}},
		{"spot types and instance type", with("spot_instance_types", []string{"t3.micro"}, "spot_price", "auto"), []string{"instance_type, spot_instance_types: both set"}},
		{"spot tags without spot", with("spot_tags", map[string]string{"a": "b"}), []string{`spot_tags: set without spot_price`}},
		{"fleet tags without spot", with("fleet_tags", map[string]string{"a": "b"}), []string{`fleet_tags: set without spot_price`}},
		{"allocation strategy", with("spot_price", "auto", "spot_allocation_strategy", "cheapest"), []string{`spot_allocation_strategy: "cheapest"`, "price-capacity-optimized"}},
		{"spot and disable_stop_instance", with("spot_price", "auto", "disable_stop_instance", true), []string{"can't be stopped"}},
		{"shutdown_behavior", with("shutdown_behavior", "halt"), []string{`shutdown_behavior: "halt"`}},
		{"disable stop with terminate", with("disable_stop_instance", true, "shutdown_behavior", "terminate"), []string{"delete its volumes before they are snapshotted"}},
		{"unlimited credits not burstable", with("instance_type", "m5.large", "enable_unlimited_credits", true), []string{`enable_unlimited_credits: "m5.large" is not a burstable type`}},
		{"capacity reservation twice", with("capacity_reservation_id", "cr-1", "capacity_reservation_group_arn", "arn:x"), []string{"capacity_reservation_id, capacity_reservation_group_arn: both set"}},
		{"capacity reservation preference with target", with("capacity_reservation_id", "cr-1", "capacity_reservation_preference", "open"), []string{"capacity_reservation_preference: set with a capacity reservation target"}},
		{"capacity reservation preference", with("capacity_reservation_preference", "targeted"), []string{`capacity_reservation_preference: "targeted"`}},
		{"force_delete_snapshot alone", with("force_delete_snapshot", true), []string{"force_delete_snapshot: set without force_deregister"}},
		{"virtualization type", with("ami_virtualization_type", "pv"), []string{`ami_virtualization_type: "pv"`}},
		{"ena with paravirtual", with("ami_virtualization_type", "paravirtual", "ena_support", true), []string{"enhanced networking needs an hvm AMI"}},
		{"product code", with("ami_product_codes", []string{"ABC!"}), []string{`ami_product_codes: "ABC!" is not a product code`}},
		{"snapshot copy duration", with("ami_regions", []string{"us-west-2"}, "snapshot_copy_duration_minutes", 20), []string{"snapshot_copy_duration_minutes: 20 is out of range", "steps of 15"}},
		{"snapshot copy duration without regions", with("snapshot_copy_duration_minutes", 60), []string{"snapshot_copy_duration_minutes: set without ami_regions"}},
		{"skip_save_build_region without regions", with("skip_save_build_region", true), []string{"skip_save_build_region: set without ami_regions"}},
		{"skip_launch and skip_create_ami", with("skip_launch", true, "instance_type", nil, "skip_create_ami", true), []string{"skip_launch, skip_create_ami: both set"}},
		{"tag aws: prefix", with("tags", map[string]string{"aws:cloudformation:stack-name": "x"}), []string{`tags: tag key "aws:cloudformation:stack-name" starts with aws:`}},
		{"tag value too long", with("run_tags", map[string]string{"Owner": long}), []string{`run_tags: the value of tag "Owner" is 300 characters; AWS allows 256`}},
		{"tag key too long", with("snapshot_tags", map[string]string{strings.Repeat("k", 129): "v"}), []string{"snapshot_tags: tag key", "is 129 characters; AWS allows 128"}},
		{"tag value aws: prefix", with("run_volume_tags", map[string]string{"a": "AWS:x"}), []string{`run_volume_tags: the value of tag "a" starts with aws:`}},
		{"reserved tag key", with("tags", map[string]string{tagLease: "x"}), []string{`tags: tag key "amicrypt:lease" is one amicrypt-ebs writes`}},
		{"device name without /dev/", with("launch_block_device_mappings", []map[string]interface{}{{"device_name": "xvdb", "volume_size": 8}}),
			[]string{`launch_block_device_mappings[0].device_name: "xvdb" has no /dev/ prefix`, `use "/dev/xvdb"`}},
		{"ami device name without /dev/", with("ami_block_device_mappings", []map[string]interface{}{{"device_name": "sdb", "virtual_name": "ephemeral0"}}),
			[]string{`ami_block_device_mappings[0].device_name: "sdb" has no /dev/ prefix`}},
		{"throughput on gp2", with("launch_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/xvda", "volume_type": "gp2", "throughput": 250}}), []string{"throughput applies to gp3 only"}},
		{"virtual name", with("ami_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/sdb", "virtual_name": "scratch"}}), []string{`virtual_name: "scratch" is not an instance store name`}},
		{"kms key ARN for copy region", with("kms_key_id", buildKeyARN, "ami_regions", []string{"us-west-2"}), []string{`region_kms_key_ids: no key for "us-west-2"`, "use an alias name as kms_key_id"}},
		{"region nowhere", with("region", nil), []string{"region: not set, and neither AWS_REGION"}},
		{"vault with keys", with("access_key", "AKIA1", "secret_key", "s", "vault_aws_engine", map[string]interface{}{"name": "b"}), []string{"vault_aws_engine: set together with access_key"}},
		{"mfa code", with("mfa_code", "abc"), []string{`mfa_code: "abc" is not an MFA code`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			noRegionInEnv(t)
			var c Config
			_, _, err := c.Prepare(tc.raw)
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

// Every refused field is refused with its reason, and only when set.
func TestPrepareRefusedFields(t *testing.T) {
	values := map[string]interface{}{
		"encrypt_boot":    false,
		"ami_groups":      []string{"all"},
		"snapshot_groups": []string{"all"},
		"temporary_iam_instance_profile_policy_document": map[string]interface{}{"Version": "2012-10-17",
			"Statement": []map[string]interface{}{{"Effect": "Allow", "Action": []string{"s3:GetObject"}, "Resource": []string{"*"}}}},
		"fast_launch":            map[string]interface{}{"enable_fast_launch": true},
		"block_duration_minutes": 60,
	}
	refused := RefusedFields()
	if len(refused) != len(values) {
		t.Fatalf("RefusedFields has %d fields, the test %d: give every refused field a value here", len(refused), len(values))
	}
	for name, r := range refused {
		t.Run(name, func(t *testing.T) {
			v, ok := values[name]
			if !ok {
				t.Fatalf("no test value for refused field %s", name)
			}
			var c Config
			_, _, err := c.Prepare(with(name, v))
			if err == nil || !strings.Contains(err.Error(), name+": "+r.Reason) {
				t.Errorf("error %v lacks %q", err, name+": "+r.Reason)
			}
			if !strings.Contains(r.Reason, ";") {
				t.Errorf("reason %q says no fix (expected \"why; what to write instead\")", r.Reason)
			}
			var plain Config
			if _, _, err := plain.Prepare(validRaw()); err != nil {
				t.Fatal(err)
			}
			if r.set(&plain) {
				t.Errorf("%s counts as set in a template without it", name)
			}
		})
	}
}

func TestCleanResourceName(t *testing.T) {
	for in, want := range map[string]string{
		"app 1.0 (x86_64) [prod] it's@me_ok/now": "app 1.0 (x86_64) [prod] it's@me_ok/now",
		"app:2024-01-02T03:04:05Z":               "app-2024-01-02T03-04-05Z",
		"héllo*world":                            "h-llo-world",
	} {
		if got := cleanResourceName(in); got != want {
			t.Errorf("cleanResourceName(%q) = %q, want %q", in, got, want)
		}
		if got := cleanResourceName(in); !amiNamePattern.MatchString(got) {
			t.Errorf("cleanResourceName(%q) = %q is not a valid AMI name", in, got)
		}
	}
}

// A legacy JSON template's {{clean_resource_name}} is rendered at validate.
func TestCleanResourceNameInJSONTemplate(t *testing.T) {
	var c Config
	if _, _, err := c.Prepare(with("ami_name", `{{ clean_resource_name "app:1.2" }}`)); err != nil {
		t.Fatal(err)
	}
	if c.AMIName != "app-1.2" {
		t.Errorf("ami_name = %q, want app-1.2", c.AMIName)
	}
}

func eq[T any](got, want T) error {
	if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		return fmt.Errorf("got %#v, want %#v", got, want)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
