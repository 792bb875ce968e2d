package copy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/fanout"
)

// copyOne makes (or finds) the copy of one job, reads it back and finishes it.
func (r *runner) copyOne(ctx context.Context, j *job) error {
	if j.State == "failed" {
		r.stand(j, copyStanding{state: standFailed})
		return fmt.Errorf("%s: %s", j.Dest(), j.Reason) // settleDeadCopies could not free its name
	}
	r.stand(j, copyStanding{state: standPending, percent: -1})
	err := r.copyWith(ctx, r.clientsFor(j), j)
	st := copyStanding{state: standAvailable}
	if err != nil {
		st.state = standFailed
	}
	r.stand(j, st)
	return err
}

// stateUnverified is the state of a copy that exists but did not read back
// encrypted under its key: a failure, never a success.
const stateUnverified = "unverified"

// copyWith is copyOne with the target account's clients.
func (r *runner) copyWith(ctx context.Context, tc *clients, j *job) error {
	j.Started = time.Now()
	defer func() { j.Finished = time.Now() }()
	fail := func(state string, err error) error {
		j.State, j.Reason = state, err.Error()
		r.say("%s: %s %s: %s", j.Dest(), orDash(j.ImageID), state, j.Reason)
		return fmt.Errorf("%s: %w", j.Dest(), err)
	}

	// img is the copy as the batched wait last read it (DescribeImages, as
	// its owner) when it became available.
	var img *ec2types.Image
	var err error
	if j.Existing != "" {
		j.ImageID = j.Existing
		r.say("%s: %s already made by an earlier run (provenance tags match); reusing it", j.Dest(), j.ImageID)
		if img, err = r.waiter(tc).Wait(ctx, j.ImageID, r.seen(j)); err != nil {
			return fail(waitState(err), err)
		}
	} else {
		if j.Failed != "" {
			// A failed copy an earlier run kept (on_failure = "keep") holds
			// the name; it is of no use to anyone.
			if _, err := ebs.RemoveImage(ctx, tc.EC2, r.poll, j.Failed, true); err != nil {
				return fail("failed", fmt.Errorf("removing %s, a failed copy an earlier run kept: %w", j.Failed, err))
			}
			r.say("%s: removed %s, a failed copy an earlier run kept; copying again", j.Dest(), j.Failed)
		}
		if img, err = r.copyWithRetries(ctx, tc, j); err != nil {
			return fail(waitState(err), err)
		}
	}
	// Read back: the snapshots' keys from DescribeSnapshots as the owner.
	v, err := ebs.VerifyEncrypted(ctx, tc.EC2, img, j.KeyARN)
	if err != nil {
		state := stateUnverified
		if !ebs.IsEncryptionMismatch(err) {
			state = waitState(err)
		}
		return fail(state, fmt.Errorf("reading the copy back: %w", err))
	}
	j.Verified = true
	readBack := fmt.Sprintf("%s: %s read back: %s encrypted under %s", j.Dest(), j.ImageID, strings.Join(v.Snapshots, ", "), j.KeyARN)
	if err := r.finish(ctx, tc, j); err != nil {
		r.say("%s", readBack)
		return fail("available", err)
	}
	j.State = "available"
	// One line for both: at 500 copies ending together, Packer relaying
	// the lines the plugin says used up to half a core.
	r.say("%s; available after %s", readBack, time.Since(j.Started).Round(time.Millisecond))
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// waitState is the state a job is left in after err.
func waitState(err error) string {
	var se *ebs.StateError
	switch {
	case errors.As(err, &se):
		return se.State
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "interrupted"
	default:
		return "failed"
	}
}

// copyFailure is why a copy failed, as copyWithRetries decides what to do.
type copyFailure int

const (
	failPermanent copyFailure = iota // no retry helps
	failTransient                    // a copy made again may succeed
)

// classify decides whether a failed copy (its state reason in se) is worth
// making again. A key reason is transient only when the target key is
// usable: then it is the source key's grant, which can take minutes to
// work; a disabled, deleted or refused target key fails at once, with a
// reason about that key.
func (r *runner) classify(ctx context.Context, tc *clients, j *job, se *ebs.StateError) (copyFailure, error) {
	switch {
	case strings.HasPrefix(se.Reason, "Server."), se.Reason == "Client.RequestLimitExceeded":
		return failTransient, se
	case strings.HasPrefix(se.Reason, "Client.InvalidKMSKey"):
		if kerr := r.targetKeyProblem(ctx, tc, j); kerr != nil {
			return failPermanent, fmt.Errorf("%w; the target key is the cause: %w (not retried)", se, kerr)
		}
		if serr := r.sourceKeyProblem(ctx, j); serr != nil {
			return failPermanent, fmt.Errorf("%w; the source key is the cause: %w (not retried)", se, serr)
		}
		return failTransient, se
	case strings.HasPrefix(se.Reason, "Client.InvalidSnapshot.NotFound"):
		return failPermanent, fmt.Errorf("%w; a snapshot of the source AMI %s is gone: it was deleted during the run", se, j.Source.ImageID)
	}
	return failPermanent, se
}

// targetKeyProblem reads the target key's state as the target role
// (DescribeKey) and says what is wrong with it: disabled, pending deletion,
// gone, or not allowed to the role (and by which policy); nil when usable.
func (r *runner) targetKeyProblem(ctx context.Context, tc *clients, j *job) error {
	k, err := ebs.CheckKey(ctx, tc.KMS, j.KeyARN, ebs.KeyRequirements{Region: j.Region, Account: j.Target.Account})
	if err == nil {
		return nil
	}
	var ke *ebs.KeyError
	if errors.As(err, &ke) && ke.Problem == ebs.KeyAccessDenied {
		return fmt.Errorf("%s may not use the target key %s: %s", j.Target.RoleARN, j.KeyARN,
			fixOr(ke.Err, j.Target.RoleARN, "kms:DescribeKey, kms:GenerateDataKeyWithoutPlaintext, kms:CreateGrant and kms:ReEncryptTo", j.KeyARN, "allow it"))
	}
	if k.State != "" && k.State != string(kmstypes.KeyStateEnabled) {
		return fmt.Errorf("the target key %s is %s (DescribeKey as %s): %w", j.KeyARN, k.State, j.Target.RoleARN, err)
	}
	return fmt.Errorf("the target key %s (DescribeKey as %s): %w", j.KeyARN, j.Target.RoleARN, err)
}

// sourceKeyProblem reads the state of the source keys as the source
// principal: a disabled or deleted source key fails every copy.
func (r *runner) sourceKeyProblem(ctx context.Context, j *job) error {
	sc := r.plan.sess.Source(j.Source.Region)
	for _, keyARN := range j.Source.SharedKeys {
		k, err := ebs.DescribeKey(ctx, sc.KMS, j.Source.Region, keyARN)
		var ke *ebs.KeyError
		switch {
		case errors.As(err, &ke) && (ke.Problem == ebs.KeyDisabled || ke.Problem == ebs.KeyPendingDeletion || ke.Problem == ebs.KeyNotFound):
			return err
		case err == nil && k.State != string(kmstypes.KeyStateEnabled):
			return fmt.Errorf("the source key %s is %s", keyARN, k.State)
		}
	}
	return nil
}

// copyWithRetries starts the copy, backing off while the destination's
// copy quota is full, and makes it again, on its own and with a fresh
// ClientToken, when it fails for a transient reason (at most copyAttempts
// copies). It returns the copy as the wait saw it become available.
func (r *runner) copyWithRetries(ctx context.Context, tc *clients, j *job) (*ec2types.Image, error) {
	src := j.Source
	prov := provenance(src, r.plan.sess.SourceAccount, j.KeyARN, r.plan.template)
	imageTags := copyTags(src.Tags, r.cfg.Tags, prov)
	imageTags[TagUnreported] = "true"
	spec := ebs.CopyImageSpec{
		SourceImageID: src.Shared, SourceRegion: src.Region,
		Name: j.Name, Description: j.Description, KmsKeyID: j.KeyARN,
		Tags:         imageTags,
		SnapshotTags: copyTags(src.Tags, r.cfg.SnapshotTags, prov),
	}
	failures, burnt := 0, 0
	for attempt := 0; ; attempt++ {
		// The first token is the same for every run, so a rerun after a kill
		// gets the dead run's copy back instead of a second one. Copies made
		// again are this run's own: their tokens carry its run ID, and a
		// later run never walks through the tokens of copies since removed.
		spec.ClientToken = clientToken(src.ImageID, j.Target.Account, j.Region, j.KeyARN, 0)
		if attempt > 0 {
			spec.ClientToken = clientToken(src.ImageID, j.Target.Account, j.Region, j.KeyARN+"|"+r.plan.run, attempt)
		}
		var id string
		sent := time.Now()
		started := sent
		err := r.retry.Retry(ctx, fanout.QuotaFull,
			func(n int, err error, pause time.Duration) {
				r.say("%s: the concurrent copy quota is full (%s); trying again in %s", j.Dest(), ebs.ErrorCode(err), pause.Round(time.Millisecond))
			},
			func(ctx context.Context) (err error) {
				sent = time.Now()
				id, err = ebs.CopyImageEncrypted(ctx, tc.EC2, spec)
				// The copy began while CopyImage was on the wire, between
				// sent and its answer: the pacing measures from the answer
				// (polls early rather than late) and allows for the time on
				// the wire (Slack) when it expects the copy done.
				started = time.Now()
				return err
			})
		if err != nil && ctx.Err() != nil {
			// Interrupted while CopyImage was on the wire: AWS may have
			// started the copy anyway. Look for it, so it is rolled back or
			// reported rather than left behind unknown.
			id = r.findInterruptedCopy(ctx, tc, j)
		}
		if ebs.IsCode(err, "IdempotentParameterMismatch") && burnt < maxBurntTokens {
			// An earlier run used this token with other parameters (say, a
			// name with a timestamp) and its copy is gone, or preflight would
			// have found it: take the next token.
			burnt++
			continue
		}
		if err != nil && id == "" {
			switch {
			case ebs.IsCode(err, "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidSnapshot.NotFound"):
				return nil, fmt.Errorf("%w; account %s no longer sees the source AMI %s in %s: its owner deregistered it, or its launch permission was removed, during the run", err, j.Target.Account, src.Shared, src.Region)
			case ebs.IsCode(err, "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestLimitExceeded") && failures+1 < copyAttempts:
				failures++
				r.say("%s: CopyImage failed (%s) after the SDK's own retries; trying again (%d of %d)", j.Dest(), ebs.ErrorCode(err), failures+1, copyAttempts)
				if perr := r.pause(ctx, failures); perr != nil {
					return nil, errors.Join(err, perr)
				}
				continue
			}
			return nil, err
		}
		j.ImageID, j.Made, j.State, j.seen = id, true, "pending", false
		forget := r.ledger.AddEntry(fanout.Entry{Kind: fanout.Rollback, What: fmt.Sprintf("copy %s in %s", id, j.Dest()),
			Detail: Record{Action: actionRollback, Account: j.Target.Account, Region: j.Region, Resource: id, Run: r.plan.run},
			Batch:  "copies", // each removes its own copy
			Undo: func(ctx context.Context) error {
				rm, err := ebs.RemoveImage(ctx, tc.EC2, r.poll, id, j.seen)
				j.removal = &rm // Unwind runs after every job has returned
				return goneErr(rm.Gone, err)
			}})
		r.say("%s: copying %s (%s) as %s under %s", j.Dest(), src.Shared, src.Region, id, j.KeyARN)
		img, err := r.waiter(tc).WaitPaced(ctx, id, ebs.WaitOptions{
			Progress: r.progress(j), Tick: r.tick(j), TickEvery: r.pacer.AWSTime(progressInterval),
			Started: started, Slack: started.Sub(sent), SizeGiB: src.SizeGiB, Class: copyClass(j),
		})
		if err == nil {
			return img, nil
		}
		var se *ebs.StateError
		if (ebs.IsNotFound(err) || errors.As(err, &se) && se.State == string(ec2types.ImageStateDeregistered)) && burnt < maxBurntTokens {
			// Deregistered, or still invisible long after CopyImage
			// answered: the token gave back a copy an earlier run removed.
			r.say("%s: %s is gone (its ClientToken was used by an earlier run's copy, since removed); copying with a new token", j.Dest(), id)
			forget()
			j.Made = false
			burnt++
			continue
		}
		if !errors.As(err, &se) {
			return nil, err
		}
		kind, cerr := r.classify(ctx, tc, j, se)
		failures++
		if kind == failPermanent {
			return nil, cerr
		}
		if failures >= copyAttempts {
			return nil, fmt.Errorf("the copy failed %d times, each a new copy; the last: %w", failures, cerr)
		}
		r.say("%s: %s failed: %s: %s; removing it and copying again (%d of %d)", j.Dest(), id, se.Reason, se.Message, failures+1, copyAttempts)
		if _, derr := ebs.RemoveImage(ctx, tc.EC2, r.poll, id, true); derr != nil {
			return nil, errors.Join(err, derr)
		}
		forget()
		j.Made = false
		if perr := r.pause(ctx, failures); perr != nil {
			return nil, errors.Join(err, perr)
		}
	}
}

// pause waits before retry n, or until ctx ends.
func (r *runner) pause(ctx context.Context, n int) error {
	t := time.NewTimer(r.retry.Pause(n))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// seen returns a progress callback that records that the copy was seen.
func (r *runner) seen(j *job) func(*ec2types.Image) {
	return func(*ec2types.Image) { j.seen = true }
}

// progressInterval is how often, in AWS time, a pending copy says how it
// goes, whether or not a poll saw it: first copies to a new region or key
// take tens of minutes.
const progressInterval = time.Minute

// copyClass groups the copies that take alike, for the pacing of polls.
func copyClass(j *job) string {
	if j.Region != j.Source.Region {
		return "cross-region"
	}
	return "in-region"
}

// progress records every poll that sees the copy, and says when its state
// or the snapshots behind it change. The regular lines come from tick.
// The final state is said by copyOne.
func (r *runner) progress(j *job) func(*ec2types.Image) {
	var seen string
	return func(img *ec2types.Image) {
		j.seen = true
		if img.State != ec2types.ImageStatePending || r.many() {
			return
		}
		snaps := ebs.ImageSnapshotIDs(img)
		now := string(img.State) + " " + strings.Join(snaps, ",")
		if now == seen {
			return
		}
		seen = now
		line := fmt.Sprintf("%s: %s %s after %s", j.Dest(), aws.ToString(img.ImageId), img.State, time.Since(j.Started).Round(time.Second))
		if len(snaps) > 0 {
			line += ", writing " + strings.Join(snaps, ", ")
		}
		r.say("%s", line)
	}
}

// tick says how a pending copy goes, every progressInterval, polled or
// not: its last Progress and when it is looked at next.
func (r *runner) tick(j *job) func(ebs.WaitStatus) {
	return func(st ebs.WaitStatus) {
		if r.many() {
			r.stand(j, copyStanding{state: standPending, percent: st.Percent})
			return
		}
		line := fmt.Sprintf("%s: %s pending after %s", j.Dest(), orDash(j.ImageID), st.Elapsed.Round(time.Second))
		if st.Percent >= 0 {
			line += fmt.Sprintf(", %d%% copied", st.Percent)
		}
		r.say("%s; next look in %s", line, max(st.NextPoll, 0).Round(time.Second))
	}
}

// findInterruptedCopy looks, with a fresh context, for a copy of j that an
// interrupted CopyImage may have started. The call may still be under way
// when the lookup starts, and a new image can be invisible for a moment
// (EC2 is eventually consistent), so an empty answer is asked again a few
// times, a poll delay apart (5 s at most), before it is believed.
func (r *runner) findInterruptedCopy(ctx context.Context, tc *clients, j *job) string {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	for try := range interruptedCopyLookups {
		if try > 0 {
			t := time.NewTimer(min(r.poll.Delay(), interruptedCopyPause))
			select {
			case <-fctx.Done():
				t.Stop()
				return ""
			case <-t.C:
			}
		}
		imgs, err := ebs.FindImagesByName(fctx, tc.EC2, "self", j.Name)
		if err != nil {
			continue
		}
		for _, img := range imgs {
			if ebs.TagMap(img.Tags)[TagSourceAMI] == j.Source.ImageID && img.State != ec2types.ImageStateDeregistered {
				return aws.ToString(img.ImageId)
			}
		}
	}
	return ""
}

// findInterruptedCopy asks interruptedCopyLookups times, at most
// interruptedCopyPause apart: an interrupted run ends at most 15 s later
// for it.
const (
	interruptedCopyLookups = 4
	interruptedCopyPause   = 5 * time.Second
)

// finish applies what follows a copy in the target account: launch
// permissions, deprecation, deregistration protection, Auto Scaling grant.
func (r *runner) finish(ctx context.Context, tc *clients, j *job) error {
	if !j.Target.Sharing.Empty() {
		if err := ebs.ShareImage(ctx, tc.EC2, j.ImageID, j.Target.Sharing); err != nil {
			return err
		}
	}
	if r.cfg.DeprecateAt != "" {
		at, _ := time.Parse(time.RFC3339, r.cfg.DeprecateAt) // validated in Prepare
		if err := ebs.DeprecateImage(ctx, tc.EC2, j.ImageID, at); err != nil {
			return err
		}
	}
	if r.cfg.DeregistrationProtection.Enabled {
		if err := ebs.ProtectImage(ctx, tc.EC2, j.ImageID, r.cfg.DeregistrationProtection.WithCooldown); err != nil {
			return err
		}
	}
	if r.cfg.GrantAutoscalingRole {
		return r.grantAutoscaling(ctx, tc, j)
	}
	return nil
}

// grantAutoscaling lets the target account's Auto Scaling role use the
// target key, once (found again by name on reruns). The grant is made from
// the target account, as AWS requires for a service-linked role.
func (r *runner) grantAutoscaling(ctx context.Context, tc *clients, j *job) error {
	grantee := autoscalingRole(j.Target.Account)
	pages := kms.NewListGrantsPaginator(tc.KMS, &kms.ListGrantsInput{KeyId: aws.String(j.KeyARN)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing the grants of %s: %w", j.KeyARN, err)
		}
		for _, g := range page.Grants {
			if aws.ToString(g.Name) == autoscalingGrantName && aws.ToString(g.GranteePrincipal) == grantee {
				return nil
			}
		}
	}
	_, err := ebs.CreateGrant(ctx, tc.KMS, ebs.GrantSpec{KeyARN: j.KeyARN, GranteePrincipal: grantee, Operations: autoscalingOps, Name: autoscalingGrantName})
	return err
}

// perCopyLines is the largest fan-out whose pending copies each say how
// they go every progressInterval. A larger one says it in one line for all
// (summarize): 500 copies would otherwise print 500 lines a minute.
const perCopyLines = 20

// many reports whether the run has more copies than perCopyLines.
func (r *runner) many() bool { return r.plan != nil && len(r.plan.jobs) > perCopyLines }

// Where a copy stands, for the summary line.
const (
	standPending = iota + 1
	standAvailable
	standFailed
)

// copyStanding is where one copy stands: pending (with its last Progress,
// negative when unknown), available or failed. A job without one has not
// started.
type copyStanding struct {
	state   int
	percent int
}

// stand records where j stands.
func (r *runner) stand(j *job, st copyStanding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.standing == nil {
		r.standing = map[*job]copyStanding{}
	}
	r.standing[j] = st
}

// summarize says, every progressInterval while the copies run, how a large
// fan-out stands, in one line. It returns the function that stops it.
func (r *runner) summarize() (stop func()) {
	if !r.many() {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(r.pacer.AWSTime(progressInterval))
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.say("%s after %s", r.summary(), time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// summary is the one line of a large fan-out: how many copies are pending
// (and how far their snapshots are), available, failed or not started.
func (r *runner) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var pending, available, failed, progressed int
	lo, hi := 100, 0
	for _, st := range r.standing {
		switch st.state {
		case standPending:
			pending++
			if st.percent >= 0 {
				progressed++
				lo, hi = min(lo, st.percent), max(hi, st.percent)
			}
		case standAvailable:
			available++
		case standFailed:
			failed++
		}
	}
	total := len(r.plan.jobs)
	line := fmt.Sprintf("%d of %d copies pending", pending, total)
	if progressed > 0 {
		line += fmt.Sprintf(" (%d%% to %d%% copied)", lo, hi)
	}
	line += fmt.Sprintf(", %d available, %d failed", available, failed)
	if waiting := total - pending - available - failed; waiting > 0 {
		line += fmt.Sprintf(", %d not started", waiting)
	}
	return line
}
