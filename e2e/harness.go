//go:build e2e

// Package e2e runs the real Packer binary, with the amicrypt plugin installed
// the way users install it, against the local AWS emulator served by cmd/awsemu.
package e2e

// The harness gives a test three things: a Packer v1.12.0 binary built by
// scripts/packer.sh (never one found on PATH), the plugin built with a
// release version and installed with `packer plugins install --path` into a
// private plugin directory, and a cmd/awsemu server on a loopback port.
//
//	env := e2e.New(t)                       // Packer + plugin installed
//	emu := env.StartEmulator(t, e2e.EmulatorOptions{})
//	res := env.Packer(t, dir, "build", ".") // AWS_ENDPOINT_URL → emu
//	report := emu.Check(t, url.Values{"principal": {...}})
//
// Binaries are built once per test process (they take a minute) and shared;
// everything a test writes (plugin directory, config directory, logs) lives in
// its own t.TempDir().

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/version"
)

// Identity of the plugin as users name it.
const (
	PluginSource = "github.com/amicrypt/amicrypt"
	modulePath   = "github.com/amicrypt/packer-plugin-amicrypt"
)

// PluginVersion is the release version the e2e plugin is built with: the
// source's version (version.Version) with an empty pre-release, because
// `packer init` ignores -dev builds and would go online.
func PluginVersion() string { return version.Version }

// The build account's credentials in the emulator's default world.
const (
	BuildAccount   = "111111111111"
	BuildAccessKey = "AKIA1111111111111111"
	BuildSecretKey = "emu-secret-111111111111"
	BuildRegion    = "us-east-1"
	// BuildPrincipal is the IAM user the e2e Packer runs as.
	BuildPrincipal = "arn:aws:iam::111111111111:user/packer"
)

// Binaries are the executables a run needs, built once per test process.
type Binaries struct {
	Packer string // Packer v1.12.0 from scripts/packer.sh
	Plugin string // packer-plugin-amicrypt, version 0.1.0 (no prerelease)
	// AWSEmu is cmd/awsemu; built on first use by StartEmulator.
	AWSEmu func() (string, error)
}

// buildOnce memoises the builds for the test process. It holds no state a
// test can change: it is a function whose result is computed once.
var buildOnce = sync.OnceValues(buildBinaries)

// RepoRoot returns the module's root directory (the e2e package runs in e2e/).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(data, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// buildBinaries builds into the git-ignored .cache/e2e/ through a temporary
// name and an atomic rename, so concurrent test processes don't trip on a
// half-written binary; the Go build cache keeps rebuilds cheap.
func buildBinaries() (*Binaries, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	out := filepath.Join(root, ".cache", "e2e")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	packerOut, err := runIn(root, nil, "bash", "scripts/packer.sh")
	if err != nil {
		return nil, fmt.Errorf("scripts/packer.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(packerOut), "\n")
	bins := &Binaries{
		Packer: strings.TrimSpace(lines[len(lines)-1]),
		Plugin: filepath.Join(out, "packer-plugin-amicrypt"),
	}
	ldflags := fmt.Sprintf("-X %s/version.Version=%s -X %s/version.VersionPrerelease=", modulePath, PluginVersion(), modulePath)
	if err := goBuild(root, bins.Plugin, "-ldflags", ldflags, "."); err != nil {
		return nil, fmt.Errorf("building the plugin: %w", err)
	}
	awsemu := filepath.Join(out, "awsemu")
	bins.AWSEmu = sync.OnceValues(func() (string, error) {
		if err := goBuild(root, awsemu, "./cmd/awsemu"); err != nil {
			return "", fmt.Errorf("building cmd/awsemu (the emulator server): %w", err)
		}
		return awsemu, nil
	})
	return bins, nil
}

func goBuild(root, bin string, args ...string) error {
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	if _, err := runIn(root, nil, "go", append([]string{"build", "-o", tmp}, args...)...); err != nil {
		return err
	}
	return os.Rename(tmp, bin)
}

// runIn runs a command in dir and returns its stdout; on failure the error
// carries stderr.
func runIn(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// Env is one test's Packer environment: the shared binaries, a private plugin
// directory with amicrypt installed, and a private Packer config directory.
type Env struct {
	Bins      *Binaries
	Root      string // repository root, for example/ templates
	PluginDir string // PACKER_PLUGIN_PATH
	ConfigDir string // PACKER_CONFIG_DIR
	// Vars are added to (and override) every Packer run's environment, e.g.
	// AWS_POLL_DELAY_SECONDS or AWS_ACCESS_KEY_ID for another account.
	Vars map[string]string
	// Endpoint is the AWS_ENDPOINT_URL given to Packer; StartEmulator sets it.
	Endpoint string
}

// New builds (once) the binaries and installs the plugin into a fresh plugin
// directory with `packer plugins install --path`, as a user would.
func New(t testing.TB) *Env {
	t.Helper()
	bins, err := buildOnce()
	if err != nil {
		t.Fatalf("e2e setup: %v", err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	env := &Env{
		Bins:      bins,
		Root:      root,
		PluginDir: filepath.Join(tmp, "plugins"),
		ConfigDir: filepath.Join(tmp, "packer-config"),
		Vars:      map[string]string{},
	}
	for _, dir := range []string{env.PluginDir, env.ConfigDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env.InstallPlugin(t, bins.Plugin, PluginSource)
	return env
}

// InstallPlugin installs a plugin binary into the Env's plugin directory, e.g.
// HashiCorp's Amazon plugin from scripts/amazon-plugin.sh with source
// "github.com/hashicorp/amazon".
func (e *Env) InstallPlugin(t testing.TB, bin, source string) {
	t.Helper()
	res := e.Packer(t, e.Root, "plugins", "install", "--path", bin, source)
	if res.ExitCode != 0 {
		t.Fatalf("packer plugins install --path %s %s: exit %d\n%s", bin, source, res.ExitCode, res.Output)
	}
}

// Environ is the environment every Packer run gets: the host's, minus any AWS
// configuration, plus the private Packer directories, the emulator endpoint,
// the build account's credentials and Vars. HOME is left alone.
func (e *Env) Environ() []string {
	var environ []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "AWS_") || strings.HasPrefix(name, "PACKER_") || name == "CHECKPOINT_DISABLE" {
			continue
		}
		environ = append(environ, kv)
	}
	vars := map[string]string{
		"PACKER_PLUGIN_PATH":          e.PluginDir,
		"PACKER_CONFIG_DIR":           e.ConfigDir,
		"CHECKPOINT_DISABLE":          "1",
		"PACKER_NO_COLOR":             "1",
		"AWS_ACCESS_KEY_ID":           BuildAccessKey,
		"AWS_SECRET_ACCESS_KEY":       BuildSecretKey,
		"AWS_REGION":                  BuildRegion,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		// Builds that narrow a temporary security group to this machine's
		// public IP must not ask the internet for it; tests that need an
		// answer serve one on loopback and override this.
		"AMICRYPT_CHECK_IP_URL": "http://127.0.0.1:1/no-checkip-in-e2e",
	}
	if e.Endpoint != "" {
		vars["AWS_ENDPOINT_URL"] = e.Endpoint
	}
	for k, v := range e.Vars {
		vars[k] = v
	}
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	return environ
}

// Result is a finished Packer run.
type Result struct {
	Args     []string
	ExitCode int
	Output   string // stdout and stderr, interleaved as written
	Duration time.Duration
}

// Packer runs `packer ARGS...` in dir and waits for it. The run is bounded by
// the test's deadline (or 15 minutes).
func (e *Env) Packer(t testing.TB, dir string, args ...string) *Result {
	t.Helper()
	run := e.StartPacker(t, dir, args...)
	return run.Wait(t)
}

// PackerRun is a Packer process started by StartPacker.
type PackerRun struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	start  time.Time
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// StartPacker starts `packer ARGS...` in dir without waiting, so a test can
// watch its output and interrupt it.
func (e *Env) StartPacker(t testing.TB, dir string, args ...string) *PackerRun {
	t.Helper()
	timeout := 15 * time.Minute
	if deadline, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := deadline.Deadline(); ok {
			timeout = time.Until(d) - 30*time.Second
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, e.Bins.Packer, args...)
	cmd.Dir = dir
	cmd.Env = e.Environ()
	// Packer runs in its own process group, as a terminal's foreground job:
	// Ctrl-C (Interrupt) reaches Packer's panicwrap parent, the Packer child
	// that runs the build and the plugins together. Cancellation by deadline
	// does the same, then kills the group after a grace period.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = time.Minute
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	run := &PackerRun{cmd: cmd, out: out, start: time.Now(), cancel: cancel, done: make(chan struct{})}
	t.Logf("packer %s (in %s)", strings.Join(args, " "), dir)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting packer: %v", err)
	}
	go func() {
		run.err = cmd.Wait()
		close(run.done)
	}()
	t.Cleanup(func() {
		select {
		case <-run.done:
		default:
			_ = run.Interrupt()
			select {
			case <-run.done:
			case <-time.After(time.Minute):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-run.done
			}
		}
		cancel()
	})
	return run
}

// Output returns what Packer has written so far.
func (r *PackerRun) Output() string { return r.out.String() }

// Interrupt sends SIGINT to Packer's process group, as Ctrl-C in a terminal
// does: Packer's panicwrap parent doesn't forward a signal sent to it alone.
func (r *PackerRun) Interrupt() error { return syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT) }

// Signal sends sig to Packer's process group: SIGINT as Ctrl-C does,
// SIGTERM as a CI runner stopping a job does, SIGKILL as a lost runner or
// the OOM killer does (Packer and its plugins die at once).
func (r *PackerRun) Signal(sig syscall.Signal) error { return syscall.Kill(-r.cmd.Process.Pid, sig) }

// WaitForOutput waits until Packer's output contains substr. It fails the
// test if Packer exits first or the timeout passes.
func (r *PackerRun) WaitForOutput(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(r.out.String(), substr) {
		select {
		case <-r.done:
			if strings.Contains(r.out.String(), substr) {
				return
			}
			t.Fatalf("packer exited before printing %q:\n%s", substr, r.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("packer did not print %q within %s:\n%s", substr, timeout, r.out.String())
		}
	}
}

// Wait waits for Packer to exit and returns the result.
func (r *PackerRun) Wait(t testing.TB) *Result {
	t.Helper()
	<-r.done
	r.cancel()
	res := &Result{Args: r.cmd.Args[1:], Output: r.out.String(), Duration: time.Since(r.start), ExitCode: -1}
	var exitErr *exec.ExitError
	switch {
	case r.err == nil:
		res.ExitCode = 0
	case errors.As(r.err, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	default:
		t.Fatalf("packer %s: %v\n%s", strings.Join(res.Args, " "), r.err, res.Output)
	}
	t.Logf("packer %s: exit %d after %s", strings.Join(res.Args, " "), res.ExitCode, res.Duration.Round(time.Millisecond))
	return res
}

// syncBuffer is a bytes.Buffer safe for a writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// EmulatorOptions are cmd/awsemu's flags. Zero values mean the server's
// defaults (the embedded default world), except TimeScale.
type EmulatorOptions struct {
	World     string  // -world FILE
	TimeScale float64 // -time-scale; 0 means 0.001 (1 emulated second = 1 ms)
	Faults    string  // -faults FILE
	State     string  // -state FILE
	Args      []string
}

// Emulator is a running cmd/awsemu server.
type Emulator struct {
	URL     string // http://127.0.0.1:PORT
	LogPath string // the server's stdout and stderr
	cmd     *exec.Cmd
	done    chan struct{}
}

// StartEmulator starts cmd/awsemu on a free loopback port, waits until it
// answers, points the Env's Packer runs at it and stops it at cleanup.
func (e *Env) StartEmulator(t testing.TB, opts EmulatorOptions) *Emulator {
	t.Helper()
	bin, err := e.Bins.AWSEmu()
	if err != nil {
		t.Fatalf("e2e setup: %v", err)
	}
	emu := StartEmulator(t, bin, opts)
	e.Endpoint = emu.URL
	return emu
}

// StartEmulator starts the cmd/awsemu binary bin; see Env.StartEmulator.
func StartEmulator(t testing.TB, bin string, opts EmulatorOptions) *Emulator {
	t.Helper()
	// Port 0: the server picks a free port and prints it, so parallel test
	// processes never race for one.
	addr := "127.0.0.1:0"
	scale := opts.TimeScale
	if scale == 0 {
		scale = 0.001
	}
	args := []string{"-addr", addr, "-time-scale", strconv.FormatFloat(scale, 'g', -1, 64)}
	if opts.World != "" {
		args = append(args, "-world", opts.World)
	}
	if opts.Faults != "" {
		args = append(args, "-faults", opts.Faults)
	}
	if opts.State != "" {
		args = append(args, "-state", opts.State)
	}
	args = append(args, opts.Args...)

	logPath := filepath.Join(t.TempDir(), "awsemu.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting awsemu: %v", err)
	}
	emu := &Emulator{LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(emu.done)
	}()
	t.Cleanup(func() {
		emu.stop()
		if t.Failed() {
			if data, err := os.ReadFile(logPath); err == nil {
				t.Logf("awsemu log (last 4 KiB):\n%s", tail(string(data), 4096))
			}
		}
	})
	if err := emu.waitReady(30 * time.Second); err != nil {
		data, _ := os.ReadFile(logPath)
		t.Fatalf("awsemu %s: %v\n%s", strings.Join(args, " "), err, data)
	}
	t.Logf("awsemu listening on %s (%s)", emu.URL, strings.Join(args, " "))
	return emu
}

// waitReady waits for the "awsemu listening on URL" line, then for the
// admin endpoint to answer.
func (m *Emulator) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for m.URL == "" {
		data, _ := os.ReadFile(m.LogPath)
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "awsemu listening on "); ok {
				m.URL = strings.TrimSpace(strings.Fields(rest + " ")[0])
				break
			}
		}
		if m.URL != "" {
			break
		}
		select {
		case <-m.done:
			return errors.New("exited before listening")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no \"awsemu listening on\" line within %s", timeout)
		}
	}
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-m.done:
			return errors.New("exited before accepting connections")
		default:
		}
		resp, err := client.Get(m.URL + "/_emu/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer within %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m *Emulator) stop() {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// Admin fetches GET /_emu/PATH?QUERY and returns the body; a non-2xx status
// fails the test.
func (m *Emulator) Admin(t testing.TB, path string, query url.Values) []byte {
	t.Helper()
	u := m.URL + "/_emu/" + strings.TrimPrefix(path, "/")
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	if resp.StatusCode/100 != 2 {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, body)
	}
	return body
}

// AdminJSON fetches an admin endpoint and decodes its JSON into v.
func (m *Emulator) AdminJSON(t testing.TB, path string, query url.Values, v any) {
	t.Helper()
	body := m.Admin(t, path, query)
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decoding /_emu/%s: %v\n%s", path, err, tail(string(body), 2048))
	}
}

// Check returns the invariant checker's report (GET /_emu/check). query
// takes the checker's filters: principal, account, since_seq, since, ignore.
func (m *Emulator) Check(t testing.TB, query url.Values) awsemu.CheckReport {
	t.Helper()
	var report awsemu.CheckReport
	m.AdminJSON(t, "check", query, &report)
	return report
}

// Audit returns the audit entries (GET /_emu/audit). query takes the audit
// filters: service, account, region, principal, action, outcome, since.
func (m *Emulator) Audit(t testing.TB, query url.Values) []awsemu.AuditEntry {
	t.Helper()
	var entries []awsemu.AuditEntry
	m.AdminJSON(t, "audit", query, &entries)
	return entries
}

// WaitForAudit polls the audit until match accepts an entry recorded after
// since, and returns it; it fails the test after timeout. It lets a test act
// at an exact point of a run: after the call that starts a step.
func (m *Emulator) WaitForAudit(t testing.TB, since int, timeout time.Duration, match func(awsemu.AuditEntry) bool) awsemu.AuditEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range m.Audit(t, url.Values{"since": {strconv.Itoa(since)}}) {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit entry as awaited within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Mark returns the current audit position: pass it as since_seq to Check so
// only what a run does after it counts.
func (m *Emulator) Mark(t testing.TB) int {
	t.Helper()
	entries := m.Audit(t, nil)
	if len(entries) == 0 {
		return 0
	}
	return entries[len(entries)-1].Seq
}

// WriteFile writes a file (e.g. a template) under dir, creating parents.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
