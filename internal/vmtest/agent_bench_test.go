//go:build vm

package vmtest_test

import (
	"os"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/vmtest"
)

// BenchmarkAgentBoot measures amicrypt-agent at boot in a real guest, as an
// instance of the emulator: a first boot (a blank 64 MiB disk: new data key,
// luksFormat, open, mkfs, mount) and a reboot (unwrap, open, mount) per
// iteration. It reports, per boot kind, the agent's run from its start to
// its exit with the volume mounted (s), the split its log line gives
// (kms-ms, format-ms, open-ms, mkfs-ms, mount-ms), the guest boot around it
// (vm-s), and the agent binary's size as shipped (agent-bytes). The guest
// runs under QEMU TCG, with no KVM: compare runs with each other, not with
// EC2. Numbers are reported, never asserted. Run it with
//
//	make vm-assets
//	go test -tags vm -run '^$' -bench '^BenchmarkAgentBoot$' -benchtime 3x ./internal/vmtest/
func BenchmarkAgentBoot(b *testing.B) {
	s := newSuite(b)
	bin, err := os.Stat(s.agent)
	if err != nil {
		b.Fatal(err)
	}
	type sums struct {
		n                                    int
		agent, vm                            float64
		kms, format, open, mkfs, mount, line float64
	}
	var first, reboot sums
	add := func(b *testing.B, to *sums, r *agentRun, outcome string) {
		b.Helper()
		if r.rc != 0 {
			b.Fatalf("agent exit %d; console:\n%s", r.rc, r.res.Tail(40))
		}
		line := r.line(b, "/dev/nvme0n1")
		if line["outcome"] != outcome {
			b.Fatalf("outcome %v, want %s: %v", line["outcome"], outcome, line)
		}
		ms := func(k string) float64 { v, _ := line[k].(float64); return v }
		to.n++
		to.agent += r.seconds
		to.vm += r.res.Duration.Seconds()
		to.kms += ms("kms_ms")
		to.format += ms("format_ms")
		to.open += ms("open_ms")
		to.mkfs += ms("mkfs_ms")
		to.mount += ms("mount_ms")
		to.line += ms("duration_ms")
	}
	for b.Loop() {
		disk := vmtest.NewDisk(b, diskSize)
		add(b, &first, s.boot(b, agentBoot{name: "bench-first-boot", inst: s.a, disks: []vmtest.Disk{disk}}), agent.OutcomeFormatted)
		add(b, &reboot, s.boot(b, agentBoot{name: "bench-reboot", inst: s.a, disks: []vmtest.Disk{disk}}), agent.OutcomeReopened)
	}
	report := func(prefix string, x sums) {
		n := float64(x.n)
		b.ReportMetric(x.agent/n, prefix+"-agent-s")
		b.ReportMetric(x.line/n, prefix+"-volume-ms")
		b.ReportMetric(x.kms/n, prefix+"-kms-ms")
		b.ReportMetric(x.open/n, prefix+"-open-ms")
		b.ReportMetric(x.mount/n, prefix+"-mount-ms")
		b.ReportMetric(x.vm/n, prefix+"-vm-s")
	}
	report("first", first)
	b.ReportMetric(first.format/float64(first.n), "first-format-ms")
	b.ReportMetric(first.mkfs/float64(first.n), "first-mkfs-ms")
	report("reboot", reboot)
	b.ReportMetric(float64(bin.Size()), "agent-bytes")
	b.ReportMetric(0, "ns/op")
}
