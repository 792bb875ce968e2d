package ebs

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/uuid"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepRunInstance launches the on-demand build instance and waits for it
// to run; stepRunSpotInstance is the spot variant.
type stepRunInstance struct {
	instanceID string
	// launching: RunInstances was called; if it returned no instance (an
	// interrupt while it was under way), Cleanup looks for one by the run's
	// tag.
	launching bool
}

func (s *stepRunInstance) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	client := b.clients.EC2(c.RawRegion)
	in, err := runInput(b)
	if err != nil {
		return halt(state, err)
	}
	ui(state).Say(fmt.Sprintf("Launching a %s instance of %s…", c.InstanceType, aws.ToString(b.source.ImageId)))
	s.launching = true
	inst, err := ebs.RunInstance(ctx, client, in)
	if err != nil {
		return halt(state, err)
	}
	s.instanceID = aws.ToString(inst.InstanceId)
	b.track(c.RawRegion, s.instanceID)
	return waitRunning(ctx, state, b, s.instanceID)
}

// waitRunning waits for the build instance to run and records it and the
// volumes that outlive it.
func waitRunning(ctx context.Context, state multistep.StateBag, b *buildState, id string) multistep.StepAction {
	detail(ui(state), "Instance "+id+" launched; waiting for it to run…")
	inst, err := ebs.WaitInstanceRunning(ctx, b.clients.EC2(b.config.RawRegion), b.config.PollingConfig, id)
	if err != nil {
		return halt(state, err)
	}
	b.instance = inst
	b.launchVolumes = nil
	for _, m := range inst.BlockDeviceMappings {
		if m.Ebs == nil {
			continue
		}
		// Every volume carries the lease, so a live build's are renewed.
		b.track(b.config.RawRegion, aws.ToString(m.Ebs.VolumeId))
		if !aws.ToBool(m.Ebs.DeleteOnTermination) {
			b.launchVolumes = append(b.launchVolumes, aws.ToString(m.Ebs.VolumeId))
		}
	}
	state.Put("instance_id", id)
	detail(ui(state), "Instance "+id+" is running")
	return multistep.ActionContinue
}

// runInput builds the RunInstances request from the configuration, as
// amazon-ebs's, in the network stepNetwork chose.
func runInput(b *buildState) (*ec2.RunInstancesInput, error) {
	c := b.config
	userData, err := loadUserData(c)
	if err != nil {
		return nil, err
	}
	in := &ec2.RunInstancesInput{
		ImageId:      b.source.ImageId,
		InstanceType: types.InstanceType(c.InstanceType),
		// RunInstances is idempotent under a ClientToken (≤ 64 ASCII).
		ClientToken:                       aws.String("amicrypt-" + uuid.TimeOrderedUUID()),
		EbsOptimized:                      aws.Bool(c.EbsOptimized),
		EnclaveOptions:                    &types.EnclaveOptionsRequest{Enabled: aws.Bool(c.EnableNitroEnclave)},
		InstanceInitiatedShutdownBehavior: types.ShutdownBehavior(c.InstanceInitiatedShutdownBehavior),
		MetadataOptions:                   metadataOptions(c.Metadata),
		CreditSpecification:               creditSpecification(c, c.InstanceType),
		TagSpecifications:                 b.launchTagSpecs(),
		BlockDeviceMappings:               launchMappings(c),
	}
	if userData != "" {
		in.UserData = aws.String(userData)
	}
	if c.Comm.SSHKeyPairName != "" {
		in.KeyName = aws.String(c.Comm.SSHKeyPairName)
	}
	if c.IAMInstanceProfile != "" {
		in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String(c.IAMInstanceProfile)}
	}
	placement := &types.Placement{}
	if b.zone != "" {
		placement.AvailabilityZone = aws.String(b.zone)
	}
	if t := c.tenancy(); t != "" {
		placement.Tenancy = types.Tenancy(t)
	}
	if c.Placement.HostId != "" {
		placement.HostId = aws.String(c.Placement.HostId)
	}
	if c.Placement.HostResourceGroupArn != "" {
		placement.HostResourceGroupArn = aws.String(c.Placement.HostResourceGroupArn)
	}
	if *placement != (types.Placement{}) {
		in.Placement = placement
	}
	if c.AssociatePublicIPAddress != nil {
		ni := types.InstanceNetworkInterfaceSpecification{
			DeviceIndex: aws.Int32(0), AssociatePublicIpAddress: c.AssociatePublicIPAddress,
			DeleteOnTermination: aws.Bool(true), Groups: b.securityGroups,
		}
		if b.subnetID != "" {
			ni.SubnetId = aws.String(b.subnetID)
		}
		in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{ni}
	} else {
		in.SecurityGroupIds = b.securityGroups
		if b.subnetID != "" {
			in.SubnetId = aws.String(b.subnetID)
		}
	}
	for _, l := range c.LicenseSpecifications {
		in.LicenseSpecifications = append(in.LicenseSpecifications, types.LicenseConfigurationRequest{
			LicenseConfigurationArn: aws.String(l.LicenseConfigurationRequest.LicenseConfigurationArn)})
	}
	switch {
	case c.CapacityReservationId != "" || c.CapacityReservationGroupArn != "":
		target := &types.CapacityReservationTarget{}
		if c.CapacityReservationId != "" {
			target.CapacityReservationId = aws.String(c.CapacityReservationId)
		}
		if c.CapacityReservationGroupArn != "" {
			target.CapacityReservationResourceGroupArn = aws.String(c.CapacityReservationGroupArn)
		}
		in.CapacityReservationSpecification = &types.CapacityReservationSpecification{CapacityReservationTarget: target}
	case c.CapacityReservationPreference != "":
		in.CapacityReservationSpecification = &types.CapacityReservationSpecification{
			CapacityReservationPreference: types.CapacityReservationPreference(c.CapacityReservationPreference)}
	}
	return in, nil
}

// loadUserData is user_data or user_data_file's content, base64-encoded
// unless it already is (as amazon-ebs, which passes base64 through).
func loadUserData(c *Config) (string, error) {
	data := c.UserData
	if c.UserDataFile != "" {
		raw, err := os.ReadFile(c.UserDataFile)
		if err != nil {
			return "", fmt.Errorf("user_data_file: %w", err)
		}
		data = string(raw)
	}
	if data == "" {
		return "", nil
	}
	if _, err := base64.StdEncoding.DecodeString(data); err == nil {
		return data, nil
	}
	return base64.StdEncoding.EncodeToString([]byte(data)), nil
}

// metadataOptions are metadata_options for RunInstances. Unlike amazon-ebs,
// http_endpoint = "disabled" is sent too (amazon-ebs sends the options only
// when the endpoint is enabled, so disabling it has no effect there).
func metadataOptions(m MetadataOptions) *types.InstanceMetadataOptionsRequest {
	o := &types.InstanceMetadataOptionsRequest{HttpEndpoint: types.InstanceMetadataEndpointState(m.HttpEndpoint)}
	if m.HttpEndpoint == "enabled" {
		o.HttpTokens = types.HttpTokensState(m.HttpTokens)
		o.HttpPutResponseHopLimit = aws.Int32(int32(m.HttpPutResponseHopLimit))
		o.InstanceMetadataTags = types.InstanceMetadataTagsState(m.InstanceMetadataTags)
	}
	return o
}

// creditSpecification is amazon-ebs's: standard credits for a burstable
// type, unlimited with enable_unlimited_credits, none otherwise.
func creditSpecification(c *Config, instanceType string) *types.CreditSpecificationRequest {
	switch {
	case c.EnableUnlimitedCredits:
		return &types.CreditSpecificationRequest{CpuCredits: aws.String("unlimited")}
	case burstableTypePattern.MatchString(instanceType):
		return &types.CreditSpecificationRequest{CpuCredits: aws.String("standard")}
	}
	return nil
}

// launchTagSpecs tag the instance (run tags, and a Name when none is given),
// its network interface (run tags, as amazon-ebs) and its volumes (run
// volume tags), all with the lease.
func (b *buildState) launchTagSpecs() []types.TagSpecification {
	instTags := merged(map[string]string{"Name": "Packer Builder (amicrypt)"}, b.tags.run)
	return ebs.TagSpecs(map[types.ResourceType]map[string]string{
		types.ResourceTypeInstance:         b.leaseTags(instTags),
		types.ResourceTypeVolume:           b.leaseTags(b.tags.volume),
		types.ResourceTypeNetworkInterface: b.tags.run,
	})
}

// launchMappings are launch_block_device_mappings for RunInstances, with
// no_ephemeral's suppressed xvdca–xvdcz (as amazon-ebs).
func launchMappings(c *Config) []types.BlockDeviceMapping {
	var out []types.BlockDeviceMapping
	for _, bd := range c.LaunchMappings {
		out = append(out, launchMapping(bd))
	}
	if c.NoEphemeral {
		for l := 'a'; l <= 'z'; l++ {
			out = append(out, types.BlockDeviceMapping{DeviceName: aws.String("xvdc" + string(l)), NoDevice: aws.String("")})
		}
	}
	return out
}

// launchMapping is a launch_block_device_mappings entry for RunInstances.
// delete_on_termination unset is false, as in amazon-ebs.
func launchMapping(bd BlockDevice) types.BlockDeviceMapping {
	if m, ok := bd.instanceStoreMapping(); ok {
		return m
	}
	e := &types.EbsBlockDevice{DeleteOnTermination: aws.Bool(false)}
	bd.applyVolumeSettings(e)
	if bd.SnapshotID != "" {
		e.SnapshotId = aws.String(bd.SnapshotID)
	}
	if bd.Encrypted {
		e.Encrypted = aws.Bool(true)
	}
	if bd.KmsKeyID != "" {
		e.KmsKeyId = aws.String(bd.KmsKeyID)
	}
	return types.BlockDeviceMapping{DeviceName: aws.String(bd.DeviceName), Ebs: e}
}

func (s *stepRunInstance) Cleanup(state multistep.StateBag) {
	if s.instanceID == "" && s.launching {
		s.instanceID = launchedUnseen(state)
	}
	if s.instanceID == "" {
		return
	}
	terminateBuildInstance(state, s.instanceID)
	s.instanceID = ""
}

// launchedUnseen finds the instance of a RunInstances call the build was
// interrupted in (AWS may have launched it all the same): the run's
// instance, by its tag; "" when there is none.
func launchedUnseen(state multistep.StateBag) string {
	b := getBuild(state)
	ctx, cancel := cleanupContext()
	defer cancel()
	found, err := b.madeByRun(ctx, b.config.RawRegion, ebs.LeasedInstance)
	if err != nil {
		ui(state).Error(fmt.Sprintf("looking for an instance launched as the build stopped: %v", err))
		return ""
	}
	if len(found) == 0 {
		return ""
	}
	detail(ui(state), fmt.Sprintf("Instance %s was launched as the build stopped", found[0].ID))
	return found[0].ID
}

// terminateBuildInstance terminates the build instance, waits for it to be
// gone and deletes the launch volumes that outlive it.
func terminateBuildInstance(state multistep.StateBag, id string) {
	b := getBuild(state)
	ctx, cancel := cleanupContext()
	defer cancel()
	region := b.config.RawRegion
	client := b.clients.EC2(region)
	ui(state).Say("Terminating instance " + id + "…")
	if err := ebs.TerminateInstance(ctx, client, id); err != nil {
		ui(state).Error(fmt.Sprintf("%v (terminate it by hand)", err))
		return
	}
	if _, err := ebs.WaitInstanceTerminated(ctx, client, b.config.PollingConfig, id); err != nil {
		ui(state).Error(fmt.Sprintf("waiting for instance %s to terminate: %v", id, err))
		return
	}
	b.untrack(region, id)
	var mappings []types.InstanceBlockDeviceMapping
	if b.instance != nil {
		mappings = b.instance.BlockDeviceMappings
	}
	for _, m := range mappings {
		if m.Ebs != nil && aws.ToBool(m.Ebs.DeleteOnTermination) {
			b.untrack(region, aws.ToString(m.Ebs.VolumeId))
		}
	}
	detail(ui(state), "Instance "+id+" terminated")
	for _, vol := range b.launchVolumes {
		if err := ebs.DeleteVolume(ctx, client, vol); err != nil {
			ui(state).Error(fmt.Sprintf("%v (delete it by hand)", err))
			continue
		}
		b.untrack(region, vol)
		detail(ui(state), "Deleted launch volume "+vol+" (delete_on_termination is false)")
	}
	b.launchVolumes = nil
}
