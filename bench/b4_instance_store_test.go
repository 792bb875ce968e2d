//go:build e2e

package bench

// B4: the instance-store agent's first-boot and reboot times in the VM.
//
// This is a hook: the VM scenario (internal/vmtest, build tag vm, QEMU with
// the agent in the guest) is the instance-store work's to wire in. To do
// it, make measureInstanceStore boot a guest with a blank NVMe instance
// store, time the agent's `up` from unit start to done (first boot: blank
// disk → LUKS format under a KMS-wrapped key), reboot the same guest and time
// `up` again (reboot: unwrap and open), and return both. The row, the table
// and results.json already carry first_boot_s and reboot_s; until the hook
// is wired the benchmark is skipped with the reason below, and records
// nothing.

import (
	"errors"
	"testing"
	"time"
)

// errInstanceStoreNotWired is what the hook returns until it is wired.
var errInstanceStoreNotWired = errors.New("B4 is not wired yet: measureInstanceStore needs the instance-store VM scenario (internal/vmtest with the agent in the guest); see bench/b4_instance_store_test.go")

// instanceStoreTimes is what B4 reports.
type instanceStoreTimes struct {
	Disks     string        // what the instance store was, e.g. "1 × 8 GiB NVMe"
	FirstBoot time.Duration // agent up on a blank disk
	Reboot    time.Duration // agent up on its own LUKS volume
	Note      string
}

// measureInstanceStore is the hook; see the file comment.
func measureInstanceStore(b *testing.B) (instanceStoreTimes, error) {
	b.Helper()
	return instanceStoreTimes{}, errInstanceStoreNotWired
}

// BenchmarkB4InstanceStore reports the agent's boot times.
//
//	go test -tags e2e -run '^$' -bench B4InstanceStore -benchtime 1x ./bench/
func BenchmarkB4InstanceStore(b *testing.B) {
	s := loadSettings(b)
	var times instanceStoreTimes
	for range b.N {
		var err error
		if times, err = measureInstanceStore(b); errors.Is(err, errInstanceStoreNotWired) {
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
