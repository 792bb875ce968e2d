package core

import (
	"sync/atomic"
	"time"
)

// Operations of the latency model. Asynchronous resources store the time
// they finish and move through their states when read (no goroutines).
const (
	LatencyInstanceStart = "instance-start"
	LatencyInstanceStop  = "instance-stop"
	LatencyInstanceTerm  = "instance-terminate"
	LatencySnapshot      = "snapshot-create"
	LatencySnapshotCopy  = "snapshot-copy"
	LatencyImageRegister = "image-register"
	LatencyVolumeCreate  = "volume-create"
	LatencyGrant         = "grant-propagation"
	// LatencyAPICall is the time every API call takes before it is
	// answered: the round trip and the service's own work. 0 by default:
	// calls are answered as fast as the machine serves them.
	LatencyAPICall = "api-call"
)

// LatencySpec is the duration model of one operation, in emulated time.
type LatencySpec struct {
	Base   time.Duration `json:"base"`
	PerGiB time.Duration `json:"per_gib"`
}

// DefaultLatency is the latency model in emulated time, chosen to keep the
// proportions users see on AWS: seconds for API-side work, minutes for a few
// GiB of snapshot data, a slower first copy across regions.
func DefaultLatency() map[string]LatencySpec {
	return map[string]LatencySpec{
		LatencyInstanceStart: {Base: 30 * time.Second},
		LatencyInstanceStop:  {Base: 20 * time.Second},
		LatencyInstanceTerm:  {Base: 15 * time.Second},
		LatencySnapshot:      {Base: 30 * time.Second, PerGiB: 15 * time.Second},
		LatencySnapshotCopy:  {Base: 45 * time.Second, PerGiB: 20 * time.Second},
		LatencyImageRegister: {Base: 5 * time.Second},
		LatencyVolumeCreate:  {Base: 10 * time.Second},
		LatencyGrant:         {},
		LatencyAPICall:       {},
	}
}

// Clock is the emulator clock and its latency model. The clock is the wall
// clock (or a test's) plus whatever Advance added; durations are
// (base + perGiB × size) × cross-region factor × time scale. Safe for
// concurrent use.
type Clock struct {
	wall        func() time.Time
	offset      atomic.Int64 // time.Duration added by Advance
	scale       float64
	crossRegion float64
	model       map[string]LatencySpec // read-only after NewClock
}

// NewClock makes a clock. wall nil means time.Now; scale and crossRegion
// must be positive; overrides replace entries of DefaultLatency.
func NewClock(wall func() time.Time, scale, crossRegion float64, overrides map[string]LatencySpec) *Clock {
	if wall == nil {
		wall = time.Now
	}
	model := DefaultLatency()
	for op, spec := range overrides {
		model[op] = spec
	}
	return &Clock{wall: wall, scale: scale, crossRegion: crossRegion, model: model}
}

// Now is the emulator clock, in UTC.
func (c *Clock) Now() time.Time { return c.wall().Add(c.Offset()).UTC() }

// Wall is the wall clock without Advance's offset (request-rate buckets
// refill in real time).
func (c *Clock) Wall() time.Time { return c.wall() }

// Advance moves the emulator clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Offset is what Advance added so far.
func (c *Clock) Offset() time.Duration { return time.Duration(c.offset.Load()) }

// SetOffset restores an offset saved with the state file.
func (c *Clock) SetOffset(d time.Duration) { c.offset.Store(int64(d)) }

// Latency is the duration of op for sizeGiB of data, across regions or not,
// in emulator-clock time.
func (c *Clock) Latency(op string, sizeGiB int, crossRegion bool) time.Duration {
	spec := c.model[op]
	d := float64(spec.Base) + float64(spec.PerGiB)*float64(sizeGiB)
	if crossRegion {
		d *= c.crossRegion
	}
	return time.Duration(d * c.scale)
}

// Scaled converts an emulated duration to emulator-clock time.
func (c *Clock) Scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.scale)
}

// ClockModel is what a client needs to predict the emulator's durations:
// the time scale, the cross-region factor and the latency of each
// operation, in emulated time.
type ClockModel struct {
	TimeScale         float64                `json:"time_scale"`
	CrossRegionFactor float64                `json:"cross_region_factor"`
	Latency           map[string]LatencySpec `json:"latency"`
}

// Model returns the clock's model (a copy).
func (c *Clock) Model() ClockModel {
	m := ClockModel{TimeScale: c.scale, CrossRegionFactor: c.crossRegion, Latency: map[string]LatencySpec{}}
	for op, spec := range c.model {
		m.Latency[op] = spec
	}
	return m
}
