package ebs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"golang.org/x/sync/errgroup"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepCopyRegions copies the AMI to each of ami_regions, encrypted under
// that region's key, in parallel. Cleanup removes the copies if the build is
// abandoned.
type stepCopyRegions struct{}

func (s *stepCopyRegions) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	if len(c.AMIRegions) == 0 {
		return multistep.ActionContinue
	}
	sourceID := b.ami(c.RawRegion)
	ui(state).Say(fmt.Sprintf("Copying %s to %v…", sourceID, c.AMIRegions))
	g, gctx := errgroup.WithContext(ctx)
	for _, region := range c.AMIRegions {
		g.Go(func() error { return s.copyTo(gctx, state, region, sourceID) })
	}
	if err := g.Wait(); err != nil {
		return halt(state, err)
	}
	return multistep.ActionContinue
}

// regionCopyAttempts is how many copies to a region may be started in all:
// a copy that fails (AWS's Server.InternalError, say) is removed and a
// fresh one started, as a failed snapshot copy is (docs/aws-behaviour.md:
// copies can fail after being accepted).
const regionCopyAttempts = 3

// copyTo copies the AMI to region under its key and waits for it; a copy
// that fails is removed and tried afresh, unless the region's key is the
// cause.
func (s *stepCopyRegions) copyTo(ctx context.Context, state multistep.StateBag, region, sourceID string) error {
	b := getBuild(state)
	c := b.config
	client := b.clients.EC2(region)
	key := b.regionKeys[region]
	var lastErr error
	for attempt := 1; attempt <= regionCopyAttempts; attempt++ {
		// A fresh copy needs a token of its own: the first one's would
		// give back the failed copy.
		token := copyToken(sourceID, region, key)
		if attempt > 1 {
			token = copyToken(fmt.Sprintf("%s#%d", sourceID, attempt), region, key)
		}
		id, err := ebs.CopyImageEncrypted(ctx, client, ebs.CopyImageSpec{
			SourceImageID: sourceID, SourceRegion: c.RawRegion, Name: c.AMIName, Description: b.tags.description,
			KmsKeyID: key, ClientToken: token,
			Tags: b.leaseTags(b.imageTags()), SnapshotTags: b.leaseTags(b.snapshotTags()),
			CompletionMinutes: c.SnapshotCopyDurationMinutes,
		})
		if err != nil {
			return b.regionError(ctx, region, err)
		}
		b.setAMI(region, id)
		b.track(region, id)
		detail(ui(state), fmt.Sprintf("%s: copy %s started under %s", region, id, key))
		progress := imageProgress(ui(state), region+": copy", stillWaitingEvery, time.Now)
		img, err := ebs.WaitImageAvailable(ctx, client, c.PollingConfig, id, progress)
		if err == nil {
			detail(ui(state), fmt.Sprintf("%s: AMI %s is available", region, id))
			return verify(ctx, state, client, region, img, key)
		}
		if !ebs.IsStateError(err) || ctx.Err() != nil {
			return fmt.Errorf("%s: %w", region, err)
		}
		lastErr = err
		if attempt == regionCopyAttempts {
			break
		}
		if kerr := b.keyStillUsable(ctx, region, key); kerr != nil {
			return fmt.Errorf("%s: %w; not retried: %w", region, err, kerr)
		}
		detail(ui(state), fmt.Sprintf("%s: %v; removing it and starting a fresh copy (attempt %d of %d)", region, err, attempt+1, regionCopyAttempts))
		if derr := ebs.DeleteImageWhenSettled(ctx, client, c.PollingConfig, id); derr != nil {
			return fmt.Errorf("%s: %w", region, errors.Join(err, derr))
		}
		b.removeAMI(region)
		b.untrack(region, id)
	}
	return fmt.Errorf("%s: the copy failed %d times, the last: %w", region, regionCopyAttempts, lastErr)
}

// copyToken makes CopyImage idempotent per (source AMI, region, key), so a
// retried call can't start a second copy.
func copyToken(sourceID, region, key string) string {
	sum := sha256.Sum256([]byte(sourceID + "|" + region + "|" + key))
	return "amicrypt-" + hex.EncodeToString(sum[:])[:40]
}

func (s *stepCopyRegions) Cleanup(state multistep.StateBag) {
	if !failed(state) {
		return
	}
	b := getBuild(state)
	c := b.config
	amis := b.amiSnapshot()
	regions := make([]string, 0, len(amis))
	for r := range amis {
		if r != c.RawRegion {
			regions = append(regions, r)
		}
	}
	sort.Strings(regions)
	ctx, cancel := cleanupContext()
	defer cancel()
	g := errgroup.Group{}
	for _, r := range regions {
		g.Go(func() error {
			if err := ebs.DeleteImageWhenSettled(ctx, b.clients.EC2(r), c.PollingConfig, amis[r]); err != nil {
				ui(state).Error(fmt.Sprintf("removing copy %s in %s: %v (remove it by hand)", amis[r], r, err))
				return nil
			}
			b.removeAMI(r)
			b.untrack(r, amis[r])
			detail(ui(state), fmt.Sprintf("Removed copy %s in %s and its snapshots", amis[r], r))
			return nil
		})
	}
	_ = g.Wait()
}
