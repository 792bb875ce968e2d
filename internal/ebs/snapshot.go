package ebs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
)

// FindSnapshotByID returns the snapshot or a *NotFoundError.
func FindSnapshotByID(ctx context.Context, client EC2API, snapshotID string) (*types.Snapshot, error) {
	out, err := client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapshotID}})
	if IsCode(err, "InvalidSnapshot.NotFound") {
		return nil, &NotFoundError{Kind: "snapshot", ID: snapshotID, Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("describing snapshot %s: %w", snapshotID, err)
	}
	for i := range out.Snapshots {
		if aws.ToString(out.Snapshots[i].SnapshotId) == snapshotID {
			return &out.Snapshots[i], nil
		}
	}
	return nil, &NotFoundError{Kind: "snapshot", ID: snapshotID}
}

// StatusSnapshot is the snapshot's state string.
func StatusSnapshot(s *types.Snapshot) string { return string(s.State) }

func snapshotFailure(s *types.Snapshot) *StateError {
	if s.State == types.SnapshotStateError || s.State == types.SnapshotStateRecoverable {
		return &StateError{Kind: "snapshot", ID: aws.ToString(s.SnapshotId), State: string(s.State), Message: aws.ToString(s.StateMessage)}
	}
	return nil
}

// WaitSnapshotCompleted waits for the snapshot to complete, reporting each
// poll (with Progress) to progress.
func WaitSnapshotCompleted(ctx context.Context, client EC2API, poll *awsauth.PollingConfig, snapshotID string, progress func(*types.Snapshot)) (*types.Snapshot, error) {
	return wait(ctx, poll, waitSpec[*types.Snapshot]{
		kind: "snapshot", id: snapshotID, want: string(types.SnapshotStateCompleted),
		find:     func(ctx context.Context) (*types.Snapshot, error) { return FindSnapshotByID(ctx, client, snapshotID) },
		state:    StatusSnapshot,
		pending:  oneOf(string(types.SnapshotStatePending)),
		failure:  snapshotFailure,
		progress: progress,
	})
}

// CreateSnapshot snapshots a volume, tagging the snapshot on creation.
func CreateSnapshot(ctx context.Context, client EC2API, volumeID, description string, tags map[string]string) (string, error) {
	in := &ec2.CreateSnapshotInput{VolumeId: aws.String(volumeID)}
	if description != "" {
		in.Description = aws.String(description)
	}
	in.TagSpecifications = TagSpecs(map[types.ResourceType]map[string]string{types.ResourceTypeSnapshot: tags})
	out, err := client.CreateSnapshot(ctx, in)
	if err != nil {
		return "", fmt.Errorf("snapshotting volume %s: %w", volumeID, err)
	}
	return aws.ToString(out.SnapshotId), nil
}

// CopySnapshotSpec is an encrypted copy of a snapshot.
type CopySnapshotSpec struct {
	SourceSnapshotID string
	SourceRegion     string
	KmsKeyID         string // key ARN (required: never fall back to aws/ebs)
	Description      string
	Tags             map[string]string
}

// CopySnapshotEncrypted copies a snapshot with Encrypted=true under the key,
// tagged on creation, and returns the new snapshot ID.
func CopySnapshotEncrypted(ctx context.Context, client EC2API, s CopySnapshotSpec) (string, error) {
	if s.KmsKeyID == "" {
		return "", fmt.Errorf("copying snapshot %s: no KMS key given; an encrypted copy would fall back to aws/ebs", s.SourceSnapshotID)
	}
	in := &ec2.CopySnapshotInput{
		SourceSnapshotId: aws.String(s.SourceSnapshotID),
		SourceRegion:     aws.String(s.SourceRegion),
		Encrypted:        aws.Bool(true),
		KmsKeyId:         aws.String(s.KmsKeyID),
	}
	if s.Description != "" {
		in.Description = aws.String(s.Description)
	}
	in.TagSpecifications = TagSpecs(map[types.ResourceType]map[string]string{types.ResourceTypeSnapshot: s.Tags})
	out, err := client.CopySnapshot(ctx, in)
	if err != nil {
		return "", fmt.Errorf("copying snapshot %s encrypted under %s: %w", s.SourceSnapshotID, s.KmsKeyID, err)
	}
	return aws.ToString(out.SnapshotId), nil
}

// inUseRetries bounds how long DeleteSnapshot waits for a just-deregistered
// image to release its snapshot.
const inUseRetries = 10

// DeleteSnapshot deletes a snapshot; one already gone is not an error. A
// snapshot still held by an image being deregistered is retried briefly.
func DeleteSnapshot(ctx context.Context, client EC2API, snapshotID string) error {
	_, err := Retry(ctx, inUseRetries+1, linearPause(200*time.Millisecond),
		func(err error) bool { return IsCode(err, "InvalidSnapshot.InUse") }, nil,
		func(ctx context.Context) error {
			_, err := client.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snapshotID)})
			return err
		})
	if err != nil && !IsCode(err, "InvalidSnapshot.NotFound") {
		return fmt.Errorf("deleting snapshot %s: %w", snapshotID, err)
	}
	return nil
}

// ShareSnapshot adds createVolumePermission for the accounts.
func ShareSnapshot(ctx context.Context, client EC2API, snapshotID string, accounts []string) error {
	return modifyCreateVolumePermission(ctx, client, snapshotID, accounts, true)
}

// UnshareSnapshot removes createVolumePermission for the accounts. A
// snapshot already gone counts as unshared: nobody can use it any more.
func UnshareSnapshot(ctx context.Context, client EC2API, snapshotID string, accounts []string) error {
	_, err := RemoveCreateVolumePermissions(ctx, client, snapshotID, accounts)
	return err
}

// RemoveCreateVolumePermissions is UnshareSnapshot that also says whether
// the snapshot was already gone.
func RemoveCreateVolumePermissions(ctx context.Context, client EC2API, snapshotID string, accounts []string) (gone bool, err error) {
	err = modifyCreateVolumePermission(ctx, client, snapshotID, accounts, false)
	if IsCode(err, "InvalidSnapshot.NotFound") {
		return true, nil
	}
	return false, err
}

func modifyCreateVolumePermission(ctx context.Context, client EC2API, snapshotID string, accounts []string, add bool) error {
	if len(accounts) == 0 {
		return nil
	}
	var perms []types.CreateVolumePermission
	for _, a := range accounts {
		perms = append(perms, types.CreateVolumePermission{UserId: aws.String(a)})
	}
	mod := &types.CreateVolumePermissionModifications{}
	verb := "sharing"
	if add {
		mod.Add = perms
	} else {
		mod.Remove = perms
		verb = "unsharing"
	}
	_, err := client.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{
		SnapshotId: aws.String(snapshotID), CreateVolumePermission: mod,
	})
	if err != nil {
		return fmt.Errorf("%s snapshot %s with %v: %w", verb, snapshotID, accounts, err)
	}
	return nil
}

// DeleteSnapshotWhenSettled deletes a snapshot that may still be pending (a
// cleanup after an interrupt). Deleting a pending copy cancels it; should
// EC2 refuse (IncorrectState), it waits for the snapshot to settle and
// deletes it then. A snapshot already gone is not an error.
func DeleteSnapshotWhenSettled(ctx context.Context, client EC2API, poll *awsauth.PollingConfig, snapshotID string) error {
	err := DeleteSnapshot(ctx, client, snapshotID)
	if err == nil || !IsCode(err, "IncorrectState") {
		return err
	}
	if _, err := WaitSnapshotCompleted(ctx, client, poll, snapshotID, nil); err != nil && !IsStateError(err) && !IsNotFound(err) {
		return fmt.Errorf("waiting to delete snapshot %s: %w", snapshotID, err)
	}
	return DeleteSnapshot(ctx, client, snapshotID)
}

// FindSnapshots describes the snapshots in one DescribeSnapshots call (as
// many pages as AWS gives) and returns them by ID. A snapshot the caller
// can't see is a *NotFoundError. This is where the key of a snapshot comes
// from: DescribeImages doesn't return KmsKeyId in an image's block device
// mappings, DescribeSnapshots always does, as a key ARN (docs/aws-behaviour.md).
func FindSnapshots(ctx context.Context, client EC2API, snapshotIDs []string) (map[string]*types.Snapshot, error) {
	found := make(map[string]*types.Snapshot, len(snapshotIDs))
	if len(snapshotIDs) == 0 {
		return found, nil
	}
	in := &ec2.DescribeSnapshotsInput{SnapshotIds: snapshotIDs}
	for {
		out, err := client.DescribeSnapshots(ctx, in)
		if IsCode(err, "InvalidSnapshot.NotFound") {
			return nil, &NotFoundError{Kind: "snapshot", ID: strings.Join(snapshotIDs, ", "), Err: err}
		}
		if err != nil {
			return nil, fmt.Errorf("describing snapshots %s: %w", strings.Join(snapshotIDs, ", "), err)
		}
		for i := range out.Snapshots {
			found[aws.ToString(out.Snapshots[i].SnapshotId)] = &out.Snapshots[i]
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	for _, id := range snapshotIDs {
		if found[id] == nil {
			return nil, &NotFoundError{Kind: "snapshot", ID: id}
		}
	}
	return found, nil
}
