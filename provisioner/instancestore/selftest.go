package instancestore

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"
)

// selfTestScript runs on the build instance; see its header.
//
//go:embed self-test.sh
var selfTestScript string

// The oldest cryptsetup amicrypt-agent works with: 2.5 brought
// `token import --token-replace` and `luksDump --dump-json-metadata`, which
// the agent uses for its LUKS2 token.
const (
	minCryptsetupMajor = 2
	minCryptsetupMinor = 5
)

// selfTestCommands are the programs the agent needs besides cryptsetup, for
// this configuration.
func (c *Config) selfTestCommands() []string {
	cmds := []string{"systemctl", "mkfs." + c.Filesystem}
	if c.Layout == LayoutRAID0 {
		cmds = append(cmds, "mdadm")
	}
	if c.WipeForeign {
		cmds = append(cmds, "wipefs")
	}
	return cmds
}

// selfTestArgs are the script's arguments.
func (c *Config) selfTestArgs() []string {
	return append([]string{strconv.Itoa(minCryptsetupMajor), strconv.Itoa(minCryptsetupMinor)}, c.selfTestCommands()...)
}

// selfTestResult is what the script reported.
type selfTestResult struct {
	PackageManager    string
	Missing           []string
	CryptsetupVersion string
	TooOld            bool
	Failed            string // the step that failed: luksFormat, open, close, …
	Detail            string
	NoDeviceMapper    bool
	NoLoop            bool
	DMCryptOK         bool
}

// parseSelfTest reads the script's "amicrypt-selftest KEY VALUE" lines and
// ignores everything else.
func parseSelfTest(output string) selfTestResult {
	var r selfTestResult
	for _, line := range strings.Split(output, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "amicrypt-selftest ")
		if !ok {
			continue
		}
		key, value, _ := strings.Cut(rest, " ")
		value = strings.TrimSpace(value)
		switch key {
		case "package-manager":
			r.PackageManager = value
		case "missing":
			r.Missing = append(r.Missing, value)
		case "cryptsetup-version":
			r.CryptsetupVersion = value
		case "too-old":
			r.TooOld = true
		case "failed":
			r.Failed = value
		case "detail":
			r.Detail = value
		case "no-device-mapper":
			r.NoDeviceMapper = true
		case "no-loop":
			r.NoLoop = true
		case "ok":
			r.DMCryptOK = value == "dm-crypt"
		}
	}
	return r
}

// packages names, per package manager, the package that installs a command.
var packages = map[string]map[string]string{
	"cryptsetup": {"apt-get": "cryptsetup-bin", "": "cryptsetup"},
	"mkfs.ext4":  {"": "e2fsprogs"},
	"mkfs.xfs":   {"": "xfsprogs"},
	"mdadm":      {"": "mdadm"},
	"wipefs":     {"": "util-linux"},
	"systemctl":  {"": "systemd"},
}

// installCommand is the command that installs cmd with the image's package
// manager.
func installCommand(pm, cmd string) string {
	pkg := packages[cmd][pm]
	if pkg == "" {
		pkg = packages[cmd][""]
	}
	if pkg == "" {
		pkg = cmd
	}
	switch pm {
	case "dnf", "yum":
		return fmt.Sprintf("sudo %s install -y %s", pm, pkg)
	case "apt-get":
		return fmt.Sprintf("sudo apt-get install -y %s", pkg)
	case "zypper":
		return fmt.Sprintf("sudo zypper --non-interactive install %s", pkg)
	case "apk":
		return fmt.Sprintf("sudo apk add %s", pkg)
	}
	return fmt.Sprintf("your distribution's %s package", pkg)
}

// problems lists, for a failed self-test, what is wrong with the image and
// how to fix each thing. exitCode is the script's exit status, stderr what
// it (or sudo, or the shell) said besides its report.
func (r selfTestResult) problems(exitCode int, stderr string) []string {
	var out []string
	for _, cmd := range r.Missing {
		why := "amicrypt-agent needs it"
		switch {
		case cmd == "cryptsetup":
			why = fmt.Sprintf("amicrypt-agent formats and opens the disks with it (%d.%d or later)", minCryptsetupMajor, minCryptsetupMinor)
		case strings.HasPrefix(cmd, "mkfs."):
			why = "amicrypt-agent makes the filesystem of `filesystem` with it"
		case cmd == "mdadm":
			why = "layout raid0 stripes the disks with it"
		case cmd == "wipefs":
			why = "wipe_foreign clears foreign signatures with it"
		case cmd == "systemctl":
			why = "the agent runs from a systemd unit at boot"
		}
		out = append(out, fmt.Sprintf("%s is not installed (%s): install it in an earlier provisioner with `%s`", cmd, why, installCommand(r.PackageManager, cmd)))
	}
	if r.TooOld {
		out = append(out, fmt.Sprintf("cryptsetup %s is older than %d.%d, which amicrypt-agent needs (LUKS2 `token import --token-replace`, `luksDump --dump-json-metadata`): "+
			"upgrade it (e.g. `%s`) or build from a newer base image", r.CryptsetupVersion, minCryptsetupMajor, minCryptsetupMinor, installCommand(r.PackageManager, "cryptsetup")))
	}
	switch r.Failed {
	case "":
	case "luksFormat", "open", "close":
		msg := fmt.Sprintf("dm-crypt does not work on this image: `cryptsetup %s` of a test volume in a temporary file failed", r.Failed)
		if r.Detail != "" {
			msg += ": " + r.Detail
		}
		out = append(out, msg)
		if r.NoDeviceMapper {
			out = append(out, "the kernel offers no device-mapper (/dev/mapper/control is missing): load it with `sudo modprobe dm_crypt`, "+
				"or install the kernel's modules package, in an earlier provisioner")
		}
		if r.NoLoop {
			out = append(out, "loop devices are unavailable here (/dev/loop-control is missing), as in containers and some chroots: "+
				"if the image is built where loop devices can't be used, set skip_self_test = true (the disks are then first tried at the image's first boot)")
		}
	default:
		msg := fmt.Sprintf("the self-test failed at its %s step", r.Failed)
		if r.Detail != "" {
			msg += ": " + r.Detail
		}
		out = append(out, msg)
	}
	if len(out) == 0 && exitCode != 0 {
		msg := fmt.Sprintf("the self-test exited with status %d without saying why", exitCode)
		if stderr = strings.TrimSpace(stderr); stderr != "" {
			msg += ": " + stderr
		}
		out = append(out, msg)
	}
	return out
}

// SelfTestError is a failed self-test of the image.
type SelfTestError struct {
	Problems []string
	Output   string // the script's output, for the log
}

func (e *SelfTestError) Error() string {
	return "amicrypt-instance-store: the image can't run amicrypt-agent:\n  - " + strings.Join(e.Problems, "\n  - ")
}
