package ebs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
		g.Go(func() error {
			client := b.clients.EC2(region)
			id, err := ebs.CopyImageEncrypted(gctx, client, ebs.CopyImageSpec{
				SourceImageID: sourceID, SourceRegion: c.RawRegion, Name: c.AMIName, Description: b.tags.description,
				KmsKeyID: b.regionKeys[region], ClientToken: copyToken(sourceID, region, b.regionKeys[region]),
				Tags: b.leaseTags(b.imageTags()), SnapshotTags: b.leaseTags(b.snapshotTags()),
				CompletionMinutes: c.SnapshotCopyDurationMinutes,
			})
			if err != nil {
				return b.regionError(gctx, region, err)
			}
			b.setAMI(region, id)
			b.track(region, id)
			detail(ui(state), fmt.Sprintf("%s: copy %s started under %s", region, id, b.regionKeys[region]))
			progress := imageProgress(ui(state), region+": copy", stillWaitingEvery, time.Now)
			img, err := ebs.WaitImageAvailable(gctx, client, c.PollingConfig, id, progress)
			if err != nil {
				return fmt.Errorf("%s: %w", region, err)
			}
			detail(ui(state), fmt.Sprintf("%s: AMI %s is available", region, id))
			return verify(gctx, state, client, region, img, b.regionKeys[region])
		})
	}
	if err := g.Wait(); err != nil {
		return halt(state, err)
	}
	return multistep.ActionContinue
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
