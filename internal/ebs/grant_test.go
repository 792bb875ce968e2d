package ebs

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

func TestGrants(t *testing.T) {
	var created *kms.CreateGrantInput
	var retired, revoked []string
	gone := false
	client := &fakeKMS{
		createGrant: func(in *kms.CreateGrantInput) (*kms.CreateGrantOutput, error) {
			created = in
			return &kms.CreateGrantOutput{GrantId: aws.String("g-1"), GrantToken: aws.String("tok")}, nil
		},
		retireGrant: func(in *kms.RetireGrantInput) (*kms.RetireGrantOutput, error) {
			if gone {
				return nil, apiErr("NotFoundException", "Grant g-1 not found")
			}
			retired = append(retired, aws.ToString(in.GrantId))
			return &kms.RetireGrantOutput{}, nil
		},
		revokeGrant: func(in *kms.RevokeGrantInput) (*kms.RevokeGrantOutput, error) {
			if gone {
				return nil, apiErr("AccessDeniedException", "not a key admin")
			}
			revoked = append(revoked, aws.ToString(in.GrantId))
			return &kms.RevokeGrantOutput{}, nil
		},
	}
	ctx := context.Background()
	g, err := CreateGrant(ctx, client, GrantSpec{KeyARN: "arn:k", GranteePrincipal: "arn:aws:iam::222222222222:root",
		RetiringPrincipal: "arn:aws:iam::111111111111:user/packer", Operations: CrossAccountCopyOps, Name: "amicrypt"})
	if err != nil || g.ID != "g-1" || g.Token != "tok" || g.KeyARN != "arn:k" {
		t.Fatalf("grant = %+v, %v", g, err)
	}
	if len(created.Operations) != 5 || aws.ToString(created.RetiringPrincipal) == "" || aws.ToString(created.Name) != "amicrypt" {
		t.Errorf("CreateGrant input = %+v", created)
	}
	if err := RetireGrant(ctx, client, g); err != nil || len(retired) != 1 {
		t.Errorf("retire: %v %v", err, retired)
	}
	if err := RevokeGrant(ctx, client, g); err != nil || len(revoked) != 1 {
		t.Errorf("revoke: %v %v", err, revoked)
	}
	gone = true
	if err := RetireGrant(ctx, client, g); err != nil {
		t.Errorf("retiring a grant already gone: %v", err)
	}
	if err := RevokeGrant(ctx, client, g); err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Errorf("revoke error = %v, want the AccessDeniedException", err)
	}
}
