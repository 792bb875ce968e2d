package ebs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

func TestAccessDenied(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		by       DeniedBy
		denied   bool
		explicit bool
	}{
		{"IAM explicit deny", apiErr("AccessDeniedException", "User: r is not authorized to perform: kms:Decrypt on resource: k with an explicit deny in an identity-based policy"), DeniedByIdentityPolicy, true, true},
		{"IAM allows nothing", apiErr("AccessDeniedException", "User: r is not authorized to perform: kms:Decrypt on resource: k because no identity-based policy allows the kms:Decrypt action"), DeniedByIdentityPolicy, true, false},
		{"key policy allows nothing", apiErr("AccessDeniedException", "User: r is not authorized to perform: kms:Decrypt on resource: k because no resource-based policy allows the kms:Decrypt action"), DeniedByResourcePolicy, true, false},
		{"key policy deny", apiErr("AccessDeniedException", "… with an explicit deny in a resource-based policy"), DeniedByResourcePolicy, true, true},
		{"SCP", apiErr("AccessDenied", "… with an explicit deny in a service control policy"), DeniedByOrganization, true, true},
		{"EC2 is always IAM", apiErr("UnauthorizedOperation", "You are not authorized to perform this operation."), DeniedByIdentityPolicy, true, false},
		{"no reason given", apiErr("AccessDeniedException", "Access denied"), DeniedByUnknown, true, false},
		{"wrapped", fmt.Errorf("describing: %w", apiErr("AccessDeniedException", "with an explicit deny in an identity-based policy")), DeniedByIdentityPolicy, true, true},
		{"another code", apiErr("NotFoundException", "explicit deny in an identity-based policy"), "", false, false},
		{"plain error with the words", errors.New("AccessDeniedException: with an explicit deny"), "", false, false},
		{"nil", nil, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			by, denied := AccessDenied(tt.err)
			if by != tt.by || denied != tt.denied || ExplicitDeny(tt.err) != tt.explicit {
				t.Errorf("AccessDenied = %q, %v; ExplicitDeny = %v; want %q, %v, %v", by, denied, ExplicitDeny(tt.err), tt.by, tt.denied, tt.explicit)
			}
		})
	}
}

// imagesFake answers DescribeImages from a list of (possibly not yet)
// visible images, and records deregistrations and snapshot deletions.
func imagesFake(visibleAfter int, snaps ...string) *fakeEC2 {
	var bdms []types.BlockDeviceMapping
	for _, s := range snaps {
		bdms = append(bdms, types.BlockDeviceMapping{DeviceName: aws.String("/dev/" + s), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(s)}})
	}
	f := &fakeEC2{}
	deregistered := false
	f.describeImages = func(in *ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error) {
		if deregistered || f.n("DescribeImages") <= visibleAfter {
			return nil, apiErr("InvalidAMIID.NotFound", "The image id '[ami-1]' does not exist")
		}
		return &ec2.DescribeImagesOutput{Images: []types.Image{{ImageId: aws.String("ami-1"), State: types.ImageStateAvailable, BlockDeviceMappings: bdms}}}, nil
	}
	f.deregisterImage = func(*ec2.DeregisterImageInput) (*ec2.DeregisterImageOutput, error) {
		deregistered = true
		return &ec2.DeregisterImageOutput{}, nil
	}
	f.deleteSnapshot = func(*ec2.DeleteSnapshotInput) (*ec2.DeleteSnapshotOutput, error) {
		return &ec2.DeleteSnapshotOutput{}, nil
	}
	return f
}

// TestRemoveImage: a copy never seen may be invisible for a moment: it is
// waited for and removed with its snapshots. One already seen that is not
// found is gone. One never seen that stays invisible is gone after the
// grace a wait gives.
func TestRemoveImage(t *testing.T) {
	ctx := context.Background()
	f := imagesFake(3, "snap-1", "snap-2")
	r, err := RemoveImage(ctx, f, fastPoll(50), "ami-1", false)
	if err != nil || r.Gone || !slices.Equal(r.Snapshots, []string{"snap-1", "snap-2"}) || f.n("DeregisterImage") != 1 || f.n("DeleteSnapshot") != 2 {
		t.Errorf("invisible at first: %+v, %v; %d deregistered, %d snapshots deleted", r, err, f.n("DeregisterImage"), f.n("DeleteSnapshot"))
	}

	f = imagesFake(1000)
	r, err = RemoveImage(ctx, f, fastPoll(50), "ami-1", true)
	if err != nil || !r.Gone || f.n("DescribeImages") != 1 || f.n("DeregisterImage") != 0 {
		t.Errorf("seen, now not found: %+v, %v after %d describes", r, err, f.n("DescribeImages"))
	}

	f = imagesFake(1000)
	r, err = RemoveImage(ctx, f, fastPoll(50), "ami-1", false)
	if err != nil || !r.Gone || f.n("DescribeImages") != notFoundGrace+1 {
		t.Errorf("never seen: %+v, %v after %d describes, want %d", r, err, f.n("DescribeImages"), notFoundGrace+1)
	}
}

func TestStillThere(t *testing.T) {
	f := &fakeEC2{
		describeImages: func(in *ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error) {
			if len(in.ImageIds) > 0 || !slices.Equal(in.Owners, []string{"self"}) {
				return nil, errors.New("StillThere must filter by image-id as the owner, so missing IDs are no error")
			}
			return &ec2.DescribeImagesOutput{Images: []types.Image{
				{ImageId: aws.String("ami-1"), State: types.ImageStateAvailable},
				{ImageId: aws.String("ami-2"), State: types.ImageStateDeregistered},
			}}, nil
		},
		describeSnapshots: func(in *ec2.DescribeSnapshotsInput) (*ec2.DescribeSnapshotsOutput, error) {
			if len(in.SnapshotIds) > 0 {
				return nil, errors.New("StillThere must filter by snapshot-id")
			}
			return &ec2.DescribeSnapshotsOutput{Snapshots: []types.Snapshot{{SnapshotId: aws.String("snap-2")}}}, nil
		},
	}
	imgs, snaps, err := StillThere(context.Background(), f, []string{"ami-1", "ami-2", "ami-3"}, []string{"snap-1", "snap-2"})
	if err != nil || !slices.Equal(imgs, []string{"ami-1"}) || !slices.Equal(snaps, []string{"snap-2"}) {
		t.Errorf("StillThere = %v, %v, %v; want [ami-1] (deregistered is gone), [snap-2]", imgs, snaps, err)
	}
}

// tagsFake refuses DeleteTags naming any missing resource, as EC2 does.
type tagsFake struct {
	missing []string
	calls   [][]string
}

func (f *tagsFake) DeleteTags(_ context.Context, in *ec2.DeleteTagsInput, _ ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error) {
	f.calls = append(f.calls, in.Resources)
	for _, id := range in.Resources {
		if slices.Contains(f.missing, id) {
			return nil, apiErr("InvalidSnapshot.NotFound", "The snapshot %q does not exist.", id)
		}
	}
	return &ec2.DeleteTagsOutput{}, nil
}

func TestDeleteTags(t *testing.T) {
	f := &tagsFake{missing: []string{"snap-2"}}
	gone, err := DeleteTags(context.Background(), f, []string{"ami-1", "snap-1", "snap-2"}, []string{"amicrypt:lease:r"})
	if err != nil || !slices.Equal(gone, []string{"snap-2"}) || len(f.calls) != 4 {
		t.Errorf("DeleteTags = %v, %v after %v; want snap-2 gone, the others untagged one by one", gone, err, f.calls)
	}
	f = &tagsFake{}
	if gone, err := DeleteTags(context.Background(), f, []string{"ami-1", "snap-1"}, []string{"k"}); err != nil || len(gone) != 0 || len(f.calls) != 1 {
		t.Errorf("DeleteTags of existing resources = %v, %v in %d calls, want one call", gone, err, len(f.calls))
	}
}

func TestTakeBackGrant(t *testing.T) {
	denied := apiErr("AccessDeniedException", "User: u is not authorized to perform: kms:RetireGrant")
	tests := []struct {
		name           string
		retire, revoke error
		gone           bool
		wantErr        string
		revoked        bool
	}{
		{"retired", nil, nil, false, "", false},
		{"already gone", apiErr("NotFoundException", "Grant g not found"), nil, true, "", false},
		{"retire refused, revoked", denied, nil, false, "", true},
		{"retire refused, already gone", denied, apiErr("NotFoundException", "Grant g not found"), true, "", true},
		{"both refused", denied, apiErr("AccessDeniedException", "not a key administrator"), false, "revoking it", true},
		{"retire fails otherwise", apiErr("KMSInternalException", "boom"), nil, false, "KMSInternalException", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			revoked := false
			client := &fakeKMS{
				retireGrant: func(*kms.RetireGrantInput) (*kms.RetireGrantOutput, error) {
					return &kms.RetireGrantOutput{}, tt.retire
				},
				revokeGrant: func(*kms.RevokeGrantInput) (*kms.RevokeGrantOutput, error) {
					revoked = true
					return &kms.RevokeGrantOutput{}, tt.revoke
				},
			}
			gone, err := TakeBackGrant(context.Background(), client, Grant{KeyARN: "arn:k", ID: "g"})
			if gone != tt.gone || revoked != tt.revoked || (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("TakeBackGrant = %v, %v (revoked %v); want %v, %q (revoked %v)", gone, err, revoked, tt.gone, tt.wantErr, tt.revoked)
			}
		})
	}
}
