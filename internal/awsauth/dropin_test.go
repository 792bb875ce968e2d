package awsauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
)

// isolate clears the SDK's environment so a test sees only what it sets.
func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID",
		"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_EC2", "VAULT_TOKEN"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv(EnvPollDelay, "")
	t.Setenv(EnvPollMaxAttempts, "")
	return dir
}

func TestAccessConfigPrepareDropIn(t *testing.T) {
	role := "arn:aws:iam::111111111111:role/build"
	cases := []struct {
		name    string
		cfg     AccessConfig
		env     map[string]string
		config  string // shared config file content
		want    []string
		wantReg string
	}{
		{name: "region from AWS_REGION", env: map[string]string{"AWS_REGION": "eu-west-1"}, wantReg: "eu-west-1"},
		{name: "region from AWS_DEFAULT_REGION", env: map[string]string{"AWS_DEFAULT_REGION": "eu-central-1"}, wantReg: "eu-central-1"},
		{name: "region from the profile", cfg: AccessConfig{Profile: "build"}, config: "[profile build]\nregion = ap-southeast-2\n", wantReg: "ap-southeast-2"},
		{name: "template region wins", cfg: AccessConfig{RawRegion: "us-west-2"}, env: map[string]string{"AWS_REGION": "eu-west-1"}, wantReg: "us-west-2"},
		{name: "no region anywhere", want: []string{"region: not set, and neither AWS_REGION"}},
		{name: "unknown region at validate", cfg: AccessConfig{RawRegion: UnknownValue}, wantReg: UnknownValue},
		{name: "vault with static keys", cfg: AccessConfig{RawRegion: "us-east-1", AccessKey: "A", SecretKey: "s", VaultAWSEngine: VaultAWSEngineOptions{Name: "r"}}, want: []string{"vault_aws_engine: set together with access_key"}},
		{name: "vault without name", cfg: AccessConfig{RawRegion: "us-east-1", VaultAWSEngine: VaultAWSEngineOptions{EngineName: "aws"}}, want: []string{"vault_aws_engine.name: not set"}},
		{name: "vault ttl without role", cfg: AccessConfig{RawRegion: "us-east-1", VaultAWSEngine: VaultAWSEngineOptions{Name: "r", TTL: "900s"}}, want: []string{"vault_aws_engine.ttl: set without role_arn"}},
		{name: "mfa code malformed", cfg: AccessConfig{RawRegion: "us-east-1", MFACode: "12ab"}, want: []string{`mfa_code: "12ab" is not an MFA code`}},
		{name: "mfa code", cfg: AccessConfig{RawRegion: "us-east-1", MFACode: "123456"}, wantReg: "us-east-1"},
		{name: "policy not JSON", cfg: AccessConfig{RawRegion: "us-east-1", AssumeRole: AssumeRoleConfig{RoleARN: role, Policy: "{Version"}}, want: []string{"assume_role.policy: not valid JSON"}},
		{name: "policy arn malformed", cfg: AccessConfig{RawRegion: "us-east-1", AssumeRole: AssumeRoleConfig{RoleARN: role, PolicyARNs: []string{"ReadOnlyAccess"}}}, want: []string{`assume_role.policy_arns: "ReadOnlyAccess"`}},
		{name: "transitive key not a tag", cfg: AccessConfig{RawRegion: "us-east-1", AssumeRole: AssumeRoleConfig{RoleARN: role, Tags: map[string]string{"team": "x"}, TransitiveTagKeys: []string{"project"}}}, want: []string{`assume_role.transitive_tag_keys: "project"`}},
		{name: "session settings without role", cfg: AccessConfig{RawRegion: "us-east-1", AssumeRole: AssumeRoleConfig{Tags: map[string]string{"a": "b"}}}, want: []string{"assume_role: settings given without role_arn"}},
		{name: "full assume_role", cfg: AccessConfig{RawRegion: "us-east-1", AssumeRole: AssumeRoleConfig{RoleARN: role, Policy: `{"Version":"2012-10-17","Statement":[]}`,
			PolicyARNs: []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"}, Tags: map[string]string{"team": "x"}, TransitiveTagKeys: []string{"team"}}}, wantReg: "us-east-1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := isolate(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.config != "" {
				if err := os.WriteFile(filepath.Join(dir, "config"), []byte(tc.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c := tc.cfg
			err := errors.Join(c.Prepare()...)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if c.RawRegion != tc.wantReg {
					t.Errorf("region = %q, want %q", c.RawRegion, tc.wantReg)
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

// fakeSTS answers AssumeRole, GetCallerIdentity and
// DecodeAuthorizationMessage, and records every form it got.
type fakeSTS struct {
	mu    sync.Mutex
	forms []url.Values
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	f.mu.Lock()
	f.forms = append(f.forms, form)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	switch form.Get("Action") {
	case "AssumeRole":
		fmt.Fprint(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>`+
			`<AccessKeyId>ASIAROLE</AccessKeyId><SecretAccessKey>role-secret</SecretAccessKey><SessionToken>tok</SessionToken>`+
			`<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::111111111111:assumed-role/build/s</Arn>`+
			`<AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>`)
	case "GetCallerIdentity":
		fmt.Fprint(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>`+
			`<Arn>arn:aws:iam::111111111111:user/u</Arn><UserId>AIDA</UserId><Account>111111111111</Account></GetCallerIdentityResult>`+
			`<ResponseMetadata><RequestId>2</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
	case "DecodeAuthorizationMessage":
		fmt.Fprintf(w, `<DecodeAuthorizationMessageResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><DecodeAuthorizationMessageResult>`+
			`<DecodedMessage>{"allowed":false,"context":{"action":"ec2:RunInstances","encoded":%q}}</DecodedMessage></DecodeAuthorizationMessageResult>`+
			`<ResponseMetadata><RequestId>3</RequestId></ResponseMetadata></DecodeAuthorizationMessageResponse>`, form.Get("EncodedMessage"))
	case "DescribeImages": // EC2, on the same endpoint
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation. `+
			`Encoded authorization failure message: ENC-123</Message></Error></Errors><RequestID>4</RequestID></Response>`)
	default:
		w.WriteHeader(http.StatusBadRequest)
	}
}

func (f *fakeSTS) form(action string) url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fm := range f.forms {
		if fm.Get("Action") == action {
			return fm
		}
	}
	return nil
}

// assume_role's session policy, managed policies, session tags and
// transitive keys reach sts:AssumeRole.
func TestAssumeRoleSessionSettingsReachSTS(t *testing.T) {
	isolate(t)
	fake := &fakeSTS{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	c := AccessConfig{RawRegion: "us-east-1", AccessKey: "AKIA1", SecretKey: "s", AssumeRole: AssumeRoleConfig{
		RoleARN: "arn:aws:iam::111111111111:role/build", Policy: `{"Version":"2012-10-17","Statement":[]}`,
		PolicyARNs: []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"},
		Tags:       map[string]string{"team": "platform", "ci": "yes"}, TransitiveTagKeys: []string{"team"},
	}}
	if errs := c.Prepare(); len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg, err := c.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || creds.AccessKeyID != "ASIAROLE" {
		t.Fatalf("credentials = %+v, %v", creds, err)
	}
	f := fake.form("AssumeRole")
	for k, v := range map[string]string{
		"Policy": `{"Version":"2012-10-17","Statement":[]}`, "PolicyArns.member.1.arn": "arn:aws:iam::aws:policy/ReadOnlyAccess",
		"Tags.member.1.Key": "ci", "Tags.member.1.Value": "yes", "Tags.member.2.Key": "team", "TransitiveTagKeys.member.1": "team",
		"RoleArn": "arn:aws:iam::111111111111:role/build",
	} {
		if f.Get(k) != v {
			t.Errorf("AssumeRole %s = %q, want %q (form %v)", k, f.Get(k), v, f)
		}
	}
}

// mfa_code answers the MFA prompt of a profile whose role has mfa_serial:
// the SDK asks AssumeRoleCredentialOptions' TokenProvider for the code.
// (The SDK's STS client for a profile's role ignores AWS_ENDPOINT_URL, so
// the test checks the option the SDK calls rather than a live AssumeRole.)
func TestMFACodeForProfileRole(t *testing.T) {
	isolate(t)
	c := AccessConfig{RawRegion: "us-east-1", Profile: "mfa", MFACode: "654321"}
	if errs := c.Prepare(); len(errs) > 0 {
		t.Fatal(errs)
	}
	opts, err := c.loadOptions()
	if err != nil {
		t.Fatal(err)
	}
	var lo config.LoadOptions
	for _, o := range opts {
		if err := o(&lo); err != nil {
			t.Fatal(err)
		}
	}
	if lo.AssumeRoleCredentialOptions == nil {
		t.Fatal("no AssumeRoleCredentialOptions with mfa_code set")
	}
	var aro stscreds.AssumeRoleOptions
	lo.AssumeRoleCredentialOptions(&aro)
	if aro.TokenProvider == nil {
		t.Fatal("no TokenProvider")
	}
	if code, err := aro.TokenProvider(); err != nil || code != "654321" {
		t.Errorf("TokenProvider() = %q, %v; want the mfa_code", code, err)
	}
	c.MFACode = ""
	opts, _ = c.loadOptions()
	lo = config.LoadOptions{}
	for _, o := range opts {
		_ = o(&lo)
	}
	if lo.AssumeRoleCredentialOptions != nil {
		t.Error("AssumeRoleCredentialOptions set without mfa_code")
	}
}

// vault_aws_engine reads creds/NAME (an IAM user role) or writes sts/NAME
// (an assumed role, with role_arn and ttl) in the engine's mount.
func TestVaultAWSEngine(t *testing.T) {
	cases := []struct {
		name       string
		opts       VaultAWSEngineOptions
		wantMethod string
		wantPath   string
		wantToken  string
	}{
		{"iam user", VaultAWSEngineOptions{Name: "build"}, http.MethodGet, "/v1/aws/creds/build", ""},
		{"assumed role", VaultAWSEngineOptions{Name: "build", RoleARN: "arn:aws:iam::111111111111:role/build", TTL: "900s", EngineName: "aws-prod"},
			http.MethodPut, "/v1/aws-prod/sts/build", "sts-token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			var gotMethod, gotPath, gotBody, gotVaultToken string
			vault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				gotMethod, gotPath, gotBody, gotVaultToken = r.Method, r.URL.Path, string(b), r.Header.Get("X-Vault-Token")
				tok := "null"
				if tc.opts.RoleARN != "" {
					tok = `"sts-token"`
				}
				fmt.Fprintf(w, `{"data":{"access_key":"AKIAVAULT","secret_key":"vault-secret","security_token":%s}}`, tok)
			}))
			defer vault.Close()
			t.Setenv("VAULT_ADDR", vault.URL)
			t.Setenv("VAULT_TOKEN", "root-token")
			c := AccessConfig{RawRegion: "us-east-1", VaultAWSEngine: tc.opts}
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
			if creds.AccessKeyID != "AKIAVAULT" || creds.SecretAccessKey != "vault-secret" || creds.SessionToken != tc.wantToken {
				t.Errorf("credentials = %+v", creds)
			}
			if gotMethod != tc.wantMethod || gotPath != tc.wantPath || gotVaultToken != "root-token" {
				t.Errorf("Vault got %s %s (token %q), want %s %s", gotMethod, gotPath, gotVaultToken, tc.wantMethod, tc.wantPath)
			}
			if tc.opts.RoleARN != "" && (!strings.Contains(gotBody, tc.opts.RoleARN) || !strings.Contains(gotBody, `"ttl":"900s"`)) {
				t.Errorf("Vault body %s lacks role_arn and ttl", gotBody)
			}
		})
	}
}

// insecure_skip_tls_verify lets the SDK talk to an endpoint whose
// certificate it can't verify; without it the call fails.
func TestInsecureSkipTLSVerify(t *testing.T) {
	isolate(t)
	srv := httptest.NewTLSServer(&fakeSTS{})
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	for _, insecure := range []bool{false, true} {
		c := AccessConfig{RawRegion: "us-east-1", AccessKey: "AKIA1", SecretKey: "s", InsecureSkipTLSVerify: insecure, MaxRetries: 1}
		if errs := c.Prepare(); len(errs) > 0 {
			t.Fatal(errs)
		}
		cfg, err := c.Config(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_, err = CallerIdentity(context.Background(), cfg)
		if insecure && err != nil {
			t.Errorf("insecure_skip_tls_verify = true: %v", err)
		}
		if !insecure && (err == nil || !strings.Contains(err.Error(), "certificate")) {
			t.Errorf("insecure_skip_tls_verify = false: want a certificate error, got %v", err)
		}
	}
}

// skip_metadata_api_check keeps the SDK away from the instance metadata
// service when looking for credentials.
func TestSkipMetadataAPICheck(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprint(skip), func(t *testing.T) {
			isolate(t)
			var hits int
			var mu sync.Mutex
			imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				hits++
				mu.Unlock()
				switch {
				case r.Method == http.MethodPut:
					w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
					fmt.Fprint(w, "token")
				case strings.HasSuffix(r.URL.Path, "/security-credentials/"):
					fmt.Fprint(w, "build")
				case strings.HasSuffix(r.URL.Path, "/security-credentials/build"):
					fmt.Fprint(w, `{"Code":"Success","AccessKeyId":"ASIAIMDS","SecretAccessKey":"x","Token":"t","Expiration":"2099-01-01T00:00:00Z"}`)
				default:
					http.NotFound(w, r)
				}
			}))
			defer imds.Close()
			t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
			t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
			c := AccessConfig{RawRegion: "us-east-1", SkipMetadataApiCheck: skip}
			if errs := c.Prepare(); len(errs) > 0 {
				t.Fatal(errs)
			}
			cfg, err := c.Config(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			creds, err := cfg.Credentials.Retrieve(context.Background())
			mu.Lock()
			defer mu.Unlock()
			if skip {
				if err == nil || hits != 0 {
					t.Errorf("skip: credentials %+v, err %v, %d IMDS requests; want none found and no request", creds, err, hits)
				}
			} else if err != nil || creds.AccessKeyID != "ASIAIMDS" {
				t.Errorf("no skip: credentials %+v, err %v; want the instance role's", creds, err)
			}
		})
	}
}

// decode_authorization_messages turns an EC2 UnauthorizedOperation with an
// encoded message into one with the decoded document, keeping the code.
func TestDecodeAuthorizationMessages(t *testing.T) {
	for _, decode := range []bool{false, true} {
		t.Run(fmt.Sprint(decode), func(t *testing.T) {
			isolate(t)
			fake := &fakeSTS{}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			t.Setenv("AWS_ENDPOINT_URL", srv.URL)
			c := AccessConfig{RawRegion: "us-east-1", AccessKey: "AKIA1", SecretKey: "s", DecodeAuthZMessages: decode, MaxRetries: 1}
			if errs := c.Prepare(); len(errs) > 0 {
				t.Fatal(errs)
			}
			cfg, err := c.Config(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_, err = ec2.NewFromConfig(cfg).DescribeImages(context.Background(), &ec2.DescribeImagesInput{})
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "UnauthorizedOperation" {
				t.Fatalf("err = %v, want UnauthorizedOperation", err)
			}
			var dec *DecodedAuthorizationError
			got := errors.As(err, &dec)
			if got != decode {
				t.Fatalf("decoded = %v, want %v (err %v)", got, decode, err)
			}
			if decode && (!strings.Contains(err.Error(), `"action":"ec2:RunInstances"`) || fake.form("DecodeAuthorizationMessage").Get("EncodedMessage") != "ENC-123") {
				t.Errorf("err = %v; want the decoded document of ENC-123", err)
			}
			if !decode && fake.form("DecodeAuthorizationMessage") != nil {
				t.Error("DecodeAuthorizationMessage called without decode_authorization_messages")
			}
		})
	}
	_ = aws.String
}
