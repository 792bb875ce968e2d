package ebs

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// IAMAPI is the IAM call the builder makes: checking iam_instance_profile.
type IAMAPI interface {
	GetInstanceProfile(context.Context, *iam.GetInstanceProfileInput, ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error)
}

// SSMAPI is what the session_manager tunnel asks of Systems Manager.
type SSMAPI interface {
	StartSession(context.Context, *ssm.StartSessionInput, ...func(*ssm.Options)) (*ssm.StartSessionOutput, error)
	TerminateSession(context.Context, *ssm.TerminateSessionInput, ...func(*ssm.Options)) (*ssm.TerminateSessionOutput, error)
}

// Clients hands out the narrow clients of any region, and says whose
// credentials they carry. Steps get it from the state bag, so unit tests
// can hand them fakes.
type Clients interface {
	EC2(region string) ebs.BuildAPI
	KMS(region string) ebs.KMSAPI
	IAM() IAMAPI
	SSM(region string) SSMAPI
	Identity(ctx context.Context) (awsauth.Identity, error)
	// Config is the SDK configuration of the build (for the SSM plugin's
	// credentials); the zero Config for fakes.
	Config() aws.Config
}

// awsClients builds real SDK clients per region from one aws.Config.
type awsClients struct {
	cfg     aws.Config
	ec2Opts func(*ec2.Options)

	mu   sync.Mutex
	ec2s map[string]*ec2.Client
	kmss map[string]*kms.Client
	ssms map[string]*ssm.Client
}

func newAWSClients(cfg aws.Config, ec2Opts func(*ec2.Options)) *awsClients {
	return &awsClients{cfg: cfg, ec2Opts: ec2Opts, ec2s: map[string]*ec2.Client{}, kmss: map[string]*kms.Client{}, ssms: map[string]*ssm.Client{}}
}

func (c *awsClients) EC2(region string) ebs.BuildAPI {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.ec2s[region]; ok {
		return cl
	}
	cl := ec2.NewFromConfig(c.cfg, func(o *ec2.Options) { o.Region = region }, c.ec2Opts)
	c.ec2s[region] = cl
	return cl
}

func (c *awsClients) KMS(region string) ebs.KMSAPI {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.kmss[region]; ok {
		return cl
	}
	cl := kms.NewFromConfig(c.cfg, func(o *kms.Options) { o.Region = region })
	c.kmss[region] = cl
	return cl
}

func (c *awsClients) SSM(region string) SSMAPI {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.ssms[region]; ok {
		return cl
	}
	cl := ssm.NewFromConfig(c.cfg, func(o *ssm.Options) { o.Region = region })
	c.ssms[region] = cl
	return cl
}

func (c *awsClients) IAM() IAMAPI { return iam.NewFromConfig(c.cfg) }

func (c *awsClients) Config() aws.Config { return c.cfg }

func (c *awsClients) Identity(ctx context.Context) (awsauth.Identity, error) {
	return awsauth.CallerIdentity(ctx, c.cfg)
}
