package ebs

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

// fakeEC2 implements EC2API through optional function fields; calling a
// method without one panics through the nil embedded interface.
type fakeEC2 struct {
	EC2API
	mu    sync.Mutex
	calls map[string]int

	describeImages    func(*ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error)
	describeSnapshots func(*ec2.DescribeSnapshotsInput) (*ec2.DescribeSnapshotsOutput, error)
	describeInstances func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error)
	copySnapshot      func(*ec2.CopySnapshotInput) (*ec2.CopySnapshotOutput, error)
	copyImage         func(*ec2.CopyImageInput) (*ec2.CopyImageOutput, error)
	deleteSnapshot    func(*ec2.DeleteSnapshotInput) (*ec2.DeleteSnapshotOutput, error)
	deregisterImage   func(*ec2.DeregisterImageInput) (*ec2.DeregisterImageOutput, error)
	createTags        func(*ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error)
	modifyImageAttr   func(*ec2.ModifyImageAttributeInput) (*ec2.ModifyImageAttributeOutput, error)
	createSG          func(*ec2.CreateSecurityGroupInput) (*ec2.CreateSecurityGroupOutput, error)
	authorizeSG       func(*ec2.AuthorizeSecurityGroupIngressInput) (*ec2.AuthorizeSecurityGroupIngressOutput, error)
	deleteSG          func(*ec2.DeleteSecurityGroupInput) (*ec2.DeleteSecurityGroupOutput, error)
	deleteKeyPair     func(*ec2.DeleteKeyPairInput) (*ec2.DeleteKeyPairOutput, error)
}

func (f *fakeEC2) count(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
}

func (f *fakeEC2) n(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeEC2) DescribeImages(_ context.Context, in *ec2.DescribeImagesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	f.count("DescribeImages")
	return f.describeImages(in)
}

func (f *fakeEC2) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	f.count("DescribeSnapshots")
	return f.describeSnapshots(in)
}

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.count("DescribeInstances")
	return f.describeInstances(in)
}

func (f *fakeEC2) CopySnapshot(_ context.Context, in *ec2.CopySnapshotInput, _ ...func(*ec2.Options)) (*ec2.CopySnapshotOutput, error) {
	f.count("CopySnapshot")
	return f.copySnapshot(in)
}

func (f *fakeEC2) CopyImage(_ context.Context, in *ec2.CopyImageInput, _ ...func(*ec2.Options)) (*ec2.CopyImageOutput, error) {
	f.count("CopyImage")
	return f.copyImage(in)
}

func (f *fakeEC2) DeleteSnapshot(_ context.Context, in *ec2.DeleteSnapshotInput, _ ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	f.count("DeleteSnapshot")
	return f.deleteSnapshot(in)
}

func (f *fakeEC2) DeregisterImage(_ context.Context, in *ec2.DeregisterImageInput, _ ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	f.count("DeregisterImage")
	return f.deregisterImage(in)
}

func (f *fakeEC2) CreateTags(_ context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	f.count("CreateTags")
	return f.createTags(in)
}

func (f *fakeEC2) ModifyImageAttribute(_ context.Context, in *ec2.ModifyImageAttributeInput, _ ...func(*ec2.Options)) (*ec2.ModifyImageAttributeOutput, error) {
	f.count("ModifyImageAttribute")
	return f.modifyImageAttr(in)
}

func (f *fakeEC2) CreateSecurityGroup(_ context.Context, in *ec2.CreateSecurityGroupInput, _ ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error) {
	f.count("CreateSecurityGroup")
	return f.createSG(in)
}

func (f *fakeEC2) AuthorizeSecurityGroupIngress(_ context.Context, in *ec2.AuthorizeSecurityGroupIngressInput, _ ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error) {
	f.count("AuthorizeSecurityGroupIngress")
	return f.authorizeSG(in)
}

func (f *fakeEC2) DeleteSecurityGroup(_ context.Context, in *ec2.DeleteSecurityGroupInput, _ ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error) {
	f.count("DeleteSecurityGroup")
	return f.deleteSG(in)
}

func (f *fakeEC2) DeleteKeyPair(_ context.Context, in *ec2.DeleteKeyPairInput, _ ...func(*ec2.Options)) (*ec2.DeleteKeyPairOutput, error) {
	f.count("DeleteKeyPair")
	return f.deleteKeyPair(in)
}

type fakeKMS struct {
	KMSAPI
	describeKey func(*kms.DescribeKeyInput) (*kms.DescribeKeyOutput, error)
	createGrant func(*kms.CreateGrantInput) (*kms.CreateGrantOutput, error)
	retireGrant func(*kms.RetireGrantInput) (*kms.RetireGrantOutput, error)
	revokeGrant func(*kms.RevokeGrantInput) (*kms.RevokeGrantOutput, error)
}

func (f *fakeKMS) CreateGrant(_ context.Context, in *kms.CreateGrantInput, _ ...func(*kms.Options)) (*kms.CreateGrantOutput, error) {
	return f.createGrant(in)
}

func (f *fakeKMS) RetireGrant(_ context.Context, in *kms.RetireGrantInput, _ ...func(*kms.Options)) (*kms.RetireGrantOutput, error) {
	return f.retireGrant(in)
}

func (f *fakeKMS) RevokeGrant(_ context.Context, in *kms.RevokeGrantInput, _ ...func(*kms.Options)) (*kms.RevokeGrantOutput, error) {
	return f.revokeGrant(in)
}

func (f *fakeKMS) DescribeKey(_ context.Context, in *kms.DescribeKeyInput, _ ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	return f.describeKey(in)
}

func apiErr(code, format string, args ...any) error {
	return &smithy.GenericAPIError{Code: code, Message: fmt.Sprintf(format, args...)}
}
