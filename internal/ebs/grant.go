package ebs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// CrossAccountCopyOps are the key operations another account needs to copy
// or launch from snapshots encrypted under the key (docs/aws-behaviour.md:
// cross-account use of a shared encrypted AMI).
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
// returns a zero Grant. A DryRun that KMS answers with a real grant (no
// DryRunOperationException) made the grant: it is retired at once, or
// revoked when retiring is refused, so a check never leaves use of a key
// behind; when neither works the error names the grant to remove by hand.
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
	if s.DryRun && IsCode(err, "DryRunOperationException", "DryRunOperation") {
		return Grant{}, nil
	}
	if s.DryRun && err == nil {
		return Grant{}, takeBackDryRunGrant(ctx, client, s, Grant{KeyARN: s.KeyARN, ID: aws.ToString(out.GrantId)})
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

// takeBackDryRunGrant removes a grant KMS made although DryRun was set. The
// check it answered passed: the caller could create the grant.
func takeBackDryRunGrant(ctx context.Context, client KMSAPI, s GrantSpec, g Grant) error {
	if g.ID == "" {
		return nil // nothing was made that could be named
	}
	retireErr := RetireGrant(ctx, client, g)
	if retireErr == nil {
		return nil
	}
	if revokeErr := RevokeGrant(ctx, client, g); revokeErr != nil {
		return fmt.Errorf("KMS made grant %s on %s for %s although DryRun was set, and it could not be taken back; revoke it by hand "+
			"(aws kms revoke-grant --key-id %s --grant-id %s): %w", g.ID, s.KeyARN, s.GranteePrincipal, s.KeyARN, g.ID, errors.Join(retireErr, revokeErr))
	}
	return nil
}

// GrantLister is the KMS call ListGrants needs; *kms.Client has it.
type GrantLister interface {
	ListGrants(context.Context, *kms.ListGrantsInput, ...func(*kms.Options)) (*kms.ListGrantsOutput, error)
}

// ListedGrant is a live grant on a key as ListGrants shows it.
type ListedGrant struct {
	Grant
	Name             string
	GranteePrincipal string
	Created          time.Time
}

// ListGrants lists every live grant on the key, every page.
func ListGrants(ctx context.Context, client GrantLister, keyARN string) ([]ListedGrant, error) {
	var out []ListedGrant
	p := kms.NewListGrantsPaginator(client, &kms.ListGrantsInput{KeyId: aws.String(keyARN)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the grants of %s: %w", keyARN, err)
		}
		for _, g := range page.Grants {
			out = append(out, ListedGrant{
				Grant: Grant{KeyARN: keyARN, ID: aws.ToString(g.GrantId)},
				Name:  aws.ToString(g.Name), GranteePrincipal: aws.ToString(g.GranteePrincipal),
				Created: aws.ToTime(g.CreationDate),
			})
		}
	}
	return out, nil
}

// TakeBackGrant retires the grant (as its retiring principal) or, when
// retiring is refused, revokes it (as key administrator). gone says the
// grant was already gone, which counts as taken back.
func TakeBackGrant(ctx context.Context, client KMSAPI, g Grant) (gone bool, err error) {
	_, err = client.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(g.KeyARN), GrantId: aws.String(g.ID)})
	if err == nil || IsCode(err, "NotFoundException") {
		return err != nil, nil
	}
	if _, denied := AccessDenied(err); !denied {
		return false, fmt.Errorf("retiring grant %s on %s: %w", g.ID, g.KeyARN, err)
	}
	_, rerr := client.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(g.KeyARN), GrantId: aws.String(g.ID)})
	if rerr == nil || IsCode(rerr, "NotFoundException") {
		return rerr != nil, nil
	}
	return false, fmt.Errorf("grant %s on %s: retiring it: %w; revoking it: %w", g.ID, g.KeyARN, err, rerr)
}
