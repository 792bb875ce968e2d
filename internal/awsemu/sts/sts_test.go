package sts_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

func TestAssumeRole(t *testing.T) {
	ctx := context.Background()
	srv := emutest.Start(t, awsemu.Options{})
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
			emutest.WantCode(t, "AssumeRole", err, tc.want)
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
	assumed := srv.Emulator().Audit(awsemu.AuditFilter{Action: "AssumeRole", Outcome: "ok", Principal: "arn:aws:iam::111111111111:user/packer"})
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
	w, err := awsemu.DefaultWorld()
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Accounts {
		if w.Accounts[i].ID == "111111111111" {
			w.Accounts[i].Users = append(w.Accounts[i].Users, awsemu.WorldUser{Name: "noassume", AccessKey: "AKIA1111111NOASSUME", SecretKey: "s", Deny: []string{"sts:*"}})
		}
	}
	srv := emutest.Start(t, awsemu.Options{World: w})
	// Role chaining: a session of 111's role assumes 222's role (trusted by account 111).
	build := srv.RoleConfig(ctx, "111111111111", "arn:aws:iam::111111111111:role/amicrypt-build", "", "us-east-1")
	out, err := sts.NewFromConfig(build).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::222222222222:role/amicrypt-copy"), RoleSessionName: aws.String("chained")})
	if err != nil || aws.ToString(out.AssumedRoleUser.Arn) != "arn:aws:sts::222222222222:assumed-role/amicrypt-copy/chained" {
		t.Fatalf("chained AssumeRole: %v", err)
	}
	cfg := srv.Config(ctx, "111111111111", "us-east-1")
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIA1111111NOASSUME", "s", "")
	_, err = sts.NewFromConfig(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::222222222222:role/amicrypt-copy"), RoleSessionName: aws.String("x1")})
	emutest.WantCode(t, "AssumeRole denied by the caller's IAM", err, "AccessDenied")
}

func TestGetCallerIdentity(t *testing.T) {
	srv := emutest.Start(t, awsemu.Options{})
	ctx := context.Background()
	out, err := sts.NewFromConfig(srv.Config(ctx, "222222222222", "us-east-1")).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Account) != "222222222222" || aws.ToString(out.Arn) != "arn:aws:iam::222222222222:user/admin" {
		t.Fatalf("got %s %s", aws.ToString(out.Account), aws.ToString(out.Arn))
	}
	cfg := srv.Config(ctx, "222222222222", "us-east-1")
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIA2222222222222222", "wrong", "")
	_, err = sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "SignatureDoesNotMatch" {
		t.Fatalf("wrong secret: %v", err)
	}
	rc := srv.RoleConfig(ctx, "111111111111", "arn:aws:iam::444444444444:role/amicrypt-copy", "amicrypt-demo", "eu-west-1")
	out, err = sts.NewFromConfig(rc).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(aws.ToString(out.Arn), aws.ToString(out.UserId))
}
