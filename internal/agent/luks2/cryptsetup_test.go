package luks2

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
)

// cryptsetupPath finds the cryptsetup CLI. Tests that need it skip without
// it, unless AMICRYPT_REQUIRE_CRYPTSETUP is set (CI sets it).
func cryptsetupPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("cryptsetup"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/cryptsetup"); err == nil {
		return "/usr/sbin/cryptsetup"
	}
	if os.Getenv("AMICRYPT_REQUIRE_CRYPTSETUP") != "" {
		t.Fatal("cryptsetup is not installed and AMICRYPT_REQUIRE_CRYPTSETUP is set")
	}
	t.Skip("cryptsetup is not installed (set AMICRYPT_REQUIRE_CRYPTSETUP to make this a failure)")
	return ""
}

func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	return runFD3(t, stdin, nil, name, args...)
}

// runFD3 runs a command with stdin and, when fd3 is not nil, a pipe as file
// descriptor 3 that carries fd3.
func runFD3(t *testing.T, stdin, fd3 []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	if fd3 != nil {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		go func() {
			w.Write(fd3)
			w.Close()
		}()
		cmd.ExtraFiles = []*os.File{r}
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s %v: %v: %s", name, args, err, ee.Stderr)
		}
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return out
}

// TestAgreesWithCryptsetup formats files with the real cryptsetup (PBKDF2 as
// the agent does, and Argon2id with a tiny cost) and checks that the checker
// reads the same metadata and verifies the same passphrases.
func TestAgreesWithCryptsetup(t *testing.T) {
	cs := cryptsetupPath(t)
	tests := []struct {
		name string
		kdf  []string
	}{
		{"pbkdf2", []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}},
		{"argon2id", []string{"--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32", "--pbkdf-parallel", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(dev, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(dev, 32<<20); err != nil {
				t.Fatal(err)
			}
			pass1 := bytes.Repeat([]byte{0xa5, 0x00, 0x5a}, 11) // binary, with NULs, like a data key
			pass2 := []byte("second passphrase")
			args := append([]string{"luksFormat", "--type", "luks2", "--batch-mode", "--uuid", "0b1e8f7c-5d4a-4b3c-8e2f-1a0b9c8d7e6f",
				"--label", "lbl", "--subsystem", "sub", "--key-file", "-"}, tt.kdf...)
			run(t, pass1, cs, append(args, dev)...)
			runFD3(t, pass1, pass2, cs, append([]string{"luksAddKey", "--batch-mode", "--key-file", "-", "--new-key-slot", "3"}, append(tt.kdf, dev, "/dev/fd/3")...)...)
			run(t, []byte(`{"type":"amicrypt-kms","keyslots":["0"],"ciphertext":"QUJD"}`), cs, "token", "import", dev)

			dump, err := ParseMetadata(run(t, nil, cs, "luksDump", "--dump-json-metadata", dev))
			if err != nil {
				t.Fatalf("parsing cryptsetup's dump: %v", err)
			}
			f, err := os.Open(dev)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			v, err := Read(f)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if v.Primary == nil || v.Secondary == nil {
				t.Errorf("want both header copies valid")
			}
			if got := string(bytes.TrimSpace(run(t, nil, cs, "luksUUID", dev))); v.UUID() != got {
				t.Errorf("UUID %q, cryptsetup says %q", v.UUID(), got)
			}
			if v.Label() != "lbl" || v.Subsystem() != "sub" {
				t.Errorf("label %q subsystem %q", v.Label(), v.Subsystem())
			}
			if !reflect.DeepEqual(v.Metadata, dump) {
				t.Errorf("metadata differs from cryptsetup's dump:\n got %+v\nwant %+v", v.Metadata, dump)
			}
			if got := SortedIDs(v.Metadata.Keyslots); !reflect.DeepEqual(got, []string{"0", "3"}) {
				t.Errorf("keyslots %v, want [0 3]", got)
			}
			if got := v.Metadata.TokensOfType("amicrypt-kms"); !reflect.DeepEqual(got, []string{"0"}) {
				t.Errorf("amicrypt-kms tokens %v", got)
			}
			for _, c := range []struct {
				slot string
				pass []byte
				ok   bool
			}{{"0", pass1, true}, {"3", pass2, true}, {"0", pass2, false}, {"3", pass1, false}} {
				err := v.VerifyPassphrase(f, c.slot, c.pass)
				if c.ok && err != nil {
					t.Errorf("slot %s: %v", c.slot, err)
				}
				if !c.ok && !errors.Is(err, ErrWrongPassphrase) {
					t.Errorf("slot %s with the other passphrase: %v, want ErrWrongPassphrase", c.slot, err)
				}
			}
		})
	}
}
