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
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/fanout"
)

// Copy failures whose state reason says the copying account could not use
// a key: on a fresh grant this is usually propagation, worth a retry.
const kmsStateReasonPrefix = "Client.InvalidKMSKey"

// copyAttempts bounds the copies of one job failed for a key reason.
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
	retry  fanout.Backoff // quota and propagation backoff
	runID  string         // distinguishes this run's transit copies

	mu      sync.Mutex
	waiters map[string]*ebs.ImageWaiter
}

func (r *runner) say(format string, args ...any) {
	r.ui.Say("amicrypt-copy: " + fmt.Sprintf(format, args...))
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
	w := ebs.NewImageWaiter(c.EC2, r.poll)
	r.waiters[key] = w
	return w
}

// execute makes every change of the plan and always cleans up. It returns
// the first error; each job carries its own outcome.
func (r *runner) execute(ctx context.Context) error {
	err := r.change(ctx)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}

	// Cleanup runs even after Ctrl-C, so it gets a context of its own.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var cleanupErrs []error
	if len(r.ledger.Pending(fanout.Cleanup)) > 0 {
		r.say("cleaning up: removing this run's shares and grants in the source account")
	}
	if done, cerr := r.ledger.Unwind(cctx, fanout.Cleanup); cerr != nil {
		cleanupErrs = append(cleanupErrs, cerr)
	} else {
		for _, d := range done {
			r.say("  undone: %s", d.What)
		}
	}
	if err != nil {
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
		if r.cfg.OnFailure == OnFailureRollback {
			if len(r.ledger.Pending(fanout.Rollback)) > 0 {
				r.say("rolling back: deregistering this run's copies and deleting their snapshots (on_failure = %q)", OnFailureRollback)
			}
			done, rerr := r.ledger.Unwind(cctx, fanout.Rollback)
			for _, d := range done {
				r.say("  rolled back: %s", d.What)
			}
			if rerr != nil {
				cleanupErrs = append(cleanupErrs, rerr)
			}
			for _, j := range r.plan.jobs {
				if j.rolledBack {
					j.Reason = strings.TrimPrefix(j.Reason+"; ", "; ") + "rolled back (was " + j.State + ")"
					j.State = "rolled back"
				}
			}
		} else {
			for _, j := range r.plan.jobs {
				if j.Made && j.State != "available" {
					r.say("  kept (on_failure = %q): %s in %s is %s", OnFailureKeep, j.ImageID, j.Dest(), j.State)
				}
			}
		}
	}
	if len(cleanupErrs) > 0 {
		left := append(r.ledger.Pending(fanout.Cleanup), r.ledger.Pending(fanout.Rollback)...)
		var what []string
		for _, e := range left {
			what = append(what, e.What)
		}
		cerr := fmt.Errorf("amicrypt-copy: cleanup incomplete; undo these by hand: %s: %w", strings.Join(what, "; "), errors.Join(cleanupErrs...))
		return errors.Join(err, cerr)
	}
	return err
}

// change is the part of the run that changes things: keys, transit copies,
// shares, grants, copies and what follows them.
func (r *runner) change(ctx context.Context) error {
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
	var jobs []fanout.Job[*job]
	for _, j := range r.plan.jobs {
		jobs = append(jobs, fanout.Job[*job]{Dest: fanout.Dest{Account: j.Target.Account, Region: j.Region}, Item: j})
	}
	results := fanout.Run(ctx, r.cfg.CopyConcurrency, fanout.NewLimiter(r.cfg.DestinationCopyLimit), jobs,
		func(ctx context.Context, fj fanout.Job[*job]) error { return r.copyOne(ctx, fj.Item) })
	for _, res := range results {
		if res.Err != nil && res.Item.Reason == "" {
			res.Item.Reason = res.Err.Error()
		}
	}
	return fanout.Errors(results)
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

// transit re-encrypts a source AMI under the transit key in the source
// account, because its AWS-managed key can't be shared.
func (r *runner) transit(ctx context.Context, src *source) error {
	sc := r.plan.sess.Source(src.Region)
	name := "amicrypt-transit-" + src.ImageID
	id, err := r.staleTransit(ctx, sc, src, name)
	if err != nil {
		return fmt.Errorf("source %s: %w", src.Region, err)
	}
	if id == "" {
		r.say("source %s: %s is under the AWS-managed key %s; re-encrypting it under the transit key %s", src.Region, src.ImageID, src.AWSManagedKey, src.TransitKey)
		id, err = ebs.CopyImageEncrypted(ctx, sc.EC2, ebs.CopyImageSpec{
			SourceImageID: src.ImageID, SourceRegion: src.Region,
			Name:        name,
			Description: "amicrypt transit copy of " + src.ImageID + "; deleted when amicrypt-copy ends",
			KmsKeyID:    src.TransitKey,
			// The transit copy lives for one run only, so its token is this run's.
			ClientToken: clientToken(src.ImageID, r.plan.sess.SourceAccount, src.Region, src.TransitKey+"|"+r.runID, 0),
			Tags:        map[string]string{TagTransitFor: src.ImageID},
		})
		if err != nil {
			return fmt.Errorf("source %s: transit copy of %s: %w", src.Region, src.ImageID, err)
		}
	}
	r.ledger.Add(fanout.Cleanup, fmt.Sprintf("transit copy %s in %s/%s", id, r.plan.sess.SourceAccount, src.Region),
		func(ctx context.Context) error { return ebs.DeleteImageWhenSettled(ctx, sc.EC2, r.poll, id) })
	img, err := r.waiter(sc).Wait(ctx, id, nil)
	if err != nil {
		return fmt.Errorf("source %s: transit copy %s: %w", src.Region, id, err)
	}
	if _, err := ebs.VerifyImageEncrypted(ctx, sc.EC2, id, src.TransitKey); err != nil {
		return fmt.Errorf("source %s: transit copy: %w", src.Region, err)
	}
	src.Shared = id
	src.SharedSnaps = ebs.ImageSnapshotIDs(img)
	r.say("source %s: transit copy %s is available", src.Region, id)
	return nil
}

// staleTransit finds the transit copy of src that a run killed before its
// cleanup left under name (which would block a new one). One under the
// transit key, available or pending, is returned for reuse; any other is
// deleted. Its shares go with it when this run deletes it.
func (r *runner) staleTransit(ctx context.Context, sc *clients, src *source, name string) (string, error) {
	prior, err := ebs.FindImagesByName(ctx, sc.EC2, "self", name)
	if err != nil {
		return "", fmt.Errorf("looking for a transit copy left by an earlier run: %w", err)
	}
	for _, img := range prior {
		id := aws.ToString(img.ImageId)
		if ebs.TagMap(img.Tags)[TagTransitFor] != src.ImageID || img.State == ec2types.ImageStateDeregistered {
			continue // not ours: CopyImage reports the name in use
		}
		usable := img.State == ec2types.ImageStateAvailable || img.State == ec2types.ImageStatePending
		if usable {
			usable = r.underKey(ctx, sc, &img, src.TransitKey)
		}
		if usable {
			r.say("source %s: transit copy %s was left by an earlier run; reusing it, and deleting it at the end", src.Region, id)
			return id, nil
		}
		r.say("source %s: deleting transit copy %s (%s) left by an earlier run", src.Region, id, img.State)
		if err := ebs.DeleteImageWhenSettled(ctx, sc.EC2, r.poll, id); err != nil {
			return "", fmt.Errorf("deleting transit copy %s left by an earlier run: %w", id, err)
		}
	}
	return "", nil
}

// underKey reports whether every snapshot of img that DescribeSnapshots
// shows (a pending copy may list none yet) is under keyARN. The keys come
// from DescribeSnapshots: DescribeImages doesn't return them.
func (r *runner) underKey(ctx context.Context, sc *clients, img *ec2types.Image, keyARN string) bool {
	snaps, err := ebs.FindSnapshots(ctx, sc.EC2, ebs.ImageSnapshotIDs(img))
	if err != nil {
		return false // unreadable: not worth reusing
	}
	for _, s := range snaps {
		if aws.ToString(s.KmsKeyId) != keyARN {
			return false // made under another transit key
		}
	}
	return true
}

// share gives exactly the target accounts that copy from src what they
// need: a grant on each key, a launch permission and createVolume
// permissions. Only what this run adds, or what an earlier run killed
// before its cleanup added (read from its grants' names), is recorded for
// removal; permissions that existed otherwise are left alone.
func (r *runner) share(ctx context.Context, src *source) error {
	var accounts []string
	roles := map[string]string{}
	for _, j := range r.plan.jobs {
		if j.Source == src && !j.Target.IsSource && j.Existing == "" {
			if _, ok := roles[j.Target.Account]; !ok {
				accounts = append(accounts, j.Target.Account)
			}
			roles[j.Target.Account] = j.Target.RoleARN
		}
	}
	sort.Strings(accounts)
	sc := r.plan.sess.Source(src.Region)
	account := r.plan.sess.SourceAccount

	// Even when every copy exists already (a rerun after a kill), what the
	// killed run lent is found and taken back.
	stale := map[string]shared{}
	for _, keyARN := range src.SharedKeys {
		if err := r.adoptStaleGrants(ctx, sc, src, keyARN, stale); err != nil {
			return fmt.Errorf("source %s: %w", src.Region, err)
		}
	}
	if src.TransitKey != "" {
		// The permissions of an earlier run were on its own transit copy.
		stale = map[string]shared{}
	}
	if len(accounts) == 0 && len(stale) == 0 {
		return nil
	}

	attr, err := sc.EC2.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(src.Shared), Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil {
		return fmt.Errorf("source %s: reading the launch permissions of %s: %w", src.Region, src.Shared, err)
	}
	held := map[string]shared{} // what this run must remove, by account
	launch := planPermissions(accounts, stale, launchUsers(attr.LaunchPermissions), func(s shared) bool { return s.launch })
	for _, a := range launch.remove {
		held[a] = shared{launch: true}
	}
	volumes := map[string]permissionPlan{}
	for _, snap := range src.SharedSnaps {
		attr, err := sc.EC2.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(snap), Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission})
		if err != nil {
			return fmt.Errorf("source %s: reading the createVolume permissions of %s: %w", src.Region, snap, err)
		}
		had := map[string]bool{}
		for _, p := range attr.CreateVolumePermissions {
			had[aws.ToString(p.UserId)] = true
		}
		volumes[snap] = planPermissions(accounts, stale, had, func(s shared) bool { return s.volume })
		for _, a := range volumes[snap].remove {
			h := held[a]
			h.volume = true
			held[a] = h
		}
	}

	// Grants first: their names record the permissions that follow.
	for _, keyARN := range src.SharedKeys {
		for _, acct := range accounts {
			name := grantName(src.ImageID, acct, held[acct])
			g, err := ebs.CreateGrant(ctx, sc.KMS, ebs.GrantSpec{
				KeyARN: keyARN, GranteePrincipal: roles[acct], RetiringPrincipal: r.plan.sess.SourcePrincipal,
				Operations: ebs.CrossAccountCopyOps, Name: name,
			})
			if err != nil {
				return fmt.Errorf("source %s: %w", src.Region, err)
			}
			r.ledger.Add(fanout.Cleanup, fmt.Sprintf("grant %s (%s) on %s for %s", g.ID, name, keyARN, roles[acct]),
				func(ctx context.Context) error { return ebs.RetireGrant(ctx, sc.KMS, g) })
		}
		if len(accounts) > 0 {
			r.say("source %s: granted %s use of %s until the copies are done", src.Region, strings.Join(accounts, ", "), keyARN)
		}
	}
	// Each removal is recorded before its share: a share interrupted on the
	// wire may have been made, and removing one that was not is harmless.
	if len(launch.remove) > 0 {
		r.ledger.Add(fanout.Cleanup, fmt.Sprintf("launch permission on %s (%s/%s) for %s", src.Shared, account, src.Region, strings.Join(launch.remove, ", ")),
			func(ctx context.Context) error {
				return ebs.UnshareImage(ctx, sc.EC2, src.Shared, ebs.Sharing{Users: launch.remove})
			})
	}
	if len(launch.add) > 0 {
		if err := ebs.ShareImage(ctx, sc.EC2, src.Shared, ebs.Sharing{Users: launch.add}); err != nil {
			return fmt.Errorf("source %s: %w", src.Region, err)
		}
		r.say("source %s: %s may be launched by %s until the copies are done", src.Region, src.Shared, strings.Join(launch.add, ", "))
	}
	for _, snap := range src.SharedSnaps {
		v := volumes[snap]
		if len(v.remove) > 0 {
			r.ledger.Add(fanout.Cleanup, fmt.Sprintf("createVolume permission on %s (%s/%s) for %s", snap, account, src.Region, strings.Join(v.remove, ", ")),
				func(ctx context.Context) error { return ebs.UnshareSnapshot(ctx, sc.EC2, snap, v.remove) })
		}
		if len(v.add) > 0 {
			if err := ebs.ShareSnapshot(ctx, sc.EC2, snap, v.add); err != nil {
				return fmt.Errorf("source %s: %w", src.Region, err)
			}
		}
	}
	return nil
}

// permissionPlan is what to do with one permission list: add these
// accounts, and remove these (those added, and those a killed run added)
// when the run ends.
type permissionPlan struct{ add, remove []string }

// planPermissions plans one permission list for the accounts that need it,
// given who has it already and what killed runs left (stale, read through
// kind).
func planPermissions(accounts []string, stale map[string]shared, had map[string]bool, kind func(shared) bool) permissionPlan {
	var p permissionPlan
	for _, a := range accounts {
		if !had[a] {
			p.add = append(p.add, a)
		}
	}
	for _, a := range slices.Sorted(maps.Keys(stale)) {
		if had[a] && kind(stale[a]) {
			p.remove = append(p.remove, a)
		}
	}
	p.remove = append(p.remove, p.add...)
	sort.Strings(p.remove)
	return p
}

func launchUsers(perms []ec2types.LaunchPermission) map[string]bool {
	had := map[string]bool{}
	for _, lp := range perms {
		had[aws.ToString(lp.UserId)] = true
	}
	return had
}

// adoptStaleGrants finds, by name, grants on keyARN that an earlier run for
// the same source AMI left behind (a run killed before its cleanup),
// records them for retirement with this run's, and notes in stale the
// permissions their names say that run held.
func (r *runner) adoptStaleGrants(ctx context.Context, sc *clients, src *source, keyARN string, stale map[string]shared) error {
	p := kms.NewListGrantsPaginator(sc.KMS, &kms.ListGrantsInput{KeyId: aws.String(keyARN)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing the grants of %s: %w", keyARN, err)
		}
		for _, g := range page.Grants {
			name := aws.ToString(g.Name)
			acct, held, ok := parseGrantName(src.ImageID, name)
			if !ok {
				continue
			}
			s := stale[acct]
			stale[acct] = shared{launch: s.launch || held.launch, volume: s.volume || held.volume}
			grant := ebs.Grant{KeyARN: keyARN, ID: aws.ToString(g.GrantId)}
			r.say("source %s: grant %s (%s) was left by an earlier run; it will be retired with this run's, with the permissions its name records", src.Region, grant.ID, name)
			r.ledger.Add(fanout.Cleanup, fmt.Sprintf("grant %s (%s) on %s left by an earlier run", grant.ID, name, keyARN),
				func(ctx context.Context) error {
					if err := ebs.RetireGrant(ctx, sc.KMS, grant); err == nil || !ebs.IsCode(err, "AccessDeniedException") {
						return err
					}
					// Another principal may retire it; as key administrator, revoke it.
					return ebs.RevokeGrant(ctx, sc.KMS, grant)
				})
		}
	}
	return nil
}

// copyOne makes (or finds) the copy of one job, reads it back and finishes it.
func (r *runner) copyOne(ctx context.Context, j *job) error {
	return r.copyWith(ctx, r.clientsFor(j), j)
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
		if img, err = r.waiter(tc).Wait(ctx, j.ImageID, nil); err != nil {
			return fail(waitState(err), err)
		}
	} else {
		if j.Failed != "" {
			// A failed copy an earlier run kept (on_failure = "keep") holds
			// the name; it is of no use to anyone.
			if err := ebs.DeleteImageWhenSettled(ctx, tc.EC2, r.poll, j.Failed); err != nil {
				return fail("failed", fmt.Errorf("removing %s, a failed copy an earlier run kept: %w", j.Failed, err))
			}
			r.say("%s: removed %s, a failed copy an earlier run kept; copying again", j.Dest(), j.Failed)
		}
		if !j.Target.IsSource {
			if err := r.awaitGrant(ctx, tc, j); err != nil {
				return fail(waitState(err), err)
			}
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
	r.say("%s: %s read back: %s encrypted under %s", j.Dest(), j.ImageID, strings.Join(v.Snapshots, ", "), j.KeyARN)
	if err := r.finish(ctx, tc, j); err != nil {
		return fail("available", err)
	}
	j.State = "available"
	r.say("%s: %s available under %s (%s)", j.Dest(), j.ImageID, j.KeyARN, time.Since(j.Started).Round(time.Millisecond))
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

// awaitGrant waits until the target role can use every shared source key:
// a grant takes up to about five minutes to work, and a copy started
// before would fail.
func (r *runner) awaitGrant(ctx context.Context, tc *clients, j *job) error {
	gctx, cancel := context.WithTimeout(ctx, r.cfg.grantPropagation)
	defer cancel()
	// A key answers only in its own region: probe from the source region.
	tc = r.plan.sess.Target(j.Target.Account, j.Target.RoleARN, j.Target.ExternalID, j.Source.Region)
	for _, keyARN := range j.Source.SharedKeys {
		err := r.retry.Retry(gctx, func(err error) bool { return ebs.IsCode(err, "AccessDeniedException", "NotFoundException") },
			nil,
			func(ctx context.Context) error {
				_, err := tc.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyARN)})
				return err
			})
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted while waiting for the grant on %s to take effect: %w", keyARN, ctx.Err())
		}
		if err != nil {
			return fmt.Errorf("the grant on source key %s did not take effect for %s within %s (grant_propagation_timeout): %w", keyARN, j.Target.RoleARN, r.cfg.grantPropagation, err)
		}
	}
	return nil
}

// copyWithRetries starts the copy, backing off while the destination's
// copy quota is full, and starts it again (bounded) when it fails because
// a key could not be used yet. It returns the copy as the wait saw it
// become available.
func (r *runner) copyWithRetries(ctx context.Context, tc *clients, j *job) (*ec2types.Image, error) {
	src := j.Source
	prov := provenance(src, r.plan.sess.SourceAccount, j.KeyARN)
	spec := ebs.CopyImageSpec{
		SourceImageID: src.Shared, SourceRegion: src.Region,
		Name: j.Name, Description: j.Description, KmsKeyID: j.KeyARN,
		Tags:         copyTags(src.Tags, r.cfg.Tags, prov),
		SnapshotTags: copyTags(src.Tags, r.cfg.SnapshotTags, prov),
	}
	kmsFailures, burnt := 0, 0
	for attempt := 0; ; attempt++ {
		spec.ClientToken = clientToken(src.ImageID, j.Target.Account, j.Region, j.KeyARN, attempt)
		var id string
		err := r.retry.Retry(ctx, fanout.QuotaFull,
			func(n int, err error, pause time.Duration) {
				r.say("%s: the concurrent copy quota is full (%s); trying again in %s", j.Dest(), ebs.ErrorCode(err), pause.Round(time.Millisecond))
			},
			func(ctx context.Context) (err error) {
				id, err = ebs.CopyImageEncrypted(ctx, tc.EC2, spec)
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
			return nil, err
		}
		j.ImageID, j.Made, j.State = id, true, "pending"
		forget := r.ledger.Add(fanout.Rollback, fmt.Sprintf("copy %s in %s", id, j.Dest()),
			func(ctx context.Context) error {
				err := ebs.DeleteImageWhenSettled(ctx, tc.EC2, r.poll, id)
				j.rolledBack = err == nil // Unwind runs after every job has returned
				return err
			})
		r.say("%s: copying %s (%s) as %s under %s", j.Dest(), src.Shared, src.Region, id, j.KeyARN)
		img, err := r.waiter(tc).Wait(ctx, id, r.progress(j))
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
		kmsFailures++
		if !errors.As(err, &se) || !strings.HasPrefix(se.Reason, kmsStateReasonPrefix) || kmsFailures >= copyAttempts || j.Target.IsSource {
			return nil, err
		}
		r.say("%s: %s failed: %s: %s; a new grant may not have taken effect yet, copying again", j.Dest(), id, se.Reason, se.Message)
		if derr := ebs.DeleteImageAndSnapshots(ctx, tc.EC2, id); derr != nil {
			return nil, errors.Join(err, derr)
		}
		forget()
		pause := r.retry.Pause(kmsFailures)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
	}
}

// progressInterval is how often a copy whose state has not changed says it
// is still going: first copies to a new region or key take tens of minutes.
const progressInterval = time.Minute

// progress reports a copy as the batched poll sees it: a line when its state
// or the snapshots behind it change, and one a progressInterval while
// nothing does. DescribeImages carries no snapshot Progress, and a
// DescribeSnapshots per copy would break the one-call-per-poll batching, so
// the percentage is not shown. The final state is said by copyOne.
func (r *runner) progress(j *job) func(*ec2types.Image) {
	var seen string
	var said time.Time
	return func(img *ec2types.Image) {
		if img.State != ec2types.ImageStatePending {
			return
		}
		snaps := ebs.ImageSnapshotIDs(img)
		now := string(img.State) + " " + strings.Join(snaps, ",")
		if now == seen && time.Since(said) < progressInterval {
			return
		}
		seen, said = now, time.Now()
		line := fmt.Sprintf("%s: %s %s after %s", j.Dest(), aws.ToString(img.ImageId), img.State, time.Since(j.Started).Round(time.Second))
		if len(snaps) > 0 {
			line += ", writing " + strings.Join(snaps, ", ")
		}
		r.say("%s", line)
	}
}

// findInterruptedCopy looks, with a fresh context, for a copy of j that an
// interrupted CopyImage may have started.
func (r *runner) findInterruptedCopy(ctx context.Context, tc *clients, j *job) string {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	imgs, err := ebs.FindImagesByName(fctx, tc.EC2, "self", j.Name)
	if err != nil {
		return ""
	}
	for _, img := range imgs {
		if ebs.TagMap(img.Tags)[TagSourceAMI] == j.Source.ImageID && img.State != ec2types.ImageStateDeregistered {
			return aws.ToString(img.ImageId)
		}
	}
	return ""
}

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
