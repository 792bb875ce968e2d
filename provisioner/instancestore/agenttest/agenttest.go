// Package agenttest builds stand-ins for amicrypt-agent the way `make agent`
// builds the real one, and `go build -overlay` files that embed them in a
// plugin build, for the tests of the amicrypt-instance-store provisioner
// (its own and the e2e suite's) while no real agent is embedded.
package agenttest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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

// RepoRoot is the module's root, from `go env GOMOD` in the test's directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not inside the module")
	}
	return filepath.Dir(gomod)
}

// Make runs `make ARGS...` at the repository root and returns its output;
// the test is skipped when make is not installed.
func Make(t testing.TB, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed; the build step is a GNUmakefile target")
	}
	cmd := exec.Command("make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = RepoRoot(t)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// BuildStandIns builds testdata/standin for every architecture with
// `make agent` into dir and returns the binaries by architecture.
func BuildStandIns(t testing.TB, dir string) map[string]string {
	t.Helper()
	out, err := Make(t, "agent", "AGENT_PKG="+StandInPkg, "AGENT_DIR="+dir)
	if err != nil {
		t.Fatalf("make agent with the stand-in: %v\n%s", err, out)
	}
	bins := map[string]string{}
	for _, arch := range Arches {
		bins[arch] = filepath.Join(dir, agentPattern+arch)
		if _, err := os.Stat(bins[arch]); err != nil {
			t.Fatalf("make agent did not build %s: %v\n%s", bins[arch], err, out)
		}
	}
	return bins
}

// Overlay writes a `go build -overlay` file that places bins (by
// architecture) into the plugin's agent folder, as if `make agent` had
// built them there, and returns its path. The source tree is not touched.
func Overlay(t testing.TB, bins map[string]string) string {
	t.Helper()
	root := RepoRoot(t)
	replace := map[string]string{}
	for arch, bin := range bins {
		replace[filepath.Join(root, AgentDir, agentPattern+arch)] = bin
	}
	data, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "overlay.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// FileName is the embedded agent's name for linux/arch.
func FileName(arch string) string { return agentPattern + arch }
