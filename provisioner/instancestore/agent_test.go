package instancestore

import (
	"bytes"
	"debug/elf"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/amicrypt/packer-plugin-amicrypt/provisioner/instancestore/agenttest"
)

func TestAgentBinary(t *testing.T) {
	amd64 := fakeELF(t, elf.EM_X86_64, false)
	tests := []struct {
		name  string
		files map[string][]byte
		arch  string
		want  string // error substring; "" means amd64 is returned
	}{
		{name: "embedded", files: map[string][]byte{AgentFileName("amd64"): amd64}, arch: "amd64"},
		{name: "missing", files: map[string][]byte{"README.md": []byte("placeholder")}, arch: "amd64", want: "built without amicrypt-agent for linux/amd64"},
		{name: "empty file", files: map[string][]byte{AgentFileName("arm64"): nil}, arch: "arm64", want: "built without amicrypt-agent for linux/arm64"},
		{name: "not ELF", files: map[string][]byte{AgentFileName("amd64"): []byte("#!/bin/sh\n")}, arch: "amd64", want: "is not an ELF executable"},
		{name: "wrong machine", files: map[string][]byte{AgentFileName("arm64"): amd64}, arch: "arm64", want: "is a EM_X86_64 ET_EXEC, not a EM_AARCH64 executable"},
		{name: "dynamically linked", files: map[string][]byte{AgentFileName("amd64"): fakeELF(t, elf.EM_X86_64, true)}, arch: "amd64", want: "is dynamically linked; it must be static (CGO_ENABLED=0)"},
		{name: "unknown architecture", files: map[string][]byte{}, arch: "386", want: `no amicrypt-agent for architecture "386"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, data := range tc.files {
				fsys[AgentDir+"/"+name] = &fstest.MapFile{Data: data}
			}
			got, err := agentBinary(fsys, tc.arch)
			if tc.want == "" {
				if err != nil || !bytes.Equal(got, amd64) {
					t.Fatalf("got %d bytes, %v", len(got), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
		})
	}
}

func TestArchFromUname(t *testing.T) {
	for machine, want := range map[string]string{"x86_64\n": "amd64", "aarch64": "arm64", "arm64": "arm64", "amd64": "amd64"} {
		got, err := archFromUname(machine)
		if err != nil || got != want {
			t.Errorf("archFromUname(%q) = %q, %v; want %q", machine, got, err, want)
		}
	}
	for _, machine := range []string{"i686", "riscv64", "armv7l", ""} {
		if _, err := archFromUname(machine); err == nil || !strings.Contains(err.Error(), "x86_64 (amd64) and aarch64 (arm64)") {
			t.Errorf("archFromUname(%q): %v", machine, err)
		}
	}
}

// TestEmbeddedAgentsMatchTheFolder: what this package embeds is exactly what
// agent/ holds on disk (the README, plus any binaries `make agent` built),
// and each embedded binary passes the checks or is reported missing.
func TestEmbeddedAgentsMatchTheFolder(t *testing.T) {
	var embedded, onDisk []string
	if err := fs.WalkDir(embeddedAgents, AgentDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			embedded = append(embedded, filepath.Base(path))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(AgentDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") && !strings.HasPrefix(e.Name(), "_") {
			onDisk = append(onDisk, e.Name())
		}
	}
	sort.Strings(embedded)
	sort.Strings(onDisk)
	if strings.Join(embedded, ",") != strings.Join(onDisk, ",") {
		t.Fatalf("embedded %v, on disk %v", embedded, onDisk)
	}
	for _, arch := range Architectures {
		data, err := AgentBinary(arch)
		disk, diskErr := os.ReadFile(filepath.Join(AgentDir, AgentFileName(arch)))
		var missing *MissingAgentError
		switch {
		case errors.Is(diskErr, fs.ErrNotExist):
			if !errors.As(err, &missing) || missing.Arch != arch {
				t.Errorf("%s: no binary on disk, yet AgentBinary says %v", arch, err)
			}
		case err != nil:
			t.Errorf("%s: the binary make agent built is refused: %v", arch, err)
		case !bytes.Equal(data, disk):
			t.Errorf("%s: the embedded binary differs from agent/%s", arch, AgentFileName(arch))
		}
	}
}

// standIns builds the stand-in agents with `make agent` (skipping without
// make) and returns them by architecture.
func standIns(t *testing.T) map[string]string {
	t.Helper()
	bins, err := agenttest.BuildStandIns(t.TempDir())
	if errors.Is(err, agenttest.ErrNoMake) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := agenttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestAgentTestAgreesWithThePackage(t *testing.T) {
	if agenttest.AgentDir != "provisioner/instancestore/"+AgentDir {
		t.Errorf("agenttest.AgentDir = %q", agenttest.AgentDir)
	}
	for _, arch := range Architectures {
		if agenttest.FileName(arch) != AgentFileName(arch) {
			t.Errorf("agenttest.FileName(%q) = %q, want %q", arch, agenttest.FileName(arch), AgentFileName(arch))
		}
	}
	if strings.Join(agenttest.Arches, ",") != strings.Join(Architectures, ",") {
		t.Errorf("agenttest.Arches = %v", agenttest.Arches)
	}
}

// TestMakeAgent runs the build step the plugin's build and release run:
// static, stripped, path-free Linux binaries for both architectures.
func TestMakeAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Go binaries")
	}
	bins := standIns(t)
	root := repoRoot(t)
	for arch, machine := range elfMachines {
		data, err := os.ReadFile(bins[arch])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := agentBinary(fstest.MapFS{AgentDir + "/" + AgentFileName(arch): {Data: data}}, arch); err != nil {
			t.Errorf("%s: %v", arch, err)
		}
		f, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != machine {
			t.Errorf("%s: machine %s", arch, f.Machine)
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s: not stripped (-ldflags '-s -w')", arch)
		}
		f.Close()
		if bytes.Contains(data, []byte(root)) {
			t.Errorf("%s: the binary holds the build path %s (no -trimpath)", arch, root)
		}
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		out, err := exec.Command(bins["amd64"], "version").Output()
		if err != nil || !strings.Contains(string(out), "linux/amd64") {
			t.Errorf("the amd64 stand-in says %q, %v", out, err)
		}
	}
}

func TestMakeAgentWithoutThePackage(t *testing.T) {
	dir := t.TempDir()
	out, err := agenttest.Make("agent", "AGENT_PKG=./cmd/no-such-agent", "AGENT_DIR="+dir)
	if errors.Is(err, agenttest.ErrNoMake) {
		t.Skip(err)
	}
	if err != nil || !strings.Contains(out, "./cmd/no-such-agent does not exist yet; skipped") {
		t.Fatalf("want a graceful skip, got %v:\n%s", err, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("built %v", entries)
	}
	out, err = agenttest.Make("agent", "AGENT_PKG=./cmd/no-such-agent", "AGENT_DIR="+dir, "AGENT_REQUIRED=1")
	if err == nil || !strings.Contains(out, "AGENT_REQUIRED is set") {
		t.Fatalf("AGENT_REQUIRED=1: want a failure, got %v:\n%s", err, out)
	}
}

// TestPluginBuildEmbedsTheAgent builds a program that uses this package with
// the stand-ins placed in agent/ by a build overlay (as `make agent` places
// the real agent before `go build`), and checks what it carries.
func TestPluginBuildEmbedsTheAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Go binaries")
	}
	bins := standIns(t)
	overlay, err := agenttest.WriteOverlay(t.TempDir(), bins)
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(t.TempDir(), "embedprobe")
	build := exec.Command("go", "build", "-overlay", overlay, "-o", probe, "./provisioner/instancestore/testdata/embedprobe")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -overlay: %v\n%s", err, out)
	}
	out := t.TempDir()
	if msg, err := exec.Command(probe, out).CombinedOutput(); err != nil {
		t.Fatalf("embedprobe: %v\n%s", err, msg)
	}
	for arch, bin := range bins {
		want, _ := os.ReadFile(bin)
		got, err := os.ReadFile(filepath.Join(out, arch))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: the build does not embed the stand-in (%v)", arch, err)
		}
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		msg, err := exec.Command(filepath.Join(out, "amd64"), "version").Output()
		if err != nil || !strings.Contains(string(msg), "amicrypt-agent stand-in (linux/amd64)") {
			t.Errorf("the embedded amd64 agent says %q, %v", msg, err)
		}
	}
}

// TestMakeAgentBuildsTheRealAgent: `make agent AGENT_REQUIRED=1`, as `make
// build` and the release run it, cross-compiles the real ./cmd/amicrypt-agent
// for both architectures into binaries the provisioner accepts, stamped
// with the plugin's version.
func TestMakeAgentBuildsTheRealAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds amicrypt-agent twice")
	}
	dir := t.TempDir()
	out, err := agenttest.Make("agent", "AGENT_DIR="+dir, "AGENT_REQUIRED=1")
	if errors.Is(err, agenttest.ErrNoMake) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, arch := range Architectures {
		data, err := os.ReadFile(filepath.Join(dir, AgentFileName(arch)))
		if err != nil {
			t.Fatalf("make agent built no %s: %v\n%s", AgentFileName(arch), err, out)
		}
		if _, err := agentBinary(fstest.MapFS{AgentDir + "/" + AgentFileName(arch): {Data: data}}, arch); err != nil {
			t.Errorf("%s: %v", arch, err)
		}
		if !bytes.Contains(data, []byte("amicrypt-agent")) || !bytes.Contains(data, []byte("kms:GenerateDataKey")) {
			t.Errorf("%s: not the real agent", arch)
		}
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		msg, err := exec.Command(filepath.Join(dir, AgentFileName("amd64")), "version").Output()
		version, _ := agenttest.Make("-s", "--eval=print-version: ; @echo $(PLUGIN_VERSION)", "print-version")
		if err != nil || strings.TrimSpace(string(msg)) != "amicrypt-agent "+strings.TrimSpace(version) {
			t.Errorf("the amd64 agent says %q, %v; want amicrypt-agent %s", msg, err, strings.TrimSpace(version))
		}
	}
}
