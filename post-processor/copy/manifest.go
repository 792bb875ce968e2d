package copy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Manifest is the manifest_output file: every copy, made or not, with
// the reason of each failure.
type Manifest struct {
	SourceAccount string   `json:"source_account"`
	SourceAMIs    []string `json:"source_amis"`
	// Run and Template identify this run and its template, as its grant
	// names, leases and copy tags carry them.
	Run       string    `json:"run"`
	Template  string    `json:"template"`
	OnFailure string    `json:"on_failure"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	Succeeded int       `json:"succeeded"`
	Failed    int       `json:"failed"`
	Copies    []Copy    `json:"copies"`
	// Reclaimed is what this run took back from dead earlier runs.
	Reclaimed []Record `json:"reclaimed,omitempty"`
	// Cleanup is what this run took back of its own, rolled back, or
	// removed of dead runs' copies, each with its outcome.
	Cleanup []Record `json:"cleanup,omitempty"`
	// Error is the run's error, if any.
	Error string `json:"error,omitempty"`
}

func writeManifest(path string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("manifest_output: %w", err)
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("manifest_output: %w", err)
	}
	return os.Rename(tmp, path)
}

// summaryTable is the final table: one row per copy.
func summaryTable(copies []Copy) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ACCOUNT\tREGION\tAMI\tKEY\tSTATE\tREAD BACK\tDURATION")
	var reasons []string
	for _, c := range copies {
		state := c.State
		if c.Reused {
			state += " (reused)"
		}
		readBack := "-"
		if c.Verified {
			readBack = "yes"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Account, c.Region, orDash(c.ImageID), orDash(c.KeyARN), state, readBack,
			(time.Duration(c.Seconds * float64(time.Second))).Round(time.Millisecond))
		if c.Reason != "" && c.State != "available" {
			reasons = append(reasons, fmt.Sprintf("%s/%s: %s", c.Account, c.Region, c.Reason))
		}
	}
	w.Flush()
	for _, r := range reasons {
		b.WriteString(r + "\n")
	}
	return b.String()
}
