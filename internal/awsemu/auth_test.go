package awsemu

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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
	srv := Start(t, Options{})
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
				got := errCode(t, errs[svc])
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
	srv := Start(t, Options{})
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

func TestAssumeRole(t *testing.T) {
	ctx := context.Background()
	srv := Start(t, Options{})
	tests := []struct {
		name, account, role, externalID string
		duration                        int32
		want                            string
	}{
		{"trusted account", "111111111111", "arn:aws:iam::222222222222:role/amicrypt-copy", "", 0, ""},
		{"external ID required and given", "111111111111", "arn:aws:iam::444444444444:role/amicrypt-copy", "amicrypt-demo", 0, ""},
		{"external ID required, missing", "111111111111", "arn:aws:iam::444444444444:role/amicrypt-copy", "", 0, "AccessDenied"},
		{"external ID wrong", "111111111111", "arn:aws:iam::444444444444:role/amicrypt-copy", "other", 0, "AccessDenied"},
		{"untrusted account", "333333333333", "arn:aws:iam::222222222222:role/amicrypt-copy", "", 0, "AccessDenied"},
		{"unknown role", "111111111111", "arn:aws:iam::222222222222:role/nope", "", 0, "AccessDenied"},
		{"own role", "111111111111", "arn:aws:iam::111111111111:role/amicrypt-build", "", 900, ""},
		{"duration too short", "111111111111", "arn:aws:iam::222222222222:role/amicrypt-copy", "", 60, "ValidationError"},
		{"duration above the role maximum", "111111111111", "arn:aws:iam::222222222222:role/amicrypt-copy", "", 7200, "ValidationError"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := &sts.AssumeRoleInput{RoleArn: aws.String(tc.role), RoleSessionName: aws.String("amicrypt")}
			if tc.externalID != "" {
				in.ExternalId = aws.String(tc.externalID)
			}
			if tc.duration != 0 {
				in.DurationSeconds = aws.Int32(tc.duration)
			}
			out, err := sts.NewFromConfig(srv.Config(ctx, tc.account, "us-east-1")).AssumeRole(ctx, in)
			wantCode(t, "AssumeRole", err, tc.want)
			if tc.want == "AccessDenied" {
				msg := "User: arn:aws:iam::" + tc.account + ":user/"
				if !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "is not authorized to perform: sts:AssumeRole on resource: "+tc.role) {
					t.Fatalf("message: %v", err)
				}
			}
			if err != nil {
				return
			}
			wantDur := time.Hour
			if tc.duration != 0 {
				wantDur = time.Duration(tc.duration) * time.Second
			}
			exp := aws.ToTime(out.Credentials.Expiration)
			if d := exp.Sub(srv.Emulator().Now()); d > wantDur || d < wantDur-time.Minute {
				t.Fatalf("expiration in %v, want %v", d, wantDur)
			}
			roleName := tc.role[strings.LastIndexByte(tc.role, '/')+1:]
			if !strings.HasSuffix(aws.ToString(out.AssumedRoleUser.Arn), ":assumed-role/"+roleName+"/amicrypt") {
				t.Fatalf("assumed role ARN %s", aws.ToString(out.AssumedRoleUser.Arn))
			}
		})
	}

	// The session acts as the role in its account.
	cfg := srv.RoleConfig(ctx, "111111111111", "arn:aws:iam::333333333333:role/amicrypt-copy", "", "eu-west-1")
	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(id.Account) != "333333333333" || !strings.HasPrefix(aws.ToString(id.Arn), "arn:aws:sts::333333333333:assumed-role/amicrypt-copy/") || !strings.HasPrefix(aws.ToString(id.UserId), "AROA") {
		t.Fatalf("identity %s %s %s", aws.ToString(id.Account), aws.ToString(id.Arn), aws.ToString(id.UserId))
	}
	keys, err := kms.NewFromConfig(cfg).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-target")})
	if err != nil || !strings.Contains(aws.ToString(keys.KeyMetadata.Arn), ":333333333333:") {
		t.Fatalf("DescribeKey as the role: %v", err)
	}

	// Advancing the emulator clock past the session's end renews it.
	srv.Emulator().Advance(2 * time.Hour)
	if _, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatalf("after the session expired: %v", err)
	}
	assumed := srv.Emulator().Audit(AuditFilter{Action: "AssumeRole", Outcome: "ok", Principal: "arn:aws:iam::111111111111:user/packer"})
	n := 0
	for _, a := range assumed {
		if a.Params["RoleArn"] == "arn:aws:iam::333333333333:role/amicrypt-copy" {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d AssumeRole calls for the role, want 2 (first use, renewal)", n)
	}
}

func TestAssumeRoleChainingAndIAMDeny(t *testing.T) {
	ctx := context.Background()
	w, err := DefaultWorld()
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Accounts {
		if w.Accounts[i].ID == "111111111111" {
			w.Accounts[i].Users = append(w.Accounts[i].Users, WorldUser{Name: "noassume", AccessKey: "AKIA1111111NOASSUME", SecretKey: "s", Deny: []string{"sts:*"}})
		}
	}
	srv := Start(t, Options{World: w})
	// Role chaining: a session of 111's role assumes 222's role (trusted by account 111).
	build := srv.RoleConfig(ctx, "111111111111", "arn:aws:iam::111111111111:role/amicrypt-build", "", "us-east-1")
	out, err := sts.NewFromConfig(build).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::222222222222:role/amicrypt-copy"), RoleSessionName: aws.String("chained")})
	if err != nil || aws.ToString(out.AssumedRoleUser.Arn) != "arn:aws:sts::222222222222:assumed-role/amicrypt-copy/chained" {
		t.Fatalf("chained AssumeRole: %v", err)
	}
	cfg := srv.Config(ctx, "111111111111", "us-east-1")
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIA1111111NOASSUME", "s", "")
	_, err = sts.NewFromConfig(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::222222222222:role/amicrypt-copy"), RoleSessionName: aws.String("x1")})
	wantCode(t, "AssumeRole denied by the caller's IAM", err, "AccessDenied")
}
