package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
)

// Faults, owned by the platform. Throttling and InternalError are injected by
// the dispatcher before a handler runs. Handlers ask for the others:
//
//	func (e *Emulator) faultFires(kind FaultKind, action string) bool
type FaultKind string

const (
	FaultThrottle         FaultKind = "throttle"              // dispatcher
	FaultInternalError    FaultKind = "internal-error"        // dispatcher
	FaultCopyFails        FaultKind = "copy-fails"            // CopyImage/CopySnapshot end failed/error
	FaultNotFoundAfterNew FaultKind = "notfound-after-create" // new resource invisible for a moment
	FaultSlowGrant        FaultKind = "slow-grant"            // grant takes much longer to take effect
)

// FaultProfile injects failures, by probability or by schedule, per action.
// Its JSON form is the -faults file of cmd/awsemu:
//
//	{"seed": 7, "rules": [
//	  {"kind": "throttle", "action": "DescribeImages", "probability": 0.2},
//	  {"kind": "internal-error", "action": "CopyImage", "nth": [2]},
//	  {"kind": "copy-fails", "action": "CopyImage", "every": 3, "max": 2},
//	  {"kind": "slow-grant", "action": "CreateGrant", "account": "111111111111"}
//	]}
type FaultProfile struct {
	// Seed makes probabilistic faults reproducible (0: 1).
	Seed  int64       `json:"seed,omitempty"`
	Rules []FaultRule `json:"rules"`
}

// FaultRule fires a fault kind on matching calls. A rule with neither
// Probability, Nth nor Every fires every time it is consulted.
type FaultRule struct {
	Kind FaultKind `json:"kind"`
	// Action is the API action ("CopyImage"), a prefix pattern ("Describe*")
	// or "*" / empty for all.
	Action  string `json:"action,omitempty"`
	Service string `json:"service,omitempty"` // ec2, kms, sts; empty: any
	Account string `json:"account,omitempty"` // caller account; empty: any
	Region  string `json:"region,omitempty"`  // empty: any
	// Probability of firing each time the rule is consulted (0..1).
	Probability float64 `json:"probability,omitempty"`
	// Nth lists the 1-based matching consultations that fire ("the 2nd
	// CopyImage": [2]).
	Nth []int `json:"nth,omitempty"`
	// Every fires on every Every-th matching consultation.
	Every int `json:"every,omitempty"`
	// Max caps how many times the rule fires (0: unlimited).
	Max int `json:"max,omitempty"`
	// SkipDryRun passes over DryRun calls (they are not consulted, so Nth
	// and Every count only the calls that would change something).
	SkipDryRun bool `json:"skip_dry_run,omitempty"`
}

// LoadFaultProfile reads a fault profile (JSON).
func LoadFaultProfile(path string) (*FaultProfile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading fault profile: %w", err)
	}
	return ParseFaultProfile(data)
}

// ParseFaultProfile parses and validates a fault profile.
func ParseFaultProfile(data []byte) (*FaultProfile, error) {
	var p FaultProfile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("fault profile: %w", err)
	}
	return &p, p.Validate()
}

// Validate checks every rule, naming the field at fault.
func (p *FaultProfile) Validate() error {
	for i, r := range p.Rules {
		switch r.Kind {
		case FaultThrottle, FaultInternalError, FaultCopyFails, FaultNotFoundAfterNew, FaultSlowGrant:
		default:
			return fmt.Errorf("fault profile: rules[%d].kind: %q must be one of throttle, internal-error, copy-fails, notfound-after-create, slow-grant", i, r.Kind)
		}
		if r.Probability < 0 || r.Probability > 1 {
			return fmt.Errorf("fault profile: rules[%d].probability: %v must be between 0 and 1", i, r.Probability)
		}
		for _, n := range r.Nth {
			if n < 1 {
				return fmt.Errorf("fault profile: rules[%d].nth: %d must be 1 or more (the 1st matching call is 1)", i, n)
			}
		}
		if r.Every < 0 || r.Max < 0 {
			return fmt.Errorf("fault profile: rules[%d]: every and max must not be negative", i)
		}
	}
	return nil
}

// FaultState counts consultations and firings per rule.
type FaultState struct {
	mu       sync.Mutex
	rng      *rand.Rand // seeded by the profile: probabilistic faults are reproducible
	rules    []FaultRule
	consults []int
	fired    []int
}

func NewFaultState(p *FaultProfile) *FaultState {
	seed := uint64(1)
	if p != nil && p.Seed != 0 {
		seed = uint64(p.Seed)
	}
	s := &FaultState{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	if p != nil {
		s.rules = append(s.rules, p.Rules...)
		s.consults = make([]int, len(p.Rules))
		s.fired = make([]int, len(p.Rules))
	}
	return s
}

func (r FaultRule) Matches(kind FaultKind, c *Call, action string) bool {
	if r.Kind != kind {
		return false
	}
	if r.Action != "" && r.Action != "*" {
		if p, ok := strings.CutSuffix(r.Action, "*"); ok {
			if !strings.HasPrefix(action, p) {
				return false
			}
		} else if r.Action != action {
			return false
		}
	}
	if c == nil {
		return r.Service == "" && r.Account == "" && r.Region == ""
	}
	if r.SkipDryRun && c.DryRun() {
		return false
	}
	return (r.Service == "" || r.Service == c.Service) &&
		(r.Account == "" || r.Account == c.Account) &&
		(r.Region == "" || r.Region == c.Region)
}

// Fires reports whether a fault of kind should happen now for action, as
// call c makes it (c may be nil: only rules without service, account and
// region filters apply). It counts the consultation.
func (fs *FaultState) Fires(kind FaultKind, c *Call, action string) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fires := false
	for i, r := range fs.rules {
		if !r.Matches(kind, c, action) {
			continue
		}
		fs.consults[i]++
		if r.Max > 0 && fs.fired[i] >= r.Max {
			continue
		}
		n := fs.consults[i]
		hit := false
		switch {
		case len(r.Nth) > 0:
			for _, k := range r.Nth {
				hit = hit || k == n
			}
		case r.Every > 0:
			hit = n%r.Every == 0
		case r.Probability > 0:
			hit = fs.rng.Float64() < r.Probability
		default:
			hit = true
		}
		if hit {
			fs.fired[i]++
			fires = true
		}
	}
	return fires
}
