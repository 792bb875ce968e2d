package sts_test

// conformance_test.go: the STS part of the conformance matrix of
// docs/aws-behaviour.md (its index is internal/awsemu/conformance_test.go).

import (
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// TestRulesMatrix runs this package's cases of the conformance matrix.
func TestRulesMatrix(t *testing.T) { emutest.RunCases(t, conformance()) }

func conformance() []emutest.Case {
	return []emutest.Case{
		{Rule: "3.15", Name: "AssumeRole denial text", Run: func(t *testing.T, x *emutest.Env) {
			role := "arn:aws:iam::444444444444:role/amicrypt-copy"
			_, err := sts.NewFromConfig(x.Srv.Config(x.Ctx, emutest.AcctBuild, emutest.East)).AssumeRole(x.Ctx, &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("no-external-id")})
			want := "User: arn:aws:iam::111111111111:user/packer is not authorized to perform: sts:AssumeRole on resource: " + role
			if emutest.APICode(err) != "AccessDenied" || emutest.APIMessage(err) != want {
				t.Fatalf("got %v\nwant AccessDenied %q", err, want)
			}
		}},
	}
}
