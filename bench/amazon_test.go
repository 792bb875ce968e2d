//go:build e2e

package bench

// BenchmarkAmazonEBSVsAmicryptEBS builds the same source AMI under the same
// customer key with HashiCorp's amazon-ebs (encrypt_boot) and with
// amicrypt-ebs, each with the real Packer binary against a fresh cmd/awsemu
// in the default world, and reports per build: wall time, emulated duration,
// API calls by action, GiB of snapshot data copied, and whether an
// unencrypted AMI ever existed (from the emulator's invariant checker).
//
//	go test -tags e2e -run '^$' -bench AmazonEBSVsAmicryptEBS -benchtime 1x ./bench/
//
// AMICRYPT_BENCH_TIME_SCALE (default 0.1) sets the emulator's time scale;
// AMICRYPT_BENCH_POLL_DELAY, when set, is given to both plugins as
// AWS_POLL_DELAY_SECONDS (default: each plugin's own polling). The figures
// and a side-by-side table go to the log and to bench/out/amazon.md.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/e2e"
)

const (
	amazonPluginSource    = "github.com/hashicorp/amazon"
	defaultBenchTimeScale = 0.1
)

// amazonPluginOnce memoises scripts/amazon-plugin.sh (which itself reuses
// the binary cached in .cache/) for the benchmark process.
var amazonPluginOnce = sync.OnceValues(func() (string, error) {
	root, err := e2e.RepoRoot()
	if err != nil {
		return "", err
	}
	out, err := runScript(root, "scripts/amazon-plugin.sh")
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
})

// buildRun is what one Packer build cost.
type buildRun struct {
	Builder        string
	Wall           time.Duration
	Emulated       time.Duration // emulator-clock span of the build's calls ÷ time scale
	Calls          map[string]int
	Errors         int // calls answered with an error (retries, probes)
	GiBCopied      int
	UnknownCopies  int // copies whose snapshot size could not be found
	UnencryptedAMI []string
	// UnencryptedFor is how long, in emulated time, the unencrypted AMIs
	// existed: from the call that made each to its DeregisterImage (or to
	// the end of the build).
	UnencryptedFor time.Duration
	OtherFindings  []string
}

// TotalCalls is the number of API calls of the build.
func (r *buildRun) TotalCalls() int {
	n := 0
	for _, c := range r.Calls {
		n += c
	}
	return n
}

func BenchmarkAmazonEBSVsAmicryptEBS(b *testing.B) {
	scale := defaultBenchTimeScale
	if s := os.Getenv("AMICRYPT_BENCH_TIME_SCALE"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 {
			b.Fatalf("AMICRYPT_BENCH_TIME_SCALE=%q: want a positive number such as 0.1", s)
		}
		scale = v
	}
	pollDelay := os.Getenv("AMICRYPT_BENCH_POLL_DELAY")

	var runs []*buildRun
	for _, builder := range []string{"amazon-ebs", "amicrypt-ebs"} {
		b.Run(builder, func(b *testing.B) {
			var last *buildRun
			for range b.N {
				last = runBuild(b, builder, scale, pollDelay)
			}
			b.ReportMetric(last.Emulated.Seconds(), "emulated-s/op")
			b.ReportMetric(float64(last.TotalCalls()), "api-calls/op")
			b.ReportMetric(float64(last.GiBCopied), "GiB-copied/op")
			b.ReportMetric(float64(len(last.UnencryptedAMI)), "unencrypted-AMIs/op")
			runs = append(runs, last)
		})
	}
	if len(runs) > 0 {
		table := sideBySide(runs, scale, pollDelay)
		b.Log("\n" + table)
		writeOut(b, "amazon.md", table)
	}
}

// runBuild runs one build of builder on a fresh emulator and measures it.
// Only the `packer build` is timed.
func runBuild(b *testing.B, builder string, scale float64, pollDelay string) *buildRun {
	b.StopTimer()
	env := e2e.New(b)
	if builder == "amazon-ebs" {
		bin, err := amazonPluginOnce()
		if err != nil {
			b.Fatalf("scripts/amazon-plugin.sh: %v", err)
		}
		env.InstallPlugin(b, bin, amazonPluginSource)
	}
	emu := env.StartEmulator(b, e2e.EmulatorOptions{TimeScale: scale})
	if pollDelay != "" {
		env.Vars["AWS_POLL_DELAY_SECONDS"] = pollDelay
	}
	keyARN := benchKeyARN(b, emu.URL)

	dir := b.TempDir()
	tmpl, err := os.ReadFile(filepath.Join("amazon_templates", builder+".pkr.hcl"))
	if err != nil {
		b.Fatal(err)
	}
	e2e.WriteFile(b, dir, builder+".pkr.hcl", string(tmpl))
	mark := lastSeq(b, emu)

	b.StartTimer()
	res := env.Packer(b, dir, "build", "-var", "kms_key_id="+keyARN, ".")
	b.StopTimer()
	if res.ExitCode != 0 {
		b.Fatalf("%s: packer build: exit %d\n%s", builder, res.ExitCode, res.Output)
	}
	run := measure(b, emu, mark, scale)
	run.Builder = builder
	run.Wall = res.Duration
	return run
}

// benchKeyARN resolves alias/amicrypt-build in the build account.
func benchKeyARN(b *testing.B, endpoint string) string {
	b.Helper()
	cfg := aws.Config{
		Region:       e2e.BuildRegion,
		Credentials:  credentials.NewStaticCredentialsProvider(e2e.BuildAccessKey, e2e.BuildSecretKey, ""),
		BaseEndpoint: aws.String(endpoint),
	}
	out, err := kms.NewFromConfig(cfg).DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-build")})
	if err != nil {
		b.Fatalf("kms DescribeKey alias/amicrypt-build: %v", err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// auditEntry is the part of an emulator audit entry the benchmark reads.
type auditEntry struct {
	Seq     int               `json:"seq"`
	Time    time.Time         `json:"time"`
	Service string            `json:"service"`
	Action  string            `json:"action"`
	Params  map[string]string `json:"params"`
	Notes   map[string]string `json:"notes"`
	Outcome string            `json:"outcome"`
}

func audit(b *testing.B, emu *e2e.Emulator, since int) []auditEntry {
	b.Helper()
	var entries []auditEntry
	emu.AdminJSON(b, "audit", url.Values{"since": {strconv.Itoa(since)}}, &entries)
	return entries
}

func lastSeq(b *testing.B, emu *e2e.Emulator) int {
	b.Helper()
	entries := audit(b, emu, 0)
	if len(entries) == 0 {
		return 0
	}
	return entries[len(entries)-1].Seq
}

// measure reads the audit, the state and the invariant checker after a build.
func measure(b *testing.B, emu *e2e.Emulator, mark int, scale float64) *buildRun {
	b.Helper()
	entries := audit(b, emu, mark)
	if len(entries) == 0 {
		b.Fatal("the build made no API call")
	}
	run := &buildRun{Calls: map[string]int{}}
	run.Emulated = time.Duration(float64(entries[len(entries)-1].Time.Sub(entries[0].Time)) / scale)

	var state struct {
		EC2 struct {
			Snapshots map[string]struct {
				SizeGiB int `json:"size_gib"`
			} `json:"snapshots"`
		} `json:"ec2"`
	}
	emu.AdminJSON(b, "state", nil, &state)

	for _, e := range entries {
		run.Calls[e.Service+":"+e.Action]++
		if e.Outcome != "ok" {
			run.Errors++
			continue
		}
		if e.Action != "CopyImage" && e.Action != "CopySnapshot" {
			continue
		}
		// The snapshots a copy made: "snapshotId" (CopySnapshot) or
		// "snapshotId.DEVICE" (CopyImage).
		for k, id := range e.Notes {
			if k != "snapshotId" && !strings.HasPrefix(k, "snapshotId.") {
				continue
			}
			if s, ok := state.EC2.Snapshots[id]; ok {
				run.GiBCopied += s.SizeGiB
			} else {
				run.UnknownCopies++
			}
		}
	}

	var report struct {
		Findings []struct {
			Check    string `json:"check"`
			Resource string `json:"resource"`
			Message  string `json:"message"`
		} `json:"findings"`
	}
	emu.AdminJSON(b, "check", url.Values{"since_seq": {strconv.Itoa(mark)}}, &report)
	for _, f := range report.Findings {
		if f.Check == "unencrypted-ami" {
			run.UnencryptedAMI = append(run.UnencryptedAMI, f.Resource)
			run.UnencryptedFor += lifetime(entries, f.Resource, scale)
		} else {
			run.OtherFindings = append(run.OtherFindings, f.Check+" "+f.Resource+": "+f.Message)
		}
	}
	return run
}

// lifetime is how long image id existed in emulated time, from the call that
// made it to the DeregisterImage of it (or the last call of the build).
func lifetime(entries []auditEntry, id string, scale float64) time.Duration {
	var from, to time.Time
	for _, e := range entries {
		switch {
		case e.Outcome != "ok":
		case from.IsZero() && e.Notes["imageId"] == id && e.Action != "DeregisterImage":
			from = e.Time
		case !from.IsZero() && e.Action == "DeregisterImage" && e.Params["ImageId"] == id:
			to = e.Time
		}
	}
	if from.IsZero() {
		return 0
	}
	if to.IsZero() {
		to = entries[len(entries)-1].Time
	}
	return time.Duration(float64(to.Sub(from)) / scale)
}

// MutatingCalls counts the calls that change something: all but
// Describe*, Get* and List*, whose number follows the polling.
func (r *buildRun) MutatingCalls() int {
	n := 0
	for k, c := range r.Calls {
		_, action, _ := strings.Cut(k, ":")
		if !strings.HasPrefix(action, "Describe") && !strings.HasPrefix(action, "Get") && !strings.HasPrefix(action, "List") {
			n += c
		}
	}
	return n
}

// sideBySide renders the runs, one column each, as a Markdown table.
func sideBySide(runs []*buildRun, scale float64, pollDelay string) string {
	var sb strings.Builder
	poll := "each plugin's default"
	if pollDelay != "" {
		poll = "AWS_POLL_DELAY_SECONDS=" + pollDelay
	}
	fmt.Fprintf(&sb, "time scale %g, polling: %s\n\n|", scale, poll)
	for _, r := range runs {
		fmt.Fprintf(&sb, " | %s", r.Builder)
	}
	sb.WriteString(" |\n|---")
	for range runs {
		sb.WriteString("|---:")
	}
	sb.WriteString("|\n")
	row := func(name string, f func(r *buildRun) string) {
		sb.WriteString("| " + name)
		for _, r := range runs {
			sb.WriteString(" | " + f(r))
		}
		sb.WriteString(" |\n")
	}
	row("wall time", func(r *buildRun) string { return r.Wall.Round(100 * time.Millisecond).String() })
	row("emulated duration", func(r *buildRun) string { return r.Emulated.Round(time.Second).String() })
	row("API calls", func(r *buildRun) string { return strconv.Itoa(r.TotalCalls()) })
	row("mutating calls (not Describe/Get/List)", func(r *buildRun) string { return strconv.Itoa(r.MutatingCalls()) })
	row("calls answered with an error", func(r *buildRun) string { return strconv.Itoa(r.Errors) })
	row("snapshot data copied", func(r *buildRun) string {
		s := strconv.Itoa(r.GiBCopied) + " GiB"
		if r.UnknownCopies > 0 {
			s += fmt.Sprintf(" (+%d copies of unknown size)", r.UnknownCopies)
		}
		return s
	})
	row("unencrypted AMI ever existed", func(r *buildRun) string {
		if len(r.UnencryptedAMI) == 0 {
			return "no"
		}
		return "**yes** (" + strings.Join(r.UnencryptedAMI, ", ") + ")"
	})
	row("unencrypted AMI lifetime (emulated)", func(r *buildRun) string {
		if len(r.UnencryptedAMI) == 0 {
			return "-"
		}
		return r.UnencryptedFor.Round(time.Second).String()
	})
	row("other checker findings", func(r *buildRun) string {
		if len(r.OtherFindings) == 0 {
			return "none"
		}
		return strings.Join(r.OtherFindings, "; ")
	})
	actions := map[string]bool{}
	for _, r := range runs {
		for k := range r.Calls {
			actions[k] = true
		}
	}
	names := make([]string, 0, len(actions))
	for k := range actions {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		row("`"+k+"`", func(r *buildRun) string { return strconv.Itoa(r.Calls[k]) })
	}
	return sb.String()
}

// writeOut writes bench/out/NAME (git-ignored).
func writeOut(b *testing.B, name, content string) {
	b.Helper()
	root, err := e2e.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(root, "bench", "out")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
}

// runScript runs a bash script of the repository and returns its stdout; on
// failure the error carries stderr.
func runScript(root, script string) (string, error) {
	cmd := exec.Command("bash", script)
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("bash %s: %w\n%s", script, err, stderr.String())
	}
	return string(out), nil
}
