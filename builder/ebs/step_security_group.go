package ebs

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/uuid"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepSecurityGroup creates a temporary security group opening the
// communicator's port when the communicator connects and no group is given.
type stepSecurityGroup struct{}

func needsTempSecurityGroup(c *Config) bool {
	return (c.Comm.Type == "ssh" || c.Comm.Type == "winrm") && len(c.SecurityGroupIDs) == 0
}

func (s *stepSecurityGroup) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	if !needsTempSecurityGroup(c) {
		return multistep.ActionContinue
	}
	client := b.clients.EC2(c.RawRegion)
	vpcID := c.VpcID
	if vpcID == "" && (c.SubnetID != "" || len(c.SubnetFilter.Filters) > 0) {
		subnet, err := ebs.FindSubnet(ctx, client, c.SubnetID, "", c.SubnetFilter.Filters, c.SubnetFilter.MostFree)
		if err != nil {
			return halt(state, err)
		}
		vpcID = aws.ToString(subnet.VpcId)
	}
	port := int32(c.Comm.Port())
	groupID, err := ebs.CreateSecurityGroupOpenOn(ctx, client, "packer_amicrypt_"+uuid.TimeOrderedUUID(), "Temporary group for amicrypt-ebs", vpcID, port)
	b.tempSGID = groupID // set even on error: a group made but not opened is ours to delete
	if err != nil {
		return halt(state, err)
	}
	detail(ui(state), fmt.Sprintf("Created temporary security group %s (port %d)", b.tempSGID, port))
	return multistep.ActionContinue
}

func (s *stepSecurityGroup) Cleanup(state multistep.StateBag) {
	b := getBuild(state)
	if b.tempSGID == "" {
		return
	}
	ctx, cancel := cleanupContext()
	defer cancel()
	// The group stays in use until the instance is gone; the run step's
	// cleanup waits for termination first, and DeleteSecurityGroup retries
	// while the group is still held.
	if err := ebs.DeleteSecurityGroup(ctx, b.clients.EC2(b.config.RawRegion), b.config.PollingConfig, b.tempSGID); err != nil {
		ui(state).Error(fmt.Sprintf("%v (delete it by hand)", err))
		return
	}
	detail(ui(state), "Deleted temporary security group "+b.tempSGID)
	b.tempSGID = ""
}
