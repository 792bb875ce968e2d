package ec2

// dropin.go: the EC2 actions amazon-ebs (and amicrypt-ebs, its drop-in)
// use beyond images, snapshots and plain instances: launch templates, EC2
// Fleet, spot instance requests (fleet.go) and Windows passwords
// (passwords.go). service.go merges this table into its own.

import "github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"

func dropInActions() map[string]ec2Handler {
	return map[string]ec2Handler{
		"CreateLaunchTemplate":         (*view).ec2CreateLaunchTemplate,
		"DeleteLaunchTemplate":         (*view).ec2DeleteLaunchTemplate,
		"DescribeLaunchTemplates":      (*view).ec2DescribeLaunchTemplates,
		"CreateFleet":                  (*view).ec2CreateFleet,
		"DeleteFleets":                 (*view).ec2DeleteFleets,
		"DescribeSpotInstanceRequests": (*view).ec2DescribeSpotInstanceRequests,
		"CancelSpotInstanceRequests":   (*view).ec2CancelSpotInstanceRequests,
		"GetPasswordData":              (*view).ec2GetPasswordData,
	}
}

// taggableDropIn checks that the caller sees a launch template, fleet or
// spot instance request in its region (CreateTags, DeleteTags).
func (e *view) taggableDropIn(c *core.Call, id string) *core.APIError {
	switch resourceType(id) {
	case "launch-template":
		if lt, ok := get(e, launchTemplatesOf, id); ok && lt.Owner == c.Account && lt.Region == c.Region {
			return nil
		}
		return core.Errf("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
	case "fleet":
		if f, ok := get(e, fleetsOf, id); ok && f.Owner == c.Account && f.Region == c.Region {
			return nil
		}
		return core.Errf("InvalidFleetId.NotFound", "The fleet ID '%s' does not exist", id)
	case "spot-instances-request":
		if r, ok := get(e, spotRequestsOf, id); ok && r.Owner == c.Account && r.Region == c.Region {
			return nil
		}
		return core.Errf("InvalidSpotInstanceRequestID.NotFound", "The spot instance request ID '%s' does not exist", id)
	}
	return core.Errf("InvalidID", "The ID '%s' is not valid", id)
}
