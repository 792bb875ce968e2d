package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ResultsSchema is the version of results.json's layout.
const ResultsSchema = 1

// Scenario names.
const (
	ScenarioBuild     = "B1"
	ScenarioFanout    = "B2"
	ScenarioThrottled = "B3"
	ScenarioInstStore = "B4"
)

// Row is one scenario, tool and size: what results.json holds, one per
// line of the tables. Durations are seconds; "emulated" ones are on the
// AWS clock the emulator models (wall time ÷ time scale).
type Row struct {
	Scenario string `json:"scenario"`
	Tool     string `json:"tool"`
	Size     string `json:"size"`

	VolumeGiB int    `json:"volume_gib,omitempty"`
	Accounts  int    `json:"accounts,omitempty"`
	Regions   int    `json:"regions,omitempty"`
	Copies    int    `json:"copies,omitempty"`
	Throttle  string `json:"throttle,omitempty"`

	TimeScale     float64 `json:"time_scale,omitempty"`
	PollWallS     float64 `json:"poll_delay_wall_s,omitempty"`
	PollEmulatedS float64 `json:"poll_delay_emulated_s,omitempty"`
	CadenceFactor float64 `json:"cadence_factor,omitempty"`
	CallLatencyS  float64 `json:"call_latency_emulated_s,omitempty"` // each API call held this long (emulator -call-latency)

	WallS              float64 `json:"wall_s,omitempty"`
	MakespanS          float64 `json:"makespan_emulated_s,omitempty"`
	PollLagS           float64 `json:"poll_lag_emulated_s,omitempty"`
	PollWaits          int     `json:"poll_waits,omitempty"`
	LowerBoundS        float64 `json:"lower_bound_s,omitempty"`
	RatioToBound       float64 `json:"makespan_over_bound,omitempty"`
	LowerBoundHow      string  `json:"lower_bound_how,omitempty"`
	FirstCopyCallS     float64 `json:"first_copy_call_emulated_s,omitempty"`
	FirstCopyS         float64 `json:"time_to_first_copy_emulated_s,omitempty"`
	LastCopyS          float64 `json:"last_copy_available_emulated_s,omitempty"`
	ReferenceMakespanS float64 `json:"unthrottled_makespan_emulated_s,omitempty"`
	RatioToReference   float64 `json:"ratio_to_unthrottled,omitempty"`

	Calls                int                `json:"calls,omitempty"`
	MutatingCalls        int                `json:"mutating_calls,omitempty"`
	Errors               int                `json:"errors"` // not counting DryRun answers
	ErrorsBy             map[string]int     `json:"errors_by_action_and_code,omitempty"`
	DryRunProbes         int                `json:"dry_run_probes"`
	DryRunBy             map[string]int     `json:"dry_run_probes_by_action,omitempty"`
	Throttled            int                `json:"throttled"`
	CallsByAction        map[string]int     `json:"calls_by_action,omitempty"`
	CallsPerCopy         float64            `json:"calls_per_copy,omitempty"`
	CallsPerCopyRealTime float64            `json:"calls_per_copy_real_time,omitempty"`
	CallsPerCopyByAction map[string]float64 `json:"calls_per_copy_by_action,omitempty"`
	GiBCopied            int                `json:"gib_copied"`
	FullCopies           int                `json:"full_data_copies"`
	UnknownCopies        int                `json:"copies_of_unknown_size,omitempty"`
	UnencryptedAMIs      int                `json:"unencrypted_amis_ever"`
	UnencryptedLifetimeS float64            `json:"unencrypted_ami_lifetime_emulated_s,omitempty"`
	Findings             []string           `json:"checker_findings,omitempty"`
	PluginPeakRSSBytes   int64              `json:"plugin_peak_rss_bytes,omitempty"`
	PluginCPUS           float64            `json:"plugin_cpu_s,omitempty"`
	EmulatorCPUS         float64            `json:"emulator_cpu_s,omitempty"`
	PluginProcesses      int                `json:"plugin_processes,omitempty"`
	FirstBootS           float64            `json:"first_boot_s,omitempty"`
	RebootS              float64            `json:"reboot_s,omitempty"`
	MeasuredAt           time.Time          `json:"measured_at"`
	Commit               string             `json:"commit,omitempty"`
	GoVersion            string             `json:"go_version,omitempty"`
	CPUs                 int                `json:"cpus,omitempty"`
	Note                 string             `json:"note,omitempty"`
}

// Key identifies a row: a new measurement replaces the row of the same key.
func (r Row) Key() string { return r.Scenario + "|" + r.Tool + "|" + r.Size }

// Results is results.json.
type Results struct {
	Schema int   `json:"schema"`
	Rows   []Row `json:"rows"`
}

// LoadResults reads path; a missing file is empty results.
func LoadResults(path string) (*Results, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Results{Schema: ResultsSchema}, nil
	}
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Schema != ResultsSchema {
		return nil, fmt.Errorf("%s: schema %d, this benchmark writes %d; move the file away to start afresh", path, r.Schema, ResultsSchema)
	}
	return &r, nil
}

// Put adds row, replacing the row of the same key.
func (r *Results) Put(row Row) {
	for i := range r.Rows {
		if r.Rows[i].Key() == row.Key() {
			r.Rows[i] = row
			return
		}
	}
	r.Rows = append(r.Rows, row)
	r.sort()
}

func (r *Results) sort() {
	sort.SliceStable(r.Rows, func(i, j int) bool {
		a, b := r.Rows[i], r.Rows[j]
		if a.Scenario != b.Scenario {
			return a.Scenario < b.Scenario
		}
		if a.Tool != b.Tool {
			return a.Tool < b.Tool
		}
		if a.VolumeGiB != b.VolumeGiB {
			return a.VolumeGiB < b.VolumeGiB
		}
		if a.Copies != b.Copies {
			return a.Copies < b.Copies
		}
		return a.Size < b.Size
	})
}

// Save writes path (indented JSON).
func (r *Results) Save(path string) error {
	r.Schema = ResultsSchema
	r.sort()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// Scenario returns the rows of one scenario.
func (r *Results) Scenario(name string) []Row {
	var out []Row
	for _, row := range r.Rows {
		if row.Scenario == name {
			out = append(out, row)
		}
	}
	return out
}

// Markdown renders every scenario's tables.
func (r *Results) Markdown() string {
	var sb strings.Builder
	if rows := r.Scenario(ScenarioBuild); len(rows) > 0 {
		sb.WriteString("### B1: build one encrypted AMI (amazon-ebs `encrypt_boot` vs amicrypt-ebs)\n\n")
		buildTable(&sb, rows)
	}
	if rows := r.Scenario(ScenarioFanout); len(rows) > 0 {
		sb.WriteString("### B2: fan-out with amicrypt-copy's defaults\n\n")
		fanoutTable(&sb, rows)
	}
	if rows := r.Scenario(ScenarioThrottled); len(rows) > 0 {
		sb.WriteString("### B3: fan-out under request-rate throttling\n\n")
		throttledTable(&sb, rows)
	}
	if rows := r.Scenario(ScenarioInstStore); len(rows) > 0 {
		sb.WriteString("### B4: instance store, agent boot times in the VM\n\n")
		instanceStoreTable(&sb, rows)
	}
	if sb.Len() == 0 {
		return "No results yet.\n"
	}
	conditions(&sb, r.Rows)
	return sb.String()
}

// table writes a Markdown table; align is "l" or "r" per column.
func table(sb *strings.Builder, header []string, align string, rows [][]string) {
	sb.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for i := range header {
		if i < len(align) && align[i] == 'r' {
			sb.WriteString("---:|")
		} else {
			sb.WriteString("---|")
		}
	}
	sb.WriteString("\n")
	for _, row := range rows {
		sb.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	sb.WriteString("\n")
}

func buildTable(sb *strings.Builder, rows []Row) {
	var lines [][]string
	for _, r := range rows {
		unenc := "no"
		if r.UnencryptedAMIs > 0 {
			unenc = fmt.Sprintf("**yes**, %d (%s)", r.UnencryptedAMIs, dur(r.UnencryptedLifetimeS))
		}
		lines = append(lines, []string{
			r.Tool, r.Size, dur(r.WallS), dur(r.MakespanS), fmt.Sprintf("%s (%d waits)", dur(r.PollLagS), r.PollWaits), dur(r.MakespanS - r.PollLagS),
			strconv.Itoa(r.GiBCopied), strconv.Itoa(r.FullCopies),
			unenc, strconv.Itoa(r.Calls), strconv.Itoa(r.MutatingCalls), strconv.Itoa(r.DryRunProbes), strconv.Itoa(r.Errors),
		})
	}
	table(sb, []string{"tool", "volume", "wall", "emulated makespan", "poll lag", "makespan − poll lag", "GiB copied", "full-data copies", "unencrypted AMI ever existed (emulated lifetime)", "calls", "mutating calls", "DryRun probes", "errors"}, "llrrrrrrlrrrr", lines)
	sb.WriteString("Calls by action:\n\n")
	byAction(sb, rows, func(r Row) string { return r.Tool + ", " + r.Size }, func(r Row, k string) string {
		if n := r.CallsByAction[k]; n > 0 {
			return strconv.Itoa(n)
		}
		return "·"
	})
}

func fanoutTable(sb *strings.Builder, rows []Row) {
	var lines [][]string
	for _, r := range rows {
		lines = append(lines, []string{
			r.Size, strconv.Itoa(r.Copies), dur(r.WallS), dur(r.MakespanS), dur(r.LowerBoundS), ratio(r.RatioToBound),
			num(r.CallsPerCopyRealTime), dur(r.FirstCopyCallS), dur(r.FirstCopyS), mib(r.PluginPeakRSSBytes), secs(r.PluginCPUS), secs(r.EmulatorCPUS),
			strconv.Itoa(r.DryRunProbes), strconv.Itoa(r.Errors), strconv.Itoa(r.Throttled),
		})
	}
	table(sb, []string{"accounts × regions", "copies", "wall", "emulated makespan", "lower bound", "makespan ÷ bound", "calls per copy (real-time cadence)", "first CopyImage after", "time to first copy", "plugin peak RSS", "plugin CPU", "emulator CPU", "DryRun probes", "errors", "throttled"}, "lrrrrrrrrrrrrrr", lines)
	sb.WriteString("Calls per copy by action:\n\n")
	byAction(sb, rows, func(r Row) string { return r.Size }, func(r Row, k string) string {
		if v := r.CallsPerCopyByAction[k]; v > 0 {
			return num(v)
		}
		return "·"
	})
}

func throttledTable(sb *strings.Builder, rows []Row) {
	var lines [][]string
	for _, r := range rows {
		lines = append(lines, []string{
			r.Size, r.Throttle, dur(r.WallS), dur(r.MakespanS), dur(r.ReferenceMakespanS), ratio(r.RatioToReference),
			ratio(r.RatioToBound), strconv.Itoa(r.Throttled), strconv.Itoa(r.DryRunProbes), strconv.Itoa(r.Errors), num(r.CallsPerCopyRealTime),
		})
	}
	table(sb, []string{"accounts × regions", "limits per account-region", "wall", "emulated makespan", "unthrottled makespan", "ratio to unthrottled", "makespan ÷ bound", "calls throttled", "DryRun probes", "errors", "calls per copy (real-time cadence)"}, "llrrrrrrrrr", lines)
}

func instanceStoreTable(sb *strings.Builder, rows []Row) {
	var lines [][]string
	for _, r := range rows {
		lines = append(lines, []string{r.Tool, r.Size, dur(r.FirstBootS), dur(r.RebootS), r.Note})
	}
	table(sb, []string{"tool", "instance store", "first boot", "reboot", "note"}, "llrrl", lines)
}

// byAction writes one row per action and one column per result row.
func byAction(sb *strings.Builder, rows []Row, column func(Row) string, cell func(Row, string) string) {
	actions := map[string]bool{}
	for _, r := range rows {
		for k := range r.CallsByAction {
			actions[k] = true
		}
		for k := range r.CallsPerCopyByAction {
			actions[k] = true
		}
	}
	header := []string{"action"}
	align := "l"
	for _, r := range rows {
		header = append(header, column(r))
		align += "r"
	}
	var lines [][]string
	for _, k := range SortedKeys(actions) {
		line := []string{"`" + k + "`"}
		for _, r := range rows {
			line = append(line, cell(r, k))
		}
		lines = append(lines, line)
	}
	table(sb, header, align, lines)
}

// conditions lists the time scales, poll cadences and provenance of rows.
func conditions(sb *strings.Builder, rows []Row) {
	type cond struct{ scenario, what string }
	seen := map[cond]bool{}
	var lines []string
	for _, r := range rows {
		what := fmt.Sprintf("time scale %.4g, polling every %gs of wall time = %gs emulated (cadence factor %.3g)", r.TimeScale, r.PollWallS, r.PollEmulatedS, r.CadenceFactor)
		if r.CallLatencyS > 0 {
			what += fmt.Sprintf(", every API call held %gs emulated before it is served", r.CallLatencyS)
		}
		if r.Scenario == ScenarioInstStore {
			what = "real time: a QEMU guest (TCG, no KVM) as an instance of the in-process emulator, the agent timed from its start to the volume mounted"
		}
		what += fmt.Sprintf("; %s, %s, %d CPUs, commit %s", r.MeasuredAt.UTC().Format("2006-01-02"), r.GoVersion, r.CPUs, orDash(r.Commit))
		c := cond{r.Scenario, what}
		if !seen[c] {
			seen[c] = true
			lines = append(lines, "- "+r.Scenario+": "+what)
		}
	}
	sb.WriteString("Conditions:\n\n" + strings.Join(lines, "\n") + "\n")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// dur renders seconds as a short duration.
func dur(s float64) string {
	if s == 0 {
		return "–"
	}
	d := time.Duration(s * float64(time.Second))
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// ratio shows three decimals: the fan-out target is 1.05×, and 1.054
// is not within it.
func ratio(x float64) string {
	if x == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f×", x)
}

func num(x float64) string {
	if x == 0 {
		return "–"
	}
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 1:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", x), "0"), ".")
	default:
		return fmt.Sprintf("%.2g", x) // 0.004, not 0
	}
}

func secs(x float64) string {
	if x == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2fs", x)
}

func mib(b int64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}
