package core

// KMS operations EC2 performs on a caller's behalf (docs/aws-behaviour.md 3.4).
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
