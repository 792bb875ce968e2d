package ebs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
)

// FindImageByID returns the image or a *NotFoundError.
func FindImageByID(ctx context.Context, client EC2API, imageID string) (*types.Image, error) {
	out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{imageID}})
	if IsCode(err, "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable") {
		return nil, &NotFoundError{Kind: "image", ID: imageID, Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("describing image %s: %w", imageID, err)
	}
	for i := range out.Images {
		if aws.ToString(out.Images[i].ImageId) == imageID {
			return &out.Images[i], nil
		}
	}
	return nil, &NotFoundError{Kind: "image", ID: imageID}
}

// StatusImage is the image's state string.
func StatusImage(img *types.Image) string { return string(img.State) }

func imageFailure(img *types.Image) *StateError {
	switch img.State {
	case types.ImageStateFailed, types.ImageStateError, types.ImageStateInvalid, types.ImageStateDeregistered, types.ImageStateDisabled:
		se := &StateError{Kind: "image", ID: aws.ToString(img.ImageId), State: string(img.State)}
		if img.StateReason != nil {
			se.Reason = aws.ToString(img.StateReason.Code)
			se.Message = aws.ToString(img.StateReason.Message)
		}
		return se
	}
	return nil
}

// WaitImageAvailable waits for the image to be available. A failed image
// returns a *StateError carrying AWS's state reason. It is ImageWaiter with
// one caller.
func WaitImageAvailable(ctx context.Context, client EC2API, poll *awsauth.PollingConfig, imageID string, progress func(*types.Image)) (*types.Image, error) {
	return NewImageWaiter(client, poll).Wait(ctx, imageID, progress)
}

// FindImagesByName returns the images of owner ("self" or an account ID)
// with exactly this name, newest first.
func FindImagesByName(ctx context.Context, client EC2API, owner, name string) ([]types.Image, error) {
	return FindImagesByFilter(ctx, client, []string{owner}, map[string]string{"name": name})
}

// ImageSnapshotIDs lists the EBS snapshots behind an image.
func ImageSnapshotIDs(img *types.Image) []string {
	var ids []string
	for _, bdm := range img.BlockDeviceMappings {
		if bdm.Ebs != nil && bdm.Ebs.SnapshotId != nil {
			ids = append(ids, *bdm.Ebs.SnapshotId)
		}
	}
	return ids
}

// RegisterImage registers an image and returns its ID.
func RegisterImage(ctx context.Context, client EC2API, in *ec2.RegisterImageInput) (string, error) {
	out, err := client.RegisterImage(ctx, in)
	if err != nil {
		return "", fmt.Errorf("registering image %q: %w", aws.ToString(in.Name), err)
	}
	return aws.ToString(out.ImageId), nil
}

// CopyImageSpec is an encrypted copy of an image.
type CopyImageSpec struct {
	SourceImageID string
	SourceRegion  string
	Name          string
	Description   string
	KmsKeyID      string // key ARN in the destination region (required)
	ClientToken   string // idempotency token, ≤ 64 ASCII characters
	Tags          map[string]string
	SnapshotTags  map[string]string
	// CompletionMinutes, when set, asks for a time-based copy that completes
	// within that many minutes (SnapshotCopyCompletionDurationMinutes).
	CompletionMinutes int64
}

// CopyImageEncrypted copies an image with Encrypted=true under the given key
// and tags image and snapshots on creation. It returns the new image ID.
func CopyImageEncrypted(ctx context.Context, client EC2API, s CopyImageSpec) (string, error) {
	if s.KmsKeyID == "" {
		return "", fmt.Errorf("copying image %s: no KMS key given; an encrypted copy would fall back to aws/ebs", s.SourceImageID)
	}
	in := &ec2.CopyImageInput{
		SourceImageId: aws.String(s.SourceImageID),
		SourceRegion:  aws.String(s.SourceRegion),
		Name:          aws.String(s.Name),
		Encrypted:     aws.Bool(true),
		KmsKeyId:      aws.String(s.KmsKeyID),
	}
	if s.Description != "" {
		in.Description = aws.String(s.Description)
	}
	if s.ClientToken != "" {
		in.ClientToken = aws.String(s.ClientToken)
	}
	if s.CompletionMinutes > 0 {
		in.SnapshotCopyCompletionDurationMinutes = aws.Int64(s.CompletionMinutes)
	}
	in.TagSpecifications = TagSpecs(map[types.ResourceType]map[string]string{
		types.ResourceTypeImage: s.Tags, types.ResourceTypeSnapshot: s.SnapshotTags,
	})
	out, err := client.CopyImage(ctx, in)
	if err != nil {
		return "", fmt.Errorf("copying image %s from %s: %w", s.SourceImageID, s.SourceRegion, err)
	}
	return aws.ToString(out.ImageId), nil
}

// Sharing lists who may launch an image.
type Sharing struct {
	Users   []string // account IDs
	OrgARNs []string
	OUARNs  []string
}

var (
	amiIDPattern     = regexp.MustCompile(`^ami-[0-9a-f]{8}([0-9a-f]{9})?$`)
	accountIDPattern = regexp.MustCompile(`^\d{12}$`)
	orgARNPattern    = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::\d{12}:organization/o-[a-z0-9]{10,32}$`)
	ouARNPattern     = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::\d{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$`)
)

// ValidAMIID reports whether s is an AMI ID: ami- and 8 or 17 hex digits.
func ValidAMIID(s string) bool { return amiIDPattern.MatchString(s) }

// ValidAccountID reports whether s is an AWS account ID: 12 digits.
func ValidAccountID(s string) bool { return accountIDPattern.MatchString(s) }

// ValidOrgARN reports whether s has the shape of an organization ARN.
func ValidOrgARN(s string) bool { return orgARNPattern.MatchString(s) }

// ValidOUARN reports whether s has the shape of an organizational unit ARN.
func ValidOUARN(s string) bool { return ouARNPattern.MatchString(s) }

// Empty reports whether nobody is named.
func (s Sharing) Empty() bool { return len(s.Users)+len(s.OrgARNs)+len(s.OUARNs) == 0 }

func (s Sharing) launchPermissions() []types.LaunchPermission {
	var perms []types.LaunchPermission
	for _, u := range s.Users {
		perms = append(perms, types.LaunchPermission{UserId: aws.String(u)})
	}
	for _, o := range s.OrgARNs {
		perms = append(perms, types.LaunchPermission{OrganizationArn: aws.String(o)})
	}
	for _, o := range s.OUARNs {
		perms = append(perms, types.LaunchPermission{OrganizationalUnitArn: aws.String(o)})
	}
	return perms
}

// ShareImage adds launch permissions to the image.
func ShareImage(ctx context.Context, client EC2API, imageID string, s Sharing) error {
	return modifyLaunchPermission(ctx, client, imageID, s, true)
}

// UnshareImage removes launch permissions from the image. An image already
// gone (deregistered) counts as unshared: nobody can launch it any more.
func UnshareImage(ctx context.Context, client EC2API, imageID string, s Sharing) error {
	_, err := RemoveLaunchPermissions(ctx, client, imageID, s)
	return err
}

// RemoveLaunchPermissions is UnshareImage that also says whether the image
// was already gone.
func RemoveLaunchPermissions(ctx context.Context, client EC2API, imageID string, s Sharing) (gone bool, err error) {
	err = modifyLaunchPermission(ctx, client, imageID, s, false)
	if IsCode(err, "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable") {
		return true, nil
	}
	return false, err
}

func modifyLaunchPermission(ctx context.Context, client EC2API, imageID string, s Sharing, add bool) error {
	if s.Empty() {
		return nil
	}
	mod := &types.LaunchPermissionModifications{}
	verb := "sharing"
	if add {
		mod.Add = s.launchPermissions()
	} else {
		mod.Remove = s.launchPermissions()
		verb = "unsharing"
	}
	_, err := client.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{
		ImageId: aws.String(imageID), LaunchPermission: mod,
	})
	if err != nil {
		return fmt.Errorf("%s image %s: %w", verb, imageID, err)
	}
	return nil
}

// DeprecateImage sets the image's deprecation time.
func DeprecateImage(ctx context.Context, client EC2API, imageID string, at time.Time) error {
	_, err := client.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{
		ImageId: aws.String(imageID), DeprecateAt: aws.Time(at),
	})
	if err != nil {
		return fmt.Errorf("deprecating image %s at %s: %w", imageID, at.Format(time.RFC3339), err)
	}
	return nil
}

// ProtectImage turns on deregistration protection.
func ProtectImage(ctx context.Context, client EC2API, imageID string, withCooldown bool) error {
	_, err := client.EnableImageDeregistrationProtection(ctx, &ec2.EnableImageDeregistrationProtectionInput{
		ImageId: aws.String(imageID), WithCooldown: aws.Bool(withCooldown),
	})
	if err != nil {
		return fmt.Errorf("protecting image %s from deregistration: %w", imageID, err)
	}
	return nil
}

// DeleteImageAndSnapshots deregisters the image and deletes its snapshots.
// An image already gone is not an error.
func DeleteImageAndSnapshots(ctx context.Context, client EC2API, imageID string) error {
	img, err := FindImageByID(ctx, client, imageID)
	if IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := DeregisterImage(ctx, client, imageID); err != nil {
		return err
	}
	var errs []error
	for _, snap := range ImageSnapshotIDs(img) {
		if err := DeleteSnapshot(ctx, client, snap); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DeregisterImage deregisters the image and leaves its snapshots. An image
// already gone is not an error.
func DeregisterImage(ctx context.Context, client EC2API, imageID string) error {
	_, err := client.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(imageID)})
	if err != nil && !IsCode(err, "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable") {
		return fmt.Errorf("deregistering image %s: %w", imageID, err)
	}
	return nil
}

// FindImagesByFilter returns the images of the owners matching every filter
// (name → one value, wildcards allowed), newest first.
func FindImagesByFilter(ctx context.Context, client EC2API, owners []string, filters map[string]string) ([]types.Image, error) {
	return findImages(ctx, client, owners, filters, false)
}

// findImages is FindImagesByFilter, with deprecated images when asked.
func findImages(ctx context.Context, client EC2API, owners []string, filters map[string]string, includeDeprecated bool) ([]types.Image, error) {
	in := &ec2.DescribeImagesInput{Owners: owners}
	if includeDeprecated {
		in.IncludeDeprecated = aws.Bool(true)
	}
	keys := make([]string, 0, len(filters))
	for k := range filters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		in.Filters = append(in.Filters, types.Filter{Name: aws.String(k), Values: []string{filters[k]}})
	}
	out, err := client.DescribeImages(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("looking for images matching %v: %w", filters, err)
	}
	imgs := out.Images
	sort.Slice(imgs, func(i, j int) bool { return aws.ToString(imgs[i].CreationDate) > aws.ToString(imgs[j].CreationDate) })
	return imgs, nil
}

// DeleteImageWhenSettled removes an image that may still be pending (a copy
// abandoned mid-way): it waits for it to leave pending so its snapshots are
// known, then deregisters it and deletes them. An image gone is no error.
func DeleteImageWhenSettled(ctx context.Context, client EC2API, poll *awsauth.PollingConfig, imageID string) error {
	if gone, err := waitImageSettled(ctx, client, poll, imageID); gone || err != nil {
		return err
	}
	return DeleteImageAndSnapshots(ctx, client, imageID)
}

// DeregisterImageWhenSettled deregisters an image that may still be pending
// and leaves its snapshots, for a caller that doesn't own them. An image gone
// is no error.
func DeregisterImageWhenSettled(ctx context.Context, client EC2API, poll *awsauth.PollingConfig, imageID string) error {
	if gone, err := waitImageSettled(ctx, client, poll, imageID); gone || err != nil {
		return err
	}
	return DeregisterImage(ctx, client, imageID)
}

// waitImageSettled waits while the image is pending (it ending failed is
// fine) and reports whether it is gone.
func waitImageSettled(ctx context.Context, client EC2API, poll *awsauth.PollingConfig, imageID string) (gone bool, err error) {
	img, err := FindImageByID(ctx, client, imageID)
	if IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if img.State == types.ImageStatePending {
		_, err := WaitImageAvailable(ctx, client, poll, imageID, nil)
		switch {
		case IsNotFound(err):
			return true, nil
		case err != nil && !IsStateError(err):
			return false, fmt.Errorf("waiting to remove image %s: %w", imageID, err)
		}
	}
	return false, nil
}

// AddProductCodes attaches AWS Marketplace product codes to an image.
func AddProductCodes(ctx context.Context, client EC2API, imageID string, codes []string) error {
	_, err := client.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(imageID), ProductCodes: codes})
	if err != nil {
		return fmt.Errorf("adding product codes %v to image %s: %w", codes, imageID, err)
	}
	return nil
}

// Removed is what RemoveImage did.
type Removed struct {
	ImageID   string
	Snapshots []string // the snapshots behind it, deleted
	Gone      bool     // the image was gone before RemoveImage could deregister it
}

// RemoveImage deregisters an image that may still be pending and deletes
// its snapshots, saying which. seen tells whether the caller has ever seen
// the image described: a copy just made can be invisible for a moment
// (EC2 is eventually consistent), so for an image never seen a not-found
// answer is believed only after the grace a wait gives a new resource.
func RemoveImage(ctx context.Context, client EC2API, poll *awsauth.PollingConfig, imageID string, seen bool) (Removed, error) {
	r := Removed{ImageID: imageID}
	img, err := FindImageByID(ctx, client, imageID)
	for tries := 0; !seen && IsNotFound(err) && tries < notFoundGrace; tries++ {
		t := time.NewTimer(poll.Delay())
		select {
		case <-ctx.Done():
			t.Stop()
			return r, ctx.Err()
		case <-t.C:
		}
		img, err = FindImageByID(ctx, client, imageID)
	}
	if IsNotFound(err) {
		r.Gone = true
		return r, nil
	}
	if err != nil {
		return r, err
	}
	if img.State == types.ImageStatePending {
		settled, err := WaitImageAvailable(ctx, client, poll, imageID, nil)
		switch {
		case IsNotFound(err):
			r.Gone = true
			return r, nil
		case err != nil && !IsStateError(err):
			return r, fmt.Errorf("waiting to remove image %s: %w", imageID, err)
		case settled != nil:
			img = settled
		}
	}
	if img.State == types.ImageStateDeregistered {
		r.Gone = true
	} else if err := DeregisterImage(ctx, client, imageID); err != nil {
		return r, err
	}
	var errs []error
	for _, snap := range ImageSnapshotIDs(img) {
		r.Snapshots = append(r.Snapshots, snap)
		if err := DeleteSnapshotWhenSettled(ctx, client, poll, snap); err != nil {
			errs = append(errs, err)
		}
	}
	return r, errors.Join(errs...)
}

// StillThere reads back, as their owner, which of the images (not
// deregistered) and snapshots still exist: one DescribeImages and one
// DescribeSnapshots, each filtered by ID so that missing ones are no error.
func StillThere(ctx context.Context, client EC2API, imageIDs, snapshotIDs []string) (images, snapshots []string, err error) {
	for start := 0; start < len(imageIDs); start += maxFilterValues {
		ids := imageIDs[start:min(start+maxFilterValues, len(imageIDs))]
		p := ec2.NewDescribeImagesPaginator(client, &ec2.DescribeImagesInput{
			Owners: []string{"self"}, Filters: []types.Filter{{Name: aws.String("image-id"), Values: ids}},
		})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return nil, nil, fmt.Errorf("reading back images %v: %w", ids, err)
			}
			for _, img := range out.Images {
				if img.State != types.ImageStateDeregistered {
					images = append(images, aws.ToString(img.ImageId))
				}
			}
		}
	}
	for start := 0; start < len(snapshotIDs); start += maxFilterValues {
		ids := snapshotIDs[start:min(start+maxFilterValues, len(snapshotIDs))]
		p := ec2.NewDescribeSnapshotsPaginator(client, &ec2.DescribeSnapshotsInput{
			OwnerIds: []string{"self"}, Filters: []types.Filter{{Name: aws.String("snapshot-id"), Values: ids}},
		})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return nil, nil, fmt.Errorf("reading back snapshots %v: %w", ids, err)
			}
			for _, s := range out.Snapshots {
				snapshots = append(snapshots, aws.ToString(s.SnapshotId))
			}
		}
	}
	return images, snapshots, nil
}
