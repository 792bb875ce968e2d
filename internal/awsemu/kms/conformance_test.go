package kms_test

// conformance_test.go: the KMS part of the conformance matrix of
// docs/aws-behaviour.md (its index is internal/awsemu/conformance_test.go).

import (
	"strings"
	"testing"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// TestRulesMatrix runs this package's cases of the conformance matrix.
func TestRulesMatrix(t *testing.T) { emutest.RunCases(t, conformance()) }

func conformance() []emutest.Case {
	return []emutest.Case{
		{Rule: "3.8", Name: "identifier forms across accounts and regions", Run: func(t *testing.T, x *emutest.Env) {
			buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
			emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant")(x.KMS(emutest.AcctBuild, emutest.East).CreateGrant(x.Ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
				GranteePrincipal: aws.String(emutest.AcctT2), Operations: emutest.SourceKeyGrantOps()}))
			t2 := x.KMS(emutest.AcctT2, emutest.East)
			keyID := buildKey[strings.LastIndexByte(buildKey, '/')+1:]
			tests := []struct{ ref, code string }{
				{buildKey, ""},
				{"arn:aws:kms:us-east-1:111111111111:alias/amicrypt-build", ""},
				{"alias/amicrypt-build", "NotFoundException"},
				{keyID, "NotFoundException"},
				{"arn:aws:kms:us-west-2:111111111111:alias/amicrypt-build", "NotFoundException"},
				{"arn:aws:kms:us-west-2:111111111111:key/" + keyID, "NotFoundException"},
			}
			for _, tc := range tests {
				out, err := t2.DescribeKey(x.Ctx, &kms.DescribeKeyInput{KeyId: aws.String(tc.ref)})
				if emutest.APICode(err) != tc.code {
					t.Errorf("DescribeKey %s from 222222222222: %v, want %q", tc.ref, err, tc.code)
					continue
				}
				if err == nil && aws.ToString(out.KeyMetadata.Arn) != buildKey {
					t.Errorf("DescribeKey %s: %s", tc.ref, aws.ToString(out.KeyMetadata.Arn))
				}
			}
		}},
		{Rule: "3.8", Name: "DescribeKey states and errors", Run: func(t *testing.T, x *emutest.Env) {
			c := x.KMS(emutest.AcctT3, "eu-west-1")
			newKey := func() string {
				return aws.ToString(emutest.Must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(x.Ctx, &kms.CreateKeyInput{})).KeyMetadata.Arn)
			}
			enabled, disabled, pending := newKey(), newKey(), newKey()
			emutest.Must[*kms.DisableKeyOutput](t, "DisableKey")(c.DisableKey(x.Ctx, &kms.DisableKeyInput{KeyId: aws.String(disabled)}))
			emutest.Must[*kms.ScheduleKeyDeletionOutput](t, "ScheduleKeyDeletion")(c.ScheduleKeyDeletion(x.Ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(pending), PendingWindowInDays: aws.Int32(7)}))
			tests := []struct {
				key        string
				state      kmstypes.KeyState
				encryptErr string
			}{
				{enabled, kmstypes.KeyStateEnabled, ""},
				{disabled, kmstypes.KeyStateDisabled, "DisabledException"},
				{pending, kmstypes.KeyStatePendingDeletion, "KMSInvalidStateException"},
			}
			for _, tc := range tests {
				out, err := c.DescribeKey(x.Ctx, &kms.DescribeKeyInput{KeyId: aws.String(tc.key)})
				if err != nil {
					t.Fatalf("DescribeKey %s: %v", tc.state, err)
				}
				m := out.KeyMetadata
				if m.KeyState != tc.state || m.Enabled != (tc.state == kmstypes.KeyStateEnabled) || m.KeyManager != kmstypes.KeyManagerTypeCustomer ||
					m.KeySpec != kmstypes.KeySpecSymmetricDefault || m.KeyUsage != kmstypes.KeyUsageTypeEncryptDecrypt || aws.ToString(m.Arn) != tc.key || m.MultiRegion == nil || *m.MultiRegion {
					t.Fatalf("DescribeKey %s: %+v", tc.state, m)
				}
				_, err = c.Encrypt(x.Ctx, &kms.EncryptInput{KeyId: aws.String(tc.key), Plaintext: []byte("x")})
				if emutest.APICode(err) != tc.encryptErr {
					t.Fatalf("Encrypt under a %s key: %v, want %q", tc.state, err, tc.encryptErr)
				}
			}
			if _, err := c.DescribeKey(x.Ctx, &kms.DescribeKeyInput{KeyId: aws.String("arn:aws:kms:eu-west-1:333333333333:key/00000000-0000-4000-a000-000000000000")}); emutest.APICode(err) != "NotFoundException" {
				t.Fatalf("unknown key: %v", err)
			}
			if _, err := x.KMS(emutest.AcctT2, "eu-west-1").DescribeKey(x.Ctx, &kms.DescribeKeyInput{KeyId: aws.String(enabled)}); emutest.APICode(err) != "AccessDeniedException" {
				t.Fatalf("another account's key without permission: %v", err)
			}
		}},
		{Rule: "3.8", Name: "key administration stays in the key's account", Run: func(t *testing.T, x *emutest.Env) {
			// Even a key policy giving another account kms:* lets it use the
			// key, not administer it (KMS: "Cross-account use: No").
			policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["111111111111","222222222222"]},"Action":"kms:*","Resource":"*"}]}`
			key := aws.ToString(emutest.Must[*kms.CreateKeyOutput](t, "CreateKey")(x.KMS(emutest.AcctBuild, emutest.East).CreateKey(x.Ctx, &kms.CreateKeyInput{Policy: aws.String(policy)})).KeyMetadata.Arn)
			t2 := x.KMS(emutest.AcctT2, emutest.East)
			calls := []struct {
				name string
				call func() error
				code string
			}{
				{"DescribeKey", func() error {
					_, err := t2.DescribeKey(x.Ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
					return err
				}, ""},
				{"Encrypt", func() error {
					_, err := t2.Encrypt(x.Ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")})
					return err
				}, ""},
				{"ListGrants", func() error { _, err := t2.ListGrants(x.Ctx, &kms.ListGrantsInput{KeyId: aws.String(key)}); return err }, ""},
				{"GetKeyPolicy", func() error {
					_, err := t2.GetKeyPolicy(x.Ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(key)})
					return err
				}, "AccessDeniedException"},
				{"PutKeyPolicy", func() error {
					_, err := t2.PutKeyPolicy(x.Ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(key), Policy: aws.String(policy)})
					return err
				}, "AccessDeniedException"},
				{"DisableKey", func() error { _, err := t2.DisableKey(x.Ctx, &kms.DisableKeyInput{KeyId: aws.String(key)}); return err }, "AccessDeniedException"},
				{"ScheduleKeyDeletion", func() error {
					_, err := t2.ScheduleKeyDeletion(x.Ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key)})
					return err
				}, "AccessDeniedException"},
				{"CreateAlias", func() error {
					_, err := t2.CreateAlias(x.Ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/theirs"), TargetKeyId: aws.String(key)})
					return err
				}, "AccessDeniedException"},
			}
			for _, cl := range calls {
				if err := cl.call(); emutest.APICode(err) != cl.code {
					t.Errorf("%s by 222222222222 on 111111111111's key: %v, want %q", cl.name, err, cl.code)
				}
			}
			if d := emutest.Must[*kms.DescribeKeyOutput](t, "DescribeKey")(x.KMS(emutest.AcctBuild, emutest.East).DescribeKey(x.Ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})); d.KeyMetadata.KeyState != kmstypes.KeyStateEnabled {
				t.Fatalf("key state %s after the refused calls", d.KeyMetadata.KeyState)
			}
		}},
		{Rule: "3.9", Name: "RetireGrant and RevokeGrant principals", Run: func(t *testing.T, x *emutest.Env) {
			admin := x.KMS(emutest.AcctBuild, emutest.East)
			buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
			grant := func(ops ...kmstypes.GrantOperation) *kms.CreateGrantOutput {
				g := emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant")(admin.CreateGrant(x.Ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
					GranteePrincipal: aws.String("arn:aws:iam::222222222222:user/admin"), RetiringPrincipal: aws.String("arn:aws:iam::333333333333:root"),
					Operations: ops}))
				if aws.ToString(g.GrantId) == "" || aws.ToString(g.GrantToken) == "" {
					t.Fatalf("CreateGrant returned %+v", g)
				}
				return g
			}
			live := func(id *string) bool {
				lg := emutest.Must[*kms.ListGrantsOutput](t, "ListGrants")(admin.ListGrants(x.Ctx, &kms.ListGrantsInput{KeyId: aws.String(buildKey)}))
				for _, g := range lg.Grants {
					if aws.ToString(g.GrantId) == aws.ToString(id) {
						return true
					}
				}
				return false
			}
			t2, t3, t4 := x.KMS(emutest.AcctT2, emutest.East), x.KMS(emutest.AcctT3, emutest.East), x.KMS(emutest.AcctT4, emutest.East)
			steps := []struct {
				name   string
				grant  *kms.CreateGrantOutput
				call   func(g *kms.CreateGrantOutput) error
				code   string
				isLive bool
			}{
				{"RetireGrant by a stranger", grant(kmstypes.GrantOperationDecrypt), func(g *kms.CreateGrantOutput) error {
					_, err := t4.RetireGrant(x.Ctx, &kms.RetireGrantInput{KeyId: aws.String(buildKey), GrantId: g.GrantId})
					return err
				}, "AccessDeniedException", true},
				{"RetireGrant by the grantee, grant without RetireGrant", grant(kmstypes.GrantOperationDecrypt), func(g *kms.CreateGrantOutput) error {
					_, err := t2.RetireGrant(x.Ctx, &kms.RetireGrantInput{KeyId: aws.String(buildKey), GrantId: g.GrantId})
					return err
				}, "AccessDeniedException", true},
				{"RetireGrant by the grantee, grant with RetireGrant", grant(kmstypes.GrantOperationDecrypt, kmstypes.GrantOperationRetireGrant), func(g *kms.CreateGrantOutput) error {
					_, err := t2.RetireGrant(x.Ctx, &kms.RetireGrantInput{KeyId: aws.String(buildKey), GrantId: g.GrantId})
					return err
				}, "", false},
				{"RetireGrant by the retiring principal", grant(kmstypes.GrantOperationDecrypt), func(g *kms.CreateGrantOutput) error {
					_, err := t3.RetireGrant(x.Ctx, &kms.RetireGrantInput{KeyId: aws.String(buildKey), GrantId: g.GrantId})
					return err
				}, "", false},
				{"RetireGrant by the retiring principal with the token", grant(kmstypes.GrantOperationDecrypt), func(g *kms.CreateGrantOutput) error {
					_, err := t3.RetireGrant(x.Ctx, &kms.RetireGrantInput{GrantToken: g.GrantToken})
					return err
				}, "", false},
				{"RevokeGrant by the grantee", grant(kmstypes.GrantOperationDecrypt, kmstypes.GrantOperationRetireGrant), func(g *kms.CreateGrantOutput) error {
					_, err := t2.RevokeGrant(x.Ctx, &kms.RevokeGrantInput{KeyId: aws.String(buildKey), GrantId: g.GrantId})
					return err
				}, "AccessDeniedException", true},
				{"RevokeGrant by the key administrator", grant(kmstypes.GrantOperationDecrypt), func(g *kms.CreateGrantOutput) error {
					_, err := admin.RevokeGrant(x.Ctx, &kms.RevokeGrantInput{KeyId: aws.String(buildKey), GrantId: g.GrantId})
					return err
				}, "", false},
			}
			for _, s := range steps {
				err := s.call(s.grant)
				if emutest.APICode(err) != s.code {
					t.Errorf("%s: %v, want %q", s.name, err, s.code)
				}
				if live(s.grant.GrantId) != s.isLive {
					t.Errorf("%s: grant live=%v, want %v", s.name, !s.isLive, s.isLive)
				}
			}
		}},
	}
}
