package ebs

import (
	"context"
	"fmt"
	"sort"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepShare applies sharing (ami_users, ami_org_arns, ami_ou_arns,
// snapshot_users), ami_product_codes, deprecate_at and
// deregistration_protection to the AMI in every region. It is the last step, so protection never blocks a cleanup.
type stepShare struct{}

func (s *stepShare) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	amis := b.amiSnapshot()
	regions := make([]string, 0, len(amis))
	for r := range amis {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		client, id := b.clients.EC2(r), amis[r]
		if err := ebs.ShareImage(ctx, client, id, c.sharing()); err != nil {
			return halt(state, err)
		}
		if len(c.SnapshotUsers) > 0 {
			img, err := ebs.FindImageByID(ctx, client, id)
			if err != nil {
				return halt(state, err)
			}
			for _, snap := range ebs.ImageSnapshotIDs(img) {
				if err := ebs.ShareSnapshot(ctx, client, snap, c.SnapshotUsers); err != nil {
					return halt(state, err)
				}
			}
		}
		if !c.sharing().Empty() || len(c.SnapshotUsers) > 0 {
			detail(ui(state), fmt.Sprintf("%s: shared %s", r, id))
		}
		if len(c.AMIProductCodes) > 0 {
			if err := ebs.AddProductCodes(ctx, client, id, c.AMIProductCodes); err != nil {
				return halt(state, err)
			}
			detail(ui(state), fmt.Sprintf("%s: product codes %v on %s", r, c.AMIProductCodes, id))
		}
		if !c.deprecateAt.IsZero() {
			if err := ebs.DeprecateImage(ctx, client, id, c.deprecateAt); err != nil {
				return halt(state, err)
			}
		}
		if c.DeregistrationProtection.Enabled {
			if err := ebs.ProtectImage(ctx, client, id, c.DeregistrationProtection.WithCooldown); err != nil {
				return halt(state, err)
			}
		}
	}
	return multistep.ActionContinue
}

// Cleanup has nothing of its own to undo: a failed share leaves the build
// abandoned and the register and copy steps remove the AMIs.
func (s *stepShare) Cleanup(multistep.StateBag) {}
