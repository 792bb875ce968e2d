// Package agenttest builds stand-ins for amicrypt-agent the way `make agent`
// builds the real one, and `go build -overlay` files that embed them in a
// plugin build, for the tests of the amicrypt-instance-store provisioner
// (its own and the e2e suite's) while no real agent is embedded.
package agenttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Where the plugin embeds the agent, relative to the repository root; the
// provisioner's AgentDir and AgentFileName (a test there checks they agree).
const (
	AgentDir     = "provisioner/instancestore/agent"
	StandInPkg   = "./provisioner/instancestore/testdata/standin"
	agentPattern = "amicrypt-agent-linux-"
)

// Arches are the architectures `make agent` builds.
var Arches = []string{"amd64", "arm64"}

// ErrNoMake means make is not installed; the build step is a GNUmakefile
// target.
var ErrNoMake = errors.New("make is not installed")

// FileName is the embedded agent's name for linux/arch.
func FileName(arch string) string { return agentPattern + arch }

// RepoRoot is the module's root, from `go env GOMOD` in the working directory.
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside the module")
	}
	return filepath.Dir(gomod), nil
}

// Make runs `make ARGS...` at the repository root and returns its output.
func Make(args ...string) (string, error) {
	if _, err := exec.LookPath("make"); err != nil {
		return "", ErrNoMake
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("make %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// BuildStandIns builds testdata/standin for every architecture with
// `make agent` into dir and returns the binaries by architecture.
func BuildStandIns(dir string) (map[string]string, error) {
	out, err := Make("agent", "AGENT_PKG="+StandInPkg, "AGENT_DIR="+dir)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	bins := map[string]string{}
	for _, arch := range Arches {
		bins[arch] = filepath.Join(dir, FileName(arch))
		if _, err := os.Stat(bins[arch]); err != nil {
			return nil, fmt.Errorf("make agent did not build %s: %w\n%s", bins[arch], err, out)
		}
	}
	return bins, nil
}

// WriteOverlay writes into dir a `go build -overlay` file that places bins
// (by architecture) into the plugin's agent folder, as if `make agent` had
// built them there, and returns its path. The source tree is not touched.
func WriteOverlay(dir string, bins map[string]string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	replace := map[string]string{}
	for arch, bin := range bins {
		replace[filepath.Join(root, AgentDir, FileName(arch))] = bin
	}
	data, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "overlay.json")
	return path, os.WriteFile(path, data, 0o644)
}
