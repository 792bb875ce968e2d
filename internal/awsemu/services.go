package awsemu

import (
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/ec2"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/kms"
)

// service is one AWS service the dispatcher serves.
type service interface {
	Handle(c *core.Call) (any, *core.APIError)
}

// services are the services by signing name.
func (e *Emulator) services() map[string]service {
	return map[string]service{"ec2": e.ec2, "kms": e.kms, "sts": e.sts, "iam": e.iamAPI}
}

// AutoScalingRoleARN is the service-linked role Auto Scaling launches
// instances with in account.
func AutoScalingRoleARN(account string) string { return ec2.AutoScalingRoleARN(account) }

// CheckLaunch reports whether principalIAM could launch imageID in
// account/region (see ec2.Service.CheckLaunch).
func (e *Emulator) CheckLaunch(account, region, principalIAM, imageID string) error {
	return e.ec2.CheckLaunch(account, region, principalIAM, imageID)
}

// GrantInfo is a live KMS grant.
type GrantInfo = kms.GrantInfo

// Grants lists the live KMS grants.
func (e *Emulator) Grants() []GrantInfo { return e.kms.Grants() }

// KMS is the emulator's KMS service, for tests that check what EC2 asks of
// it.
func (e *Emulator) KMS() *kms.Service { return e.kms }
