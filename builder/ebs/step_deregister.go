package ebs

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepDeregister removes AMIs named ami_name in the build region and
// ami_regions when force_deregister is set, and their snapshots with
// force_delete_snapshot. It runs just
// before registration, so a failed build earlier keeps the old AMI.
type stepDeregister struct{}

func (s *stepDeregister) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	if !c.ForceDeregister {
		return multistep.ActionContinue
	}
	for _, r := range append([]string{c.RawRegion}, c.AMIRegions...) {
		client := b.clients.EC2(r)
		imgs, err := ebs.FindImagesByName(ctx, client, "self", c.AMIName)
		if err != nil {
			return halt(state, err)
		}
		for _, img := range imgs {
			id := aws.ToString(img.ImageId)
			if !c.ForceDeleteSnapshot {
				// As amazon-ebs: the snapshots stay unless force_delete_snapshot.
				if err := ebs.DeregisterImage(ctx, client, id); err != nil {
					return halt(state, fmt.Errorf("force_deregister: %w", err))
				}
				detail(ui(state), fmt.Sprintf("force_deregister: deregistered %s in %s (its snapshots are kept: set force_delete_snapshot to delete them)", id, r))
				continue
			}
			if err := ebs.DeleteImageAndSnapshots(ctx, client, id); err != nil {
				return halt(state, fmt.Errorf("force_deregister: %w", err))
			}
			detail(ui(state), fmt.Sprintf("force_deregister, force_delete_snapshot: deregistered %s in %s and deleted its snapshots", id, r))
		}
	}
	return multistep.ActionContinue
}

// Cleanup can't undo a deregistration.
func (s *stepDeregister) Cleanup(multistep.StateBag) {}
