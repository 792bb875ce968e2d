package instancestore

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// scriptHost is a directory of programs that is the whole PATH the
// self-test script sees, so a test decides what the "image" has.
type scriptHost struct {
	t      *testing.T
	bin    string
	tmpdir string
	env    []string
}

// The tools the script itself uses.
var scriptTools = []string{"mktemp", "od", "tr", "sed", "head", "tail", "truncate", "dd", "rm", "cat"}

func newScriptHost(t *testing.T) *scriptHost {
	t.Helper()
	h := &scriptHost{t: t, bin: t.TempDir(), tmpdir: t.TempDir()}
	for _, tool := range scriptTools {
		h.link(tool)
	}
	return h
}

// link puts the host's program name on the PATH.
func (h *scriptHost) link(name string) {
	h.t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		h.t.Skipf("the self-test script needs %s, which this host lacks", name)
	}
	if err := os.Symlink(path, filepath.Join(h.bin, name)); err != nil {
		h.t.Fatal(err)
	}
}

// fake puts a shell script named name on the PATH.
func (h *scriptHost) fake(name, body string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.bin, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		h.t.Fatal(err)
	}
}

// run runs the provisioner's self-test script as uploaded, with args.
func (h *scriptHost) run(args ...string) (stdout, stderr string, exitCode int) {
	h.t.Helper()
	script := filepath.Join(h.t.TempDir(), "self-test.sh")
	if err := os.WriteFile(script, []byte(selfTestScript), 0o600); err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", append([]string{script}, args...)...)
	cmd.Env = append([]string{"PATH=" + h.bin, "TMPDIR=" + h.tmpdir}, h.env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		exitCode = exitErr.ExitCode()
	default:
		h.t.Fatal(err)
	}
	return out.String(), errOut.String(), exitCode
}

// assertCleaned fails when the script left anything in its TMPDIR.
func (h *scriptHost) assertCleaned() {
	h.t.Helper()
	entries, err := os.ReadDir(h.tmpdir)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, e := range entries {
		h.t.Errorf("the self-test left %s in its TMPDIR", e.Name())
	}
}

// fakeCryptsetup logs each call (arguments and stdin) to FAKE_LOG and
// answers --version with FAKE_VERSION; FAKE_FAIL makes luksFormat fail.
const fakeCryptsetup = `if [ "$1" = --version ]; then echo "cryptsetup $FAKE_VERSION flags: UDEV BLKID"; exit 0; fi
stdin=$(cat)
echo "$* stdin=$stdin" >>"$FAKE_LOG"
if [ "$1" = luksFormat ] && [ -n "${FAKE_FAIL:-}" ]; then echo "$FAKE_FAIL" >&2; exit 1; fi
exit 0
`

// TestSelfTestScriptRealCryptsetup runs the script with this host's
// cryptsetup. luksFormat on a file works anywhere; opening needs
// device-mapper, which this host's kernel may lack: then the script must
// say that open failed and why, and still clean up.
func TestSelfTestScriptRealCryptsetup(t *testing.T) {
	h := newScriptHost(t)
	h.link("cryptsetup")
	h.fake("systemctl", "exit 0\n")
	h.fake("mkfs.ext4", "exit 0\n")
	h.fake("dnf", "exit 0\n")
	stdout, stderr, code := h.run("2", "5", "systemctl", "mkfs.ext4")
	h.assertCleaned()
	r := parseSelfTest(stdout)

	version, _ := exec.Command("cryptsetup", "--version").Output()
	if r.CryptsetupVersion == "" || !strings.Contains(string(version), "cryptsetup "+r.CryptsetupVersion+" ") {
		t.Errorf("reported version %q, cryptsetup says %q", r.CryptsetupVersion, version)
	}
	if r.PackageManager != "dnf" || len(r.Missing) != 0 {
		t.Errorf("package manager %q, missing %v", r.PackageManager, r.Missing)
	}
	switch {
	case r.TooOld:
		if code != 1 {
			t.Errorf("too old, yet exit %d", code)
		}
	case r.DMCryptOK:
		if code != 0 || r.Failed != "" {
			t.Errorf("dm-crypt ok, yet exit %d, failed %q", code, r.Failed)
		}
	default:
		// No device-mapper here: luksFormat worked on the file, open failed.
		if r.Failed != "open" || code != 1 || r.Detail == "" {
			t.Errorf("want a failed open with its detail and exit 1, got failed %q detail %q exit %d\n%s%s", r.Failed, r.Detail, code, stdout, stderr)
		}
		problems := strings.Join(r.problems(code, stderr), "\n")
		if !strings.Contains(problems, "`cryptsetup open` of a test volume in a temporary file failed: "+r.Detail) {
			t.Errorf("problems:\n%s", problems)
		}
	}
}

func TestSelfTestScriptMissingTools(t *testing.T) {
	h := newScriptHost(t)
	h.fake("apt-get", "exit 0\n")
	h.fake("systemctl", "exit 0\n")
	stdout, _, code := h.run("2", "5", "systemctl", "mkfs.xfs", "mdadm")
	h.assertCleaned()
	r := parseSelfTest(stdout)
	if code != 1 || r.PackageManager != "apt-get" || strings.Join(r.Missing, " ") != "mkfs.xfs mdadm cryptsetup" {
		t.Fatalf("exit %d, %+v\n%s", code, r, stdout)
	}
	problems := strings.Join(r.problems(code, ""), "\n")
	for _, want := range []string{
		"cryptsetup is not installed", "`sudo apt-get install -y cryptsetup-bin`",
		"mkfs.xfs is not installed", "`sudo apt-get install -y xfsprogs`",
		"mdadm is not installed (layout raid0 stripes the disks with it)", "`sudo apt-get install -y mdadm`",
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
}

func TestSelfTestScriptVersions(t *testing.T) {
	tests := []struct {
		version string
		tooOld  bool
	}{
		{"1.7.5", true},
		{"2.3.7", true},
		{"2.4.3", true},
		{"2.5.0", false},
		{"2.7.5", false},
		{"3.0.0", false},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			h := newScriptHost(t)
			h.fake("cryptsetup", fakeCryptsetup)
			h.fake("yum", "exit 0\n")
			log := filepath.Join(t.TempDir(), "calls")
			h.env = []string{"FAKE_VERSION=" + tc.version, "FAKE_LOG=" + log, "FAKE_FAIL=Requested offset is beyond real size of device"}
			stdout, _, code := h.run("2", "5")
			h.assertCleaned()
			r := parseSelfTest(stdout)
			if r.CryptsetupVersion != tc.version || r.TooOld != tc.tooOld || code != 1 {
				t.Fatalf("version %q too old %v exit %d\n%s", r.CryptsetupVersion, r.TooOld, code, stdout)
			}
			problems := strings.Join(r.problems(code, ""), "\n")
			if tc.tooOld {
				if !strings.Contains(problems, "cryptsetup "+tc.version+" is older than 2.5") || !strings.Contains(problems, "`sudo yum install -y cryptsetup`") {
					t.Errorf("problems:\n%s", problems)
				}
				if _, err := os.Stat(log); err == nil {
					t.Error("a too old cryptsetup was asked to format")
				}
				return
			}
			// Recent enough: the fake's luksFormat failure is reported with its words.
			if r.Failed != "luksFormat" || !strings.Contains(problems, "`cryptsetup luksFormat` of a test volume in a temporary file failed: Requested offset is beyond real size of device") {
				t.Errorf("failed %q, problems:\n%s", r.Failed, problems)
			}
		})
	}
}

// TestSelfTestScriptUsesAFileAndAThrowawayKey follows the script's
// cryptsetup calls: a LUKS2 volume in a file under TMPDIR, the same fresh
// 256-bit passphrase on stdin for format and open, and a close even when
// the mapping never appeared.
func TestSelfTestScriptUsesAFileAndAThrowawayKey(t *testing.T) {
	passphrases := map[string]bool{}
	for run := 0; run < 2; run++ {
		h := newScriptHost(t)
		h.fake("cryptsetup", fakeCryptsetup)
		log := filepath.Join(t.TempDir(), "calls")
		h.env = []string{"FAKE_VERSION=2.6.1", "FAKE_LOG=" + log}
		stdout, _, code := h.run("2", "5")
		h.assertCleaned()
		r := parseSelfTest(stdout)
		// The fake makes no /dev/mapper device: open "succeeds" without one.
		if code != 1 || r.Failed != "open" || !strings.Contains(r.Detail, "is not a block device") {
			t.Fatalf("exit %d, %+v", code, r)
		}
		data, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		calls := strings.Split(strings.TrimSpace(string(data)), "\n")
		volume := regexp.QuoteMeta(h.tmpdir) + `/amicrypt-selftest\.[A-Za-z0-9]+/volume`
		want := []*regexp.Regexp{
			regexp.MustCompile(`^luksFormat --batch-mode --type luks2 --cipher aes-xts-plain64 --key-size 512 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file - ` + volume + ` stdin=([0-9a-f]{64})$`),
			regexp.MustCompile(`^open --type luks2 --key-file - ` + volume + ` amicrypt-selftest-[0-9]+ stdin=([0-9a-f]{64})$`),
			regexp.MustCompile(`^close amicrypt-selftest-[0-9]+ stdin=$`),
		}
		if len(calls) != len(want) {
			t.Fatalf("cryptsetup calls:\n%s", data)
		}
		var keys []string
		for i, re := range want {
			m := re.FindStringSubmatch(calls[i])
			if m == nil {
				t.Fatalf("call %d %q does not match %s", i, calls[i], re)
			}
			if len(m) > 1 && m[1] != "" {
				keys = append(keys, m[1])
			}
		}
		if len(keys) != 2 || keys[0] != keys[1] {
			t.Fatalf("format and open got different passphrases: %q", keys)
		}
		passphrases[keys[0]] = true
		if strings.Contains(string(data), "/dev/nvme") || strings.Contains(string(data), "/dev/xvd") {
			t.Errorf("a real disk was named:\n%s", data)
		}
	}
	if len(passphrases) != 2 {
		t.Error("two runs used the same passphrase")
	}
}

func TestParseSelfTest(t *testing.T) {
	out := "noise\namicrypt-selftest package-manager zypper\r\namicrypt-selftest missing wipefs\n" +
		"amicrypt-selftest cryptsetup-version 2.7.0\namicrypt-selftest no-device-mapper /dev/mapper/control\n" +
		"amicrypt-selftest failed open\namicrypt-selftest detail Cannot initialize device-mapper.\n"
	r := parseSelfTest(out)
	if r.PackageManager != "zypper" || strings.Join(r.Missing, ",") != "wipefs" || r.CryptsetupVersion != "2.7.0" ||
		!r.NoDeviceMapper || r.NoLoop || r.Failed != "open" || r.Detail != "Cannot initialize device-mapper." || r.DMCryptOK {
		t.Fatalf("%+v", r)
	}
	problems := strings.Join(r.problems(1, ""), "\n")
	for _, want := range []string{
		"wipefs is not installed (wipe_foreign clears foreign signatures with it)", "`sudo zypper --non-interactive install util-linux`",
		"Cannot initialize device-mapper.", "/dev/mapper/control is missing", "`sudo modprobe dm_crypt`",
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
}

func TestInstallCommand(t *testing.T) {
	tests := []struct{ pm, cmd, want string }{
		{"dnf", "cryptsetup", "sudo dnf install -y cryptsetup"},
		{"yum", "mkfs.xfs", "sudo yum install -y xfsprogs"},
		{"apt-get", "cryptsetup", "sudo apt-get install -y cryptsetup-bin"},
		{"apt-get", "mkfs.ext4", "sudo apt-get install -y e2fsprogs"},
		{"zypper", "mdadm", "sudo zypper --non-interactive install mdadm"},
		{"apk", "cryptsetup", "sudo apk add cryptsetup"},
		{"", "cryptsetup", "your distribution's cryptsetup package"},
		{"", "systemctl", "your distribution's systemd package"},
	}
	for _, tc := range tests {
		if got := installCommand(tc.pm, tc.cmd); got != tc.want {
			t.Errorf("installCommand(%q, %q) = %q, want %q", tc.pm, tc.cmd, got, tc.want)
		}
	}
}
