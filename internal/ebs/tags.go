package ebs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Tags turns a map into EC2 tags, sorted by key.
func Tags(m map[string]string) []types.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tags := make([]types.Tag, 0, len(m))
	for _, k := range keys {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return tags
}

// TagMap turns EC2 tags into a map.
func TagMap(tags []types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// TagSpecs builds TagSpecifications, skipping resource types with no tags.
func TagSpecs(byType map[types.ResourceType]map[string]string) []types.TagSpecification {
	rts := make([]string, 0, len(byType))
	for rt, tags := range byType {
		if len(tags) > 0 {
			rts = append(rts, string(rt))
		}
	}
	sort.Strings(rts)
	specs := make([]types.TagSpecification, 0, len(rts))
	for _, rt := range rts {
		specs = append(specs, types.TagSpecification{ResourceType: types.ResourceType(rt), Tags: Tags(byType[types.ResourceType(rt)])})
	}
	return specs
}

// tagRetries bounds retries of CreateTags on a resource just created, which
// EC2 may not see yet.
const tagRetries = 8

// AWS's limits (docs/aws-behaviour.md 9.3; RegisterImage and CopyImage
// take an AMI description of up to 255 characters).
const (
	MaxTags        = 50  // tags on one resource
	MaxDescription = 255 // characters of an AMI description
)

// CreateTags tags resources, retrying briefly while a new resource is not
// visible yet (any *.NotFound code).
func CreateTags(ctx context.Context, client EC2API, ids []string, tags map[string]string) error {
	if len(tags) == 0 || len(ids) == 0 {
		return nil
	}
	_, err := Retry(ctx, tagRetries+1, linearPause(250*time.Millisecond),
		func(err error) bool { return strings.HasSuffix(ErrorCode(err), ".NotFound") }, nil,
		func(ctx context.Context) error {
			_, err := client.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids, Tags: Tags(tags)})
			return err
		})
	if err != nil {
		return fmt.Errorf("tagging %v: %w", ids, err)
	}
	return nil
}

// TagDeleter is the EC2 call DeleteTags needs; *ec2.Client has it.
type TagDeleter interface {
	DeleteTags(context.Context, *ec2.DeleteTagsInput, ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error)
}

// DeleteTags removes the tag keys (whatever their values) from the
// resources. A resource already gone counts as untagged: when EC2 refuses
// the whole call because one resource does not exist, each resource is
// untagged on its own and the missing ones are skipped. It returns the IDs
// it found gone.
func DeleteTags(ctx context.Context, client TagDeleter, ids, keys []string) (gone []string, err error) {
	if len(ids) == 0 || len(keys) == 0 {
		return nil, nil
	}
	tags := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		tags = append(tags, types.Tag{Key: aws.String(k)})
	}
	_, err = client.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: ids, Tags: tags})
	if err == nil {
		return nil, nil
	}
	if !strings.HasSuffix(ErrorCode(err), ".NotFound") || len(ids) == 1 {
		if strings.HasSuffix(ErrorCode(err), ".NotFound") {
			return ids, nil
		}
		return nil, fmt.Errorf("removing tags %v from %v: %w", keys, ids, err)
	}
	var errs []error
	for _, id := range ids {
		g, err := DeleteTags(ctx, client, []string{id}, keys)
		gone = append(gone, g...)
		errs = append(errs, err)
	}
	return gone, errors.Join(errs...)
}

// FindOwnImagesWithTagKey returns the images the caller owns that carry a
// tag whose key matches pattern (EC2's * and ? wildcards).
func FindOwnImagesWithTagKey(ctx context.Context, client EC2API, pattern string) ([]types.Image, error) {
	return FindImagesByFilter(ctx, client, []string{"self"}, map[string]string{"tag-key": pattern})
}

// FindOwnSnapshotsWithTagKey returns the snapshots the caller owns that
// carry a tag whose key matches pattern, every page.
func FindOwnSnapshotsWithTagKey(ctx context.Context, client EC2API, pattern string) ([]types.Snapshot, error) {
	in := &ec2.DescribeSnapshotsInput{
		OwnerIds: []string{"self"},
		Filters:  []types.Filter{{Name: aws.String("tag-key"), Values: []string{pattern}}},
	}
	var out []types.Snapshot
	p := ec2.NewDescribeSnapshotsPaginator(client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("looking for snapshots tagged %s: %w", pattern, err)
		}
		out = append(out, page.Snapshots...)
	}
	return out, nil
}
