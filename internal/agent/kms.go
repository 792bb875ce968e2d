package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// KMSAPI is the part of the KMS client the agent uses.
type KMSAPI interface {
	GenerateDataKey(context.Context, *kms.GenerateDataKeyInput, ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(context.Context, *kms.DecryptInput, ...func(*kms.Options)) (*kms.DecryptOutput, error)
	ReEncrypt(context.Context, *kms.ReEncryptInput, ...func(*kms.Options)) (*kms.ReEncryptOutput, error)
}

// keyService makes the agent's KMS calls and turns failures into
// KMSErrors. kms_timeout is the total time all KMS calls of one command may
// take, retries included, so a unit's start timeout can be set from it.
type keyService struct {
	api     KMSAPI
	timeout time.Duration
	id      Identity
	spent   *time.Duration // KMS time used so far by this command
}

// reset starts a command's KMS time budget.
func (k keyService) reset() { *k.spent = 0 }

// budget bounds one call by what is left of kms_timeout; done accounts for
// the time the call took.
func (k keyService) budget(ctx context.Context) (context.Context, func()) {
	remaining := k.timeout - *k.spent
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, max(remaining, 0))
	return ctx, func() {
		cancel()
		*k.spent += time.Since(start)
	}
}

// dataKey is a fresh data key: the plaintext (the LUKS passphrase; clear it
// after use) and its KMS-wrapped form.
type dataKey struct {
	plaintext []byte
	blob      []byte
	keyARN    string
}

// generate asks for a new data key. The SDK decodes the plaintext out of the
// response into out.Plaintext, which the caller clears; the response body it
// was decoded from is a transient SDK buffer the agent can't reach.
func (k keyService) generate(ctx context.Context, keyRef string, ec map[string]string) (*dataKey, error) {
	ctx, done := k.budget(ctx)
	defer done()
	var attempts int
	out, err := k.api.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId: aws.String(keyRef), KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: ec,
	}, countAttempts(&attempts))
	if err != nil {
		return nil, k.explain("GenerateDataKey", keyRef, ec, attempts, err)
	}
	if len(out.Plaintext) != 32 || len(out.CiphertextBlob) == 0 || aws.ToString(out.KeyId) == "" {
		clear(out.Plaintext)
		return nil, fmt.Errorf("kms:GenerateDataKey under %s returned a %d-byte key, a %d-byte ciphertext and key ID %q; want 32 bytes, a ciphertext and a key ARN",
			keyRef, len(out.Plaintext), len(out.CiphertextBlob), aws.ToString(out.KeyId))
	}
	return &dataKey{plaintext: out.Plaintext, blob: out.CiphertextBlob, keyARN: aws.ToString(out.KeyId)}, nil
}

// decrypt unwraps blob; the caller clears the result.
func (k keyService) decrypt(ctx context.Context, keyARN string, blob []byte, ec map[string]string) ([]byte, error) {
	ctx, done := k.budget(ctx)
	defer done()
	var attempts int
	out, err := k.api.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(keyARN), CiphertextBlob: blob, EncryptionContext: ec}, countAttempts(&attempts))
	if err != nil {
		return nil, k.explain("Decrypt", keyARN, ec, attempts, err)
	}
	if len(out.Plaintext) != 32 {
		clear(out.Plaintext)
		return nil, fmt.Errorf("kms:Decrypt under %s returned a %d-byte key, want 32", keyARN, len(out.Plaintext))
	}
	return out.Plaintext, nil
}

// reencrypt moves blob from srcKeyARN to dstKey under the same context.
func (k keyService) reencrypt(ctx context.Context, srcKeyARN string, blob []byte, ec map[string]string, dstKey string) ([]byte, string, error) {
	ctx, done := k.budget(ctx)
	defer done()
	var attempts int
	out, err := k.api.ReEncrypt(ctx, &kms.ReEncryptInput{
		CiphertextBlob: blob, SourceKeyId: aws.String(srcKeyARN), SourceEncryptionContext: ec,
		DestinationKeyId: aws.String(dstKey), DestinationEncryptionContext: ec,
	}, countAttempts(&attempts))
	if err != nil {
		kerr := k.explain("ReEncrypt", dstKey, ec, attempts, err)
		kerr.SourceKey = srcKeyARN
		return nil, "", kerr
	}
	if len(out.CiphertextBlob) == 0 || aws.ToString(out.KeyId) == "" {
		return nil, "", fmt.Errorf("kms:ReEncrypt to %s returned no ciphertext or key ARN", dstKey)
	}
	return out.CiphertextBlob, aws.ToString(out.KeyId), nil
}

// KMSError is a KMS call that failed, with what the user needs to fix it:
// the key, the instance and its role session, and for AccessDenied the
// key-policy statement that is missing.
type KMSError struct {
	Op        string // GenerateDataKey, Decrypt, ReEncrypt
	Key       string // the key asked for (ReEncrypt: the destination)
	SourceKey string // ReEncrypt's source key
	Code      string // the AWS error code; "" for timeouts and network errors
	Identity  Identity
	Context   map[string]string
	Timeout   time.Duration
	Attempts  int
	// Detail explains the failure where the code alone does not (set by the
	// caller, e.g. which instance a disk belongs to).
	Detail string
	Err    error
}

func (e *KMSError) Unwrap() error { return e.Err }

// Error names the call, the key, the instance and the fix.
func (e *KMSError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kms:%s with key %s", e.Op, e.Key)
	if e.SourceKey != "" {
		fmt.Fprintf(&b, " (from %s)", e.SourceKey)
	}
	fmt.Fprintf(&b, " failed for %s", e.Identity.describe())
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	b.WriteString(": ")
	b.WriteString(e.fix())
	if e.Detail != "" {
		b.WriteString("; ")
		b.WriteString(e.Detail)
	}
	fmt.Fprintf(&b, " (%v)", e.Err)
	return b.String()
}

func (e *KMSError) actions() string {
	if e.Op == "ReEncrypt" {
		return "kms:ReEncryptFrom (on the source key) and kms:ReEncryptTo (on the destination key)"
	}
	return "kms:" + e.Op
}

// keyPolicyName names the key whose policy needs changing: the key ARN when
// known, else the alias and the ARN it has in this account and region.
func (e *KMSError) keyPolicyName() string {
	k := e.Key
	if strings.HasPrefix(k, "alias/") {
		return fmt.Sprintf("the key behind %s (arn:%s:kms:%s:%s:%s)", k, e.Identity.Partition(), e.Identity.Region, e.Identity.AccountID, k)
	}
	if !strings.HasPrefix(k, "arn:") {
		return fmt.Sprintf("arn:%s:kms:%s:%s:key/%s", e.Identity.Partition(), e.Identity.Region, e.Identity.AccountID, k)
	}
	return k
}

func (e *KMSError) fix() string {
	switch e.Code {
	case "AccessDeniedException":
		principal := e.Identity.RoleARN()
		if principal == "" {
			principal = "the principal the agent runs as (IMDS shows no instance profile role: attach an instance profile)"
		}
		return fmt.Sprintf("the key policy of %s needs a statement allowing %s to %s with condition StringEquals kms:EncryptionContext:%s "+
			"(this instance: %s), and the role's IAM policy must allow it too", e.keyPolicyName(), e.actions(), principal, ContextInstanceARN, e.Identity.InstanceARN())
	case "DisabledException":
		return fmt.Sprintf("the key is disabled; enable it (aws kms enable-key --key-id %s) and run the agent again", e.Key)
	case "KMSInvalidStateException":
		return fmt.Sprintf("the key is pending deletion or otherwise unusable; cancel its deletion (aws kms cancel-key-deletion --key-id %s) and enable it", e.Key)
	case "NotFoundException":
		return fmt.Sprintf("the key does not exist in account %s region %s; an alias name resolves in the instance's own account and region: create the alias there (amicrypt-copy copies keys per account), or use a key ARN", e.Identity.AccountID, e.Identity.Region)
	case "InvalidCiphertextException":
		return "KMS refuses to unwrap this key with this instance's encryption context"
	case "IncorrectKeyException":
		return "the wrapped key was not made under the key the token names: the token was altered or copied from another volume"
	case "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException", "IncompleteSignature":
		return "the credentials are not valid; check the instance profile (or AWS_* variables)"
	case "":
		if e.Timeout > 0 && errors.Is(e.Err, context.DeadlineExceeded) {
			spent := fmt.Sprintf("%d attempts for this call", e.Attempts)
			switch e.Attempts {
			case 0:
				spent = "none of it was left for this call"
			case 1:
				spent = "1 attempt for this call"
			}
			return fmt.Sprintf("KMS did not answer within kms_timeout %s (the total for this run; %s); check the instance's route to KMS (VPC endpoint or NAT) and raise kms_timeout if KMS is slow", e.Timeout, spent)
		}
		if e.Attempts > 1 {
			return fmt.Sprintf("KMS kept failing after %d attempts; check the instance's route to KMS (VPC endpoint or NAT)", e.Attempts)
		}
		return "the call did not reach KMS or got no usable answer; check the instance's route to KMS and its credentials (instance profile)"
	}
	if e.Attempts > 1 {
		return fmt.Sprintf("KMS kept failing after %d attempts", e.Attempts)
	}
	return "KMS refused the call"
}

func (k keyService) explain(op, key string, ec map[string]string, attempts int, err error) *KMSError {
	e := &KMSError{Op: op, Key: key, Identity: k.id, Context: maps.Clone(ec), Timeout: k.timeout, Attempts: attempts, Err: err}
	var ae smithy.APIError
	if errors.As(err, &ae) && !errors.Is(err, context.DeadlineExceeded) {
		e.Code = ae.ErrorCode()
	}
	return e
}

// countAttempts counts the attempts of one call: a middleware inside the
// SDK's retry loop.
func countAttempts(n *int) func(*kms.Options) {
	return func(o *kms.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			count := middleware.FinalizeMiddlewareFunc("amicryptCountAttempts", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				*n++
				return next.HandleFinalize(ctx, in)
			})
			if err := s.Finalize.Insert(count, (&retry.Attempt{}).ID(), middleware.After); err != nil {
				return s.Finalize.Add(count, middleware.After)
			}
			return nil
		})
	}
}

// IsCode reports whether err is an AWS API error with one of codes.
func IsCode(err error, codes ...string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && slices.Contains(codes, ae.ErrorCode())
}
