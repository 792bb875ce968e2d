package ebs

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// CrossAccountCopyOps are the key operations another account needs to copy
// or launch from snapshots encrypted under the key (aws-behaviour.md 3.4).
var CrossAccountCopyOps = []kmstypes.GrantOperation{
	kmstypes.GrantOperationDescribeKey,
	kmstypes.GrantOperationDecrypt,
	kmstypes.GrantOperationCreateGrant,
	kmstypes.GrantOperationReEncryptFrom,
	kmstypes.GrantOperationGenerateDataKeyWithoutPlaintext,
}

// GrantSpec is a grant on a key.
type GrantSpec struct {
	KeyARN            string
	GranteePrincipal  string // e.g. arn:aws:iam::222222222222:root
	RetiringPrincipal string
	Operations        []kmstypes.GrantOperation
	Name              string
	// DryRun only asks KMS whether the caller may create the grant: nil
	// means it may (DryRunOperationException), and no grant is made.
	DryRun bool
}

// Grant identifies a created grant.
type Grant struct {
	KeyARN string
	ID     string
	Token  string
}

// CreateGrant creates the grant, or with s.DryRun checks that it could and
// returns a zero Grant.
func CreateGrant(ctx context.Context, client KMSAPI, s GrantSpec) (Grant, error) {
	in := &kms.CreateGrantInput{
		KeyId: aws.String(s.KeyARN), GranteePrincipal: aws.String(s.GranteePrincipal), Operations: s.Operations,
	}
	if s.DryRun {
		in.DryRun = aws.Bool(true)
	}
	if s.RetiringPrincipal != "" {
		in.RetiringPrincipal = aws.String(s.RetiringPrincipal)
	}
	if s.Name != "" {
		in.Name = aws.String(s.Name)
	}
	out, err := client.CreateGrant(ctx, in)
	if s.DryRun && (err == nil || IsCode(err, "DryRunOperationException", "DryRunOperation")) {
		return Grant{}, nil
	}
	if err != nil {
		return Grant{}, fmt.Errorf("granting %s use of KMS key %s: %w", s.GranteePrincipal, s.KeyARN, err)
	}
	return Grant{KeyARN: s.KeyARN, ID: aws.ToString(out.GrantId), Token: aws.ToString(out.GrantToken)}, nil
}

// RetireGrant retires the grant (as grantee or retiring principal). A grant
// already gone is not an error.
func RetireGrant(ctx context.Context, client KMSAPI, g Grant) error {
	_, err := client.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(g.KeyARN), GrantId: aws.String(g.ID)})
	if err != nil && !IsCode(err, "NotFoundException") {
		return fmt.Errorf("retiring grant %s on %s: %w", g.ID, g.KeyARN, err)
	}
	return nil
}

// RevokeGrant revokes the grant (as key administrator). A grant already gone
// is not an error.
func RevokeGrant(ctx context.Context, client KMSAPI, g Grant) error {
	_, err := client.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(g.KeyARN), GrantId: aws.String(g.ID)})
	if err != nil && !IsCode(err, "NotFoundException") {
		return fmt.Errorf("revoking grant %s on %s: %w", g.ID, g.KeyARN, err)
	}
	return nil
}
