package main

import (
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/cryptsetup"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/instancetest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/luks2"
)

// needCryptsetup skips a test without the cryptsetup CLI, unless
// AMICRYPT_REQUIRE_CRYPTSETUP is set (CI sets it), which makes it a failure.
func needCryptsetup(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("cryptsetup"); err == nil {
		return
	}
	if _, err := os.Stat("/usr/sbin/cryptsetup"); err == nil {
		return
	}
	if os.Getenv("AMICRYPT_REQUIRE_CRYPTSETUP") != "" {
		t.Fatal("cryptsetup is not installed and AMICRYPT_REQUIRE_CRYPTSETUP is set")
	}
	t.Skip("cryptsetup is not installed (set AMICRYPT_REQUIRE_CRYPTSETUP to make this a failure)")
}

// header reads dev with the project's LUKS2 checker and checks that it
// agrees with cryptsetup's own dump; it returns the checker's view and the
// amicrypt-kms token.
func header(t *testing.T, dev string) (*luks2.Volume, *agent.Token) {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := luks2.Read(f)
	if err != nil {
		t.Fatalf("the LUKS2 checker can't read %s: %v", dev, err)
	}
	cli := cryptsetup.CLI{Runner: command.Exec{}}
	dump, err := cli.Metadata(t.Context(), dev)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v.Metadata, dump) {
		t.Errorf("the checker and cryptsetup disagree on %s:\nchecker    %+v\ncryptsetup %+v", dev, v.Metadata, dump)
	}
	if uuid, err := cli.UUID(t.Context(), dev); err != nil || uuid != v.UUID() {
		t.Errorf("UUID: checker %q, cryptsetup %q (%v)", v.UUID(), uuid, err)
	}
	ids := v.Metadata.TokensOfType(agent.TokenType)
	if len(ids) != 1 {
		t.Fatalf("%s has amicrypt-kms tokens %v, want one", dev, ids)
	}
	tok, err := agent.ParseToken(v.Metadata.Tokens[ids[0]].Raw)
	if err != nil {
		t.Fatal(err)
	}
	if tok.EncryptionContext[agent.ContextLUKSUUID] != v.UUID() {
		t.Errorf("token context names LUKS UUID %s, the header is %s", tok.EncryptionContext[agent.ContextLUKSUUID], v.UUID())
	}
	return v, tok
}

// passphrase unwraps a token's key the way the agent does, as instance a
// (only its role may, and only with a context naming it): the test needs it
// to check the header independently.
func (h *harness) passphrase(tok *agent.Token) []byte {
	h.t.Helper()
	out, err := h.a.KMS(h.ctx, h.srv).Decrypt(h.ctx, &kms.DecryptInput{KeyId: aws.String(tok.KMSKeyARN), CiphertextBlob: tok.Blob(), EncryptionContext: tok.EncryptionContext})
	if err != nil {
		h.t.Fatal(err)
	}
	return out.Plaintext
}

// checkOpens checks with the checker that pass opens keyslot slot of dev.
func checkOpens(t *testing.T, v *luks2.Volume, dev string, slot int, pass []byte, want bool) {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = v.VerifyPassphrase(f, strconv.Itoa(slot), pass)
	switch {
	case want && err != nil:
		t.Errorf("keyslot %d of %s does not open: %v", slot, dev, err)
	case !want && !errors.Is(err, luks2.ErrWrongPassphrase) && !strings.Contains(errString(err), "does not exist"):
		t.Errorf("keyslot %d of %s: %v, want it not to open", slot, dev, err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestRealCryptsetup runs the agent with the real cryptsetup on sparse
// files. This host has no device-mapper, so up formats and then fails to
// open, clearly, leaving the header and token in place; verify, rewrap and
// rotate need no device-mapper. Every refusal leaves the disk's bytes as
// they were.
func TestRealCryptsetup(t *testing.T) {
	needCryptsetup(t)
	h := newHarness(t)
	real := command.Exec{}
	dev := h.disk("nvme1n1")
	h.writeConfig(dev)

	code, _, stderr := h.run(real, "up")
	if code != 1 {
		t.Fatalf("up without device-mapper: exit %d, want 1\n%s", code, stderr)
	}
	t.Logf("up on this host:\n%s", stderr)
	line := logLine(t, stderr, "up", dev)
	for _, want := range []string{"no device-mapper", "stays formatted", "Nothing is mounted"} {
		if !strings.Contains(line["error"].(string), want) {
			t.Errorf("up error lacks %q: %v", want, line["error"])
		}
	}
	v, tok := header(t, dev)
	if tok.InstanceARN() != h.a.ARN() || tok.EncryptionContext["team"] != "payments" {
		t.Errorf("token context %v", tok.EncryptionContext)
	}
	if v.Subsystem() != agent.Subsystem || v.Label() != "amicrypt" {
		t.Errorf("header label %q subsystem %q", v.Label(), v.Subsystem())
	}
	ks := v.Metadata.Keyslots[strconv.Itoa(tok.Keyslot())]
	if ks.KDF.Type != "pbkdf2" || ks.KDF.Iterations != 1000 || ks.Area.Encryption != "aes-xts-plain64" {
		t.Errorf("keyslot %+v: want PBKDF2 with 1000 iterations", ks)
	}
	pass := h.passphrase(tok)
	checkOpens(t, v, dev, tok.Keyslot(), pass, true)

	if code, _, stderr := h.run(real, "verify"); code != 0 {
		t.Fatalf("verify: exit %d\n%s", code, stderr)
	}

	// rewrap: another key, bound to the instance the same way (its policy is
	// the instance-store key's), same passphrase.
	policy, err := h.kms.GetKeyPolicy(h.ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(key), PolicyName: aws.String("default")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.kms.CreateKey(h.ctx, &kms.CreateKeyInput{Policy: policy.Policy})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.kms.CreateAlias(h.ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/amicrypt-next"), TargetKeyId: out.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := h.run(real, "rewrap", "-to", "alias/amicrypt-next"); code != 0 {
		t.Fatalf("rewrap: exit %d\n%s", code, stderr)
	}
	_, tok2 := header(t, dev)
	if tok2.KMSKeyARN != aws.ToString(out.KeyMetadata.Arn) || tok2.Keyslot() != tok.Keyslot() {
		t.Errorf("after rewrap: key %s keyslot %d", tok2.KMSKeyARN, tok2.Keyslot())
	}
	if p2 := h.passphrase(tok2); string(p2) != string(pass) {
		t.Error("rewrap changed the passphrase")
	}
	if code, _, stderr := h.run(real, "verify"); code != 0 {
		t.Fatalf("verify after rewrap: exit %d\n%s", code, stderr)
	}

	// rotate: a new passphrase in a new keyslot, the old one gone.
	if code, _, stderr := h.run(real, "rotate"); code != 0 {
		t.Fatalf("rotate: exit %d\n%s", code, stderr)
	}
	v, tok3 := header(t, dev)
	if tok3.Keyslot() == tok.Keyslot() || len(v.Metadata.Keyslots) != 1 {
		t.Errorf("after rotate: token keyslot %d, keyslots %v", tok3.Keyslot(), luks2.SortedIDs(v.Metadata.Keyslots))
	}
	newPass := h.passphrase(tok3)
	checkOpens(t, v, dev, tok3.Keyslot(), newPass, true)
	checkOpens(t, v, dev, tok3.Keyslot(), pass, false)
	checkOpens(t, v, dev, tok.Keyslot(), pass, false)
	if code, _, stderr := h.run(real, "verify"); code != 0 {
		t.Fatalf("verify after rotate: exit %d\n%s", code, stderr)
	}

	t.Run("another instance's disk is left as it is", func(t *testing.T) {
		before := hashFile(t, dev)
		h.imds.setInstance(t, h.b)
		defer h.imds.setInstance(t, h.a)
		code, _, stderr := h.run(real, "up")
		if code != 1 || !strings.Contains(stderr, "belongs to another instance") || !strings.Contains(stderr, h.a.ID) {
			t.Fatalf("up as another instance: exit %d\n%s", code, stderr)
		}
		if hashFile(t, dev) != before {
			t.Error("the disk changed")
		}
	})
	t.Run("foreign data is left as it is", func(t *testing.T) {
		foreign := h.disk("nvme2n1")
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", foreign).CombinedOutput(); err != nil {
			t.Skipf("mkfs.ext4: %v %s", err, out)
		}
		before := hashFile(t, foreign)
		h.writeConfig(foreign)
		defer h.writeConfig(dev)
		code, _, stderr := h.run(real, "up")
		if code != 1 || !strings.Contains(stderr, "ext2/3/4 filesystem") || !strings.Contains(stderr, "wipe_foreign") {
			t.Fatalf("up on an ext4 disk: exit %d\n%s", code, stderr)
		}
		if hashFile(t, foreign) != before {
			t.Error("the foreign disk changed")
		}
	})
	t.Run("a rewrap the key policy refuses leaves the header as it is", func(t *testing.T) {
		// A key whose policy lets the account administer it and nobody use it.
		closed, err := h.kms.CreateKey(h.ctx, &kms.CreateKeyInput{Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Sid":"Admin","Effect":"Allow",` +
			`"Principal":{"AWS":"arn:aws:iam::` + account + `:root"},"Action":["kms:Create*","kms:Describe*","kms:Enable*","kms:List*","kms:Put*","kms:Update*",` +
			`"kms:Revoke*","kms:Disable*","kms:Get*","kms:Delete*","kms:ScheduleKeyDeletion","kms:CancelKeyDeletion"],"Resource":"*"}]}`)})
		if err != nil {
			t.Fatal(err)
		}
		before := hashFile(t, dev)
		code, _, stderr := h.run(real, "rewrap", "-to", aws.ToString(closed.KeyMetadata.Arn))
		if code != 1 || !strings.Contains(stderr, "AccessDeniedException") || !strings.Contains(stderr, "kms:ReEncryptTo") {
			t.Fatalf("rewrap to a closed key: exit %d\n%s", code, stderr)
		}
		if hashFile(t, dev) != before {
			t.Error("a refused rewrap changed the disk")
		}
		if code, _, stderr := h.run(real, "verify"); code != 0 {
			t.Fatalf("verify after a refused rewrap: exit %d\n%s", code, stderr)
		}
	})
	t.Run("disabled key", func(t *testing.T) {
		blank := h.disk("nvme3n1")
		blankHash, oursHash := hashFile(t, blank), hashFile(t, dev)
		h.disableKey(key)
		h.disableKey("alias/amicrypt-next")
		h.writeConfig(blank)
		code, _, stderr := h.run(real, "up")
		if code != 1 || !strings.Contains(stderr, "DisabledException") || !strings.Contains(stderr, "nothing was written") || !strings.Contains(stderr, "enable-key --key-id "+key) {
			t.Fatalf("up on a blank disk with a disabled key: exit %d\n%s", code, stderr)
		}
		if hashFile(t, blank) != blankHash {
			t.Error("the blank disk changed though KMS refused the data key")
		}
		h.writeConfig(dev)
		code, _, stderr = h.run(real, "up")
		if code != 1 || !strings.Contains(stderr, "DisabledException") {
			t.Fatalf("up on our disk with a disabled key: exit %d\n%s", code, stderr)
		}
		if hashFile(t, dev) != oursHash {
			t.Error("our disk changed because KMS failed")
		}
		// Nor do rotate, rewrap or verify touch it while KMS refuses.
		for _, args := range [][]string{{"rotate"}, {"rewrap", "-to", key}, {"verify"}} {
			code, _, stderr := h.run(real, args...)
			if code != 1 || !strings.Contains(stderr, "DisabledException") {
				t.Errorf("%v with a disabled key: exit %d\n%s", args, code, stderr)
			}
			if hashFile(t, dev) != oursHash {
				t.Errorf("%v changed our disk while KMS refused", args)
			}
		}
	})

	// CloudTrail: every use of a key by the role session of the instance
	// that made it, with a context naming that instance; the checker agrees.
	var uses int
	for _, ev := range instancetest.CloudTrail(t, h.srv, "", h.mark) {
		switch ev.EventName {
		case "GenerateDataKey", "Decrypt", "ReEncrypt", "Encrypt":
		default:
			continue // the test's key administration, as the account user
		}
		ec := instancetest.Context(ev)
		if len(ec) == 0 {
			ec = map[string]string{}
			for _, k := range []string{"sourceEncryptionContext", "destinationEncryptionContext"} {
				if m, ok := ev.RequestParameters[k].(map[string]any); ok {
					ec[agent.ContextInstanceARN], _ = m[agent.ContextInstanceARN].(string)
				}
			}
		}
		uses++
		switch ev.UserIdentity.ARN {
		case h.a.SessionARN():
			if ec[agent.ContextInstanceARN] != h.a.ARN() {
				t.Errorf("%s by a with context %v", ev.EventName, ec)
			}
		case h.b.SessionARN():
			if ev.EventName != "Decrypt" || ev.ErrorCode != "InvalidCiphertextException" || ec[agent.ContextInstanceARN] != h.b.ARN() {
				t.Errorf("b's call: %s %s with context %v", ev.EventName, ev.ErrorCode, ec)
			}
		default:
			t.Errorf("%s by %s, not an instance's role session", ev.EventName, ev.UserIdentity.ARN)
		}
	}
	if uses < 8 {
		t.Errorf("CloudTrail shows %d uses of keys; up, verify, rewrap, rotate and the refusals make more", uses)
	}
	if f := instancetest.InstanceContextFindings(h.srv, h.mark); len(f) != 0 {
		t.Errorf("invariant checker: %+v", f)
	}
}
