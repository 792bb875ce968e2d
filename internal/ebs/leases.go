package ebs

// leases.go: find what builds tagged with a lease, so a later run can
// remove what a dead build left behind; and the verbs that remove it.

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
)

// Kinds of leased resources, in the order a reaper removes them: instances
// first (they hold volumes, key pairs and groups), then images (they hold
// snapshots), then the rest.
const (
	LeasedInstance       = "instance"
	LeasedImage          = "image"
	LeasedSnapshot       = "snapshot"
	LeasedVolume         = "volume"
	LeasedLaunchTemplate = "launch template"
	LeasedKeyPair        = "key pair"
	LeasedSecurityGroup  = "security group"
)

// Leased is a resource carrying a lease tag.
type Leased struct {
	Kind string
	ID   string
	Name string // key pairs and launch templates are deleted by name
	Tags map[string]string
}

// FindLeased lists the caller's resources in the client's region that carry
// the tag key, of every kind a build makes. Terminated instances are left
// out.
func FindLeased(ctx context.Context, client BuildAPI, tagKey string) ([]Leased, error) {
	filter := []types.Filter{{Name: aws.String("tag-key"), Values: []string{tagKey}}}
	var out []Leased
	add := func(kind, id, name string, tags []types.Tag) {
		out = append(out, Leased{Kind: kind, ID: id, Name: name, Tags: TagMap(tags)})
	}
	insts := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{Filters: append(filter,
		types.Filter{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}})})
	for insts.HasMorePages() {
		page, err := insts.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing leased instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				add(LeasedInstance, aws.ToString(i.InstanceId), "", i.Tags)
			}
		}
	}
	imgs, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: filter})
	if err != nil {
		return nil, fmt.Errorf("listing leased images: %w", err)
	}
	for _, i := range imgs.Images {
		add(LeasedImage, aws.ToString(i.ImageId), aws.ToString(i.Name), i.Tags)
	}
	snaps := ec2.NewDescribeSnapshotsPaginator(client, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: filter})
	for snaps.HasMorePages() {
		page, err := snaps.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing leased snapshots: %w", err)
		}
		for _, s := range page.Snapshots {
			add(LeasedSnapshot, aws.ToString(s.SnapshotId), "", s.Tags)
		}
	}
	// Volumes in use too: a dead build's instance holds them until the
	// reaper terminates it, before it deletes them.
	vols, err := client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: filter})
	if err != nil {
		return nil, fmt.Errorf("listing leased volumes: %w", err)
	}
	for _, v := range vols.Volumes {
		add(LeasedVolume, aws.ToString(v.VolumeId), "", v.Tags)
	}
	lts, err := client.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{Filters: filter})
	if err != nil {
		return nil, fmt.Errorf("listing leased launch templates: %w", err)
	}
	for _, lt := range lts.LaunchTemplates {
		add(LeasedLaunchTemplate, aws.ToString(lt.LaunchTemplateId), aws.ToString(lt.LaunchTemplateName), lt.Tags)
	}
	kps, err := client.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{Filters: filter})
	if err != nil {
		return nil, fmt.Errorf("listing leased key pairs: %w", err)
	}
	for _, k := range kps.KeyPairs {
		add(LeasedKeyPair, aws.ToString(k.KeyPairId), aws.ToString(k.KeyName), k.Tags)
	}
	sgs, err := client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: filter})
	if err != nil {
		return nil, fmt.Errorf("listing leased security groups: %w", err)
	}
	for _, g := range sgs.SecurityGroups {
		add(LeasedSecurityGroup, aws.ToString(g.GroupId), aws.ToString(g.GroupName), g.Tags)
	}
	order := map[string]int{LeasedInstance: 0, LeasedImage: 1, LeasedSnapshot: 2, LeasedVolume: 3, LeasedLaunchTemplate: 4, LeasedKeyPair: 5, LeasedSecurityGroup: 6}
	sort.SliceStable(out, func(i, j int) bool { return order[out[i].Kind] < order[out[j].Kind] })
	return out, nil
}

// Remove deletes a leased resource: an instance is terminated (and waited
// for, so what it holds can go), an image deregistered with its snapshots.
// Something already gone is not an error.
func (l Leased) Remove(ctx context.Context, client BuildAPI, poll *awsauth.PollingConfig) error {
	switch l.Kind {
	case LeasedInstance:
		if err := TerminateInstance(ctx, client, l.ID); err != nil {
			return err
		}
		_, err := WaitInstanceTerminated(ctx, client, poll, l.ID)
		return err
	case LeasedImage:
		return DeleteImageWhenSettled(ctx, client, poll, l.ID)
	case LeasedSnapshot:
		return DeleteSnapshotWhenSettled(ctx, client, poll, l.ID)
	case LeasedVolume:
		return DeleteVolume(ctx, client, l.ID)
	case LeasedLaunchTemplate:
		return DeleteLaunchTemplate(ctx, client, l.Name)
	case LeasedKeyPair:
		return DeleteKeyPair(ctx, client, l.Name)
	case LeasedSecurityGroup:
		return DeleteSecurityGroup(ctx, client, poll, l.ID)
	}
	return fmt.Errorf("%s %s: unknown kind", l.Kind, l.ID)
}

// DeleteVolume deletes a volume; one already gone is not an error. A volume
// still detaching (VolumeInUse) is retried briefly.
func DeleteVolume(ctx context.Context, client BuildAPI, volumeID string) error {
	_, err := Retry(ctx, inUseRetries+1, linearPause(500*time.Millisecond),
		func(err error) bool { return IsCode(err, "VolumeInUse", "IncorrectState") }, nil,
		func(ctx context.Context) error {
			_, err := client.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(volumeID)})
			return err
		})
	if err != nil && !IsCode(err, "InvalidVolume.NotFound") {
		return fmt.Errorf("deleting volume %s: %w", volumeID, err)
	}
	return nil
}
