//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config
// packer-sdc struct-markdown finds the project root by a parent directory
// named packer-plugin-* and loops forever without one, so it runs through a
// symlink with that name.
//go:generate sh -c "ln -sfn \"$(dirname $(go env GOMOD))\" \"${TMPDIR:-/tmp}/packer-plugin-amicrypt\" && cd \"${TMPDIR:-/tmp}/packer-plugin-amicrypt/provisioner/instancestore\" && go tool packer-sdc struct-markdown"

package instancestore

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/agentconfig"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// Config is the amicrypt-instance-store configuration. Every field but
// `architecture`, `skip_self_test`, `use_sudo` and `required_by` goes into the
// agent's config file, /etc/amicrypt/instance-store.json.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// The KMS key that wraps each instance-store disk's key: key ID, key ARN,
	// alias name or alias ARN. Prefer an alias name: it resolves in the
	// account and region each instance runs in, so the copies amicrypt-copy
	// makes in other accounts and regions work unchanged with each account's
	// own key of that alias. A key or alias ARN pins one account and region.
	// AWS-managed keys (`alias/aws/...`) are refused.
	KmsKeyID string `mapstructure:"kms_key_id" required:"true"`
	// The disks to encrypt, e.g. `["/dev/nvme1n1"]`. Empty (the default):
	// every NVMe instance-store disk the instance has (model `Amazon EC2 NVMe
	// Instance Storage`), found at each boot, which is what you want unless
	// the instance type has no NVMe instance store.
	Devices []string `mapstructure:"devices" required:"false"`
	// How the disks become volumes: `single` (one disk; the default),
	// `each` (one volume per disk, mounted at `MOUNT_POINT/0`, `/1`, …) or
	// `raid0` (all disks striped into one md array, one volume).
	Layout string `mapstructure:"layout" required:"false"`
	// Where the volume is mounted. Absolute; not `/`, not a system directory
	// such as `/usr` or `/var`, and not under `/proc`, `/sys`, `/dev`, `/run`
	// or `/boot`. Defaults to `/mnt/instance-store`.
	MountPoint string `mapstructure:"mount_point" required:"false"`
	// The filesystem made on a new volume: `ext4` (default) or `xfs`.
	Filesystem string `mapstructure:"filesystem" required:"false"`
	// Extra KMS encryption-context pairs bound to every disk key, e.g.
	// `{ team = "payments" }`. They are not secret: CloudTrail records them.
	// Keys starting with `amicrypt:` are the agent's own (`amicrypt:instance-arn`,
	// `amicrypt:luks-uuid`); keys and values must not be empty.
	EncryptionContext map[string]string `mapstructure:"encryption_context" required:"false"`
	// How long the KMS calls of one boot may take in all, retries included,
	// as a duration between `1s` and `1h`. After that nothing is mounted and
	// the unit fails. Defaults to `60s`.
	KMSTimeout string `mapstructure:"kms_timeout" required:"false"`
	// Let the agent reformat a disk holding something else than a blank disk
	// or an amicrypt volume (another filesystem, LUKS without amicrypt's
	// token). Off by default: such a disk is refused and left untouched. An
	// amicrypt volume is never reformatted, whatever this says.
	WipeForeign bool `mapstructure:"wipe_foreign" required:"false"`
	// The device-mapper name (prefix) of the volumes: `/dev/mapper/NAME`,
	// `NAME-0`, …. Defaults to `amicrypt`. (Not `name`: in a `provisioner`
	// block, Packer keeps `name` for itself, as the provisioner's display
	// name.)
	MapperName string `mapstructure:"mapper_name" required:"false"`
	// systemd units that use the mount, e.g. `["postgresql.service"]`. The
	// agent's unit is ordered before them and they require it, so when the
	// disks could not be unlocked they don't start, and don't write into the
	// bare mount-point directory on the root volume instead.
	RequiredBy []string `mapstructure:"required_by" required:"false"`
	// The image's architecture, `amd64` or `arm64`, which picks the agent
	// binary to upload. Defaults to what `uname -m` says on the build
	// instance.
	Architecture string `mapstructure:"architecture" required:"false"`
	// Skip the self-test of cryptsetup and dm-crypt on the build instance,
	// for images built where loop devices are unavailable (containers,
	// chroots without /dev/loop-control). The image is then first tested
	// by its first boot.
	SkipSelfTest bool `mapstructure:"skip_self_test" required:"false"`
	// Run the privileged commands through `sudo -n`, as a non-root SSH user
	// must. Defaults to `true`; set it to `false` when the communicator
	// already runs as root.
	UseSudo *bool `mapstructure:"use_sudo" required:"false"`

	kmsTimeout time.Duration
	ctx        interpolate.Context
}

// Limits the agent enforces (agentconfig), checked here so `packer validate`
// refuses what the agent would refuse at boot.
const (
	minKMSTimeout       = agentconfig.MinKMSTimeout
	maxKMSTimeout       = agentconfig.MaxKMSTimeout
	maxContextKeyLen    = agentconfig.MaxContextKeyLen
	maxContextValueLen  = agentconfig.MaxContextValueLen
	unitStartTimeMargin = 15 * time.Minute // luksFormat, mkfs, mdadm after the KMS calls
)

var (
	contextKeyPattern = regexp.MustCompile(`^[\x21-\x7e][\x20-\x7e]*$`)
	unitNamePattern   = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|mount|automount|timer|path|slice|scope)$`)
)

// Prepare decodes and validates the configuration. It runs nothing remote
// and calls no AWS API; every problem is reported at once, naming the field,
// the value and the fix.
func (c *Config) Prepare(raws ...interface{}) error {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         "amicrypt-instance-store",
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...)
	if err != nil {
		return err
	}
	c.applyDefaults()
	var errs []error
	errs = append(errs, c.prepareKey()...)
	errs = append(errs, c.prepareDisks()...)
	errs = append(errs, c.prepareMount()...)
	errs = append(errs, c.prepareContext()...)
	errs = append(errs, c.prepareBoot()...)
	errs = append(errs, c.prepareBuild()...)
	if len(errs) == 0 {
		// The checks above speak Packer's language; the agent's own
		// validation of the file it will read is the last word, so no image
		// ever gets a config its agent refuses at boot.
		ac := c.AgentConfig()
		if err := ac.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("amicrypt-agent would refuse the config file this gives: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) applyDefaults() {
	if c.Layout == "" {
		c.Layout = DefaultLayout
	}
	if c.MountPoint == "" {
		c.MountPoint = DefaultMountPoint
	}
	if c.Filesystem == "" {
		c.Filesystem = DefaultFilesystem
	}
	if c.KMSTimeout == "" {
		c.KMSTimeout = DefaultKMSTimeout
	}
	if c.MapperName == "" {
		c.MapperName = DefaultName
	}
	if c.UseSudo == nil {
		useSudo := true
		c.UseSudo = &useSudo
	}
}

func (c *Config) prepareKey() []error {
	if c.KmsKeyID == "" {
		return []error{errors.New(`kms_key_id: not set; amicrypt-agent wraps each instance-store disk's key under this KMS key at boot: ` +
			`set kms_key_id = "alias/NAME" (resolved in the account and region each instance runs in), or a key ID or ARN`)}
	}
	ref, err := ebs.ParseKeyRef(c.KmsKeyID)
	if err != nil {
		return []error{fmt.Errorf("kms_key_id: %w", err)}
	}
	if ref.AWSManagedAlias() {
		return []error{fmt.Errorf("kms_key_id: %q is an AWS-managed key; only the AWS service it belongs to may use it, in its own account, "+
			"and its key policy can't be changed, so the instance role can't be let use it, nor be held to each instance's encryption context, "+
			"and no other account's copy of the image could ever use it: create a customer-managed key and give its alias, e.g. \"alias/amicrypt-instance-store\"", c.KmsKeyID)}
	}
	return nil
}

func (c *Config) prepareDisks() []error {
	var errs []error
	switch c.Layout {
	case LayoutSingle, LayoutEach, LayoutRAID0:
	default:
		errs = append(errs, fmt.Errorf("layout: %q is not a layout; use %q (one disk), %q (one volume per disk) or %q (all disks striped into one volume)",
			c.Layout, LayoutSingle, LayoutEach, LayoutRAID0))
	}
	seen := map[string]bool{}
	for i, dev := range c.Devices {
		switch {
		case !strings.HasPrefix(dev, "/dev/") || filepath.Clean(dev) != dev:
			errs = append(errs, fmt.Errorf("devices[%d]: %q is not a device path; use a clean absolute path under /dev, e.g. \"/dev/nvme1n1\" (or leave devices empty to find every NVMe instance-store disk)", i, dev))
		case seen[dev]:
			errs = append(errs, fmt.Errorf("devices[%d]: %q is listed twice; list each disk once", i, dev))
		}
		seen[dev] = true
	}
	switch {
	case c.Layout == LayoutSingle && len(c.Devices) > 1:
		errs = append(errs, fmt.Errorf("devices: layout %q takes one disk, but %d are listed (%s); set layout = %q or %q for several",
			LayoutSingle, len(c.Devices), strings.Join(c.Devices, ", "), LayoutEach, LayoutRAID0))
	case c.Layout == LayoutRAID0 && len(c.Devices) == 1:
		errs = append(errs, fmt.Errorf("devices: layout %q stripes several disks, but only %q is listed; list them all, or set layout = %q",
			LayoutRAID0, c.Devices[0], LayoutSingle))
	}
	return errs
}

func (c *Config) prepareMount() []error {
	var errs []error
	mp := c.MountPoint
	switch {
	case !filepath.IsAbs(mp) || filepath.Clean(mp) != mp:
		errs = append(errs, fmt.Errorf("mount_point: %q is not a clean absolute path; use e.g. %q", mp, DefaultMountPoint))
	case strings.ContainsAny(mp, " \t\n\\"):
		errs = append(errs, fmt.Errorf("mount_point: %q contains whitespace or a backslash; use a plain path such as %q", mp, DefaultMountPoint))
	default:
		for _, tree := range agentconfig.ForbiddenMountTrees() {
			if mp == tree || strings.HasPrefix(mp, tree+"/") {
				errs = append(errs, fmt.Errorf("mount_point: %q is under %s, which the system owns; use a directory of its own such as %q", mp, tree, DefaultMountPoint))
			}
		}
		for _, dir := range agentconfig.SystemDirs() {
			if mp == dir {
				errs = append(errs, fmt.Errorf("mount_point: %q would hide a system directory; use a directory of its own such as %q", mp, DefaultMountPoint))
			}
		}
	}
	switch c.Filesystem {
	case "ext4", "xfs":
	default:
		errs = append(errs, fmt.Errorf("filesystem: %q is not supported; use \"ext4\" (the default) or \"xfs\"", c.Filesystem))
	}
	return errs
}

func (c *Config) prepareContext() []error {
	var errs []error
	keys := make([]string, 0, len(c.EncryptionContext))
	for k := range c.EncryptionContext {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c.EncryptionContext[k]
		switch {
		case strings.HasPrefix(strings.ToLower(k), ReservedContextPrefix):
			errs = append(errs, fmt.Errorf("encryption_context: key %q starts with %q, which amicrypt-agent reserves for the keys it sets itself "+
				"(amicrypt:instance-arn, amicrypt:luks-uuid); rename the key", k, ReservedContextPrefix))
		case k == "":
			errs = append(errs, errors.New("encryption_context: a key is empty; give every pair a non-empty key"))
		case len(k) > maxContextKeyLen || !contextKeyPattern.MatchString(k):
			errs = append(errs, fmt.Errorf("encryption_context: key %q is not 1-%d printable ASCII characters starting with a non-space; rename it", k, maxContextKeyLen))
		case v == "":
			errs = append(errs, fmt.Errorf("encryption_context: the value of %q is empty; give it a value or remove the pair", k))
		case len(v) > maxContextValueLen:
			errs = append(errs, fmt.Errorf("encryption_context: the value of %q is %d characters; shorten it to %d at most", k, len(v), maxContextValueLen))
		}
	}
	return errs
}

func (c *Config) prepareBoot() []error {
	var errs []error
	d, err := time.ParseDuration(c.KMSTimeout)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("kms_timeout: %q is not a duration; write it like \"60s\" or \"2m\"", c.KMSTimeout))
	case d < minKMSTimeout || d > maxKMSTimeout:
		errs = append(errs, fmt.Errorf("kms_timeout: %q is out of range; use between %s and %s (default %s)", c.KMSTimeout, minKMSTimeout, maxKMSTimeout, DefaultKMSTimeout))
	default:
		c.kmsTimeout = d
	}
	if !agentconfig.ValidName(c.MapperName) {
		errs = append(errs, fmt.Errorf("mapper_name: %q is not a device-mapper name; use 1-64 letters, digits, '_', '.', '+' or '-', starting with a letter or digit, e.g. %q", c.MapperName, DefaultName))
	}
	seen := map[string]bool{}
	for i, unit := range c.RequiredBy {
		switch {
		case unit == UnitName:
			errs = append(errs, fmt.Errorf("required_by[%d]: %q is the agent's own unit; list the units that use the mount", i, unit))
		case !unitNamePattern.MatchString(unit):
			errs = append(errs, fmt.Errorf("required_by[%d]: %q is not a systemd unit name; use the full name with its type, e.g. \"postgresql.service\"", i, unit))
		case seen[unit]:
			errs = append(errs, fmt.Errorf("required_by[%d]: %q is listed twice; list each unit once", i, unit))
		}
		seen[unit] = true
	}
	return errs
}

func (c *Config) prepareBuild() []error {
	switch c.Architecture {
	case "", ArchAMD64, ArchARM64:
		return nil
	}
	if arch, ok := unameArchitectures[c.Architecture]; ok {
		return []error{fmt.Errorf("architecture: %q is the kernel's name; use the Go name %q", c.Architecture, arch)}
	}
	return []error{fmt.Errorf("architecture: %q is not supported; use %q or %q, or leave it unset to ask the build instance (uname -m)", c.Architecture, ArchAMD64, ArchARM64)}
}

// useSudo reports whether privileged commands go through sudo.
func (c *Config) useSudo() bool { return c.UseSudo == nil || *c.UseSudo }

// AgentConfig is the agent's config file this configuration gives.
func (c *Config) AgentConfig() AgentConfig {
	return AgentConfig{
		KMSKeyID:          c.KmsKeyID,
		Devices:           c.Devices,
		Layout:            c.Layout,
		MountPoint:        c.MountPoint,
		Filesystem:        c.Filesystem,
		EncryptionContext: c.EncryptionContext,
		KMSTimeout:        agentconfig.Duration(c.kmsTimeout),
		WipeForeign:       c.WipeForeign,
		Name:              c.MapperName,
	}
}
