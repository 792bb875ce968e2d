//go:build e2e

package bench

// B2: amicrypt-copy fans an AMI out to accounts × regions with its defaults;
// B3: the same under request-rate throttling. Each run is one real
// `packer build` of amicrypt-ebs (skip_launch: it re-encrypts the public
// AL2023 AMI's 8 GiB snapshot under the build key and registers the AMI)
// chained into amicrypt-copy, against its own cmd/awsemu with a generated
// world. Only the post-processor's calls count: it signs in as the build
// account's second user, packer-copy, so its calls (and those of the roles it
// assumes) are told apart from the builder's in the audit.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/e2e"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// procInterval is how often the plugin process is sampled.
const procInterval = 50 * time.Millisecond

// BenchmarkB2Fanout: see the file comment and README.md.
//
//	go test -tags e2e -run '^$' -bench B2Fanout -benchtime 1x -timeout 120m ./bench/
func BenchmarkB2Fanout(b *testing.B) {
	s := loadSettings(b)
	for _, shape := range s.shapes {
		b.Run(shape.String(), func(b *testing.B) {
			var row Row
			for range b.N {
				row = runFanout(b, s, shape, nil)
			}
			reportFanout(b, row)
			record(b, s, row)
		})
	}
}

// throttle is B3's request rates per account-region, in calls per
// emulated second.
type throttle struct{ describe, mutate int }

func (t throttle) String() string {
	return fmt.Sprintf("%d Describe/s, %d mutating/s (emulated; burst = rate)", t.describe, t.mutate)
}

// BenchmarkB3Throttled runs the B3 shape without throttling, then with it,
// and reports the ratio of the two makespans.
//
//	go test -tags e2e -run '^$' -bench B3Throttled -benchtime 1x -timeout 120m ./bench/
func BenchmarkB3Throttled(b *testing.B) {
	s := loadSettings(b)
	shape := s.throttled
	var ref Row
	b.Run(shape.String()+"/unthrottled", func(b *testing.B) {
		for range b.N {
			ref = runFanout(b, s, shape, nil)
		}
		reportFanout(b, ref)
	})
	b.Run(shape.String()+"/throttled", func(b *testing.B) {
		th := throttle{describe: 20, mutate: 10} // per account-region
		var row Row
		for range b.N {
			row = runFanout(b, s, shape, &th)
		}
		row.Scenario = ScenarioThrottled
		row.Throttle = th.String()
		if ref.MakespanS > 0 {
			row.ReferenceMakespanS = ref.MakespanS
			row.RatioToReference = row.MakespanS / ref.MakespanS
			b.ReportMetric(row.RatioToReference, "x-unthrottled")
		} else {
			row.Note = strings.TrimPrefix(row.Note+"; no unthrottled run in this process", "; ")
		}
		b.ReportMetric(float64(row.Throttled), "throttled-calls/op")
		reportFanout(b, row)
		record(b, s, row)
	})
}

func reportFanout(b *testing.B, row Row) {
	b.ReportMetric(row.MakespanS, "emulated-s/op")
	b.ReportMetric(row.RatioToBound, "x-bound")
	b.ReportMetric(row.CallsPerCopyRealTime, "calls/copy")
	b.ReportMetric(float64(row.PluginPeakRSSBytes)/(1<<20), "plugin-peak-MiB")
	b.ReportMetric(row.PluginCPUS, "plugin-cpu-s/op")
}

// runFanout runs one fan-out of shape and measures it. Only the `packer
// build` is timed.
func runFanout(b *testing.B, s settings, shape Shape, th *throttle) Row {
	b.StopTimer()
	regions, err := FanoutRegions(shape.Regions)
	if err != nil {
		b.Fatal(err)
	}
	world, err := FanoutWorld(shape.Accounts)
	if err != nil {
		b.Fatal(err)
	}
	worldPath := filepath.Join(b.TempDir(), "world.json")
	if err := WriteWorld(world, worldPath); err != nil {
		b.Fatal(err)
	}
	args := []string{"-call-latency", s.fanoutCall.String()}
	if th != nil {
		// The buckets refill per wall-clock second: scale the rates so they
		// hold per emulated second.
		args = append(args,
			"-describe-rate", strconv.FormatFloat(float64(th.describe)/s.fanoutScale, 'f', -1, 64), "-describe-burst", strconv.Itoa(th.describe),
			"-mutate-rate", strconv.FormatFloat(float64(th.mutate)/s.fanoutScale, 'f', -1, 64), "-mutate-burst", strconv.Itoa(th.mutate),
		)
	}
	env := e2e.New(b)
	emu := env.StartEmulator(b, e2e.EmulatorOptions{World: worldPath, TimeScale: s.fanoutScale, Args: args})
	cadence := s.fanoutCadence()
	env.Vars["AWS_POLL_DELAY_SECONDS"] = pollEnv(cadence.WallDelay)

	dir := b.TempDir()
	manifest := filepath.Join(dir, "copies.json")
	e2e.WriteFile(b, dir, "fanout.pkr.hcl", fanoutTemplate(shape, regions, manifest))
	mark := emu.Mark(b)
	emuCPU := emulatorCPU(env)
	match := pluginProcess(env, "post-processor")
	watch := WatchProcs(procInterval, match)

	b.StartTimer()
	res := env.Packer(b, dir, "build", ".")
	b.StopTimer()
	usage := watch.Stop(match)
	emuCPU = emulatorCPU(env) - emuCPU
	if res.ExitCode != 0 {
		b.Fatalf("%s: packer build: exit %d\n%s", shape, res.ExitCode, tail(res.Output, 8000))
	}
	if m := readManifest(b, manifest); m.Succeeded != shape.Copies() || m.Failed != 0 {
		b.Fatalf("%s: %d copies succeeded and %d failed, want %d; the fan-out can't be measured\n%s", shape, m.Succeeded, m.Failed, shape.Copies(), tail(res.Output, 8000))
	}

	entries := audit(b, emu, mark)
	builder, pp := SplitByPrincipal(entries, BuildUserARN)
	if len(pp) == 0 {
		b.Fatalf("%s: no call by the post-processor (user %s or the roles it assumes)", shape, CopyUser)
	}
	st := state(b, emu)
	calls := Calls(pp)
	copies := shape.Copies()
	row := Row{
		Scenario: ScenarioFanout, Tool: toolFanout, Size: shape.String(),
		Accounts: shape.Accounts, Regions: shape.Regions, Copies: copies,
		WallS: res.Duration.Seconds(), CallLatencyS: s.fanoutCall.Seconds(),
		MakespanS: Emulated(calls.Span(), s.fanoutScale).Seconds(),
		Calls:     calls.Total, MutatingCalls: calls.Mutating(), Errors: calls.Errors, ErrorsBy: calls.ErrorsBy, DryRunProbes: calls.DryRun, DryRunBy: calls.DryRunBy, Throttled: calls.Throttled,
		CallsByAction:        calls.ByAction,
		CallsPerCopy:         float64(calls.Total) / float64(copies),
		CallsPerCopyRealTime: cadence.RealTimeCalls(calls.ByAction) / float64(copies),
		CallsPerCopyByAction: PerCopy(calls.ByAction, copies),
		EmulatorCPUS:         emuCPU.Seconds(),
	}
	m := model(b, emu)
	copied := Copied(pp, st, m, s.fanoutScale)
	row.GiBCopied, row.FullCopies, row.UnknownCopies = copied.GiB, copied.FullCopies, copied.Unknown

	src, err := fanoutSource(builder, st)
	if err != nil {
		b.Fatal(err)
	}
	var dests []Destination
	for i := range shape.Accounts {
		for _, r := range regions {
			dests = append(dests, Destination{Account: TargetAccount(i), Region: r, Copies: 1})
		}
	}
	bound, err := m.LowerBound(src, dests)
	if err != nil {
		b.Fatal(err)
	}
	row.LowerBoundS = bound.Makespan.Seconds()
	row.RatioToBound = row.MakespanS / row.LowerBoundS
	row.LowerBoundHow = m.Explain(src, bound)

	// The first CopyImage call, and when the copies became available.
	for _, e := range pp {
		if e.Action == "CopyImage" && e.Outcome == "ok" {
			row.FirstCopyCallS = Emulated(e.Time.Sub(calls.First), s.fanoutScale).Seconds()
			break
		}
	}
	var first, last time.Time
	for _, img := range st.Images {
		if img.Action != "CopyImage" || img.Principal == BuildUserARN || img.Created.Before(calls.First) {
			continue
		}
		at, ok := st.AvailableAt(img)
		if !ok {
			continue
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	if !first.IsZero() {
		row.FirstCopyS = Emulated(first.Sub(calls.First), s.fanoutScale).Seconds()
		row.LastCopyS = Emulated(last.Sub(calls.First), s.fanoutScale).Seconds()
	}

	var notes []string
	if len(usage) == 0 {
		notes = append(notes, "the post-processor's plugin process was not seen")
	}
	for _, u := range usage {
		row.PluginPeakRSSBytes = max(row.PluginPeakRSSBytes, u.PeakRSS)
		row.PluginCPUS += u.CPU.Seconds()
	}
	row.PluginProcesses = len(usage)
	if unenc, other := findings(b, emu, mark); len(unenc)+len(other) > 0 {
		row.UnencryptedAMIs = len(unenc)
		row.Findings = append(other, unenc...)
	}
	if f := cadence.Factor(); f != 1 {
		notes = append(notes, fmt.Sprintf("polled every %s emulated, not the plugin's real-time %s: per-action counts are as measured, the real-time total rescales %s by %.3g", cadence.Emulated(), cadence.RealTime, PollActions, f))
	}
	row.Note = strings.Join(notes, "; ")
	provenance(&row, cadence)
	return row
}

// fanoutSource is the AMI the builder registered: the post-processor's
// source, with the sizes of its snapshots.
func fanoutSource(builder []awsemu.AuditEntry, st EmuState) (SourceImage, error) {
	for _, e := range builder {
		if e.Outcome != "ok" || (e.Action != "RegisterImage" && e.Action != "CopyImage") {
			continue
		}
		img, ok := st.Images[e.Notes["imageId"]]
		if !ok {
			continue
		}
		src := SourceImage{Region: img.Region}
		for _, m := range img.Mappings {
			if m.SnapshotID != "" {
				src.SnapshotGiB = append(src.SnapshotGiB, m.SizeGiB)
			}
		}
		return src, nil
	}
	return SourceImage{}, fmt.Errorf("the builder registered no AMI the emulator still holds")
}

// fanoutTemplate is the Packer template of a fan-out: amicrypt-ebs
// re-encrypts the public AMI without launching, and amicrypt-copy, with its
// defaults, copies it into every target account and region.
func fanoutTemplate(shape Shape, regions []string, manifest string) string {
	var targets strings.Builder
	for i := range shape.Accounts {
		fmt.Fprintf(&targets, "    target {\n      account_id = %q\n    }\n", TargetAccount(i))
	}
	quoted := make([]string, len(regions))
	for i, r := range regions {
		quoted[i] = strconv.Quote(r)
	}
	return fmt.Sprintf(`packer {
  required_plugins {
    amicrypt = {
      source  = "github.com/amicrypt/amicrypt"
      version = ">= 0.1.0"
    }
  }
}

source "amicrypt-ebs" "golden" {
  region      = "us-east-1"
  source_ami  = %q
  skip_launch = true
  kms_key_id  = %q
  ami_name    = "bench-fanout-%s"
  tags        = { Team = "platform" }
}

build {
  sources = ["source.amicrypt-ebs.golden"]

  post-processor "amicrypt-copy" {
    # The build account's second user: its calls are the post-processor's.
    access_key = %q
    secret_key = %q

    role_name       = %q
    kms_key_id      = %q
    regions         = [%s]
    manifest_output = %q

%s  }
}
`, FanoutSourceAMI, BuildKeyAlias, shape, CopyAccessKey, CopySecretKey, FanoutRole, FanoutKeyAlias, strings.Join(quoted, ", "), manifest, targets.String())
}

// fanoutManifest is the part of amicrypt-copy's manifest_output read here.
type fanoutManifest struct {
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
	Error     string `json:"error"`
}

func readManifest(b *testing.B, path string) fanoutManifest {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatalf("manifest_output: %v", err)
	}
	var m fanoutManifest
	if err := json.Unmarshal(data, &m); err != nil {
		b.Fatalf("manifest_output %s: %v", path, err)
	}
	return m
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
