package ebs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepReap removes what dead earlier builds left behind, before this build
// makes anything: in the build region and ami_regions, every instance,
// half-made AMI, snapshot, launch volume, launch template, key pair and
// security group whose amicrypt:lease expired (a build that lives renews
// its lease; see lease.go). What a reap can't remove is reported, and the
// build goes on.
type stepReap struct {
	now func() time.Time
}

func (s *stepReap) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	regions := append([]string{c.RawRegion}, c.AMIRegions...)
	for _, region := range regions {
		client := b.clients.EC2(region)
		found, err := ebs.FindLeased(ctx, client, tagLease)
		if err != nil {
			ui(state).Error(fmt.Sprintf("Looking for what dead builds left in %s: %v (skipped)", region, err))
			continue
		}
		var dead []ebs.Leased
		for _, l := range found {
			exp, err := time.Parse(time.RFC3339, l.Tags[tagLease])
			if err != nil || exp.Before(now()) {
				dead = append(dead, l)
			}
		}
		if len(dead) == 0 {
			continue
		}
		ui(state).Say(fmt.Sprintf("Removing %d resource(s) in %s left by dead builds (lease expired):", len(dead), region))
		for _, l := range dead {
			what := fmt.Sprintf("%s %s", l.Kind, l.ID)
			if l.Name != "" && l.Name != l.ID {
				what += " (" + l.Name + ")"
			}
			if err := l.Remove(ctx, client, c.PollingConfig); err != nil {
				ui(state).Error(fmt.Sprintf("  %s of run %s: %v (remove it by hand)", what, l.Tags[tagRun], err))
				continue
			}
			detail(ui(state), fmt.Sprintf("  removed %s of run %s (template %s, lease expired %s)", what, l.Tags[tagRun], l.Tags[tagTemplate], l.Tags[tagLease]))
		}
	}
	return multistep.ActionContinue
}

func (s *stepReap) Cleanup(multistep.StateBag) {}

// stepRelease is the last step: it takes the lease off what the build
// keeps (the AMIs and their snapshots), so no later run removes them.
type stepRelease struct{}

func (s *stepRelease) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	if b.lease == nil {
		return multistep.ActionContinue
	}
	kept := map[string][]string{}
	for region, id := range b.amiSnapshot() {
		img, err := ebs.FindImageByID(ctx, b.clients.EC2(region), id)
		if err != nil {
			return halt(state, err)
		}
		kept[region] = append([]string{id}, ebs.ImageSnapshotIDs(img)...)
	}
	regions := make([]string, 0, len(kept))
	for r := range kept {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, region := range regions {
		if _, err := ebs.DeleteTags(ctx, b.clients.EC2(region), kept[region], []string{tagLease}); err != nil {
			return halt(state, err)
		}
		b.untrack(region, kept[region]...)
		detail(ui(state), fmt.Sprintf("%s: kept %s", region, strings.Join(kept[region], ", ")))
	}
	return multistep.ActionContinue
}

func (s *stepRelease) Cleanup(multistep.StateBag) {}

// stepSweep removes, when the build fails or is interrupted, whatever
// still carries this run's tag once every other step has cleaned up: a
// resource whose create call was under way at Ctrl-C (AWS made it, the
// build never learnt its ID) or one a step's cleanup could not remove. It
// comes early in the build so that its Cleanup runs last. A create answered
// only after the sweep's last lookup is left to the lease (stepReap of a
// later run).
type stepSweep struct{}

func (s *stepSweep) Run(context.Context, multistep.StateBag) multistep.StepAction {
	return multistep.ActionContinue
}

func (s *stepSweep) Cleanup(state multistep.StateBag) {
	b := getBuild(state)
	if !failed(state) || b.lease == nil {
		return
	}
	c := b.config
	ctx, cancel := cleanupContext()
	defer cancel()
	// After an interrupt a create call may still be under way, or its
	// resource not yet visible: a region where nothing of the run shows is
	// asked again a few times, at most 5 s apart (as amicrypt-copy does
	// for an interrupted CopyImage).
	_, interrupted := state.GetOk(multistep.StateCancelled)
	for _, region := range append([]string{c.RawRegion}, c.AMIRegions...) {
		client := b.clients.EC2(region)
		found, err := ebs.FindLeased(ctx, client, tagRun)
		for try := 1; interrupted && err == nil && !hasRun(found, b.runID) && try < sweepLookups; try++ {
			time.Sleep(min(c.PollingConfig.Delay(), 5*time.Second))
			found, err = ebs.FindLeased(ctx, client, tagRun)
		}
		if err != nil {
			ui(state).Error(fmt.Sprintf("Looking for what this build left in %s: %v (a later build removes it once its lease expires)", region, err))
			b.leftover(fmt.Sprintf("whatever is left in %s (looking failed: %v)", region, err))
			continue
		}
		var ours []ebs.Leased
		for _, l := range found {
			if l.Tags[tagRun] == b.runID {
				ours = append(ours, l)
			}
		}
		if len(ours) == 0 {
			continue
		}
		ui(state).Say(fmt.Sprintf("Removing %d resource(s) in %s that this build made and did not remove (made as it was interrupted, or not removable before):", len(ours), region))
		for _, l := range ours {
			what := fmt.Sprintf("%s %s", l.Kind, l.ID)
			if l.Name != "" && l.Name != l.ID {
				what += " (" + l.Name + ")"
			}
			if err := l.Remove(ctx, client, c.PollingConfig); err != nil {
				ui(state).Error(fmt.Sprintf("  %s: %v (remove it by hand)", what, err))
				b.leftover(what + " in " + region)
				continue
			}
			b.untrack(region, l.ID)
			detail(ui(state), "  removed "+what)
		}
	}
}

// sweepLookups is how many times stepSweep asks a region after an
// interrupt.
const sweepLookups = 4

// hasRun reports whether any of found carries run's tag.
func hasRun(found []ebs.Leased, run string) bool {
	for _, l := range found {
		if l.Tags[tagRun] == run {
			return true
		}
	}
	return false
}

// leftover records something a failed build could not remove, for its
// error to name.
func (b *buildState) leftover(what string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.leftovers = append(b.leftovers, what)
}

// madeByRun lists the resources of a kind in region that carry this run's
// tag: for a cleanup whose create call was under way when the build was
// interrupted, so it has no ID to go by.
func (b *buildState) madeByRun(ctx context.Context, region, kind string) ([]ebs.Leased, error) {
	found, err := ebs.FindLeased(ctx, b.clients.EC2(region), tagRun)
	if err != nil {
		return nil, err
	}
	var ours []ebs.Leased
	for _, l := range found {
		if l.Kind == kind && l.Tags[tagRun] == b.runID {
			ours = append(ours, l)
		}
	}
	return ours, nil
}
