package vmtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every position of the needle is found, whatever the chunk size, including
// across chunk boundaries; a needle cut short at the end is not.
func TestContainsBytes(t *testing.T) {
	needle := []byte("MARKER")
	const size = 40
	for chunk := 1; chunk <= 13; chunk++ {
		for at := -1; at <= size-len(needle); at++ { // -1: absent
			data := bytes.Repeat([]byte{'.'}, size)
			if at >= 0 {
				copy(data[at:], needle)
			}
			found, err := containsBytes(bytes.NewReader(data), needle, chunk)
			if err != nil || found != (at >= 0) {
				t.Errorf("chunk %d, needle at %d: found %v, %v; want %v", chunk, at, found, err, at >= 0)
			}
		}
		cut := append(bytes.Repeat([]byte{'.'}, size), needle[:len(needle)-1]...)
		if found, _ := containsBytes(bytes.NewReader(cut), needle, chunk); found {
			t.Errorf("chunk %d: found a needle cut short at the end", chunk)
		}
	}

	path := filepath.Join(t.TempDir(), "disk.raw")
	data := make([]byte, 3<<20)
	copy(data[1<<20-3:], needle)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if found, err := ContainsBytes(path, needle); !found || err != nil {
		t.Errorf("ContainsBytes of an image with the needle across 1 MiB = %v, %v; want true", found, err)
	}
	if found, err := ContainsBytes(path, []byte("ABSENT")); found || err != nil {
		t.Errorf("ContainsBytes of an absent needle = %v, %v; want false", found, err)
	}
	if _, err := ContainsBytes(path, nil); err == nil {
		t.Error("ContainsBytes with an empty needle succeeded")
	}
	if _, err := ContainsBytes(path+".missing", needle); err == nil {
		t.Error("ContainsBytes of a missing image succeeded")
	}
}

func TestNewDisk(t *testing.T) {
	d := NewDisk(t, 64<<20)
	fi, err := os.Stat(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 64<<20 {
		t.Errorf("disk is %d bytes, want %d", fi.Size(), 64<<20)
	}
	if d2 := NewDisk(t, 1<<20); d2.Path == d.Path {
		t.Errorf("two disks share %s", d.Path)
	}
}

// A header that the host's cryptsetup wrote (it formats image files without
// device-mapper) reads back with its UUID, label, keyslot and token; damage
// to it is caught.
func TestReadLUKS2Header(t *testing.T) {
	cryptsetup, err := lookPath("cryptsetup")
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatal(err)
		}
		t.Skipf("no cryptsetup on the host: %v", err)
	}
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), cryptsetup, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cryptsetup %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	path := filepath.Join(t.TempDir(), "luks.raw")
	if err := os.WriteFile(path, make([]byte, 20<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	run("passphrase", "luksFormat", "--type", "luks2", "--batch-mode", "--label", "vmtest-label",
		"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", "-", path)
	run(`{"type":"amicrypt-kms","keyslots":["0"],"wrapped_key":"AQID"}`, "token", "import", path)
	uuid := run("", "luksUUID", path)

	h, err := ReadLUKS2Header(path)
	if err != nil {
		t.Fatalf("ReadLUKS2Header: %v", err)
	}
	if h.Version != 2 || h.UUID != uuid || h.Label != "vmtest-label" || h.Checksum != "sha256" || len(h.Metadata.Keyslots) != 1 || len(h.Metadata.Segments) != 1 {
		t.Errorf("header: version %d, UUID %q, label %q, checksum %q, %d keyslots, %d segments; want 2, %q, vmtest-label, sha256, 1, 1",
			h.Version, h.UUID, h.Label, h.Checksum, len(h.Metadata.Keyslots), len(h.Metadata.Segments), uuid)
	}
	token, ok := h.Metadata.Tokens["0"]
	if !ok || token.Type != "amicrypt-kms" || len(token.Keyslots) != 1 || !bytes.Contains(token.Raw, []byte(`"wrapped_key":"AQID"`)) {
		t.Errorf("token 0 = %+v (raw %s), want the imported amicrypt-kms token", token, token.Raw)
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		offset  int
		wantErr string
	}{
		{"magic", 0, "no LUKS magic"},
		{"version", 7, "LUKS version"},
		{"label", 30, "checksum mismatch"},
		{"JSON", 4096 + 10, "checksum mismatch"},
	} {
		t.Run("damaged "+tc.name, func(t *testing.T) {
			damaged := bytes.Clone(raw[:1<<20])
			damaged[tc.offset] ^= 0x01
			path := filepath.Join(t.TempDir(), "damaged.raw")
			if err := os.WriteFile(path, damaged, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadLUKS2Header(path); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ReadLUKS2Header of a header damaged in its %s: %v, want %q", tc.name, err, tc.wantErr)
			}
		})
	}
}
