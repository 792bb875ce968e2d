package bench

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// CallStats summarises audit entries.
type CallStats struct {
	Total     int
	ByAction  map[string]int // "service:Action"
	Errors    int            // calls answered with an error other than a DryRun answer
	ErrorsBy  map[string]int // "service:Action code"
	DryRun    int            // DryRun probes: calls answered DryRunOperation (EC2) or DryRunOperationException (KMS)
	DryRunBy  map[string]int // "service:Action"
	Throttled int            // answered with a throttling error
	First     time.Time      // emulator clock of the first and last call
	Last      time.Time
}

// isThrottle reports the throttling codes of EC2, KMS and STS.
func isThrottle(code string) bool {
	switch code {
	case "RequestLimitExceeded", "ThrottlingException", "Throttling":
		return true
	}
	return false
}

// isDryRunAnswer reports the answers of a call made with DryRun: the call
// would have been allowed, and nothing was done (docs/aws-behaviour.md 1.5).
func isDryRunAnswer(code string) bool {
	return code == "DryRunOperation" || code == "DryRunOperationException"
}

// Calls summarises entries.
func Calls(entries []awsemu.AuditEntry) CallStats {
	s := CallStats{ByAction: map[string]int{}, ErrorsBy: map[string]int{}, DryRunBy: map[string]int{}}
	for i, e := range entries {
		s.Total++
		s.ByAction[e.Service+":"+e.Action]++
		switch {
		case isDryRunAnswer(e.Outcome):
			s.DryRun++
			s.DryRunBy[e.Service+":"+e.Action]++
		case e.Outcome != "ok":
			s.Errors++
			s.ErrorsBy[e.Service+":"+e.Action+" "+e.Outcome]++
		}
		if isThrottle(e.Outcome) {
			s.Throttled++
		}
		if i == 0 || e.Time.Before(s.First) {
			s.First = e.Time
		}
		if e.Time.After(s.Last) {
			s.Last = e.Time
		}
	}
	return s
}

// Span is the emulator-clock time from the first call to the last.
func (s CallStats) Span() time.Duration {
	if s.Total == 0 {
		return 0
	}
	return s.Last.Sub(s.First)
}

// Mutating counts the calls that are not Describe*, Get* or List* and not
// DryRun probes: the calls that may change something. Their number does not
// depend on polling.
func (s CallStats) Mutating() int {
	n := 0
	for k, c := range s.ByAction {
		_, action, _ := strings.Cut(k, ":")
		if !awsemu.IsDescribe(action) {
			n += c - s.DryRunBy[k]
		}
	}
	return n
}

// PollActions are the actions the plugins poll with (the image, snapshot
// and instance waiters): cadence normalisation rescales these.
const PollActions = "ec2:DescribeImages, ec2:DescribeSnapshots, ec2:DescribeInstances"

// Cadence says how a run's polling compares with the plugin's own
// real-time cadence: the plugin polls every WallDelay of wall time while an
// emulated second lasts Scale wall seconds, so it polls every WallDelay ÷
// Scale of emulated time; on AWS it polls every RealTime.
type Cadence struct {
	WallDelay time.Duration
	Scale     float64
	RealTime  time.Duration
}

// Emulated is the poll interval in emulated time.
func (c Cadence) Emulated() time.Duration { return time.Duration(float64(c.WallDelay) / c.Scale) }

// Factor is by how much the run polled less often than at real-time
// cadence: 1 when the harness scaled the poll delay with the time scale.
func (c Cadence) Factor() float64 {
	if c.RealTime <= 0 || c.Scale <= 0 {
		return 1
	}
	return float64(c.Emulated()) / float64(c.RealTime)
}

// RealTimeCalls is the number of calls a run would make at real-time
// cadence: a wait of emulated length T makes about T ÷ interval polls, so
// the calls of the poll actions scale with Factor and the others stay. It
// is exact when Factor is 1, which is how the harness runs by default.
func (c Cadence) RealTimeCalls(byAction map[string]int) float64 {
	f := c.Factor()
	total := 0.0
	for k, n := range byAction {
		if isPollAction(k) {
			total += float64(n) * f
		} else {
			total += float64(n)
		}
	}
	return total
}

func isPollAction(k string) bool {
	switch k {
	case "ec2:DescribeImages", "ec2:DescribeSnapshots", "ec2:DescribeInstances":
		return true
	}
	return false
}

// EmuImage and EmuSnapshot are the parts of the emulator's state
// (GET /_emu/state) the benchmarks read.
type EmuImage struct {
	ID        string       `json:"id"`
	Owner     string       `json:"owner"`
	Region    string       `json:"region"`
	State     string       `json:"state"`
	Action    string       `json:"action"`
	Principal string       `json:"principal"`
	Created   time.Time    `json:"created"`
	ReadyAt   time.Time    `json:"ready_at"`
	Mappings  []EmuMapping `json:"mappings"`
}

// EmuMapping is a block device of an image.
type EmuMapping struct {
	SnapshotID string `json:"snapshot_id"`
	SizeGiB    int    `json:"size_gib"`
}

type EmuSnapshot struct {
	ID           string    `json:"id"`
	Owner        string    `json:"owner"`
	Region       string    `json:"region"`
	SizeGiB      int       `json:"size_gib"`
	Started      time.Time `json:"started"`
	DoneAt       time.Time `json:"done_at"`
	State        string    `json:"state"`
	SourceRegion string    `json:"source_region"`
	Copy         bool      `json:"copy"`
	ImageCopy    string    `json:"image_copy"`
}

// EmuState is the emulator's EC2 images and snapshots by ID.
type EmuState struct {
	Images    map[string]EmuImage
	Snapshots map[string]EmuSnapshot
}

// ParseState reads GET /_emu/state. It takes both layouts the emulator has
// used: EC2 resources at the top of "ec2", and one store per account-region
// under "ec2.stores[].state".
func ParseState(data []byte) (EmuState, error) {
	type resources struct {
		Images    map[string]EmuImage    `json:"images"`
		Snapshots map[string]EmuSnapshot `json:"snapshots"`
	}
	var doc struct {
		EC2 struct {
			resources
			Stores []struct {
				State resources `json:"state"`
			} `json:"stores"`
		} `json:"ec2"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return EmuState{}, fmt.Errorf("the emulator state: %w", err)
	}
	st := EmuState{Images: map[string]EmuImage{}, Snapshots: map[string]EmuSnapshot{}}
	add := func(r resources) {
		for id, img := range r.Images {
			st.Images[id] = img
		}
		for id, s := range r.Snapshots {
			st.Snapshots[id] = s
		}
	}
	add(doc.EC2.resources)
	for _, s := range doc.EC2.Stores {
		add(s.State)
	}
	if len(st.Images) == 0 && len(st.Snapshots) == 0 {
		return st, fmt.Errorf("the emulator state has no EC2 images or snapshots in a layout this benchmark knows")
	}
	return st, nil
}

// AvailableAt is when a copied image became available on the emulator
// clock: its registration and every snapshot behind it done. ok is false
// for an image that failed or whose snapshots are gone.
func (st EmuState) AvailableAt(img EmuImage) (time.Time, bool) {
	if img.State == "failed" {
		return time.Time{}, false
	}
	at := img.ReadyAt
	for _, m := range img.Mappings {
		if m.SnapshotID == "" {
			continue
		}
		s, ok := st.Snapshots[m.SnapshotID]
		if !ok {
			return time.Time{}, false
		}
		if s.DoneAt.After(at) {
			at = s.DoneAt
		}
	}
	return at, true
}

// CopiedData is the snapshot data the copies of a run wrote.
type CopiedData struct {
	GiB        int // logical size of every snapshot a copy made
	FullCopies int // of those, copies charged for the whole volume
	Unknown    int // copies whose snapshot is gone from the state
}

// Copied reads, from the successful CopyImage and CopySnapshot calls of
// entries, the snapshots they made ("snapshotId" or "snapshotId.DEVICE"
// notes) and sizes them from the state. A copy is full when its duration
// is nearer the model's full-size duration than the incremental one (a
// tenth of the data), which is how the emulator charges a repeat copy.
func Copied(entries []awsemu.AuditEntry, st EmuState, model Model, scale float64) CopiedData {
	var d CopiedData
	spec := model.Latency[awsemu.LatencySnapshotCopy]
	for _, e := range entries {
		if e.Outcome != "ok" || (e.Action != "CopyImage" && e.Action != "CopySnapshot") {
			continue
		}
		for k, id := range e.Notes {
			if k != "snapshotId" && !strings.HasPrefix(k, "snapshotId.") {
				continue
			}
			s, ok := st.Snapshots[id]
			if !ok {
				d.Unknown++
				continue
			}
			d.GiB += s.SizeGiB
			factor := 1.0
			if s.SourceRegion != "" && s.SourceRegion != s.Region {
				factor = model.CrossRegionFactor
			}
			charge := func(gib int) float64 {
				return (float64(spec.Base) + float64(spec.PerGiB)*float64(gib)) * factor * scale
			}
			took := float64(s.DoneAt.Sub(s.Started))
			full, incremental := charge(s.SizeGiB), charge(s.SizeGiB/10)
			if abs(took-full) <= abs(took-incremental) {
				d.FullCopies++
			}
		}
	}
	return d
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// Lifetime is how long, in emulated time, image id existed: from the call
// that made it to its DeregisterImage, else to the last entry.
func Lifetime(entries []awsemu.AuditEntry, id string, scale float64) time.Duration {
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
	if from.IsZero() || len(entries) == 0 {
		return 0
	}
	if to.IsZero() {
		to = entries[len(entries)-1].Time
	}
	return time.Duration(float64(to.Sub(from)) / scale)
}

// SplitByPrincipal returns the entries made by principal (the caller's IAM
// identity or principal ARN) and the others.
func SplitByPrincipal(entries []awsemu.AuditEntry, principal string) (by, others []awsemu.AuditEntry) {
	for _, e := range entries {
		if e.Principal == principal || e.PrincipalIAM == principal {
			by = append(by, e)
		} else {
			others = append(others, e)
		}
	}
	return by, others
}

// PerCopy divides every count by copies.
func PerCopy(byAction map[string]int, copies int) map[string]float64 {
	out := map[string]float64{}
	if copies <= 0 {
		return out
	}
	for k, n := range byAction {
		out[k] = float64(n) / float64(copies)
	}
	return out
}

// SortedKeys returns the keys of m in order.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Emulated converts an emulator-clock duration into emulated time.
func Emulated(d time.Duration, scale float64) time.Duration {
	return time.Duration(float64(d) / scale)
}

// Merge adds the images and snapshots of other that st has not seen, so a
// state sampled during a run keeps the resources the run deleted before it
// ended (their ready times never change once made).
func (st EmuState) Merge(other EmuState) {
	for id, img := range other.Images {
		if _, ok := st.Images[id]; !ok {
			st.Images[id] = img
		}
	}
	for id, s := range other.Snapshots {
		if _, ok := st.Snapshots[id]; !ok {
			st.Snapshots[id] = s
		}
	}
}

// Lag is how late a run saw the resources it waited for.
type Lag struct {
	Total time.Duration // emulated
	Waits int           // resources polled before they were ready
}

// PollLag measures, for every image and snapshot of st that entries polled
// (a Describe* naming it) before it was ready, how long after it became
// ready the first Describe* naming it came: the time the run lost to its
// poll interval. A run that saw every resource the moment it was ready has
// no lag; one that polls every p of emulated time loses up to p per wait.
func PollLag(entries []awsemu.AuditEntry, st EmuState, scale float64) Lag {
	ready := map[string]time.Time{}
	for id, img := range st.Images {
		if at, ok := st.AvailableAt(img); ok {
			ready[id] = at
		}
	}
	for id, s := range st.Snapshots {
		if s.State != "error" && !s.DoneAt.IsZero() {
			ready[id] = s.DoneAt
		}
	}
	type wait struct {
		polledBefore bool
		seen         time.Time
	}
	waits := map[string]*wait{}
	for _, e := range entries {
		if !awsemu.IsDescribe(e.Action) || e.Outcome != "ok" {
			continue
		}
		for _, id := range namedResources(e.Params) {
			at, ok := ready[id]
			if !ok {
				continue
			}
			w := waits[id]
			if w == nil {
				w = &wait{}
				waits[id] = w
			}
			switch {
			case e.Time.Before(at):
				w.polledBefore = true
			case w.seen.IsZero():
				w.seen = e.Time
			}
		}
	}
	var lag Lag
	for id, w := range waits {
		if w.polledBefore && !w.seen.IsZero() {
			lag.Total += Emulated(w.seen.Sub(ready[id]), scale)
			lag.Waits++
		}
	}
	return lag
}

// namedResources are the image and snapshot IDs a Describe* call names
// (ImageId.N, SnapshotId.N; the audit joins repeated values with commas).
func namedResources(params map[string]string) []string {
	var ids []string
	for k, v := range params {
		if strings.HasPrefix(k, "ImageId") || strings.HasPrefix(k, "SnapshotId") {
			ids = append(ids, strings.Split(v, ",")...)
		}
	}
	return ids
}
