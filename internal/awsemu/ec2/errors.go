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

func ec2Unauthorized(c *core.Call) *core.APIError {
	return &core.APIError{HTTPStatus: 403, Code: "UnauthorizedOperation",
		Message: "You are not authorized to perform this operation. User: " + c.Principal + " is not authorized to perform: ec2:" + c.Action}
}

func kmsKeyNeedsEncrypted() *core.APIError {
	return core.Errf("InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.")
}

func unencryptedCopy(snapID string) *core.APIError {
	return core.Errf("InvalidRequest", "Snapshot %s is encrypted. Creating an unencrypted copy from an encrypted snapshot is not supported.", snapID)
}
