// Package agent is amicrypt-agent, run at every boot: it encrypts an
// instance's instance-store disks with LUKS2 under a data key that KMS wraps
// for this instance and that the disk's own LUKS2 header keeps, reopens them
// after a reboot, and refuses what it did not make. It fails closed: without
// KMS nothing is mounted and nothing is reformatted.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/cryptsetup"
)

// Subsystem is the LUKS2 subsystem label of the agent's volumes.
const Subsystem = "amicrypt"

// Options build an Agent.
type Options struct {
	Config *Config
	// Identity and KMS are needed by up, verify, rewrap and rotate; status
	// works without them.
	Identity Identity
	KMS      KMSAPI
	Runner   command.Runner
	Paths    Paths
	// Log receives one structured line per disk per action.
	Log *slog.Logger
	// Mounter overrides the choice between systemd and a direct mount.
	Mounter Mounter
}

// Agent carries out the agent's commands.
type Agent struct {
	cfg     *Config
	id      Identity
	keys    keyService
	cs      cryptsetup.CLI
	md      mdadm
	run     command.Runner
	paths   Paths
	log     *slog.Logger
	mounter Mounter
}

// New returns an Agent.
func New(o Options) *Agent {
	a := &Agent{
		cfg: o.Config, id: o.Identity, run: o.Runner, paths: o.Paths, log: o.Log, mounter: o.Mounter,
		keys: keyService{api: o.KMS, timeout: time.Duration(o.Config.KMSTimeout), id: o.Identity, spent: new(time.Duration)},
		cs:   cryptsetup.CLI{Runner: o.Runner},
		md:   mdadm{r: o.Runner},
	}
	if a.log == nil {
		a.log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if a.mounter == nil {
		a.mounter = newMounter(o.Runner, o.Paths)
	}
	return a
}

// volume is one LUKS volume the agent manages: a disk, or a raid0 array of
// disks.
type volume struct {
	name       string   // device-mapper name
	device     string   // the LUKS device
	members    []string // raid0 members
	mountPoint string
	probe      *Probe
	took       phases
}

// phases are how long a volume's steps took, for its log line: an operator
// sees where a slow boot spent its time (KMS, luksFormat, open, mkfs,
// mount), and benchmarks read them.
type phases struct {
	kms    time.Duration // the KMS calls, retries included
	format time.Duration // luksFormat, token import and its check
	open   time.Duration // cryptsetup open
	mkfs   time.Duration
	mount  time.Duration
}

// time runs step and adds its duration to *d.
func (*phases) time(d *time.Duration, step func() error) error {
	start := time.Now()
	err := step()
	*d += time.Since(start)
	return err
}

// attrs are the steps that ran, as NAME_ms log attributes.
func (p *phases) attrs() []slog.Attr {
	var attrs []slog.Attr
	for _, ph := range []struct {
		name string
		d    time.Duration
	}{{"kms_ms", p.kms}, {"format_ms", p.format}, {"open_ms", p.open}, {"mkfs_ms", p.mkfs}, {"mount_ms", p.mount}} {
		if ph.d > 0 {
			attrs = append(attrs, slog.Int64(ph.name, ph.d.Milliseconds()))
		}
	}
	return attrs
}

func (v *volume) mapped(p Paths) string { return filepath.Join(p.Mapper, v.name) }

// encryptionContext is the context a volume's key is wrapped with: this
// instance, this LUKS header, and the user's keys.
func (a *Agent) encryptionContext(luksUUID string) map[string]string {
	ec := maps.Clone(a.cfg.EncryptionContext)
	if ec == nil {
		ec = map[string]string{}
	}
	ec[ContextInstanceARN] = a.id.InstanceARN()
	ec[ContextLUKSUUID] = luksUUID
	return ec
}

// disks returns the configured disks, or the instance store ones.
func (a *Agent) disks() ([]string, error) {
	if len(a.cfg.Devices) > 0 {
		return a.cfg.Devices, nil
	}
	found, err := FindInstanceStore(a.paths)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("no instance store disk found (no %s/nvme*/device/model reads %q): this instance type has none, or list the disks in devices", a.paths.SysBlock, InstanceStoreModel)
	}
	return found, nil
}

// layoutDisks checks the disks against the layout.
func (a *Agent) layoutDisks() ([]string, error) {
	disks, err := a.disks()
	if err != nil {
		return nil, err
	}
	if a.cfg.Layout == LayoutSingle && len(disks) > 1 {
		return nil, fmt.Errorf("layout single, but this instance has %d instance store disks (%s); set layout to each or raid0, or list the one disk to use in devices",
			len(disks), strings.Join(disks, ", "))
	}
	return disks, nil
}

func (a *Agent) arrayDevice() string { return filepath.Join(a.paths.MD, a.cfg.Name) }

// eachIndex reads N out of a volume name NAME-N.
func (a *Agent) eachIndex(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, a.cfg.Name+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0 && strconv.Itoa(n) == s
}

// plan names the volumes of single and each layouts. With each, a volume
// keeps the name its token records, so its mount point survives a reboot
// that enumerates the disks in another order; new disks take the lowest
// free numbers.
func (a *Agent) plan(probes []*Probe) []*volume {
	vols := make([]*volume, len(probes))
	if a.cfg.Layout != LayoutEach {
		for i, p := range probes {
			vols[i] = &volume{name: a.cfg.Name, device: p.Device, mountPoint: a.cfg.MountPoint, probe: p}
		}
		return vols
	}
	used := map[int]bool{}
	index := make([]int, len(probes))
	for i, p := range probes {
		index[i] = -1
		if p.State == StateOurs && p.Token != nil {
			if n, ok := a.eachIndex(p.Token.Volume); ok && !used[n] {
				index[i], used[n] = n, true
			}
		}
	}
	next := 0
	for i := range probes {
		if index[i] < 0 {
			for used[next] {
				next++
			}
			index[i], used[next] = next, true
		}
	}
	for i, p := range probes {
		vols[i] = &volume{name: fmt.Sprintf("%s-%d", a.cfg.Name, index[i]), device: p.Device,
			mountPoint: filepath.Join(a.cfg.MountPoint, strconv.Itoa(index[i])), probe: p}
	}
	return vols
}

// dmAvailable reports whether the kernel offers device-mapper.
func (a *Agent) dmAvailable() bool {
	_, err := os.Stat(filepath.Join(a.paths.Mapper, "control"))
	return err == nil
}

// mapping says whether name is open. Without device-mapper nothing can be.
func (a *Agent) mapping(ctx context.Context, name string) (cryptsetup.Mapping, error) {
	m, err := a.cs.Status(ctx, name)
	if err != nil && !a.dmAvailable() {
		return cryptsetup.Mapping{}, nil
	}
	return m, err
}

// lock keeps two agents from working on the same disks at once.
func (a *Agent) lock() (func(), error) {
	if a.paths.Lock == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(a.paths.Lock), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", a.paths.Lock, err)
	}
	f, err := os.OpenFile(a.paths.Lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", a.paths.Lock, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another amicrypt-agent is running (it holds %s); wait for it to finish", a.paths.Lock)
	}
	return func() {
		// Closing the file releases the lock too; the explicit unlock is
		// for clarity, and its error changes nothing.
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// Outcomes of an action on a volume, as logged.
const (
	OutcomeFormatted   = "formatted"    // blank disk: new key, LUKS2, filesystem, mounted
	OutcomeReopened    = "reopened"     // our volume: key unwrapped, opened, mounted
	OutcomeAlreadyOpen = "already-open" // our volume was open already; mounted
	OutcomeRefused     = "refused"      // not ours and not blank, or another instance's
	OutcomeFailed      = "failed"
	OutcomeVerified    = "verified"
	OutcomeRewrapped   = "rewrapped"
	OutcomeRotated     = "rotated"
)

// logVolume writes the one log line of an action on a volume.
func (a *Agent) logVolume(ctx context.Context, action string, v *volume, outcome string, start time.Time, err error, extra ...slog.Attr) {
	attrs := []slog.Attr{
		slog.String("action", action),
		slog.String("device", v.device),
		slog.String("volume", v.name),
		slog.String("outcome", outcome),
		slog.Int64("duration_ms", time.Since(start).Milliseconds()),
	}
	attrs = append(attrs, v.took.attrs()...)
	if len(v.members) > 0 {
		attrs = append(attrs, slog.Any("members", v.members))
	}
	if p := v.probe; p != nil {
		attrs = append(attrs, slog.String("state", string(p.State)))
		if p.UUID != "" {
			attrs = append(attrs, slog.String("luks_uuid", p.UUID))
		}
		if p.Token != nil {
			attrs = append(attrs, slog.String("kms_key_arn", p.Token.KMSKeyARN))
		}
	}
	if a.id.InstanceID != "" {
		attrs = append(attrs, slog.String("instance", a.id.InstanceID))
	}
	switch outcome {
	case OutcomeFormatted, OutcomeReopened, OutcomeAlreadyOpen:
		attrs = append(attrs, slog.String("mount_point", v.mountPoint))
	}
	attrs = append(attrs, extra...)
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	a.log.LogAttrs(ctx, level, "amicrypt-agent "+action, attrs...)
}

// VolumeError is the failure of one volume, naming its device.
type VolumeError struct {
	Device string
	Err    error
}

func (e *VolumeError) Error() string { return e.Device + ": " + e.Err.Error() }
func (e *VolumeError) Unwrap() error { return e.Err }

func volumeErr(v *volume, err error) error {
	if err == nil {
		return nil
	}
	var ve *VolumeError
	if errors.As(err, &ve) {
		return err
	}
	return &VolumeError{Device: v.device, Err: err}
}
