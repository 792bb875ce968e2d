package ebs

import (
	"context"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepStopInstance stops the provisioned instance so its volumes are
// consistent when snapshotted.
type stepStopInstance struct{}

func (s *stepStopInstance) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	client := b.clients.EC2(b.config.RawRegion)
	id := state.Get("instance_id").(string)
	ui(state).Say("Stopping instance " + id + "…")
	if err := ebs.StopInstance(ctx, client, id); err != nil {
		return halt(state, err)
	}
	inst, err := ebs.WaitInstanceStopped(ctx, client, b.config.PollingConfig, id)
	if err != nil {
		return halt(state, err)
	}
	b.instance = inst
	detail(ui(state), "Instance "+id+" stopped")
	return multistep.ActionContinue
}

// Cleanup has nothing to undo: terminating the instance is the run step's.
func (s *stepStopInstance) Cleanup(multistep.StateBag) {}
