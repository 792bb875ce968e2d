package copy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/hashicorp/packer-plugin-sdk/packer"
	"golang.org/x/sync/errgroup"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/fanout"
)

// copyAttempts bounds the copies one job makes when they fail for a
// transient reason (a server error, a grant not yet in effect).
const copyAttempts = 3

// maxBurntTokens bounds how many ClientTokens a job skips because earlier
// runs used them for copies that are gone.
const maxBurntTokens = 5

// cleanupTimeout bounds the cleanup that follows every run.
const cleanupTimeout = 15 * time.Minute

// autoscalingGrantName names the grant that lets a target account's Auto
// Scaling role use the target key.
const autoscalingGrantName = "amicrypt-autoscaling"

// autoscalingOps are the key operations Auto Scaling needs to launch
// instances from encrypted snapshots.
var autoscalingOps = []kmstypes.GrantOperation{
	kmstypes.GrantOperationEncrypt, kmstypes.GrantOperationDecrypt,
	kmstypes.GrantOperationReEncryptFrom, kmstypes.GrantOperationReEncryptTo,
	kmstypes.GrantOperationGenerateDataKey, kmstypes.GrantOperationGenerateDataKeyWithoutPlaintext,
	kmstypes.GrantOperationDescribeKey, kmstypes.GrantOperationCreateGrant,
}

// runner carries out a checked plan.
type runner struct {
	cfg    *Config
	ui     packer.Ui
	plan   *plan
	ledger fanout.Ledger
	poll   *awsauth.PollingConfig
	pacer  *ebs.Pacer     // times every copy's polls; learns from the run's copies
	retry  fanout.Backoff // quota and propagation backoff
	lease  *leaseHolder

	mu      sync.Mutex
	waiters map[string]*ebs.ImageWaiter
	// records are what the run removed or failed to, in order.
	records []Record
	// deadKept are dead runs' copies kept under on_failure = "keep": this
	// run reports them.
	deadKept map[string][]string // account/region → image IDs
	// unremoved are the source region/account pairs whose permission this
	// run failed to remove: their grants stay too (leftError).
	unremoved map[string]bool
	// standing is how each copy stands, for the one progress line of a
	// large fan-out (summarize).
	standing map[*job]copyStanding
}

func newRunner(cfg *Config, ui packer.Ui, pl *plan, retry fanout.Backoff) *runner {
	r := &runner{cfg: cfg, ui: ui, plan: pl, poll: cfg.PollingConfig, pacer: ebs.NewPacer(cfg.PollingConfig), retry: retry,
		waiters: map[string]*ebs.ImageWaiter{}, deadKept: map[string][]string{}, unremoved: map[string]bool{}}
	r.lease = newLeaseHolder(pl.run, pl.template, cfg.leaseDuration, pl.sess.clock, r.say)
	return r
}

func (r *runner) say(format string, args ...any) {
	r.ui.Say("amicrypt-copy: " + fmt.Sprintf(format, args...))
}

func (r *runner) record(rec Record) {
	r.mu.Lock()
	r.records = append(r.records, rec)
	r.mu.Unlock()
	r.say("  %s", rec)
}

// clientsFor returns the clients a job copies with.
func (r *runner) clientsFor(j *job) *clients {
	return r.plan.sess.Target(j.Target.Account, j.Target.RoleARN, j.Target.ExternalID, j.Region)
}

// waiter returns the batched image waiter of one account-region: all copies
// waiting there share one DescribeImages per poll.
func (r *runner) waiter(c *clients) *ebs.ImageWaiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := c.Account + "/" + c.Region
	if w, ok := r.waiters[key]; ok {
		return w
	}
	w := ebs.NewPacedImageWaiter(c.EC2, r.poll, r.pacer)
	r.waiters[key] = w
	return w
}

// execute makes every change of the plan and always cleans up. It returns
// the first error; each job carries its own outcome.
func (r *runner) execute(ctx context.Context) error {
	ctx, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	err := r.change(ctx, lost)
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); err == nil || !errors.Is(err, cause) {
			err = errors.Join(err, cause)
		}
	}

	// Cleanup runs even after Ctrl-C, so it gets a context of its own. The
	// lease is renewed until the very end: waiting for a pending copy to
	// settle before removing it can take long.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	// incomplete is what is still in place; lent, the part of it this
	// run's lease must keep covering for the run that takes it back.
	var incomplete []Record
	lent := false
	// With nothing to roll back, the copies are marked reported while the
	// shares and grants are taken back: neither waits for the other.
	var reported []Record
	var marking errgroup.Group
	if err == nil {
		marking.Go(func() error {
			reported = r.markReported(cctx)
			return nil
		})
	}
	if len(r.ledger.Pending(fanout.Cleanup)) > 0 {
		r.say("cleaning up: taking back this run's shares and grants in the source account")
	}
	_, _ = r.ledger.UnwindEach(cctx, fanout.Cleanup, func(d fanout.Undone) {
		rec := settled(d)
		r.record(rec)
		if rec.Outcome == outcomeFailed || rec.Outcome == outcomeLeft {
			incomplete = append(incomplete, rec)
			lent = true
		}
		if rec.Outcome == outcomeFailed && (rec.Action == actionLaunch || rec.Action == actionVolume) {
			r.mu.Lock()
			for _, a := range rec.For {
				r.unremoved[rec.Region+"/"+a] = true
			}
			r.mu.Unlock()
		}
	})
	if err != nil {
		r.markNotStarted(ctx, err)
		if r.cfg.OnFailure == OnFailureRollback {
			incomplete = append(incomplete, r.rollback(cctx)...)
		} else {
			for _, j := range r.plan.jobs {
				if j.Made && j.State != "available" {
					r.say("  kept (on_failure = %q): %s in %s is %s", OnFailureKeep, j.ImageID, j.Dest(), j.State)
				}
			}
		}
	}
	if err != nil {
		reported = r.markReported(cctx) // after the rollback, which some copies may have left
	}
	_ = marking.Wait()
	incomplete = append(incomplete, reported...)
	r.lease.stopRenewing()
	switch {
	case !r.lease.held():
	case !lent:
		for _, rec := range r.lease.release(cctx, r.plan.sess.SourceAccount) {
			r.record(rec)
			if rec.Outcome == outcomeFailed {
				incomplete = append(incomplete, rec)
			}
		}
	default:
		r.say("the lease of run %s stays on what it lent and expires within %s: the next amicrypt-copy run from account %s takes back what is still lent",
			r.plan.run, r.cfg.leaseDuration, r.plan.sess.SourceAccount)
	}
	if len(incomplete) > 0 {
		var what []string
		for _, rec := range incomplete {
			what = append(what, rec.describe()+": "+rec.Error)
		}
		cerr := fmt.Errorf("amicrypt-copy: cleanup incomplete; these are still in place (the next run takes back what this run lent once its lease expires; remove the rest by hand): %s",
			strings.Join(what, "; "))
		return errors.Join(err, cerr)
	}
	return err
}

// settled turns an undone ledger entry into its record.
func settled(d fanout.Undone) Record {
	rec, _ := d.Detail.(Record)
	if rec.Action == "" {
		rec = Record{Action: d.What}
	}
	var left *leftError
	if errors.As(d.Err, &left) {
		rec.Outcome, rec.Error = outcomeLeft, left.why
		return rec
	}
	rec.settle(d.Gone, d.Err)
	return rec
}

// leftError is an undo not attempted on purpose: the grant that records a
// permission this run could not remove stays with it, so that the run that
// takes the permission back knows of it.
type leftError struct{ why string }

func (e *leftError) Error() string { return e.why }

// markNotStarted gives every job that never started its reason.
func (r *runner) markNotStarted(ctx context.Context, err error) {
	for _, j := range r.plan.jobs {
		if j.State == "planned" {
			j.State = "not started"
			switch {
			case j.Reason != "":
			case ctx.Err() != nil:
				j.Reason = "interrupted before it started"
			default:
				j.Reason = "not started: " + err.Error()
			}
		}
	}
}

// rollback deregisters this run's copies and deletes their snapshots, then
// reads every one back as its owner: a copy is reported "rolled back" only
// when neither it nor any of its snapshots is left. It returns the
// records of what is still there.
func (r *runner) rollback(ctx context.Context) []Record {
	if len(r.ledger.Pending(fanout.Rollback)) > 0 {
		r.say("rolling back: deregistering this run's copies and deleting their snapshots (on_failure = %q)", OnFailureRollback)
	}
	done, _ := r.ledger.Unwind(ctx, fanout.Rollback)
	recs := map[string]*Record{}
	var order []string
	for _, d := range done {
		rec := settled(d)
		recs[rec.Resource] = &rec
		order = append(order, rec.Resource)
	}
	// Read back, one DescribeImages and one DescribeSnapshots per
	// account-region.
	byDest := map[string][]*job{}
	for _, j := range r.plan.jobs {
		if j.removal != nil {
			byDest[j.Dest()] = append(byDest[j.Dest()], j)
		}
	}
	for _, dest := range slices.Sorted(maps.Keys(byDest)) {
		jobs := byDest[dest]
		var imgs, snaps []string
		for _, j := range jobs {
			imgs = append(imgs, j.ImageID)
			snaps = append(snaps, j.removal.Snapshots...)
		}
		leftImgs, leftSnaps, err := ebs.StillThere(ctx, r.clientsFor(jobs[0]).EC2, imgs, snaps)
		for _, j := range jobs {
			rec := recs[j.ImageID]
			var left []string
			if slices.Contains(leftImgs, j.ImageID) {
				left = append(left, j.ImageID)
			}
			for _, s := range j.removal.Snapshots {
				if slices.Contains(leftSnaps, s) {
					left = append(left, s)
				}
			}
			switch {
			case err != nil:
				rec.Outcome, rec.Error = outcomeFailed, "reading it back: "+err.Error()
			case len(left) > 0:
				rec.Outcome, rec.Error = outcomeFailed, "read back: still there: "+strings.Join(left, ", ")
			}
			if rec.Outcome == outcomeFailed {
				j.Reason = strings.TrimPrefix(j.Reason+"; ", "; ") + "rollback failed: " + rec.Error
				j.State = "rollback failed"
				continue
			}
			j.Reason = strings.TrimPrefix(j.Reason+"; ", "; ") + "rolled back (was " + j.State + ")"
			j.State = "rolled back"
		}
	}
	var failed []Record
	for _, id := range order {
		r.record(*recs[id])
		if recs[id].Outcome == outcomeFailed {
			failed = append(failed, *recs[id])
		}
	}
	return failed
}

// markReported removes amicrypt:unreported from every copy this run lists
// in its artifact and manifest (and from dead runs' copies it reported),
// one DeleteTags per account-region: from now on they are known, and no
// later run takes them for a dead run's. It returns the records of
// failures.
func (r *runner) markReported(ctx context.Context) []Record {
	byDest := map[string][]string{}
	clientsOf := map[string]*clients{}
	for _, j := range r.plan.jobs {
		if j.ImageID == "" || j.State == "rolled back" || (!j.Made && j.Existing != j.ImageID) {
			continue
		}
		byDest[j.Dest()] = append(byDest[j.Dest()], j.ImageID)
		clientsOf[j.Dest()] = r.clientsFor(j)
	}
	for dest, ids := range r.deadKept {
		byDest[dest] = append(byDest[dest], ids...)
	}
	for dest := range byDest {
		if clientsOf[dest] == nil {
			for _, j := range r.plan.jobs {
				if j.Dest() == dest {
					clientsOf[dest] = r.clientsFor(j)
				}
			}
		}
	}
	// Account-regions are independent: all at once.
	dests := slices.Sorted(maps.Keys(byDest))
	recs := make([]*Record, len(dests))
	var g errgroup.Group
	g.SetLimit(reportConcurrency)
	for i, dest := range dests {
		g.Go(func() error {
			ids, c := byDest[dest], clientsOf[dest]
			sort.Strings(ids)
			if _, err := ebs.DeleteTags(ctx, c.EC2, ids, []string{TagUnreported}); err != nil {
				recs[i] = &Record{Action: "mark reported", Account: c.Account, Region: c.Region, Resource: strings.Join(ids, ","), Run: r.plan.run, Outcome: outcomeFailed,
					Error: err.Error() + "; remove the tag " + TagUnreported + " by hand, or a later run of this template may take these copies for a dead run's"}
			}
			return nil
		})
	}
	_ = g.Wait() // failures are in recs
	var failed []Record
	for _, rec := range recs {
		if rec != nil {
			r.record(*rec)
			failed = append(failed, *rec)
		}
	}
	return failed
}

// change is the part of the run that changes things: the lease, dead
// runs' copies, keys, transit copies, shares, grants, the key check, the
// copies and what follows them.
func (r *runner) change(ctx context.Context, lost context.CancelCauseFunc) error {
	// The lease comes first: it marks this run alive, and everything it
	// lends carries it before being lent.
	for _, src := range r.plan.sources {
		sc := r.plan.sess.Source(src.Region)
		if err := r.lease.take(ctx, src.Region, sc.EC2, append([]string{src.ImageID}, src.SnapshotIDs...)...); err != nil {
			return fmt.Errorf("source %s: %w", src.Region, err)
		}
	}
	r.say("lease: run %s holds what it lends in account %s for %s at a time, renewed every %s; if it dies, the next run takes it back",
		r.plan.run, r.plan.sess.SourceAccount, r.cfg.leaseDuration, r.cfg.leaseDuration/leaseRenewals)
	r.lease.start(func(err error) {
		r.say("%v", err)
		lost(err)
	})
	r.settleDeadCopies(ctx)
	if err := r.createKeys(ctx); err != nil {
		return err
	}
	for _, src := range r.plan.sources {
		if src.TransitKey != "" && r.copiesFrom(src) {
			if err := r.transit(ctx, src); err != nil {
				return err
			}
		}
	}
	for _, src := range r.plan.sources {
		if err := r.share(ctx, src); err != nil {
			return err
		}
	}
	if err := r.checkKeys(ctx); err != nil {
		return err
	}
	var jobs []fanout.Job[*job]
	for _, j := range longestFirst(r.plan.jobs) {
		jobs = append(jobs, fanout.Job[*job]{Dest: fanout.Dest{Account: j.Target.Account, Region: j.Region}, Item: j})
	}
	stop := r.summarize()
	results := fanout.Run(ctx, r.cfg.CopyConcurrency, fanout.NewLimiter(r.cfg.DestinationCopyLimit), jobs,
		func(ctx context.Context, fj fanout.Job[*job]) error { return r.copyOne(ctx, fj.Item) })
	stop()
	for _, res := range results {
		if res.Err != nil && res.Item.Reason == "" {
			res.Item.Reason = res.Err.Error()
		}
	}
	return fanout.Errors(results)
}

// longestFirst orders the jobs so the copies expected to take longest
// start first: cross-region before in-region, then the larger source
// before the smaller. The makespan is the last copy's end, so the long
// ones must not wait behind short ones for a slot. The plan's own order
// (the report's) is left as it is.
func longestFirst(jobs []*job) []*job {
	out := slices.Clone(jobs)
	slices.SortStableFunc(out, func(a, b *job) int {
		ca, cb := a.Region != a.Source.Region, b.Region != b.Source.Region
		switch {
		case ca != cb && ca:
			return -1
		case ca != cb:
			return 1
		}
		return int(b.Source.SizeGiB) - int(a.Source.SizeGiB)
	})
	return out
}

// settleDeadCopies deals with the copies dead runs of this template made
// of other source AMIs and never reported: under on_failure = "rollback"
// they are removed, as their run would have done; under "keep" they are
// kept and reported.
func (r *runner) settleDeadCopies(ctx context.Context) {
	for _, j := range r.plan.jobs {
		for _, d := range j.DeadCopies {
			if r.cfg.OnFailure == OnFailureKeep {
				r.say("%s: kept %s (%s), a copy of %s that a killed run of this template made and never reported (on_failure = %q)", j.Dest(), d.ImageID, d.State, d.SourceAMI, OnFailureKeep)
				r.deadKept[j.Dest()] = append(r.deadKept[j.Dest()], d.ImageID)
				continue
			}
			tc := r.clientsFor(j)
			rec := Record{Action: actionDead, Account: j.Target.Account, Region: j.Region, Resource: d.ImageID}
			rm, err := ebs.RemoveImage(ctx, tc.EC2, r.poll, d.ImageID, true)
			rec.Snapshots = rm.Snapshots
			rec.settle(rm.Gone, err)
			if err == nil && !rm.Gone {
				if imgs, snaps, rerr := ebs.StillThere(ctx, tc.EC2, []string{d.ImageID}, rm.Snapshots); rerr != nil || len(imgs)+len(snaps) > 0 {
					rec.Outcome, rec.Error = outcomeFailed, fmt.Sprintf("read back: still there: %v (%v)", append(imgs, snaps...), rerr)
				}
			}
			r.say("%s: %s is a copy of %s that a killed run of this template made and never reported (on_failure = %q)", j.Dest(), d.ImageID, d.SourceAMI, OnFailureRollback)
			r.record(rec)
			if rec.Outcome == outcomeFailed && d.HoldsName {
				j.Reason = fmt.Sprintf("the name %q is held by %s, a dead run's copy that could not be removed: %s", j.Name, d.ImageID, rec.Error)
			}
		}
	}
}

// copiesFrom reports whether any job still has to copy from src: copies
// an earlier run made are reused, and need no transit copy.
func (r *runner) copiesFrom(src *source) bool {
	for _, j := range r.plan.jobs {
		if j.Source == src && j.Existing == "" {
			return true
		}
	}
	return false
}

// createKeys creates the missing target keys (create_missing_keys).
func (r *runner) createKeys(ctx context.Context) error {
	created := map[string]string{} // account/region/alias → key ARN
	for _, j := range r.plan.jobs {
		if !j.CreateKey {
			continue
		}
		id := j.Dest() + "/" + j.KeyRef
		if arn, ok := created[id]; ok {
			j.KeyARN = arn
			continue
		}
		tc := r.clientsFor(j)
		out, err := tc.KMS.CreateKey(ctx, &kms.CreateKeyInput{
			Description: aws.String("amicrypt: encrypts the AMI copies of account " + j.Target.Account),
			Policy:      aws.String(targetKeyPolicy(j.Target.Account)),
			Tags:        []kmstypes.Tag{{TagKey: aws.String("amicrypt:created-by"), TagValue: aws.String("amicrypt-copy")}},
		})
		if err != nil {
			j.Reason = err.Error()
			return fmt.Errorf("%s: creating the missing key %s: %w", j.Dest(), j.KeyRef, err)
		}
		arn := aws.ToString(out.KeyMetadata.Arn)
		if _, err := tc.KMS.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(j.KeyRef), TargetKeyId: aws.String(arn)}); err != nil {
			j.Reason = err.Error()
			return fmt.Errorf("%s: naming the new key %s %s: %w", j.Dest(), arn, j.KeyRef, err)
		}
		r.say("%s: created key %s with alias %s", j.Dest(), arn, j.KeyRef)
		created[id] = arn
		j.KeyARN = arn
	}
	return nil
}

// targetKeyPolicy is the policy of a key create_missing_keys makes: the
// account administers it, and its Auto Scaling role may use it.
func targetKeyPolicy(account string) string {
	policy := map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{
			{
				"Sid": "AccountAdministers", "Effect": "Allow",
				"Principal": map[string]string{"AWS": "arn:aws:iam::" + account + ":root"},
				"Action":    "kms:*", "Resource": "*",
			},
			{
				"Sid": "AutoScalingUses", "Effect": "Allow",
				"Principal": map[string]string{"AWS": autoscalingRole(account)},
				"Action":    []string{"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"},
				"Resource":  "*",
			},
		},
	}
	b, _ := json.Marshal(policy) // a literal map always marshals
	return string(b)
}

func autoscalingRole(account string) string {
	return "arn:aws:iam::" + account + ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
}
