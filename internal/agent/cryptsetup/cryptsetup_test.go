package cryptsetup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command/commandtest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/luks2"
)

// haveCryptsetup reports whether the real CLI can run here; without it the
// real half of a test is skipped, unless AMICRYPT_REQUIRE_CRYPTSETUP is set.
func haveCryptsetup(t *testing.T) bool {
	t.Helper()
	if _, err := exec.LookPath("cryptsetup"); err == nil {
		return true
	}
	if _, err := os.Stat("/usr/sbin/cryptsetup"); err == nil {
		return true
	}
	if os.Getenv("AMICRYPT_REQUIRE_CRYPTSETUP") != "" {
		t.Fatal("cryptsetup is not installed and AMICRYPT_REQUIRE_CRYPTSETUP is set")
	}
	return false
}

func sparse(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// runners are the real CLI (when installed) and the fake: the conformance
// test runs the same sequence against both, so the fake the agent's unit
// tests rely on answers as cryptsetup does.
func runners(t *testing.T) map[string]func(t *testing.T) command.Runner {
	rs := map[string]func(t *testing.T) command.Runner{
		"fake": func(t *testing.T) command.Runner {
			d := t.TempDir()
			f := commandtest.New(d, filepath.Join(d, "mounts"), d)
			f.NoDeviceMapper = true // as on this host
			return f
		},
	}
	if haveCryptsetup(t) {
		rs["real"] = func(*testing.T) command.Runner { return command.Exec{} }
	}
	return rs
}

func TestConformance(t *testing.T) {
	ctx := context.Background()
	key1 := bytes.Repeat([]byte{0x00, 0xff, 0x10, 0x0a}, 8) // 32 bytes with NUL and newline
	key2 := bytes.Repeat([]byte{0x42}, 32)
	for name, mk := range runners(t) {
		t.Run(name, func(t *testing.T) {
			cli := CLI{Runner: mk(t)}
			dev := sparse(t, 20<<20)
			if err := cli.CheckVersion(ctx); err != nil {
				t.Fatalf("CheckVersion: %v", err)
			}
			if is, err := cli.IsLUKS(ctx, dev); err != nil || is {
				t.Fatalf("IsLUKS(blank) = %v, %v", is, err)
			}
			if _, err := cli.IsLUKS(ctx, filepath.Join(t.TempDir(), "missing")); err == nil {
				t.Error("IsLUKS(missing device) did not fail")
			}
			const uuid = "3f0c2b1a-9d8e-4f7a-b6c5-d4e3f2a1b0c9"
			if err := cli.Format(ctx, dev, FormatOptions{UUID: uuid, Label: "amicrypt", Subsystem: "amicrypt"}, key1); err != nil {
				t.Fatalf("Format: %v", err)
			}
			if is, err := cli.IsLUKS(ctx, dev); err != nil || !is {
				t.Fatalf("IsLUKS(formatted) = %v, %v", is, err)
			}
			if got, err := cli.UUID(ctx, dev); err != nil || got != uuid {
				t.Fatalf("UUID = %q, %v", got, err)
			}
			token := []byte(`{"type":"amicrypt-kms","keyslots":["0"],"ciphertext":"QUJD"}`)
			if err := cli.ImportToken(ctx, dev, 0, token, false); err != nil {
				t.Fatalf("ImportToken: %v", err)
			}
			if err := cli.ImportToken(ctx, dev, 0, token, false); err == nil {
				t.Error("ImportToken over a token without replace succeeded")
			}
			if err := cli.ImportToken(ctx, dev, 1, []byte(`{"type":"x","keyslots":["7"]}`), false); err == nil {
				t.Error("ImportToken naming a missing keyslot succeeded")
			}
			got, err := cli.ExportToken(ctx, dev, 0)
			if err != nil || !jsonEqual(t, got, token) {
				t.Fatalf("ExportToken = %s, %v", got, err)
			}
			if _, err := cli.ExportToken(ctx, dev, 5); err == nil {
				t.Error("ExportToken of a missing token succeeded")
			}
			if err := cli.TestPassphrase(ctx, dev, 0, key1); err != nil {
				t.Errorf("TestPassphrase(right): %v", err)
			}
			if err := cli.TestPassphrase(ctx, dev, -1, key2); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("TestPassphrase(wrong) = %v, want ErrWrongPassphrase", err)
			}
			if err := cli.AddKey(ctx, dev, 1, key2, key2); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("AddKey with a wrong existing key = %v, want ErrWrongPassphrase", err)
			}
			if err := cli.AddKey(ctx, dev, 1, key1, key2); err != nil {
				t.Fatalf("AddKey: %v", err)
			}
			if err := cli.TestPassphrase(ctx, dev, 1, key2); err != nil {
				t.Errorf("TestPassphrase(new slot): %v", err)
			}
			replaced := []byte(`{"type":"amicrypt-kms","keyslots":["1"],"ciphertext":"REVG"}`)
			if err := cli.ImportToken(ctx, dev, 0, replaced, true); err != nil {
				t.Fatalf("ImportToken(replace): %v", err)
			}
			if err := cli.KillSlot(ctx, dev, 0, key1); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("KillSlot authorized by the slot it kills = %v, want ErrWrongPassphrase", err)
			}
			if err := cli.KillSlot(ctx, dev, 0, key2); err != nil {
				t.Fatalf("KillSlot: %v", err)
			}
			if err := cli.TestPassphrase(ctx, dev, -1, key1); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("old key after KillSlot = %v, want ErrWrongPassphrase", err)
			}
			md, err := cli.Metadata(ctx, dev)
			if err != nil {
				t.Fatalf("Metadata: %v", err)
			}
			if ids := luks2.SortedIDs(md.Keyslots); !slices.Equal(ids, []string{"1"}) {
				t.Errorf("keyslots %v, want [1]", ids)
			}
			if tok := md.Tokens["0"]; tok.Type != "amicrypt-kms" || !slices.Equal(tok.Keyslots, []string{"1"}) || !jsonEqual(t, tok.Raw, replaced) {
				t.Errorf("token 0 = %+v", tok)
			}
			if err := cli.Open(ctx, dev, "amicrypt-test", key2); err == nil || !strings.Contains(err.Error(), "device-mapper") {
				t.Errorf("Open without device-mapper = %v, want an error naming device-mapper", err)
			}
			if _, err := cli.Status(ctx, "amicrypt-test"); err == nil {
				t.Error("Status without device-mapper did not fail")
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Logf("%s: %v", a, err)
		return false
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Logf("%s: %v", b, err)
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func TestFakeOpenStatusClose(t *testing.T) {
	ctx := context.Background()
	d := t.TempDir()
	f := commandtest.New(d, filepath.Join(d, "mounts"), d)
	cli := CLI{Runner: f}
	dev := sparse(t, 20<<20)
	key := []byte("k")
	if err := cli.Format(ctx, dev, FormatOptions{}, key); err != nil {
		t.Fatal(err)
	}
	if m, err := cli.Status(ctx, "vol"); err != nil || m.Active {
		t.Fatalf("Status before open = %+v, %v", m, err)
	}
	if err := cli.Open(ctx, dev, "vol", []byte("bad")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Open(wrong) = %v", err)
	}
	if err := cli.Open(ctx, dev, "vol", key); err != nil {
		t.Fatal(err)
	}
	if m, err := cli.Status(ctx, "vol"); err != nil || !m.Active || m.Device != dev {
		t.Fatalf("Status after open = %+v, %v", m, err)
	}
	if err := cli.Close(ctx, "vol"); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.Calls() {
		for _, s := range c.Secrets {
			if strings.Contains(c.String(), string(s)) && len(s) > 1 {
				t.Errorf("secret in arguments: %s", c)
			}
		}
	}
}

func TestCheckVersion(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		version string
		ok      bool
	}{{"2.6.1", true}, {"2.5.0", true}, {"3.0.0", true}, {"2.4.3", false}, {"1.7.5", false}} {
		d := t.TempDir()
		f := commandtest.New(d, filepath.Join(d, "m"), d)
		f.Version = tt.version
		err := CLI{Runner: f}.CheckVersion(ctx)
		if (err == nil) != tt.ok {
			t.Errorf("CheckVersion(%s) = %v", tt.version, err)
		}
		if err != nil && !strings.Contains(err.Error(), tt.version) {
			t.Errorf("error does not name the version: %v", err)
		}
	}
}
