// Package awsemu is a local AWS (EC2/EBS, KMS, STS) for amicrypt's tests,
// benchmarks and demo. It serves the real wire protocols on one endpoint,
// across many accounts and regions, and follows shared/aws-behaviour.md.
package awsemu

// contract.go is the seam between the emulator's platform (server, SigV4,
// world, clock, limits, faults, audit, KMS, STS) and its EC2 service
// (ec2*.go). Both sides may add to it; neither changes what is here in an
// incompatible way.

import (
	"fmt"
	"net/url"
	"time"
)

// Call is one authenticated API request, after SigV4 verification.
type Call struct {
	RequestID string
	Time      time.Time // emulator clock at arrival
	Service   string    // "ec2", "kms", "sts" (from the credential scope)
	Region    string    // from the credential scope
	Account   string    // 12-digit account of the caller
	// Principal is the caller's ARN: arn:aws:iam::ACCT:user/NAME,
	// arn:aws:iam::ACCT:root, or arn:aws:sts::ACCT:assumed-role/ROLE/SESSION.
	Principal string
	// PrincipalIAM is the IAM identity behind Principal, as key policies and
	// grants name it: the user ARN, the root ARN or arn:aws:iam::ACCT:role/ROLE.
	PrincipalIAM string
	Action       string     // "DescribeImages", "CreateGrant", …
	Params       url.Values // Query protocols (EC2, STS): the form
	Body         []byte     // JSON protocol (KMS): the raw body
	// Notes are key parameters and outcomes a handler wants in the audit
	// (resource IDs created, key ARNs used). The platform records them.
	Notes map[string]string
}

// Note records a key fact about this call in the audit entry.
func (c *Call) Note(key, value string) {
	if c.Notes == nil {
		c.Notes = map[string]string{}
	}
	c.Notes[key] = value
}

// APIError is an AWS error as the wire protocol reports it.
type APIError struct {
	HTTPStatus int    // 400 unless set
	Code       string // e.g. "InvalidAMIID.NotFound"
	Message    string
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// Errf builds a 400 APIError.
func Errf(code, format string, args ...any) *APIError {
	return &APIError{HTTPStatus: 400, Code: code, Message: fmt.Sprintf(format, args...)}
}

// KMS operations EC2 performs on a caller's behalf (aws-behaviour.md 3.4).
const (
	OpDescribeKey                     = "DescribeKey"
	OpDecrypt                         = "Decrypt"
	OpCreateGrant                     = "CreateGrant"
	OpReEncryptFrom                   = "ReEncryptFrom"
	OpReEncryptTo                     = "ReEncryptTo"
	OpGenerateDataKeyWithoutPlaintext = "GenerateDataKeyWithoutPlaintext"
)

// KeyUse is what EC2 asks of KMS before it uses a key for a caller.
//
// The platform implements, with the emulator lock held:
//
//	func (e *Emulator) authorizeKeyUse(u KeyUse) (KeyInfo, *APIError)
//
// It resolves KeyRef in u.Region as seen from u.Account (key ID, key ARN,
// alias name — only the caller's own aliases — or alias ARN; an empty KeyRef
// means the caller account's default EBS key there, normally alias/aws/ebs),
// then checks existence, state and that u.PrincipalIAM may perform every op
// in u.Ops through the key policy or an effective grant. An AWS-managed key
// may be used only by EC2 in its own account. The error is the KMS error
// (NotFoundException, DisabledException, KMSInvalidStateException,
// AccessDeniedException); EC2 turns it into its own code.
type KeyUse struct {
	Account      string
	PrincipalIAM string
	Region       string
	KeyRef       string
	Ops          []string
}

// KeyInfo describes a resolved KMS key.
type KeyInfo struct {
	ARN      string // arn:aws:kms:REGION:ACCOUNT:key/ID
	KeyID    string
	Account  string
	Region   string
	Manager  string // "AWS" or "CUSTOMER"
	State    string // "Enabled", "Disabled", "PendingDeletion"
	KeySpec  string
	MultiReg bool
}

// The EC2 side implements, with the emulator lock held:
//
//	func (e *Emulator) handleEC2(c *Call) (any, *APIError)
//
// The returned value is XML-marshalled as the children of
// <{Action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">, after
// <requestId>; the platform writes the envelope and the error body.
//
// The EC2 side seeds its state from World.Images/Snapshots and from the
// accounts and regions (default VPC, subnets, security group) in
//
//	func (e *Emulator) seedEC2(w *World)
//
// and keeps all its state in the exported fields of an ec2State value stored
// at e.ec2, so the platform can save it to and load it from the state file
// with encoding/json.

// Clock and latency model, owned by the platform:
//
//	func (e *Emulator) now() time.Time
//	// duration of an operation: (base[op] + perGiB[op]*sizeGiB) × (crossRegion
//	// factor when crossRegion) × time scale
//	func (e *Emulator) latency(op string, sizeGiB int, crossRegion bool) time.Duration
//
// op is one of the LatencyOp constants. Asynchronous resources store the time
// they finish and move through their states when read (no goroutines).
const (
	LatencyInstanceStart = "instance-start"
	LatencyInstanceStop  = "instance-stop"
	LatencyInstanceTerm  = "instance-terminate"
	LatencySnapshot      = "snapshot-create"
	LatencySnapshotCopy  = "snapshot-copy"
	LatencyImageRegister = "image-register"
	LatencyGrant         = "grant-propagation"
)

// Faults, owned by the platform. Throttling and InternalError are injected by
// the dispatcher before a handler runs. Handlers ask for the others:
//
//	func (e *Emulator) faultFires(kind FaultKind, action string) bool
type FaultKind string

const (
	FaultThrottle         FaultKind = "throttle"              // dispatcher
	FaultInternalError    FaultKind = "internal-error"        // dispatcher
	FaultCopyFails        FaultKind = "copy-fails"            // CopyImage/CopySnapshot end failed/error
	FaultNotFoundAfterNew FaultKind = "notfound-after-create" // new resource invisible for a moment
	FaultSlowGrant        FaultKind = "slow-grant"            // grant takes much longer to take effect
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
	// EBSEncryptionByDefault per region ("*" for all).
	EBSEncryptionByDefault []string `json:"ebs_encryption_by_default,omitempty" hcl:"ebs_encryption_by_default,optional"`
}

// WorldUser is an IAM user with an access key.
type WorldUser struct {
	Name      string   `json:"name" hcl:"name,label"`
	AccessKey string   `json:"access_key" hcl:"access_key"`
	SecretKey string   `json:"secret_key" hcl:"secret_key"`
	Deny      []string `json:"deny,omitempty" hcl:"deny,optional"` // IAM actions denied, e.g. "kms:CreateGrant", "ec2:CopyImage", wildcards allowed
}

// WorldRole is an IAM role and its trust.
type WorldRole struct {
	Name       string   `json:"name" hcl:"name,label"`
	TrustedBy  []string `json:"trusted" hcl:"trusted"` // account IDs or principal ARNs allowed to assume it
	ExternalID string   `json:"external_id,omitempty" hcl:"external_id,optional"`
	Deny       []string `json:"deny,omitempty" hcl:"deny,optional"`
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
	ID                 string            `json:"id" hcl:"id,label"`
	Owner              string            `json:"owner" hcl:"owner"` // account ID
	Region             string            `json:"region" hcl:"region"`
	Name               string            `json:"name" hcl:"name"`
	Description        string            `json:"description,omitempty" hcl:"description,optional"`
	Public             bool              `json:"public" hcl:"public,optional"`
	Architecture       string            `json:"architecture" hcl:"architecture,optional"` // x86_64
	VirtualizationType string            `json:"virtualization_type" hcl:"virtualization_type,optional"`
	RootDeviceName     string            `json:"root_device_name" hcl:"root_device_name,optional"`
	EnaSupport         bool              `json:"ena_support" hcl:"ena_support,optional"`
	SriovNetSupport    string            `json:"sriov_net_support,omitempty" hcl:"sriov_net_support,optional"`
	BootMode           string            `json:"boot_mode,omitempty" hcl:"boot_mode,optional"`
	TpmSupport         string            `json:"tpm_support,omitempty" hcl:"tpm_support,optional"`
	ImdsSupport        string            `json:"imds_support,omitempty" hcl:"imds_support,optional"`
	Tags               map[string]string `json:"tags,omitempty" hcl:"tags,optional"`
	Volumes            []WorldVolume     `json:"volumes" hcl:"volume,block"`
}

// WorldVolume is one EBS block device of a world image, backed by a snapshot.
type WorldVolume struct {
	DeviceName string `json:"device_name" hcl:"device_name,label"`
	SnapshotID string `json:"snapshot_id" hcl:"snapshot_id"`
	SizeGiB    int    `json:"size_gib" hcl:"size_gib"`
	VolumeType string `json:"volume_type,omitempty" hcl:"volume_type,optional"`
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
