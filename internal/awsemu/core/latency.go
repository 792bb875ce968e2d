package core

// Package awsemu is a local AWS (EC2/EBS, KMS, STS) for amicrypt's tests,
// benchmarks and demo. It serves the real wire protocols on one endpoint,
// across many accounts and regions, and follows shared/aws-behaviour.md.

// contract.go is the seam between the emulator's platform (server, SigV4,
// world, clock, limits, faults, audit, KMS, STS) and its EC2 service
// (ec2*.go). Both sides may add to it; neither changes what is here in an
// incompatible way.

import (
	"time"
)

// The EC2 side implements, with the emulator lock held:
//
//	func (e *Emulator) handleEC2(c *Call) (any, *APIError)
//
// The returned value is XML-marshalled as the children of
// <{Action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">, after
// <requestId>; the platform writes the envelope and the error body.
//
// The EC2 side seeds its state from World.Images/Snapshots and from the
// accounts and regions (default VPC, subnets, security group) in
//
//	func (e *Emulator) seedEC2(w *World)
//
// and keeps all its state in the exported fields of an ec2State value stored
// at e.ec2, so the platform can save it to and load it from the state file
// with encoding/json.
// Clock and latency model, owned by the platform:
//
//	func (e *Emulator) now() time.Time
//	// duration of an operation: (base[op] + perGiB[op]*sizeGiB) × (crossRegion
//	// factor when crossRegion) × time scale
//	func (e *Emulator) latency(op string, sizeGiB int, crossRegion bool) time.Duration
//
// op is one of the LatencyOp constants. Asynchronous resources store the time
// they finish and move through their states when read (no goroutines).
const (
	LatencyInstanceStart = "instance-start"
	LatencyInstanceStop  = "instance-stop"
	LatencyInstanceTerm  = "instance-terminate"
	LatencySnapshot      = "snapshot-create"
	LatencySnapshotCopy  = "snapshot-copy"
	LatencyImageRegister = "image-register"
	LatencyGrant         = "grant-propagation"
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
		LatencyGrant:         {},
	}
}
