//go:build e2e

package bench

import "testing"

func TestParseBenchMetrics(t *testing.T) {
	out := "goos: linux\nBenchmarkAgentBoot-2   \t       1\t2.69 first-agent-s\t 131.0 first-kms-ms\t 0 ns/op\nPASS\n"
	m, skipped := parseBenchMetrics(out, "BenchmarkAgentBoot")
	if skipped || m["first-agent-s"] != 2.69 || m["first-kms-ms"] != 131 || len(m) != 3 {
		t.Fatalf("metrics %v skipped %t", m, skipped)
	}
	m, skipped = parseBenchMetrics("--- SKIP: BenchmarkAgentBoot\n    no qemu\nPASS\n", "BenchmarkAgentBoot")
	if m != nil || !skipped {
		t.Fatalf("skip: metrics %v skipped %t", m, skipped)
	}
	if m, _ := parseBenchMetrics("BenchmarkAgentBootOther-2 1 5 x-s\n", "BenchmarkAgentBoot"); m != nil {
		t.Fatalf("another benchmark's line read: %v", m)
	}
}
