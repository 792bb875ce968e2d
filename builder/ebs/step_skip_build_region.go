package ebs

import (
	"context"
	"fmt"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepSkipSaveBuildRegion removes the build region's AMI (and its
// snapshots) once the copies to ami_regions are made, for
// skip_save_build_region: the AMI is kept only where it was copied, as
// amazon-ebs keeps it.
type stepSkipSaveBuildRegion struct{}

func (s *stepSkipSaveBuildRegion) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	if !c.SkipSaveBuildRegion {
		return multistep.ActionContinue
	}
	id := b.ami(c.RawRegion)
	if id == "" {
		return multistep.ActionContinue
	}
	if err := ebs.DeleteImageAndSnapshots(ctx, b.clients.EC2(c.RawRegion), id); err != nil {
		return halt(state, fmt.Errorf("skip_save_build_region: %w", err))
	}
	b.removeAMI(c.RawRegion)
	b.untrack(c.RawRegion, id)
	b.mu.Lock()
	b.imageSnapshots = nil // the intermediate snapshots are the snapshot steps' to delete
	b.mu.Unlock()
	detail(ui(state), fmt.Sprintf("skip_save_build_region: removed %s from %s; the AMI is kept in %v", id, c.RawRegion, c.AMIRegions))
	return multistep.ActionContinue
}

func (s *stepSkipSaveBuildRegion) Cleanup(multistep.StateBag) {}
