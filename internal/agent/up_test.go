package agent_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command/commandtest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/instancetest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// formatted checks that dev holds a volume of instance: a LUKS2 header with
// our token, whose context binds it to the instance and the header UUID.
func formatted(t *testing.T, w *world, dev string, inst instancetest.Instance) *agent.Token {
	t.Helper()
	v := w.fake.Volume(dev)
	if v == nil {
		t.Fatalf("%s is not LUKS", dev)
	}
	raw, ok := v.Tokens[0]
	if !ok {
		t.Fatalf("%s has no token 0", dev)
	}
	tok, err := agent.ParseToken(raw)
	if err != nil {
		t.Fatalf("token of %s: %v", dev, err)
	}
	want := map[string]string{agent.ContextInstanceARN: inst.ARN(), agent.ContextLUKSUUID: v.UUID, "team": "payments"}
	if len(tok.EncryptionContext) != len(want) {
		t.Errorf("context %v, want %v", tok.EncryptionContext, want)
	}
	for k, val := range want {
		if tok.EncryptionContext[k] != val {
			t.Errorf("context[%s] = %q, want %q", k, tok.EncryptionContext[k], val)
		}
	}
	if tok.KMSKeyARN != w.keyARN(key) {
		t.Errorf("token key %s, want the ARN of %s (%s)", tok.KMSKeyARN, key, w.keyARN(key))
	}
	if v.Subsystem != agent.Subsystem {
		t.Errorf("subsystem %q", v.Subsystem)
	}
	return tok
}

func TestUpBlankDisk(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	dev := w.disk("nvme1n1")
	// The first write to any disk must come after KMS gave the data key.
	var writesBeforeKey []string
	w.fake.BeforeWrite = func(c commandtest.Call) error {
		if w.calls("GenerateDataKey", 0) == 0 {
			writesBeforeKey = append(writesBeforeKey, c.String())
		}
		return nil
	}
	err := w.agent(w.a, config(t, []string{dev}, nil)).Up(w.ctx)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if len(writesBeforeKey) > 0 {
		t.Errorf("written before GenerateDataKey: %v", writesBeforeKey)
	}
	formatted(t, w, dev, w.a)
	if got := w.srv.Calls(awsemu.AuditFilter{Service: "kms", Action: "GenerateDataKey", Outcome: "ok"}); got != 1 {
		t.Errorf("GenerateDataKey calls %d, want 1", got)
	}
	entries := w.srv.Emulator().Audit(awsemu.AuditFilter{Service: "kms", Action: "GenerateDataKey"})
	if ec := entries[0].Params["EncryptionContext"]; !strings.Contains(ec, w.a.ARN()) || !strings.Contains(ec, "payments") {
		t.Errorf("GenerateDataKey context as KMS saw it: %s", ec)
	}
	want := fmt.Sprintf("%s %s ext4", filepath.Join(w.paths.Mapper, "amicrypt"), w.mountPoint())
	if !strings.Contains(w.mounts(), want) {
		t.Errorf("mounts %q, want a line %q", w.mounts(), want)
	}
	log := w.lastLog(dev)
	if log["outcome"] != agent.OutcomeFormatted || log["action"] != "up" || log["instance"] != w.a.ID || log["mount_point"] != w.mountPoint() {
		t.Errorf("log line %v", log)
	}
	wantPhases(t, log, []string{"kms_ms", "format_ms", "open_ms", "mkfs_ms", "mount_ms"}, nil)
	w.checkNoSecretLeaks(err)
}

func TestUpReboot(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	dev := w.disk("nvme1n1")
	cfg := config(t, []string{dev}, nil)
	if err := w.agent(w.a, cfg).Up(w.ctx); err != nil {
		t.Fatal(err)
	}
	before := w.fake.Volume(dev)
	w.fake.Reboot()
	mark := w.srv.Mark()
	writes := len(w.fake.Writes())

	err := w.agent(w.a, cfg).Up(w.ctx)
	if err != nil {
		t.Fatalf("Up after reboot: %v", err)
	}
	if got := w.lastLog(dev)["outcome"]; got != agent.OutcomeReopened {
		t.Errorf("outcome %v, want %s", got, agent.OutcomeReopened)
	}
	wantPhases(t, w.lastLog(dev), []string{"kms_ms", "open_ms", "mount_ms"}, []string{"format_ms", "mkfs_ms"})
	if n := len(w.fake.Writes()); n != writes {
		t.Errorf("a reboot wrote to disks: %v", w.fake.Writes()[writes:])
	}
	if w.calls("GenerateDataKey", mark) != 0 || w.calls("Decrypt", mark) != 1 {
		t.Errorf("after reboot: %d GenerateDataKey, %d Decrypt; want 0 and 1", w.calls("GenerateDataKey", mark), w.calls("Decrypt", mark))
	}
	dec := w.srv.Emulator().Audit(awsemu.AuditFilter{Service: "kms", Action: "Decrypt", SinceSeq: mark})[0]
	if dec.Params["KeyId"] != w.keyARN(key) {
		t.Errorf("Decrypt KeyId %q, want the token's key ARN", dec.Params["KeyId"])
	}
	after := w.fake.Volume(dev)
	if after.UUID != before.UUID || string(after.Tokens[0]) != string(before.Tokens[0]) {
		t.Error("the volume changed across a reboot")
	}
	if !strings.Contains(w.mounts(), w.mountPoint()) {
		t.Errorf("not mounted after reboot: %q", w.mounts())
	}

	// Running again without a reboot finds it open: no KMS call.
	mark = w.srv.Mark()
	if err := w.agent(w.a, cfg).Up(w.ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.lastLog(dev)["outcome"]; got != agent.OutcomeAlreadyOpen {
		t.Errorf("second run outcome %v, want %s", got, agent.OutcomeAlreadyOpen)
	}
	if n := w.srv.Calls(awsemu.AuditFilter{Service: "kms", SinceSeq: mark}); n != 0 {
		t.Errorf("%d KMS calls for a volume already open", n)
	}
	w.checkNoSecretLeaks(err)
}

func TestUpAnotherInstancesDisk(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	dev := w.disk("nvme1n1")
	if err := w.agent(w.a, config(t, []string{dev}, nil)).Up(w.ctx); err != nil {
		t.Fatal(err)
	}
	w.fake.Reboot()
	hash := fileHash(t, dev)
	writes := len(w.fake.Writes())
	mark := w.srv.Mark()

	// Even wipe_foreign never reformats a volume of ours.
	err := w.agent(w.b, config(t, []string{dev}, func(c *agent.Config) { c.WipeForeign = true })).Up(w.ctx)
	if err == nil {
		t.Fatal("Up on another instance's disk succeeded")
	}
	for _, want := range []string{dev, "belongs to another instance", w.a.ARN(), w.b.ARN(), "InvalidCiphertextException", "left as it is"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if !agent.IsCode(err, "InvalidCiphertextException") {
		t.Errorf("error does not carry the KMS code: %v", err)
	}
	if w.calls("Decrypt", mark) != 1 {
		t.Errorf("Decrypt calls %d, want 1 (no retry)", w.calls("Decrypt", mark))
	}
	if len(w.fake.Writes()) != writes || fileHash(t, dev) != hash {
		t.Error("the other instance's disk was changed")
	}
	if w.mounts() != "" {
		t.Errorf("something is mounted: %q", w.mounts())
	}
	if got := w.lastLog(dev)["outcome"]; got != agent.OutcomeRefused {
		t.Errorf("outcome %v", got)
	}
	// KMS saw b's own role session ask with b's context, and refused to
	// unwrap a's key; the invariant checker finds nothing wrong in that.
	dec := instancetest.CloudTrail(t, w.srv, "Decrypt", mark)
	if len(dec) != 1 || dec[0].UserIdentity.ARN != w.b.SessionARN() || dec[0].ErrorCode != "InvalidCiphertextException" ||
		instancetest.Context(dec[0])[agent.ContextInstanceARN] != w.b.ARN() {
		t.Errorf("Decrypt as CloudTrail recorded it: %+v", dec)
	}
	if f := instancetest.InstanceContextFindings(w.srv, mark); len(f) != 0 {
		t.Errorf("invariant checker: %+v", f)
	}
	// Asking with a's context instead (say, a token copied with its
	// context) does not help b: the key policy binds the context to the
	// caller's instance. The checker reports that attempt.
	tok := formatted(t, w, dev, w.a)
	_, err = w.b.KMS(w.ctx, w.srv).Decrypt(w.ctx, &kms.DecryptInput{KeyId: aws.String(tok.KMSKeyARN), CiphertextBlob: tok.Blob(), EncryptionContext: tok.EncryptionContext})
	if !agent.IsCode(err, "AccessDeniedException") {
		t.Errorf("b decrypting a's key with a's context: %v, want AccessDeniedException", err)
	}
	if f := instancetest.InstanceContextFindings(w.srv, mark); len(f) != 1 || f[0].Resource != w.a.ID || f[0].Principal != w.b.SessionARN() {
		t.Errorf("invariant checker: %+v, want b's attempt on a's context", f)
	}
}

func TestUpRefusesForeignDisks(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(w *world, dev string)
		detail string
	}{
		{"ext4", func(w *world, dev string) { w.write(dev, 0x438, []byte{0x53, 0xef}) }, "ext2/3/4 filesystem"},
		{"xfs", func(w *world, dev string) { w.write(dev, 0, []byte("XFSB")) }, "XFS filesystem"},
		{"data at the end", func(w *world, dev string) { w.write(dev, diskSize-100, []byte("x")) }, "no known signature"},
		{"md member", func(w *world, dev string) { w.write(dev, 4096, []byte{0xfc, 0x4e, 0x2b, 0xa9}) }, "md RAID member"},
		{"LUKS without our token", func(w *world, dev string) {
			if err := w.fake.AddLUKS(dev, "11111111-2222-4333-8444-555555555555", []byte("someone's passphrase")); err != nil {
				w.t.Fatal(err)
			}
		}, "without an amicrypt-kms token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, awsemu.Options{})
			dev := w.disk("nvme1n1")
			tt.setup(w, dev)
			hash := fileHash(t, dev)
			err := w.agent(w.a, config(t, []string{dev}, nil)).Up(w.ctx)
			if err == nil {
				t.Fatal("Up succeeded on a foreign disk")
			}
			for _, want := range []string{dev, tt.detail, "wipe_foreign"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if n := w.srv.Calls(awsemu.AuditFilter{Service: "kms"}); n != 0 {
				t.Errorf("%d KMS calls for a refused disk", n)
			}
			if len(w.fake.Writes()) != 0 || fileHash(t, dev) != hash {
				t.Errorf("the foreign disk was changed: %v", w.fake.Writes())
			}

			// With wipe_foreign: KMS first, then the wipe, then LUKS.
			var firstWrite string
			w.fake.BeforeWrite = func(c commandtest.Call) error {
				if firstWrite == "" {
					firstWrite = c.String()
					if w.calls("GenerateDataKey", 0) != 1 {
						t.Errorf("%q before GenerateDataKey", c)
					}
				}
				return nil
			}
			if err := w.agent(w.a, config(t, []string{dev}, func(c *agent.Config) { c.WipeForeign = true })).Up(w.ctx); err != nil {
				t.Fatalf("Up with wipe_foreign: %v", err)
			}
			if !strings.HasPrefix(firstWrite, "wipefs --all "+dev) {
				t.Errorf("first write %q, want wipefs", firstWrite)
			}
			formatted(t, w, dev, w.a)
		})
	}
}

func TestUpRefusesMountedRawDisk(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	dev := w.disk("nvme1n1")
	w.write(dev, 0x438, []byte{0x53, 0xef})
	if err := os.WriteFile(w.paths.Mounts, []byte(dev+" /mnt ext4 rw 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := w.agent(w.a, config(t, []string{dev}, func(c *agent.Config) { c.WipeForeign = true })).Up(w.ctx)
	if err == nil || !strings.Contains(err.Error(), "mounted at /mnt") || !strings.Contains(err.Error(), "cloud-init") {
		t.Fatalf("Up on a mounted disk: %v", err)
	}
	if len(w.fake.Writes()) != 0 || w.srv.Calls(awsemu.AuditFilter{Service: "kms"}) != 0 {
		t.Error("a mounted disk was touched")
	}
}

func TestUpDamagedToken(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	dev := w.disk("nvme1n1")
	cfg := config(t, []string{dev}, func(c *agent.Config) { c.WipeForeign = true })
	if err := w.agent(w.a, cfg).Up(w.ctx); err != nil {
		t.Fatal(err)
	}
	w.fake.Reboot()
	// Someone replaces the token by one of our type that no longer parses.
	if _, err := w.fake.Run(w.ctx, cmdImport(dev, `{"type":"amicrypt-kms","keyslots":["0"],"amicrypt_version":7}`)); err != nil {
		t.Fatal(err)
	}
	writes := len(w.fake.Writes())
	err := w.agent(w.a, cfg).Up(w.ctx)
	if err == nil || !strings.Contains(err.Error(), "token is unusable") || !strings.Contains(err.Error(), "amicrypt_version 7") {
		t.Fatalf("Up with a damaged token: %v", err)
	}
	if len(w.fake.Writes()) != writes {
		t.Errorf("a volume of ours with a damaged token was changed (wipe_foreign must not apply): %v", w.fake.Writes()[writes:])
	}
}

func TestUpNoDeviceMapper(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	w.fake.NoDeviceMapper = true
	dev := w.disk("nvme1n1")
	a := w.agent(w.a, config(t, []string{dev}, nil))
	err := a.Up(w.ctx)
	if err == nil {
		t.Fatal("Up without device-mapper succeeded")
	}
	for _, want := range []string{"no device-mapper", "stays formatted", "Nothing is mounted"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	formatted(t, w, dev, w.a)
	if err := a.Verify(w.ctx, ""); err != nil {
		t.Errorf("Verify after a format without device-mapper: %v", err)
	}
	w.checkNoSecretLeaks(err)
}

func TestUpLayouts(t *testing.T) {
	t.Run("single with two disks", func(t *testing.T) {
		w := newWorld(t, awsemu.Options{})
		for _, n := range []string{"nvme1n1", "nvme2n1"} {
			w.disk(n)
			sysDisk(t, w, n, agent.InstanceStoreModel)
		}
		err := w.agent(w.a, config(t, nil, nil)).Up(w.ctx)
		if err == nil || !strings.Contains(err.Error(), "layout single") || !strings.Contains(err.Error(), "nvme2n1") {
			t.Fatalf("Up: %v", err)
		}
	})
	t.Run("no instance store", func(t *testing.T) {
		w := newWorld(t, awsemu.Options{})
		sysDisk(t, w, "nvme0n1", "Amazon Elastic Block Store")
		err := w.agent(w.a, config(t, nil, nil)).Up(w.ctx)
		if err == nil || !strings.Contains(err.Error(), "no instance store disk") {
			t.Fatalf("Up: %v", err)
		}
	})
}

func TestUpEachKeepsNamesAcrossReboots(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	disks := []string{w.disk("nvme1n1"), w.disk("nvme2n1"), w.disk("nvme3n1")}
	if err := w.agent(w.a, config(t, disks, nil)).Up(w.ctx); err != nil {
		t.Fatal(err)
	}
	volumeOf := map[string]string{}
	for i, d := range disks {
		tok := formatted(t, w, d, w.a)
		want := fmt.Sprintf("amicrypt-%d", i)
		if tok.Volume != want {
			t.Errorf("%s: volume %q, want %q", d, tok.Volume, want)
		}
		volumeOf[d] = tok.Volume
		line := fmt.Sprintf("%s %s ext4", filepath.Join(w.paths.Mapper, want), filepath.Join(w.mountPoint(), fmt.Sprint(i)))
		if !strings.Contains(w.mounts(), line) {
			t.Errorf("mounts lack %q:\n%s", line, w.mounts())
		}
	}
	// The disks come back in another order, and a new blank one appears.
	w.fake.Reboot()
	extra := w.disk("nvme4n1")
	reordered := []string{extra, disks[2], disks[0], disks[1]}
	if err := w.agent(w.a, config(t, reordered, nil)).Up(w.ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range disks {
		if got := w.lastLog(d)["volume"]; got != volumeOf[d] {
			t.Errorf("%s opened as %v after reboot, want %s", d, got, volumeOf[d])
		}
	}
	if got := formatted(t, w, extra, w.a).Volume; got != "amicrypt-3" {
		t.Errorf("new disk got %q, want amicrypt-3", got)
	}
}

func TestUpRAID0(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	disks := []string{w.disk("nvme1n1"), w.disk("nvme2n1")}
	cfg := config(t, disks, func(c *agent.Config) { c.Layout = agent.LayoutRAID0 })
	var firstWrite string
	w.fake.BeforeWrite = func(c commandtest.Call) error {
		if firstWrite == "" {
			firstWrite = c.String()
			if w.calls("GenerateDataKey", 0) != 1 {
				t.Errorf("%q before GenerateDataKey", c)
			}
		}
		return nil
	}
	if err := w.agent(w.a, cfg).Up(w.ctx); err != nil {
		t.Fatal(err)
	}
	array := filepath.Join(w.paths.MD, "amicrypt")
	if !strings.HasPrefix(firstWrite, "mdadm --create "+array) {
		t.Errorf("first write %q, want the array", firstWrite)
	}
	formatted(t, w, array, w.a)
	if w.fake.Volume(disks[0]) != nil {
		t.Error("a member got a LUKS header: LUKS goes on the array")
	}
	w.fake.Reboot()
	mark := w.srv.Mark()
	if err := w.agent(w.a, cfg).Up(w.ctx); err != nil {
		t.Fatalf("Up after reboot: %v", err)
	}
	if got := w.lastLog(array)["outcome"]; got != agent.OutcomeReopened {
		t.Errorf("outcome %v", got)
	}
	if w.calls("GenerateDataKey", mark) != 0 || w.calls("Decrypt", mark) != 1 {
		t.Error("the array was not reopened with one Decrypt")
	}
	assembled := false
	for _, c := range w.fake.Calls() {
		assembled = assembled || strings.HasPrefix(c.String(), "mdadm --assemble "+array)
	}
	if !assembled {
		t.Error("the array was not assembled after the reboot")
	}

	t.Run("assembled by udev under another name", func(t *testing.T) {
		w.fake.Reboot()
		md127 := filepath.Join(w.paths.Dev, "md127")
		if err := w.fake.AssembleAs(array, md127); err != nil {
			t.Fatal(err)
		}
		for _, d := range disks {
			if err := os.MkdirAll(filepath.Join(w.paths.SysBlock, filepath.Base(d), "holders", "md127"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.agent(w.a, cfg).Up(w.ctx); err != nil {
			t.Fatalf("Up: %v", err)
		}
		if got := w.lastLog(md127)["outcome"]; got != agent.OutcomeReopened {
			t.Errorf("outcome %v", got)
		}
		rep, err := w.agent(w.a, cfg).Status(w.ctx)
		if err != nil {
			t.Fatal(err)
		}
		last := rep.Disks[len(rep.Disks)-1]
		if last.Device != md127 || last.State != agent.StateOurs || !last.Open || !last.Mounted || len(last.Members) != 2 {
			t.Errorf("array status %+v", last)
		}
		if err := w.agent(w.a, cfg).Verify(w.ctx, disks[0]); err != nil {
			t.Errorf("Verify by member: %v", err)
		}
	})

	t.Run("mixed members refused", func(t *testing.T) {
		w := newWorld(t, awsemu.Options{})
		disks := []string{w.disk("nvme1n1"), w.disk("nvme2n1")}
		w.write(disks[1], 0x438, []byte{0x53, 0xef})
		err := w.agent(w.a, config(t, disks, func(c *agent.Config) { c.Layout = agent.LayoutRAID0 })).Up(w.ctx)
		if err == nil || !strings.Contains(err.Error(), "neither all blank") || !strings.Contains(err.Error(), "ext2/3/4") {
			t.Fatalf("Up: %v", err)
		}
		if len(w.fake.Writes()) != 0 || w.srv.Calls(awsemu.AuditFilter{Service: "kms"}) != 0 {
			t.Error("mixed members were touched")
		}
	})
}

func TestUpSystemdMount(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	if err := os.MkdirAll(w.paths.SystemdRun, 0o755); err != nil {
		t.Fatal(err)
	}
	dev := w.disk("nvme1n1")
	if err := w.agent(w.a, config(t, []string{dev}, nil)).Up(w.ctx); err != nil {
		t.Fatal(err)
	}
	unit := agent.UnitName(w.mountPoint(), "mount")
	b, err := os.ReadFile(filepath.Join(w.paths.SystemdRun, unit))
	if err != nil {
		t.Fatalf("no mount unit: %v", err)
	}
	for _, want := range []string{"What=" + filepath.Join(w.paths.Mapper, "amicrypt"), "Where=" + w.mountPoint(), "Type=ext4"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("unit lacks %q:\n%s", want, b)
		}
	}
	var started bool
	for _, c := range w.fake.Calls() {
		started = started || c.String() == "systemctl start "+unit
		if c.Name == "mount" {
			t.Errorf("mounted directly under systemd: %s", c)
		}
	}
	if !started {
		t.Error("the mount unit was not started")
	}
}

func sysDisk(t *testing.T, w *world, name, model string) {
	t.Helper()
	d := filepath.Join(w.paths.SysBlock, name, "device")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "model"), []byte(model+"                    \n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindInstanceStore(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	sysDisk(t, w, "nvme0n1", "Amazon Elastic Block Store")
	for _, n := range []string{"nvme10n1", "nvme2n1", "nvme1n1"} {
		sysDisk(t, w, n, agent.InstanceStoreModel)
	}
	if err := os.MkdirAll(filepath.Join(w.paths.SysBlock, "loop0"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := agent.FindInstanceStore(w.paths)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(w.paths.Dev, "nvme1n1"), filepath.Join(w.paths.Dev, "nvme2n1"), filepath.Join(w.paths.Dev, "nvme10n1")}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("FindInstanceStore = %v, want %v", got, want)
	}
}

func TestUpToolFailuresLeaveNothingMounted(t *testing.T) {
	tests := []struct{ match, wantErr string }{
		{"mkfs.ext4 -q", "making the ext4 filesystem"},
		{"token import", "key is lost"},
		{"luksFormat --type", "formatting"},
	}
	for _, tt := range tests {
		t.Run(tt.match, func(t *testing.T) {
			w := newWorld(t, awsemu.Options{})
			dev := w.disk("nvme1n1")
			w.fake.Fail(commandtest.Failure{Match: tt.match, Code: 1, Stderr: "injected"})
			err := w.agent(w.a, config(t, []string{dev}, nil)).Up(w.ctx)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("Up: %v", err)
			}
			if w.mounts() != "" {
				t.Errorf("mounted after a failure: %q", w.mounts())
			}
			var ve *agent.VolumeError
			if !errors.As(err, &ve) || ve.Device != dev {
				t.Errorf("error does not name the device: %v", err)
			}
		})
	}
}

func TestLock(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	dev := w.disk("nvme1n1")
	held := make(chan struct{})
	release := make(chan struct{})
	w.fake.BeforeWrite = func(commandtest.Call) error {
		select {
		case <-held:
		default:
			close(held)
			<-release
		}
		return nil
	}
	a := w.agent(w.a, config(t, []string{dev}, nil))
	done := make(chan error)
	go func() { done <- a.Up(context.Background()) }()
	<-held
	err := w.agent(w.a, config(t, []string{dev}, nil)).Up(w.ctx)
	close(release)
	if err == nil || !strings.Contains(err.Error(), "another amicrypt-agent is running") {
		t.Errorf("second agent: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("first agent: %v", err)
	}
}

// wantPhases checks which step durations a log line carries: each of want
// as a number of milliseconds, none of absent.
func wantPhases(t *testing.T, line map[string]any, want, absent []string) {
	t.Helper()
	for _, k := range want {
		if ms, ok := line[k].(float64); !ok || ms < 0 {
			t.Errorf("log line lacks %s: %v", k, line)
		}
	}
	for _, k := range absent {
		if _, ok := line[k]; ok {
			t.Errorf("log line has %s for a step that did not run: %v", k, line)
		}
	}
}

// A first boot that stopped between luksFormat and mkfs (here mkfs failed;
// a power cut would do the same) leaves a volume of ours without a
// filesystem. The next boot unlocks it, makes the filesystem, and mounts it:
// it never formats the LUKS volume again.
func TestUpFinishesAnInterruptedFirstBoot(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	dev := w.disk("nvme1n1")
	cfg := config(t, []string{dev}, nil)
	w.fake.Fail(commandtest.Failure{Match: "mkfs.ext4 -q", Code: 1, Stderr: "injected", Times: 1})
	if err := w.agent(w.a, cfg).Up(w.ctx); err == nil || !strings.Contains(err.Error(), "making the ext4 filesystem") {
		t.Fatalf("first boot: %v", err)
	}
	before := w.fake.Volume(dev)
	w.fake.Reboot()
	mark := w.srv.Mark()
	if err := w.agent(w.a, cfg).Up(w.ctx); err != nil {
		t.Fatalf("the next boot: %v", err)
	}
	line := w.lastLog(dev)
	if line["outcome"] != agent.OutcomeReopened {
		t.Errorf("log line %v", line)
	}
	wantPhases(t, line, []string{"kms_ms", "open_ms", "mkfs_ms", "mount_ms"}, []string{"format_ms"})
	if after := w.fake.Volume(dev); after.UUID != before.UUID || string(after.Tokens[0]) != string(before.Tokens[0]) {
		t.Error("the volume was formatted again")
	}
	if w.calls("GenerateDataKey", mark) != 0 || w.calls("Decrypt", mark) != 1 {
		t.Errorf("KMS: %d GenerateDataKey, %d Decrypt; want 0 and 1", w.calls("GenerateDataKey", mark), w.calls("Decrypt", mark))
	}
	if !strings.Contains(w.mounts(), w.mountPoint()+" ext4") {
		t.Errorf("mounts %q", w.mounts())
	}
}
