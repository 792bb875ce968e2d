//go:build e2e

package bench

// B4: the instance-store agent's first-boot and reboot times in the VM.
//
// The measurement is internal/vmtest's BenchmarkAgentBoot (build tag vm):
// a QEMU guest (TCG, no KVM) that is an emulator instance with the
// amicrypt-instance-store role, a blank 64 MiB NVMe instance store, the real
// amicrypt-agent at boot; then a reboot of the same guest on the same disk.
// B4 runs it as its own `go test` (the guest needs the vm tag and its
// assets, `make vm-assets`) and records the agent's time from its start to
// the volume mounted, for each kind of boot.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/e2e"
)

// errNoVM is returned when the VM assets (QEMU, the guest kernel) are
// missing and the VM benchmark skipped: B4 skips too, saying why.
var errNoVM = errors.New("B4 needs the VM assets: run make vm-assets (QEMU, busybox, the guest kernel)")

// instanceStoreTimes is what B4 reports.
type instanceStoreTimes struct {
	Disks     string        // what the instance store was, e.g. "1 × 64 MiB NVMe"
	FirstBoot time.Duration // agent up on a blank disk
	Reboot    time.Duration // agent up on its own LUKS volume
	Note      string
}

// measureInstanceStore runs BenchmarkAgentBoot once and reads its metrics.
func measureInstanceStore(b *testing.B) (instanceStoreTimes, error) {
	b.Helper()
	root, err := e2e.RepoRoot()
	if err != nil {
		return instanceStoreTimes{}, err
	}
	cmd := exec.Command("go", "test", "-tags", "vm", "-count=1", "-run", "^$",
		"-bench", "^BenchmarkAgentBoot$", "-benchtime", "1x", "-timeout", "15m", "./internal/vmtest/")
	cmd.Dir = root
	cmd.Env = os.Environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return instanceStoreTimes{}, fmt.Errorf("BenchmarkAgentBoot: %w\n%s", err, out.String())
	}
	metrics, skipped := parseBenchMetrics(out.String(), "BenchmarkAgentBoot")
	if metrics == nil {
		if skipped {
			return instanceStoreTimes{}, errNoVM
		}
		return instanceStoreTimes{}, fmt.Errorf("BenchmarkAgentBoot printed no result:\n%s", out.String())
	}
	sec := func(unit string) (time.Duration, error) {
		v, ok := metrics[unit]
		if !ok {
			return 0, fmt.Errorf("BenchmarkAgentBoot did not report %s:\n%s", unit, out.String())
		}
		return time.Duration(v * float64(time.Second)), nil
	}
	t := instanceStoreTimes{Disks: "1 × 64 MiB NVMe"}
	if t.FirstBoot, err = sec("first-agent-s"); err != nil {
		return t, err
	}
	if t.Reboot, err = sec("reboot-agent-s"); err != nil {
		return t, err
	}
	t.Note = fmt.Sprintf("QEMU TCG guest; first boot: KMS %.0f ms, luksFormat %.0f ms, open %.0f ms, mkfs %.0f ms; reboot: KMS %.0f ms, open %.0f ms; guest boot %.1f s / %.1f s",
		metrics["first-kms-ms"], metrics["first-format-ms"], metrics["first-open-ms"], metrics["first-mkfs-ms"],
		metrics["reboot-kms-ms"], metrics["reboot-open-ms"], metrics["first-vm-s"], metrics["reboot-vm-s"])
	return t, nil
}

// parseBenchMetrics reads the result line of benchmark name from go test's
// output: "BenchmarkX-2  1  2.69 first-agent-s  131 first-kms-ms ...".
// skipped reports a "--- SKIP: name" instead.
func parseBenchMetrics(output, name string) (metrics map[string]float64, skipped bool) {
	sc := bufio.NewScanner(strings.NewReader(output))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "--- SKIP: "+name) {
			skipped = true
		}
		f := strings.Fields(line)
		if len(f) < 4 || (f[0] != name && !strings.HasPrefix(f[0], name+"-")) {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		metrics = map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			metrics[f[i+1]] = v
		}
	}
	return metrics, skipped
}

// BenchmarkB4InstanceStore reports the agent's boot times.
//
//	make vm-assets
//	go test -tags e2e -run '^$' -bench B4InstanceStore -benchtime 1x ./bench/
func BenchmarkB4InstanceStore(b *testing.B) {
	s := loadSettings(b)
	var times instanceStoreTimes
	for range b.N {
		var err error
		if times, err = measureInstanceStore(b); errors.Is(err, errNoVM) {
			b.Skip(err)
		} else if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(times.FirstBoot.Seconds(), "first-boot-s")
	b.ReportMetric(times.Reboot.Seconds(), "reboot-s")
	row := Row{
		Scenario: ScenarioInstStore, Tool: "amicrypt-agent", Size: times.Disks,
		FirstBootS: times.FirstBoot.Seconds(), RebootS: times.Reboot.Seconds(), Note: times.Note,
	}
	provenance(&row, Cadence{})
	record(b, s, row)
}
