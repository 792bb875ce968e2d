package awsemu

// Temporary test harness for this package's own tests, until they move to
// the per-service packages and use emutest (which this package's internal
// tests cannot import: emutest imports awsemu).

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Start runs an emulator for a test on 127.0.0.1 and stops it when the test
// ends. A zero TimeScale becomes 0.001 (one emulated second per millisecond).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.TimeScale == 0 {
		opts.TimeScale = 0.001
	}
	s, err := Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatalf("starting the AWS emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stopping the AWS emulator: %v", err)
		}
	})
	return s
}

// Config returns an aws.Config for the account's default user in region,
// pointed at the server and isolated from the environment's shared files.
func (s *Server) Config(ctx context.Context, account, region string) aws.Config {
	ak, sk, err := s.emu.Credentials(account)
	if err != nil {
		panic(err) // a test asked for an account its world lacks
	}
	return s.config(ctx, region, credentials.NewStaticCredentialsProvider(ak, sk, ""))
}

// RoleConfig returns an aws.Config whose credentials come from
// sts:AssumeRole of roleARN by srcAccount's default user. They are renewed
// when the emulator clock says they are about to expire, so tests that
// Advance the clock keep working the way a long-running SDK client does.
func (s *Server) RoleConfig(ctx context.Context, srcAccount, roleARN, externalID, region string) aws.Config {
	src := s.Config(ctx, srcAccount, region)
	assume := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(src), roleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = "awsemu-" + srcAccount
		if externalID != "" {
			o.ExternalID = aws.String(externalID)
		}
	})
	return s.config(ctx, region, &emulatorClockCache{emu: s.emu, provider: assume})
}

// emulatorClockCache caches credentials until the emulator clock (not the
// wall clock, which Advance does not move) reaches a minute before expiry.
type emulatorClockCache struct {
	emu      *Emulator
	provider aws.CredentialsProvider
	mu       sync.Mutex
	creds    aws.Credentials
}

func (c *emulatorClockCache) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.creds.HasKeys() && (!c.creds.CanExpire || c.emu.Now().Before(c.creds.Expires.Add(-time.Minute))) {
		return c.creds, nil
	}
	creds, err := c.provider.Retrieve(ctx)
	if err != nil {
		return aws.Credentials{}, err
	}
	c.creds = creds
	return creds, nil
}

func (s *Server) config(ctx context.Context, region string, creds aws.CredentialsProvider) aws.Config {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(region),
		config.WithCredentialsProvider(creds),
		config.WithBaseEndpoint(s.url),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithSharedConfigProfile(""),
	)
	if err != nil {
		panic(fmt.Errorf("building an aws.Config for the emulator: %w", err))
	}
	// LoadDefaultConfig wraps providers in a wall-clock cache; keep ours.
	cfg.Credentials = creds
	return cfg
}
