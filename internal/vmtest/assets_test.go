package vmtest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/vmtest"
)

// TestRequireAssets: without the VM assets a VM test skips, unless
// AMICRYPT_REQUIRE_VM=1 (as `make vmtest` and CI set), which makes it fail,
// so that a run that meant to boot VMs can't pass by skipping them. It runs
// this test binary again with the assets pointed at an empty directory.
func TestRequireAssets(t *testing.T) {
	if os.Getenv("VMTEST_REQUIRE_ASSETS_CHILD") == "1" {
		vmtest.RequireAssets(t)
		t.Log("assets found")
		return
	}
	for _, tc := range []struct {
		name, require string
		wantFail      bool
		want          string
	}{
		{"required", "1", true, "VM assets missing and AMICRYPT_REQUIRE_VM=1"},
		{"not required", "", false, "--- SKIP: TestRequireAssets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestRequireAssets$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "VMTEST_REQUIRE_ASSETS_CHILD=1",
				vmtest.EnvAssets+"="+t.TempDir(), vmtest.EnvRequire+"="+tc.require)
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != tc.wantFail || !strings.Contains(string(out), tc.want) {
				t.Errorf("AMICRYPT_REQUIRE_VM=%q without assets: error %v, want failure %v and %q in:\n%s", tc.require, err, tc.wantFail, tc.want, out)
			}
		})
	}
}
