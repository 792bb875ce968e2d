package ebs

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/uuid"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepSecurityGroup creates a temporary security group opening the
// communicator's port when the communicator connects and no group is given.
type stepSecurityGroup struct {
	vpcID string // resolved by the run step's network lookup
}

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
	name := "packer_amicrypt_" + uuid.TimeOrderedUUID()
	in := &ec2.CreateSecurityGroupInput{GroupName: aws.String(name), Description: aws.String("Temporary group for amicrypt-ebs")}
	if vpcID != "" {
		in.VpcId = aws.String(vpcID)
	}
	out, err := client.CreateSecurityGroup(ctx, in)
	if err != nil {
		return halt(state, fmt.Errorf("creating temporary security group: %w", err))
	}
	b.tempSGID = aws.ToString(out.GroupId)
	port := int32(c.Comm.Port())
	_, err = client.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: out.GroupId,
		IpPermissions: []types.IpPermission{{
			IpProtocol: aws.String("tcp"), FromPort: aws.Int32(port), ToPort: aws.Int32(port),
			IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}},
		}},
	})
	if err != nil {
		return halt(state, fmt.Errorf("opening port %d in security group %s: %w", port, b.tempSGID, err))
	}
	ui(state).Message(fmt.Sprintf("Created temporary security group %s (port %d)", b.tempSGID, port))
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
	// cleanup waits for termination first, and dependency errors are retried.
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		_, err = b.clients.EC2(b.config.RawRegion).DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(b.tempSGID)})
		if err == nil || ebs.IsCode(err, "InvalidGroup.NotFound") {
			ui(state).Message("Deleted temporary security group " + b.tempSGID)
			b.tempSGID = ""
			return
		}
		if !ebs.IsCode(err, "DependencyViolation") {
			break
		}
		sleepCtx(ctx, b.config.PollingConfig.Delay())
	}
	ui(state).Error(fmt.Sprintf("deleting temporary security group %s: %v (delete it by hand)", b.tempSGID, err))
}
