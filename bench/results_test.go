package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestResultsPutSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.json")
	r, err := LoadResults(path)
	if err != nil {
		t.Fatalf("a missing file: %v", err)
	}
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r.Put(Row{Scenario: ScenarioFanout, Tool: "amicrypt-copy", Size: "20x4", Copies: 80, MakespanS: 5000, MeasuredAt: at})
	r.Put(Row{Scenario: ScenarioFanout, Tool: "amicrypt-copy", Size: "5x2", Copies: 10, MakespanS: 700, MeasuredAt: at})
	r.Put(Row{Scenario: ScenarioBuild, Tool: "amazon-ebs", Size: "8 GiB", VolumeGiB: 8, MeasuredAt: at})
	// A new measurement of 5x2 replaces the old one.
	r.Put(Row{Scenario: ScenarioFanout, Tool: "amicrypt-copy", Size: "5x2", Copies: 10, MakespanS: 650, MeasuredAt: at})
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadResults(path)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, row := range back.Rows {
		keys = append(keys, row.Size)
	}
	if got := strings.Join(keys, ","); got != "8 GiB,5x2,20x4" {
		t.Errorf("rows %s, want B1 first, then B2 by copies", got)
	}
	if back.Rows[1].MakespanS != 650 {
		t.Errorf("5x2 makespan %g, want the newer 650", back.Rows[1].MakespanS)
	}

	if err := os.WriteFile(path, []byte(`{"schema": 99, "rows": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadResults(path); err == nil || !strings.Contains(err.Error(), "schema 99") {
		t.Errorf("another schema: %v", err)
	}
}

func TestResultsMarkdown(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := &Results{}
	if got := r.Markdown(); !strings.Contains(got, "No results") {
		t.Errorf("empty results: %q", got)
	}
	r.Put(Row{Scenario: ScenarioBuild, Tool: "amazon-ebs", Size: "8 GiB", VolumeGiB: 8, WallS: 30, MakespanS: 450,
		PollLagS: 200, PollWaits: 2, GiBCopied: 8, FullCopies: 1, UnencryptedAMIs: 1, UnencryptedLifetimeS: 400,
		CallsByAction: map[string]int{"ec2:CreateImage": 1, "ec2:CopyImage": 1}, TimeScale: 1.0 / 15, PollWallS: 1, PollEmulatedS: 15, CadenceFactor: 1, MeasuredAt: at})
	r.Put(Row{Scenario: ScenarioFanout, Tool: "amicrypt-copy", Size: "5x2", Copies: 10, MakespanS: 700, LowerBoundS: 615, RatioToBound: 700.0 / 615,
		CallsPerCopyRealTime: 12.345, FirstCopyCallS: 7.5, CallsPerCopyByAction: map[string]float64{"ec2:CopyImage": 1, "kms:ListGrants": 0.004}, CallsByAction: map[string]int{"ec2:CopyImage": 10},
		PluginPeakRSSBytes: 64 << 20, TimeScale: 0.01, PollWallS: 0.15, PollEmulatedS: 15, CadenceFactor: 1, MeasuredAt: at})
	md := r.Markdown()
	for _, want := range []string{
		"### B1", "| amazon-ebs | 8 GiB | 30s | 7m30s | 3m20s (2 waits) | 4m10s | 8 | 1 | **yes**, 1 (6m40s) |",
		"`ec2:CreateImage` | 1 |",
		"### B2", "| 5x2 | 10 |", "| 1.138× |", "| 12.35 | 7.5s |", "| 64 MiB |", "`kms:ListGrants` | 0.004 |",
		"- B1: time scale 0.06667, polling every 1s of wall time = 15s emulated (cadence factor 1)",
		"- B2: time scale 0.01, polling every 0.15s of wall time = 15s emulated (cadence factor 1)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
