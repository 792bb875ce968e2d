package ebs

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// Clients hands out the narrow EC2 and KMS clients of any region, and says
// whose credentials they carry. Steps get it from the state bag, so unit
// tests can hand them fakes.
type Clients interface {
	EC2(region string) ebs.EC2API
	KMS(region string) ebs.KMSAPI
	Identity(ctx context.Context) (awsauth.Identity, error)
}

// awsClients builds real SDK clients per region from one aws.Config.
type awsClients struct {
	cfg     aws.Config
	ec2Opts func(*ec2.Options)

	mu   sync.Mutex
	ec2s map[string]*ec2.Client
	kmss map[string]*kms.Client
}

func newAWSClients(cfg aws.Config, ec2Opts func(*ec2.Options)) *awsClients {
	return &awsClients{cfg: cfg, ec2Opts: ec2Opts, ec2s: map[string]*ec2.Client{}, kmss: map[string]*kms.Client{}}
}

func (c *awsClients) EC2(region string) ebs.EC2API {
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

func (c *awsClients) Identity(ctx context.Context) (awsauth.Identity, error) {
	return awsauth.CallerIdentity(ctx, c.cfg)
}
