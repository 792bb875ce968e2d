package copy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"golang.org/x/sync/errgroup"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/fanout"
)

// transit re-encrypts a source AMI under the transit key in the source
// account, because its AWS-managed key can't be shared. The transit copy
// carries this run's lease from its creation.
func (r *runner) transit(ctx context.Context, src *source) error {
	sc := r.plan.sess.Source(src.Region)
	name := "amicrypt-transit-" + src.ImageID
	id, err := r.staleTransit(ctx, sc, src, name)
	if err != nil {
		return fmt.Errorf("source %s: %w", src.Region, err)
	}
	l := r.lease.lease
	l.Expires = r.plan.sess.clock.Now().Add(r.cfg.leaseDuration)
	leaseTag := map[string]string{leaseTagKey(l.Run): l.tagValue()}
	if id == "" {
		r.say("source %s: %s is under the AWS-managed key %s; re-encrypting it under the transit key %s", src.Region, src.ImageID, src.AWSManagedKey, src.TransitKey)
		id, err = ebs.CopyImageEncrypted(ctx, sc.EC2, ebs.CopyImageSpec{
			SourceImageID: src.ImageID, SourceRegion: src.Region,
			Name:        name,
			Description: "amicrypt transit copy of " + src.ImageID + "; deleted when amicrypt-copy ends",
			KmsKeyID:    src.TransitKey,
			// The transit copy lives for one run only, so its token is this run's.
			ClientToken:  clientToken(src.ImageID, r.plan.sess.SourceAccount, src.Region, src.TransitKey+"|"+r.plan.run, 0),
			Tags:         map[string]string{TagTransitFor: src.ImageID, leaseTagKey(l.Run): l.tagValue()},
			SnapshotTags: leaseTag,
		})
		if err != nil {
			return fmt.Errorf("source %s: transit copy of %s: %w", src.Region, src.ImageID, err)
		}
	}
	if err := r.lease.take(ctx, src.Region, sc.EC2, id); err != nil {
		return fmt.Errorf("source %s: %w", src.Region, err)
	}
	r.ledger.AddDetail(fanout.Cleanup, fmt.Sprintf("transit copy %s in %s/%s", id, r.plan.sess.SourceAccount, src.Region),
		Record{Action: actionTransit, Account: r.plan.sess.SourceAccount, Region: src.Region, Resource: id, Run: r.plan.run},
		func(ctx context.Context) error { return removeImage(ctx, sc, r, id, true) })
	img, err := r.waiter(sc).Wait(ctx, id, nil)
	if err != nil {
		return fmt.Errorf("source %s: transit copy %s: %w", src.Region, id, err)
	}
	if _, err := ebs.VerifyImageEncrypted(ctx, sc.EC2, id, src.TransitKey); err != nil {
		return fmt.Errorf("source %s: transit copy: %w", src.Region, err)
	}
	src.Shared = id
	src.SharedSnaps = ebs.ImageSnapshotIDs(img)
	if err := r.lease.take(ctx, src.Region, sc.EC2, src.SharedSnaps...); err != nil {
		return fmt.Errorf("source %s: %w", src.Region, err)
	}
	r.say("source %s: transit copy %s is available", src.Region, id)
	return nil
}

// removeImage removes an image and its snapshots for a ledger entry,
// answering fanout.ErrGone when it was gone already.
func removeImage(ctx context.Context, c *clients, r *runner, id string, seen bool) error {
	rm, err := ebs.RemoveImage(ctx, c.EC2, r.poll, id, seen)
	if err == nil && rm.Gone {
		return fanout.ErrGone
	}
	return err
}

// staleTransit finds the transit copy of src that a run killed before its
// cleanup left under name (which would block a new one). One under the
// transit key, available or pending, is returned for reuse; any other is
// deleted. A transit copy a live run leases is that run's: this run stops.
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
		if live := r.plan.survey.leasedByOther(src.Region, id, nil); live != "" {
			return "", fmt.Errorf("transit copy %s of %s belongs to run %s, which is still working; wait for it to end", id, src.ImageID, live)
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
		if _, err := ebs.RemoveImage(ctx, sc.EC2, r.poll, id, true); err != nil {
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
// permissions. Only what this run adds is recorded for removal, and in the
// grant's name; permissions that existed are left alone. Everything lent
// here already carries this run's lease.
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
	if len(accounts) == 0 {
		return nil
	}
	sort.Strings(accounts)
	sc := r.plan.sess.Source(src.Region)
	account := r.plan.sess.SourceAccount

	attr, err := sc.EC2.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(src.Shared), Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil {
		return fmt.Errorf("source %s: reading the launch permissions of %s: %w", src.Region, src.Shared, err)
	}
	held := map[string]shared{} // what this run adds, so removes, by account
	launch := planPermissions(accounts, launchUsers(attr.LaunchPermissions))
	for _, a := range launch {
		held[a] = shared{launch: true}
	}
	volumes := map[string][]string{}
	for _, snap := range src.SharedSnaps {
		attr, err := sc.EC2.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(snap), Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission})
		if err != nil {
			return fmt.Errorf("source %s: reading the createVolume permissions of %s: %w", src.Region, snap, err)
		}
		had := map[string]bool{}
		for _, p := range attr.CreateVolumePermissions {
			had[aws.ToString(p.UserId)] = true
		}
		volumes[snap] = planPermissions(accounts, had)
		for _, a := range volumes[snap] {
			h := held[a]
			h.volume = true
			held[a] = h
		}
	}

	// Grants first: their names record the permissions that follow. The
	// grants of one key are independent: made at once, taken back at once.
	for _, keyARN := range src.SharedKeys {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(preflightConcurrency)
		for _, acct := range accounts {
			g.Go(func() error { return r.lend(gctx, sc, src, keyARN, acct, roles[acct], held[acct]) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
		r.say("source %s: granted %s use of %s until the copies are done", src.Region, strings.Join(accounts, ", "), keyARN)
	}
	// Each removal is recorded before its share: a share interrupted on the
	// wire may have been made, and removing one that was not is harmless.
	if len(launch) > 0 {
		r.ledger.AddDetail(fanout.Cleanup, fmt.Sprintf("launch permission on %s (%s/%s) for %s", src.Shared, account, src.Region, strings.Join(launch, ", ")),
			Record{Action: actionLaunch, Account: account, Region: src.Region, Resource: src.Shared, For: launch, Run: r.plan.run},
			func(ctx context.Context) error {
				return goneErr(ebs.RemoveLaunchPermissions(ctx, sc.EC2, src.Shared, ebs.Sharing{Users: launch}))
			})
		if err := ebs.ShareImage(ctx, sc.EC2, src.Shared, ebs.Sharing{Users: launch}); err != nil {
			if ebs.IsCode(err, "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable") {
				return fmt.Errorf("source %s: the source AMI %s is gone (deregistered during the run): %w", src.Region, src.Shared, err)
			}
			return fmt.Errorf("source %s: %w", src.Region, err)
		}
		r.say("source %s: %s may be launched by %s until the copies are done", src.Region, src.Shared, strings.Join(launch, ", "))
	}
	for _, snap := range src.SharedSnaps {
		add := volumes[snap]
		if len(add) == 0 {
			continue
		}
		r.ledger.AddDetail(fanout.Cleanup, fmt.Sprintf("createVolume permission on %s (%s/%s) for %s", snap, account, src.Region, strings.Join(add, ", ")),
			Record{Action: actionVolume, Account: account, Region: src.Region, Resource: snap, For: add, Run: r.plan.run},
			func(ctx context.Context) error {
				return goneErr(ebs.RemoveCreateVolumePermissions(ctx, sc.EC2, snap, add))
			})
		if err := ebs.ShareSnapshot(ctx, sc.EC2, snap, add); err != nil {
			if ebs.IsCode(err, "InvalidSnapshot.NotFound") {
				return fmt.Errorf("source %s: the source snapshot %s is gone (deleted during the run): %w", src.Region, snap, err)
			}
			return fmt.Errorf("source %s: %w", src.Region, err)
		}
	}
	return nil
}

// lend grants role (of account acct) use of the source key keyARN, and
// records the grant for the cleanup.
func (r *runner) lend(ctx context.Context, sc *clients, src *source, keyARN, acct, role string, held shared) error {
	name := grantName(r.plan.run, r.plan.template, acct, src.Shared, held)
	g, err := ebs.CreateGrant(ctx, sc.KMS, ebs.GrantSpec{
		KeyARN: keyARN, GranteePrincipal: role, RetiringPrincipal: r.plan.sess.SourcePrincipal,
		Operations: ebs.CrossAccountCopyOps, Name: name,
	})
	if err != nil {
		return fmt.Errorf("source %s: %w", src.Region, err)
	}
	r.ledger.AddEntry(fanout.Entry{Kind: fanout.Cleanup, What: fmt.Sprintf("grant %s (%s) on %s for %s", g.ID, name, keyARN, role),
		Detail: Record{Action: actionGrant, Account: r.plan.sess.SourceAccount, Region: src.Region, Resource: g.ID, Key: keyARN, For: []string{role}, Run: r.plan.run},
		Batch:  "grants on " + keyARN,
		Undo: func(ctx context.Context) error {
			r.mu.Lock()
			keep := r.unremoved[src.Region+"/"+acct]
			r.mu.Unlock()
			if keep {
				return &leftError{why: "a permission it records could not be removed; it stays so that the next run, once this run's lease expires, takes both back"}
			}
			return goneErr(ebs.TakeBackGrant(ctx, sc.KMS, g))
		}})
	return nil
}

// goneErr turns a (gone, err) answer into an undo's error.
func goneErr(gone bool, err error) error {
	if err == nil && gone {
		return fanout.ErrGone
	}
	return err
}

// planPermissions lists the accounts that need a permission and don't have
// it: this run adds them, and removes them at the end.
func planPermissions(accounts []string, had map[string]bool) []string {
	var add []string
	for _, a := range accounts {
		if !had[a] {
			add = append(add, a)
		}
	}
	return add
}

func launchUsers(perms []ec2types.LaunchPermission) map[string]bool {
	had := map[string]bool{}
	for _, lp := range perms {
		had[aws.ToString(lp.UserId)] = true
	}
	return had
}

// checkKeys is the last check before any copy: every target role uses each
// source key the way EC2 will on its behalf (DescribeKey, then
// GenerateDataKeyWithoutPlaintext, Decrypt, ReEncrypt to its own key and
// CreateGrant with DryRun). For a lent key it first waits until the grant
// works (a grant can take minutes). A refusal stops the run before the
// first copy, naming the permission and the policy that refuses it.
func (r *runner) checkKeys(ctx context.Context) error {
	type pair struct {
		t   *target
		src *source
	}
	var pairs []pair
	for _, j := range r.plan.jobs {
		p := pair{j.Target, j.Source}
		if j.Existing == "" && !slices.Contains(pairs, p) {
			pairs = append(pairs, p)
		}
	}
	errs := make([]error, len(pairs))
	var g errgroup.Group
	g.SetLimit(preflightConcurrency)
	for i, p := range pairs {
		g.Go(func() error {
			errs[i] = r.checkKeyUse(ctx, p.t, p.src)
			return nil
		})
	}
	_ = g.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, j := range r.plan.jobs {
			for i, p := range pairs {
				if errs[i] != nil && p.t == j.Target && p.src == j.Source && j.Reason == "" {
					j.State, j.Reason = "not started", errs[i].Error()
				}
			}
		}
		return fmt.Errorf("checking the copy roles' use of the source keys, before any copy: %w", err)
	}
	return nil
}

// checkKeyUse is checkKeys for one target account and source.
func (r *runner) checkKeyUse(ctx context.Context, t *target, src *source) error {
	// A key answers only in its own region: check from the source region.
	tc := r.plan.sess.Target(t.Account, t.RoleARN, t.ExternalID, src.Region)
	role := t.RoleARN
	var targetKey string
	for _, j := range r.plan.jobs {
		if j.Target == t && j.Region == src.Region && j.KeyARN != "" {
			targetKey = j.KeyARN
		}
	}
	encCtx := map[string]string{"amicrypt:check": r.plan.run}
	for _, keyARN := range src.SharedKeys {
		fail := func(action string, err error) error {
			switch {
			case ebs.IsCode(err, "DisabledException"):
				return fmt.Errorf("%s: the source key %s is disabled (%s as %s): %w; fix: enable it", t.Account, keyARN, action, role, err)
			case ebs.IsCode(err, "KMSInvalidStateException"):
				return fmt.Errorf("%s: the source key %s can't be used (%s as %s): %w; fix: cancel its deletion", t.Account, keyARN, action, role, err)
			}
			return fmt.Errorf("%s: %s may not use the source key %s (%s): %w; fix: %s", t.Account, role, keyARN, action, err,
				fixOr(err, role, action, keyARN, "check the grant and the role's IAM policy"))
		}
		gctx, cancel := context.WithTimeout(ctx, r.cfg.grantPropagation)
		err := r.retry.Retry(gctx, func(err error) bool {
			by, denied := ebs.AccessDenied(err)
			// Until the grant works the key policy refuses the role; its own
			// IAM policy refusing is no matter of time.
			return !t.IsSource && (ebs.IsCode(err, "NotFoundException") || denied && by != ebs.DeniedByIdentityPolicy)
		}, nil, func(ctx context.Context) error {
			_, err := tc.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyARN)})
			return err
		})
		cancel()
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%s: interrupted while waiting for the grant on %s to take effect: %w", t.Account, keyARN, ctx.Err())
		case err != nil && gctx.Err() != nil && !t.IsSource:
			return fmt.Errorf("%s: the grant on source key %s did not take effect for %s within %s (grant_propagation_timeout): %w", t.Account, keyARN, role, r.cfg.grantPropagation, err)
		case err != nil:
			return fail("kms:DescribeKey", err)
		}
		// EC2 makes these calls on the role's behalf. A policy may allow them
		// only through EC2 (kms:ViaService, kms:GrantIsForAWSResource): then
		// the direct call is refused without an explicit deny, proving
		// nothing, and the check stops there.
		undecided := func(err error) bool {
			_, denied := ebs.AccessDenied(err)
			return denied && !ebs.ExplicitDeny(err)
		}
		out, err := tc.KMS.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{
			KeyId: aws.String(keyARN), KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: encCtx})
		switch {
		case undecided(err):
			continue
		case err != nil:
			return fail("kms:GenerateDataKeyWithoutPlaintext", err)
		}
		if _, err := tc.KMS.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.CiphertextBlob, KeyId: aws.String(keyARN), EncryptionContext: encCtx}); err != nil && !undecided(err) {
			return fail("kms:Decrypt", err)
		}
		if targetKey != "" {
			_, err := tc.KMS.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: out.CiphertextBlob, SourceKeyId: aws.String(keyARN), SourceEncryptionContext: encCtx,
				DestinationKeyId: aws.String(targetKey), DestinationEncryptionContext: encCtx})
			if err != nil && !undecided(err) {
				// ReEncrypt needs kms:ReEncryptFrom on the source key and
				// kms:ReEncryptTo on the target key; the error's reason says
				// which policy refuses.
				return fmt.Errorf("%s: %s may not re-encrypt from the source key %s to its own key %s (kms:ReEncryptFrom, kms:ReEncryptTo): %w; fix: %s",
					t.Account, role, keyARN, targetKey, err,
					fixOr(err, role, "kms:ReEncryptFrom (on "+keyARN+") and kms:ReEncryptTo", targetKey, "check the grant and the role's IAM policy"))
			}
		}
		if _, err := ebs.CreateGrant(ctx, tc.KMS, ebs.GrantSpec{KeyARN: keyARN, GranteePrincipal: role,
			Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt}, DryRun: true}); err != nil && !undecided(err) {
			return fail("kms:CreateGrant", err)
		}
	}
	return nil
}
