package copy

import (
	"fmt"
	"strings"
)

// Record is one thing a run took back or removed, or failed to, as the API
// answered: a line of the output and an entry of the manifest. Nothing is
// reported removed that the API did not confirm, or that was not already
// gone.
type Record struct {
	Action    string   `json:"action"`
	Account   string   `json:"account"` // the account the resource belongs to
	Region    string   `json:"region"`
	Resource  string   `json:"resource"` // ami-…, snap-…, a grant ID, or IDs comma-joined
	Key       string   `json:"key,omitempty"`
	For       []string `json:"for,omitempty"`       // accounts or principals it was lent to
	Snapshots []string `json:"snapshots,omitempty"` // deleted with an image
	Run       string   `json:"run,omitempty"`       // the run that lent or made it
	Outcome   string   `json:"outcome"`
	Error     string   `json:"error,omitempty"`
}

// Record actions.
const (
	actionLaunch   = "remove launch permission"
	actionVolume   = "remove createVolume permission"
	actionGrant    = "retire grant"
	actionTransit  = "delete transit copy"
	actionLease    = "remove lease"
	actionRollback = "roll back copy"
	actionDead     = "remove copy of a dead run"
)

// Record outcomes.
const (
	outcomeDone   = "done"
	outcomeGone   = "already gone"
	outcomeFailed = "failed"
	// outcomeLeft: not attempted, for the reason in Error.
	outcomeLeft = "left"
)

// settle sets the outcome from what the call said.
func (r *Record) settle(gone bool, err error) {
	switch {
	case err != nil:
		r.Outcome, r.Error = outcomeFailed, err.Error()
	case gone:
		r.Outcome = outcomeGone
	default:
		r.Outcome = outcomeDone
	}
}

// describe names the resource and what it was lent to.
func (r Record) describe() string {
	s := r.Resource
	switch r.Action {
	case actionLaunch:
		s = "the launch permission on " + r.Resource
	case actionVolume:
		s = "the createVolume permission on " + r.Resource
	case actionGrant:
		s = "grant " + r.Resource + " on " + r.Key
	case actionTransit:
		s = "transit copy " + r.Resource
	case actionLease:
		s = "the lease tag of run " + r.Run + " on " + r.Resource
	case actionRollback, actionDead:
		s = "copy " + r.Resource
	}
	if len(r.For) > 0 {
		s += " for " + strings.Join(r.For, ", ")
	}
	return s + " (" + r.Account + "/" + r.Region + ")"
}

func (r Record) String() string {
	s := fmt.Sprintf("%s: %s", r.Action, r.describe())
	if len(r.Snapshots) > 0 {
		s += " with " + strings.Join(r.Snapshots, ", ")
	}
	switch r.Outcome {
	case outcomeDone:
		return s + ": done"
	case outcomeGone:
		return s + ": already gone"
	case outcomeLeft:
		return s + ": left (" + r.Error + ")"
	default:
		return s + ": FAILED: " + r.Error
	}
}
