package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go"
)

// Identity is the instance the agent runs on, from its instance identity
// document.
type Identity struct {
	AccountID  string
	Region     string
	InstanceID string
	// RoleName is the role of the instance profile ("" when the instance has
	// none, or when credentials come from elsewhere).
	RoleName string
}

// Partition is the AWS partition of the instance's region.
func (id Identity) Partition() string {
	switch {
	case strings.HasPrefix(id.Region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(id.Region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// InstanceARN is the instance's ARN, the value of amicrypt:instance-arn.
func (id Identity) InstanceARN() string {
	return fmt.Sprintf("arn:%s:ec2:%s:%s:instance/%s", id.Partition(), id.Region, id.AccountID, id.InstanceID)
}

// RoleARN is the instance profile role's ARN (without its path, which the
// instance can't see), or "" when unknown.
func (id Identity) RoleARN() string {
	if id.RoleName == "" {
		return ""
	}
	return fmt.Sprintf("arn:%s:iam::%s:role/%s", id.Partition(), id.AccountID, id.RoleName)
}

// SessionARN is the role session the instance profile's credentials carry:
// AWS names it after the instance.
func (id Identity) SessionARN() string {
	if id.RoleName == "" {
		return ""
	}
	return fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/%s", id.Partition(), id.AccountID, id.RoleName, id.InstanceID)
}

// describe names the instance and, when known, its role session.
func (id Identity) describe() string {
	s := fmt.Sprintf("instance %s (%s)", id.InstanceID, id.InstanceARN())
	if sess := id.SessionARN(); sess != "" {
		s += ", role session " + sess
	}
	return s
}

// RetryOptions bound the retries of one AWS call; the SDK's standard retryer
// does the retrying.
type RetryOptions struct {
	MaxAttempts int           // default 8
	MaxBackoff  time.Duration // default 5s
}

func (o RetryOptions) withDefaults() RetryOptions {
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 8
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Second
	}
	return o
}

// neverRetryCodes are KMS answers that retrying can't change: the key, its
// policy or the ciphertext must change first. The SDK would not retry them
// anyway; saying so keeps a future SDK default from changing it.
var neverRetryCodes = map[string]bool{
	"AccessDeniedException":       true,
	"DisabledException":           true,
	"NotFoundException":           true,
	"InvalidCiphertextException":  true,
	"IncorrectKeyException":       true,
	"KMSInvalidStateException":    true,
	"InvalidKeyUsageException":    true,
	"ValidationException":         true,
	"UnrecognizedClientException": true,
	"InvalidGrantTokenException":  true,
}

// Retryable reports whether the agent's retryer retries err: never the KMS
// answers that retrying can't change, else the SDK's standard decision
// (throttling, 5xx and connection errors are retried).
func Retryable(err error) bool { return NewRetryer(RetryOptions{})().IsErrorRetryable(err) }

func noRetry(err error) aws.Ternary {
	var ae smithy.APIError
	if errors.As(err, &ae) && neverRetryCodes[ae.ErrorCode()] {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

// NewRetryer is the retryer of the agent's KMS client: the SDK's standard
// retryer with a bounded attempt count, jittered exponential backoff capped
// at MaxBackoff, no client-side retry quota (one boot makes a handful of
// calls), and no retry on the codes in neverRetryCodes. The overall bound is
// the context deadline each call gets (kms_timeout).
func NewRetryer(o RetryOptions) func() aws.Retryer {
	o = o.withDefaults()
	return func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = o.MaxAttempts
			so.MaxBackoff = o.MaxBackoff
			so.Backoff = retry.NewExponentialJitterBackoff(o.MaxBackoff)
			so.RateLimiter = ratelimit.None
			so.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(noRetry)}, so.Retryables...)
		})
	}
}

// LoadAWS reads the instance's identity from IMDSv2 and builds the SDK
// config for KMS calls in the instance's region: the SDK's default
// credential chain (the instance role through the same IMDSv2-only client,
// unless the environment provides credentials) and the agent's retryer.
// The standard variables point it elsewhere (AWS_ENDPOINT_URL,
// AWS_EC2_METADATA_SERVICE_ENDPOINT), as tests do, and so do optFns
// (config.WithEC2IMDSEndpoint, config.WithBaseEndpoint), which come first.
func LoadAWS(ctx context.Context, timeout time.Duration, ro RetryOptions, optFns ...func(*config.LoadOptions) error) (aws.Config, Identity, error) {
	base, err := config.LoadDefaultConfig(ctx, optFns...)
	if err != nil {
		return aws.Config{}, Identity{}, fmt.Errorf("loading the AWS SDK configuration: %w", err)
	}
	// IMDSv2 only: never fall back to unauthenticated IMDSv1 requests.
	metadata := imds.NewFromConfig(base, func(o *imds.Options) { o.EnableFallback = aws.FalseTernary })
	id, err := instanceIdentity(ctx, metadata, timeout)
	if err != nil {
		return aws.Config{}, Identity{}, err
	}
	cfg, err := config.LoadDefaultConfig(ctx, append(slices.Clone(optFns),
		config.WithRegion(id.Region),
		config.WithRetryer(NewRetryer(ro)),
		config.WithEC2RoleCredentialOptions(func(o *ec2rolecreds.Options) { o.Client = metadata }),
	)...)
	if err != nil {
		return aws.Config{}, Identity{}, fmt.Errorf("loading the AWS SDK configuration for %s: %w", id.Region, err)
	}
	return cfg, id, nil
}

func instanceIdentity(ctx context.Context, metadata *imds.Client, timeout time.Duration) (Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	doc, err := metadata.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		return Identity{}, fmt.Errorf("reading the instance identity document from IMDSv2 (needed to bind each disk's key to this instance): %w; "+
			"the agent runs only on EC2 with instance metadata enabled (HttpEndpoint enabled; HttpTokens required is fine)", err)
	}
	id := Identity{AccountID: doc.AccountID, Region: doc.Region, InstanceID: doc.InstanceID}
	if id.AccountID == "" || id.Region == "" || id.InstanceID == "" {
		return Identity{}, fmt.Errorf("the instance identity document lacks accountId, region or instanceId: %+v", doc)
	}
	// The role name only improves error messages: a missing profile (404) is
	// not an error here; KMS will say what it thinks of the credentials.
	if out, err := metadata.GetMetadata(ctx, &imds.GetMetadataInput{Path: "iam/security-credentials/"}); err == nil {
		defer out.Content.Close()
		sc := bufio.NewScanner(io.LimitReader(out.Content, 4096))
		if sc.Scan() {
			id.RoleName = strings.TrimSpace(sc.Text())
		}
	}
	return id, nil
}
