//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config,BlockDevice,SubnetFilter,ResourceFilter,DeregistrationProtection,MetadataOptions,Placement,LicenseSpecification,LicenseConfigurationRequest,PolicyDocument,Statement,FastLaunchConfig,FastLaunchTemplateConfig
// packer-sdc struct-markdown finds the project root by a parent directory
// named packer-plugin-* and loops forever without one, so it runs through a
// symlink with that name.
//go:generate sh -c "ln -sfn \"$(dirname $(go env GOMOD))\" \"${TMPDIR:-/tmp}/packer-plugin-amicrypt\" && cd \"${TMPDIR:-/tmp}/packer-plugin-amicrypt/builder/ebs\" && go tool packer-sdc struct-markdown"

package ebs

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

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
	// Delete the volume when an instance using it terminates. Unset means
	// false, as in amazon-ebs: a launch volume outlives the build instance
	// (the builder deletes it after the snapshot) and the AMI's device keeps
	// its volume when an instance launched from it terminates. Set it to true
	// for the usual behaviour.
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
	// Deregister an existing AMI with the same name in the build region and
	// `ami_regions` before registering. `packer build -force` sets it too.
	ForceDeregister bool `mapstructure:"force_deregister" required:"false"`
	// With `force_deregister`: delete the snapshots of the deregistered AMI as
	// well (as amazon-ebs, they are kept otherwise).
	ForceDeleteSnapshot bool `mapstructure:"force_delete_snapshot" required:"false"`

	// Tags on the AMI as repeatable `tag { key = … value = … }` blocks.
	AMITag config.KeyValues `mapstructure:"tag" required:"false"`
	// Tags on the AMI's snapshots as `snapshot_tag` blocks.
	SnapshotTag config.KeyValues `mapstructure:"snapshot_tag" required:"false"`
	// Tags on the build instance as `run_tag` blocks.
	RunTag config.KeyValues `mapstructure:"run_tag" required:"false"`
	// Tags on the build instance's volumes as `run_volume_tag { name = … value = … }` blocks.
	VolumeRunTag config.NameValues `mapstructure:"run_volume_tag" required:"false"`
	// Don't put `run_tags` on the AMI and its snapshots. By default they are
	// (as amazon-ebs), under `tags` and `snapshot_tags`.
	SkipAMIRunTags bool `mapstructure:"skip_ami_run_tags" required:"false"`

	// Accepted as `true` (what amicrypt-ebs always does). `false` is refused:
	// amicrypt-ebs never makes an unencrypted AMI.
	EncryptBoot config.Trilean `mapstructure:"encrypt_boot" required:"false"`
	// Refused: encrypted AMIs can't be public (the only group is `all`).
	AMIGroups []string `mapstructure:"ami_groups" required:"false"`
	// Refused: encrypted snapshots can't be public (the only group is `all`).
	SnapshotGroups []string `mapstructure:"snapshot_groups" required:"false"`
	// The virtualization type the AMI must have, `hvm` or `paravirtual`.
	// The AMI keeps the source's type; a source of another type fails the
	// preflight. `ena_support` and `sriov_support` need `hvm`.
	AMIVirtType string `mapstructure:"ami_virtualization_type" required:"false"`
	// Mark the AMI as supporting ENA (true) or not (false). Unset keeps the
	// source AMI's setting.
	AMIENASupport config.Trilean `mapstructure:"ena_support" required:"false"`
	// Mark the AMI as supporting SR-IOV enhanced networking (`simple`).
	AMISriovNetSupport bool `mapstructure:"sriov_support" required:"false"`
	// Product codes to attach to the AMI (AWS Marketplace sellers).
	AMIProductCodes []string `mapstructure:"ami_product_codes" required:"false"`
	// `v2.0`: instances launched from the AMI require IMDSv2. Empty keeps the
	// source AMI's setting.
	AMIIMDSSupport string `mapstructure:"imds_support" required:"false"`
	// Don't check `ami_regions` against the account's enabled regions
	// (ec2:DescribeRegions) before the build.
	SkipRegionValidation bool `mapstructure:"skip_region_validation" required:"false"`
	// Keep the AMI only in `ami_regions`: the build region's AMI is
	// deregistered (and its snapshots deleted) once the copies are done.
	SkipSaveBuildRegion bool `mapstructure:"skip_save_build_region" required:"false"`
	// Launch and provision, but make no AMI (e.g. to test provisioning). The
	// build has no artifact.
	SkipCreateAMI bool `mapstructure:"skip_create_ami" required:"false"`
	// Minutes within which each `ami_regions` copy must complete
	// (time-based copy, CopyImage SnapshotCopyCompletionDurationMinutes):
	// 15 to 2880, in steps of 15.
	SnapshotCopyDurationMinutes int64 `mapstructure:"snapshot_copy_duration_minutes" required:"false"`
	// Refused: Windows fast launch is not turned on by amicrypt-ebs.
	FastLaunch FastLaunchConfig `mapstructure:"fast_launch" required:"false"`

	// How the communicator reaches the instance: `public_ip`, `private_ip`,
	// `public_dns`, `private_dns` or `session_manager` (an SSM port
	// forwarding session through the local session-manager-plugin, which
	// needs an instance profile allowing SSM). Unset: the public IP, else
	// the private IP.
	SSHInterface string `mapstructure:"ssh_interface" required:"false"`
	// The local port of the `session_manager` tunnel. Defaults to a free port
	// between 8000 and 9000.
	SessionManagerPort int `mapstructure:"session_manager_port" required:"false"`
	// How long to wait before opening the `session_manager` tunnel, e.g.
	// `"30s"`, while the SSM agent starts.
	PauseBeforeSSM time.Duration `mapstructure:"pause_before_ssm" required:"false"`
	// With `communicator = "winrm"` and no `winrm_password`: how long to
	// wait for the Windows administrator password (ec2:GetPasswordData,
	// decrypted with the temporary key pair). Defaults to `"20m"`.
	WindowsPasswordTimeout time.Duration `mapstructure:"windows_password_timeout" required:"false"`

	// The build instance's instance metadata settings. See `metadata_options`.
	Metadata MetadataOptions `mapstructure:"metadata_options" required:"false"`
	// CIDR blocks the temporary security group admits on the communicator
	// port. Defaults to the caller's public IP (as
	// `temporary_security_group_source_public_ip`), or to the VPC's CIDR
	// blocks when the communicator connects to a private address. Never
	// 0.0.0.0/0 unless you write it.
	TemporarySGSourceCidrs []string `mapstructure:"temporary_security_group_source_cidrs" required:"false"`
	// Admit only this machine's public IP address (as
	// https://checkip.amazonaws.com sees it) in the temporary security group.
	TemporarySGSourcePublicIp bool `mapstructure:"temporary_security_group_source_public_ip" required:"false"`
	// Refused: amicrypt-ebs doesn't create IAM roles or instance profiles.
	TemporaryIamInstanceProfilePolicyDocument *PolicyDocument `mapstructure:"temporary_iam_instance_profile_policy_document" required:"false"`
	// Don't check `iam_instance_profile` with iam:GetInstanceProfile before
	// launching.
	SkipProfileValidation bool `mapstructure:"skip_profile_validation" required:"false"`
	// One security group to attach instead of a temporary one.
	SecurityGroupID string `mapstructure:"security_group_id" required:"false"`
	// Find the security groups to attach by filters (in the build VPC).
	SecurityGroupFilter ResourceFilter `mapstructure:"security_group_filter" required:"false"`
	// Find the VPC to launch in by filters; exactly one must match.
	VpcFilter ResourceFilter `mapstructure:"vpc_filter" required:"false"`
	// The availability zone to launch in, e.g. `us-east-1a`.
	AvailabilityZone string `mapstructure:"availability_zone" required:"false"`
	// Host placement and tenancy. See `placement`.
	Placement Placement `mapstructure:"placement" required:"false"`
	// Deprecated in amazon-ebs for `placement { tenancy }`: `default`,
	// `dedicated` or `host`.
	Tenancy string `mapstructure:"tenancy" required:"false"`
	// Launch with AWS Nitro Enclaves enabled (not with spot or burstable types).
	EnableNitroEnclave bool `mapstructure:"enable_nitro_enclave" required:"false"`
	// License Manager configurations to attach to the build instance.
	LicenseSpecifications []LicenseSpecification `mapstructure:"license_specifications" required:"false"`

	// Launch a spot instance of one of these types (EC2 Fleet, type
	// `instant`) instead of `instance_type`.
	SpotInstanceTypes []string `mapstructure:"spot_instance_types" required:"false"`
	// The highest hourly spot price, or `auto` for the current spot price.
	// Set (and not "0"), the build instance is a spot instance.
	SpotPrice string `mapstructure:"spot_price" required:"false"`
	// The fleet's spot allocation strategy: `lowest-price`, `diversified`,
	// `capacity-optimized`, `capacity-optimized-prioritized` or
	// `price-capacity-optimized`.
	SpotAllocationStrategy string `mapstructure:"spot_allocation_strategy" required:"false"`
	// Tags on the spot request (the fleet's launch template and the spot
	// instance request).
	SpotTags map[string]string `mapstructure:"spot_tags" required:"false"`
	// `spot_tags` as `spot_tag` blocks.
	SpotTag config.KeyValues `mapstructure:"spot_tag" required:"false"`
	// Tags on the EC2 Fleet of a spot build.
	FleetTags map[string]string `mapstructure:"fleet_tags" required:"false"`
	// `fleet_tags` as `fleet_tag` blocks.
	FleetTag config.KeyValues `mapstructure:"fleet_tag" required:"false"`
	// Refused: AWS no longer offers Spot blocks (defined-duration spot instances).
	BlockDurationMinutes int64 `mapstructure:"block_duration_minutes" required:"false"`
	// Deprecated and unused, as in amazon-ebs: accepted with a warning.
	SpotPriceAutoProduct string `mapstructure:"spot_price_auto_product" required:"false"`

	// Launch the build instance EBS-optimized.
	EbsOptimized bool `mapstructure:"ebs_optimized" required:"false"`
	// What a shutdown from inside the instance does: `stop` (default) or
	// `terminate`.
	InstanceInitiatedShutdownBehavior string `mapstructure:"shutdown_behavior" required:"false"`
	// Don't stop the instance: a provisioner stops it (e.g. Windows sysprep
	// with shutdown), and the builder waits for it to be stopped.
	DisableStopInstance bool `mapstructure:"disable_stop_instance" required:"false"`
	// Launch a burstable (T2, T3, T3a, T4g) instance with unlimited CPU credits.
	EnableUnlimitedCredits bool `mapstructure:"enable_unlimited_credits" required:"false"`
	// Deprecated in amazon-ebs for `enable_unlimited_credits`, same meaning.
	EnableT2Unlimited bool `mapstructure:"enable_t2_unlimited" required:"false"`
	// `none` (default) or `open`: whether the instance may use open capacity
	// reservations.
	CapacityReservationPreference string `mapstructure:"capacity_reservation_preference" required:"false"`
	// Launch into this capacity reservation.
	CapacityReservationId string `mapstructure:"capacity_reservation_id" required:"false"`
	// Launch into a capacity reservation of this resource group.
	CapacityReservationGroupArn string `mapstructure:"capacity_reservation_group_arn" required:"false"`
	// Suppress the instance store devices xvdca–xvdcz at launch (Windows),
	// as amazon-ebs does.
	NoEphemeral bool `mapstructure:"no_ephemeral" required:"false"`

	deprecateAt time.Time
	ctx         interpolate.Context
	// copyKeys is the key reference each ami_regions copy uses: its
	// region_kms_key_ids entry, or kms_key_id's alias name.
	copyKeys map[string]string
	warnings []string
}

var (
	amiNamePattern    = regexp.MustCompile(`^[a-zA-Z0-9()\[\] ./\-'@_]{3,128}$`)
	deviceNamePattern = regexp.MustCompile(`^/dev/[a-z0-9]+$`)
	// bareDeviceNamePattern is a device name without /dev/, which AWS
	// accepts and Windows AMIs use (xvdb…); a Linux guest sees /dev/NAME.
	bareDeviceNamePattern = regexp.MustCompile(`^(xvd|sd)[a-z]+[0-9]*$`)
)

// volumeTypes are the EBS volume types an AMI or instance may use.
var volumeTypes = []string{"gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"}

// generatedDataKeys are the names templates may use as build.NAME: those of
// amazon-ebs, and the key every snapshot is encrypted under.
var generatedDataKeys = []string{"SourceAMIName", "BuildRegion", "SourceAMI", "SourceAMICreationDate", "SourceAMIOwner", "SourceAMIOwnerName", "KmsKeyArn"}

// interpolatedAtBuild are the fields rendered when the build runs, with the
// build's data (SourceAMIName, BuildRegion…), as in amazon-ebs.
var interpolatedAtBuild = []string{"ami_description", "fleet_tags", "fleet_tag", "run_tags", "run_tag", "run_volume_tags", "run_volume_tag",
	"spot_tags", "spot_tag", "snapshot_tags", "snapshot_tag", "tags", "tag"}

// Prepare decodes and validates the configuration. It makes no API call.
// It returns the generated data names and warnings.
func (c *Config) Prepare(raws ...interface{}) ([]string, []string, error) {
	c.ctx.Funcs = templateFuncs()
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         BuilderId,
		Interpolate:        true,
		InterpolateContext: &c.ctx,
		InterpolateFilter:  &interpolate.RenderFilter{Exclude: interpolatedAtBuild},
	}, raws...)
	if err != nil {
		return nil, nil, err
	}
	if c.PackerForce {
		c.ForceDeregister = true
	}
	var errs []error
	errs = append(errs, c.mergeTagBlocks()...)
	errs = append(errs, c.AccessConfig.Prepare()...)
	errs = append(errs, awsauth.ZeroSettings(raws)...)
	errs = append(errs, c.refusals()...)
	errs = append(errs, c.prepareKeys()...)
	errs = append(errs, c.prepareAMI()...)
	errs = append(errs, c.prepareSharing()...)
	errs = append(errs, c.prepareTags()...)
	errs = append(errs, c.prepareLaunch()...)
	if len(errs) > 0 {
		return nil, c.warnings, errors.Join(errs...)
	}
	return generatedDataKeys, c.warnings, nil
}

func (c *Config) warn(format string, args ...interface{}) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

func (c *Config) sharing() ebs.Sharing {
	return ebs.Sharing{Users: c.AMIUsers, OrgARNs: c.AMIOrgArns, OUARNs: c.AMIOuArns}
}

func (c *Config) sharingConfigured() bool {
	return !c.sharing().Empty() || len(c.SnapshotUsers) > 0
}

// mergeTagBlocks copies the block forms of the tag maps (tag, snapshot_tag,
// run_tag, run_volume_tag, spot_tag, fleet_tag) into the maps, as amazon-ebs.
func (c *Config) mergeTagBlocks() []error {
	var errs []error
	errs = append(errs, c.AMITag.CopyOn(&c.AMITags)...)
	errs = append(errs, c.SnapshotTag.CopyOn(&c.SnapshotTags)...)
	errs = append(errs, c.RunTag.CopyOn(&c.RunTags)...)
	errs = append(errs, c.VolumeRunTag.CopyOn(&c.RunVolumeTags)...)
	errs = append(errs, c.SpotTag.CopyOn(&c.SpotTags)...)
	errs = append(errs, c.FleetTag.CopyOn(&c.FleetTags)...)
	return errs
}

func (c *Config) prepareKeys() []error {
	var errs []error
	switch {
	case c.KmsKeyID == "":
		errs = append(errs, errors.New(`kms_key_id: not set; amicrypt-ebs encrypts every snapshot under a customer-managed key: set kms_key_id = "alias/NAME" (or a key ID or ARN) of a key in the build region`))
	case !known(c.KmsKeyID):
	default:
		errs = append(errs, c.checkKeyRef("kms_key_id", c.KmsKeyID, c.RawRegion, false)...)
	}
	seen := map[string]bool{c.RawRegion: true}
	var regions []string
	c.copyKeys = map[string]string{}
	for _, r := range c.AMIRegions {
		switch {
		case !known(r):
			regions = append(regions, r)
			continue
		case !awsauth.ValidRegion(r):
			errs = append(errs, fmt.Errorf("ami_regions: %q is not a region name; use names such as \"us-west-2\"", r))
			continue
		case r == c.RawRegion:
			// As amazon-ebs: the AMI is built there already.
			c.warn("ami_regions: %q is the build region, where the AMI is built anyway; it is dropped from ami_regions", r)
			continue
		case seen[r]:
			c.warn("ami_regions: %q is listed twice; it is copied once", r)
			continue
		}
		seen[r] = true
		regions = append(regions, r)
		key, ok := c.RegionKMSKeyIDs[r]
		if !ok || key == "" {
			if alias := c.portableKeyRef(); alias != "" {
				// An alias name means "the key of that name" in each region;
				// the preflight checks it exists there.
				c.copyKeys[r] = alias
				continue
			}
			errs = append(errs, fmt.Errorf("region_kms_key_ids: no key for %q, which ami_regions lists, and kms_key_id %q names a key of one region only; add region_kms_key_ids = { %q = \"alias/NAME\" }, or use an alias name as kms_key_id (the key of that alias in each region) — a copy never falls back to aws/ebs", r, c.KmsKeyID, r))
			continue
		}
		c.copyKeys[r] = key
		if known(key) {
			errs = append(errs, c.checkKeyRef(fmt.Sprintf("region_kms_key_ids[%q]", r), key, r, false)...)
		}
	}
	c.AMIRegions = regions
	keyRegions := make([]string, 0, len(c.RegionKMSKeyIDs))
	for r := range c.RegionKMSKeyIDs {
		keyRegions = append(keyRegions, r)
	}
	sort.Strings(keyRegions)
	for _, r := range keyRegions {
		if !seen[r] && known(r) {
			errs = append(errs, fmt.Errorf("region_kms_key_ids: %q is not in ami_regions; add it to ami_regions or remove its key", r))
		}
	}
	return errs
}

// portableKeyRef is kms_key_id when it names a key in any region: an alias
// name, or the ID of a multi-Region key (whose replicas share it). Key and
// alias ARNs and single-region key IDs name a key of one region: "".
func (c *Config) portableKeyRef() string {
	ref, err := ebs.ParseKeyRef(c.KmsKeyID)
	if err != nil {
		return ""
	}
	if ref.Kind == ebs.KeyRefAlias || (ref.Kind == ebs.KeyRefID && strings.HasPrefix(c.KmsKeyID, "mrk-")) {
		return c.KmsKeyID
	}
	return ""
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
	if parsed.Region != "" && region != "" && known(region) && parsed.Region != region {
		errs = append(errs, fmt.Errorf("%s: %q is a key of %s but is used in %s; KMS keys work only in their own region: use a key of %s", field, ref, parsed.Region, region, region))
	}
	if parsed.AWSManagedAlias() && !allowAWSManaged {
		errs = append(errs, fmt.Errorf("%s: %q is an AWS-managed key; AWS refuses to share what it encrypts (%q) and amicrypt-copy can't re-encrypt from it for other accounts: create a customer-managed key and use its alias or ARN",
			field, ref, ebs.AWSManagedShareError))
	}
	return errs
}

// maxDescription is AWS's limit on an AMI description (RegisterImage,
// CopyImage: up to 255 characters).
const maxDescription = ebs.MaxDescription

func (c *Config) prepareAMI() []error {
	var errs []error
	switch {
	case c.AMIName == "":
		errs = append(errs, errors.New(`ami_name: not set; set ami_name = "my-app-{{timestamp}}" (3–128 letters, digits and ()[] ./-'@_)`))
	case !known(c.AMIName):
	case !amiNamePattern.MatchString(c.AMIName):
		errs = append(errs, fmt.Errorf("ami_name: %q is not a valid AMI name; use 3–128 letters, digits and ()[] ./-'@_ only (clean_resource_name replaces the others: ami_name = clean_resource_name(\"...\"))", c.AMIName))
	}
	if n := utf8.RuneCountInString(c.AMIDescription); n > maxDescription && known(c.AMIDescription) && !strings.Contains(c.AMIDescription, "{{") {
		errs = append(errs, fmt.Errorf("ami_description: %d characters; AWS takes an AMI description of at most %d: shorten it", n, maxDescription))
	}
	if c.SourceAMI == "" && c.SourceAMIFilter.Empty() {
		errs = append(errs, errors.New(`source_ami: not set; set source_ami = "ami-…" or a source_ami_filter { filters = {…} owners = [...] }`))
	}
	if c.SourceAMI != "" && known(c.SourceAMI) && !ebs.ValidAMIID(c.SourceAMI) {
		errs = append(errs, fmt.Errorf("source_ami: %q is not an AMI ID; use an ID such as \"ami-0a1b2c3d4e5f60001\", or find the image with source_ami_filter", c.SourceAMI))
	}
	if c.SourceAMI != "" && !c.SourceAMIFilter.Empty() {
		errs = append(errs, errors.New("source_ami, source_ami_filter: both set; keep one"))
	}
	if err := c.SourceAMIFilter.Validate("source_ami_filter"); err != nil {
		errs = append(errs, err)
	}
	if c.DeprecateAt != "" && known(c.DeprecateAt) {
		t, err := time.Parse(time.RFC3339, c.DeprecateAt)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("deprecate_at: %q is not an RFC 3339 time; use e.g. \"2030-01-02T15:04:05Z\"", c.DeprecateAt))
		case !t.After(time.Now()):
			errs = append(errs, fmt.Errorf("deprecate_at: %q is in the past; use a future time", c.DeprecateAt))
		case t.After(time.Now().AddDate(10, 0, 0)):
			errs = append(errs, fmt.Errorf("deprecate_at: %q is more than 10 years ahead, AWS's limit for a deprecation time; use an earlier time", c.DeprecateAt))
		default:
			c.deprecateAt = t
		}
	}
	if c.DeregistrationProtection.WithCooldown {
		c.DeregistrationProtection.Enabled = true
	}
	if c.ForceDeleteSnapshot && !c.ForceDeregister {
		errs = append(errs, errors.New("force_delete_snapshot: set without force_deregister; it deletes the snapshots of an AMI force_deregister removes: add force_deregister = true or remove it"))
	}
	switch c.AMIVirtType {
	case "", "hvm", "paravirtual":
	default:
		errs = append(errs, fmt.Errorf("ami_virtualization_type: %q is not a virtualization type; use \"hvm\" or \"paravirtual\"", c.AMIVirtType))
	}
	if (c.AMIENASupport.True() || c.AMISriovNetSupport) && c.AMIVirtType == "paravirtual" {
		errs = append(errs, errors.New("ena_support, sriov_support: enhanced networking needs an hvm AMI, but ami_virtualization_type is \"paravirtual\"; remove one of them"))
	}
	if c.AMIIMDSSupport != "" && c.AMIIMDSSupport != "v2.0" {
		errs = append(errs, fmt.Errorf("imds_support: %q is not an IMDS support value; use \"v2.0\" (instances of the AMI require IMDSv2) or leave it unset", c.AMIIMDSSupport))
	}
	for _, pc := range c.AMIProductCodes {
		if !productCodePattern.MatchString(pc) {
			errs = append(errs, fmt.Errorf("ami_product_codes: %q is not a product code; use the code AWS Marketplace gave, e.g. \"1abc2defghijklm3nopqrs4tu\"", pc))
		}
	}
	if d := c.SnapshotCopyDurationMinutes; d != 0 && (d < 15 || d > 2880 || d%15 != 0) {
		errs = append(errs, fmt.Errorf("snapshot_copy_duration_minutes: %d is out of range; use 15 to 2880 minutes in steps of 15", d))
	}
	if c.SnapshotCopyDurationMinutes != 0 && len(c.AMIRegions) == 0 {
		errs = append(errs, errors.New("snapshot_copy_duration_minutes: set without ami_regions; it bounds the copies to ami_regions: add regions or remove it"))
	}
	if c.SkipSaveBuildRegion && len(c.AMIRegions) == 0 && !c.SkipCreateAMI {
		errs = append(errs, errors.New("skip_save_build_region: set without ami_regions; no AMI would be kept anywhere: add ami_regions or remove it"))
	}
	for i, bd := range c.AMIMappings {
		errs = append(errs, c.prepareBlockDevice(fmt.Sprintf("ami_block_device_mappings[%d]", i), bd, false)...)
	}
	return errs
}

var productCodePattern = regexp.MustCompile(`^[a-z0-9]{10,32}$`)

func (c *Config) prepareSharing() []error {
	var errs []error
	for _, u := range c.AMIUsers {
		if known(u) && !ebs.ValidAccountID(u) {
			errs = append(errs, fmt.Errorf("ami_users: %q is not an AWS account ID; use the 12-digit account number, e.g. \"222222222222\"", u))
		}
	}
	for _, u := range c.SnapshotUsers {
		if known(u) && !ebs.ValidAccountID(u) {
			errs = append(errs, fmt.Errorf("snapshot_users: %q is not an AWS account ID; use the 12-digit account number, e.g. \"222222222222\"", u))
		}
	}
	for _, a := range c.AMIOrgArns {
		if known(a) && !ebs.ValidOrgARN(a) {
			errs = append(errs, fmt.Errorf("ami_org_arns: %q is not an organization ARN; use arn:aws:organizations::ACCOUNT:organization/o-…", a))
		}
	}
	for _, a := range c.AMIOuArns {
		if known(a) && !ebs.ValidOUARN(a) {
			errs = append(errs, fmt.Errorf("ami_ou_arns: %q is not an organizational unit ARN; use arn:aws:organizations::ACCOUNT:ou/o-…/ou-…", a))
		}
	}
	return errs
}

func (c *Config) prepareBlockDevice(field string, bd BlockDevice, launch bool) []error {
	var errs []error
	switch {
	case bd.DeviceName == "":
		errs = append(errs, fmt.Errorf("%s.device_name: not set; name the device, e.g. \"/dev/xvdb\"", field))
	case !known(bd.DeviceName) || deviceNamePattern.MatchString(bd.DeviceName):
	case bareDeviceNamePattern.MatchString(bd.DeviceName) && c.Comm.Type == "winrm":
		// Windows AMIs name their extra devices xvdb… without /dev/.
	case bareDeviceNamePattern.MatchString(bd.DeviceName):
		errs = append(errs, fmt.Errorf("%s.device_name: %q has no /dev/ prefix; a Linux guest names it /dev/%s: use \"/dev/%s\" (bare names such as xvdf are for Windows AMIs, built with communicator = \"winrm\")", field, bd.DeviceName, bd.DeviceName, bd.DeviceName))
	default:
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
	if bd.Throughput != 0 && bd.VolumeType != "gp3" {
		errs = append(errs, fmt.Errorf("%s.throughput: set for a %q volume; throughput applies to gp3 only: set volume_type = \"gp3\" or remove it", field, bd.VolumeType))
	}
	if bd.VirtualName != "" && !strings.HasPrefix(bd.VirtualName, "ephemeral") {
		errs = append(errs, fmt.Errorf("%s.virtual_name: %q is not an instance store name; use ephemeral0, ephemeral1, …", field, bd.VirtualName))
	}
	return errs
}
