package ec2

import (
	"strings"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// EC2's errors that more than one handler gives, in one place. Codes and
// texts follow the EC2 API reference "Error codes" and what AWS answers;
// docs/aws-behaviour.md marks the emulator's conventions.

func malformedID(id, prefix string) *core.APIError {
	code := map[string]string{"ami": "InvalidAMIID.Malformed", "snap": "InvalidSnapshotID.Malformed",
		"i": "InvalidInstanceID.Malformed", "vol": "InvalidVolumeID.Malformed"}[prefix]
	return core.Errf(code, "Invalid id: \"%s\" (expecting \"%s-...\")", id, prefix)
}

// notFound builds the NotFound error of a kind: one text for one ID, one
// for several.
func notFound(code, one, many string) func(ids ...string) *core.APIError {
	return func(ids ...string) *core.APIError {
		if len(ids) == 1 {
			return core.Errf(code, one, ids[0])
		}
		return core.Errf(code, many, strings.Join(ids, ", "))
	}
}

var (
	imageNotFound    = notFound("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", "The image ids '[%s]' do not exist")
	snapshotNotFound = notFound("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", "The snapshots '%s' do not exist.")
	instanceNotFound = notFound("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", "The instance IDs '%s' do not exist")
	volumeNotFound   = notFound("InvalidVolume.NotFound", "The volume '%s' does not exist.", "The volumes '%s' do not exist.")
)

// authorize checks the caller's identity policies for the action (EC2
// permissions are decided per action here, whatever the resource). A
// refusal is UnauthorizedOperation (HTTP 403): "You are not authorized to
// perform this operation." for Describe*/Get* calls; for the others the
// text names the caller, the action and the resource, and ends with the
// encoded authorization message sts:DecodeAuthorizationMessage decodes
// (docs/aws-behaviour.md 8.4).
func (e *Service) authorize(c *core.Call, p ec2Params) *core.APIError {
	action := "ec2:" + c.Action
	d := e.iam.Authorize(core.PolicyRequest{Account: c.Account, Principal: c.Principal, PrincipalIAM: c.PrincipalIAM, Action: action})
	if d.Allowed {
		return nil
	}
	const denied = "You are not authorized to perform this operation."
	if core.IsDescribe(c.Action) {
		return &core.APIError{HTTPStatus: 403, Code: "UnauthorizedOperation", Message: denied}
	}
	resource := resourceARN(c, p)
	encoded := e.sessions.EncodeAuthorizationMessage(c.Account, core.NewAuthorizationMessage(c, action, resource, d))
	return &core.APIError{HTTPStatus: 403, Code: "UnauthorizedOperation",
		Message: denied + " " + core.AccessDeniedMessage(c.Principal, action, resource, d.ExplicitDeny) +
			". Encoded authorization failure message: " + encoded}
}

// resourceARN is the resource a denied call names, as its message and
// decoded context show it: the ARN of the resource its ID parameter names
// (images and snapshots have no account in their ARNs), the new
// instances of RunInstances, else "*" (emulator convention: AWS names the
// first resource its policy evaluation refused).
func resourceARN(c *core.Call, p ec2Params) string {
	arn := func(account, kind, id string) string {
		return "arn:aws:ec2:" + c.Region + ":" + account + ":" + kind + "/" + id
	}
	if c.Action == "RunInstances" {
		return arn(c.Account, "instance", "*")
	}
	for _, param := range []struct{ name, kind string }{
		{"InstanceId", "instance"}, {"InstanceId.1", "instance"}, {"VolumeId", "volume"}, {"GroupId", "security-group"},
		{"ImageId", "image"}, {"SourceImageId", "image"}, {"SnapshotId", "snapshot"}, {"SourceSnapshotId", "snapshot"},
		{"KeyName", "key-pair"}, {"LaunchTemplateId", "launch-template"}, {"FleetId.1", "fleet"},
	} {
		id := p.str(param.name)
		if id == "" {
			continue
		}
		switch param.kind {
		case "image", "snapshot":
			return arn("", param.kind, id)
		default:
			return arn(c.Account, param.kind, id)
		}
	}
	return "*"
}

func kmsKeyNeedsEncrypted() *core.APIError {
	return core.Errf("InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.")
}

func unencryptedCopy(snapID string) *core.APIError {
	return core.Errf("InvalidRequest", "Snapshot %s is encrypted. Creating an unencrypted copy from an encrypted snapshot is not supported.", snapID)
}
