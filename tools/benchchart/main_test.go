package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "results.json")
	results := `{"schema": 1, "rows": [
	  {"scenario": "B1", "tool": "amazon-ebs", "size": "8 GiB"},
	  {"scenario": "B2", "size": "100x5", "copies": 500, "makespan_over_bound": 45.2, "calls_per_copy_real_time": 38.1},
	  {"scenario": "B2", "size": "5x2", "copies": 10, "makespan_over_bound": 1.03, "calls_per_copy_real_time": 36.1}
	]}`
	if err := os.WriteFile(in, []byte(results), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(in, dir); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "fanout.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("fanout.png: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 500 {
		t.Errorf("fanout.png is %v", b)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "fanout.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "100x5", "5x2", "target 20"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("fanout.svg lacks %q", want)
		}
	}
}

func TestRunWithoutFanoutRows(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "results.json")
	if err := os.WriteFile(in, []byte(`{"schema": 1, "rows": [{"scenario": "B1"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(in, dir); err == nil || !strings.Contains(err.Error(), "no B2") {
		t.Errorf("err = %v, want one saying there is no B2 row", err)
	}
}
