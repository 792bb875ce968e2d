package ebs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The launch settings: instance, network, spot, metadata and connection.

var (
	burstableTypePattern  = regexp.MustCompile(`^t(2|3a?|4g)\.`)
	zonePattern           = regexp.MustCompile(`^([a-z]{2}(-[a-z]+)+-\d{1,2})[a-z]$`)
	licenseARNPattern     = regexp.MustCompile(`^arn:aws[a-z-]*:license-manager:[a-z0-9-]+:\d{12}:license-configuration:lic-[0-9a-f]+$`)
	spotPricePattern      = regexp.MustCompile(`^(auto|\d+(\.\d+)?)$`)
	securityGroupIDRegexp = regexp.MustCompile(`^sg-[0-9a-f]{8,17}$`)
)

// sshInterfaces are ssh_interface's values, as amazon-ebs.
var sshInterfaces = []string{"public_ip", "private_ip", "public_dns", "private_dns", "ipv6", "session_manager"}

// spotAllocationStrategies are EC2 Fleet's spot allocation strategies.
var spotAllocationStrategies = []string{"lowest-price", "diversified", "capacity-optimized", "capacity-optimized-prioritized", "price-capacity-optimized"}

// defaultWindowsPasswordTimeout is amazon-ebs's: AWS says a Windows password
// can take up to 15 minutes to be available.
const defaultWindowsPasswordTimeout = 20 * time.Minute

// spot reports whether the build instance is a spot instance (spot_price set
// and not "0", as amazon-ebs).
func (c *Config) spot() bool { return c.SpotPrice != "" && c.SpotPrice != "0" }

// tenancy is placement.tenancy, else the deprecated tenancy.
func (c *Config) tenancy() string {
	if c.Placement.Tenancy != "" {
		return c.Placement.Tenancy
	}
	return c.Tenancy
}

// launchSettings lists the launch settings a template gives, for
// skip_launch's refusal.
func (c *Config) launchSettings() []string {
	var set []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"instance_type", c.InstanceType != ""}, {"subnet_id", c.SubnetID != ""}, {"subnet_filter", len(c.SubnetFilter.Filters)+len(c.SubnetFilter.Filter) > 0},
		{"vpc_id", c.VpcID != ""}, {"vpc_filter", !c.VpcFilter.Empty()}, {"security_group_ids", len(c.SecurityGroupIDs) > 0},
		{"security_group_id", c.SecurityGroupID != ""}, {"security_group_filter", !c.SecurityGroupFilter.Empty()},
		{"associate_public_ip_address", c.AssociatePublicIPAddress != nil}, {"iam_instance_profile", c.IAMInstanceProfile != ""},
		{"user_data", c.UserData != ""}, {"user_data_file", c.UserDataFile != ""}, {"run_tags", len(c.RunTags) > 0},
		{"run_volume_tags", len(c.RunVolumeTags) > 0}, {"launch_block_device_mappings", len(c.LaunchMappings) > 0},
		{"availability_zone", c.AvailabilityZone != ""}, {"spot_price", c.SpotPrice != ""}, {"spot_instance_types", len(c.SpotInstanceTypes) > 0},
		{"metadata_options", c.Metadata != MetadataOptions{}}, {"ssh_interface", c.SSHInterface != ""}, {"ebs_optimized", c.EbsOptimized},
		{"placement", c.Placement != Placement{}}, {"tenancy", c.Tenancy != ""}, {"enable_nitro_enclave", c.EnableNitroEnclave},
		{"license_specifications", len(c.LicenseSpecifications) > 0}, {"shutdown_behavior", c.InstanceInitiatedShutdownBehavior != ""},
		{"disable_stop_instance", c.DisableStopInstance}, {"enable_unlimited_credits", c.EnableUnlimitedCredits || c.EnableT2Unlimited},
		{"capacity_reservation_*", c.CapacityReservationPreference+c.CapacityReservationId+c.CapacityReservationGroupArn != ""},
		{"no_ephemeral", c.NoEphemeral}, {"temporary_security_group_source_cidrs", len(c.TemporarySGSourceCidrs) > 0},
		{"temporary_security_group_source_public_ip", c.TemporarySGSourcePublicIp},
	} {
		if f.set {
			set = append(set, f.name)
		}
	}
	if c.Comm.Type != "" && c.Comm.Type != "none" {
		set = append(set, fmt.Sprintf("communicator = %q", c.Comm.Type))
	}
	return set
}

func (c *Config) prepareLaunch() []error {
	var errs []error
	if c.SkipLaunch {
		if set := c.launchSettings(); len(set) > 0 {
			errs = append(errs, fmt.Errorf("skip_launch: true, yet launch settings are set: %v; skip_launch re-encrypts the source AMI without an instance: remove them, or set skip_launch = false to launch and provision", set))
		}
		if c.SkipCreateAMI {
			errs = append(errs, errors.New("skip_launch, skip_create_ami: both set; the build would do nothing: keep one"))
		}
		c.Comm.Type = "none"
		return errs
	}
	errs = append(errs, c.prepareInstance()...)
	errs = append(errs, c.prepareNetwork()...)
	errs = append(errs, c.prepareSpot()...)
	errs = append(errs, c.prepareMetadata()...)
	errs = append(errs, c.prepareConnection()...)
	for i, bd := range c.LaunchMappings {
		errs = append(errs, c.prepareBlockDevice(fmt.Sprintf("launch_block_device_mappings[%d]", i), bd, true)...)
		if bd.KmsKeyID != "" && known(bd.KmsKeyID) {
			errs = append(errs, c.checkKeyRef(fmt.Sprintf("launch_block_device_mappings[%d].kms_key_id", i), bd.KmsKeyID, c.RawRegion, true)...)
		}
	}
	errs = append(errs, c.Comm.Prepare(&c.ctx)...)
	return errs
}

func (c *Config) prepareInstance() []error {
	var errs []error
	switch {
	case c.InstanceType == "" && len(c.SpotInstanceTypes) == 0:
		errs = append(errs, errors.New(`instance_type: not set; set instance_type = "t3.micro" (or spot_instance_types with spot_price, or skip_launch = true to re-encrypt without launching)`))
	case c.InstanceType != "" && len(c.SpotInstanceTypes) > 0:
		errs = append(errs, errors.New("instance_type, spot_instance_types: both set; keep one (spot_instance_types lets the fleet pick among several types)"))
	}
	if c.UserData != "" && c.UserDataFile != "" {
		errs = append(errs, errors.New("user_data, user_data_file: both set; keep one"))
	}
	if c.UserDataFile != "" {
		if _, err := os.Stat(c.UserDataFile); err != nil {
			errs = append(errs, fmt.Errorf("user_data_file: %q can't be read (%w); fix the path", c.UserDataFile, err))
		}
	}
	switch c.InstanceInitiatedShutdownBehavior {
	case "":
		c.InstanceInitiatedShutdownBehavior = "stop"
	case "stop", "terminate":
	default:
		errs = append(errs, fmt.Errorf("shutdown_behavior: %q is not a shutdown behavior; use \"stop\" or \"terminate\"", c.InstanceInitiatedShutdownBehavior))
	}
	if c.DisableStopInstance && c.InstanceInitiatedShutdownBehavior == "terminate" {
		errs = append(errs, errors.New(`disable_stop_instance, shutdown_behavior = "terminate": the shutdown your provisioner runs would terminate the instance and delete its volumes before they are snapshotted; use shutdown_behavior = "stop"`))
	}
	if c.EnableT2Unlimited {
		c.warn("enable_t2_unlimited is deprecated (as in amazon-ebs); use enable_unlimited_credits, which means the same")
		c.EnableUnlimitedCredits = true
	}
	if c.EnableUnlimitedCredits {
		types := append([]string{c.InstanceType}, c.SpotInstanceTypes...)
		for _, t := range types {
			if t != "" && known(t) && !burstableTypePattern.MatchString(t) {
				errs = append(errs, fmt.Errorf("enable_unlimited_credits: %q is not a burstable type; unlimited CPU credits apply to T2, T3, T3a and T4g: remove it or use such a type", t))
			}
		}
		if c.spot() && strings.HasPrefix(c.InstanceType, "t2.") {
			errs = append(errs, errors.New("enable_unlimited_credits: T2 spot instances can't have unlimited credits; remove it or use on-demand"))
		}
	}
	if c.CapacityReservationId != "" && c.CapacityReservationGroupArn != "" {
		errs = append(errs, errors.New("capacity_reservation_id, capacity_reservation_group_arn: both set; keep one"))
	}
	if (c.CapacityReservationId != "" || c.CapacityReservationGroupArn != "") && c.CapacityReservationPreference != "" {
		errs = append(errs, errors.New("capacity_reservation_preference: set with a capacity reservation target; a target implies it: remove capacity_reservation_preference"))
	}
	switch c.CapacityReservationPreference {
	case "", "none", "open":
	default:
		errs = append(errs, fmt.Errorf("capacity_reservation_preference: %q is not a preference; use \"none\" or \"open\"", c.CapacityReservationPreference))
	}
	if c.CapacityReservationPreference == "" && c.CapacityReservationId == "" && c.CapacityReservationGroupArn == "" {
		c.CapacityReservationPreference = "none"
	}
	if c.spot() && (c.CapacityReservationId != "" || c.CapacityReservationGroupArn != "") {
		errs = append(errs, errors.New("capacity_reservation_id/_group_arn: set with spot_price; capacity reservations hold on-demand capacity: remove one"))
	}
	if c.Placement.Tenancy != "" && c.Tenancy != "" {
		errs = append(errs, errors.New("placement.tenancy, tenancy: both set; keep placement.tenancy (tenancy is deprecated)"))
	}
	switch t := c.tenancy(); t {
	case "", "default", "dedicated", "host":
	default:
		errs = append(errs, fmt.Errorf("tenancy: %q is not a tenancy; use \"default\", \"dedicated\" or \"host\"", t))
	}
	if c.Placement.HostId != "" && c.Placement.HostResourceGroupArn != "" {
		errs = append(errs, errors.New("placement.host_id, placement.host_resource_group_arn: both set; keep one"))
	}
	if (c.Placement.HostId != "" || c.Placement.HostResourceGroupArn != "") && c.tenancy() != "" && c.tenancy() != "host" {
		errs = append(errs, fmt.Errorf("placement: a host is named but tenancy is %q; set tenancy = \"host\"", c.tenancy()))
	}
	if c.EnableNitroEnclave {
		if c.spot() {
			errs = append(errs, errors.New("enable_nitro_enclave: set with spot_price; Nitro Enclaves can't be used with spot instances: remove one"))
		}
		if strings.HasPrefix(c.InstanceType, "t") {
			errs = append(errs, fmt.Errorf("enable_nitro_enclave: %q is a burstable type, which can't run Nitro Enclaves; use e.g. m5.xlarge", c.InstanceType))
		}
	}
	for i, l := range c.LicenseSpecifications {
		arn := l.LicenseConfigurationRequest.LicenseConfigurationArn
		if known(arn) && !licenseARNPattern.MatchString(arn) {
			errs = append(errs, fmt.Errorf("license_specifications[%d].license_configuration_request.license_configuration_arn: %q is not a license configuration ARN; use arn:aws:license-manager:REGION:ACCOUNT:license-configuration:lic-…", i, arn))
		}
	}
	if c.SpotPriceAutoProduct != "" {
		c.warn("spot_price_auto_product is deprecated and unused (as in amazon-ebs); remove it")
	}
	return errs
}

func (c *Config) prepareNetwork() []error {
	var errs []error
	if c.SubnetID != "" && (len(c.SubnetFilter.Filters) > 0 || len(c.SubnetFilter.Filter) > 0) {
		errs = append(errs, errors.New("subnet_id, subnet_filter: both set; keep one"))
	}
	errs = append(errs, c.SubnetFilter.Filter.CopyOn(&c.SubnetFilter.Filters)...)
	errs = append(errs, copyFilterBlocks(&c.VpcFilter)...)
	errs = append(errs, copyFilterBlocks(&c.SecurityGroupFilter)...)
	if c.VpcID != "" && !c.VpcFilter.Empty() {
		errs = append(errs, errors.New("vpc_id, vpc_filter: both set; keep one"))
	}
	if c.SecurityGroupID != "" {
		if len(c.SecurityGroupIDs) > 0 {
			errs = append(errs, errors.New("security_group_id, security_group_ids: both set; keep one"))
		} else {
			c.SecurityGroupIDs = []string{c.SecurityGroupID}
		}
	}
	for _, id := range c.SecurityGroupIDs {
		if known(id) && !securityGroupIDRegexp.MatchString(id) {
			errs = append(errs, fmt.Errorf("security_group_ids: %q is not a security group ID; use an ID such as \"sg-0a1b2c3d4e5f60001\" (names go in security_group_filter { filters = { \"group-name\" = … } })", id))
		}
	}
	if len(c.SecurityGroupIDs) > 0 && !c.SecurityGroupFilter.Empty() {
		errs = append(errs, errors.New("security_group_ids, security_group_filter: both set; keep one"))
	}
	if c.AvailabilityZone != "" && known(c.AvailabilityZone) {
		m := zonePattern.FindStringSubmatch(c.AvailabilityZone)
		switch {
		case m == nil:
			errs = append(errs, fmt.Errorf("availability_zone: %q is not a zone name; use e.g. %q", c.AvailabilityZone, c.RawRegion+"a"))
		case m[1] != c.RawRegion && known(c.RawRegion):
			errs = append(errs, fmt.Errorf("availability_zone: %q is a zone of %s, not of the build region %s; use e.g. %q", c.AvailabilityZone, m[1], c.RawRegion, c.RawRegion+"a"))
		}
	}
	ownGroup := len(c.SecurityGroupIDs) > 0 || !c.SecurityGroupFilter.Empty()
	if ownGroup && (len(c.TemporarySGSourceCidrs) > 0 || c.TemporarySGSourcePublicIp) {
		errs = append(errs, errors.New("temporary_security_group_source_*: set with your own security groups; they shape the temporary group only, which isn't made when you give groups: remove one"))
	}
	if len(c.TemporarySGSourceCidrs) > 0 && c.TemporarySGSourcePublicIp {
		errs = append(errs, errors.New("temporary_security_group_source_cidrs, temporary_security_group_source_public_ip: both set; keep one (add this machine's address to the CIDRs if you want both)"))
	}
	for _, cidr := range c.TemporarySGSourceCidrs {
		if !known(cidr) {
			continue
		}
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			errs = append(errs, fmt.Errorf("temporary_security_group_source_cidrs: %q is not a CIDR block; use e.g. \"203.0.113.7/32\"", cidr))
			continue
		}
		if ones, _ := n.Mask.Size(); ones == 0 {
			c.warn("temporary_security_group_source_cidrs: %s opens the communicator port to the whole internet; prefer your address or network", cidr)
		}
	}
	if c.SSHInterface == "ipv6" && len(c.TemporarySGSourceCidrs) == 0 && !ownGroup {
		errs = append(errs, errors.New(`ssh_interface = "ipv6": the temporary security group needs temporary_security_group_source_cidrs (e.g. your IPv6 network); amicrypt-ebs never opens ::/0 by default`))
	}
	return errs
}

// copyFilterBlocks merges filter blocks into the filters map.
func copyFilterBlocks(f *ResourceFilter) []error {
	if len(f.Filter) == 0 {
		return nil
	}
	return f.Filter.CopyOn(&f.Filters)
}

func (c *Config) prepareSpot() []error {
	var errs []error
	if c.SpotPrice != "" && known(c.SpotPrice) && !spotPricePattern.MatchString(c.SpotPrice) {
		errs = append(errs, fmt.Errorf("spot_price: %q is not a price; use \"auto\" (the current spot price) or a maximum hourly price such as \"0.05\"", c.SpotPrice))
	}
	if !c.spot() {
		for _, f := range []struct {
			name string
			set  bool
		}{{"spot_instance_types", len(c.SpotInstanceTypes) > 0}, {"spot_tags", len(c.SpotTags) > 0}, {"fleet_tags", len(c.FleetTags) > 0},
			{"spot_allocation_strategy", c.SpotAllocationStrategy != ""}} {
			if f.set {
				errs = append(errs, fmt.Errorf("%s: set without spot_price; it applies to spot builds only: add spot_price = \"auto\" or remove it", f.name))
			}
		}
	}
	if c.SpotAllocationStrategy != "" && !slices.Contains(spotAllocationStrategies, c.SpotAllocationStrategy) {
		errs = append(errs, fmt.Errorf("spot_allocation_strategy: %q is not an allocation strategy; use one of %s", c.SpotAllocationStrategy, strings.Join(spotAllocationStrategies, ", ")))
	}
	if c.spot() && c.DisableStopInstance {
		errs = append(errs, errors.New("disable_stop_instance: set with spot_price; a spot instance of an instant fleet can't be stopped (AWS stops only persistent spot requests): remove one"))
	}
	return errs
}

func (c *Config) prepareMetadata() []error {
	var errs []error
	m := &c.Metadata
	if m.HttpEndpoint == "" {
		m.HttpEndpoint = "enabled"
	}
	if m.HttpTokens == "" {
		m.HttpTokens = "optional"
	}
	if m.HttpPutResponseHopLimit == 0 {
		m.HttpPutResponseHopLimit = 1
	}
	if m.InstanceMetadataTags == "" {
		m.InstanceMetadataTags = "disabled"
	}
	if m.HttpEndpoint != "enabled" && m.HttpEndpoint != "disabled" {
		errs = append(errs, fmt.Errorf("metadata_options.http_endpoint: %q is not a state; use \"enabled\" or \"disabled\"", m.HttpEndpoint))
	}
	if m.HttpTokens != "optional" && m.HttpTokens != "required" {
		errs = append(errs, fmt.Errorf("metadata_options.http_tokens: %q is not a token state; use \"required\" (IMDSv2 only) or \"optional\"", m.HttpTokens))
	}
	if m.HttpPutResponseHopLimit < 1 || m.HttpPutResponseHopLimit > 64 {
		errs = append(errs, fmt.Errorf("metadata_options.http_put_response_hop_limit: %d is out of range; use 1 to 64 (2 for containers)", m.HttpPutResponseHopLimit))
	}
	if m.InstanceMetadataTags != "enabled" && m.InstanceMetadataTags != "disabled" {
		errs = append(errs, fmt.Errorf("metadata_options.instance_metadata_tags: %q is not a state; use \"enabled\" or \"disabled\"", m.InstanceMetadataTags))
	}
	if m.HttpEndpoint == "disabled" && c.SSHInterface == "session_manager" {
		errs = append(errs, errors.New(`metadata_options.http_endpoint = "disabled" with ssh_interface = "session_manager": the SSM agent reads its credentials from IMDS; keep the endpoint enabled`))
	}
	return errs
}

func (c *Config) prepareConnection() []error {
	var errs []error
	cc := &c.Comm
	if c.SSHInterface != "" && !slices.Contains(sshInterfaces, c.SSHInterface) {
		errs = append(errs, fmt.Errorf("ssh_interface: %q is not an interface; use one of %s", c.SSHInterface, strings.Join(sshInterfaces, ", ")))
	}
	if c.SSHInterface == "session_manager" {
		if cc.Type == "winrm" {
			errs = append(errs, errors.New(`ssh_interface = "session_manager": not with communicator = "winrm" (the tunnel carries SSH); use ssh`))
		}
		if c.IAMInstanceProfile == "" {
			errs = append(errs, errors.New(`ssh_interface = "session_manager": needs iam_instance_profile, a profile whose role allows SSM (the AmazonSSMManagedInstanceCore policy)`))
		}
		if cc.SSHPrivateKeyFile != "" && cc.SSHKeyPairName == "" {
			errs = append(errs, errors.New(`ssh_interface = "session_manager" with ssh_private_key_file and no ssh_keypair_name: amazon-ebs would push that key with EC2 Instance Connect, which amicrypt-ebs doesn't do; set ssh_keypair_name to the key pair of that private key (or remove both to get a temporary key pair)`))
		}
	}
	if c.SessionManagerPort < 0 || c.SessionManagerPort > 65535 {
		errs = append(errs, fmt.Errorf("session_manager_port: %d is not a port; use 1024–65535, or leave it unset for a free one", c.SessionManagerPort))
	}
	if (c.SessionManagerPort != 0 || c.PauseBeforeSSM != 0) && c.SSHInterface != "session_manager" {
		errs = append(errs, errors.New(`session_manager_port, pause_before_ssm: set without ssh_interface = "session_manager"; they shape the SSM tunnel only: remove them or use session_manager`))
	}
	if c.WindowsPasswordTimeout == 0 {
		c.WindowsPasswordTimeout = defaultWindowsPasswordTimeout
	}
	if c.WindowsPasswordTimeout < 0 {
		errs = append(errs, fmt.Errorf("windows_password_timeout: %s is negative; use a duration such as \"20m\"", c.WindowsPasswordTimeout))
	}
	keyType := cc.SSHTemporaryKeyPairType
	if keyType == "" {
		keyType = "rsa"
		cc.SSHTemporaryKeyPairType = keyType
	}
	switch keyType {
	case "rsa":
		switch cc.SSHTemporaryKeyPairBits {
		case 0, 2048, 4096:
		default:
			errs = append(errs, fmt.Errorf("temporary_key_pair_bits: %d is not an RSA key size EC2 imports; use 2048 (what EC2 creates) or 4096", cc.SSHTemporaryKeyPairBits))
		}
	case "ed25519":
		if cc.SSHTemporaryKeyPairBits != 0 {
			errs = append(errs, fmt.Errorf("temporary_key_pair_bits: %d set for an ed25519 key, whose size is fixed; remove it", cc.SSHTemporaryKeyPairBits))
		}
		if cc.Type == "winrm" {
			errs = append(errs, errors.New(`temporary_key_pair_type = "ed25519": Windows instances need an RSA key pair (AWS encrypts the administrator password with it); use "rsa"`))
		}
	default:
		errs = append(errs, fmt.Errorf("temporary_key_pair_type: %q is not a key type EC2 accepts; use \"rsa\" or \"ed25519\"", keyType))
	}
	if cc.SSHKeyPairName != "" {
		switch {
		case cc.Type == "winrm" && cc.WinRMPassword == "" && cc.SSHPrivateKeyFile == "":
			errs = append(errs, errors.New("ssh_keypair_name: with winrm and no winrm_password, set ssh_private_key_file so the Windows password can be decrypted"))
		case cc.Type != "winrm" && cc.SSHPrivateKeyFile == "" && !cc.SSHAgentAuth:
			errs = append(errs, errors.New("ssh_keypair_name: set ssh_private_key_file, or ssh_agent_auth = true, to log in with that key pair"))
		}
	}
	return errs
}
