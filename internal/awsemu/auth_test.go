package awsemu_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// callEach makes one cheap call per service with cfg and returns the errors.
func callEach(ctx context.Context, cfg aws.Config) map[string]error {
	cfg.RetryMaxAttempts = 1
	_, ec2Err := ec2.NewFromConfig(cfg).DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	_, kmsErr := kms.NewFromConfig(cfg).ListKeys(ctx, &kms.ListKeysInput{})
	_, stsErr := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	return map[string]error{"ec2": ec2Err, "kms": kmsErr, "sts": stsErr}
}
func TestAuthErrors(t *testing.T) {
	ctx := context.Background()
	srv := emutest.Start(t, awsemu.Options{})
	role, err := sts.NewFromConfig(srv.Config(ctx, "111111111111", "us-east-1")).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::222222222222:role/amicrypt-copy"), RoleSessionName: aws.String("auth-test"),
	})
	if err != nil {
		t.Fatal(err)
	}
	rc := role.Credentials
	session := func(token string) aws.CredentialsProvider {
		return credentials.NewStaticCredentialsProvider(aws.ToString(rc.AccessKeyId), aws.ToString(rc.SecretAccessKey), token)
	}
	tests := []struct {
		name   string
		region string
		creds  aws.CredentialsProvider
		// want per service; "" means success
		ec2, kms, sts string
		before        func()
	}{
		{name: "valid user key", region: "us-east-1", creds: credentials.NewStaticCredentialsProvider("AKIA2222222222222222", "emu-secret-222222222222", "")},
		{name: "valid session", region: "us-east-1", creds: session(aws.ToString(rc.SessionToken))},
		{name: "wrong secret", region: "us-east-1", creds: credentials.NewStaticCredentialsProvider("AKIA2222222222222222", "wrong", ""),
			ec2: "AuthFailure", kms: "UnrecognizedClientException", sts: "SignatureDoesNotMatch"},
		{name: "unknown access key", region: "us-east-1", creds: credentials.NewStaticCredentialsProvider("AKIA9999999999999999", "x", ""),
			ec2: "AuthFailure", kms: "UnrecognizedClientException", sts: "InvalidClientTokenId"},
		{name: "wrong session token", region: "us-east-1", creds: session("not-the-token"),
			ec2: "AuthFailure", kms: "UnrecognizedClientException", sts: "InvalidClientTokenId"},
		{name: "region not enabled", region: "ap-southeast-3", creds: credentials.NewStaticCredentialsProvider("AKIA2222222222222222", "emu-secret-222222222222", ""),
			ec2: "AuthFailure", kms: "UnrecognizedClientException"},
		{name: "expired session", region: "us-east-1", creds: session(aws.ToString(rc.SessionToken)),
			before: func() { srv.Emulator().Advance(time.Hour + time.Second) },
			ec2:    "RequestExpired", kms: "ExpiredTokenException", sts: "ExpiredToken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			cfg := srv.Config(ctx, "222222222222", tc.region)
			cfg.Credentials = tc.creds
			errs := callEach(ctx, cfg)
			for svc, want := range map[string]string{"ec2": tc.ec2, "kms": tc.kms, "sts": tc.sts} {
				got := emutest.APICode(errs[svc])
				// With the EC2 side absent, an authenticated EC2 call may
				// fail in the handler; only auth outcomes matter here.
				if svc == "ec2" && want == "" && got == "InvalidAction" {
					continue
				}
				if got != want {
					t.Errorf("%s: got %q (%v), want %q", svc, got, errs[svc], want)
				}
			}
		})
	}
}
func TestUnsignedRequest(t *testing.T) {
	srv := emutest.Start(t, awsemu.Options{})
	tests := []struct {
		name, body, target, want string
		status                   int
	}{
		{"ec2", "Action=DescribeRegions&Version=2016-11-15", "", "<Code>MissingAuthenticationToken</Code>", 401},
		{"sts", "Action=GetCallerIdentity&Version=2011-06-15", "", "<Code>MissingAuthenticationToken</Code>", 403},
		{"kms", "{}", "TrentService.ListKeys", `"__type":"MissingAuthenticationTokenException"`, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/", strings.NewReader(tc.body))
			if tc.target != "" {
				req.Header.Set("X-Amz-Target", tc.target)
				req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			} else {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("status %d body %s; want %d with %s", resp.StatusCode, body, tc.status, tc.want)
			}
		})
	}
}
