// Package instancestore is the amicrypt-instance-store provisioner: it
// prepares an image so that at every boot amicrypt-agent encrypts the EC2
// instance-store disks with LUKS2 under a KMS-wrapped key, failing closed.
package instancestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// Provisioner is the amicrypt-instance-store provisioner. It works after any
// builder whose communicator reaches a Linux image with systemd.
type Provisioner struct {
	config Config
	// agents replaces the embedded amicrypt-agent binaries in tests; nil
	// means the embedded ones.
	agents fs.FS
}

// Names of the files in the remote staging directory.
const (
	stagedAgent    = "amicrypt-agent"
	stagedConfig   = "instance-store.json"
	stagedUnit     = UnitName
	stagedDropIn   = "cloud-init.cfg"
	stagedSelfTest = "self-test.sh"
)

// stagedFile is an upload into the staging directory, private to the
// communicator's user until installed as root with its final mode.
type stagedFile struct {
	name string
	data []byte
	mode fs.FileMode
}

// forgetCloudInitMounts removes cloud-init's lines from /etc/fstab.
// cloud-init writes its mounts, the ephemeral disk's among them, there with
// comment=cloudconfig, and writes them again at each new instance's first
// boot from its config, which no longer has the ephemeral disk. Left in the
// image, the build instance's line would let systemd mount the raw disk at
// boot, before cloud-init drops it.
const forgetCloudInitMounts = `if [ -f /etc/fstab ] && grep -q 'comment=cloudconfig' /etc/fstab; then ` +
	`sed -i '/comment=cloudconfig/d' /etc/fstab && echo "Removed the build instance's cloud-init mounts from /etc/fstab (cloud-init writes them again at first boot, without the ephemeral disk)."; fi`

// cleanupTimeout bounds the removal of the staging directory, which runs
// even after Ctrl-C.
const cleanupTimeout = time.Minute

func (p *Provisioner) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

func (p *Provisioner) agentFS() fs.FS {
	if p.agents != nil {
		return p.agents
	}
	return embeddedAgents
}

// Prepare validates the configuration and checks that the plugin carries
// the agent for the image's architecture (both, until the build instance
// says which). It runs nothing remote.
func (p *Provisioner) Prepare(raws ...interface{}) error {
	errs := []error{p.config.Prepare(raws...)}
	arches := Architectures
	if p.config.Architecture != "" {
		arches = []string{p.config.Architecture}
	}
	for _, arch := range arches {
		if _, ok := elfMachines[arch]; !ok {
			continue // architecture's own error says so
		}
		if _, err := agentBinary(p.agentFS(), arch); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Provision uploads the agent, its config, the unit and the cloud-init
// drop-in; self-tests cryptsetup and dm-crypt on a loop file; installs them;
// and enables the unit without starting it, so the build instance's own
// instance store is never touched.
func (p *Provisioner) Provision(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, _ map[string]interface{}) error {
	if comm == nil {
		return errors.New("amicrypt-instance-store needs a communicator to reach the image; set communicator = \"ssh\" (or another) on the source")
	}
	r := &remote{comm: comm, ui: ui, useSudo: p.config.useSudo()}
	c := &p.config

	arch, err := p.architecture(ctx, r)
	if err != nil {
		return err
	}
	agent, err := agentBinary(p.agentFS(), arch)
	if err != nil {
		return err
	}
	configJSON, err := c.AgentConfig().Marshal()
	if err != nil {
		return err
	}

	staged, err := r.run(ctx, "creating a staging directory", "mktemp -d /tmp/amicrypt-instance-store.XXXXXXXX", false)
	if err != nil {
		return err
	}
	stage := strings.TrimSpace(staged.Stdout)
	if stage == "" {
		return errNoCommandRuns("mktemp -d")
	}
	if !strings.HasPrefix(stage, "/tmp/amicrypt-instance-store.") || strings.ContainsAny(stage, " \t\n'\"\\") {
		return fmt.Errorf("creating a staging directory: mktemp printed %q, not a directory under /tmp", staged.Stdout)
	}
	defer func() {
		cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		// The staging files belong to the communicator's user, who removes them.
		if _, err := r.run(cleanupCtx, "removing the staging directory", shellJoin("rm", "-rf", stage), false); err != nil {
			ui.Error(fmt.Sprintf("amicrypt-instance-store: %v; remove %s by hand", err, stage))
		}
	}()
	staging := func(name string) string { return path.Join(stage, name) }

	sum := sha256.Sum256(agent)
	ui.Say(fmt.Sprintf("Uploading amicrypt-agent (linux/%s, %.1f MiB, sha256 %s), its config, the systemd unit and the cloud-init drop-in...",
		arch, float64(len(agent))/(1<<20), hex.EncodeToString(sum[:])[:16]))
	uploads := []stagedFile{
		{stagedAgent, agent, 0o700},
		{stagedConfig, configJSON, 0o600},
		{stagedUnit, []byte(c.Unit()), 0o600},
		{stagedDropIn, []byte(CloudInitDropIn), 0o600},
	}
	if !c.SkipSelfTest {
		uploads = append(uploads, stagedFile{stagedSelfTest, []byte(selfTestScript), 0o600})
	}
	for _, u := range uploads {
		if err := r.upload(staging(u.name), u.data, u.mode); err != nil {
			return fmt.Errorf("amicrypt-instance-store: %w", err)
		}
	}

	if c.SkipSelfTest {
		ui.Say("Self-test skipped (skip_self_test): cryptsetup and dm-crypt are first tried at the image's first boot.")
	} else if err := p.selfTest(ctx, r, staging(stagedSelfTest)); err != nil {
		return err
	}

	ui.Say(fmt.Sprintf("Installing %s, %s, %s and %s...", AgentPath, AgentConfigPath, UnitPath, CloudInitDropInPath))
	installs := []struct {
		src, dst, mode string
	}{
		{staging(stagedAgent), AgentPath, "0755"},
		{staging(stagedConfig), AgentConfigPath, "0644"},
		{staging(stagedUnit), UnitPath, "0644"},
		{staging(stagedDropIn), CloudInitDropInPath, "0644"},
	}
	for _, in := range installs {
		// install -D creates the parent directories (0755) as needed.
		cmd := shellJoin("install", "-D", "-m", in.mode, "-o", "root", "-g", "root", in.src, in.dst)
		if _, err := r.run(ctx, "installing "+in.dst, r.privileged(cmd), true); err != nil {
			return err
		}
	}
	if _, err := r.run(ctx, "removing the build instance's cloud-init mounts from /etc/fstab", r.privileged(forgetCloudInitMounts), true); err != nil {
		return err
	}
	if _, err := r.run(ctx, "checking that the installed amicrypt-agent runs on the image", shellJoin(AgentPath, "version"), true); err != nil {
		return fmt.Errorf("%w (is the image's architecture really %s? set architecture to the image's own)", err, arch)
	}

	ui.Say(fmt.Sprintf("Enabling %s; it is not started: it runs at the image's every boot, never on the build instance.", UnitName))
	if _, err := r.run(ctx, "enabling the unit", r.privileged(shellJoin("systemctl", "enable", UnitName)), true); err != nil {
		return err
	}
	enabled, err := r.run(ctx, "checking the unit is enabled", shellJoin("systemctl", "is-enabled", UnitName), false)
	if err != nil {
		return err
	}
	if state := strings.TrimSpace(enabled.Stdout); state != "enabled" {
		return fmt.Errorf("checking the unit is enabled: systemctl is-enabled %s says %q, not \"enabled\"", UnitName, state)
	}
	ui.Say(fmt.Sprintf("amicrypt-instance-store: the image encrypts its instance-store disks under %s at every boot, mounted at %s.", c.KmsKeyID, c.MountPoint))
	return nil
}

// errNoCommandRuns is the error for a command that "succeeded" in silence, as
// every command does through Packer's communicator = "none", which runs
// nothing, exits 0 and can't upload.
func errNoCommandRuns(command string) error {
	return fmt.Errorf("amicrypt-instance-store: `%s` exited 0 but printed nothing: the communicator runs no commands "+
		"(communicator = \"none\"?); this provisioner needs one that reaches the image, such as ssh", command)
}

// architecture is the configured architecture, or the build instance's.
func (p *Provisioner) architecture(ctx context.Context, r *remote) (string, error) {
	if p.config.Architecture != "" {
		return p.config.Architecture, nil
	}
	res, err := r.run(ctx, "detecting the image's architecture", "uname -m", false)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(res.Stdout) == "" {
		return "", errNoCommandRuns("uname -m")
	}
	arch, err := archFromUname(res.Stdout)
	if err != nil {
		return "", fmt.Errorf("amicrypt-instance-store: %w", err)
	}
	r.ui.Say(fmt.Sprintf("Image architecture: %s (amicrypt-agent linux/%s)", strings.TrimSpace(res.Stdout), arch))
	return arch, nil
}

// selfTest runs the self-test script as root and turns a failure into a
// *SelfTestError that says what is missing and how to install it.
func (p *Provisioner) selfTest(ctx context.Context, r *remote, script string) error {
	r.ui.Say(fmt.Sprintf("Self-test: cryptsetup >= %d.%d, the agent's tools, and dm-crypt on a LUKS2 volume in a temporary file (never a disk)...",
		minCryptsetupMajor, minCryptsetupMinor))
	res, err := r.run(ctx, "self-test", r.privileged(shellJoin(append([]string{"sh", script}, p.config.selfTestArgs()...)...)), false)
	var cmdErr *CommandError
	if errors.As(err, &cmdErr) {
		parsed := parseSelfTest(res.Stdout)
		return &SelfTestError{Problems: parsed.problems(res.ExitCode, res.Stderr), Output: res.Stdout + res.Stderr}
	}
	if err != nil {
		return err
	}
	parsed := parseSelfTest(res.Stdout)
	if !parsed.DMCryptOK {
		return &SelfTestError{Problems: []string{"the self-test exited 0 without reporting that dm-crypt works"}, Output: res.Stdout + res.Stderr}
	}
	r.ui.Say(fmt.Sprintf("Self-test passed: cryptsetup %s, dm-crypt works.", parsed.CryptsetupVersion))
	return nil
}
