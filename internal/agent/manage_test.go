package agent_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

func tokenOf(t *testing.T, w *world, dev string) *agent.Token {
	t.Helper()
	tok, err := agent.ParseToken(w.fake.Volume(dev).Tokens[0])
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRewrap(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	newKeyARN := w.newKey("alias/amicrypt-next")
	dev := w.disk("nvme1n1")
	cfg := config(t, []string{dev}, nil)
	a := w.agent(w.a, cfg)
	if err := a.Up(w.ctx); err != nil {
		t.Fatal(err)
	}
	before := tokenOf(t, w, dev)
	slotsBefore := w.fake.Volume(dev).Slots
	mark := w.srv.Mark()

	err := a.Rewrap(w.ctx, "alias/amicrypt-next", "")
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	after := tokenOf(t, w, dev)
	if after.KMSKeyARN != newKeyARN || after.Ciphertext == before.Ciphertext {
		t.Errorf("token after rewrap: key %s (want %s), ciphertext changed %v", after.KMSKeyARN, newKeyARN, after.Ciphertext != before.Ciphertext)
	}
	if after.Keyslots[0] != before.Keyslots[0] || after.Volume != before.Volume || len(after.EncryptionContext) != len(before.EncryptionContext) {
		t.Errorf("rewrap changed more than the key: %+v -> %+v", before, after)
	}
	if got := w.fake.Volume(dev).Slots; len(got) != len(slotsBefore) || got[0] != slotsBefore[0] {
		t.Error("rewrap changed the keyslots: the passphrase must stay")
	}
	re := w.srv.Emulator().Audit(awsemu.AuditFilter{Service: "kms", Action: "ReEncrypt", SinceSeq: mark})
	if len(re) != 1 || re[0].Outcome != "ok" || re[0].Params["DestinationKeyId"] != "alias/amicrypt-next" {
		t.Errorf("ReEncrypt audit %+v", re)
	}
	if got := w.lastLog(dev)["outcome"]; got != agent.OutcomeRewrapped {
		t.Errorf("outcome %v", got)
	}
	// The volume opens with the new key after a reboot, the config's key
	// disabled: the token's key is what counts.
	w.disableKey(key)
	w.fake.Reboot()
	mark = w.srv.Mark()
	if err := w.agent(w.a, cfg).Up(w.ctx); err != nil {
		t.Fatalf("Up after rewrap: %v", err)
	}
	dec := w.srv.Emulator().Audit(awsemu.AuditFilter{Service: "kms", Action: "Decrypt", SinceSeq: mark})
	if len(dec) != 1 || dec[0].Params["KeyId"] != newKeyARN {
		t.Errorf("Decrypt after rewrap: %+v", dec)
	}
	if err := a.Verify(w.ctx, dev); err != nil {
		t.Errorf("Verify after rewrap: %v", err)
	}
	w.checkNoSecretLeaks(err)

	t.Run("to a disabled key leaves the token", func(t *testing.T) {
		w.newKey("alias/amicrypt-off")
		w.disableKey("alias/amicrypt-off")
		before := tokenOf(t, w, dev)
		err := a.Rewrap(w.ctx, "alias/amicrypt-off", "")
		if err == nil || !strings.Contains(err.Error(), "DisabledException") || !strings.Contains(err.Error(), "kms:ReEncrypt with key alias/amicrypt-off") {
			t.Fatalf("Rewrap to a disabled key: %v", err)
		}
		if !tokenOf(t, w, dev).Equal(before) {
			t.Error("the token changed after a failed rewrap")
		}
	})
	t.Run("bad key reference", func(t *testing.T) {
		err := a.Rewrap(w.ctx, "my-key", "")
		if err == nil || !strings.Contains(err.Error(), `--to: "my-key" is not a KMS key reference`) {
			t.Fatalf("Rewrap: %v", err)
		}
	})
}

func TestRotate(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	dev := w.disk("nvme1n1")
	cfg := config(t, []string{dev}, nil)
	a := w.agent(w.a, cfg)
	if err := a.Up(w.ctx); err != nil {
		t.Fatal(err)
	}
	before := tokenOf(t, w, dev)
	oldSlot := w.fake.Volume(dev).Slots[0]
	mark := w.srv.Mark()

	err := a.Rotate(w.ctx, "")
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	v := w.fake.Volume(dev)
	if _, ok := v.Slots[0]; ok || len(v.Slots) != 1 {
		t.Errorf("keyslots after rotate: %v, want only the new one", v.Slots)
	}
	after := tokenOf(t, w, dev)
	if after.Keyslots[0] != "1" || after.Ciphertext == before.Ciphertext || after.KMSKeyARN != before.KMSKeyARN {
		t.Errorf("token after rotate %+v", after)
	}
	if v.Slots[1] == oldSlot {
		t.Error("the new keyslot has the old passphrase")
	}
	if w.calls("Decrypt", mark) != 1 || w.calls("GenerateDataKey", mark) != 1 {
		t.Errorf("rotate made %d Decrypt and %d GenerateDataKey calls, want 1 and 1", w.calls("Decrypt", mark), w.calls("GenerateDataKey", mark))
	}
	var addKey bool
	for _, c := range w.fake.Calls() {
		if len(c.Args) > 0 && c.Args[0] == "luksAddKey" {
			addKey = true
			if len(c.Secrets) != 2 || bytes.Equal(c.Secrets[0], c.Secrets[1]) {
				t.Errorf("luksAddKey got %d secrets, want the old on stdin and the new on a pipe", len(c.Secrets))
			}
		}
	}
	if !addKey {
		t.Error("no luksAddKey")
	}
	if err := a.Verify(w.ctx, ""); err != nil {
		t.Errorf("Verify after rotate: %v", err)
	}
	w.fake.Reboot()
	if err := w.agent(w.a, cfg).Up(w.ctx); err != nil {
		t.Fatalf("Up after rotate: %v", err)
	}
	w.checkNoSecretLeaks(err)

	t.Run("token import fails: the new keyslot is removed", func(t *testing.T) {
		w.fake.Fail(commandFailure("token import", 1))
		before, slots := tokenOf(t, w, dev), w.fake.Volume(dev).Slots
		err := a.Rotate(w.ctx, "")
		if err == nil || !strings.Contains(err.Error(), "the new keyslot was removed") {
			t.Fatalf("Rotate: %v", err)
		}
		if !tokenOf(t, w, dev).Equal(before) || len(w.fake.Volume(dev).Slots) != len(slots) {
			t.Error("the volume changed after a failed rotate")
		}
	})
}

func TestVerify(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	ours, blank := w.disk("nvme1n1"), w.disk("nvme2n1")
	if err := w.agent(w.a, config(t, []string{ours}, nil)).Up(w.ctx); err != nil {
		t.Fatal(err)
	}
	a := w.agent(w.a, config(t, []string{ours, blank}, nil))
	writes := len(w.fake.Writes())
	err := a.Verify(w.ctx, ours)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(w.fake.Writes()) != writes {
		t.Error("verify wrote")
	}
	if got := w.lastLog(ours)["outcome"]; got != agent.OutcomeVerified {
		t.Errorf("outcome %v", got)
	}
	if err := a.Verify(w.ctx, blank); err == nil || !strings.Contains(err.Error(), "blank, not an amicrypt volume") {
		t.Errorf("Verify(blank): %v", err)
	}
	if err := a.Verify(w.ctx, "/dev/nope"); err == nil || !strings.Contains(err.Error(), "not one of the agent's disks") {
		t.Errorf("Verify(unknown): %v", err)
	}
	// Another instance can't verify it.
	if err := w.agent(w.b, config(t, []string{ours}, nil)).Verify(w.ctx, ""); err == nil || !strings.Contains(err.Error(), "belongs to another instance") {
		t.Errorf("Verify from another instance: %v", err)
	}
	w.checkNoSecretLeaks(err)
}

func TestStatus(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	ours, blank, foreign := w.disk("nvme1n1"), w.disk("nvme2n1"), w.disk("nvme3n1")
	w.write(foreign, 0, []byte("XFSB"))
	if err := w.agent(w.a, config(t, []string{ours}, func(c *agent.Config) { c.Layout = agent.LayoutEach })).Up(w.ctx); err != nil {
		t.Fatal(err)
	}
	mark := w.srv.Mark()
	rep, err := w.agent(w.a, config(t, []string{ours, blank, foreign}, nil)).Status(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w.srv.Calls(awsemu.AuditFilter{SinceSeq: mark}) != 0 {
		t.Error("status called AWS")
	}
	raw, _ := json.Marshal(rep)
	var got struct {
		Layout string `json:"layout"`
		Disks  []struct {
			Device, State, Volume, Detail string
			KMSKeyARN                     string            `json:"kms_key_arn"`
			Context                       map[string]string `json:"encryption_context"`
			Open, Mounted                 bool
			MountPoint                    string `json:"mount_point"`
			Mapper                        string
		} `json:"disks"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.Layout != "each" || len(got.Disks) != 3 {
		t.Fatalf("status %s", raw)
	}
	d := got.Disks[0]
	if d.Device != ours || d.State != "luks-amicrypt" || d.KMSKeyARN != w.keyARN(key) || d.Context[agent.ContextInstanceARN] != w.a.ARN() ||
		!d.Open || !d.Mounted || d.MountPoint != filepath.Join(w.mountPoint(), "0") || d.Mapper != filepath.Join(w.paths.Mapper, "amicrypt-0") {
		t.Errorf("our disk: %+v", d)
	}
	if d := got.Disks[1]; d.State != "blank" || d.Open || d.Mounted {
		t.Errorf("blank disk: %+v", d)
	}
	if d := got.Disks[2]; d.State != "foreign" || d.Detail != "an XFS filesystem" {
		t.Errorf("foreign disk: %+v", d)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DEVICE", ours, "luks-amicrypt", "amicrypt-0", "an XFS filesystem"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text status lacks %q:\n%s", want, text.String())
		}
	}
}
