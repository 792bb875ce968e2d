package awsemu

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

func TestGetCallerIdentity(t *testing.T) {
	srv := Start(t, Options{})
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
