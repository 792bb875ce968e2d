package awsemu

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/ec2"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/iam"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/kms"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/sts"
)

// Options configure an Emulator. The zero value is usable: the default
// world, real-time latencies (TimeScale 1), no request limits, no faults.
type Options struct {
	// World is the world to serve; nil means the embedded default world.
	World *World
	// TimeScale multiplies every emulated duration: 0.001 makes one emulated
	// second last one millisecond. Zero means 1 (Start uses 0.001).
	TimeScale float64
	// Latency overrides the latency model per LatencyOp constant.
	Latency map[string]LatencySpec
	// CrossRegionFactor multiplies copies between regions (default 3).
	CrossRegionFactor float64
	// GrantDelay is the emulated time a new KMS grant takes to take effect
	// (AWS: usually seconds, up to about five minutes). Scaled by TimeScale.
	GrantDelay time.Duration
	// CallLatency is the emulated time every AWS API call takes before the
	// emulator handles it (AWS's calls take tens to hundreds of
	// milliseconds; see docs/emulator.md). Scaled by TimeScale; 0: none.
	CallLatency time.Duration
	// SlowGrantDelay is the grant delay when FaultSlowGrant fires (default 5m).
	SlowGrantDelay time.Duration
	// Faults injects failures; nil means none.
	Faults *FaultProfile
	// Limits are quotas and request rates.
	Limits Limits
	// StatePath, when set, is where the emulator loads its state at start and
	// saves it after changes and on Close, so a server survives restarts.
	StatePath string
	// Now replaces the wall clock (for tests); the emulator clock is Now()
	// plus whatever Advance added.
	Now func() time.Time
	// Logf receives diagnostics (state file errors); nil discards them.
	Logf func(format string, args ...any)
	// ReadTimeout bounds the time to read a whole request, body included
	// (0: 30 s): a body shorter than its Content-Length ends there.
	ReadTimeout time.Duration
	// AuditLimit is how many audit entries stay in memory (0: 200,000); the
	// oldest go first, once the state file has them when there is one.
	AuditLimit int
}

// Emulator is the local AWS: it ties the services together. No lock of its
// own is held while a call is served; every service guards its state.
type Emulator struct {
	mu   sync.Mutex // guards closed
	opts Options

	world *World
	clock *core.Clock
	ids   *core.RequestIDs

	iam    *iam.IAM
	iamAPI *iam.API
	kms    *kms.Service
	sts    *sts.Service
	ec2    *ec2.Service
	faults *core.FaultState
	limits *core.Limiter
	audit  *core.Audit
	holds  holds
	imds   imdsServers

	saved   savedMark  // what the state file holds (saveMu)
	saveMu  sync.Mutex // serializes state saves (taken before mu)
	stopped chan struct{}
	saverWG sync.WaitGroup
	closed  bool
}

// New builds an emulator from opts: it loads the world, then the state file
// when one exists, and seeds the rest.
func New(opts Options) (*Emulator, error) {
	if opts.TimeScale <= 0 {
		opts.TimeScale = 1
	}
	if opts.CrossRegionFactor <= 0 {
		opts.CrossRegionFactor = 3
	}
	if opts.SlowGrantDelay <= 0 {
		opts.SlowGrantDelay = 5 * time.Minute
	}
	if opts.Limits.ConcurrentImageCopies <= 0 {
		opts.Limits.ConcurrentImageCopies = 50
	}
	if opts.Limits.ConcurrentSnapshotCopies <= 0 {
		opts.Limits.ConcurrentSnapshotCopies = 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := opts.World
	if w == nil {
		var err error
		if w, err = DefaultWorld(); err != nil {
			return nil, err
		}
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	latency := map[string]LatencySpec{}
	for op, spec := range opts.Latency {
		latency[op] = spec
	}
	if opts.GrantDelay > 0 {
		latency[LatencyGrant] = LatencySpec{Base: opts.GrantDelay}
	}
	if opts.CallLatency > 0 {
		latency[LatencyAPICall] = LatencySpec{Base: opts.CallLatency}
	}
	seed := uint64(1)
	if opts.Faults != nil && opts.Faults.Seed != 0 {
		seed = uint64(opts.Faults.Seed)
	}
	e := &Emulator{
		opts:    opts,
		world:   w,
		clock:   core.NewClock(opts.Now, opts.TimeScale, opts.CrossRegionFactor, latency),
		ids:     core.NewRequestIDs(seed),
		audit:   core.NewAudit(opts.AuditLimit, opts.StatePath != ""),
		stopped: make(chan struct{}),
	}
	e.faults = core.NewFaultState(opts.Faults)
	e.limits = core.NewLimiter(opts.Limits, opts.TimeScale)
	e.iam = iam.New(w)
	// The world's roles and instance profiles date from before the run, as
	// its images do.
	e.iamAPI = iam.NewAPI(e.iam, e.clock.Now().Add(-30*24*time.Hour))
	e.sts = sts.New(e.clock, e.iam)

	var err error
	if e.kms, err = kms.New(e.clock, e.faults, w, e.iam, kms.Options{SlowGrantDelay: opts.SlowGrantDelay}); err != nil {
		return nil, err
	}
	e.ec2 = ec2.New(e.clock, e.faults, w, e.kms, e.iam, e.sts, ec2.Options{Limits: opts.Limits})
	if opts.StatePath != "" {
		var err error
		if _, err = e.loadState(opts.StatePath); err != nil {
			return nil, err
		}
	}

	if opts.StatePath != "" {
		e.saverWG.Add(1)
		go e.saver()
	}
	return e, nil
}

// Close stops background work and saves the state file, if any.
func (e *Emulator) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.stopped)
	e.mu.Unlock()
	e.imds.close()
	e.saverWG.Wait()
	return e.SaveState()
}

// Handler serves every AWS service of the emulator, and /_emu/ admin calls.
func (e *Emulator) Handler() http.Handler { return http.HandlerFunc(e.serveHTTP) }

// now is the emulator clock.
func (e *Emulator) now() time.Time { return e.clock.Now() }

// Now is the emulator clock.
func (e *Emulator) Now() time.Time { return e.clock.Now() }

// Advance moves the emulator clock forward by d (wall time), e.g. to expire
// session credentials or finish copies in a test without waiting.
func (e *Emulator) Advance(d time.Duration) { e.clock.Advance(d) }

// nextRequestID returns a fresh request ID shaped like AWS's (lock held).
func (e *Emulator) nextRequestID() string { return e.ids.Next() }

// regionEnabled reports whether region is enabled in the world.
func (e *Emulator) regionEnabled(region string) bool { return e.world.RegionEnabled(region) }

// regionKnown reports whether region is enabled or known but not enabled.
func (e *Emulator) regionKnown(region string) bool { return e.world.RegionKnown(region) }

func (e *Emulator) logf(format string, args ...any) {
	if e.opts.Logf != nil {
		e.opts.Logf(format, args...)
	}
}

// World returns a copy of the world the emulator serves.
func (e *Emulator) World() World {
	data, _ := json.Marshal(e.world)
	var w World
	_ = json.Unmarshal(data, &w)
	return w
}
