// Package emutest runs the local AWS emulator for Go tests and benchmarks:
// start it on loopback, get SDK configs for an account or an assumed role,
// point the environment at it, and read its audit and invariant checker.
package emutest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// Server is an emulator serving a test on 127.0.0.1.
type Server struct {
	*awsemu.Server
}

// Start runs an emulator for a test on 127.0.0.1 and stops it when the test
// ends. A zero TimeScale becomes 0.001 (one emulated second per millisecond).
func Start(t testing.TB, opts awsemu.Options) *Server {
	t.Helper()
	if opts.TimeScale == 0 {
		opts.TimeScale = 0.001
	}
	s, err := awsemu.Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatalf("starting the AWS emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stopping the AWS emulator: %v", err)
		}
	})
	return &Server{Server: s}
}

// Config returns an aws.Config for the account's default user in region,
// pointed at the server and isolated from the environment's shared files.
func (s *Server) Config(ctx context.Context, account, region string) aws.Config {
	ak, sk, err := s.Emulator().Credentials(account)
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
	return s.config(ctx, region, &emulatorClockCache{emu: s.Emulator(), provider: assume})
}

// emulatorClockCache caches credentials until the emulator clock (not the
// wall clock, which Advance does not move) reaches a minute before expiry.
type emulatorClockCache struct {
	emu      *awsemu.Emulator
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
		config.WithBaseEndpoint(s.URL()),
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

// PointEnv points the SDK's environment (and so code under test that loads
// its own config) at the server, isolated from the machine's shared config
// files and instance metadata. With an account, that account's default
// user's keys become the environment's credentials.
func (s *Server) PointEnv(t testing.TB, account string) {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{
		"AWS_ENDPOINT_URL":            s.URL(),
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_MAX_ATTEMPTS":            "",
	}
	if account != "" {
		ak, sk, err := s.Emulator().Credentials(account)
		if err != nil {
			t.Fatal(err)
		}
		env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"] = ak, sk, ""
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// Mark is the audit position now: pass it as SinceSeq to look only at what
// happens after.
func (s *Server) Mark() int { return s.Emulator().CheckMark() }

// Calls counts the audit entries that match f.
func (s *Server) Calls(f awsemu.AuditFilter) int { return len(s.Emulator().Audit(f)) }

// MustPass runs the invariant checker and fails the test on any finding.
func (s *Server) MustPass(t testing.TB, opts awsemu.CheckOptions) awsemu.CheckReport {
	t.Helper()
	rep := s.Emulator().Check(opts)
	if !rep.Pass {
		t.Errorf("invariant checker: %s", rep)
	}
	return rep
}
