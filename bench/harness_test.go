//go:build e2e

package bench

// What the scenarios B1–B4 share: their settings (from the environment),
// the e2e harness's Packer and cmd/awsemu, the audit and state readers, and
// results.json. See README.md for the knobs and what each figure means.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/e2e"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// Defaults of the knobs; README.md says why.
const (
	// B1: one emulated second lasts 1/15 s, so a 1 s poll delay (the
	// finest amazon-ebs accepts: it reads AWS_POLL_DELAY_SECONDS as an
	// integer) is 15 s emulated, both plugins' real-time cadence.
	defaultBuildScale = 1.0 / 15
	defaultBuildPoll  = 1.0
	// B2, B3: one emulated second lasts 100 ms, and every API call is
	// held 100 ms emulated (10 ms of wall time) before it is served, about
	// what an AWS call takes. The machine's own time per call (about a
	// millisecond, more when its two cores are busy) is then about a tenth
	// of that, not the whole of it as at 0.01, where 2 cores' throughput
	// became all of AWS's. 500 copies take about 70 s of wall time.
	defaultFanoutScale       = 0.1
	defaultFanoutCallLatency = 100 * time.Millisecond
)

// Shape is a fan-out: accounts × regions, one copy per account-region.
type Shape struct{ Accounts, Regions int }

func (s Shape) String() string { return fmt.Sprintf("%dx%d", s.Accounts, s.Regions) }

// Copies is the number of copies of the fan-out.
func (s Shape) Copies() int { return s.Accounts * s.Regions }

func parseShape(s string) (Shape, error) {
	a, r, ok := strings.Cut(strings.TrimSpace(s), "x")
	accounts, err1 := strconv.Atoi(a)
	regions, err2 := strconv.Atoi(r)
	if !ok || err1 != nil || err2 != nil || accounts < 1 || regions < 1 {
		return Shape{}, fmt.Errorf("%q is not ACCOUNTSxREGIONS, e.g. 20x4", s)
	}
	if _, err := FanoutRegions(regions); err != nil {
		return Shape{}, fmt.Errorf("%q: %w", s, err)
	}
	return Shape{accounts, regions}, nil
}

// settings are the scenarios' knobs, read from the environment.
type settings struct {
	profile     string // "full" or "quick"
	resultsDir  string
	buildScale  float64
	buildPoll   float64 // wall seconds, both plugins
	buildSizes  []int
	buildTools  []string
	fanoutScale float64
	fanoutPoll  float64       // wall seconds; 0: the plugin's default × scale
	fanoutCall  time.Duration // emulated time each API call is held (-call-latency)
	shapes      []Shape
	throttled   Shape
}

// Builders of B1.
const (
	toolAmazonEBS      = "amazon-ebs"
	toolAmicryptCopy   = "amicrypt-ebs-copy"
	toolAmicryptLaunch = "amicrypt-ebs-launch-encrypted"
	toolFanout         = "amicrypt-copy"
)

func loadSettings(b *testing.B) settings {
	b.Helper()
	s := settings{
		profile:     env("AMICRYPT_BENCH_PROFILE", "full"),
		buildScale:  envFloat(b, "AMICRYPT_BENCH_B1_SCALE", defaultBuildScale),
		buildPoll:   envFloat(b, "AMICRYPT_BENCH_B1_POLL", defaultBuildPoll),
		fanoutScale: envFloat(b, "AMICRYPT_BENCH_FANOUT_SCALE", defaultFanoutScale),
		fanoutPoll:  envFloat(b, "AMICRYPT_BENCH_FANOUT_POLL", 0),
	}
	call := env("AMICRYPT_BENCH_FANOUT_CALL_LATENCY", defaultFanoutCallLatency.String())
	if d, err := time.ParseDuration(call); err != nil || d < 0 {
		b.Fatalf("AMICRYPT_BENCH_FANOUT_CALL_LATENCY=%q: use a duration of emulated time such as 100ms, or 0", call)
	} else {
		s.fanoutCall = d
	}
	root, err := e2e.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	sizes, tools, shapes := "8,50,200", toolAmazonEBS+","+toolAmicryptCopy+","+toolAmicryptLaunch, "1x1,5x2,20x4,50x4,100x5"
	s.resultsDir = filepath.Join(root, "bench", "results")
	switch s.profile {
	case "full":
	case "quick":
		sizes, tools, shapes = "8", toolAmicryptCopy, "5x2"
		s.resultsDir = filepath.Join(root, "bench", "out", "quick")
	default:
		b.Fatalf("AMICRYPT_BENCH_PROFILE=%q: use full (default) or quick", s.profile)
	}
	s.resultsDir = env("AMICRYPT_BENCH_RESULTS", s.resultsDir)
	for _, v := range strings.Split(env("AMICRYPT_BENCH_B1_SIZES", sizes), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			b.Fatalf("AMICRYPT_BENCH_B1_SIZES: %q is not a size in GiB; use e.g. 8,50,200", v)
		}
		s.buildSizes = append(s.buildSizes, n)
	}
	for _, v := range strings.Split(env("AMICRYPT_BENCH_B1_TOOLS", tools), ",") {
		switch v = strings.TrimSpace(v); v {
		case toolAmazonEBS, toolAmicryptCopy, toolAmicryptLaunch:
			s.buildTools = append(s.buildTools, v)
		default:
			b.Fatalf("AMICRYPT_BENCH_B1_TOOLS: %q is not one of %s, %s, %s", v, toolAmazonEBS, toolAmicryptCopy, toolAmicryptLaunch)
		}
	}
	for _, v := range strings.Split(env("AMICRYPT_BENCH_B2_SHAPES", shapes), ",") {
		sh, err := parseShape(v)
		if err != nil {
			b.Fatalf("AMICRYPT_BENCH_B2_SHAPES: %v", err)
		}
		s.shapes = append(s.shapes, sh)
	}
	if s.throttled, err = parseShape(env("AMICRYPT_BENCH_B3_SHAPE", "20x4")); err != nil {
		b.Fatalf("AMICRYPT_BENCH_B3_SHAPE: %v", err)
	}
	if s.buildPoll != float64(int(s.buildPoll)) && slices.Contains(s.buildTools, toolAmazonEBS) {
		b.Fatalf("AMICRYPT_BENCH_B1_POLL=%g: amazon-ebs reads AWS_POLL_DELAY_SECONDS as whole seconds; use an integer", s.buildPoll)
	}
	return s
}

// fanoutCadence is B2/B3's polling: by default the plugin's real-time
// delay × the time scale, so it polls at its real-time cadence on the
// emulated clock.
func (s settings) fanoutCadence() Cadence {
	c := Cadence{Scale: s.fanoutScale, RealTime: awsauth.DefaultPollDelay}
	c.WallDelay = time.Duration(float64(awsauth.DefaultPollDelay) * s.fanoutScale)
	if s.fanoutPoll > 0 {
		c.WallDelay = time.Duration(s.fanoutPoll * float64(time.Second))
	}
	return c
}

// buildCadence is B1's polling, the same wall delay for both builders,
// whose real-time waiter delays are both 15 s (amicrypt-ebs's
// awsauth.DefaultPollDelay; the EC2 waiters' default in amazon-ebs).
func (s settings) buildCadence() Cadence {
	return Cadence{WallDelay: time.Duration(s.buildPoll * float64(time.Second)), Scale: s.buildScale, RealTime: awsauth.DefaultPollDelay}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envFloat(b *testing.B, name string, def float64) float64 {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return f
}

// pollEnv is AWS_POLL_DELAY_SECONDS for a wall delay.
func pollEnv(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

// provenance fills a row's measurement conditions.
func provenance(row *Row, c Cadence) {
	row.TimeScale = c.Scale
	row.PollWallS = c.WallDelay.Seconds()
	row.PollEmulatedS = c.Emulated().Seconds()
	row.CadenceFactor = c.Factor()
	row.MeasuredAt = time.Now().UTC().Truncate(time.Second)
	row.Commit = commitOnce()
	row.GoVersion = runtime.Version()
	row.CPUs = runtime.NumCPU()
}

// commitOnce is the worktree's commit, "+dirty" when it has changes.
var commitOnce = sync.OnceValue(func() string {
	root, err := e2e.RepoRoot()
	if err != nil {
		return ""
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	if status, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", ".", ":!bench/results").Output(); err == nil && len(status) > 0 {
		commit += "+dirty"
	}
	return commit
})

// record merges row into results.json and rewrites results.md.
func record(b *testing.B, s settings, row Row) {
	b.Helper()
	if err := os.MkdirAll(s.resultsDir, 0o755); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(s.resultsDir, "results.json")
	res, err := LoadResults(path)
	if err != nil {
		b.Fatal(err)
	}
	res.Put(row)
	if err := res.Save(path); err != nil {
		b.Fatal(err)
	}
	md := res.Markdown()
	if err := os.WriteFile(filepath.Join(s.resultsDir, "results.md"), []byte(md), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s %s %s recorded in %s", row.Scenario, row.Tool, row.Size, path)
}

// audit returns the emulator's audit after mark. With
// AMICRYPT_BENCH_AUDIT_DIR set it also keeps it there, one JSON entry a
// line, named after the benchmark.
func audit(b *testing.B, emu *e2e.Emulator, mark int) []awsemu.AuditEntry {
	b.Helper()
	entries := emu.Audit(b, url.Values{"since": {strconv.Itoa(mark)}})
	if dir := os.Getenv("AMICRYPT_BENCH_AUDIT_DIR"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		var buf strings.Builder
		enc := json.NewEncoder(&buf)
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				b.Fatal(err)
			}
		}
		name := strings.NewReplacer("/", "_", " ", "_").Replace(b.Name()) + ".audit.jsonl"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(buf.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return entries
}

// state reads the emulator's EC2 state.
func state(b *testing.B, emu *e2e.Emulator) EmuState {
	b.Helper()
	st, err := ParseState(emu.Admin(b, "state", nil))
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// model returns the running emulator's latency model, cross-region factor
// and copy quota (GET /_emu/model).
func model(b *testing.B, emu *e2e.Emulator) Model {
	b.Helper()
	m, err := ModelOf(emu.Admin(b, "model", nil))
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// findings returns the checker's findings since mark, split into
// unencrypted AMIs and the rest.
func findings(b *testing.B, emu *e2e.Emulator, mark int) (unencrypted, other []string) {
	b.Helper()
	report := emu.Check(b, url.Values{"since_seq": {strconv.Itoa(mark)}})
	for _, f := range report.Findings {
		if f.Check == "unencrypted-ami" {
			unencrypted = append(unencrypted, f.Resource)
		} else {
			other = append(other, f.Check+" "+f.Resource+": "+f.Message)
		}
	}
	return unencrypted, other
}

// emulatorCPU finds the cmd/awsemu process this benchmark started and
// returns its CPU time so far (0 when it can't be read).
func emulatorCPU(env *e2e.Env) time.Duration {
	bin, err := env.Bins.AWSEmu()
	if err != nil {
		return 0
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || ParentPID(pid) != os.Getpid() {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err != nil || exe != bin {
			continue
		}
		if _, cpu, err := ReadProc(pid); err == nil {
			total += cpu
		}
	}
	return total
}

// pluginProcess picks the plugin processes Packer starts from env's plugin
// directory for one component kind ("builder", "post-processor"): Packer
// runs each as `PLUGIN start KIND NAME`.
func pluginProcess(env *e2e.Env, kind string) ProcMatch {
	dir := env.PluginDir + string(filepath.Separator)
	return func(pid int, exe string, args []string) bool {
		return strings.HasPrefix(exe, dir) && len(args) >= 3 && args[1] == "start" && args[2] == kind
	}
}

// stateRecorder samples GET /_emu/state during a run, so the resources the
// run deletes before it ends (intermediate AMIs and snapshots) are still
// known, with their ready times, when it is measured.
type stateRecorder struct {
	url    string
	cancel context.CancelFunc
	done   chan struct{}
	st     EmuState
}

func recordState(emu *e2e.Emulator, interval time.Duration) *stateRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &stateRecorder{url: emu.URL + "/_emu/state", cancel: cancel, done: make(chan struct{}),
		st: EmuState{Images: map[string]EmuImage{}, Snapshots: map[string]EmuSnapshot{}}}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			_ = r.sample(ctx) // a missed sample is taken again at the next tick
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return r
}

func (r *stateRecorder) sample(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", r.url, resp.Status)
	}
	st, err := ParseState(body)
	if err != nil {
		return err
	}
	r.st.Merge(st)
	return nil
}

// Stop takes a last sample and returns every resource seen.
func (r *stateRecorder) Stop(b *testing.B) EmuState {
	b.Helper()
	r.cancel()
	<-r.done
	if err := r.sample(context.Background()); err != nil {
		b.Fatalf("the emulator state: %v", err)
	}
	return r.st
}
