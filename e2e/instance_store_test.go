//go:build e2e

package e2e

// The amicrypt-instance-store provisioner with the real Packer.
//
// A provisioner needs a communicator that reaches an image, and no builder
// here gives one without a cloud: Packer's built-in `null` builder only
// takes communicator = "none", and then Packer v1.12 hands provisioners the
// SDK's "none" communicator, whose commands run nothing yet exit 0 and whose
// uploads fail. So the real Packer checks the provisioner through `packer
// validate`, which decodes the block through the plugin's HCL2 spec and
// runs its Prepare: a good block validates, each bad field is refused with
// its message, and no AWS call is made. TestInstanceStoreBuildWithoutACommunicator
// shows that a build on "none" fails at once, saying why, instead of
// pretending the image was prepared. What Provision does on an image is
// tested against packer-plugin-sdk's MockCommunicator in
// provisioner/instancestore.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/provisioner/instancestore/agenttest"
)

const instanceStoreTemplate = `
packer {
  required_plugins {
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = ">= 0.1.0"
    }
  }
}

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "amicrypt-instance-store" {
%s
  }
}
`

// pluginWithStandInAgent builds, once per test process, the plugin as the
// harness does but with stand-in agents embedded through a build overlay, as
// `make agent` embeds the real ones; the source tree is not touched.
var pluginWithStandInAgent = sync.OnceValues(func() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	// Under the git-ignored .cache/e2e/, like the harness's binaries.
	dir := filepath.Join(root, ".cache", "e2e", "standin-agent")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bins, err := agenttest.BuildStandIns(dir)
	if err != nil {
		return "", fmt.Errorf("building the stand-in agents: %w", err)
	}
	overlay, err := agenttest.WriteOverlay(dir, bins)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, ".cache", "e2e", "packer-plugin-amicrypt-standin-agent")
	ldflags := fmt.Sprintf("-X %s/version.Version=%s -X %s/version.VersionPrerelease=", modulePath, PluginVersion(), modulePath)
	if err := goBuild(root, bin, "-overlay", overlay, "-ldflags", ldflags, "."); err != nil {
		return "", fmt.Errorf("building the plugin with stand-in agents: %w", err)
	}
	return bin, nil
})

// newInstanceStoreEnv is New with the plugin that embeds stand-in agents.
func newInstanceStoreEnv(t *testing.T) *Env {
	t.Helper()
	env := New(t)
	bin, err := pluginWithStandInAgent()
	if err != nil {
		t.Fatalf("e2e setup: %v", err)
	}
	env.InstallPlugin(t, bin, PluginSource)
	for k, v := range offlineProxy {
		env.Vars[k] = v
	}
	return env
}

func instanceStoreDir(t *testing.T, env *Env, body string) string {
	t.Helper()
	dir := t.TempDir()
	WriteFile(t, dir, "instance-store.pkr.hcl", fmt.Sprintf(instanceStoreTemplate, body))
	if res := env.Packer(t, dir, "init", "."); res.ExitCode != 0 {
		t.Fatalf("packer init: exit %d\n%s", res.ExitCode, res.Output)
	}
	return dir
}

func TestInstanceStoreValidate(t *testing.T) {
	env := newInstanceStoreEnv(t)
	emu := env.StartEmulator(t, EmulatorOptions{})
	mark := emu.Mark(t)
	cases := []struct {
		name string
		body string
		want []string // empty: valid
	}{
		{name: "minimal", body: `kms_key_id = "alias/amicrypt-instance-store"`},
		{name: "every field", body: `kms_key_id         = "arn:aws:kms:us-east-1:111111111111:alias/amicrypt-instance-store"
    devices            = ["/dev/nvme1n1", "/dev/nvme2n1"]
    layout             = "raid0"
    mount_point        = "/data"
    filesystem         = "xfs"
    encryption_context = { team = "payments" }
    kms_timeout        = "2m"
    wipe_foreign       = true
    name               = "scratch"
    required_by        = ["postgresql.service"]
    architecture       = "arm64"
    skip_self_test     = true
    use_sudo           = false`},
		{name: "no key", body: `layout = "single"`, want: []string{"kms_key_id: not set"}},
		{name: "malformed key", body: `kms_key_id = "amicrypt-instance-store"`,
			want: []string{`kms_key_id: "amicrypt-instance-store" is not a KMS key reference`}},
		{name: "AWS-managed key", body: `kms_key_id = "alias/aws/ebs"`,
			want: []string{`kms_key_id: "alias/aws/ebs" is an AWS-managed key`, "create a customer-managed key"}},
		{name: "bad device", body: `kms_key_id = "alias/k"
    devices = ["nvme1n1"]`, want: []string{`devices[0]: "nvme1n1" is not a device path`}},
		{name: "bad layout", body: `kms_key_id = "alias/k"
    layout = "raid5"`, want: []string{`layout: "raid5" is not a layout`}},
		{name: "mount point under /proc", body: `kms_key_id = "alias/k"
    mount_point = "/proc/data"`, want: []string{`mount_point: "/proc/data" is under /proc`}},
		{name: "bad filesystem", body: `kms_key_id = "alias/k"
    filesystem = "btrfs"`, want: []string{`filesystem: "btrfs" is not supported`}},
		{name: "reserved context key", body: `kms_key_id = "alias/k"
    encryption_context = { "amicrypt:instance-arn" = "x" }`, want: []string{`encryption_context: key "amicrypt:instance-arn" starts with "amicrypt:"`}},
		{name: "bad timeout", body: `kms_key_id = "alias/k"
    kms_timeout = "90"`, want: []string{`kms_timeout: "90" is not a duration`}},
		{name: "bad architecture", body: `kms_key_id = "alias/k"
    architecture = "x86_64"`, want: []string{`architecture: "x86_64" is the kernel's name; use the Go name "amd64"`}},
		{name: "bad required_by", body: `kms_key_id = "alias/k"
    required_by = ["postgresql"]`, want: []string{`required_by[0]: "postgresql" is not a systemd unit name`}},
		{name: "unknown field", body: `kms_key_id = "alias/k"
    no_such_field = true`, want: []string{"no_such_field"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := instanceStoreDir(t, env, "    "+tc.body)
			res := env.Packer(t, dir, "validate", ".")
			if len(tc.want) == 0 {
				if res.ExitCode != 0 || !strings.Contains(res.Output, "The configuration is valid.") {
					t.Fatalf("packer validate: exit %d\n%s", res.ExitCode, res.Output)
				}
				return
			}
			if res.ExitCode == 0 {
				t.Fatalf("packer validate accepted it:\n%s", res.Output)
			}
			flat := strings.Join(strings.Fields(res.Output), " ")
			for _, w := range tc.want {
				if !strings.Contains(flat, w) {
					t.Errorf("packer validate output lacks %q:\n%s", w, res.Output)
				}
			}
		})
	}
	if calls := emu.Audit(t, nil); len(calls) > 0 && calls[len(calls)-1].Seq > mark {
		t.Errorf("packer validate made AWS calls: %+v", calls[len(calls)-1])
	}
}

// TestInstanceStoreExampleValidates: example/instance-store (amicrypt-ebs and
// this provisioner) validates offline, with no AWS call.
func TestInstanceStoreExampleValidates(t *testing.T) {
	env := newInstanceStoreEnv(t)
	emu := env.StartEmulator(t, EmulatorOptions{})
	mark := emu.Mark(t)
	data, err := os.ReadFile(filepath.Join(env.Root, "example", "instance-store", "instance-store.pkr.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	WriteFile(t, dir, "instance-store.pkr.hcl", string(data))
	for _, args := range [][]string{{"init", "."}, {"validate", "."}} {
		if res := env.Packer(t, dir, args...); res.ExitCode != 0 {
			t.Fatalf("packer %s: exit %d\n%s", strings.Join(args, " "), res.ExitCode, res.Output)
		}
	}
	if calls := emu.Audit(t, nil); len(calls) > 0 && calls[len(calls)-1].Seq > mark {
		t.Errorf("packer validate made AWS calls: %+v", calls[len(calls)-1])
	}
}

// TestInstanceStoreValidateWithoutAgent: the plugin the harness builds with
// a plain `go build` embeds whatever agent/ holds. Without `make agent` there
// is none, and validate says how to build a plugin that has it.
func TestInstanceStoreValidateWithoutAgent(t *testing.T) {
	env := New(t)
	for k, v := range offlineProxy {
		env.Vars[k] = v
	}
	dir := instanceStoreDir(t, env, `    kms_key_id = "alias/amicrypt-instance-store"`)
	res := env.Packer(t, dir, "validate", ".")
	agents := filepath.Join(env.Root, agenttest.AgentDir)
	var built []string
	for _, arch := range agenttest.Arches {
		if _, err := os.Stat(filepath.Join(agents, agenttest.FileName(arch))); err == nil {
			built = append(built, arch)
		}
	}
	if len(built) == len(agenttest.Arches) {
		if res.ExitCode != 0 {
			t.Fatalf("agents built by make agent are embedded, yet validate fails:\n%s", res.Output)
		}
		return
	}
	flat := strings.Join(strings.Fields(res.Output), " ")
	for _, want := range []string{"this amicrypt plugin was built without amicrypt-agent for linux/", "`make build`"} {
		if res.ExitCode == 0 || !strings.Contains(flat, want) {
			t.Errorf("no agent in %s, yet validate (exit %d) lacks %q:\n%s", agents, res.ExitCode, want, res.Output)
		}
	}
}

// TestInstanceStoreBuildWithoutACommunicator: on the null builder's
// communicator = "none", whose commands exit 0 without running, the
// provisioner fails at its first command instead of reporting an image it
// never prepared.
func TestInstanceStoreBuildWithoutACommunicator(t *testing.T) {
	env := newInstanceStoreEnv(t)
	for _, arch := range []string{"", "arm64"} {
		t.Run("architecture="+arch, func(t *testing.T) {
			body := `    kms_key_id = "alias/amicrypt-instance-store"`
			first := "`uname -m` exited 0 but printed nothing"
			if arch != "" {
				body += "\n    architecture = \"" + arch + "\""
				first = "`mktemp -d` exited 0 but printed nothing"
			}
			dir := instanceStoreDir(t, env, body)
			res := env.Packer(t, dir, "build", "-color=false", ".")
			flat := strings.Join(strings.Fields(res.Output), " ")
			if res.ExitCode == 0 || !strings.Contains(flat, first) || !strings.Contains(flat, `communicator = "none"?`) {
				t.Fatalf("packer build: exit %d, want the provisioner to refuse the silent communicator:\n%s", res.ExitCode, res.Output)
			}
			for _, never := range []string{"Installing", "Enabling", "Self-test passed"} {
				if strings.Contains(res.Output, never) {
					t.Errorf("packer build output has %q:\n%s", never, res.Output)
				}
			}
		})
	}
}
