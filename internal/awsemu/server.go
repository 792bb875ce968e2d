package awsemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Server is an emulator listening on a loopback address.
type Server struct {
	emu  *Emulator
	ln   net.Listener
	http *http.Server
	url  string
	done chan error
}

// Listen starts an emulator on addr, which must be a loopback address
// ("127.0.0.1:4566", "127.0.0.1:0" for any free port).
func Listen(addr string, opts Options) (*Server, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	emu, err := New(opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		emu.Close()
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	s := &Server{
		emu:  emu,
		ln:   ln,
		http: &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second},
		url:  "http://" + ln.Addr().String(),
		done: make(chan error, 1),
	}
	go func() { s.done <- s.http.Serve(ln) }()
	return s, nil
}

// checkLoopback refuses addresses other machines could reach.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w (expected HOST:PORT, e.g. 127.0.0.1:4566)", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q: the emulator listens on loopback only; use 127.0.0.1:PORT", addr)
	}
	return nil
}

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

// URL is the endpoint of every service: http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.url }

// Emulator is the emulator behind the server.
func (s *Server) Emulator() *Emulator { return s.emu }

// Shutdown stops accepting calls, waits for the ones in flight until ctx
// ends, then closes what is left and the emulator (saving the state file).
// Connections that clients opened but never used don't hold it up.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = s.http.Close()
	}
	if serveErr := <-s.done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	if cerr := s.emu.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// Close is Shutdown with a one-second grace period.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// Credentials returns the access key and secret of the account's first user.
func (e *Emulator) Credentials(account string) (accessKey, secretKey string, err error) {
	a, ok := e.iam.accounts[account]
	if !ok {
		return "", "", fmt.Errorf("account %s is not in the emulator's world", account)
	}
	if len(a.Users) == 0 {
		return "", "", fmt.Errorf("account %s has no IAM user with an access key in the world", account)
	}
	return a.Users[0].AccessKey, a.Users[0].SecretKey, nil
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
