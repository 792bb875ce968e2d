package ebs

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Verified is an image read back as its owner, with every EBS snapshot
// behind it encrypted under KeyARN.
type Verified struct {
	ImageID   string
	KeyARN    string
	Snapshots []string // in the order of the image's block device mappings
}

// EncryptionMismatchError is a device of an image that is not encrypted
// under the key it should be.
type EncryptionMismatchError struct {
	ImageID    string
	Device     string
	SnapshotID string // "" for an empty volume (no snapshot)
	Encrypted  bool
	FoundKey   string // the snapshot's key ARN, "" when not encrypted
	WantKey    string
}

func (e *EncryptionMismatchError) Error() string {
	switch {
	case e.SnapshotID == "":
		return fmt.Sprintf("the empty volume %s of %s is not marked encrypted; expected encryption under %s", e.Device, e.ImageID, e.WantKey)
	case !e.Encrypted:
		return fmt.Sprintf("snapshot %s (%s) of %s is not encrypted; expected encryption under %s", e.SnapshotID, e.Device, e.ImageID, e.WantKey)
	default:
		return fmt.Sprintf("snapshot %s (%s) of %s is encrypted under %s, not under the expected %s", e.SnapshotID, e.Device, e.ImageID, e.FoundKey, e.WantKey)
	}
}

// VerifyImageEncrypted reads an image back with the owner's client
// (DescribeImages, then DescribeSnapshots of every EBS snapshot behind it)
// and checks that the image is available and that every snapshot is
// Encrypted under keyARN. The keys come from DescribeSnapshots, which
// reports each as a key ARN; DescribeImages doesn't return them
// (docs/aws-behaviour.md). Every mismatch is reported, each an
// *EncryptionMismatchError naming the snapshot, the key found and the key
// expected. amicrypt says an AMI is encrypted under a key only after this.
func VerifyImageEncrypted(ctx context.Context, client EC2API, imageID, keyARN string) (Verified, error) {
	if keyARN == "" {
		return Verified{ImageID: imageID}, fmt.Errorf("verifying %s: no expected key ARN given", imageID)
	}
	img, err := FindImageByID(ctx, client, imageID)
	if err != nil {
		return Verified{ImageID: imageID, KeyARN: keyARN}, fmt.Errorf("verifying %s: %w", imageID, err)
	}
	return VerifyEncrypted(ctx, client, img, keyARN)
}

// VerifyEncrypted is VerifyImageEncrypted for an image the caller has just
// read with DescribeImages as its owner, such as the batched wait that saw
// it become available: it saves a DescribeImages per image where many
// copies are waited for together.
func VerifyEncrypted(ctx context.Context, client EC2API, img *types.Image, keyARN string) (Verified, error) {
	imageID := aws.ToString(img.ImageId)
	v := Verified{ImageID: imageID, KeyARN: keyARN}
	if keyARN == "" {
		return v, fmt.Errorf("verifying %s: no expected key ARN given", imageID)
	}
	if img.State != types.ImageStateAvailable {
		return v, fmt.Errorf("verifying %s: the image is %s, not available", imageID, img.State)
	}
	var mismatches []error
	devices := map[string]string{} // snapshot → device
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs == nil {
			continue
		}
		dev := aws.ToString(m.DeviceName)
		if m.Ebs.SnapshotId == nil {
			if !aws.ToBool(m.Ebs.Encrypted) {
				mismatches = append(mismatches, &EncryptionMismatchError{ImageID: imageID, Device: dev, WantKey: keyARN})
			}
			continue
		}
		id := aws.ToString(m.Ebs.SnapshotId)
		v.Snapshots = append(v.Snapshots, id)
		devices[id] = dev
	}
	if len(v.Snapshots) == 0 {
		return v, fmt.Errorf("verifying %s: the image has no EBS snapshot, so nothing encrypted to check", imageID)
	}
	snaps, err := FindSnapshots(ctx, client, v.Snapshots)
	if err != nil {
		return v, fmt.Errorf("verifying %s: %w", imageID, err)
	}
	for _, id := range v.Snapshots {
		s := snaps[id]
		found := aws.ToString(s.KmsKeyId)
		if !aws.ToBool(s.Encrypted) {
			found = ""
		}
		if found != keyARN {
			mismatches = append(mismatches, &EncryptionMismatchError{ImageID: imageID, Device: devices[id], SnapshotID: id,
				Encrypted: aws.ToBool(s.Encrypted), FoundKey: found, WantKey: keyARN})
		}
	}
	return v, errors.Join(mismatches...)
}

// IsEncryptionMismatch reports whether err says a device is not encrypted
// under the expected key.
func IsEncryptionMismatch(err error) bool {
	var m *EncryptionMismatchError
	return errors.As(err, &m)
}
