package awsauth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

func TestAccessConfigPrepare(t *testing.T) {
	cases := []struct {
		name string
		cfg  AccessConfig
		want []string // substrings expected in the joined error; nil: valid
	}{
		{"minimal", AccessConfig{RawRegion: "us-east-1"}, nil},
		{"static keys", AccessConfig{RawRegion: "eu-west-1", AccessKey: "AKIA1", SecretKey: "s"}, nil},
		{"no region", AccessConfig{Profile: "no-such-profile-region"}, []string{"region: not set"}},
		{"bad region", AccessConfig{RawRegion: "us_east_1"}, []string{`region: "us_east_1"`}},
		{"half keys", AccessConfig{RawRegion: "us-east-1", AccessKey: "AKIA1"}, []string{"access_key, secret_key"}},
		{"token alone", AccessConfig{RawRegion: "us-east-1", Token: "t"}, []string{"token:"}},
		{"missing creds file", AccessConfig{RawRegion: "us-east-1", SharedCredentialsFile: "/nonexistent/creds"}, []string{`shared_credentials_file: "/nonexistent/creds"`}},
		{"bad role", AccessConfig{RawRegion: "us-east-1", AssumeRole: AssumeRoleConfig{RoleARN: "amicrypt-build"}}, []string{`assume_role.role_arn: "amicrypt-build"`}},
		{"role duration", AccessConfig{RawRegion: "us-east-1", AssumeRole: AssumeRoleConfig{RoleARN: "arn:aws:iam::111111111111:role/x", DurationSeconds: 60}}, []string{"assume_role.duration_seconds: 60"}},
		{"external id without role", AccessConfig{RawRegion: "us-east-1", AssumeRole: AssumeRoleConfig{ExternalID: "x"}}, []string{"without role_arn"}},
		{"negative retries", AccessConfig{RawRegion: "us-east-1", MaxRetries: -1}, []string{"max_retries: -1"}},
		{"negative delay", AccessConfig{RawRegion: "us-east-1", PollingConfig: &PollingConfig{DelaySeconds: -5}}, []string{"aws_polling.delay_seconds: -5"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvPollDelay, "")
			t.Setenv(EnvPollMaxAttempts, "")
			err := errors.Join(tc.cfg.Prepare()...)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want error containing %q, got none", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestAccessConfigDefaultsSessionName(t *testing.T) {
	c := AccessConfig{RawRegion: "us-east-1", AssumeRole: AssumeRoleConfig{RoleARN: "arn:aws:iam::111111111111:role/amicrypt-build"}}
	if errs := c.Prepare(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if c.AssumeRole.SessionName != "amicrypt" {
		t.Errorf("session name = %q, want amicrypt", c.AssumeRole.SessionName)
	}
}

func TestConfigStaticCredentialsAndRetries(t *testing.T) {
	t.Setenv("AWS_MAX_ATTEMPTS", "500") // the polling variable must not leak into API retries
	c := AccessConfig{RawRegion: "eu-central-1", AccessKey: "AKIA1111111111111111", SecretKey: "emu-secret", MaxRetries: 4}
	if errs := c.Prepare(); len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg, err := c.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-central-1" {
		t.Errorf("region = %q", cfg.Region)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "AKIA1111111111111111" || creds.SecretAccessKey != "emu-secret" {
		t.Errorf("credentials = %+v", creds)
	}
	if cfg.RetryMaxAttempts != 0 {
		t.Errorf("RetryMaxAttempts = %d, want 0 (our retryer decides)", cfg.RetryMaxAttempts)
	}
	if got := cfg.Retryer().MaxAttempts(); got != 5 {
		t.Errorf("MaxAttempts = %d, want max_retries+1 = 5", got)
	}
}

func TestNewRetryerDefault(t *testing.T) {
	if got := NewRetryer(0).MaxAttempts(); got != DefaultMaxRetries+1 {
		t.Errorf("MaxAttempts = %d, want %d", got, DefaultMaxRetries+1)
	}
}

func TestEC2OptionsCustomEndpoint(t *testing.T) {
	c := AccessConfig{CustomEndpointEc2: "https://vpce.example:8443"}
	var o ec2.Options
	c.EC2Options()(&o)
	if aws.ToString(o.BaseEndpoint) != "https://vpce.example:8443" {
		t.Errorf("BaseEndpoint = %v", aws.ToString(o.BaseEndpoint))
	}
	var unset ec2.Options
	(&AccessConfig{}).EC2Options()(&unset)
	if unset.BaseEndpoint != nil {
		t.Errorf("BaseEndpoint set without custom_endpoint_ec2")
	}
}

func TestPollingConfig(t *testing.T) {
	cases := []struct {
		name         string
		cfg          PollingConfig
		envDelay     string
		envAttempts  string
		wantDelay    time.Duration
		wantAttempts int
		wantErr      string
	}{
		{name: "defaults", wantDelay: 15 * time.Second, wantAttempts: 1440},
		{name: "template delay keeps six-hour budget", cfg: PollingConfig{DelaySeconds: 60}, wantDelay: time.Minute, wantAttempts: 360},
		{name: "template wins over env", cfg: PollingConfig{DelaySeconds: 5, MaxAttempts: 7}, envDelay: "30", envAttempts: "9", wantDelay: 5 * time.Second, wantAttempts: 7},
		{name: "env seconds", envDelay: "30", envAttempts: "100", wantDelay: 30 * time.Second, wantAttempts: 100},
		{name: "env fractional seconds", envDelay: "0.01", wantDelay: 10 * time.Millisecond, wantAttempts: 2160000},
		{name: "env bad delay", envDelay: "5s", wantErr: `AWS_POLL_DELAY_SECONDS: "5s"`},
		{name: "env bad attempts", envAttempts: "-3", wantErr: `AWS_MAX_ATTEMPTS: "-3"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvPollDelay, tc.envDelay)
			t.Setenv(EnvPollMaxAttempts, tc.envAttempts)
			p := tc.cfg
			err := errors.Join(p.Prepare()...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Delay() != tc.wantDelay || p.Attempts() != tc.wantAttempts {
				t.Errorf("delay, attempts = %v, %d; want %v, %d", p.Delay(), p.Attempts(), tc.wantDelay, tc.wantAttempts)
			}
			if tc.cfg.MaxAttempts == 0 && tc.envAttempts == "" && p.Timeout() < 2*time.Hour {
				t.Errorf("timeout %v would fail a two-hour copy", p.Timeout())
			}
		})
	}
}

// profile picks a section of shared_credentials_file; static keys and the
// environment are not involved.
func TestConfigProfileFromSharedCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	credsFile := filepath.Join(dir, "credentials")
	data := "[default]\naws_access_key_id = AKIADEFAULT000000000\naws_secret_access_key = default-secret\n\n" +
		"[build]\naws_access_key_id = AKIA1111111111111111\naws_secret_access_key = emu-secret-111111111111\n"
	if err := os.WriteFile(credsFile, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	c := AccessConfig{RawRegion: "us-west-2", Profile: "build", SharedCredentialsFile: credsFile}
	if errs := c.Prepare(); len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg, err := c.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "AKIA1111111111111111" || creds.SecretAccessKey != "emu-secret-111111111111" {
		t.Errorf("credentials = %s / %s, want the build profile's", creds.AccessKeyID, creds.SecretAccessKey)
	}
}
