package copy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// ec2API is what amicrypt-copy needs of EC2: internal/ebs's verbs plus the
// attribute reads that tell which shares already existed.
type ec2API interface {
	ebs.EC2API
	DescribeImageAttribute(context.Context, *ec2.DescribeImageAttributeInput, ...func(*ec2.Options)) (*ec2.DescribeImageAttributeOutput, error)
	DescribeSnapshotAttribute(context.Context, *ec2.DescribeSnapshotAttributeInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotAttributeOutput, error)
	DescribeRegions(context.Context, *ec2.DescribeRegionsInput, ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error)
	ebs.TagDeleter
}

// kmsAPI is what amicrypt-copy needs of KMS.
type kmsAPI interface {
	ebs.KMSAPI
	ListGrants(context.Context, *kms.ListGrantsInput, ...func(*kms.Options)) (*kms.ListGrantsOutput, error)
	CreateKey(context.Context, *kms.CreateKeyInput, ...func(*kms.Options)) (*kms.CreateKeyOutput, error)
	CreateAlias(context.Context, *kms.CreateAliasInput, ...func(*kms.Options)) (*kms.CreateAliasOutput, error)
	GenerateDataKeyWithoutPlaintext(context.Context, *kms.GenerateDataKeyWithoutPlaintextInput, ...func(*kms.Options)) (*kms.GenerateDataKeyWithoutPlaintextOutput, error)
	Decrypt(context.Context, *kms.DecryptInput, ...func(*kms.Options)) (*kms.DecryptOutput, error)
	ReEncrypt(context.Context, *kms.ReEncryptInput, ...func(*kms.Options)) (*kms.ReEncryptOutput, error)
}

// sdkMaxBackoff is the SDK retryer's longest pause (awsauth.NewRetryer).
const sdkMaxBackoff = 20 * time.Second

// maxConnsPerHost bounds the connections to one endpoint (a service in a
// region): calls beyond it wait for a free one. Preflight asks hundreds of
// questions at once in a region (64 targets, a few calls each), and 500
// copies start together: at 64, calls queued for a connection (100
// accounts x 5 regions took 4 s of AWS time to start their copies, 1 s
// at 256). A connection costs about 10 KiB while open.
const maxConnsPerHost = 256

// clients are the API clients of one account in one region.
type clients struct {
	Account string
	Region  string
	EC2     ec2API
	KMS     kmsAPI
	cfg     aws.Config
}

// session hands out clients for the source account and, through
// sts:AssumeRole, for each target account. Credentials of one account are
// shared by all its regions.
type session struct {
	access *awsauth.AccessConfig
	base   aws.Config // source credentials

	SourceAccount string
	// SourcePrincipal is the caller's IAM identity as key policies and
	// grants name it (a user or role ARN).
	SourcePrincipal string
	// clock is AWS's clock as the source account's responses show it: the
	// measure of leases.
	clock *awsClock

	// Hundreds of goroutines ask for clients at once when preflight starts:
	// a mutex around these made them queue behind each other's turns on
	// the CPU for seconds. Lookups take no lock; each account's role
	// config is made once.
	targets sync.Map // account → func() aws.Config (sync.OnceValue)
	cache   sync.Map // account/role/region → *clients
}

func newSession(ctx context.Context, access *awsauth.AccessConfig, poll *awsauth.PollingConfig, region string) (*session, error) {
	a := *access
	if a.RawRegion == "" {
		a.RawRegion = region
	}
	cfg, err := a.Config(ctx)
	if err != nil {
		return nil, err
	}
	if ceiling := ebs.NewPacer(poll).AWSTime(sdkMaxBackoff); ceiling < sdkMaxBackoff {
		// A clock that runs faster than AWS's (an emulator, told by
		// AWS_POLL_DELAY_SECONDS below the default delay) gets the SDK's
		// backoff ceiling on the same scale as the polls: a throttled call
		// waits what it would wait on AWS, in that clock's time.
		maxRetries := a.MaxRetries
		cfg.Retryer = func() aws.Retryer {
			return retry.AddWithMaxBackoffDelay(awsauth.NewRetryer(maxRetries), ceiling)
		}
	}
	clock := &awsClock{}
	cfg.APIOptions = append(cfg.APIOptions, clock.middleware)
	if cfg.HTTPClient == nil {
		// The SDK's configuration leaves it unset (each service client
		// then makes its own): without this the bound below never held.
		cfg.HTTPClient = awshttp.NewBuildableClient()
	}
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		// Hundreds of copies poll and start at once: bound the connections
		// to each endpoint and keep them, rather than dial one per call in
		// a burst and drop all but a few after it. Frozen, so every client
		// of the run shares the one pool: the SDK gives each service client
		// made from a BuildableClient a copy of its transport, and a
		// fan-out's thousand clients (EC2 and KMS per account-region) each
		// kept connections of their own (2,500 at 100 accounts x 5
		// regions, most of the plugin's memory; on AWS a TLS handshake each).
		cfg.HTTPClient = bc.WithTransportOptions(func(tr *http.Transport) {
			tr.MaxConnsPerHost = maxConnsPerHost
			tr.MaxIdleConnsPerHost = maxConnsPerHost
			tr.MaxIdleConns = 4 * maxConnsPerHost
		}).Freeze()
	}
	id, err := awsauth.CallerIdentity(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("source account: %w", err)
	}
	return &session{
		access: &a, base: cfg, clock: clock,
		SourceAccount: id.Account, SourcePrincipal: iamPrincipal(id.ARN),
	}, nil
}

// iamPrincipal turns an STS caller ARN into the IAM principal key policies
// and grants use: arn:aws:sts::A:assumed-role/R/S becomes arn:aws:iam::A:role/R.
func iamPrincipal(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 && parts[2] == "sts" && strings.HasPrefix(parts[5], "assumed-role/") {
		role := strings.SplitN(strings.TrimPrefix(parts[5], "assumed-role/"), "/", 2)[0]
		return fmt.Sprintf("arn:%s:iam::%s:role/%s", parts[1], parts[4], role)
	}
	return arn
}

// Source returns the source account's clients in region.
func (s *session) Source(region string) *clients {
	return s.clients(s.SourceAccount, "", region, s.base)
}

// Target returns clients for account in region, as the role.
func (s *session) Target(account, roleARN, externalID, region string) *clients {
	f, ok := s.targets.Load(account)
	if !ok {
		f, _ = s.targets.LoadOrStore(account, sync.OnceValue(func() aws.Config {
			return awsauth.AssumeRole(s.base, awsauth.RoleOptions{RoleARN: roleARN, ExternalID: externalID, SessionName: "amicrypt-copy"})
		}))
	}
	return s.clients(account, roleARN, region, f.(func() aws.Config)())
}

// clients caches by account, role and region: the source account may also be
// a target, reached through a role of its own.
func (s *session) clients(account, roleARN, region string, base aws.Config) *clients {
	key := account + "/" + roleARN + "/" + region
	if c, ok := s.cache.Load(key); ok {
		return c.(*clients)
	}
	cfg := base.Copy()
	cfg.Region = region
	c := &clients{
		Account: account, Region: region, cfg: cfg,
		EC2: ec2.NewFromConfig(cfg, s.access.EC2Options()),
		KMS: kms.NewFromConfig(cfg),
	}
	// Two callers may make the same clients at once: one set is kept.
	kept, _ := s.cache.LoadOrStore(key, c)
	return kept.(*clients)
}
