//go:generate go tool packer-sdc mapstructure-to-hcl2 -type AccessConfig,AssumeRoleConfig,PollingConfig,VaultAWSEngineOptions
// packer-sdc struct-markdown finds the project root by a parent directory
// named packer-plugin-* and loops forever without one, so it runs through a
// symlink with that name.
//go:generate sh -c "ln -sfn \"$(dirname $(go env GOMOD))\" \"${TMPDIR:-/tmp}/packer-plugin-amicrypt\" && cd \"${TMPDIR:-/tmp}/packer-plugin-amicrypt/internal/awsauth\" && go tool packer-sdc struct-markdown"

// Package awsauth turns the Amazon-plugin-style access settings of a template
// into an aws.Config: credentials, assume-role, endpoints, retries and polling.
package awsauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
)

// DefaultMaxRetries is used when max_retries is not set. Fan-outs across many
// accounts and regions meet throttling; ten retries with adaptive back-off
// ride it out without hiding real failures for long.
const DefaultMaxRetries = 10

// AssumeRoleConfig asks for credentials of another role through sts:AssumeRole,
// made with the credentials found by the rest of the access configuration.
type AssumeRoleConfig struct {
	// The ARN of the role to assume, e.g. `arn:aws:iam::111111111111:role/amicrypt-build`.
	RoleARN string `mapstructure:"role_arn" required:"false"`
	// The external ID the role's trust policy requires, if any.
	ExternalID string `mapstructure:"external_id" required:"false"`
	// The session name recorded in CloudTrail. Defaults to `amicrypt`.
	SessionName string `mapstructure:"session_name" required:"false"`
	// How long the role's credentials last, in seconds (900–43200). Defaults
	// to the SDK's 900; the SDK refreshes them as needed.
	DurationSeconds int `mapstructure:"duration_seconds" required:"false"`
	// An IAM policy (JSON) that further restricts the session's permissions:
	// the session may do only what both the role and this policy allow.
	Policy string `mapstructure:"policy" required:"false"`
	// ARNs of managed policies that further restrict the session, like `policy`.
	PolicyARNs []string `mapstructure:"policy_arns" required:"false"`
	// Session tags passed to sts:AssumeRole.
	Tags map[string]string `mapstructure:"tags" required:"false"`
	// Keys of `tags` that carry over to roles this session assumes in turn.
	TransitiveTagKeys []string `mapstructure:"transitive_tag_keys" required:"false"`
}

// VaultAWSEngineOptions gets the AWS credentials from HashiCorp Vault's AWS
// secrets engine instead of the SDK's chain. The Vault address and token
// come from `VAULT_ADDR` and `VAULT_TOKEN` (and the other `VAULT_*`
// variables of the Vault client).
type VaultAWSEngineOptions struct {
	// The name of the Vault role to read credentials of.
	Name string `mapstructure:"name" required:"false"`
	// With an `assumed_role` Vault role: the ARN of the AWS role to assume
	// (read through `sts/NAME`).
	RoleARN string `mapstructure:"role_arn" required:"false"`
	// The lease of STS credentials, e.g. `"3600s"`; with `role_arn` only.
	TTL string `mapstructure:"ttl" required:"false"`
	// The mount path of the AWS secrets engine. Defaults to `aws`.
	EngineName string `mapstructure:"engine_name" required:"false"`
}

// Empty reports whether no Vault setting is given.
func (v *VaultAWSEngineOptions) Empty() bool {
	return v.Name == "" && v.RoleARN == "" && v.EngineName == "" && v.TTL == ""
}

// AccessConfig holds the credentials, region and API behaviour settings. The
// field names are those of the Amazon plugin, so templates carry over.
type AccessConfig struct {
	// The region to build in, e.g. `us-east-1`. When not set, the region of
	// the SDK's configuration is used: `AWS_REGION`, `AWS_DEFAULT_REGION`, or
	// the `region` of the profile.
	RawRegion string `mapstructure:"region" required:"true"`
	// The profile of the shared configuration and credentials files to use.
	Profile string `mapstructure:"profile" required:"false"`
	// The access key ID. Leave unset to use the SDK's credential chain
	// (environment, shared files, SSO, instance/container roles).
	AccessKey string `mapstructure:"access_key" required:"false"`
	// The secret access key that goes with `access_key`.
	SecretKey string `mapstructure:"secret_key" required:"false"`
	// The session token of temporary credentials, with `access_key` and `secret_key`.
	Token string `mapstructure:"token" required:"false"`
	// Path of a shared credentials file to read instead of `~/.aws/credentials`.
	SharedCredentialsFile string `mapstructure:"shared_credentials_file" required:"false"`
	// Assume this role before making any call. See the `assume_role` block.
	AssumeRole AssumeRoleConfig `mapstructure:"assume_role" required:"false"`
	// An EC2 endpoint URL to use instead of the default one, e.g. a VPC
	// endpoint. `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_EC2` are honoured too.
	CustomEndpointEc2 string `mapstructure:"custom_endpoint_ec2" required:"false"`
	// Don't check the credentials with sts:GetCallerIdentity before the build.
	SkipCredsValidation bool `mapstructure:"skip_credential_validation" required:"false"`
	// How many times an API call is retried on throttling or a transient
	// error, with adaptive client-side rate limiting. Defaults to 10.
	MaxRetries int `mapstructure:"max_retries" required:"false"`
	// How often and how long to poll for long operations (snapshots, copies,
	// images). See the `aws_polling` block.
	PollingConfig *PollingConfig `mapstructure:"aws_polling" required:"false"`
	// The current code of the MFA device, for a profile whose role requires
	// MFA (`mfa_serial` in the shared configuration file).
	MFACode string `mapstructure:"mfa_code" required:"false"`
	// Read the credentials from Vault's AWS secrets engine. See the
	// `vault_aws_engine` block.
	VaultAWSEngine VaultAWSEngineOptions `mapstructure:"vault_aws_engine" required:"false"`
	// Don't verify the TLS certificates of AWS endpoints (for a TLS-inspecting
	// proxy or a private endpoint with a self-signed certificate). Insecure:
	// prefer adding the CA to the system's trust store.
	InsecureSkipTLSVerify bool `mapstructure:"insecure_skip_tls_verify" required:"false"`
	// Don't look for credentials in the EC2 instance metadata service, so a
	// build outside EC2 doesn't wait for it.
	SkipMetadataApiCheck bool `mapstructure:"skip_metadata_api_check" required:"false"`
	// Decode the encoded message of an `UnauthorizedOperation` error with
	// sts:DecodeAuthorizationMessage and show it: which action, resource
	// and condition were denied. The principal needs that permission.
	DecodeAuthZMessages bool `mapstructure:"decode_authorization_messages" required:"false"`
}

var (
	regionPattern    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d{1,2}$`)
	roleARNPattern   = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$`)
	policyARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]+$`)
	mfaCodePattern   = regexp.MustCompile(`^\d{6}$`)
)

// ValidRegion reports whether s has the shape of an AWS region name.
func ValidRegion(s string) bool { return regionPattern.MatchString(s) }

// Region is the configured build region.
func (c *AccessConfig) Region() string { return c.RawRegion }

// Unknown reports whether a template value is not known yet: `packer
// validate` passes "<unknown>" for values that come from data sources it
// doesn't run (HashiCorp's amazon-ami, for instance). Such a value is checked
// when the build runs, where Packer passes the real one.
func Unknown(s string) bool { return s == UnknownValue }

// UnknownValue is the placeholder Packer writes for a string not known at
// `packer validate`.
const UnknownValue = "<unknown>"

// Prepare validates the access settings. It makes no API call; a region
// not in the template is looked up in the environment and shared files.
func (c *AccessConfig) Prepare() []error {
	var errs []error
	if c.RawRegion == "" {
		c.RawRegion = c.sdkRegion()
	}
	switch {
	case Unknown(c.RawRegion):
	case c.RawRegion == "":
		errs = append(errs, errors.New(`region: not set, and neither AWS_REGION, AWS_DEFAULT_REGION nor the profile's configuration names one; set region = "us-east-1" (or the region to build in)`))
	case !ValidRegion(c.RawRegion):
		errs = append(errs, fmt.Errorf("region: %q is not a region name; use a name such as \"us-east-1\"", c.RawRegion))
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		errs = append(errs, errors.New("access_key, secret_key: set both or neither (neither uses the SDK's credential chain)"))
	}
	if !c.VaultAWSEngine.Empty() {
		if c.AccessKey != "" || c.SecretKey != "" {
			errs = append(errs, errors.New("vault_aws_engine: set together with access_key/secret_key; the credentials come from one place: remove access_key and secret_key, or the vault_aws_engine block"))
		}
		if c.VaultAWSEngine.Name == "" {
			errs = append(errs, errors.New(`vault_aws_engine.name: not set; name the Vault role, e.g. name = "packer-build"`))
		}
		if c.VaultAWSEngine.TTL != "" && c.VaultAWSEngine.RoleARN == "" {
			errs = append(errs, errors.New("vault_aws_engine.ttl: set without role_arn; Vault leases STS credentials only for an assumed role: add role_arn or remove ttl"))
		}
	}
	if c.MFACode != "" && !mfaCodePattern.MatchString(c.MFACode) {
		errs = append(errs, fmt.Errorf("mfa_code: %q is not an MFA code; use the 6 digits the device shows", c.MFACode))
	}
	if c.Token != "" && c.AccessKey == "" {
		errs = append(errs, errors.New("token: set only with access_key and secret_key"))
	}
	if c.SharedCredentialsFile != "" {
		if _, err := os.Stat(c.SharedCredentialsFile); err != nil {
			errs = append(errs, fmt.Errorf("shared_credentials_file: %q can't be read (%w); fix the path or remove the setting", c.SharedCredentialsFile, err))
		}
	}
	errs = append(errs, c.AssumeRole.prepare()...)
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("max_retries: %d is negative; use 0 for the default (%d) or a positive count", c.MaxRetries, DefaultMaxRetries))
	}
	if c.PollingConfig == nil {
		c.PollingConfig = &PollingConfig{}
	}
	errs = append(errs, c.PollingConfig.Prepare()...)
	return errs
}

func (a *AssumeRoleConfig) prepare() []error {
	var errs []error
	if a.RoleARN == "" {
		if a.ExternalID != "" || a.SessionName != "" || a.DurationSeconds != 0 || a.Policy != "" || len(a.PolicyARNs) > 0 || len(a.Tags) > 0 || len(a.TransitiveTagKeys) > 0 {
			errs = append(errs, errors.New("assume_role: settings given without role_arn; add role_arn = \"arn:aws:iam::ACCOUNT:role/NAME\""))
		}
		return errs
	}
	if a.Policy != "" && !json.Valid([]byte(a.Policy)) {
		errs = append(errs, errors.New("assume_role.policy: not valid JSON; give an IAM policy document, e.g. jsonencode({Version = \"2012-10-17\", Statement = [...]})"))
	}
	for _, arn := range a.PolicyARNs {
		if !policyARNPattern.MatchString(arn) && !Unknown(arn) {
			errs = append(errs, fmt.Errorf("assume_role.policy_arns: %q is not a managed policy ARN; use arn:aws:iam::aws:policy/NAME or arn:aws:iam::ACCOUNT:policy/NAME", arn))
		}
	}
	for _, k := range a.TransitiveTagKeys {
		if _, ok := a.Tags[k]; !ok {
			errs = append(errs, fmt.Errorf("assume_role.transitive_tag_keys: %q is not a key of assume_role.tags; a transitive key must be a session tag", k))
		}
	}
	if !roleARNPattern.MatchString(a.RoleARN) {
		errs = append(errs, fmt.Errorf("assume_role.role_arn: %q is not a role ARN; use arn:aws:iam::ACCOUNT:role/NAME", a.RoleARN))
	}
	if err := ValidateExternalID("assume_role.external_id", a.ExternalID); err != nil && !Unknown(a.ExternalID) {
		errs = append(errs, err)
	}
	if a.DurationSeconds != 0 && (a.DurationSeconds < 900 || a.DurationSeconds > 43200) {
		errs = append(errs, fmt.Errorf("assume_role.duration_seconds: %d is out of range; use 900 to 43200 seconds", a.DurationSeconds))
	}
	if a.SessionName == "" {
		a.SessionName = "amicrypt"
	}
	return errs
}

// Config builds the aws.Config for the build region from the settings, the
// SDK's credential chain (or Vault) and AWS_ENDPOINT_URL*, with adaptive
// retries.
func (c *AccessConfig) Config(ctx context.Context) (aws.Config, error) {
	opts, err := c.loadOptions()
	if err != nil {
		return aws.Config{}, err
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	// AWS_MAX_ATTEMPTS is also the Amazon plugin's polling setting; our own
	// retryer (max_retries) decides API retries, so the SDK must not apply it.
	cfg.RetryMaxAttempts = 0
	if c.AssumeRole.RoleARN != "" {
		cfg = AssumeRole(cfg, RoleOptions{
			RoleARN:           c.AssumeRole.RoleARN,
			ExternalID:        c.AssumeRole.ExternalID,
			SessionName:       c.AssumeRole.SessionName,
			Duration:          time.Duration(c.AssumeRole.DurationSeconds) * time.Second,
			Policy:            c.AssumeRole.Policy,
			PolicyARNs:        c.AssumeRole.PolicyARNs,
			Tags:              c.AssumeRole.Tags,
			TransitiveTagKeys: c.AssumeRole.TransitiveTagKeys,
		})
	}
	if c.DecodeAuthZMessages {
		cfg.APIOptions = append(cfg.APIOptions, decodeAuthorizationMessages(sts.NewFromConfig(cfg)))
	}
	return cfg, nil
}

// loadOptions are the SDK configuration options of the settings.
func (c *AccessConfig) loadOptions() ([]func(*config.LoadOptions) error, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(c.RawRegion),
		config.WithRetryer(func() aws.Retryer { return NewRetryer(c.MaxRetries) }),
	}
	if c.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.Profile))
	}
	if c.SharedCredentialsFile != "" {
		opts = append(opts, config.WithSharedCredentialsFiles([]string{c.SharedCredentialsFile}))
	}
	accessKey, secretKey, token := c.AccessKey, c.SecretKey, c.Token
	if !c.VaultAWSEngine.Empty() {
		creds, err := c.VaultAWSEngine.credentials()
		if err != nil {
			return nil, err
		}
		accessKey, secretKey, token = creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken
	}
	if accessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(accessKey, secretKey, token)))
	}
	if c.MFACode != "" {
		code := c.MFACode
		opts = append(opts, config.WithAssumeRoleCredentialOptions(func(o *stscreds.AssumeRoleOptions) {
			o.TokenProvider = func() (string, error) { return code, nil }
		}))
	}
	if c.SkipMetadataApiCheck {
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	if c.InsecureSkipTLSVerify {
		opts = append(opts, config.WithHTTPClient(insecureHTTPClient()))
	}
	return opts, nil
}

// sdkRegion is the region the SDK would use without one in the template:
// AWS_REGION, AWS_DEFAULT_REGION or the profile's. It reads only the
// environment and the shared files.
func (c *AccessConfig) sdkRegion() string {
	opts := []func(*config.LoadOptions) error{}
	if c.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.Profile))
	}
	if r := os.Getenv("AWS_DEFAULT_REGION"); r != "" && os.Getenv("AWS_REGION") == "" {
		// The SDK for Go v2 reads AWS_REGION only; the AWS CLI and the
		// Amazon plugin (SDK v1) also read AWS_DEFAULT_REGION.
		opts = append(opts, config.WithDefaultRegion(r))
	}
	cfg, err := config.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return ""
	}
	return cfg.Region
}

// EC2Options applies custom_endpoint_ec2 to an EC2 client.
func (c *AccessConfig) EC2Options() func(*ec2.Options) {
	return func(o *ec2.Options) {
		if c.CustomEndpointEc2 != "" {
			o.BaseEndpoint = aws.String(c.CustomEndpointEc2)
		}
	}
}

// NewRetryer is the retryer every amicrypt client uses: the SDK's adaptive
// mode (client-side rate limiting on throttling) with maxRetries retries.
func NewRetryer(maxRetries int) aws.Retryer {
	if maxRetries <= 0 {
		maxRetries = DefaultMaxRetries
	}
	return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
		o.StandardOptions = append(o.StandardOptions, func(so *retry.StandardOptions) {
			so.MaxAttempts = maxRetries + 1
			so.MaxBackoff = 20 * time.Second
			// The standard retry quota (a bucket shared by every call of a
			// client) fails calls outright after ~100 retries, which a
			// throttled fan-out reaches quickly; the adaptive rate limiter
			// already slows us down, so the quota is switched off.
			so.RateLimiter = ratelimit.None
		})
	})
}

// RoleOptions names a role to assume.
type RoleOptions struct {
	RoleARN     string
	ExternalID  string
	SessionName string        // defaults to "amicrypt"
	Duration    time.Duration // 0: the SDK default
	// Policy and PolicyARNs restrict the session further (session policies).
	Policy     string
	PolicyARNs []string
	// Tags are session tags; TransitiveTagKeys those that carry over to
	// roles the session assumes in turn.
	Tags              map[string]string
	TransitiveTagKeys []string
}

// AssumeRole returns a copy of base whose credentials come from
// sts:AssumeRole of the role, made with base's credentials. The credentials
// are fetched on first use and refreshed before they expire.
func AssumeRole(base aws.Config, r RoleOptions) aws.Config {
	cfg := base.Copy()
	name := r.SessionName
	if name == "" {
		name = "amicrypt"
	}
	provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(base), r.RoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = name
		if r.ExternalID != "" {
			o.ExternalID = aws.String(r.ExternalID)
		}
		if r.Duration > 0 {
			o.Duration = r.Duration
		}
		if r.Policy != "" {
			o.Policy = aws.String(r.Policy)
		}
		for _, arn := range r.PolicyARNs {
			o.PolicyARNs = append(o.PolicyARNs, ststypes.PolicyDescriptorType{Arn: aws.String(arn)})
		}
		keys := make([]string, 0, len(r.Tags))
		for k := range r.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			o.Tags = append(o.Tags, ststypes.Tag{Key: aws.String(k), Value: aws.String(r.Tags[k])})
		}
		o.TransitiveTagKeys = r.TransitiveTagKeys
	})
	cfg.Credentials = aws.NewCredentialsCache(provider)
	return cfg
}

// Identity is who the credentials belong to.
type Identity struct {
	Account string
	ARN     string
}

// CallerIdentity checks the credentials with sts:GetCallerIdentity.
func CallerIdentity(ctx context.Context, cfg aws.Config) (Identity, error) {
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return Identity{}, fmt.Errorf("checking AWS credentials with sts:GetCallerIdentity: %w", err)
	}
	return Identity{Account: aws.ToString(out.Account), ARN: aws.ToString(out.Arn)}, nil
}
