package awsemu_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

// awsCLI runs the AWS CLI, an independent client, against srv.
type awsCLI struct {
	t   *testing.T
	srv *emutest.Server
	bin string
}

// newAWSCLI finds `aws`; without it the test skips, unless
// AMICRYPT_REQUIRE_AWSCLI=1 (CI), where it fails.
func newAWSCLI(t *testing.T, srv *emutest.Server) *awsCLI {
	t.Helper()
	bin, err := exec.LookPath("aws")
	if err != nil {
		if os.Getenv("AMICRYPT_REQUIRE_AWSCLI") == "1" {
			t.Fatalf("AMICRYPT_REQUIRE_AWSCLI=1 but the aws CLI is not on PATH: %v", err)
		}
		t.Skip("aws CLI not installed (set AMICRYPT_REQUIRE_AWSCLI=1 to make this a failure)")
	}
	return &awsCLI{t: t, srv: srv, bin: bin}
}

// run executes `aws --endpoint-url URL ARGS…` with the credentials given and
// returns stdout, stderr and whether it succeeded.
func (a *awsCLI) run(accessKey, secretKey, token, region string, args ...string) (string, string, bool) {
	a.t.Helper()
	dir := a.t.TempDir()
	cmd := exec.Command(a.bin, append([]string{"--endpoint-url", a.srv.URL(), "--output", "json"}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"AWS_ACCESS_KEY_ID="+accessKey, "AWS_SECRET_ACCESS_KEY="+secretKey,
		"AWS_DEFAULT_REGION="+region, "AWS_REGION="+region,
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1", "AWS_RETRY_MODE=standard",
	)
	if token != "" {
		env = append(env, "AWS_SESSION_TOKEN="+token)
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		if exitErr := (*exec.ExitError)(nil); !errors.As(err, &exitErr) {
			a.t.Fatalf("running aws %v: %v", args, err)
		}
	}
	return stdout.String(), stderr.String(), err == nil
}

func (a *awsCLI) user(account, region string, args ...string) (string, string, bool) {
	ak, sk, err := a.srv.Emulator().Credentials(account)
	if err != nil {
		a.t.Fatal(err)
	}
	return a.run(ak, sk, "", region, args...)
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
}

func TestAWSCLIKMSAndSTS(t *testing.T) {
	srv := emutest.Start(t, awsemu.Options{})
	cli := newAWSCLI(t, srv)

	tests := []struct {
		name      string
		account   string
		region    string
		args      []string
		wantErr   string // error code in stderr; "" means success
		wantInOut string
	}{
		{"get-caller-identity", "111111111111", "us-east-1", []string{"sts", "get-caller-identity"}, "", `"arn:aws:iam::111111111111:user/packer"`},
		{"describe-key by alias", "222222222222", "eu-west-1", []string{"kms", "describe-key", "--key-id", "alias/amicrypt-target"}, "", `"KeyManager": "CUSTOMER"`},
		{"describe AWS-managed key", "222222222222", "eu-west-1", []string{"kms", "describe-key", "--key-id", "alias/aws/ebs"}, "", `"KeyManager": "AWS"`},
		{"list-aliases", "333333333333", "us-west-2", []string{"kms", "list-aliases"}, "", `"alias/aws/ebs"`},
		{"AWS-managed key grant to another account", "111111111111", "us-east-1", []string{"kms", "create-grant", "--key-id", "alias/aws/ebs", "--grantee-principal", "arn:aws:iam::222222222222:root", "--operations", "Decrypt"}, "AccessDeniedException", ""},
		{"AWS-managed key deletion", "111111111111", "us-east-1", []string{"kms", "schedule-key-deletion", "--key-id", "alias/aws/ebs"}, "AccessDeniedException", ""},
		{"alias of another account", "222222222222", "us-east-1", []string{"kms", "describe-key", "--key-id", "alias/amicrypt-build"}, "NotFoundException", ""},
		{"grant dry run", "111111111111", "us-east-1", []string{"kms", "create-grant", "--key-id", "alias/amicrypt-build", "--grantee-principal", "222222222222", "--operations", "Decrypt", "--dry-run"}, "DryRunOperationException", ""},
		{"assume role without the external ID", "111111111111", "us-east-1", []string{"sts", "assume-role", "--role-arn", "arn:aws:iam::444444444444:role/amicrypt-copy", "--role-session-name", "cli"}, "AccessDenied", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, ok := cli.user(tc.account, tc.region, tc.args...)
			if tc.wantErr == "" {
				if !ok || !strings.Contains(out, tc.wantInOut) {
					t.Fatalf("aws %v: ok=%v stdout=%s stderr=%s; want %s", tc.args, ok, out, errOut, tc.wantInOut)
				}
				return
			}
			if ok || !strings.Contains(errOut, "("+tc.wantErr+")") {
				t.Fatalf("aws %v: ok=%v stderr=%s; want error %s", tc.args, ok, errOut, tc.wantErr)
			}
		})
	}

	t.Run("wrong secret", func(t *testing.T) {
		for _, args := range [][]string{{"kms", "list-keys"}, {"sts", "get-caller-identity"}, {"ec2", "describe-regions"}} {
			_, errOut, ok := cli.run("AKIA2222222222222222", "wrong", "", "us-east-1", args...)
			want := map[string]string{"kms": "UnrecognizedClientException", "sts": "SignatureDoesNotMatch", "ec2": "AuthFailure"}[args[0]]
			if ok || !strings.Contains(errOut, "("+want+")") {
				t.Errorf("aws %v with a wrong secret: ok=%v stderr=%s; want %s", args, ok, errOut, want)
			}
		}
	})

	t.Run("assume role, then encrypt and decrypt as the role", func(t *testing.T) {
		out, errOut, ok := cli.user("111111111111", "us-east-1", "sts", "assume-role", "--role-arn", "arn:aws:iam::444444444444:role/amicrypt-copy",
			"--role-session-name", "cli", "--external-id", "amicrypt-demo")
		if !ok {
			t.Fatalf("assume-role: %s", errOut)
		}
		var role struct {
			Credentials struct{ AccessKeyId, SecretAccessKey, SessionToken string }
		}
		decodeJSON(t, out, &role)
		rc := role.Credentials
		out, errOut, ok = cli.run(rc.AccessKeyId, rc.SecretAccessKey, rc.SessionToken, "eu-central-1", "sts", "get-caller-identity")
		if !ok || !strings.Contains(out, "arn:aws:sts::444444444444:assumed-role/amicrypt-copy/cli") {
			t.Fatalf("identity as the role: %s %s", out, errOut)
		}
		dir := t.TempDir()
		plain := filepath.Join(dir, "plain")
		if err := os.WriteFile(plain, []byte("pci data"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, ok = cli.run(rc.AccessKeyId, rc.SecretAccessKey, rc.SessionToken, "eu-central-1", "kms", "encrypt",
			"--key-id", "alias/amicrypt-target", "--plaintext", "fileb://"+plain, "--encryption-context", "purpose=test")
		if !ok {
			t.Fatalf("encrypt: %s", errOut)
		}
		var enc struct{ CiphertextBlob, KeyId string }
		decodeJSON(t, out, &enc)
		if !strings.HasPrefix(enc.KeyId, "arn:aws:kms:eu-central-1:444444444444:key/") {
			t.Fatalf("encrypt key %s", enc.KeyId)
		}
		blob := filepath.Join(dir, "blob")
		raw, err := base64Decode(enc.CiphertextBlob)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(blob, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, ok = cli.run(rc.AccessKeyId, rc.SecretAccessKey, rc.SessionToken, "eu-central-1", "kms", "decrypt",
			"--ciphertext-blob", "fileb://"+blob, "--encryption-context", "purpose=test")
		if !ok {
			t.Fatalf("decrypt: %s", errOut)
		}
		var dec struct{ Plaintext string }
		decodeJSON(t, out, &dec)
		if p, _ := base64Decode(dec.Plaintext); string(p) != "pci data" {
			t.Fatalf("decrypted %q", p)
		}
		// The build account's user cannot decrypt the target account's data.
		_, errOut, ok = cli.user("111111111111", "eu-central-1", "kms", "decrypt", "--ciphertext-blob", "fileb://"+blob, "--encryption-context", "purpose=test")
		if ok || !strings.Contains(errOut, "(AccessDeniedException)") {
			t.Fatalf("decrypt by another account: ok=%v %s", ok, errOut)
		}
	})
}

func base64Decode(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// The AWS CLI's IAM commands reach the emulator's IAM at the same endpoint:
// the instance profile with its role's trust policy (which the CLI decodes
// from its URL encoding), and NoSuchEntity for a profile the account lacks.
func TestAWSCLIIAM(t *testing.T) {
	srv := emutest.Start(t, awsemu.Options{})
	cli := newAWSCLI(t, srv)
	out, errOut, ok := cli.user("111111111111", "us-east-1", "iam", "get-instance-profile", "--instance-profile-name", "amicrypt-instance-store")
	if !ok {
		t.Fatalf("get-instance-profile: %s", errOut)
	}
	var got struct {
		InstanceProfile struct {
			Arn   string
			Roles []struct {
				RoleName                 string
				AssumeRolePolicyDocument struct {
					Statement []struct {
						Principal struct{ Service string }
					}
				}
			}
		}
	}
	decodeJSON(t, out, &got)
	p := got.InstanceProfile
	if p.Arn != "arn:aws:iam::111111111111:instance-profile/amicrypt-instance-store" || len(p.Roles) != 1 ||
		len(p.Roles[0].AssumeRolePolicyDocument.Statement) != 1 || p.Roles[0].AssumeRolePolicyDocument.Statement[0].Principal.Service != "ec2.amazonaws.com" {
		t.Errorf("get-instance-profile:\n%s", out)
	}
	_, errOut, ok = cli.user("111111111111", "eu-west-1", "iam", "get-instance-profile", "--instance-profile-name", "nope")
	if ok || !strings.Contains(errOut, "(NoSuchEntity)") || !strings.Contains(errOut, "Instance Profile nope cannot be found.") {
		t.Errorf("get-instance-profile nope: ok=%v %s", ok, errOut)
	}
	out, errOut, ok = cli.user("111111111111", "us-east-1", "iam", "list-instance-profiles-for-role", "--role-name", "amicrypt-instance-store")
	if !ok || !strings.Contains(out, `"InstanceProfileName": "amicrypt-instance-store"`) {
		t.Errorf("list-instance-profiles-for-role: ok=%v %s %s", ok, out, errOut)
	}
}
