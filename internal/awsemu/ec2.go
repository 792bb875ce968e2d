package awsemu

import "github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/ec2"

func (e *Emulator) handleEC2(c *Call) (any, *APIError) { return e.ec2.Handle(c) }

// AutoScalingRoleARN is the service-linked role Auto Scaling launches
// instances with in account.
func AutoScalingRoleARN(account string) string { return ec2.AutoScalingRoleARN(account) }

// CheckLaunch reports whether principalIAM could launch imageID in
// account/region (see ec2.Service.CheckLaunch).
func (e *Emulator) CheckLaunch(account, region, principalIAM, imageID string) error {
	return e.ec2.CheckLaunch(account, region, principalIAM, imageID)
}
