package core

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestFaultProbabilityIsSeeded(t *testing.T) {
	run := func() []bool {
		faults := NewFaultState(&FaultProfile{Seed: 42, Rules: []FaultRule{{Kind: FaultCopyFails, Action: "CopyImage", Probability: 0.5}}})
		var out []bool
		for range 32 {
			out = append(out, faults.Fires(FaultCopyFails, nil, "CopyImage"))
		}
		if faults.Fires(FaultCopyFails, nil, "CopySnapshot") {
			t.Fatal("rule for CopyImage fired for CopySnapshot")
		}
		return out
	}
	a, b := run(), run()
	fired := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different faults at %d", i)
		}
		if a[i] {
			fired++
		}
	}
	if fired == 0 || fired == len(a) {
		t.Fatalf("probability 0.5 fired %d of %d times", fired, len(a))
	}
}

func TestParseFaultProfile(t *testing.T) {
	tests := []struct{ src, want string }{
		{`{"rules":[{"kind":"throttle","action":"CopyImage","nth":[2]}]}`, ""},
		{`{"rules":[{"kind":"explode"}]}`, `rules[0].kind: "explode"`},
		{`{"rules":[{"kind":"throttle","probability":2}]}`, "rules[0].probability"},
		{`{"rules":[{"kind":"throttle","nth":[0]}]}`, "rules[0].nth"},
		{`{"rulez":[]}`, `unknown field "rulez"`},
	}
	for _, tc := range tests {
		_, err := ParseFaultProfile([]byte(tc.src))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.src, err, tc.want)
		}
	}
}

func TestLatencyModel(t *testing.T) {
	clock := NewClock(nil, 0.01, 4, map[string]LatencySpec{LatencySnapshotCopy: {Base: 10 * time.Second, PerGiB: 5 * time.Second}})
	tests := []struct {
		op    string
		size  int
		cross bool
		want  time.Duration
	}{
		{LatencySnapshotCopy, 0, false, 100 * time.Millisecond},
		{LatencySnapshotCopy, 8, false, 500 * time.Millisecond},
		{LatencySnapshotCopy, 8, true, 2 * time.Second},
		{LatencySnapshot, 8, false, 1500 * time.Millisecond}, // default: 30s + 15s/GiB
		{LatencyGrant, 0, false, 0},
	}
	for _, tc := range tests {
		if got := clock.Latency(tc.op, tc.size, tc.cross); got != tc.want {
			t.Errorf("latency(%s, %d, %v) = %v, want %v", tc.op, tc.size, tc.cross, got, tc.want)
		}
	}
}

func TestAWSRequestRates(t *testing.T) {
	l := Limits{ConcurrentImageCopies: 7}.AWSRequestRates()
	if l.DescribeBurst != 100 || l.DescribeRate != 20 || l.MutateBurst != 200 || l.MutateRate != 5 || l.ConcurrentImageCopies != 7 {
		t.Fatalf("%+v", l)
	}
	lim := NewLimiter(l, 1)
	now := time.Unix(0, 0)
	c := &Call{Service: "ec2", Account: "111111111111", Region: "us-east-1", Action: "CopyImage"}
	n := 0
	for lim.Allow(c, now) {
		n++
	}
	if n != 200 {
		t.Fatalf("mutating burst %d, want 200", n)
	}
	if !lim.Allow(c, now.Add(200*time.Millisecond)) || lim.Allow(c, now.Add(200*time.Millisecond)) {
		t.Fatal("refill of 5 per second not applied")
	}
	kmsCall := &Call{Service: "kms", Account: "111111111111", Region: "us-east-1", Action: "CreateGrant"}
	for i := range 500 {
		if !lim.Allow(kmsCall, now) {
			t.Fatalf("KMS call %d throttled by EC2's buckets", i)
		}
	}
}

// With EmulatedTime the buckets refill per emulated second: at time scale
// 0.01 a rate of 5 per second refills 5 tokens in 10 ms of wall time;
// without it, the same 10 ms refill nothing.
func TestRequestRatesOnEmulatedTime(t *testing.T) {
	tests := []struct {
		name     string
		emulated bool
		scale    float64
		wait     time.Duration // wall time after the burst is spent
		want     int           // calls then allowed
	}{
		{"wall time, 10 ms at scale 0.01", false, 0.01, 10 * time.Millisecond, 0},
		{"wall time, 1 s", false, 0.01, time.Second, 5},
		{"emulated time, 10 ms at scale 0.01", true, 0.01, 10 * time.Millisecond, 5},
		{"emulated time, 2 ms at scale 0.01", true, 0.01, 2 * time.Millisecond, 1},
		{"emulated time at scale 1 is wall time", true, 1, 10 * time.Millisecond, 0},
		{"emulated time, refill capped at the burst", true, 0.01, time.Minute, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lim := NewLimiter(Limits{MutateRate: 5, MutateBurst: 10, EmulatedTime: tc.emulated}, tc.scale)
			c := &Call{Service: "ec2", Account: "111111111111", Region: "us-east-1", Action: "CopyImage"}
			now := time.Unix(0, 0)
			for range 10 {
				if !lim.Allow(c, now) {
					t.Fatal("burst of 10 not available")
				}
			}
			if lim.Allow(c, now) {
				t.Fatal("an 11th call passed the burst")
			}
			got := 0
			for lim.Allow(c, now.Add(tc.wait)) {
				got++
			}
			if got != tc.want {
				t.Errorf("after %v: %d calls allowed, want %d", tc.wait, got, tc.want)
			}
		})
	}
}

// A rule with SkipDryRun neither fires on nor counts DryRun calls (Query
// form or KMS JSON body), so Nth aims at the call that changes something.
func TestFaultSkipDryRun(t *testing.T) {
	dry := &Call{Service: "ec2", Action: "RunInstances", Params: url.Values{"DryRun": {"true"}}}
	kmsDry := &Call{Service: "kms", Action: "CreateGrant", Body: []byte(`{"KeyId":"k", "DryRun": true}`)}
	real := &Call{Service: "ec2", Action: "RunInstances", Params: url.Values{}}
	if !dry.DryRun() || !kmsDry.DryRun() || real.DryRun() {
		t.Fatalf("DryRun(): form %v, JSON %v, real %v", dry.DryRun(), kmsDry.DryRun(), real.DryRun())
	}
	for _, skip := range []bool{false, true} {
		fs := NewFaultState(&FaultProfile{Rules: []FaultRule{{Kind: FaultInternalError, Action: "RunInstances", Nth: []int{1}, SkipDryRun: skip}}})
		onDry := fs.Fires(FaultInternalError, dry, "RunInstances")
		onReal := fs.Fires(FaultInternalError, real, "RunInstances")
		if onDry == skip || onReal != skip {
			t.Errorf("SkipDryRun=%v: fired on the DryRun call %v, on the real call %v", skip, onDry, onReal)
		}
	}
}
