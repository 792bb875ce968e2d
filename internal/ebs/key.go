package ebs

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

const keyIDRE = `(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})`

var (
	keyIDPattern    = regexp.MustCompile(`^` + keyIDRE + `$`)
	keyARNPattern   = regexp.MustCompile(`^arn:aws[a-z-]*:kms:([a-z]{2}(?:-[a-z]+)+-\d{1,2}):(\d{12}):key/` + keyIDRE + `$`)
	aliasNamePat    = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]{1,250}$`)
	aliasARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:kms:([a-z]{2}(?:-[a-z]+)+-\d{1,2}):(\d{12}):alias/[a-zA-Z0-9/_-]{1,250}$`)
)

// KeyRefKind is the syntax of a KMS key reference.
type KeyRefKind string

const (
	KeyRefID       KeyRefKind = "key ID"
	KeyRefARN      KeyRefKind = "key ARN"
	KeyRefAlias    KeyRefKind = "alias name"
	KeyRefAliasARN KeyRefKind = "alias ARN"
)

// KeyRef is a parsed KMS key reference.
type KeyRef struct {
	Raw     string
	Kind    KeyRefKind
	Region  string // for ARNs
	Account string // for ARNs
}

// AWSManagedAlias reports whether the reference names an AWS-managed key's
// alias (alias/aws/…), which can never be shared.
func (r KeyRef) AWSManagedAlias() bool {
	name := r.Raw
	if r.Kind == KeyRefAliasARN {
		name = name[strings.Index(name, ":alias/")+1:]
	}
	return strings.HasPrefix(name, "alias/aws/")
}

// ParseKeyRef checks the syntax of a key ID, key ARN, alias name or alias
// ARN, without any API call. The error says which forms are accepted.
func ParseKeyRef(ref string) (KeyRef, error) {
	switch {
	case keyIDPattern.MatchString(ref):
		return KeyRef{Raw: ref, Kind: KeyRefID}, nil
	case aliasNamePat.MatchString(ref):
		return KeyRef{Raw: ref, Kind: KeyRefAlias}, nil
	}
	if m := keyARNPattern.FindStringSubmatch(ref); m != nil {
		return KeyRef{Raw: ref, Kind: KeyRefARN, Region: m[1], Account: m[2]}, nil
	}
	if m := aliasARNPattern.FindStringSubmatch(ref); m != nil {
		return KeyRef{Raw: ref, Kind: KeyRefAliasARN, Region: m[1], Account: m[2]}, nil
	}
	return KeyRef{}, fmt.Errorf("%q is not a KMS key reference; use a key ID (1234abcd-12ab-34cd-56ef-1234567890ab or mrk-…), "+
		"a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), an alias name (alias/NAME) or an alias ARN (arn:aws:kms:REGION:ACCOUNT:alias/NAME)", ref)
}

// Key is what DescribeKey says about a key.
type Key struct {
	ARN         string
	ID          string
	Account     string
	Region      string
	Manager     string // "AWS" or "CUSTOMER"
	State       string
	Spec        string
	Usage       string
	MultiRegion bool
}

// AWSManaged reports whether AWS manages the key (e.g. aws/ebs).
func (k Key) AWSManaged() bool { return k.Manager == string(kmstypes.KeyManagerTypeAws) }

// KeyProblem classifies why a key can't be used.
type KeyProblem string

const (
	KeyNotFound        KeyProblem = "not found"
	KeyAccessDenied    KeyProblem = "access denied"
	KeyDisabled        KeyProblem = "disabled"
	KeyPendingDeletion KeyProblem = "pending deletion"
	KeyAWSManaged      KeyProblem = "AWS-managed"
	KeyNotSymmetric    KeyProblem = "not symmetric"
	KeyWrongUsage      KeyProblem = "wrong usage"
	KeyWrongRegion     KeyProblem = "wrong region"
	KeyWrongAccount    KeyProblem = "wrong account"
	KeyUnknownState    KeyProblem = "unusable state"
)

// AWSManagedShareError is the AWS error an AWS-managed key leads to when the
// AMI is shared; amicrypt quotes it so users recognise it.
const AWSManagedShareError = "Snapshots encrypted with the AWS Managed CMK can't be shared"

// KeyError is a key that can't be used, with a message naming the key,
// the problem and the fix.
type KeyError struct {
	Ref     string
	Region  string
	Problem KeyProblem
	Detail  string
	Err     error
}

func (e *KeyError) Error() string {
	s := fmt.Sprintf("KMS key %q in %s: %s", e.Ref, e.Region, e.Problem)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += " (" + e.Err.Error() + ")"
	}
	return s
}

func (e *KeyError) Unwrap() error { return e.Err }

// DescribeKey resolves a key reference with kms:DescribeKey. API failures
// become a *KeyError classified by the KMS error code.
func DescribeKey(ctx context.Context, client KMSAPI, region, ref string) (Key, error) {
	out, err := client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(ref)})
	if err != nil {
		ke := &KeyError{Ref: ref, Region: region, Err: err}
		switch ErrorCode(err) {
		case "NotFoundException":
			ke.Problem, ke.Detail = KeyNotFound, "create the key in "+region+" or fix the reference (aliases are per account and region)"
		case "AccessDeniedException":
			ke.Problem, ke.Detail = KeyAccessDenied, "allow kms:DescribeKey to the build's principal in the key policy"
			if by, _ := AccessDenied(err); by == DeniedByIdentityPolicy {
				ke.Detail = "allow kms:DescribeKey in the IAM policy of the build's principal (the key policy is not the problem)"
			}
		case "DisabledException":
			ke.Problem, ke.Detail = KeyDisabled, "enable the key"
		case "KMSInvalidStateException":
			ke.Problem, ke.Detail = KeyPendingDeletion, "cancel the key's deletion or use another key"
		default:
			return Key{}, fmt.Errorf("describing KMS key %q in %s: %w", ref, region, err)
		}
		return Key{}, ke
	}
	md := out.KeyMetadata
	k := Key{
		ARN: aws.ToString(md.Arn), ID: aws.ToString(md.KeyId), Account: aws.ToString(md.AWSAccountId),
		Manager: string(md.KeyManager), State: string(md.KeyState), Spec: string(md.KeySpec),
		Usage: string(md.KeyUsage), MultiRegion: aws.ToBool(md.MultiRegion),
	}
	if parts := strings.Split(k.ARN, ":"); len(parts) > 4 {
		k.Region = parts[3]
	}
	return k, nil
}

// KeyRequirements is what a key must be to encrypt amicrypt's snapshots.
type KeyRequirements struct {
	Region          string // the region the key will be used in
	Account         string // when set, the key must belong to this account
	AllowAWSManaged bool   // true only when nothing will be shared
}

// CheckKey describes the key and checks it is Enabled, symmetric,
// ENCRYPT_DECRYPT, in the region (and account) where it will be used and,
// unless allowed, customer-managed. It returns the key or a *KeyError.
func CheckKey(ctx context.Context, client KMSAPI, ref string, req KeyRequirements) (Key, error) {
	k, err := DescribeKey(ctx, client, req.Region, ref)
	if err != nil {
		return Key{}, err
	}
	fail := func(p KeyProblem, detail string) (Key, error) {
		return k, &KeyError{Ref: ref, Region: req.Region, Problem: p, Detail: detail}
	}
	switch kmstypes.KeyState(k.State) {
	case kmstypes.KeyStateEnabled:
	case kmstypes.KeyStateDisabled:
		return fail(KeyDisabled, "enable the key")
	case kmstypes.KeyStatePendingDeletion, kmstypes.KeyStatePendingReplicaDeletion:
		return fail(KeyPendingDeletion, "cancel the key's deletion or use another key")
	default:
		return fail(KeyUnknownState, "key state is "+k.State+"; use an Enabled key")
	}
	if k.Spec != string(kmstypes.KeySpecSymmetricDefault) {
		return fail(KeyNotSymmetric, "key spec is "+k.Spec+"; EBS needs a SYMMETRIC_DEFAULT key")
	}
	if k.Usage != string(kmstypes.KeyUsageTypeEncryptDecrypt) {
		return fail(KeyWrongUsage, "key usage is "+k.Usage+"; EBS needs ENCRYPT_DECRYPT")
	}
	if req.Region != "" && k.Region != req.Region {
		return fail(KeyWrongRegion, fmt.Sprintf("the key lives in %s; use a key of %s (a multi-Region key needs its replica there)", k.Region, req.Region))
	}
	if req.Account != "" && k.Account != req.Account {
		return fail(KeyWrongAccount, fmt.Sprintf("the key belongs to account %s, not %s", k.Account, req.Account))
	}
	if k.AWSManaged() && !req.AllowAWSManaged {
		return fail(KeyAWSManaged, fmt.Sprintf("%s is AWS-managed, and AWS refuses to share what such a key encrypts (%q). "+
			"Create a customer-managed key and use its ARN or alias", k.ARN, AWSManagedShareError))
	}
	return k, nil
}
