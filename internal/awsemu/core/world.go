package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/world"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsimple"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Quotas, from Options, enforced by the EC2 side:
//
//	e.opts.Limits.ConcurrentImageCopies    per destination account-region
//	e.opts.Limits.ConcurrentSnapshotCopies per destination account-region
//
// Over a quota: ResourceLimitExceeded.
// World is what a world file declares. The platform parses it (JSON or HCL)
// and ships the default one.
type World struct {
	Regions  []string       `json:"regions" hcl:"regions"`                                      // enabled regions
	Disabled []string       `json:"disabled_regions,omitempty" hcl:"disabled_regions,optional"` // known, not enabled (opt-in)
	Accounts []WorldAccount `json:"accounts" hcl:"account,block"`
	Images   []WorldImage   `json:"images" hcl:"image,block"`
}

// WorldAccount is one AWS account.
type WorldAccount struct {
	ID    string      `json:"id" hcl:"id,label"`
	Alias string      `json:"alias,omitempty" hcl:"alias,optional"` // "amazon" for the public AMIs' owner
	Users []WorldUser `json:"users" hcl:"user,block"`
	Roles []WorldRole `json:"roles" hcl:"role,block"`
	Keys  []WorldKey  `json:"keys" hcl:"key,block"`
	// InstanceProfiles pass a role to the instances launched with them.
	InstanceProfiles []WorldInstanceProfile `json:"instance_profiles,omitempty" hcl:"instance_profile,block"`
	// EBSEncryptionByDefault per region ("*" for all).
	EBSEncryptionByDefault []string `json:"ebs_encryption_by_default,omitempty" hcl:"ebs_encryption_by_default,optional"`
}

// WorldUser is an IAM user with an access key.
type WorldUser struct {
	Name      string   `json:"name" hcl:"name,label"`
	AccessKey string   `json:"access_key" hcl:"access_key"`
	SecretKey string   `json:"secret_key" hcl:"secret_key"`
	Deny      []string `json:"deny,omitempty" hcl:"deny,optional"` // IAM actions denied, e.g. "kms:CreateGrant", "ec2:CopyImage", wildcards allowed
	// Policies are the user's identity policies (JSON documents). With
	// none, the user may do everything its deny list does not name; with
	// some, only what they allow (an explicit Deny wins).
	Policies []string `json:"policies,omitempty" hcl:"policies,optional"`
}

// WorldRole is an IAM role and its trust.
type WorldRole struct {
	Name       string   `json:"name" hcl:"name,label"`
	TrustedBy  []string `json:"trusted" hcl:"trusted"` // account IDs, principal ARNs or service principals (ec2.amazonaws.com) allowed to assume it
	ExternalID string   `json:"external_id,omitempty" hcl:"external_id,optional"`
	Deny       []string `json:"deny,omitempty" hcl:"deny,optional"`
	Policies   []string `json:"policies,omitempty" hcl:"policies,optional"` // as WorldUser.Policies
}

// WorldInstanceProfile is an instance profile and the role of its account
// that it passes to instances.
type WorldInstanceProfile struct {
	Name string `json:"name" hcl:"name,label"`
	Role string `json:"role" hcl:"role"` // role name in the same account
}

// WorldKey is a customer-managed KMS key.
type WorldKey struct {
	ID          string   `json:"id,omitempty" hcl:"id,optional"` // generated when empty
	Region      string   `json:"region" hcl:"region"`
	Aliases     []string `json:"aliases" hcl:"aliases,optional"`         // "alias/x"
	Policy      string   `json:"policy,omitempty" hcl:"policy,optional"` // JSON; default: the account root may do everything
	State       string   `json:"state,omitempty" hcl:"state,optional"`   // default Enabled
	MultiRegion bool     `json:"multi_region,omitempty" hcl:"multi_region,optional"`
	// ReplicaRegions of a multi-region key: the same mrk- key ID and key
	// material in each, so data encrypted in one region decrypts in another.
	ReplicaRegions []string `json:"replica_regions,omitempty" hcl:"replica_regions,optional"`
}

// WorldImage is a public (or private) source AMI and its snapshots.
type WorldImage struct {
	ID                 string `json:"id" hcl:"id,label"`
	Owner              string `json:"owner" hcl:"owner"` // account ID
	Region             string `json:"region" hcl:"region"`
	Name               string `json:"name" hcl:"name"`
	Description        string `json:"description,omitempty" hcl:"description,optional"`
	Public             bool   `json:"public" hcl:"public,optional"`
	Architecture       string `json:"architecture" hcl:"architecture,optional"` // x86_64
	VirtualizationType string `json:"virtualization_type" hcl:"virtualization_type,optional"`
	RootDeviceName     string `json:"root_device_name" hcl:"root_device_name,optional"`
	EnaSupport         bool   `json:"ena_support" hcl:"ena_support,optional"`
	SriovNetSupport    string `json:"sriov_net_support,omitempty" hcl:"sriov_net_support,optional"`
	BootMode           string `json:"boot_mode,omitempty" hcl:"boot_mode,optional"`
	TpmSupport         string `json:"tpm_support,omitempty" hcl:"tpm_support,optional"`
	ImdsSupport        string `json:"imds_support,omitempty" hcl:"imds_support,optional"`
	// Platform is "windows" for a Windows AMI; empty is Linux/UNIX
	// (DescribeImages: Platform, PlatformDetails, UsageOperation).
	Platform string            `json:"platform,omitempty" hcl:"platform,optional"`
	Tags     map[string]string `json:"tags,omitempty" hcl:"tags,optional"`
	Volumes  []WorldVolume     `json:"volumes" hcl:"volume,block"`
}

// WorldVolume is one EBS block device of a world image, backed by a snapshot.
type WorldVolume struct {
	DeviceName string `json:"device_name" hcl:"device_name,label"`
	SnapshotID string `json:"snapshot_id" hcl:"snapshot_id"`
	SizeGiB    int    `json:"size_gib" hcl:"size_gib"`
	VolumeType string `json:"volume_type,omitempty" hcl:"volume_type,optional"`
	// Iops and Throughput (MiB/s) default to gp3's baseline, 3000 and 125,
	// for a gp3 volume, as AWS shows them on its public AMIs.
	Iops       int    `json:"iops,omitempty" hcl:"iops,optional"`
	Throughput int    `json:"throughput,omitempty" hcl:"throughput,optional"`
	Encrypted  bool   `json:"encrypted,omitempty" hcl:"encrypted,optional"`
	KmsKey     string `json:"kms_key,omitempty" hcl:"kms_key,optional"` // key ARN when encrypted
}

// Platform helpers the EC2 side may call, all with the emulator lock held
// (platform files: emulator.go, iam.go, kms.go, audit.go, faults.go):
//
//	e.now() time.Time; e.latency(op, sizeGiB, crossRegion) time.Duration
//	e.faultFires(kind, action) bool      // filters by the call being handled
//	e.authorizeKeyUse(KeyUse) (KeyInfo, *APIError)
//	e.defaultEBSKey(account, region) KeyInfo  // alias/aws/ebs, created lazily
//	e.keyInfoByARN(arn) (KeyInfo, bool)
//	e.accountExists(id) bool; e.accountByAlias("amazon") (string, bool)
//	e.regionEnabled(region) bool; e.regionKnown(region) bool
//	e.ebsByDefault(account, region) bool  // the world's setting
//	e.iamAllowed(c, "ec2:CopyImage") bool // the caller's IAM deny list
//	e.principalAllowed(principalIAM, action) bool
//	e.liveGrants() []GrantInfo            // live KMS grants, for the checker
//	e.auditEntries(AuditFilter) []AuditEntry; e.callCounts(AuditFilter) []CallCount
//	e.opts.Limits.ConcurrentImageCopies / ConcurrentSnapshotCopies (defaults 50 / 20)
//
// The checker may implement, for GET /_emu/check (lock held):
//
//	func (e *Emulator) checkHTTP(q url.Values) (any, error)

// DefaultWorld returns a fresh copy of the embedded default world.
func DefaultWorld() (*World, error) {
	return ParseWorld("default.json", world.DefaultJSON())
}

// LoadWorld reads a world file: HCL when its name ends in .hcl, else JSON.
func LoadWorld(path string) (*World, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading world file: %w", err)
	}
	return ParseWorld(path, data)
}

// ParseWorld parses a world file. filename picks the syntax (.hcl: HCL,
// otherwise JSON) and names the file in errors. HCL files may call
// jsonencode() to write key policies.
func ParseWorld(filename string, data []byte) (*World, error) {
	var w World
	if strings.EqualFold(filepath.Ext(filename), ".hcl") {
		ctx := &hcl.EvalContext{Functions: map[string]function.Function{"jsonencode": stdlib.JSONEncodeFunc}}
		if err := hclsimple.Decode(filename, data, ctx, &w); err != nil {
			return nil, fmt.Errorf("world file %s: %w", filename, err)
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&w); err != nil {
			return nil, fmt.Errorf("world file %s: %w", filename, err)
		}
	}
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("world file %s: %w", filename, err)
	}
	return &w, nil
}

var (
	accountIDRe = regexp.MustCompile(`^[0-9]{12}$`)
	accessKeyRe = regexp.MustCompile(`^AKIA[A-Z0-9]{12,124}$`)
	regionRe    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	nameRe      = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
)

// Validate reports the first problem in the world, naming the field, the
// value and what is expected.
func (w *World) Validate() error {
	enabled, err := w.validateRegions()
	if err != nil {
		return err
	}
	accounts := map[string]bool{}
	accessKeys := map[string]bool{}
	for i, a := range w.Accounts {
		where := fmt.Sprintf("accounts[%d]", i)
		if !accountIDRe.MatchString(a.ID) {
			return fmt.Errorf("%s.id: %q is not a 12-digit account ID", where, a.ID)
		}
		if accounts[a.ID] {
			return fmt.Errorf("%s.id: account %s is declared twice", where, a.ID)
		}
		accounts[a.ID] = true
		if err := validateUsers(where, a.Users, accessKeys); err != nil {
			return err
		}
		if err := validateRoles(where, a); err != nil {
			return err
		}
		if err := w.validateKeys(where, a.Keys, enabled); err != nil {
			return err
		}
		for _, r := range a.EBSEncryptionByDefault {
			if r != "*" && !enabled[r] {
				return fmt.Errorf("%s.ebs_encryption_by_default: %q is neither \"*\" nor an enabled region", where, r)
			}
		}
	}
	return w.validateImages(accounts, enabled)
}

// validateRegions checks regions and disabled_regions and returns the set of
// enabled regions.
func (w *World) validateRegions() (map[string]bool, error) {
	if len(w.Regions) == 0 {
		return nil, fmt.Errorf("regions: at least one enabled region is required, e.g. regions = [\"us-east-1\"]")
	}
	enabled := map[string]bool{}
	for _, r := range w.Regions {
		if !regionRe.MatchString(r) {
			return nil, fmt.Errorf("regions: %q is not a region name like us-east-1", r)
		}
		enabled[r] = true
	}
	for _, r := range w.Disabled {
		if !regionRe.MatchString(r) {
			return nil, fmt.Errorf("disabled_regions: %q is not a region name like ap-southeast-3", r)
		}
		if enabled[r] {
			return nil, fmt.Errorf("disabled_regions: %q is also in regions; a region is either enabled or not", r)
		}
	}
	return enabled, nil
}

// validateUsers checks an account's users; accessKeys collects the keys seen
// so far across every account, which must be unique.
func validateUsers(where string, users []WorldUser, accessKeys map[string]bool) error {
	for j, u := range users {
		uw := fmt.Sprintf("%s.users[%d]", where, j)
		if !nameRe.MatchString(u.Name) {
			return fmt.Errorf("%s.name: %q is not a valid IAM user name", uw, u.Name)
		}
		if !accessKeyRe.MatchString(u.AccessKey) {
			return fmt.Errorf("%s.access_key: %q must be AKIA followed by at least 12 capital letters or digits", uw, u.AccessKey)
		}
		if accessKeys[u.AccessKey] {
			return fmt.Errorf("%s.access_key: %q is used twice; access keys are unique", uw, u.AccessKey)
		}
		accessKeys[u.AccessKey] = true
		if u.SecretKey == "" {
			return fmt.Errorf("%s.secret_key: empty; every user needs a secret key", uw)
		}
		for k, doc := range u.Policies {
			if _, err := ParseIdentityPolicy(doc); err != nil {
				return fmt.Errorf("%s.policies[%d]: %w", uw, k, err)
			}
		}
	}
	return nil
}

// validateRoles checks an account's roles and the instance profiles that
// name them.
func validateRoles(where string, a WorldAccount) error {
	roles := map[string]bool{}
	for j, r := range a.Roles {
		rw := fmt.Sprintf("%s.roles[%d]", where, j)
		if !nameRe.MatchString(r.Name) {
			return fmt.Errorf("%s.name: %q is not a valid IAM role name", rw, r.Name)
		}
		for k, doc := range r.Policies {
			if _, err := ParseIdentityPolicy(doc); err != nil {
				return fmt.Errorf("%s.policies[%d]: %w", rw, k, err)
			}
		}
		for _, t := range r.TrustedBy {
			if !accountIDRe.MatchString(t) && !strings.HasPrefix(t, "arn:aws:") && !strings.HasSuffix(t, ".amazonaws.com") {
				return fmt.Errorf("%s.trusted: %q must be an account ID, a principal ARN or a service principal such as ec2.amazonaws.com", rw, t)
			}
		}
		roles[r.Name] = true
	}
	for j, p := range a.InstanceProfiles {
		pw := fmt.Sprintf("%s.instance_profiles[%d]", where, j)
		if !nameRe.MatchString(p.Name) {
			return fmt.Errorf("%s.name: %q is not a valid instance profile name", pw, p.Name)
		}
		if !roles[p.Role] {
			return fmt.Errorf("%s.role: %q is not a role of account %s; declare it with role %q { ... }", pw, p.Role, a.ID, p.Role)
		}
	}
	return nil
}

// validateKeys checks an account's KMS keys against the enabled regions.
func (w *World) validateKeys(where string, keys []WorldKey, enabled map[string]bool) error {
	for j, k := range keys {
		kw := fmt.Sprintf("%s.keys[%d]", where, j)
		if !enabled[k.Region] {
			return fmt.Errorf("%s.region: %q is not an enabled region of this world (%s)", kw, k.Region, strings.Join(w.Regions, ", "))
		}
		for _, al := range k.Aliases {
			if !strings.HasPrefix(al, "alias/") || strings.HasPrefix(al, "alias/aws/") {
				return fmt.Errorf("%s.aliases: %q must start with alias/ and not alias/aws/", kw, al)
			}
		}
		for _, r := range k.ReplicaRegions {
			if !k.MultiRegion {
				return fmt.Errorf("%s.replica_regions: only a multi_region key has replicas; set multi_region = true", kw)
			}
			if !enabled[r] || r == k.Region {
				return fmt.Errorf("%s.replica_regions: %q must be an enabled region other than the primary %s", kw, r, k.Region)
			}
		}
		switch k.State {
		case "", "Enabled", "Disabled", "PendingDeletion":
		default:
			return fmt.Errorf("%s.state: %q must be Enabled, Disabled or PendingDeletion", kw, k.State)
		}
		if k.Policy != "" {
			if _, err := ParsePolicy(k.Policy); err != nil {
				return fmt.Errorf("%s.policy: %w", kw, err)
			}
		}
	}
	return nil
}

// validateImages checks the seeded images against the world's accounts and
// enabled regions.
func (w *World) validateImages(accounts, enabled map[string]bool) error {
	for i, im := range w.Images {
		where := fmt.Sprintf("images[%d]", i)
		if !strings.HasPrefix(im.ID, "ami-") {
			return fmt.Errorf("%s.id: %q must start with ami-", where, im.ID)
		}
		if !accounts[im.Owner] {
			return fmt.Errorf("%s.owner: %q is not an account of this world", where, im.Owner)
		}
		if !enabled[im.Region] {
			return fmt.Errorf("%s.region: %q is not an enabled region of this world", where, im.Region)
		}
		if im.Platform != "" && im.Platform != "windows" {
			return fmt.Errorf("%s.platform: %q must be \"windows\" or empty (Linux/UNIX)", where, im.Platform)
		}
		if len(im.Volumes) == 0 {
			return fmt.Errorf("%s.volumes: an EBS-backed image needs at least one volume", where)
		}
		for j, v := range im.Volumes {
			if !strings.HasPrefix(v.SnapshotID, "snap-") {
				return fmt.Errorf("%s.volumes[%d].snapshot_id: %q must start with snap-", where, j, v.SnapshotID)
			}
			if v.SizeGiB <= 0 {
				return fmt.Errorf("%s.volumes[%d].size_gib: %d must be positive", where, j, v.SizeGiB)
			}
		}
	}
	return nil
}

// RegionEnabled reports whether region is enabled in the world.
func (w *World) RegionEnabled(region string) bool { return slices.Contains(w.Regions, region) }

// RegionKnown reports whether region is enabled or known but not enabled.
func (w *World) RegionKnown(region string) bool {
	return w.RegionEnabled(region) || slices.Contains(w.Disabled, region)
}
