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
	if len(created.Operations) != 5 || aws.ToString(created.RetiringPrincipal) == "" || aws.ToString(created.Name) != "amicrypt" || created.DryRun != nil {
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

func TestCreateGrantDryRun(t *testing.T) {
	cases := []struct {
		name     string
		answer   error
		wantCode string // "" when the grant may be made
	}{
		{name: "would succeed", answer: apiErr("DryRunOperationException", "The request would have succeeded, but the DryRun option is set.")},
		{name: "denied", answer: apiErr("AccessDeniedException", "not allowed"), wantCode: "AccessDeniedException"},
		{name: "key disabled", answer: apiErr("DisabledException", "disabled"), wantCode: "DisabledException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sent *kms.CreateGrantInput
			client := &fakeKMS{createGrant: func(in *kms.CreateGrantInput) (*kms.CreateGrantOutput, error) {
				sent = in
				return nil, tc.answer
			}}
			g, err := CreateGrant(context.Background(), client, GrantSpec{KeyARN: "arn:k", GranteePrincipal: "arn:aws:iam::222222222222:role/r",
				Operations: CrossAccountCopyOps, DryRun: true})
			if !aws.ToBool(sent.DryRun) {
				t.Errorf("CreateGrant input DryRun = %v, want true", sent.DryRun)
			}
			if g != (Grant{}) || ErrorCode(err) != tc.wantCode || (tc.wantCode == "") != (err == nil) {
				t.Errorf("dry run = %+v, %v; want a zero grant and code %q", g, err, tc.wantCode)
			}
		})
	}
}

// TestCreateGrantDryRunThatMadeAGrant: KMS answering a DryRun with a real
// grant made one; it is taken back at once (retired, else revoked), and
// the check passes. Only when neither works is it an error, naming the grant.
func TestCreateGrantDryRunThatMadeAGrant(t *testing.T) {
	cases := []struct {
		name                   string
		retireErr, revokeErr   error
		wantRetired, wantRevok int
		wantErr                []string
	}{
		{name: "retired", wantRetired: 1},
		{name: "revoked when retiring is refused", retireErr: apiErr("AccessDeniedException", "not the retiring principal"), wantRetired: 1, wantRevok: 1},
		{name: "neither works", retireErr: apiErr("AccessDeniedException", "no retire"), revokeErr: apiErr("AccessDeniedException", "no revoke"),
			wantRetired: 1, wantRevok: 1, wantErr: []string{"grant g-9 on arn:k", "DryRun", "revoke it by hand", "no retire", "no revoke"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var retired, revoked []string
			client := &fakeKMS{
				createGrant: func(*kms.CreateGrantInput) (*kms.CreateGrantOutput, error) {
					return &kms.CreateGrantOutput{GrantId: aws.String("g-9"), GrantToken: aws.String("tok")}, nil
				},
				retireGrant: func(in *kms.RetireGrantInput) (*kms.RetireGrantOutput, error) {
					retired = append(retired, aws.ToString(in.KeyId)+"/"+aws.ToString(in.GrantId))
					return &kms.RetireGrantOutput{}, tc.retireErr
				},
				revokeGrant: func(in *kms.RevokeGrantInput) (*kms.RevokeGrantOutput, error) {
					revoked = append(revoked, aws.ToString(in.KeyId)+"/"+aws.ToString(in.GrantId))
					return &kms.RevokeGrantOutput{}, tc.revokeErr
				},
			}
			g, err := CreateGrant(context.Background(), client, GrantSpec{KeyARN: "arn:k", GranteePrincipal: "arn:aws:iam::222222222222:role/r",
				Operations: CrossAccountCopyOps, DryRun: true})
			if g != (Grant{}) {
				t.Errorf("dry run returned grant %+v; a check hands out no grant", g)
			}
			if len(retired) != tc.wantRetired || len(revoked) != tc.wantRevok {
				t.Errorf("retired %v, revoked %v; want %d and %d", retired, revoked, tc.wantRetired, tc.wantRevok)
			}
			for _, id := range append(retired, revoked...) {
				if id != "arn:k/g-9" {
					t.Errorf("took back %s, want arn:k/g-9", id)
				}
			}
			if len(tc.wantErr) == 0 && err != nil {
				t.Errorf("err = %v, want nil (the check passed and the grant is gone)", err)
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}
