//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config,BlockDevice,SubnetFilter,DeregistrationProtection
// packer-sdc struct-markdown finds the project root by a parent directory
// named packer-plugin-* and loops forever without one, so it runs through a
// symlink with that name.
//go:generate sh -c "ln -sfn \"$(dirname $(go env GOMOD))\" \"${TMPDIR:-/tmp}/packer-plugin-amicrypt\" && cd \"${TMPDIR:-/tmp}/packer-plugin-amicrypt/builder/ebs\" && go tool packer-sdc struct-markdown"

package ebs

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// SubnetFilter picks the subnet to launch in by filters.
type SubnetFilter struct {
	// DescribeSubnets filters, e.g. `"tag:Name" = "build"`.
	Filters map[string]string `mapstructure:"filters" required:"false"`
	// Of several matches, take the one with the most free IP addresses.
	MostFree bool `mapstructure:"most_free" required:"false"`
}

// BlockDevice is one block device mapping of the launch instance or the AMI.
type BlockDevice struct {
	// The device name, e.g. `/dev/xvda`. Required.
	DeviceName string `mapstructure:"device_name" required:"true"`
	// Size in GiB. Defaults to the snapshot's size.
	VolumeSize int64 `mapstructure:"volume_size" required:"false"`
	// Volume type: gp3, gp2, io1, io2, st1, sc1, standard.
	VolumeType string `mapstructure:"volume_type" required:"false"`
	// Provisioned IOPS (io1, io2, gp3).
	IOPS int64 `mapstructure:"iops" required:"false"`
	// Throughput in MiB/s (gp3).
	Throughput int64 `mapstructure:"throughput" required:"false"`
	// Launch volumes only: encrypt the volume. With `kms_key_id` set to the
	// AMI's key, the snapshots are already encrypted under it and the build
	// makes no extra data copy.
	Encrypted bool `mapstructure:"encrypted" required:"false"`
	// Launch volumes only: the key that encrypts the volume.
	KmsKeyID string `mapstructure:"kms_key_id" required:"false"`
	// Delete the volume when the instance terminates. Defaults to true.
	DeleteOnTermination *bool `mapstructure:"delete_on_termination" required:"false"`
	// Create the volume from this snapshot.
	SnapshotID string `mapstructure:"snapshot_id" required:"false"`
	// An instance store volume, e.g. `ephemeral0`.
	VirtualName string `mapstructure:"virtual_name" required:"false"`
	// Suppress a device the source AMI maps.
	NoDevice bool `mapstructure:"no_device" required:"false"`
}

// instanceStoreMapping is the mapping of a no_device or ephemeral
// (virtual_name) entry; ok is false for an EBS volume.
func (bd BlockDevice) instanceStoreMapping() (m types.BlockDeviceMapping, ok bool) {
	m.DeviceName = aws.String(bd.DeviceName)
	switch {
	case bd.NoDevice:
		m.NoDevice = aws.String("")
	case bd.VirtualName != "":
		m.VirtualName = aws.String(bd.VirtualName)
	default:
		return m, false
	}
	return m, true
}

// applyVolumeSettings sets on e the volume settings the entry gives.
func (bd BlockDevice) applyVolumeSettings(e *types.EbsBlockDevice) {
	if bd.VolumeSize > 0 {
		e.VolumeSize = aws.Int32(int32(bd.VolumeSize))
	}
	if bd.VolumeType != "" {
		e.VolumeType = types.VolumeType(bd.VolumeType)
	}
	if bd.IOPS > 0 {
		e.Iops = aws.Int32(int32(bd.IOPS))
	}
	if bd.Throughput > 0 {
		e.Throughput = aws.Int32(int32(bd.Throughput))
	}
	if bd.DeleteOnTermination != nil {
		e.DeleteOnTermination = bd.DeleteOnTermination
	}
}

// DeregistrationProtection protects the AMI from deregistration.
type DeregistrationProtection struct {
	// Turn deregistration protection on.
	Enabled bool `mapstructure:"enabled" required:"false"`
	// Keep protection for 24 hours after it is turned off.
	WithCooldown bool `mapstructure:"with_cooldown" required:"false"`
}

// Config is the amicrypt-ebs configuration.
type Config struct {
	common.PackerConfig  `mapstructure:",squash"`
	awsauth.AccessConfig `mapstructure:",squash"`
	Comm                 communicator.Config `mapstructure:",squash"`

	// The KMS key that encrypts every snapshot of the AMI in the build
	// region: key ID, key ARN, alias name or alias ARN. It must be a
	// customer-managed, enabled, symmetric key in the build region.
	KmsKeyID string `mapstructure:"kms_key_id" required:"true"`
	// The name of the AMI: 3–128 letters, digits and `()[] ./-'@_`.
	AMIName string `mapstructure:"ami_name" required:"true"`
	// The AMI's description.
	AMIDescription string `mapstructure:"ami_description" required:"false"`
	// The source AMI's ID. Either this or `source_ami_filter`.
	SourceAMI string `mapstructure:"source_ami" required:"false"`
	// Find the source AMI by filters.
	SourceAMIFilter ebs.AMIFilter `mapstructure:"source_ami_filter" required:"false"`
	// Re-encrypt the source AMI's own snapshots without launching an
	// instance. Launch and provisioning settings are then refused.
	SkipLaunch bool `mapstructure:"skip_launch" required:"false"`

	// The instance type to launch, e.g. `t3.micro`. Required unless `skip_launch`.
	InstanceType string `mapstructure:"instance_type" required:"false"`
	// The subnet to launch in. Defaults to a default subnet.
	SubnetID string `mapstructure:"subnet_id" required:"false"`
	// Pick the subnet by filters.
	SubnetFilter SubnetFilter `mapstructure:"subnet_filter" required:"false"`
	// Launch in a subnet of this VPC.
	VpcID string `mapstructure:"vpc_id" required:"false"`
	// Security groups to attach instead of a temporary one.
	SecurityGroupIDs []string `mapstructure:"security_group_ids" required:"false"`
	// Give the instance a public IP address.
	AssociatePublicIPAddress *bool `mapstructure:"associate_public_ip_address" required:"false"`
	// The IAM instance profile name to launch with.
	IAMInstanceProfile string `mapstructure:"iam_instance_profile" required:"false"`
	// User data for the instance.
	UserData string `mapstructure:"user_data" required:"false"`
	// A file whose content is the user data.
	UserDataFile string `mapstructure:"user_data_file" required:"false"`
	// Tags on the build instance.
	RunTags map[string]string `mapstructure:"run_tags" required:"false"`
	// Tags on the build instance's volumes.
	RunVolumeTags map[string]string `mapstructure:"run_volume_tags" required:"false"`
	// Block devices of the build instance (overriding the source AMI's).
	LaunchMappings []BlockDevice `mapstructure:"launch_block_device_mappings" required:"false"`
	// Block devices of the AMI, by device name over the source's layout:
	// ephemeral (virtual_name), no_device, new empty EBS volumes (encrypted
	// when launched), or new sizes and types for the built volumes.
	// `snapshot_id` is refused here: attach such a volume at launch instead.
	AMIMappings []BlockDevice `mapstructure:"ami_block_device_mappings" required:"false"`

	// Tags on the AMI (and its copies).
	AMITags map[string]string `mapstructure:"tags" required:"false"`
	// Tags on the AMI's snapshots.
	SnapshotTags map[string]string `mapstructure:"snapshot_tags" required:"false"`
	// Regions to copy the AMI to. Each needs a key in `region_kms_key_ids`.
	AMIRegions []string `mapstructure:"ami_regions" required:"false"`
	// The key for each region of `ami_regions`. A missing region is an
	// error, never a silent fallback to aws/ebs.
	RegionKMSKeyIDs map[string]string `mapstructure:"region_kms_key_ids" required:"false"`
	// Accounts that may launch the AMI.
	AMIUsers []string `mapstructure:"ami_users" required:"false"`
	// Organization ARNs that may launch the AMI.
	AMIOrgArns []string `mapstructure:"ami_org_arns" required:"false"`
	// Organizational unit ARNs that may launch the AMI.
	AMIOuArns []string `mapstructure:"ami_ou_arns" required:"false"`
	// Accounts that may create volumes from the AMI's snapshots.
	SnapshotUsers []string `mapstructure:"snapshot_users" required:"false"`
	// When the AMI is deprecated, RFC 3339 (`2027-01-02T15:04:05Z`), in the future.
	DeprecateAt string `mapstructure:"deprecate_at" required:"false"`
	// Protect the AMI (and copies) from deregistration.
	DeregistrationProtection DeregistrationProtection `mapstructure:"deregistration_protection" required:"false"`
	// Deregister an existing AMI with the same name (and delete its
	// snapshots) in the build region and `ami_regions` before registering.
	ForceDeregister bool `mapstructure:"force_deregister" required:"false"`

	deprecateAt time.Time
	ctx         interpolate.Context
}

var (
	amiNamePattern    = regexp.MustCompile(`^[a-zA-Z0-9()\[\] ./\-'@_]{3,128}$`)
	deviceNamePattern = regexp.MustCompile(`^/dev/[a-z0-9]+$|^xvd[a-z]+$|^sd[a-z]+$`)
)

// volumeTypes are the EBS volume types an AMI or instance may use.
var volumeTypes = []string{"gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"}

// generatedDataKeys are the names templates may use as build.NAME.
var generatedDataKeys = []string{"SourceAMI", "SourceAMIName", "SourceAMIOwner", "SourceAMICreationDate", "BuildRegion", "KmsKeyArn"}

// Prepare decodes and validates the configuration. It makes no API call.
func (c *Config) Prepare(raws ...interface{}) ([]string, error) {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         BuilderId,
		Interpolate:        true,
		InterpolateContext: &c.ctx,
		InterpolateFilter:  &interpolate.RenderFilter{Exclude: []string{"ami_description", "run_tags", "run_volume_tags", "snapshot_tags", "tags"}},
	}, raws...)
	if err != nil {
		return nil, err
	}
	var errs []error
	errs = append(errs, c.AccessConfig.Prepare()...)
	errs = append(errs, c.prepareKeys()...)
	errs = append(errs, c.prepareAMI()...)
	errs = append(errs, c.prepareSharing()...)
	errs = append(errs, c.prepareLaunch()...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return generatedDataKeys, nil
}

func (c *Config) sharing() ebs.Sharing {
	return ebs.Sharing{Users: c.AMIUsers, OrgARNs: c.AMIOrgArns, OUARNs: c.AMIOuArns}
}

func (c *Config) sharingConfigured() bool {
	return !c.sharing().Empty() || len(c.SnapshotUsers) > 0
}

func (c *Config) prepareKeys() []error {
	var errs []error
	if c.KmsKeyID == "" {
		errs = append(errs, errors.New(`kms_key_id: not set; amicrypt-ebs encrypts every snapshot under a customer-managed key: set kms_key_id = "alias/NAME" (or a key ID or ARN) of a key in the build region`))
	} else {
		errs = append(errs, c.checkKeyRef("kms_key_id", c.KmsKeyID, c.RawRegion, false)...)
	}
	seen := map[string]bool{c.RawRegion: true}
	for _, r := range c.AMIRegions {
		switch {
		case !awsauth.ValidRegion(r):
			errs = append(errs, fmt.Errorf("ami_regions: %q is not a region name; use names such as \"us-west-2\"", r))
			continue
		case r == c.RawRegion:
			errs = append(errs, fmt.Errorf("ami_regions: %q is the build region; remove it (the AMI is built there)", r))
			continue
		case seen[r]:
			errs = append(errs, fmt.Errorf("ami_regions: %q is listed twice; list each region once", r))
			continue
		}
		seen[r] = true
		key, ok := c.RegionKMSKeyIDs[r]
		if !ok || key == "" {
			errs = append(errs, fmt.Errorf("region_kms_key_ids: no key for %q, which ami_regions lists; add region_kms_key_ids = { %q = \"alias/NAME\" } (a copy is never left to fall back to aws/ebs)", r, r))
			continue
		}
		errs = append(errs, c.checkKeyRef(fmt.Sprintf("region_kms_key_ids[%q]", r), key, r, false)...)
	}
	regions := make([]string, 0, len(c.RegionKMSKeyIDs))
	for r := range c.RegionKMSKeyIDs {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		if !seen[r] {
			errs = append(errs, fmt.Errorf("region_kms_key_ids: %q is not in ami_regions; add it to ami_regions or remove its key", r))
		}
	}
	return errs
}

// checkKeyRef checks a key reference's syntax and region; AWS-managed
// aliases are refused unless allowAWSManaged (launch volumes, whose data is
// re-encrypted anyway).
func (c *Config) checkKeyRef(field, ref, region string, allowAWSManaged bool) []error {
	parsed, err := ebs.ParseKeyRef(ref)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", field, err)}
	}
	var errs []error
	if parsed.Region != "" && region != "" && parsed.Region != region {
		errs = append(errs, fmt.Errorf("%s: %q is a key of %s but is used in %s; KMS keys work only in their own region: use a key of %s", field, ref, parsed.Region, region, region))
	}
	if parsed.AWSManagedAlias() && !allowAWSManaged {
		errs = append(errs, fmt.Errorf("%s: %q is an AWS-managed key; AWS refuses to share what it encrypts (%q) and amicrypt-copy can't re-encrypt from it for other accounts: create a customer-managed key and use its alias or ARN",
			field, ref, ebs.AWSManagedShareError))
	}
	return errs
}

func (c *Config) prepareAMI() []error {
	var errs []error
	switch {
	case c.AMIName == "":
		errs = append(errs, errors.New(`ami_name: not set; set ami_name = "my-app-{{timestamp}}" (3–128 letters, digits and ()[] ./-'@_)`))
	case !amiNamePattern.MatchString(c.AMIName):
		errs = append(errs, fmt.Errorf("ami_name: %q is not a valid AMI name; use 3–128 letters, digits and ()[] ./-'@_ only", c.AMIName))
	}
	if c.SourceAMI == "" && c.SourceAMIFilter.Empty() {
		errs = append(errs, errors.New(`source_ami: not set; set source_ami = "ami-…" or a source_ami_filter { filters = {…} owners = [...] }`))
	}
	if c.SourceAMI != "" && !ebs.ValidAMIID(c.SourceAMI) {
		errs = append(errs, fmt.Errorf("source_ami: %q is not an AMI ID; use an ID such as \"ami-0a1b2c3d4e5f60001\", or find the image with source_ami_filter", c.SourceAMI))
	}
	if c.SourceAMI != "" && !c.SourceAMIFilter.Empty() {
		errs = append(errs, errors.New("source_ami, source_ami_filter: both set; keep one"))
	}
	if err := c.SourceAMIFilter.Validate("source_ami_filter"); err != nil {
		errs = append(errs, err)
	}
	if c.DeprecateAt != "" {
		t, err := time.Parse(time.RFC3339, c.DeprecateAt)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("deprecate_at: %q is not an RFC 3339 time; use e.g. \"2030-01-02T15:04:05Z\"", c.DeprecateAt))
		case !t.After(time.Now()):
			errs = append(errs, fmt.Errorf("deprecate_at: %q is in the past; use a future time", c.DeprecateAt))
		default:
			c.deprecateAt = t
		}
	}
	for i, bd := range c.AMIMappings {
		errs = append(errs, prepareBlockDevice(fmt.Sprintf("ami_block_device_mappings[%d]", i), bd, false)...)
	}
	return errs
}

func (c *Config) prepareSharing() []error {
	var errs []error
	for _, u := range c.AMIUsers {
		if !ebs.ValidAccountID(u) {
			errs = append(errs, fmt.Errorf("ami_users: %q is not an AWS account ID; use the 12-digit account number, e.g. \"222222222222\"", u))
		}
	}
	for _, u := range c.SnapshotUsers {
		if !ebs.ValidAccountID(u) {
			errs = append(errs, fmt.Errorf("snapshot_users: %q is not an AWS account ID; use the 12-digit account number, e.g. \"222222222222\"", u))
		}
	}
	for _, a := range c.AMIOrgArns {
		if !ebs.ValidOrgARN(a) {
			errs = append(errs, fmt.Errorf("ami_org_arns: %q is not an organization ARN; use arn:aws:organizations::ACCOUNT:organization/o-…", a))
		}
	}
	for _, a := range c.AMIOuArns {
		if !ebs.ValidOUARN(a) {
			errs = append(errs, fmt.Errorf("ami_ou_arns: %q is not an organizational unit ARN; use arn:aws:organizations::ACCOUNT:ou/o-…/ou-…", a))
		}
	}
	return errs
}

func (c *Config) prepareLaunch() []error {
	var errs []error
	if c.SkipLaunch {
		var set []string
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"instance_type", c.InstanceType != ""}, {"subnet_id", c.SubnetID != ""}, {"subnet_filter", len(c.SubnetFilter.Filters) > 0},
			{"vpc_id", c.VpcID != ""}, {"security_group_ids", len(c.SecurityGroupIDs) > 0},
			{"associate_public_ip_address", c.AssociatePublicIPAddress != nil}, {"iam_instance_profile", c.IAMInstanceProfile != ""},
			{"user_data", c.UserData != ""}, {"user_data_file", c.UserDataFile != ""}, {"run_tags", len(c.RunTags) > 0},
			{"run_volume_tags", len(c.RunVolumeTags) > 0}, {"launch_block_device_mappings", len(c.LaunchMappings) > 0},
		} {
			if f.set {
				set = append(set, f.name)
			}
		}
		if c.Comm.Type != "" && c.Comm.Type != "none" {
			set = append(set, fmt.Sprintf("communicator = %q", c.Comm.Type))
		}
		if len(set) > 0 {
			errs = append(errs, fmt.Errorf("skip_launch: true, yet launch settings are set: %v; skip_launch re-encrypts the source AMI without an instance: remove them, or set skip_launch = false to launch and provision", set))
		}
		c.Comm.Type = "none"
		return errs
	}
	if c.InstanceType == "" {
		errs = append(errs, errors.New(`instance_type: not set; set instance_type = "t3.micro" (or set skip_launch = true to re-encrypt without launching)`))
	}
	if c.UserData != "" && c.UserDataFile != "" {
		errs = append(errs, errors.New("user_data, user_data_file: both set; keep one"))
	}
	if c.UserDataFile != "" {
		if _, err := os.Stat(c.UserDataFile); err != nil {
			errs = append(errs, fmt.Errorf("user_data_file: %q can't be read (%w); fix the path", c.UserDataFile, err))
		}
	}
	if c.SubnetID != "" && len(c.SubnetFilter.Filters) > 0 {
		errs = append(errs, errors.New("subnet_id, subnet_filter: both set; keep one"))
	}
	for i, bd := range c.LaunchMappings {
		errs = append(errs, prepareBlockDevice(fmt.Sprintf("launch_block_device_mappings[%d]", i), bd, true)...)
		if bd.KmsKeyID != "" {
			errs = append(errs, c.checkKeyRef(fmt.Sprintf("launch_block_device_mappings[%d].kms_key_id", i), bd.KmsKeyID, c.RawRegion, true)...)
		}
	}
	errs = append(errs, c.Comm.Prepare(&c.ctx)...)
	return errs
}

func prepareBlockDevice(field string, bd BlockDevice, launch bool) []error {
	var errs []error
	if bd.DeviceName == "" {
		errs = append(errs, fmt.Errorf("%s.device_name: not set; name the device, e.g. \"/dev/xvdb\"", field))
	} else if !deviceNamePattern.MatchString(bd.DeviceName) {
		errs = append(errs, fmt.Errorf("%s.device_name: %q is not a device name; use e.g. \"/dev/xvdb\" or \"/dev/sdf\"", field, bd.DeviceName))
	}
	if bd.KmsKeyID != "" && !bd.Encrypted {
		errs = append(errs, fmt.Errorf("%s.kms_key_id: set without encrypted = true; add encrypted = true (AWS requires it with a key)", field))
	}
	if !launch && (bd.Encrypted || bd.KmsKeyID != "") {
		errs = append(errs, fmt.Errorf("%s: encrypted/kms_key_id apply to launch volumes only; the AMI's EBS volumes are always encrypted under kms_key_id: remove them", field))
	}
	if !launch && bd.SnapshotID != "" {
		// The AMI may only point at snapshots this build encrypted; a volume
		// attached at launch is snapshotted and re-encrypted like the root.
		errs = append(errs, fmt.Errorf("%s.snapshot_id: %q can't be put in the AMI as is (it may be unencrypted or under another key); move the device to launch_block_device_mappings, whose volumes are re-encrypted under kms_key_id", field, bd.SnapshotID))
	}
	if bd.NoDevice && (bd.VirtualName != "" || bd.VolumeSize != 0 || bd.SnapshotID != "") {
		errs = append(errs, fmt.Errorf("%s: no_device = true with other settings; a suppressed device takes none", field))
	}
	if bd.VolumeType != "" && !slices.Contains(volumeTypes, bd.VolumeType) {
		errs = append(errs, fmt.Errorf("%s.volume_type: %q is not an EBS volume type; use one of %s", field, bd.VolumeType, strings.Join(volumeTypes, ", ")))
	}
	if bd.VolumeSize < 0 {
		errs = append(errs, fmt.Errorf("%s.volume_size: %d is negative; use a size in GiB", field, bd.VolumeSize))
	}
	return errs
}
