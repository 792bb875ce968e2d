package vmtest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ErrTimeout is the error (wrapped) of a boot that outlived Config.Timeout
// or its context.
var ErrTimeout = errors.New("boot timed out")

// Result is what a boot showed.
type Result struct {
	// Console is everything the guest wrote to its serial console, with the
	// carriage returns removed.
	Console string
	// Reports are the console's "VMTEST key=value" lines, in order.
	Reports []Report
	// Lines maps each reported key to its last value.
	Lines map[string]string
	// ExitCode is the scenario's exit status (-1 if it never finished).
	ExitCode int
	// Completed is true when the guest ran the scenario to its end and
	// reached the power-off.
	Completed bool
	// Duration is the wall time from QEMU's start to its exit.
	Duration time.Duration
	// KernelBoot is the guest's uptime when /init started, and Ready when
	// the scenario started: kernel boot and guest setup, on its own clock.
	KernelBoot, Ready time.Duration
	// LogPath is the console log file ("" when Config.LogDir was empty).
	LogPath string
}

// Report is one "VMTEST key=value" console line.
type Report struct {
	Key, Value string
}

// Errors returns the harness's own complaints about the guest's setup
// (vmtest.error: a module that didn't load, a missing disk...).
func (r *Result) Errors() []string {
	var errs []string
	for _, rep := range r.Reports {
		if rep.Key == "vmtest.error" {
			errs = append(errs, rep.Value)
		}
	}
	return errs
}

// Tail returns the console's last n lines, for failure messages.
func (r *Result) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(r.Console, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Boot runs one boot for a test and returns its result once the guest has
// powered off. It skips the test when the VM assets are missing (see
// RequireAssets) and fails it when the boot itself failed: QEMU didn't start
// or timed out, or the guest didn't reach the end of the scenario or
// couldn't set itself up. What the scenario reported is the caller's to
// judge. The console log goes to the test's ArtifactDir unless cfg.LogDir is
// set (`go test -artifacts` keeps it).
func Boot(ctx context.Context, t testing.TB, cfg Config) *Result {
	t.Helper()
	a := RequireAssets(t)
	if cfg.LogDir == "" {
		cfg.LogDir = t.ArtifactDir()
	}
	res, err := Run(ctx, a, cfg)
	if err != nil {
		if res != nil {
			t.Fatalf("vmtest: %v\nconsole (%s), last lines:\n%s", err, res.LogPath, res.Tail(40))
		}
		t.Fatalf("vmtest: %v", err)
	}
	t.Logf("vmtest: %s: %.1fs (kernel %.1fs, guest ready %.1fs), scenario exit %d, console %s",
		cmp.Or(cfg.Name, "boot"), res.Duration.Seconds(), res.KernelBoot.Seconds(), res.Ready.Seconds(), res.ExitCode, res.LogPath)
	return res
}

// Run boots the guest that cfg describes and waits until it powers off, or
// kills QEMU (and every process it started) when cfg.Timeout or ctx ends. It
// returns an error, with the result so far, when the boot itself failed (see
// Boot).
func Run(ctx context.Context, a *Assets, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "vmtest-")
	if err != nil {
		return nil, fmt.Errorf("making a work directory: %w", err)
	}
	defer os.RemoveAll(work)

	initrd := filepath.Join(work, "initramfs.cpio")
	if err := BuildInitramfs(ctx, a, cfg, initrd); err != nil {
		return nil, err
	}
	args, err := qemuArgs(a, cfg, initrd)
	if err != nil {
		return nil, err
	}

	var console bytes.Buffer
	out := io.Writer(&console)
	res := &Result{ExitCode: -1}
	if cfg.LogDir != "" {
		logFile, err := createLog(cfg.LogDir, cfg.Name)
		if err != nil {
			return nil, err
		}
		defer logFile.Close()
		res.LogPath = logFile.Name()
		out = io.MultiWriter(&console, logFile)
	}

	runErr := runQEMU(ctx, a.QEMU, args, cfg.Timeout, out, res)
	res.Console = strings.ReplaceAll(console.String(), "\r", "")
	res.Reports = parseReports(res.Console)
	res.Lines = map[string]string{}
	for _, rep := range res.Reports {
		res.Lines[rep.Key] = rep.Value
	}
	if code, err := strconv.Atoi(res.Lines["vmtest.exit"]); err == nil {
		res.ExitCode = code
	}
	_, res.Completed = res.Lines["vmtest.done"]
	res.KernelBoot = uptime(res.Lines["vmtest.init"])
	res.Ready = uptime(res.Lines["vmtest.ready"])

	switch {
	case runErr != nil:
		return res, fmt.Errorf("boot %s: %w", cfg.Name, runErr)
	case !res.Completed:
		return res, fmt.Errorf("boot %s: the guest stopped before the end of its scenario (kernel panic, or /init died)", cfg.Name)
	case len(res.Errors()) > 0:
		return res, fmt.Errorf("boot %s: guest setup failed: %s", cfg.Name, strings.Join(res.Errors(), "; "))
	}
	return res, nil
}

// runQEMU runs QEMU in its own process group, which it kills on timeout and,
// to leave no forward's helper behind, after QEMU exits.
func runQEMU(ctx context.Context, qemu string, args []string, timeout time.Duration, console io.Writer, res *Result) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, args...)
	cmd.Stdout = console
	cmd.Stderr = console
	// Its own process group, so that one kill reaches QEMU and its forwards'
	// helpers; and killed with the test binary (a -timeout panic, Ctrl-C),
	// which would otherwise leave it running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", qemu, err)
	}
	err := cmd.Wait()
	res.Duration = time.Since(start)
	_ = killGroup(cmd.Process.Pid)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w (Config.Timeout %v, or the caller's context: %w); QEMU was killed", ErrTimeout, timeout, context.Cause(ctx))
	case err != nil:
		return fmt.Errorf("%s: %w", qemu, err)
	}
	return nil
}

func killGroup(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing QEMU's process group %d: %w", pid, err)
	}
	return nil
}

// qemuArgs is QEMU's command line: TCG, no display, no reboot, the disks as
// NVMe drives, virtio-rng, and a user network restricted to the forwards.
// Never plain user networking, which opens host sockets to any address the
// guest dials, and never guestfwd's "-tcp:" form, which connects once at
// QEMU's start and then hangs.
func qemuArgs(a *Assets, cfg Config, initrd string) ([]string, error) {
	cmdline := []string{"console=ttyS0", "quiet", "panic=-1"}
	for _, name := range slices.Sorted(maps.Keys(cfg.KernelArgs)) {
		cmdline = append(cmdline, "vmtest."+name+"="+cfg.KernelArgs[name])
	}
	args := []string{
		"-accel", "tcg",
		"-no-user-config",
		"-m", strconv.Itoa(cfg.MemoryMiB),
		"-smp", strconv.Itoa(cfg.CPUs),
		"-nographic", "-no-reboot",
		"-kernel", a.Kernel,
		"-initrd", initrd,
		"-append", strings.Join(cmdline, " "),
		"-device", "virtio-rng-pci",
	}
	for i, d := range cfg.Disks {
		abs, err := filepath.Abs(d.Path)
		if err != nil {
			return nil, fmt.Errorf("Config.Disks[%d].Path %q: %w", i, d.Path, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("Config.Disks[%d].Path: %w; make a blank disk with vmtest.NewDisk", i, err)
		}
		id := fmt.Sprintf("disk%d", i)
		nvme := "nvme,serial=" + d.Serial + ",drive=" + id
		if a.NVMeModelNumber {
			nvme += ",mn=" + d.Model
		}
		args = append(args,
			"-drive", "file="+qemuEscape(abs)+",if=none,id="+id+",format=raw",
			"-device", nvme)
	}

	netdev := "user,id=net0,restrict=on,ipv6=off,net=" + GuestNet + ",host=" + gatewayIP + ",dns=" + dnsIP
	for i, f := range cfg.Forwards {
		guest, err := checkForward(f)
		if err != nil {
			return nil, fmt.Errorf("Config.Forwards[%d]: %w", i, err)
		}
		host := netip.MustParseAddrPort(f.Host)
		netdev += fmt.Sprintf(",guestfwd=tcp:%s-cmd:%s nc %s %d", guest, a.Busybox, host.Addr(), host.Port())
	}
	// romfile= drops the card's iPXE boot ROM: the kernel is given directly.
	args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,romfile=")
	return args, nil
}

// qemuEscape doubles commas, which QEMU's option syntax reads as separators.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// createLog creates <dir>/<name>.console.log, or <name>-2... if a boot of
// the same name already logged there.
func createLog(dir, name string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("Config.LogDir: %w", err)
	}
	for i := 1; ; i++ {
		base := name
		if i > 1 {
			base = fmt.Sprintf("%s-%d", name, i)
		}
		f, err := os.OpenFile(filepath.Join(dir, base+".console.log"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("creating the console log in Config.LogDir: %w", err)
		}
		return f, nil
	}
}

// parseReports finds the "VMTEST key=value" lines. A report may follow
// kernel output on the same console line, so it is looked for anywhere in a
// line; its value runs to the end of the line.
func parseReports(console string) []Report {
	var reports []Report
	for line := range strings.Lines(console) {
		_, rest, ok := strings.Cut(line, "VMTEST ")
		if !ok {
			continue
		}
		key, value, ok := strings.Cut(strings.TrimRight(rest, " \r\n"), "=")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			continue
		}
		reports = append(reports, Report{Key: key, Value: value})
	}
	return reports
}

// uptime reads a /proc/uptime figure ("12.34") as a duration.
func uptime(s string) time.Duration {
	seconds, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return time.Duration(seconds * float64(time.Second))
}
