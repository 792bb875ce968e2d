package kms_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// errCode is the API error code of err, or "" when err is nil.
func TestKMSDescribeKeyResolution(t *testing.T) {
	ctx := context.Background()
	srv := emutest.Start(t, awsemu.Options{})
	build := emutest.KMSClient(ctx, srv, "111111111111", "us-east-1")
	target := emutest.KMSClient(ctx, srv, "222222222222", "us-east-1")
	buildKey := emutest.KeyARNOf(t, ctx, build, "alias/amicrypt-build")
	buildKeyWest := emutest.KeyARNOf(t, ctx, emutest.KMSClient(ctx, srv, "111111111111", "us-west-2"), "alias/amicrypt-build")
	buildKeyID := buildKey[strings.LastIndexByte(buildKey, '/')+1:]

	tests := []struct {
		name        string
		client      *kms.Client
		ref         string
		wantCode    string
		wantManager types.KeyManagerType
		wantARN     string
	}{
		{"own alias name", build, "alias/amicrypt-build", "", types.KeyManagerTypeCustomer, buildKey},
		{"own key ID", build, buildKeyID, "", types.KeyManagerTypeCustomer, buildKey},
		{"own key ARN", build, buildKey, "", types.KeyManagerTypeCustomer, buildKey},
		{"own alias ARN", build, "arn:aws:kms:us-east-1:111111111111:alias/amicrypt-build", "", types.KeyManagerTypeCustomer, buildKey},
		{"AWS managed ebs key", build, "alias/aws/ebs", "", types.KeyManagerTypeAws, ""},
		{"unknown alias", build, "alias/nope", "NotFoundException", "", ""},
		{"unknown key ID", build, "0b6c6e2e-0000-4000-a000-000000000000", "NotFoundException", "", ""},
		{"key of another region", build, buildKeyWest, "NotFoundException", "", ""},
		{"other account by alias name resolves in the caller's account", target, "alias/amicrypt-build", "NotFoundException", "", ""},
		{"other account by key ID resolves in the caller's account", target, buildKeyID, "NotFoundException", "", ""},
		{"other account by key ARN without permission", target, buildKey, "AccessDeniedException", "", ""},
		{"other account's AWS managed key", target, "arn:aws:kms:us-east-1:111111111111:alias/aws/ebs", "AccessDeniedException", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(tc.ref)})
			emutest.WantCode(t, "DescribeKey", err, tc.wantCode)
			if err != nil {
				return
			}
			m := out.KeyMetadata
			if m.KeyManager != tc.wantManager || m.KeyState != types.KeyStateEnabled || m.KeySpec != types.KeySpecSymmetricDefault || !m.Enabled {
				t.Fatalf("metadata: manager %s state %s spec %s", m.KeyManager, m.KeyState, m.KeySpec)
			}
			if tc.wantARN != "" && aws.ToString(m.Arn) != tc.wantARN {
				t.Fatalf("ARN %s, want %s", aws.ToString(m.Arn), tc.wantARN)
			}
			if !strings.HasPrefix(aws.ToString(m.Arn), "arn:aws:kms:us-east-1:") {
				t.Fatalf("ARN %s is not in us-east-1", aws.ToString(m.Arn))
			}
		})
	}
}

func TestKMSAWSManagedKeyRules(t *testing.T) {
	ctx := context.Background()
	srv := emutest.Start(t, awsemu.Options{})
	build := emutest.KMSClient(ctx, srv, "111111111111", "eu-west-1")
	ebsKey := emutest.KeyARNOf(t, ctx, build, "alias/aws/ebs")
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"CreateGrant for an external principal", func() error {
			_, err := build.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(ebsKey), GranteePrincipal: aws.String("arn:aws:iam::222222222222:root"), Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
			return err
		}, "AccessDeniedException"},
		{"PutKeyPolicy", func() error {
			_, err := build.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(ebsKey), Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"}]}`)})
			return err
		}, "AccessDeniedException"},
		{"ScheduleKeyDeletion", func() error {
			_, err := build.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(ebsKey)})
			return err
		}, "AccessDeniedException"},
		{"DisableKey", func() error {
			_, err := build.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(ebsKey)})
			return err
		}, "AccessDeniedException"},
		{"direct Encrypt (only EC2 may use it)", func() error {
			_, err := build.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/aws/ebs"), Plaintext: []byte("x")})
			return err
		}, "AccessDeniedException"},
		{"GetKeyPolicy is allowed to the account", func() error {
			out, err := build.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(ebsKey)})
			if err == nil && !strings.Contains(aws.ToString(out.Policy), "kms:ViaService") {
				t.Errorf("policy of alias/aws/ebs lacks the kms:ViaService condition: %s", aws.ToString(out.Policy))
			}
			return err
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { emutest.WantCode(t, tc.name, tc.call(), tc.want) })
	}

	// EC2 acting for the owner may use it; for another account it may not.
	emu := srv.Emulator()
	uses := []struct {
		name    string
		use     awsemu.KeyUse
		want    string
		wantARN string
	}{
		{"own account through EC2, default key", awsemu.KeyUse{Account: "111111111111", PrincipalIAM: "arn:aws:iam::111111111111:user/packer", Region: "eu-west-1", Ops: []string{awsemu.OpDecrypt, awsemu.OpCreateGrant, awsemu.OpGenerateDataKeyWithoutPlaintext}}, "", ebsKey},
		{"own account through EC2, alias", awsemu.KeyUse{Account: "111111111111", PrincipalIAM: "arn:aws:iam::111111111111:user/packer", Region: "eu-west-1", KeyRef: "alias/aws/ebs", Ops: []string{awsemu.OpDecrypt}}, "", ebsKey},
		{"another account through EC2", awsemu.KeyUse{Account: "222222222222", PrincipalIAM: "arn:aws:iam::222222222222:user/admin", Region: "eu-west-1", KeyRef: ebsKey, Ops: []string{awsemu.OpDescribeKey}}, "AccessDeniedException", ""},
	}
	for _, u := range uses {
		info, err := emu.KMS().AuthorizeKeyUse(u.use)
		got := ""
		if err != nil {
			got = err.Code
		}
		if got != u.want {
			t.Errorf("%s: got %q (%v), want %q", u.name, got, err, u.want)
		}
		if u.wantARN != "" && (info.ARN != u.wantARN || info.Manager != "AWS") {
			t.Errorf("%s: key %+v, want %s managed by AWS", u.name, info, u.wantARN)
		}
	}
}

func TestKMSGrantsCrossAccountAndPropagation(t *testing.T) {
	ctx := context.Background()
	// 10 emulated minutes at 0.001 is 600ms of emulator clock.
	srv := emutest.Start(t, awsemu.Options{GrantDelay: 10 * time.Minute})
	emu := srv.Emulator()
	build := emutest.KMSClient(ctx, srv, "111111111111", "us-east-1")
	target := emutest.KMSClient(ctx, srv, "222222222222", "us-east-1")
	buildKey := emutest.KeyARNOf(t, ctx, build, "alias/amicrypt-build")

	_, err := build.CreateGrant(ctx, &kms.CreateGrantInput{
		KeyId: aws.String(buildKey), GranteePrincipal: aws.String("222222222222"), DryRun: aws.Bool(true),
		Operations: []types.GrantOperation{types.GrantOperationDecrypt},
	})
	emutest.WantCode(t, "CreateGrant DryRun", err, "DryRunOperationException")
	if n := len(emu.Grants()); n != 0 {
		t.Fatalf("a dry run created %d grants", n)
	}
	_, err = build.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey), GranteePrincipal: aws.String("222222222222"), Operations: []types.GrantOperation{"Fly"}})
	emutest.WantCode(t, "CreateGrant bad operation", err, "ValidationException")
	_, err = target.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey), GranteePrincipal: aws.String("222222222222"), Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
	emutest.WantCode(t, "CreateGrant by an account without permission", err, "AccessDeniedException")

	grant, err := build.CreateGrant(ctx, &kms.CreateGrantInput{
		KeyId: aws.String(buildKey), GranteePrincipal: aws.String("arn:aws:iam::222222222222:root"),
		RetiringPrincipal: aws.String("arn:aws:iam::111111111111:root"), Name: aws.String("amicrypt-copy"),
		// RetireGrant lets the grantee retire it (checked below).
		Operations: []types.GrantOperation{types.GrantOperationDescribeKey, types.GrantOperationDecrypt, types.GrantOperationCreateGrant, types.GrantOperationReEncryptFrom, types.GrantOperationGenerateDataKeyWithoutPlaintext, types.GrantOperationRetireGrant},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Not yet effective: the grant is still propagating.
	_, err = target.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(buildKey)})
	emutest.WantCode(t, "DescribeKey before the grant takes effect", err, "AccessDeniedException")
	// With the grant token, it is effective at once.
	_, err = target.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(buildKey), GrantTokens: []string{aws.ToString(grant.GrantToken)}})
	emutest.WantCode(t, "DescribeKey with the grant token", err, "")
	// EC2 on 222's behalf, before and after propagation.
	use := awsemu.KeyUse{Account: "222222222222", PrincipalIAM: "arn:aws:iam::222222222222:role/amicrypt-copy", Region: "us-east-1", KeyRef: buildKey, Ops: []string{awsemu.OpDecrypt, awsemu.OpCreateGrant, awsemu.OpReEncryptFrom}}
	_, aerr := emu.KMS().AuthorizeKeyUse(use)
	if aerr == nil || aerr.Code != "AccessDeniedException" {
		t.Fatalf("authorizeKeyUse before propagation: %v", aerr)
	}
	emu.Advance(time.Second)
	_, err = target.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(buildKey)})
	emutest.WantCode(t, "DescribeKey after the grant takes effect", err, "")
	_, aerr = emu.KMS().AuthorizeKeyUse(use)
	if aerr != nil {
		t.Fatalf("authorizeKeyUse after propagation: %v", aerr)
	}
	// Operations outside the grant stay denied.
	_, err = target.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(buildKey), Plaintext: []byte("x")})
	emutest.WantCode(t, "Encrypt not granted", err, "AccessDeniedException")

	lg, err := build.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String("alias/amicrypt-build")})
	if err != nil {
		t.Fatal(err)
	}
	if len(lg.Grants) != 1 || aws.ToString(lg.Grants[0].GranteePrincipal) != "arn:aws:iam::222222222222:root" || aws.ToString(lg.Grants[0].IssuingAccount) != "arn:aws:iam::111111111111:root" {
		t.Fatalf("ListGrants: %+v", lg.Grants)
	}
	_, err = emutest.KMSClient(ctx, srv, "333333333333", "us-east-1").RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(buildKey), GrantId: grant.GrantId})
	emutest.WantCode(t, "RetireGrant by a stranger", err, "AccessDeniedException")
	_, err = target.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(buildKey), GrantId: grant.GrantId})
	emutest.WantCode(t, "RetireGrant by the grantee", err, "")
	if n := len(emu.Grants()); n != 0 {
		t.Fatalf("%d grants left after RetireGrant", n)
	}
	_, err = target.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(buildKey)})
	emutest.WantCode(t, "DescribeKey after retirement", err, "AccessDeniedException")

	// RevokeGrant by the key's account; a second revoke finds nothing.
	g2, err := build.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey), GranteePrincipal: aws.String("333333333333"), Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = build.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(buildKey), GrantId: g2.GrantId})
	emutest.WantCode(t, "RevokeGrant", err, "")
	_, err = build.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(buildKey), GrantId: g2.GrantId})
	emutest.WantCode(t, "RevokeGrant twice", err, "NotFoundException")
}

func TestKMSSlowGrantFault(t *testing.T) {
	ctx := context.Background()
	srv := emutest.Start(t, awsemu.Options{Faults: &awsemu.FaultProfile{Rules: []awsemu.FaultRule{{Kind: awsemu.FaultSlowGrant, Action: "CreateGrant", Nth: []int{1}}}}})
	build := emutest.KMSClient(ctx, srv, "111111111111", "us-east-1")
	key := emutest.KeyARNOf(t, ctx, build, "alias/amicrypt-build")
	for i := range 2 {
		if _, err := build.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(key), GranteePrincipal: aws.String("222222222222"), Operations: []types.GrantOperation{types.GrantOperationDescribeKey}}); err != nil {
			t.Fatalf("grant %d: %v", i, err)
		}
	}
	grants := srv.Emulator().Grants()
	if len(grants) != 2 {
		t.Fatalf("%d grants", len(grants))
	}
	var slow, fast int
	for _, g := range grants {
		if d := g.EffectiveAt.Sub(g.Created); d >= 300*time.Millisecond { // 5 emulated minutes × 0.001
			slow++
		} else if d == 0 {
			fast++
		}
	}
	if slow != 1 || fast != 1 {
		t.Fatalf("want one slow and one immediate grant, got %+v", grants)
	}
}

func TestKMSKeyPolicyCrossAccountAndIAMDeny(t *testing.T) {
	ctx := context.Background()
	w, err := awsemu.DefaultWorld()
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Accounts {
		if w.Accounts[i].ID == "333333333333" {
			w.Accounts[i].Users = append(w.Accounts[i].Users, awsemu.WorldUser{Name: "limited", AccessKey: "AKIA3333333333LIMITED", SecretKey: "s", Deny: []string{"kms:Decrypt", "kms:Re*"}})
		}
	}
	srv := emutest.Start(t, awsemu.Options{World: w})
	build := emutest.KMSClient(ctx, srv, "111111111111", "us-east-1")
	key := emutest.KeyARNOf(t, ctx, build, "alias/amicrypt-build")
	policy := `{"Version":"2012-10-17","Statement":[
	 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"},
	 {"Effect":"Allow","Principal":{"AWS":["333333333333"]},"Action":["kms:Describe*","kms:Decrypt","kms:Encrypt"],"Resource":"*"},
	 {"Effect":"Deny","Principal":"*","Action":"kms:ScheduleKeyDeletion","Resource":"*"}]}`
	_, err = build.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(key), Policy: aws.String(policy)})
	emutest.WantCode(t, "PutKeyPolicy", err, "")
	_, err = build.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(key), Policy: aws.String(`{"Statement":"nope"}`)})
	emutest.WantCode(t, "PutKeyPolicy malformed", err, "MalformedPolicyDocumentException")

	admin333 := emutest.KMSClient(ctx, srv, "333333333333", "us-east-1")
	limitedCfg := srv.Config(ctx, "333333333333", "us-east-1")
	limitedCfg.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKIA3333333333LIMITED", SecretAccessKey: "s"}, nil
	})
	limited := kms.NewFromConfig(limitedCfg)

	enc, err := admin333.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("secret"), EncryptionContext: map[string]string{"a": "b"}})
	emutest.WantCode(t, "Encrypt by a principal of an allowed account", err, "")
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"Decrypt by the allowed account", func() error {
			out, err := admin333.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"a": "b"}})
			if err == nil && string(out.Plaintext) != "secret" {
				t.Errorf("plaintext %q", out.Plaintext)
			}
			return err
		}, ""},
		{"Decrypt denied by the user's IAM", func() error {
			_, err := limited.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"a": "b"}})
			return err
		}, "AccessDeniedException"},
		{"DescribeKey by the limited user (not denied)", func() error {
			_, err := limited.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
			return err
		}, ""},
		{"GenerateDataKey not in the policy", func() error {
			_, err := admin333.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(key), KeySpec: types.DataKeySpecAes256})
			return err
		}, "AccessDeniedException"},
		{"account 222 not in the policy", func() error {
			_, err := emutest.KMSClient(ctx, srv, "222222222222", "us-east-1").DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
			return err
		}, "AccessDeniedException"},
		{"explicit Deny statement wins over root allow", func() error {
			_, err := build.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key)})
			return err
		}, "AccessDeniedException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { emutest.WantCode(t, tc.name, tc.call(), tc.want) })
	}
}

func TestKMSCryptoAndKeyLifecycle(t *testing.T) {
	ctx := context.Background()
	srv := emutest.Start(t, awsemu.Options{})
	c := emutest.KMSClient(ctx, srv, "222222222222", "eu-central-1")
	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("test key")})
	if err != nil {
		t.Fatal(err)
	}
	key := aws.ToString(created.KeyMetadata.Arn)
	if created.KeyMetadata.KeyManager != types.KeyManagerTypeCustomer || !strings.HasPrefix(key, "arn:aws:kms:eu-central-1:222222222222:key/") {
		t.Fatalf("CreateKey: %+v", created.KeyMetadata)
	}
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/test"), TargetKeyId: created.KeyMetadata.KeyId})
	emutest.WantCode(t, "CreateAlias", err, "")
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/test"), TargetKeyId: created.KeyMetadata.KeyId})
	emutest.WantCode(t, "CreateAlias twice", err, "AlreadyExistsException")
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/aws/mine"), TargetKeyId: created.KeyMetadata.KeyId})
	emutest.WantCode(t, "CreateAlias alias/aws/", err, "NotAuthorizedException")

	aliases, err := c.ListAliases(ctx, &kms.ListAliasesInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range aliases.Aliases {
		names = append(names, aws.ToString(a.AliasName))
	}
	if strings.Join(names, ",") != "alias/amicrypt-instance-store,alias/amicrypt-target,alias/aws/ebs,alias/test" {
		t.Fatalf("ListAliases: %v", names)
	}
	keys, err := c.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(2)})
	if err != nil || len(keys.Keys) != 2 || !keys.Truncated {
		t.Fatalf("ListKeys page 1: %v %+v", err, keys)
	}
	keys2, err := c.ListKeys(ctx, &kms.ListKeysInput{Marker: keys.NextMarker})
	if err != nil || len(keys2.Keys) != 2 || keys2.Truncated {
		t.Fatalf("ListKeys page 2: %v %+v", err, keys2)
	}
	pol, err := c.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String("alias/test")})
	if err != nil || !strings.Contains(aws.ToString(pol.Policy), "arn:aws:iam::222222222222:root") {
		t.Fatalf("GetKeyPolicy: %v %v", err, pol)
	}

	// Envelope encryption: GenerateDataKey, Decrypt its blob, ReEncrypt it.
	dk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String("alias/test"), KeySpec: types.DataKeySpecAes256, EncryptionContext: map[string]string{"aws:ebs:id": "vol-1"}})
	if err != nil || len(dk.Plaintext) != 32 || aws.ToString(dk.KeyId) != key {
		t.Fatalf("GenerateDataKey: %v %+v", err, dk)
	}
	if !bytes.Contains(dk.CiphertextBlob, []byte(key)) {
		t.Fatal("the ciphertext blob does not name its key")
	}
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: map[string]string{"aws:ebs:id": "vol-1"}})
	if err != nil || !bytes.Equal(dec.Plaintext, dk.Plaintext) {
		t.Fatalf("Decrypt: %v", err)
	}
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: map[string]string{"aws:ebs:id": "vol-2"}})
	emutest.WantCode(t, "Decrypt with another context", err, "InvalidCiphertextException")
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: []byte("garbage")})
	emutest.WantCode(t, "Decrypt garbage", err, "InvalidCiphertextException")
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, KeyId: aws.String("alias/amicrypt-target"), EncryptionContext: map[string]string{"aws:ebs:id": "vol-1"}})
	emutest.WantCode(t, "Decrypt naming another key", err, "IncorrectKeyException")
	wp, err := c.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(key), NumberOfBytes: aws.Int32(16)})
	if err != nil || len(wp.CiphertextBlob) == 0 {
		t.Fatalf("GenerateDataKeyWithoutPlaintext: %v", err)
	}
	re, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: dk.CiphertextBlob, SourceEncryptionContext: map[string]string{"aws:ebs:id": "vol-1"}, DestinationKeyId: aws.String("alias/amicrypt-target")})
	if err != nil || aws.ToString(re.SourceKeyId) != key {
		t.Fatalf("ReEncrypt: %v", err)
	}
	dec2, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: re.CiphertextBlob})
	if err != nil || !bytes.Equal(dec2.Plaintext, dk.Plaintext) || aws.ToString(dec2.KeyId) == key {
		t.Fatalf("Decrypt after ReEncrypt: %v", err)
	}

	// Key states.
	steps := []struct {
		name string
		call func() error
		want string
	}{
		{"DisableKey", func() error { _, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)}); return err }, ""},
		{"Encrypt with a disabled key", func() error {
			_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")})
			return err
		}, "DisabledException"},
		{"DescribeKey of a disabled key", func() error {
			out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
			if err == nil && out.KeyMetadata.KeyState != types.KeyStateDisabled {
				t.Errorf("state %s", out.KeyMetadata.KeyState)
			}
			return err
		}, ""},
		{"EnableKey", func() error { _, err := c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(key)}); return err }, ""},
		{"ScheduleKeyDeletion too soon", func() error {
			_, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key), PendingWindowInDays: aws.Int32(3)})
			return err
		}, "ValidationException"},
		{"ScheduleKeyDeletion", func() error {
			out, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key), PendingWindowInDays: aws.Int32(7)})
			if err == nil && out.KeyState != types.KeyStatePendingDeletion {
				t.Errorf("state %s", out.KeyState)
			}
			return err
		}, ""},
		{"Encrypt with a key pending deletion", func() error {
			_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")})
			return err
		}, "KMSInvalidStateException"},
		{"EnableKey pending deletion", func() error { _, err := c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(key)}); return err }, "KMSInvalidStateException"},
		{"deleted after the window", func() error {
			srv.Emulator().Advance(8 * 24 * time.Hour)
			_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
			return err
		}, "NotFoundException"},
	}
	for _, s := range steps {
		emutest.WantCode(t, s.name, s.call(), s.want)
	}
}

func TestKMSMultiRegionReplica(t *testing.T) {
	ctx := context.Background()
	w, err := awsemu.DefaultWorld()
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Accounts {
		if w.Accounts[i].ID == "111111111111" {
			w.Accounts[i].Keys = append(w.Accounts[i].Keys, awsemu.WorldKey{Region: "us-east-1", Aliases: []string{"alias/mrk"}, MultiRegion: true, ReplicaRegions: []string{"eu-west-1"}})
		}
	}
	srv := emutest.Start(t, awsemu.Options{World: w})
	east := emutest.KMSClient(ctx, srv, "111111111111", "us-east-1")
	west := emutest.KMSClient(ctx, srv, "111111111111", "eu-west-1")
	d, err := east.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/mrk")})
	if err != nil || !strings.HasPrefix(aws.ToString(d.KeyMetadata.KeyId), "mrk-") || !aws.ToBool(d.KeyMetadata.MultiRegion) {
		t.Fatalf("DescribeKey: %v %+v", err, d)
	}
	id := aws.ToString(d.KeyMetadata.KeyId)
	enc, err := east.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("both regions")})
	if err != nil {
		t.Fatal(err)
	}
	// The replica has the same key ID in its region and decrypts with its own material copy.
	if _, err := west.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)}); err != nil {
		t.Fatalf("replica: %v", err)
	}
	wenc, err := west.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("west")})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := west.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: wenc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "west" {
		t.Fatalf("replica decrypt: %v", err)
	}
	// The replica decrypts what the primary encrypted; a single-region key's
	// ciphertext is refused outside its region.
	dec, err = west.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "both regions" || !strings.Contains(aws.ToString(dec.KeyId), ":eu-west-1:") {
		t.Fatalf("replica decrypt of the primary's ciphertext: %v", err)
	}
	single, err := east.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/amicrypt-build"), Plaintext: []byte("east only")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = west.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: single.CiphertextBlob})
	emutest.WantCode(t, "Decrypt of a single-region key's ciphertext in another region", err, "NotFoundException")
	_, err = west.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/mrk")})
	emutest.WantCode(t, "aliases stay in their region", err, "NotFoundException")
}

func TestKMSGrantConstraints(t *testing.T) {
	ctx := context.Background()
	srv := emutest.Start(t, awsemu.Options{})
	build := emutest.KMSClient(ctx, srv, "111111111111", "us-east-1")
	target := emutest.KMSClient(ctx, srv, "222222222222", "us-east-1")
	key := emutest.KeyARNOf(t, ctx, build, "alias/amicrypt-build")
	for _, c := range []*types.GrantConstraints{
		{EncryptionContextSubset: map[string]string{"project": "amicrypt"}},
		{EncryptionContextEquals: map[string]string{"project": "exact"}},
	} {
		if _, err := build.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(key), GranteePrincipal: aws.String("222222222222"),
			Operations: []types.GrantOperation{types.GrantOperationEncrypt}, Constraints: c}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		context map[string]string
		want    string
	}{
		{"subset satisfied", map[string]string{"project": "amicrypt", "extra": "x"}, ""},
		{"equals satisfied", map[string]string{"project": "exact"}, ""},
		{"equals with an extra pair", map[string]string{"project": "exact", "extra": "x"}, "AccessDeniedException"},
		{"no context", nil, "AccessDeniedException"},
		{"other value", map[string]string{"project": "other"}, "AccessDeniedException"},
	}
	for _, tc := range tests {
		_, err := target.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x"), EncryptionContext: tc.context})
		emutest.WantCode(t, tc.name, err, tc.want)
	}
}

func TestKMSRetireByTokenCancelDeletionAndRegrant(t *testing.T) {
	ctx := context.Background()
	srv := emutest.Start(t, awsemu.Options{})
	build := emutest.KMSClient(ctx, srv, "111111111111", "us-east-1")
	target := emutest.KMSClient(ctx, srv, "222222222222", "us-east-1")
	third := emutest.KMSClient(ctx, srv, "333333333333", "us-east-1")
	key := emutest.KeyARNOf(t, ctx, build, "alias/amicrypt-build")

	// A grantee whose grant includes CreateGrant may grant onwards.
	g, err := build.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(key), GranteePrincipal: aws.String("222222222222"),
		Operations: []types.GrantOperation{types.GrantOperationCreateGrant, types.GrantOperationDecrypt, types.GrantOperationDescribeKey}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = target.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(key), GranteePrincipal: aws.String("333333333333"), Operations: []types.GrantOperation{types.GrantOperationDescribeKey}})
	emutest.WantCode(t, "re-grant by a grantee with CreateGrant", err, "")
	_, err = third.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
	emutest.WantCode(t, "DescribeKey through the onward grant", err, "")
	_, err = third.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(key), GranteePrincipal: aws.String("444444444444"), Operations: []types.GrantOperation{types.GrantOperationDescribeKey}})
	emutest.WantCode(t, "re-grant without CreateGrant", err, "AccessDeniedException")

	_, err = target.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: aws.String("not-a-token")})
	emutest.WantCode(t, "RetireGrant with a bad token", err, "InvalidGrantTokenException")
	_, err = target.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: g.GrantToken})
	emutest.WantCode(t, "RetireGrant by token by a grantee whose grant lacks RetireGrant", err, "AccessDeniedException")
	_, err = build.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: g.GrantToken})
	emutest.WantCode(t, "RetireGrant by token by the issuing account", err, "")
	for _, gi := range srv.Emulator().Grants() {
		if gi.GrantID == aws.ToString(g.GrantId) {
			t.Fatal("grant still live after RetireGrant by token")
		}
	}

	created, err := target.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	id := created.KeyMetadata.KeyId
	if _, err := target.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	_, err = target.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: id})
	emutest.WantCode(t, "CancelKeyDeletion", err, "")
	d, err := target.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: id})
	if err != nil || d.KeyMetadata.KeyState != types.KeyStateDisabled || d.KeyMetadata.DeletionDate != nil {
		t.Fatalf("after CancelKeyDeletion the key is Disabled without deletion date: %v %+v", err, d)
	}
	_, err = target.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: id})
	emutest.WantCode(t, "CancelKeyDeletion twice", err, "KMSInvalidStateException")
}

// TestKMSIdentityPolicies: a user with identity policies may use a key the
// key policy delegates to its account only as far as its policies allow; a
// key policy statement naming the user itself is enough on its own.
func TestKMSIdentityPolicies(t *testing.T) {
	ctx := context.Background()
	const limited = "arn:aws:iam::111111111111:user/limited"
	w := emutest.DefaultWorldWith(t, func(w *awsemu.World) {
		emutest.AddUser(w, emutest.AcctBuild, awsemu.WorldUser{Name: "limited", AccessKey: "AKIALIMITED000000001", SecretKey: "emu-secret-limited",
			Policies: []string{`{"Version":"2012-10-17","Statement":[
				{"Effect":"Allow","Action":["kms:DescribeKey","kms:ListAliases"],"Resource":"*"},
				{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}`}})
		for i := range w.Accounts {
			if w.Accounts[i].ID == emutest.AcctBuild {
				w.Accounts[i].Keys = append(w.Accounts[i].Keys, awsemu.WorldKey{Region: emutest.East, Aliases: []string{"alias/names-limited"},
					Policy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + limited + `"},"Action":"kms:Encrypt","Resource":"*"}]}`})
			}
		}
	})
	x := emutest.NewEnv(t, awsemu.Options{World: w})
	c := kms.NewFromConfig(x.UserCfg(emutest.AcctBuild, emutest.East, "AKIALIMITED000000001", "emu-secret-limited"))
	if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-build")}); err != nil {
		t.Fatalf("DescribeKey allowed by the identity policy: %v", err)
	}
	_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/amicrypt-build"), Plaintext: []byte("x")})
	if emutest.APICode(err) != "AccessDeniedException" || !strings.Contains(emutest.APIMessage(err), "because no identity-based policy allows the kms:Encrypt action") {
		t.Fatalf("Encrypt not in the identity policy: %v", err)
	}
	if _, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/names-limited"), Plaintext: []byte("x")}); err != nil {
		t.Fatalf("Encrypt allowed by a key policy naming the user: %v", err)
	}
	// The other user of the account, without identity policies, is unchanged.
	if _, err := x.KMS(emutest.AcctBuild, emutest.East).Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/amicrypt-build"), Plaintext: []byte("x")}); err != nil {
		t.Fatalf("user without identity policies: %v", err)
	}
	// EC2 checks the identity policy too.
	e := ec2.NewFromConfig(x.UserCfg(emutest.AcctBuild, emutest.East, "AKIALIMITED000000001", "emu-secret-limited"))
	if _, err := e.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{emutest.SeedAMI}}); err != nil {
		t.Fatalf("ec2:Describe* allowed: %v", err)
	}
	if _, err := e.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("nope")}); emutest.APICode(err) != "UnauthorizedOperation" {
		t.Fatalf("CopyImage outside the identity policy: %v", err)
	}
}
