//go:build e2e

package bench

// B1: build one encrypted AMI from the same source AMI with 8, 50 and
// 200 GiB volumes, with HashiCorp's amazon-ebs v1.8.0 (encrypt_boot) and
// with amicrypt-ebs in both of its modes (the copy path, and the build
// volume launched already under the key), each with the real Packer against
// its own cmd/awsemu in the default world.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

const amazonPluginSource = "github.com/hashicorp/amazon"

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

// BenchmarkB1Build: see the file comment and README.md.
//
//	go test -tags e2e -run '^$' -bench B1Build -benchtime 1x -timeout 120m ./bench/
func BenchmarkB1Build(b *testing.B) {
	s := loadSettings(b)
	for _, tool := range s.buildTools {
		for _, size := range s.buildSizes {
			b.Run(tool+"/"+strconv.Itoa(size)+"GiB", func(b *testing.B) {
				var row Row
				for range b.N {
					row = runBuild(b, s, tool, size)
				}
				b.ReportMetric(row.MakespanS, "emulated-s/op")
				b.ReportMetric(float64(row.Calls), "api-calls/op")
				b.ReportMetric(float64(row.GiBCopied), "GiB-copied/op")
				b.ReportMetric(float64(row.UnencryptedAMIs), "unencrypted-AMIs/op")
				record(b, s, row)
			})
		}
	}
}

// runBuild runs one build on a fresh emulator and measures it. Only the
// `packer build` is timed.
func runBuild(b *testing.B, s settings, tool string, sizeGiB int) Row {
	b.StopTimer()
	env := e2e.New(b)
	if tool == toolAmazonEBS {
		bin, err := amazonPluginOnce()
		if err != nil {
			b.Fatalf("scripts/amazon-plugin.sh: %v", err)
		}
		env.InstallPlugin(b, bin, amazonPluginSource)
	}
	cadence := s.buildCadence()
	emu := env.StartEmulator(b, e2e.EmulatorOptions{TimeScale: s.buildScale})
	env.Vars["AWS_POLL_DELAY_SECONDS"] = pollEnv(cadence.WallDelay)
	keyARN := buildKeyARN(b, emu.URL)

	dir := b.TempDir()
	tmpl, err := os.ReadFile(filepath.Join("templates", tool+".pkr.hcl"))
	if err != nil {
		b.Fatal(err)
	}
	e2e.WriteFile(b, dir, tool+".pkr.hcl", string(tmpl))
	mark := emu.Mark(b)
	// Half a second of wall time: 7.5 s emulated at the default scale,
	// shorter than anything a build deletes lives.
	rec := recordState(emu, 500*time.Millisecond)

	b.StartTimer()
	res := env.Packer(b, dir, "build", "-var", "kms_key_id="+keyARN, "-var", "volume_size="+strconv.Itoa(sizeGiB), ".")
	b.StopTimer()
	st := rec.Stop(b)
	if res.ExitCode != 0 {
		b.Fatalf("%s: packer build: exit %d\n%s", tool, res.ExitCode, res.Output)
	}

	entries := audit(b, emu, mark)
	if len(entries) == 0 {
		b.Fatal("the build made no API call")
	}
	calls := Calls(entries)
	copied := Copied(entries, st, model(b, emu), s.buildScale)
	lag := PollLag(entries, st, s.buildScale)
	unencrypted, other := findings(b, emu, mark)
	row := Row{
		Scenario: ScenarioBuild, Tool: tool, Size: strconv.Itoa(sizeGiB) + " GiB", VolumeGiB: sizeGiB,
		WallS:     res.Duration.Seconds(),
		MakespanS: Emulated(calls.Span(), s.buildScale).Seconds(),
		PollLagS:  lag.Total.Seconds(), PollWaits: lag.Waits,
		Calls: calls.Total, MutatingCalls: calls.Mutating(), Errors: calls.Errors, ErrorsBy: calls.ErrorsBy, DryRunProbes: calls.DryRun, DryRunBy: calls.DryRunBy, Throttled: calls.Throttled,
		CallsByAction: calls.ByAction,
		GiBCopied:     copied.GiB, FullCopies: copied.FullCopies, UnknownCopies: copied.Unknown,
		UnencryptedAMIs: len(unencrypted), Findings: other,
	}
	for _, id := range unencrypted {
		row.UnencryptedLifetimeS += Lifetime(entries, id, s.buildScale).Seconds()
	}
	if f := cadence.Factor(); f != 1 {
		row.Note = "calls at real-time cadence ≈ " + strconv.FormatFloat(cadence.RealTimeCalls(calls.ByAction), 'f', 0, 64)
	}
	provenance(&row, cadence)
	return row
}

// buildKeyARN resolves alias/amicrypt-build in the build account.
func buildKeyARN(b *testing.B, endpoint string) string {
	b.Helper()
	cfg := aws.Config{
		Region:       e2e.BuildRegion,
		Credentials:  credentials.NewStaticCredentialsProvider(e2e.BuildAccessKey, e2e.BuildSecretKey, ""),
		BaseEndpoint: aws.String(endpoint),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := kms.NewFromConfig(cfg).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(BuildKeyAlias)})
	if err != nil {
		b.Fatalf("kms DescribeKey %s: %v", BuildKeyAlias, err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
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
