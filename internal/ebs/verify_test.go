package ebs

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

const (
	wantKey  = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	otherKey = "arn:aws:kms:us-east-1:111111111111:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
)

// verifyFake serves one image and its snapshots the way AWS does: the
// image's mappings carry Encrypted but never KmsKeyId; the snapshots carry
// both.
func verifyFake(state types.ImageState, mappings []types.BlockDeviceMapping, snaps map[string]types.Snapshot) *fakeEC2 {
	return &fakeEC2{
		describeImages: func(in *ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error) {
			return &ec2.DescribeImagesOutput{Images: []types.Image{{ImageId: aws.String(in.ImageIds[0]), State: state, BlockDeviceMappings: mappings}}}, nil
		},
		describeSnapshots: func(in *ec2.DescribeSnapshotsInput) (*ec2.DescribeSnapshotsOutput, error) {
			out := &ec2.DescribeSnapshotsOutput{}
			for _, id := range in.SnapshotIds {
				s, ok := snaps[id]
				if !ok {
					return nil, apiErr("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
				}
				out.Snapshots = append(out.Snapshots, s)
			}
			return out, nil
		},
	}
}

func ebsMapping(device, snapshotID string) types.BlockDeviceMapping {
	m := types.BlockDeviceMapping{DeviceName: aws.String(device), Ebs: &types.EbsBlockDevice{Encrypted: aws.Bool(true)}}
	if snapshotID != "" {
		m.Ebs.SnapshotId = aws.String(snapshotID)
	}
	return m
}

func snapshot(id string, encrypted bool, key string) types.Snapshot {
	s := types.Snapshot{SnapshotId: aws.String(id), Encrypted: aws.Bool(encrypted), State: types.SnapshotStateCompleted}
	if key != "" {
		s.KmsKeyId = aws.String(key)
	}
	return s
}

func TestVerifyImageEncrypted(t *testing.T) {
	root, data := ebsMapping("/dev/xvda", "snap-1"), ebsMapping("/dev/sdf", "snap-2")
	ephemeral := types.BlockDeviceMapping{DeviceName: aws.String("/dev/sdb"), VirtualName: aws.String("ephemeral0")}
	unmarkedEmpty := ebsMapping("/dev/sdg", "")
	unmarkedEmpty.Ebs.Encrypted = aws.Bool(false)
	tests := []struct {
		name     string
		state    types.ImageState
		mappings []types.BlockDeviceMapping
		snaps    map[string]types.Snapshot
		wantErr  []string // "" parts: every one must appear; nil: success
		mismatch bool
	}{
		{name: "every snapshot under the key", state: types.ImageStateAvailable,
			mappings: []types.BlockDeviceMapping{root, ephemeral, data, ebsMapping("/dev/sdh", "")},
			snaps:    map[string]types.Snapshot{"snap-1": snapshot("snap-1", true, wantKey), "snap-2": snapshot("snap-2", true, wantKey)}},
		{name: "one snapshot under another key", state: types.ImageStateAvailable, mappings: []types.BlockDeviceMapping{root, data},
			snaps:    map[string]types.Snapshot{"snap-1": snapshot("snap-1", true, wantKey), "snap-2": snapshot("snap-2", true, otherKey)},
			wantErr:  []string{"snapshot snap-2 (/dev/sdf) of ami-1 is encrypted under " + otherKey + ", not under the expected " + wantKey},
			mismatch: true},
		{name: "unencrypted snapshot", state: types.ImageStateAvailable, mappings: []types.BlockDeviceMapping{root},
			snaps:    map[string]types.Snapshot{"snap-1": snapshot("snap-1", false, "")},
			wantErr:  []string{"snapshot snap-1 (/dev/xvda) of ami-1 is not encrypted; expected encryption under " + wantKey},
			mismatch: true},
		{name: "every mismatch is named", state: types.ImageStateAvailable, mappings: []types.BlockDeviceMapping{root, data, unmarkedEmpty},
			snaps: map[string]types.Snapshot{"snap-1": snapshot("snap-1", true, otherKey), "snap-2": snapshot("snap-2", false, "")},
			wantErr: []string{"snap-1 (/dev/xvda) of ami-1 is encrypted under " + otherKey, "snap-2 (/dev/sdf) of ami-1 is not encrypted",
				"the empty volume /dev/sdg of ami-1 is not marked encrypted"},
			mismatch: true},
		{name: "snapshot not visible", state: types.ImageStateAvailable, mappings: []types.BlockDeviceMapping{root},
			snaps: map[string]types.Snapshot{}, wantErr: []string{"verifying ami-1", "snap-1", "not found"}},
		{name: "image not available", state: types.ImageStateFailed, mappings: []types.BlockDeviceMapping{root},
			snaps: map[string]types.Snapshot{"snap-1": snapshot("snap-1", true, wantKey)}, wantErr: []string{"verifying ami-1: the image is failed, not available"}},
		{name: "no snapshot at all", state: types.ImageStateAvailable, mappings: []types.BlockDeviceMapping{ephemeral},
			wantErr: []string{"has no EBS snapshot"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := verifyFake(tt.state, tt.mappings, tt.snaps)
			v, err := VerifyImageEncrypted(context.Background(), client, "ami-1", wantKey)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("VerifyImageEncrypted: %v", err)
				}
				if strings.Join(v.Snapshots, ",") != "snap-1,snap-2" || v.KeyARN != wantKey || v.ImageID != "ami-1" {
					t.Errorf("verified = %+v", v)
				}
				if client.n("DescribeImages") != 1 || client.n("DescribeSnapshots") != 1 {
					t.Errorf("%d DescribeImages, %d DescribeSnapshots; want one of each", client.n("DescribeImages"), client.n("DescribeSnapshots"))
				}
				return
			}
			if err == nil {
				t.Fatalf("VerifyImageEncrypted passed; want %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if IsEncryptionMismatch(err) != tt.mismatch {
				t.Errorf("IsEncryptionMismatch = %v, want %v", !tt.mismatch, tt.mismatch)
			}
		})
	}
}

func TestVerifyImageEncryptedNeedsAKey(t *testing.T) {
	client := verifyFake(types.ImageStateAvailable, nil, nil)
	if _, err := VerifyImageEncrypted(context.Background(), client, "ami-1", ""); err == nil || client.n("DescribeImages") != 0 {
		t.Errorf("err = %v after %d calls; want a refusal before any call", err, client.n("DescribeImages"))
	}
}

func TestFindSnapshotsFollowsPagesAndNamesTheMissing(t *testing.T) {
	pages := 0
	client := &fakeEC2{describeSnapshots: func(in *ec2.DescribeSnapshotsInput) (*ec2.DescribeSnapshotsOutput, error) {
		pages++
		if in.NextToken == nil {
			return &ec2.DescribeSnapshotsOutput{Snapshots: []types.Snapshot{snapshot("snap-1", true, wantKey)}, NextToken: aws.String("p2")}, nil
		}
		return &ec2.DescribeSnapshotsOutput{Snapshots: []types.Snapshot{snapshot("snap-2", true, otherKey)}}, nil
	}}
	got, err := FindSnapshots(context.Background(), client, []string{"snap-1", "snap-2"})
	if err != nil || pages != 2 || aws.ToString(got["snap-2"].KmsKeyId) != otherKey {
		t.Fatalf("FindSnapshots = %v, %v after %d pages", got, err, pages)
	}
	pages = 0
	_, err = FindSnapshots(context.Background(), client, []string{"snap-1", "snap-2", "snap-3"})
	if !IsNotFound(err) || !strings.Contains(err.Error(), "snap-3") {
		t.Errorf("err = %v, want snap-3 not found", err)
	}
}

// TestVerifyEncryptedTakesTheWaitedImage: given the image a wait just read,
// verification asks only DescribeSnapshots, and judges by the snapshots'
// keys, never by the image's mappings.
func TestVerifyEncryptedTakesTheWaitedImage(t *testing.T) {
	client := verifyFake(types.ImageStateAvailable, nil, map[string]types.Snapshot{"snap-1": snapshot("snap-1", true, otherKey)})
	img := &types.Image{ImageId: aws.String("ami-1"), State: types.ImageStateAvailable, BlockDeviceMappings: []types.BlockDeviceMapping{
		{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-1"), Encrypted: aws.Bool(true), KmsKeyId: aws.String(wantKey)}},
	}}
	_, err := VerifyEncrypted(context.Background(), client, img, wantKey)
	if !IsEncryptionMismatch(err) || !strings.Contains(err.Error(), "encrypted under "+otherKey) {
		t.Errorf("err = %v; the snapshot's own key must decide", err)
	}
	if client.n("DescribeImages") != 0 || client.n("DescribeSnapshots") != 1 {
		t.Errorf("%d DescribeImages, %d DescribeSnapshots; want 0 and 1", client.n("DescribeImages"), client.n("DescribeSnapshots"))
	}
}
