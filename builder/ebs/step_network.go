package ebs

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepNetwork decides where the build instance runs, as amazon-ebs's
// network step: the VPC (vpc_id, vpc_filter, or the subnet's), the subnet
// (subnet_id, subnet_filter with most_free or random, in availability_zone
// when given) and the security groups given by ID or filter. Without a
// subnet the instance goes to the default VPC, as RunInstances decides.
type stepNetwork struct{}

func (s *stepNetwork) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	client := b.clients.EC2(c.RawRegion)
	vpcID := c.VpcID
	if vpcID == "" && !c.VpcFilter.Empty() {
		vpc, err := ebs.FindVPCByFilters(ctx, client, c.VpcFilter.Filters)
		if err != nil {
			return halt(state, fmt.Errorf("vpc_filter: %w", err))
		}
		vpcID = aws.ToString(vpc.VpcId)
		detail(ui(state), "vpc_filter: VPC "+vpcID)
	}
	b.zone = c.AvailabilityZone
	var subnet *types.Subnet
	var err error
	switch {
	case c.SubnetID != "":
		if subnet, err = ebs.FindSubnetByID(ctx, client, c.SubnetID); err != nil {
			return halt(state, fmt.Errorf("subnet_id: %w", err))
		}
	case len(c.SubnetFilter.Filters) > 0:
		subnet, err = ebs.PickSubnet(ctx, client, c.SubnetFilter.Filters, vpcID, b.zone, ebs.SubnetChoice{MostFree: c.SubnetFilter.MostFree, Random: c.SubnetFilter.Random})
		if err != nil {
			return halt(state, fmt.Errorf("subnet_filter: %w", err))
		}
		detail(ui(state), fmt.Sprintf("subnet_filter: subnet %s (%s)", aws.ToString(subnet.SubnetId), aws.ToString(subnet.AvailabilityZone)))
	case vpcID != "":
		// A VPC alone (vpc_id, vpc_filter): its subnet with the most free
		// addresses, so the instance and its security group share the VPC.
		if subnet, err = ebs.PickSubnet(ctx, client, nil, vpcID, b.zone, ebs.SubnetChoice{MostFree: true}); err != nil {
			return halt(state, fmt.Errorf("vpc_id: %w", err))
		}
	}
	if subnet != nil {
		b.subnetID, b.zone = aws.ToString(subnet.SubnetId), aws.ToString(subnet.AvailabilityZone)
		b.publicSubnet = aws.ToBool(subnet.MapPublicIpOnLaunch)
		if c.AvailabilityZone != "" && b.zone != c.AvailabilityZone {
			return halt(state, fmt.Errorf("availability_zone: %q, but the subnet %s is in %s; drop one of them", c.AvailabilityZone, b.subnetID, b.zone))
		}
		if vpcID == "" {
			vpcID = aws.ToString(subnet.VpcId)
		}
	}
	if vpcID != "" {
		b.vpc, err = ebs.FindVPCByID(ctx, client, vpcID)
	} else {
		b.vpc, err = ebs.DefaultVPC(ctx, client)
		if err == nil && subnet == nil {
			// The instance lands in a default subnet, which maps public IPs.
			b.publicSubnet = true
		}
	}
	if err != nil && !ebs.IsNotFound(err) {
		return halt(state, err)
	}
	if len(c.SecurityGroupIDs) > 0 || !c.SecurityGroupFilter.Empty() {
		groups, err := ebs.FindSecurityGroups(ctx, client, c.SecurityGroupIDs, c.SecurityGroupFilter.Filters, vpcID)
		if err != nil {
			return halt(state, fmt.Errorf("security_group_ids/security_group_filter: %w", err))
		}
		b.securityGroups = groups
		if !c.SecurityGroupFilter.Empty() {
			detail(ui(state), "security_group_filter: "+strings.Join(groups, ", "))
		}
	}
	return multistep.ActionContinue
}

func (s *stepNetwork) Cleanup(multistep.StateBag) {}

// vpcID is the build VPC's ID ("" when the region has no default VPC and
// none was named).
func (b *buildState) vpcID() string {
	if b.vpc == nil {
		return ""
	}
	return aws.ToString(b.vpc.VpcId)
}
