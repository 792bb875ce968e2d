package bench

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// Model is what the emulator charges for the work of a fan-out: its latency
// model (emulated time), its cross-region factor and its copy quotas per
// destination account-region. It is the input of the lower bound.
type Model struct {
	Latency           map[string]awsemu.LatencySpec
	CrossRegionFactor float64
	ImageCopyQuota    int // concurrent CopyImage per destination account-region
}

// DefaultModel is cmd/awsemu's model when no flag changes it: the default
// latencies, a cross-region factor of 3 and 50 concurrent AMI copies per
// destination account-region. The scenarios read the running emulator's
// model instead (ModelOf).
func DefaultModel() Model {
	return Model{Latency: awsemu.DefaultLatency(), CrossRegionFactor: 3, ImageCopyQuota: 50}
}

// ModelOf decodes the emulator's GET /_emu/model answer.
func ModelOf(data []byte) (Model, error) {
	var m awsemu.Model
	if err := json.Unmarshal(data, &m); err != nil {
		return Model{}, fmt.Errorf("decoding /_emu/model: %w", err)
	}
	if m.CrossRegionFactor <= 0 || m.Limits.ConcurrentImageCopies <= 0 || len(m.Latency) == 0 {
		return Model{}, fmt.Errorf("/_emu/model lacks the cross-region factor, the copy quota or the latency model: %s", data)
	}
	return Model{Latency: m.Latency, CrossRegionFactor: m.CrossRegionFactor, ImageCopyQuota: m.Limits.ConcurrentImageCopies}, nil
}

// SourceImage is the AMI a fan-out copies: its region and the sizes of the
// snapshots behind it.
type SourceImage struct {
	Region      string
	SnapshotGiB []int
}

// CopyDuration is how long, in emulated time, one full CopyImage of src into
// region takes: every snapshot is copied at once, each taking
// (base + perGiB × size) × the cross-region factor when the regions differ,
// and the image is available when the last snapshot is done and the
// registration (base only) has passed.
func (m Model) CopyDuration(src SourceImage, region string) time.Duration {
	copySpec := m.Latency[awsemu.LatencySnapshotCopy]
	longest := m.Latency[awsemu.LatencyImageRegister].Base
	for _, gib := range src.SnapshotGiB {
		d := float64(copySpec.Base) + float64(copySpec.PerGiB)*float64(gib)
		if region != src.Region {
			d *= m.CrossRegionFactor
		}
		longest = max(longest, time.Duration(d))
	}
	return longest
}

// Destination is one account-region of a fan-out and how many copies go there.
type Destination struct {
	Account string
	Region  string
	Copies  int
}

// Bound is the lower bound of a fan-out's makespan and what sets it.
type Bound struct {
	Makespan time.Duration // emulated time
	Waves    int           // quota waves at the binding destination
	Copy     time.Duration // one copy's duration at the binding destination
	Binding  Destination   // the destination that sets the bound
}

// LowerBound is the shortest makespan any client could reach on this model:
// copies into different account-regions run in parallel (the model has no
// global limit), and a destination with n copies and a quota of q takes at
// least ceil(n/q) back-to-back waves of its copy duration. It ignores API
// call latency, polling and grant propagation (0 in the default model), so
// a real run is always above it.
func (m Model) LowerBound(src SourceImage, dests []Destination) (Bound, error) {
	if m.ImageCopyQuota <= 0 {
		return Bound{}, fmt.Errorf("image copy quota %d: must be positive", m.ImageCopyQuota)
	}
	if len(src.SnapshotGiB) == 0 {
		return Bound{}, fmt.Errorf("source image in %s has no snapshot", src.Region)
	}
	var b Bound
	for _, d := range dests {
		if d.Copies <= 0 {
			continue
		}
		waves := (d.Copies + m.ImageCopyQuota - 1) / m.ImageCopyQuota
		one := m.CopyDuration(src, d.Region)
		if span := time.Duration(waves) * one; span > b.Makespan {
			b = Bound{Makespan: span, Waves: waves, Copy: one, Binding: d}
		}
	}
	if b.Makespan == 0 {
		return Bound{}, fmt.Errorf("no destination with copies")
	}
	return b, nil
}

// Explain says how b was reached, e.g. "1 wave (1 copy ÷ quota 50, rounded
// up) × (45s + 20s/GiB × 8 GiB) × 3 across regions, into
// 200000000001/eu-west-1 from us-east-1 = 10m15s".
func (m Model) Explain(src SourceImage, b Bound) string {
	spec := m.Latency[awsemu.LatencySnapshotCopy]
	cross := ""
	if b.Binding.Region != src.Region {
		cross = fmt.Sprintf(" × %g across regions", m.CrossRegionFactor)
	}
	largest := 0
	for _, g := range src.SnapshotGiB {
		largest = max(largest, g)
	}
	return fmt.Sprintf("%d wave(s) (%d copies ÷ quota %d, rounded up) × (%s + %s/GiB × %d GiB)%s, into %s/%s from %s = %s",
		b.Waves, b.Binding.Copies, m.ImageCopyQuota, spec.Base, spec.PerGiB, largest, cross, b.Binding.Account, b.Binding.Region, src.Region, b.Makespan)
}
