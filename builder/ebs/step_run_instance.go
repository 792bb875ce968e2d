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

// stepRunInstance launches the build instance and waits for it to run.
type stepRunInstance struct {
	instanceID string
}

func (s *stepRunInstance) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	client := b.clients.EC2(c.RawRegion)
	in, err := runInput(ctx, client, b)
	if err != nil {
		return halt(state, err)
	}
	ui(state).Say(fmt.Sprintf("Launching a %s instance of %s…", c.InstanceType, aws.ToString(b.source.ImageId)))
	inst, err := ebs.RunInstance(ctx, client, in)
	if err != nil {
		return halt(state, err)
	}
	s.instanceID = aws.ToString(inst.InstanceId)
	detail(ui(state), "Instance "+s.instanceID+" launched; waiting for it to run…")
	inst, err = ebs.WaitInstanceRunning(ctx, client, c.PollingConfig, s.instanceID)
	if err != nil {
		return halt(state, err)
	}
	b.instance = inst
	state.Put("instance_id", s.instanceID)
	detail(ui(state), "Instance "+s.instanceID+" is running")
	return multistep.ActionContinue
}

// runInput builds the RunInstances request from the configuration.
func runInput(ctx context.Context, client ebs.EC2API, b *buildState) (*ec2.RunInstancesInput, error) {
	c := b.config
	in := &ec2.RunInstancesInput{
		ImageId:      b.source.ImageId,
		InstanceType: types.InstanceType(c.InstanceType),
		// RunInstances is idempotent under a ClientToken (≤ 64 ASCII).
		ClientToken: aws.String("amicrypt-" + uuid.TimeOrderedUUID()),
	}
	if b.keyPairName != "" || c.Comm.SSHKeyPairName != "" {
		in.KeyName = aws.String(c.Comm.SSHKeyPairName)
	}
	groups := c.SecurityGroupIDs
	if b.tempSGID != "" {
		groups = []string{b.tempSGID}
	}
	subnetID := c.SubnetID
	if subnetID == "" && (c.VpcID != "" || len(c.SubnetFilter.Filters) > 0) {
		subnet, err := ebs.FindSubnet(ctx, client, "", c.VpcID, c.SubnetFilter.Filters, c.SubnetFilter.MostFree)
		if err != nil {
			return nil, fmt.Errorf("subnet_filter/vpc_id: %w", err)
		}
		subnetID = aws.ToString(subnet.SubnetId)
	}
	if c.AssociatePublicIPAddress != nil {
		ni := types.InstanceNetworkInterfaceSpecification{
			DeviceIndex: aws.Int32(0), AssociatePublicIpAddress: c.AssociatePublicIPAddress,
			DeleteOnTermination: aws.Bool(true), Groups: groups,
		}
		if subnetID != "" {
			ni.SubnetId = aws.String(subnetID)
		}
		in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{ni}
	} else {
		in.SecurityGroupIds = groups
		if subnetID != "" {
			in.SubnetId = aws.String(subnetID)
		}
	}
	if c.IAMInstanceProfile != "" {
		in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String(c.IAMInstanceProfile)}
	}
	userData := c.UserData
	if c.UserDataFile != "" {
		data, err := os.ReadFile(c.UserDataFile)
		if err != nil {
			return nil, fmt.Errorf("user_data_file: %w", err)
		}
		userData = string(data)
	}
	if userData != "" {
		in.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(userData)))
	}
	runTags := map[string]string{"Name": "Packer Builder (amicrypt)"}
	for k, v := range c.RunTags {
		runTags[k] = v
	}
	in.TagSpecifications = ebs.TagSpecs(map[types.ResourceType]map[string]string{
		types.ResourceTypeInstance: runTags, types.ResourceTypeVolume: c.RunVolumeTags,
	})
	for _, bd := range c.LaunchMappings {
		in.BlockDeviceMappings = append(in.BlockDeviceMappings, launchMapping(bd))
	}
	return in, nil
}

// launchMapping is a launch_block_device_mappings entry for RunInstances.
func launchMapping(bd BlockDevice) types.BlockDeviceMapping {
	if m, ok := bd.instanceStoreMapping(); ok {
		return m
	}
	e := &types.EbsBlockDevice{DeleteOnTermination: aws.Bool(true)}
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
	if s.instanceID == "" {
		return
	}
	b := getBuild(state)
	ctx, cancel := cleanupContext()
	defer cancel()
	client := b.clients.EC2(b.config.RawRegion)
	ui(state).Say("Terminating instance " + s.instanceID + "…")
	if err := ebs.TerminateInstance(ctx, client, s.instanceID); err != nil {
		ui(state).Error(fmt.Sprintf("%v (terminate it by hand)", err))
		return
	}
	if _, err := ebs.WaitInstanceTerminated(ctx, client, b.config.PollingConfig, s.instanceID); err != nil {
		ui(state).Error(fmt.Sprintf("waiting for instance %s to terminate: %v", s.instanceID, err))
		return
	}
	detail(ui(state), "Instance "+s.instanceID+" terminated")
	s.instanceID = ""
}

// instanceHost is the address the communicator connects to.
func instanceHost(state multistep.StateBag) (string, error) {
	inst := getBuild(state).instance
	if inst == nil {
		return "", fmt.Errorf("no instance")
	}
	for _, ip := range []*string{inst.PublicIpAddress, inst.PrivateIpAddress} {
		if aws.ToString(ip) != "" {
			return aws.ToString(ip), nil
		}
	}
	return "", fmt.Errorf("instance %s has no IP address", aws.ToString(inst.InstanceId))
}
