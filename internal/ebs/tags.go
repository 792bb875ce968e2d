package ebs

import (
	"context"
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
