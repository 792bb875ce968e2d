package ebs

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
)

// FindInstanceByID returns the instance or a *NotFoundError.
func FindInstanceByID(ctx context.Context, client EC2API, instanceID string) (*types.Instance, error) {
	out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{instanceID}})
	if IsCode(err, "InvalidInstanceID.NotFound") {
		return nil, &NotFoundError{Kind: "instance", ID: instanceID, Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("describing instance %s: %w", instanceID, err)
	}
	for _, r := range out.Reservations {
		for i := range r.Instances {
			if aws.ToString(r.Instances[i].InstanceId) == instanceID {
				return &r.Instances[i], nil
			}
		}
	}
	return nil, &NotFoundError{Kind: "instance", ID: instanceID}
}

// StatusInstance is the instance's state name.
func StatusInstance(i *types.Instance) string {
	if i.State == nil {
		return ""
	}
	return string(i.State.Name)
}

func instanceFailure(want types.InstanceStateName) func(*types.Instance) *StateError {
	return func(i *types.Instance) *StateError {
		st := types.InstanceStateName(StatusInstance(i))
		bad := false
		switch want {
		case types.InstanceStateNameRunning, types.InstanceStateNameStopped:
			bad = st == types.InstanceStateNameTerminated || st == types.InstanceStateNameShuttingDown
		}
		if want == types.InstanceStateNameRunning && (st == types.InstanceStateNameStopped || st == types.InstanceStateNameStopping) {
			bad = true
		}
		if !bad {
			return nil
		}
		se := &StateError{Kind: "instance", ID: aws.ToString(i.InstanceId), State: string(st)}
		if i.StateReason != nil {
			se.Reason = aws.ToString(i.StateReason.Code)
			se.Message = aws.ToString(i.StateReason.Message)
		}
		return se
	}
}

func waitInstance(ctx context.Context, client EC2API, poll *awsauth.PollingConfig, instanceID string, want types.InstanceStateName, pending ...types.InstanceStateName) (*types.Instance, error) {
	pend := make([]string, len(pending))
	for i, p := range pending {
		pend[i] = string(p)
	}
	return wait(ctx, poll, waitSpec[*types.Instance]{
		kind: "instance", id: instanceID, want: string(want),
		find:    func(ctx context.Context) (*types.Instance, error) { return FindInstanceByID(ctx, client, instanceID) },
		state:   StatusInstance,
		pending: oneOf(pend...),
		failure: instanceFailure(want),
	})
}

// WaitInstanceRunning waits for running. An instance that terminates on
// launch returns a *StateError with AWS's state reason, e.g.
// "Client.InternalError: Client error on launch".
func WaitInstanceRunning(ctx context.Context, client EC2API, poll *awsauth.PollingConfig, instanceID string) (*types.Instance, error) {
	return waitInstance(ctx, client, poll, instanceID, types.InstanceStateNameRunning, types.InstanceStateNamePending)
}

// WaitInstanceStopped waits for stopped.
func WaitInstanceStopped(ctx context.Context, client EC2API, poll *awsauth.PollingConfig, instanceID string) (*types.Instance, error) {
	return waitInstance(ctx, client, poll, instanceID, types.InstanceStateNameStopped,
		types.InstanceStateNamePending, types.InstanceStateNameRunning, types.InstanceStateNameStopping)
}

// WaitInstanceTerminated waits for terminated.
func WaitInstanceTerminated(ctx context.Context, client EC2API, poll *awsauth.PollingConfig, instanceID string) (*types.Instance, error) {
	inst, err := waitInstance(ctx, client, poll, instanceID, types.InstanceStateNameTerminated,
		types.InstanceStateNamePending, types.InstanceStateNameRunning, types.InstanceStateNameStopping,
		types.InstanceStateNameStopped, types.InstanceStateNameShuttingDown)
	if IsNotFound(err) {
		return nil, nil // terminated instances eventually vanish
	}
	return inst, err
}

// RunInstance launches one instance and returns it.
func RunInstance(ctx context.Context, client EC2API, in *ec2.RunInstancesInput) (*types.Instance, error) {
	in.MinCount, in.MaxCount = aws.Int32(1), aws.Int32(1)
	out, err := client.RunInstances(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("launching an instance of %s: %w", aws.ToString(in.ImageId), err)
	}
	if len(out.Instances) != 1 {
		return nil, fmt.Errorf("launching an instance of %s: RunInstances returned %d instances", aws.ToString(in.ImageId), len(out.Instances))
	}
	return &out.Instances[0], nil
}

// StopInstance asks the instance to stop.
func StopInstance(ctx context.Context, client EC2API, instanceID string) error {
	if _, err := client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{instanceID}}); err != nil {
		return fmt.Errorf("stopping instance %s: %w", instanceID, err)
	}
	return nil
}

// TerminateInstance terminates the instance; one already gone is not an error.
func TerminateInstance(ctx context.Context, client EC2API, instanceID string) error {
	_, err := client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{instanceID}})
	if err != nil && !IsCode(err, "InvalidInstanceID.NotFound") {
		return fmt.Errorf("terminating instance %s: %w", instanceID, err)
	}
	return nil
}

// FindVolumes returns the volumes by ID.
func FindVolumes(ctx context.Context, client EC2API, volumeIDs []string) ([]types.Volume, error) {
	out, err := client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: volumeIDs})
	if err != nil {
		return nil, fmt.Errorf("describing volumes %v: %w", volumeIDs, err)
	}
	return out.Volumes, nil
}

// FindSubnet picks a subnet: by ID, or among those matching the filters (and
// VPC) the one with the most free addresses when mostFree, else the only one.
func FindSubnet(ctx context.Context, client EC2API, subnetID, vpcID string, filters map[string]string, mostFree bool) (*types.Subnet, error) {
	in := &ec2.DescribeSubnetsInput{}
	if subnetID != "" {
		in.SubnetIds = []string{subnetID}
	}
	if vpcID != "" {
		in.Filters = append(in.Filters, types.Filter{Name: aws.String("vpc-id"), Values: []string{vpcID}})
	}
	for k, v := range filters {
		in.Filters = append(in.Filters, types.Filter{Name: aws.String(k), Values: []string{v}})
	}
	out, err := client.DescribeSubnets(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("looking for a subnet: %w", err)
	}
	switch {
	case len(out.Subnets) == 0:
		return nil, &NotFoundError{Kind: "subnet", ID: fmt.Sprintf("id %q vpc %q filters %v", subnetID, vpcID, filters)}
	case len(out.Subnets) > 1 && !mostFree && vpcID == "":
		return nil, fmt.Errorf("%d subnets match filters %v; narrow the filters or set most_free = true", len(out.Subnets), filters)
	}
	best := &out.Subnets[0]
	for i := range out.Subnets {
		if aws.ToInt32(out.Subnets[i].AvailableIpAddressCount) > aws.ToInt32(best.AvailableIpAddressCount) {
			best = &out.Subnets[i]
		}
	}
	return best, nil
}
