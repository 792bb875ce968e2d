package ebs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/uuid"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepRunSpotInstance launches the build instance as a spot instance, the
// way amazon-ebs does: a launch template with the launch settings and the
// spot market, then an EC2 Fleet of type instant for one instance of
// spot_instance_types (or instance_type). Cleanup terminates the instance
// and deletes the launch template. A one-time spot instance can't be
// stopped, so its volumes are snapshotted while it runs.
type stepRunSpotInstance struct {
	instanceID   string
	templateName string
	templateID   string
}

// fleetCapacityTries bounds retries of a fleet that found no spot capacity
// (InsufficientInstanceCapacity), as amazon-ebs retries.
const fleetCapacityTries = 11

func (s *stepRunSpotInstance) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	region := c.RawRegion
	client := b.clients.EC2(region)
	in, err := runInput(b)
	if err != nil {
		return halt(state, err)
	}
	instanceTypes := c.SpotInstanceTypes
	if len(instanceTypes) == 0 {
		instanceTypes = []string{c.InstanceType}
	}
	spot := ebs.SpotLaunch{
		TemplateName:       "packer-fleet-launch-template-" + uuid.TimeOrderedUUID()[:8],
		Data:               launchTemplateData(c, in),
		TemplateTags:       b.leaseTags(b.tags.spot),
		InstanceTypes:      instanceTypes,
		AllocationStrategy: c.SpotAllocationStrategy,
		FleetTags:          b.leaseTags(b.tags.fleet),
	}
	ui(state).Say(fmt.Sprintf("Launching a spot instance (%s, price %s) of %s…", strings.Join(instanceTypes, " or "), c.SpotPrice, aws.ToString(b.source.ImageId)))
	ltID, err := ebs.CreateSpotLaunchTemplate(ctx, client, spot)
	if err != nil {
		return halt(state, err)
	}
	s.templateName, s.templateID = spot.TemplateName, ltID
	b.track(region, ltID)
	detail(ui(state), "Created launch template "+spot.TemplateName)
	var id, fleetID string
	_, err = ebs.Retry(ctx, fleetCapacityTries, func(try int) time.Duration { return time.Duration(try) * 500 * time.Millisecond },
		func(err error) bool {
			var fe *ebs.FleetError
			return errors.As(err, &fe) && slices.Contains(fe.Codes, "InsufficientInstanceCapacity")
		},
		func(_ int, err error, pause time.Duration) {
			detail(ui(state), fmt.Sprintf("%v; trying again in %s", err, pause))
		},
		func(ctx context.Context) error {
			var err error
			id, fleetID, err = ebs.LaunchSpotInstance(ctx, client, spot)
			return err
		})
	if err != nil {
		return halt(state, err)
	}
	s.instanceID = id
	b.track(region, id)
	detail(ui(state), fmt.Sprintf("EC2 Fleet %s launched spot instance %s", fleetID, id))
	if action := waitRunning(ctx, state, b, id); action != multistep.ActionContinue {
		return action
	}
	// As amazon-ebs: spot_tags on the spot instance request too.
	if sir := aws.ToString(b.instance.SpotInstanceRequestId); sir != "" && len(b.tags.spot) > 0 {
		if err := ebs.CreateTags(ctx, client, []string{sir}, b.tags.spot); err != nil {
			return halt(state, err)
		}
	}
	return multistep.ActionContinue
}

// launchTemplateData carries a RunInstances request into a launch template,
// with the spot market (spot_price, or the current price for "auto").
func launchTemplateData(c *Config, in *ec2.RunInstancesInput) *types.RequestLaunchTemplateData {
	d := &types.RequestLaunchTemplateData{
		ImageId: in.ImageId, KeyName: in.KeyName, UserData: in.UserData, EbsOptimized: in.EbsOptimized,
		SecurityGroupIds: in.SecurityGroupIds, DisableApiTermination: aws.Bool(false),
	}
	spotOpts := &types.LaunchTemplateSpotMarketOptionsRequest{}
	if c.SpotPrice != "auto" {
		spotOpts.MaxPrice = aws.String(c.SpotPrice)
	}
	d.InstanceMarketOptions = &types.LaunchTemplateInstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot, SpotOptions: spotOpts}
	if in.IamInstanceProfile != nil {
		d.IamInstanceProfile = &types.LaunchTemplateIamInstanceProfileSpecificationRequest{Name: in.IamInstanceProfile.Name}
	}
	if p := in.Placement; p != nil {
		d.Placement = &types.LaunchTemplatePlacementRequest{AvailabilityZone: p.AvailabilityZone, Tenancy: p.Tenancy, HostId: p.HostId, HostResourceGroupArn: p.HostResourceGroupArn}
	}
	if in.SubnetId != nil {
		// A launch template names its subnet through a network interface.
		d.NetworkInterfaces = []types.LaunchTemplateInstanceNetworkInterfaceSpecificationRequest{{
			DeviceIndex: aws.Int32(0), SubnetId: in.SubnetId, Groups: in.SecurityGroupIds, DeleteOnTermination: aws.Bool(true)}}
		d.SecurityGroupIds = nil
	}
	for _, ni := range in.NetworkInterfaces {
		d.NetworkInterfaces = append(d.NetworkInterfaces, types.LaunchTemplateInstanceNetworkInterfaceSpecificationRequest{
			DeviceIndex: ni.DeviceIndex, SubnetId: ni.SubnetId, Groups: ni.Groups, AssociatePublicIpAddress: ni.AssociatePublicIpAddress,
			DeleteOnTermination: ni.DeleteOnTermination})
	}
	if m := in.MetadataOptions; m != nil {
		d.MetadataOptions = &types.LaunchTemplateInstanceMetadataOptionsRequest{
			HttpEndpoint: types.LaunchTemplateInstanceMetadataEndpointState(m.HttpEndpoint), HttpTokens: types.LaunchTemplateHttpTokensState(m.HttpTokens),
			HttpPutResponseHopLimit: m.HttpPutResponseHopLimit, InstanceMetadataTags: types.LaunchTemplateInstanceMetadataTagsState(m.InstanceMetadataTags)}
	}
	if in.CreditSpecification != nil {
		d.CreditSpecification = &types.CreditSpecificationRequest{CpuCredits: in.CreditSpecification.CpuCredits}
	}
	for _, l := range in.LicenseSpecifications {
		d.LicenseSpecifications = append(d.LicenseSpecifications, types.LaunchTemplateLicenseConfigurationRequest{LicenseConfigurationArn: l.LicenseConfigurationArn})
	}
	for _, m := range in.BlockDeviceMappings {
		r := types.LaunchTemplateBlockDeviceMappingRequest{DeviceName: m.DeviceName, VirtualName: m.VirtualName, NoDevice: m.NoDevice}
		if e := m.Ebs; e != nil {
			r.Ebs = &types.LaunchTemplateEbsBlockDeviceRequest{DeleteOnTermination: e.DeleteOnTermination, Encrypted: e.Encrypted, Iops: e.Iops,
				KmsKeyId: e.KmsKeyId, SnapshotId: e.SnapshotId, Throughput: e.Throughput, VolumeSize: e.VolumeSize, VolumeType: e.VolumeType}
		}
		d.BlockDeviceMappings = append(d.BlockDeviceMappings, r)
	}
	for _, ts := range in.TagSpecifications {
		d.TagSpecifications = append(d.TagSpecifications, types.LaunchTemplateTagSpecificationRequest{ResourceType: ts.ResourceType, Tags: ts.Tags})
	}
	return d
}

func (s *stepRunSpotInstance) Cleanup(state multistep.StateBag) {
	b := getBuild(state)
	if s.instanceID != "" {
		terminateBuildInstance(state, s.instanceID)
		s.instanceID = ""
	}
	if s.templateName == "" {
		return
	}
	ctx, cancel := cleanupContext()
	defer cancel()
	if err := ebs.DeleteLaunchTemplate(ctx, b.clients.EC2(b.config.RawRegion), s.templateName); err != nil {
		ui(state).Error(fmt.Sprintf("%v (delete it by hand)", err))
		return
	}
	detail(ui(state), "Deleted launch template "+s.templateName)
	b.untrack(b.config.RawRegion, s.templateID)
	s.templateName, s.templateID = "", ""
}
