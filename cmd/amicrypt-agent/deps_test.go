package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestStaticDependencies keeps the agent a small static binary for both
// architectures: with cgo off it must resolve for linux/amd64 and
// linux/arm64 without cgo, the Packer SDK, the EC2 SDK or the emulator.
// (The build itself and the binary size are in the agent's release notes;
// `go list` checks the same constraints in a second.)
func TestStaticDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	forbidden := []string{"runtime/cgo", "github.com/hashicorp/packer-plugin-sdk", "github.com/aws/aws-sdk-go-v2/service/ec2", "internal/awsemu"}
	for _, arch := range []string{"amd64", "arm64"} {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list for linux/%s: %v", arch, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.Contains(dep, f) {
					t.Errorf("linux/%s: the agent depends on %s", arch, dep)
				}
			}
		}
	}
}
