package ebs

import (
	"context"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepStopInstance stops the provisioned instance so its volumes are
// consistent when snapshotted. With disable_stop_instance it only waits: a
// provisioner stops the instance (Windows sysprep, for one). A spot
// instance of an instant fleet can't be stopped (AWS stops only persistent
// spot requests), so it is snapshotted running, as amazon-ebs images it
// without stopping it.
type stepStopInstance struct{}

func (s *stepStopInstance) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	client := b.clients.EC2(c.RawRegion)
	id := state.Get("instance_id").(string)
	switch {
	case c.spot():
		detail(ui(state), "Spot instance "+id+" can't be stopped (one-time spot request); its volumes are snapshotted while it runs")
		return multistep.ActionContinue
	case c.DisableStopInstance:
		ui(state).Say("disable_stop_instance: waiting for instance " + id + " to be stopped by the provisioners…")
	default:
		ui(state).Say("Stopping instance " + id + "…")
		if err := ebs.StopInstance(ctx, client, id); err != nil {
			return halt(state, err)
		}
	}
	inst, err := ebs.WaitInstanceStopped(ctx, client, c.PollingConfig, id)
	if err != nil {
		return halt(state, err)
	}
	b.instance = inst
	detail(ui(state), "Instance "+id+" stopped")
	return multistep.ActionContinue
}

// Cleanup has nothing to undo: terminating the instance is the run step's.
func (s *stepStopInstance) Cleanup(multistep.StateBag) {}
