//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config,TargetConfig,DeregistrationProtectionOptions
// packer-sdc struct-markdown finds the project root by a parent directory
// named packer-plugin-* and loops forever without one, so it runs through a
// symlink with that name.
//go:generate sh -c "ln -sfn \"$(dirname $(go env GOMOD))\" \"${TMPDIR:-/tmp}/packer-plugin-amicrypt\" && cd \"${TMPDIR:-/tmp}/packer-plugin-amicrypt/post-processor/copy\" && go tool packer-sdc struct-markdown"

package copy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// Defaults.
const (
	DefaultAMIName                 = "{{ .SourceAMIName }}-{{ .Account }}"
	DefaultDestinationCopyLimit    = 5
	DefaultGrantPropagationTimeout = 5 * time.Minute
	OnFailureRollback              = "rollback"
	OnFailureKeep                  = "keep"
)

// DeregistrationProtectionOptions turns on AMI deregistration protection for
// every copy, as in the Amazon plugin.
//
// ```hcl
//
//	deregistration_protection {
//	  enabled       = true
//	  with_cooldown = true
//	}
//
// ```
type DeregistrationProtectionOptions struct {
	// Protect every copy against deregistration.
	Enabled bool `mapstructure:"enabled"`
	// Keep the protection for 24 hours after it is disabled. Implies `enabled`.
	WithCooldown bool `mapstructure:"with_cooldown" required:"false"`
}

// TargetConfig is one `target` block: an account that gets its own copy,
// encrypted under its own key, in each of its regions. Fields left unset take
// the top-level value of the same name.
//
// ```hcl
//
//	target {
//	  account_id  = "444444444444"
//	  regions     = ["us-east-1", "eu-west-1"]
//	  external_id = "amicrypt-demo"
//	  kms_key_id  = "alias/amicrypt-target"
//	}
//
// ```
type TargetConfig struct {
	// The 12-digit ID of the account that receives copies.
	AccountID string `mapstructure:"account_id" required:"true"`
	// Regions of this account that receive a copy. Defaults to the top-level
	// `regions`, else to the region(s) of the source AMI.
	Regions []string `mapstructure:"regions" required:"false"`
	// The role amicrypt assumes in this account to copy. Defaults to
	// `arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME` with the top-level `role_name`.
	RoleARN string `mapstructure:"role_arn" required:"false"`
	// The external ID the role's trust policy requires, if any.
	ExternalID string `mapstructure:"external_id" required:"false"`
	// The key that encrypts this account's copies: an alias name
	// (`alias/amicrypt-target`, resolved in this account and each region), an
	// alias ARN or a key ARN owned by this account. Never the source
	// account's key.
	KmsKeyID string `mapstructure:"kms_key_id" required:"false"`
	// Per-region keys, region name to key; wins over `kms_key_id`.
	RegionKmsKeyIDs map[string]string `mapstructure:"region_kms_key_ids" required:"false"`
	// Account IDs in this account's organisation that may launch the copy.
	AMIUsers []string `mapstructure:"ami_users" required:"false"`
	// Organization ARNs that may launch the copy.
	AMIOrgArns []string `mapstructure:"ami_org_arns" required:"false"`
	// Organizational unit ARNs that may launch the copy.
	AMIOuArns []string `mapstructure:"ami_ou_arns" required:"false"`
}

// Config is the amicrypt-copy configuration.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`
	// The access settings of the account that owns the source AMI, with the
	// Amazon plugin's field names. `region` defaults to the source AMI's.
	awsauth.AccessConfig `mapstructure:",squash"`

	// Copy this AMI, which exists already, instead of the AMIs of the input
	// artifact: the ID of an AMI in `region` (then required) owned by the
	// source account. Run amicrypt-copy behind Packer's `null` builder
	// (`communicator = "none"`) to copy an AMI made earlier, or to finish the
	// copies of a failed run. Not with `source_ami_filter`, and not behind a
	// builder that makes AMIs.
	SourceAMI string `mapstructure:"source_ami" required:"false"`
	// Find the AMI to copy by filters in `region` (then required), as
	// amicrypt-ebs's `source_ami_filter` does, e.g. the newest AMI of the
	// source account with a name prefix: `owners = ["self"]`,
	// `most_recent = true`. Not with `source_ami`.
	SourceAMIFilter ebs.AMIFilter `mapstructure:"source_ami_filter" required:"false"`

	// One block per account that receives copies. At least one.
	Targets []TargetConfig `mapstructure:"target" required:"true"`
	// Default regions of every target.
	Regions []string `mapstructure:"regions" required:"false"`
	// Default role name of every target: the role assumed is
	// `arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME`.
	RoleName string `mapstructure:"role_name" required:"false"`
	// Default external ID of every target's role.
	ExternalID string `mapstructure:"external_id" required:"false"`
	// Default key of every target; an alias name is resolved in each target
	// account and region, so `alias/amicrypt-target` picks each account's own key.
	KmsKeyID string `mapstructure:"kms_key_id" required:"false"`
	// Default per-region keys of every target.
	RegionKmsKeyIDs map[string]string `mapstructure:"region_kms_key_ids" required:"false"`
	// Default `ami_users` of every target.
	AMIUsers []string `mapstructure:"ami_users" required:"false"`
	// Default `ami_org_arns` of every target.
	AMIOrgArns []string `mapstructure:"ami_org_arns" required:"false"`
	// Default `ami_ou_arns` of every target.
	AMIOuArns []string `mapstructure:"ami_ou_arns" required:"false"`

	// The name of each copy, a template with `{{ .SourceAMIName }}`,
	// `{{ .SourceAMI }}`, `{{ .Account }}`, `{{ .Region }}` and Packer's
	// functions such as `{{ timestamp }}`. Defaults to
	// `{{ .SourceAMIName }}-{{ .Account }}`.
	AMIName string `mapstructure:"ami_name" required:"false"`
	// The description of each copy, a template like `ami_name`. Defaults to
	// the source AMI's description.
	AMIDescription string `mapstructure:"ami_description" required:"false"`
	// Tags added to each copy, on top of the source AMI's own tags and the
	// provenance tags.
	Tags map[string]string `mapstructure:"tags" required:"false"`
	// Tags added to each copy's snapshots, on top of the source's tags and
	// the provenance tags.
	SnapshotTags map[string]string `mapstructure:"snapshot_tags" required:"false"`
	// When the copies become deprecated, RFC 3339 (`2027-01-01T00:00:00Z`).
	DeprecateAt string `mapstructure:"deprecate_at" required:"false"`
	// Deregistration protection of the copies.
	DeregistrationProtection DeregistrationProtectionOptions `mapstructure:"deregistration_protection" required:"false"`

	// An optional cap on how many copies run at once in all. Unset by
	// default: copies are bounded only by what AWS bounds, the concurrent
	// AMI copy quota of each destination account-region
	// (`destination_copy_limit`) and the request rates (the SDK's adaptive
	// retryer, `max_retries`). Set it to spread a run out on purpose.
	CopyConcurrency int `mapstructure:"copy_concurrency" required:"false"`
	// How many copies run at once in one account-region, below the
	// concurrent AMI copy quota. Defaults to 5.
	DestinationCopyLimit int `mapstructure:"destination_copy_limit" required:"false"`
	// What happens to the copies made when any copy fails or the run is
	// interrupted: `rollback` (default) deregisters them and deletes their
	// snapshots; `keep` keeps and reports them.
	OnFailure string `mapstructure:"on_failure" required:"false"`
	// A JSON file listing every copy, successful or not, with its reason.
	ManifestOutput string `mapstructure:"manifest_output" required:"false"`
	// How long a new grant on a source key may take to work in a target
	// account (AWS: up to about five minutes). Defaults to `5m`.
	GrantPropagationTimeout string `mapstructure:"grant_propagation_timeout" required:"false"`
	// How long this run's claim on what it lends (grants on the source
	// keys, launch and createVolume permissions) lasts without renewal: a
	// live run renews it every fifth of this. A run killed outright (`kill
	// -9`, a lost runner) can't take back what it lent; the next
	// amicrypt-copy run from the same source account does, once this has
	// passed since the dead run's last renewal. Between `5s` and `1h`;
	// defaults to `5m`. Shorter bounds how long a dead run's grants stay;
	// too short, and a live run whose renewals are held up (throttling, a
	// network outage) is taken for dead: it then stops.
	LeaseDuration string `mapstructure:"lease_duration" required:"false"`

	// A customer-managed key of the source account. When the source AMI is
	// under an AWS-managed key, which can't be shared, it is first
	// re-encrypted in the source account under this key; the transit copy is
	// deleted at the end.
	TransitKmsKeyID string `mapstructure:"transit_kms_key_id" required:"false"`
	// Let each target account's `AWSServiceRoleForAutoScaling` use the
	// target key, through a grant made in that account, so Auto Scaling
	// launches don't end in `Client.InternalError: Client error on launch`.
	GrantAutoscalingRole bool `mapstructure:"grant_autoscaling_role" required:"false"`
	// Create the target key and its alias where the alias is missing, with a
	// key policy for the account and its Auto Scaling role. Needs an alias
	// name as the key. Off by default.
	CreateMissingKeys bool `mapstructure:"create_missing_keys" required:"false"`
	// The alias of the KMS key that `amicrypt-instance-store`'s agent uses
	// in the image (the provisioner's `kms_key_id`), e.g.
	// `alias/amicrypt-instance-store`. When set, preflight checks in every
	// target account and region, as the target's role, that the alias
	// exists and names an Enabled, customer-managed, symmetric
	// `ENCRYPT_DECRYPT` key of that account and region: without it,
	// instances launched from the copy fail closed at boot and leave their
	// instance-store disks unmounted. An alias name only (`alias/NAME`),
	// since it is resolved in each account and region as the agent resolves
	// it. Unset by default: no check.
	InstanceStoreKmsKeyID string `mapstructure:"instance_store_kms_key_id" required:"false"`

	grantPropagation time.Duration
	leaseDuration    time.Duration
	ctx              interpolate.Context
}

var (
	// An IAM role name, optionally behind a path: path/segments/name.
	roleNamePattern = regexp.MustCompile(`^(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}$`)
	// AWS's characters for sts:AssumeRole's ExternalId (2 to 1224 of them;
	// RE2 repeats at most 1000, so the length is checked apart).
	roleARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]+$`)
	amiNamePattern = regexp.MustCompile(`^[a-zA-Z0-9()\[\] ./\-'@_]{3,128}$`)
)

// provenanceTagKeys are written by amicrypt on every copy; templates may not
// set them.
var provenanceTagKeys = []string{TagSourceAMI, TagSourceAccount, TagSourceRegion, TagKMSKeyARN, TagEncrypted, TagCopiedFromAMI, TagTemplate}

// Provenance tags on every copy and its snapshots.
const (
	TagSourceAMI     = "amicrypt:source-ami"
	TagSourceAccount = "amicrypt:source-account"
	TagSourceRegion  = "amicrypt:source-region"
	TagKMSKeyARN     = "amicrypt:kms-key-arn"
	TagEncrypted     = "Encrypted"
	TagCopiedFromAMI = "CopiedFromAMI"
	// TagTransitFor marks a transit copy with the source AMI it stands for.
	TagTransitFor = "amicrypt:transit-for"
)

// nameData is what ami_name and ami_description templates see.
type nameData struct {
	SourceAMIName string
	SourceAMI     string
	Account       string
	Region        string
}

// Prepare decodes and validates the configuration. It makes no API call;
// every problem found is reported at once, naming the field, the value and
// the fix.
func (c *Config) Prepare(raws ...interface{}) error {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         BuilderId,
		Interpolate:        true,
		InterpolateContext: &c.ctx,
		InterpolateFilter:  &interpolate.RenderFilter{Exclude: []string{"ami_name", "ami_description"}},
	}, raws...)
	if err != nil {
		return err
	}
	var errs []error
	errs = append(errs, c.prepareSource()...)

	// The source region defaults to the source AMI's, known only at run time.
	regionFromArtifact := c.RawRegion == ""
	if regionFromArtifact {
		c.RawRegion = "us-east-1"
	}
	errs = append(errs, c.AccessConfig.Prepare()...)
	if regionFromArtifact {
		c.RawRegion = ""
	}

	errs = append(errs, explicitZeros(raws)...)
	errs = append(errs, c.prepareTargets()...)
	errs = append(errs, c.prepareCopy()...)
	errs = append(errs, c.prepareRunning()...)
	errs = append(errs, c.prepareInstanceStoreKey()...)

	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// amiBuilderTypes are the source types whose artifacts are AMIs:
// amicrypt-copy copies those, so source_ami next to them is ambiguous.
var amiBuilderTypes = []string{"amicrypt-ebs", "amazon-ebs", "amazon-ebssurrogate", "amazon-chroot", "amazon-instance"}

// fromConfig reports whether the AMI to copy comes from source_ami or
// source_ami_filter rather than from the input artifact.
func (c *Config) fromConfig() bool { return c.SourceAMI != "" || !c.SourceAMIFilter.Empty() }

// prepareSource checks source_ami and source_ami_filter: one AMI of one
// region, and no builder whose AMIs would be copied instead.
func (c *Config) prepareSource() []error {
	if !c.fromConfig() {
		return nil
	}
	var errs []error
	field := "source_ami"
	if c.SourceAMI == "" {
		field = "source_ami_filter"
	}
	if c.SourceAMI != "" && !c.SourceAMIFilter.Empty() {
		errs = append(errs, errors.New("source_ami, source_ami_filter: both set; amicrypt-copy copies one AMI: keep source_ami (an ID) or source_ami_filter (a search), not both"))
	}
	if c.SourceAMI != "" && !ebs.ValidAMIID(c.SourceAMI) {
		errs = append(errs, fmt.Errorf("source_ami: %q is not an AMI ID; use an ID such as \"ami-0a1b2c3d4e5f60001\", or find the image with source_ami_filter", c.SourceAMI))
	}
	if err := c.SourceAMIFilter.Validate("source_ami_filter"); err != nil {
		errs = append(errs, err)
	}
	if c.RawRegion == "" {
		errs = append(errs, fmt.Errorf("region: not set, and %s needs it: an AMI lives in one region; set region to the AMI's, e.g. region = \"us-east-1\"", field))
	}
	if slices.Contains(amiBuilderTypes, c.PackerBuilderType) {
		errs = append(errs, fmt.Errorf("%s: set, yet this amicrypt-copy follows a %q source, whose AMIs it copies; remove %s to copy the AMIs the build makes, "+
			"or run amicrypt-copy behind the null builder (source \"null\" \"NAME\" { communicator = \"none\" }) to copy an AMI that exists already", field, c.PackerBuilderType, field))
	}
	return errs
}

func (c *Config) prepareTargets() []error {
	var errs []error
	if len(c.Targets) == 0 {
		errs = append(errs, errors.New(`target: no target block; add one per receiving account, e.g. target { account_id = "222222222222" }`))
	}
	errs = append(errs, validateRegions("regions", c.Regions)...)
	if c.RoleName != "" && !roleNamePattern.MatchString(c.RoleName) {
		errs = append(errs, fmt.Errorf("role_name: %q is not an IAM role name (up to 64 letters, digits and +=,.@_-, optionally behind a path/); use the name only, e.g. \"amicrypt-copy\" (use a target's role_arn for a full ARN)", c.RoleName))
	}
	errs = append(errs, validateExternalID("external_id", c.ExternalID)...)
	if keyRef, err := ebs.ParseKeyRef(c.KmsKeyID); err == nil && keyRef.Kind == ebs.KeyRefID && len(c.Targets) > 1 {
		errs = append(errs, fmt.Errorf("kms_key_id: %q is a key ID, which names one key of one account; every target inherits it, so use an alias name (alias/NAME, resolved in each account) at the top level, or set kms_key_id in each target", c.KmsKeyID))
	}
	errs = append(errs, validateKeyRefs("kms_key_id", "", c.KmsKeyID, c.RegionKmsKeyIDs, "region_kms_key_ids")...)
	errs = append(errs, validateLaunchPermissions("", c.AMIUsers, c.AMIOrgArns, c.AMIOuArns)...)

	seen := map[string]int{}
	for i := range c.Targets {
		t := &c.Targets[i]
		field := fmt.Sprintf("target[%d]", i)
		switch {
		case t.AccountID == "":
			errs = append(errs, fmt.Errorf(`%s.account_id: not set; set the 12-digit account ID, e.g. account_id = "222222222222"`, field))
			continue
		case !ebs.ValidAccountID(t.AccountID):
			errs = append(errs, fmt.Errorf("%s.account_id: %q is not a 12-digit AWS account ID; write it as a quoted string of 12 digits", field, t.AccountID))
			continue
		}
		field = fmt.Sprintf("target[%d] (account %s)", i, t.AccountID)
		if j, dup := seen[t.AccountID]; dup {
			errs = append(errs, fmt.Errorf("%s: account %s also appears in target[%d]; merge the two blocks (list every region in one)", field, t.AccountID, j))
		}
		seen[t.AccountID] = i

		errs = append(errs, validateRegions(field+".regions", t.Regions)...)
		errs = append(errs, validateExternalID(field+".external_id", t.ExternalID)...)
		switch {
		case t.RoleARN != "":
			m := roleARNPattern.FindStringSubmatch(t.RoleARN)
			if m == nil {
				errs = append(errs, fmt.Errorf("%s.role_arn: %q is not a role ARN; use arn:aws:iam::%s:role/NAME", field, t.RoleARN, t.AccountID))
			} else if m[1] != t.AccountID {
				errs = append(errs, fmt.Errorf("%s.role_arn: %q is a role of account %s, not of %s; use a role in the target account, arn:aws:iam::%s:role/NAME", field, t.RoleARN, m[1], t.AccountID, t.AccountID))
			}
		case c.RoleName == "":
			errs = append(errs, fmt.Errorf("%s.role_arn: not set and no top-level role_name; set role_arn = \"arn:aws:iam::%s:role/NAME\" or role_name = \"NAME\" at the top level", field, t.AccountID))
		}
		keyRef, regionKeys := t.effectiveKeys(c)
		if keyRef == "" && len(regionKeys) == 0 {
			errs = append(errs, fmt.Errorf("%s.kms_key_id: not set here nor at the top level; set kms_key_id = \"alias/NAME\" (resolved in each target account and region) or a key ARN of account %s", field, t.AccountID))
		}
		errs = append(errs, validateKeyRefs(field+".kms_key_id", t.AccountID, t.KmsKeyID, t.RegionKmsKeyIDs, field+".region_kms_key_ids")...)
		// Top-level key ARNs must belong to each target that inherits them.
		if t.KmsKeyID == "" && c.KmsKeyID != "" {
			if acct := keyARNAccount(c.KmsKeyID); acct != "" && acct != t.AccountID {
				errs = append(errs, fmt.Errorf("kms_key_id: %q is a key of account %s, but %s inherits it; every copy must be under a key its own account owns, so use an alias name (alias/NAME) at the top level or set kms_key_id in this target", c.KmsKeyID, acct, field))
			}
		}
		for region, ref := range c.RegionKmsKeyIDs {
			if _, own := t.RegionKmsKeyIDs[region]; own {
				continue
			}
			if acct := keyARNAccount(ref); acct != "" && acct != t.AccountID {
				errs = append(errs, fmt.Errorf("region_kms_key_ids[%q]: %q is a key of account %s, but %s inherits it; use an alias name or set region_kms_key_ids in this target", region, ref, acct, field))
			}
		}
		if c.CreateMissingKeys {
			for _, ref := range append([]string{keyRef}, mapValues(regionKeys)...) {
				if ref != "" && !strings.HasPrefix(ref, "alias/") {
					errs = append(errs, fmt.Errorf("%s.kms_key_id: %q is not an alias name, and create_missing_keys can only create a key behind an alias; use alias/NAME or turn create_missing_keys off", field, ref))
				}
			}
		}
		regions := firstNonEmptySlice(t.Regions, c.Regions)
		if len(regions) > 0 {
			for region := range t.RegionKmsKeyIDs {
				if !slices.Contains(regions, region) {
					errs = append(errs, fmt.Errorf("%s.region_kms_key_ids[%q]: %s is not among this target's regions (%s), so this key would never be used; add %s to regions or remove the entry", field, region, region, strings.Join(regions, ", "), region))
				}
			}
		}
		if kr, err := ebs.ParseKeyRef(t.KmsKeyID); err == nil && kr.Kind == ebs.KeyRefID && len(regions) != 1 && !strings.HasPrefix(t.KmsKeyID, "mrk-") {
			errs = append(errs, fmt.Errorf("%s.kms_key_id: %q is a key ID, which names a key of one region, and this target copies to %s; use an alias name (alias/NAME, resolved in each region) or region_kms_key_ids", field, t.KmsKeyID, orAll(regions)))
		}
		if t.ExternalID != "" && t.RoleARN == "" && c.RoleName == "" {
			errs = append(errs, fmt.Errorf("%s.external_id: set without a role; set role_arn or role_name", field))
		}
		errs = append(errs, validateLaunchPermissions(field+".", t.AMIUsers, t.AMIOrgArns, t.AMIOuArns)...)
	}
	return errs
}

func (c *Config) prepareCopy() []error {
	var errs []error
	if c.AMIName == "" {
		c.AMIName = DefaultAMIName
	}
	sample := nameData{SourceAMIName: "sample-source-name", SourceAMI: "ami-0123456789abcdef0", Account: "123456789012", Region: "us-east-1"}
	if name, err := c.render(c.AMIName, sample); err != nil {
		errs = append(errs, fmt.Errorf("ami_name: %q is not a valid template (%w); use e.g. \"{{ .SourceAMIName }}-{{ .Account }}\"", c.AMIName, err))
	} else if !amiNamePattern.MatchString(name) {
		errs = append(errs, fmt.Errorf("ami_name: %q renders to %q, not an AMI name: 3-128 letters, digits and ()[] ./-'@_ ; remove other characters (clean_resource_name helps)", c.AMIName, name))
	}
	if c.AMIDescription != "" {
		if _, err := c.render(c.AMIDescription, sample); err != nil {
			errs = append(errs, fmt.Errorf("ami_description: %q is not a valid template (%w); fix the template or use plain text", c.AMIDescription, err))
		}
	}
	errs = append(errs, validateTags("tags", c.Tags)...)
	errs = append(errs, validateTags("snapshot_tags", c.SnapshotTags)...)
	// Every copy also carries amicrypt's provenance tags (and, until it is
	// reported, amicrypt:unreported); AWS allows 50 tags on a resource.
	room := maxTags - len(provenanceTagKeys) - 1
	for field, tags := range map[string]map[string]string{"tags": c.Tags, "snapshot_tags": c.SnapshotTags} {
		if len(tags) > room {
			errs = append(errs, fmt.Errorf("%s: %d tags; each copy also carries amicrypt's %d, and AWS allows %d on a resource: keep at most %d", field, len(tags), maxTags-room, maxTags, room))
		}
	}
	if c.DeprecateAt != "" {
		at, err := time.Parse(time.RFC3339, c.DeprecateAt)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("deprecate_at: %q is not an RFC 3339 time; use e.g. \"2027-01-31T00:00:00Z\"", c.DeprecateAt))
		case !at.After(time.Now()):
			errs = append(errs, fmt.Errorf("deprecate_at: %q is in the past; use a future time (AWS refuses past deprecation times)", c.DeprecateAt))
		case at.After(time.Now().AddDate(10, 0, 0)):
			errs = append(errs, fmt.Errorf("deprecate_at: %q is more than 10 years ahead, AWS's limit for a deprecation time; use an earlier time", c.DeprecateAt))
		}
	}
	if c.DeregistrationProtection.WithCooldown {
		c.DeregistrationProtection.Enabled = true
	}
	if c.TransitKmsKeyID != "" {
		if err := validateKeyRef(c.TransitKmsKeyID); err != nil {
			errs = append(errs, fmt.Errorf("transit_kms_key_id: %q %w", c.TransitKmsKeyID, err))
		} else if r := keyARNRegion(c.TransitKmsKeyID); r != "" && c.RawRegion != "" && r != c.RawRegion {
			errs = append(errs, fmt.Errorf("transit_kms_key_id: %q is in region %s, not %s (region, where the source AMI is re-encrypted); a key works only in its own region: give a key of %s, or an alias name", c.TransitKmsKeyID, r, c.RawRegion, c.RawRegion))
		}
	}
	if c.AMIDescription != "" {
		sample := nameData{SourceAMIName: "sample-source-name", SourceAMI: "ami-0123456789abcdef0", Account: "123456789012", Region: "us-east-1"}
		if d, err := c.render(c.AMIDescription, sample); err == nil && len(d) > maxDescription {
			errs = append(errs, fmt.Errorf("ami_description: renders to %d characters; AWS allows %d: shorten it", len(d), maxDescription))
		}
	}
	return errs
}

func (c *Config) prepareRunning() []error {
	var errs []error
	// 0 (refused when written: explicitZeros) is what an unset count
	// decodes to.
	if c.CopyConcurrency < 0 {
		errs = append(errs, fmt.Errorf("copy_concurrency: %d is negative; use a positive count, e.g. 50, or remove the field for no cap beyond destination_copy_limit per account-region", c.CopyConcurrency))
	}
	if c.DestinationCopyLimit < 0 {
		errs = append(errs, fmt.Errorf("destination_copy_limit: %d is negative; use a positive count below your concurrent AMI copy quota, e.g. %d, or remove the field for the default", c.DestinationCopyLimit, DefaultDestinationCopyLimit))
	} else if c.DestinationCopyLimit == 0 {
		c.DestinationCopyLimit = DefaultDestinationCopyLimit
	}
	switch c.OnFailure {
	case "":
		c.OnFailure = OnFailureRollback
	case OnFailureRollback, OnFailureKeep:
	default:
		errs = append(errs, fmt.Errorf("on_failure: %q is not an option; use %q (deregister this run's copies) or %q (keep and report them)", c.OnFailure, OnFailureRollback, OnFailureKeep))
	}
	c.grantPropagation = DefaultGrantPropagationTimeout
	if c.GrantPropagationTimeout != "" {
		d, err := time.ParseDuration(c.GrantPropagationTimeout)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("grant_propagation_timeout: %q is not a positive duration; use e.g. \"5m\"", c.GrantPropagationTimeout))
		} else {
			c.grantPropagation = d
		}
	}
	c.leaseDuration = DefaultLeaseDuration
	if c.LeaseDuration != "" {
		d, err := time.ParseDuration(c.LeaseDuration)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("lease_duration: %q is not a duration; use e.g. \"5m\", or remove the field for the default (%s)", c.LeaseDuration, DefaultLeaseDuration))
		case d < MinLeaseDuration || d > MaxLeaseDuration:
			errs = append(errs, fmt.Errorf("lease_duration: %q is out of range; use %s to %s (the default %s bounds how long a killed run's grants stay)", c.LeaseDuration, MinLeaseDuration, MaxLeaseDuration, DefaultLeaseDuration))
		default:
			c.leaseDuration = d
		}
	}
	if c.ManifestOutput != "" && strings.HasSuffix(c.ManifestOutput, "/") {
		errs = append(errs, fmt.Errorf("manifest_output: %q is a directory; name a file, e.g. \"copies.json\"", c.ManifestOutput))
	}
	return errs
}

func (c *Config) render(tmpl string, data nameData) (string, error) {
	ctx := c.ctx
	ctx.Data = data
	out, err := interpolate.Render(tmpl, &ctx)
	if err != nil {
		// text/template names the Go type behind the data; say which
		// variables there are instead.
		if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
			return "", fmt.Errorf("{{ .%s }} is not a variable of this template; the variables are .SourceAMIName, .SourceAMI, .Account and .Region", m[1])
		}
	}
	return out, err
}

// unknownField finds the field text/template could not evaluate.
var unknownField = regexp.MustCompile(`can't evaluate field (\w+) in type`)

// effectiveKeys is the key of t with top-level defaults applied.
func (t *TargetConfig) effectiveKeys(c *Config) (keyRef string, regionKeys map[string]string) {
	keyRef = t.KmsKeyID
	if keyRef == "" {
		keyRef = c.KmsKeyID
	}
	regionKeys = map[string]string{}
	for r, k := range c.RegionKmsKeyIDs {
		regionKeys[r] = k
	}
	for r, k := range t.RegionKmsKeyIDs {
		regionKeys[r] = k
	}
	return keyRef, regionKeys
}

// validateExternalID checks an external ID as awsauth.ValidateExternalID
// does, as a list of errors.
func validateExternalID(field, id string) []error {
	if err := awsauth.ValidateExternalID(field, id); err != nil {
		return []error{err}
	}
	return nil
}

// explicitZeros refuses counts written as 0: unset, they take their
// default, and 0 written out would silently mean that default too, not
// "none" or "no limit". The access configuration's counts are
// awsauth.ZeroSettings'.
func explicitZeros(raws []interface{}) []error {
	errs := awsauth.ExplicitZeros(raws,
		awsauth.ZeroField{Path: []string{"copy_concurrency"}, Why: "0 copies at once can't copy anything; remove the field for no cap (the default: destination_copy_limit per account-region bounds the copies) or give a positive count"},
		awsauth.ZeroField{Path: []string{"destination_copy_limit"}, Why: fmt.Sprintf("0 copies per account-region can't copy anything; remove the field for the default (%d) or give a positive count below your concurrent AMI copy quota", DefaultDestinationCopyLimit)},
	)
	return append(errs, awsauth.ZeroSettings(raws)...)
}

func orAll(regions []string) string {
	if len(regions) == 0 {
		return "the source AMI's regions"
	}
	return strings.Join(regions, ", ")
}

func validateRegions(field string, regions []string) []error {
	var errs []error
	seen := map[string]bool{}
	for _, r := range regions {
		if !awsauth.ValidRegion(r) {
			errs = append(errs, fmt.Errorf("%s: %q is not a region name; use names such as \"us-east-1\"", field, r))
		}
		if seen[r] {
			errs = append(errs, fmt.Errorf("%s: %q is listed twice; list each region once", field, r))
		}
		seen[r] = true
	}
	return errs
}

var awsAliasPattern = regexp.MustCompile(`(^|:)alias/aws/`)

// validateKeyRef checks the syntax of a KMS key reference (ebs.ParseKeyRef);
// the error reads after the quoted value.
func validateKeyRef(ref string) error {
	if awsAliasPattern.MatchString(ref) {
		return errors.New("is an AWS-managed key, which can't be shared or used by another account; create a customer-managed key and give its alias or ARN")
	}
	if _, err := ebs.ParseKeyRef(ref); err != nil {
		return errors.New("is not a KMS key reference; use an alias name (alias/NAME), an alias ARN or a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)")
	}
	return nil
}

// keyARNAccount is the account of a key or alias ARN, "" for other forms.
func keyARNAccount(ref string) string {
	parsed, _ := ebs.ParseKeyRef(ref)
	return parsed.Account
}

// keyARNRegion is the region of a key or alias ARN, "" for other forms.
func keyARNRegion(ref string) string {
	parsed, _ := ebs.ParseKeyRef(ref)
	return parsed.Region
}

func validateKeyRefs(field, account, keyRef string, regionKeys map[string]string, regionField string) []error {
	var errs []error
	check := func(f, ref, region string) {
		if err := validateKeyRef(ref); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q %w", f, ref, err))
			return
		}
		if account != "" {
			if acct := keyARNAccount(ref); acct != "" && acct != account {
				errs = append(errs, fmt.Errorf("%s: %q belongs to account %s, not %s; each copy must be under a key its own account owns: use alias/NAME or a key ARN of account %s", f, ref, acct, account, account))
			}
		}
		if region != "" {
			if r := keyARNRegion(ref); r != "" && r != region {
				errs = append(errs, fmt.Errorf("%s: %q is in region %s, not %s; a key works only in its own region, so give the %s key", f, ref, r, region, region))
			}
		}
	}
	if keyRef != "" {
		check(field, keyRef, "")
	}
	regions := mapKeys(regionKeys)
	for _, region := range regions {
		f := fmt.Sprintf("%s[%q]", regionField, region)
		if !awsauth.ValidRegion(region) {
			errs = append(errs, fmt.Errorf("%s: %q is not a region name; use names such as \"us-east-1\"", regionField, region))
			continue
		}
		check(f, regionKeys[region], region)
	}
	return errs
}

func validateLaunchPermissions(prefix string, users, orgs, ous []string) []error {
	var errs []error
	for _, u := range users {
		if !ebs.ValidAccountID(u) {
			errs = append(errs, fmt.Errorf("%sami_users: %q is not a 12-digit account ID; write each as a quoted string of 12 digits", prefix, u))
		}
	}
	for _, o := range orgs {
		if !ebs.ValidOrgARN(o) {
			errs = append(errs, fmt.Errorf("%sami_org_arns: %q is not an organization ARN; use arn:aws:organizations::ACCOUNT:organization/o-ID", prefix, o))
		}
	}
	for _, o := range ous {
		if !ebs.ValidOUARN(o) {
			errs = append(errs, fmt.Errorf("%sami_ou_arns: %q is not an organizational unit ARN; use arn:aws:organizations::ACCOUNT:ou/o-ID/ou-ID", prefix, o))
		}
	}
	return errs
}

func validateTags(field string, tags map[string]string) []error {
	var errs []error
	for _, k := range mapKeys(tags) {
		v := tags[k]
		switch {
		case k == "" || len(k) > 128:
			errs = append(errs, fmt.Errorf("%s: key %q must be 1-128 characters; shorten it", field, k))
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			errs = append(errs, fmt.Errorf("%s: key %q uses the reserved aws: prefix; choose another key", field, k))
		case slices.Contains(provenanceTagKeys, k) || k == TagUnreported || strings.HasPrefix(k, TagLeasePrefix):
			errs = append(errs, fmt.Errorf("%s: key %q is a provenance tag amicrypt sets itself; remove it or use another key", field, k))
		case len(v) > 256:
			errs = append(errs, fmt.Errorf("%s: value of %q is %d characters; AWS allows 256, shorten it", field, k, len(v)))
		}
	}
	return errs
}

func mapKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, k := range mapKeys(m) {
		out = append(out, m[k])
	}
	return out
}
