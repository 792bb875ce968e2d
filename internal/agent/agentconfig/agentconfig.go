// Package agentconfig is the schema of /etc/amicrypt/instance-store.json,
// the file amicrypt-agent reads at every boot and the
// amicrypt-instance-store provisioner writes into the image: one struct, its
// defaults and its validation, shared by both. It imports nothing but the
// standard library, so the agent's static binary stays small and the
// provisioner can't write a config the agent refuses.
package agentconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// DefaultPath is where the provisioner writes the config and where the agent
// reads it unless told otherwise.
const DefaultPath = "/etc/amicrypt/instance-store.json"

// Layouts.
const (
	LayoutSingle = "single" // one disk, one volume
	LayoutEach   = "each"   // every disk its own volume, mounted at MOUNT_POINT/N
	LayoutRAID0  = "raid0"  // all disks striped into one md array, one volume
)

// Defaults of the optional fields.
const (
	DefaultLayout     = LayoutSingle
	DefaultMountPoint = "/mnt/instance-store"
	DefaultFilesystem = "ext4"
	DefaultKMSTimeout = 60 * time.Second
	DefaultName       = "amicrypt"
)

// Bounds of kms_timeout and of the encryption context (KMS's own limits).
const (
	MinKMSTimeout      = time.Second
	MaxKMSTimeout      = time.Hour
	MaxContextKeyLen   = 256
	MaxContextValueLen = 1024
)

// ReservedContextPrefix starts the encryption context keys the agent sets
// itself (amicrypt:instance-arn, amicrypt:luks-uuid); users can't set them.
const ReservedContextPrefix = "amicrypt:"

// Config is the agent's config file. It never holds key material: the data
// keys live wrapped in each disk's LUKS2 header.
type Config struct {
	// KMSKeyID is the KMS key that wraps new disks' keys: a key ID, key ARN,
	// alias name or alias ARN. An alias name resolves in the account and
	// region the instance runs in.
	KMSKeyID string `json:"kms_key_id"`
	// Devices lists the disks to encrypt; empty means every NVMe instance
	// store disk (model "Amazon EC2 NVMe Instance Storage").
	Devices []string `json:"devices,omitempty"`
	// Layout is single, each or raid0.
	Layout string `json:"layout,omitempty"`
	// MountPoint is where the volume is mounted (each: MountPoint/0, /1, …).
	MountPoint string `json:"mount_point,omitempty"`
	// Filesystem is ext4 or xfs.
	Filesystem string `json:"filesystem,omitempty"`
	// EncryptionContext adds keys to the KMS encryption context; keys
	// starting with "amicrypt:" are the agent's.
	EncryptionContext map[string]string `json:"encryption_context,omitempty"`
	// KMSTimeout is the total time the KMS calls of one run may take,
	// retries included ("60s"); then the agent fails closed.
	KMSTimeout Duration `json:"kms_timeout,omitempty"`
	// WipeForeign lets the agent reformat a disk that holds something else
	// than a blank disk or an amicrypt volume. Never a LUKS volume of ours.
	WipeForeign bool `json:"wipe_foreign,omitempty"`
	// Name prefixes the device-mapper names (/dev/mapper/NAME, NAME-0…).
	Name string `json:"name,omitempty"`
}

// Fields lists the config's JSON fields, for messages.
const Fields = "kms_key_id, devices, layout, mount_point, filesystem, encryption_context, kms_timeout, wipe_foreign, name"

// Duration is a time.Duration written as a Go duration string ("60s").
type Duration time.Duration

// UnmarshalJSON parses "90s", "2m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("kms_timeout: %s is not a duration string; write it like \"60s\" or \"2m\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("kms_timeout: %q is not a duration; write it like \"60s\" or \"2m\"", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration string: whole seconds as "90s" (as users
// write them), anything finer as Go prints it ("1.5s").
func (d Duration) MarshalJSON() ([]byte, error) {
	if v := time.Duration(d); v%time.Second == 0 {
		return json.Marshal(fmt.Sprintf("%ds", v/time.Second))
	}
	return json.Marshal(time.Duration(d).String())
}

// Load reads, defaults and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the agent config: %w (the amicrypt-instance-store provisioner writes it to %s)", err, DefaultPath)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse parses, defaults and validates a config. Unknown fields are errors:
// nothing but these settings (and never key material) belongs in the file.
func Parse(data []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w (fields: %s)", err, Fields)
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value; the config is one object")
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Marshal renders the config file: indented JSON and a final newline.
func (c Config) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the agent config: %w", err)
	}
	return append(data, '\n'), nil
}

// ApplyDefaults fills the optional fields left empty.
func (c *Config) ApplyDefaults() {
	if c.Layout == "" {
		c.Layout = DefaultLayout
	}
	if c.MountPoint == "" {
		c.MountPoint = DefaultMountPoint
	}
	if c.Filesystem == "" {
		c.Filesystem = DefaultFilesystem
	}
	if c.KMSTimeout == 0 {
		c.KMSTimeout = Duration(DefaultKMSTimeout)
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
}

var (
	dmNameRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$`)
	contextKeyRe = regexp.MustCompile(`^[\x21-\x7e][\x20-\x7e]*$`)
)

// ValidName reports whether name is a device-mapper name the agent uses:
// 1-64 letters, digits, '_', '.', '+' or '-', starting with a letter or digit.
func ValidName(name string) bool { return dmNameRe.MatchString(name) }

// ForbiddenMountTrees are the directories that may neither be the mount
// point nor hold it: the system owns them.
func ForbiddenMountTrees() []string { return []string{"/proc", "/sys", "/dev", "/run", "/boot"} }

// SystemDirs are the directories that may not be the mount point: a mount
// there would hide the system.
func SystemDirs() []string {
	return []string{"/", "/bin", "/etc", "/home", "/lib", "/lib64", "/root", "/sbin", "/usr", "/var"}
}

// Validate checks every field and returns every problem at once, each naming
// the field, the value and the fix.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.KMSKeyID == "" {
		add("kms_key_id: missing; set the KMS key that wraps the disks' keys, e.g. \"alias/amicrypt-instance-store\"")
	} else if err := ValidateKeyRef(c.KMSKeyID); err != nil {
		add("kms_key_id: %w", err)
	}
	switch c.Layout {
	case LayoutSingle, LayoutEach, LayoutRAID0:
	default:
		add("layout: %q is not a layout; use single (one disk), each (one volume per disk) or raid0 (all disks striped)", c.Layout)
	}
	seen := map[string]bool{}
	for i, d := range c.Devices {
		switch {
		case !filepath.IsAbs(d) || filepath.Clean(d) != d:
			add("devices[%d]: %q is not an absolute, clean device path like /dev/nvme1n1", i, d)
		case seen[d]:
			add("devices[%d]: %q is listed twice", i, d)
		}
		seen[d] = true
	}
	switch {
	case c.Layout == LayoutSingle && len(c.Devices) > 1:
		add("devices: layout single takes one device, got %d (%s); use layout each or raid0 for several", len(c.Devices), strings.Join(c.Devices, ", "))
	case c.Layout == LayoutRAID0 && len(c.Devices) == 1:
		add("devices: layout raid0 needs at least two devices, got %s; use layout single for one", c.Devices[0])
	}
	if err := validateMountPoint(c.MountPoint); err != nil {
		errs = append(errs, err)
	}
	switch c.Filesystem {
	case "ext4", "xfs":
	default:
		add("filesystem: %q is not supported; use ext4 or xfs", c.Filesystem)
	}
	for _, k := range slices.Sorted(maps.Keys(c.EncryptionContext)) {
		v := c.EncryptionContext[k]
		switch {
		case strings.HasPrefix(strings.ToLower(k), ReservedContextPrefix):
			add("encryption_context: key %q starts with %q, which the agent reserves for its own keys (amicrypt:instance-arn, amicrypt:luks-uuid); rename it", k, ReservedContextPrefix)
		case !contextKeyRe.MatchString(k) || len(k) > MaxContextKeyLen:
			add("encryption_context: key %q must be 1-%d printable ASCII characters, starting with a non-space", k, MaxContextKeyLen)
		case v == "" || len(v) > MaxContextValueLen:
			add("encryption_context: the value of %q must be 1-%d characters, got %d", k, MaxContextValueLen, len(v))
		}
	}
	if t := time.Duration(c.KMSTimeout); t < MinKMSTimeout || t > MaxKMSTimeout {
		add("kms_timeout: %s is out of range; use between %s and %s (default %s)", t, MinKMSTimeout, MaxKMSTimeout, DefaultKMSTimeout)
	}
	if !dmNameRe.MatchString(c.Name) {
		add("name: %q is not a device-mapper name; use 1-64 letters, digits, '_', '.', '+' or '-', starting with a letter or digit", c.Name)
	}
	return errors.Join(errs...)
}

func validateMountPoint(mp string) error {
	if !filepath.IsAbs(mp) || filepath.Clean(mp) != mp {
		return fmt.Errorf("mount_point: %q is not an absolute, clean path like %s", mp, DefaultMountPoint)
	}
	if strings.ContainsAny(mp, " \t\n\\") {
		return fmt.Errorf("mount_point: %q contains whitespace or a backslash; use a plain path like %s", mp, DefaultMountPoint)
	}
	for _, tree := range ForbiddenMountTrees() {
		if mp == tree || strings.HasPrefix(mp, tree+"/") {
			return fmt.Errorf("mount_point: %q is under %s, which the system owns; use a directory of its own like %s", mp, tree, DefaultMountPoint)
		}
	}
	for _, d := range SystemDirs() {
		if mp == d {
			return fmt.Errorf("mount_point: %q would hide a system directory; use a directory of its own like %s", mp, DefaultMountPoint)
		}
	}
	return nil
}

const keyIDRE = `(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})`

// KeyIDPattern is the body of a KMS key ID (a UUID, or mrk- and 32 hex
// digits for a multi-Region key), for patterns that embed it.
const KeyIDPattern = keyIDRE

// These mirror the key reference syntax the rest of amicrypt accepts; the
// agent keeps its own copy so the static binary does not pull in the EC2 SDK.
var (
	keyIDPattern    = regexp.MustCompile(`^` + keyIDRE + `$`)
	keyARNPattern   = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z]{2}(?:-[a-z]+)+-\d{1,2}:\d{12}:key/` + keyIDRE + `$`)
	aliasNamePat    = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]{1,250}$`)
	aliasARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z]{2}(?:-[a-z]+)+-\d{1,2}:\d{12}:alias/[a-zA-Z0-9/_-]{1,250}$`)
)

// ValidateKeyRef checks the syntax of a key ID, key ARN, alias name or alias
// ARN, and refuses AWS-managed aliases (only AWS services may use them).
func ValidateKeyRef(ref string) error {
	switch {
	case keyIDPattern.MatchString(ref), keyARNPattern.MatchString(ref):
		return nil
	case aliasNamePat.MatchString(ref), aliasARNPattern.MatchString(ref):
		if strings.HasPrefix(ref[strings.Index(ref, "alias/"):], "alias/aws/") {
			return fmt.Errorf("%q is an AWS managed key, which only AWS services may use; create a customer managed key and give its alias", ref)
		}
		return nil
	}
	return fmt.Errorf("%q is not a KMS key reference; use a key ID (1234abcd-12ab-34cd-56ef-1234567890ab or mrk-…), "+
		"a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), an alias name (alias/NAME) or an alias ARN (arn:aws:kms:REGION:ACCOUNT:alias/NAME)", ref)
}
