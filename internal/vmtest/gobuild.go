package vmtest

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
)

// BuildGo builds the Go command pkg (an import path, or a path relative to
// the test's package directory such as ./testdata/imdsget) as a static
// linux/amd64 binary for the guest, and returns its path: the Source of a
// File such as /usr/local/bin/amicrypt-agent. It is built the way `make
// agent` builds what the plugin ships (CGO_ENABLED=0, -trimpath, -ldflags
// '-s -w'), so a guest runs, and a benchmark weighs, the shipped binary.
func BuildGo(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), path.Base(pkg))
	cmd := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vmtest: building %s for the guest: %v\n%s", pkg, err, msg)
	}
	return out
}
