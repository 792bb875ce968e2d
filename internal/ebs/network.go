package ebs

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
)

// CreateKeyPair creates a key pair and returns its private key material.
func CreateKeyPair(ctx context.Context, client EC2API, name string) (string, error) {
	out, err := client.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("creating key pair %s: %w", name, err)
	}
	return aws.ToString(out.KeyMaterial), nil
}

// DeleteKeyPair deletes a key pair; one already gone is not an error.
func DeleteKeyPair(ctx context.Context, client EC2API, name string) error {
	_, err := client.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String(name)})
	if err != nil && !IsCode(err, "InvalidKeyPair.NotFound") {
		return fmt.Errorf("deleting key pair %s: %w", name, err)
	}
	return nil
}

// CreateSecurityGroupOpenOn creates a security group (in vpcID, or the
// default VPC when it is "") that lets TCP port in from anywhere. When the
// group is made but the port can't be opened, it returns the group's ID
// with the error, so the caller can delete it.
func CreateSecurityGroupOpenOn(ctx context.Context, client EC2API, name, description, vpcID string, port int32) (string, error) {
	in := &ec2.CreateSecurityGroupInput{GroupName: aws.String(name), Description: aws.String(description)}
	if vpcID != "" {
		in.VpcId = aws.String(vpcID)
	}
	out, err := client.CreateSecurityGroup(ctx, in)
	if err != nil {
		return "", fmt.Errorf("creating security group %s: %w", name, err)
	}
	groupID := aws.ToString(out.GroupId)
	_, err = client.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: out.GroupId,
		IpPermissions: []types.IpPermission{{
			IpProtocol: aws.String("tcp"), FromPort: aws.Int32(port), ToPort: aws.Int32(port),
			IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}},
		}},
	})
	if err != nil {
		return groupID, fmt.Errorf("opening port %d in security group %s: %w", port, groupID, err)
	}
	return groupID, nil
}

// securityGroupTries bounds how often DeleteSecurityGroup retries a group
// still held by a terminating instance, one poll delay apart.
const securityGroupTries = 10

// DeleteSecurityGroup deletes a security group; one already gone is not an
// error. While an instance still holds it (DependencyViolation) it retries.
func DeleteSecurityGroup(ctx context.Context, client EC2API, poll *awsauth.PollingConfig, groupID string) error {
	_, err := Retry(ctx, securityGroupTries, func(int) time.Duration { return poll.Delay() },
		func(err error) bool { return IsCode(err, "DependencyViolation") }, nil,
		func(ctx context.Context) error {
			_, err := client.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(groupID)})
			return err
		})
	if err != nil && !IsCode(err, "InvalidGroup.NotFound") {
		return fmt.Errorf("deleting security group %s: %w", groupID, err)
	}
	return nil
}
