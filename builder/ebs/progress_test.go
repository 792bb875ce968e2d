package ebs

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

func TestSnapshotProgressPrintsChanges(t *testing.T) {
	var out bytes.Buffer
	report := snapshotProgress(&packersdk.BasicUi{Writer: &out, ErrorWriter: &out}, "copy")
	for _, p := range []string{"0%", "3%", "9%", "10%", "15%", "42%", "99%"} {
		report(&types.Snapshot{SnapshotId: aws.String("snap-1"), State: types.SnapshotStatePending, Progress: aws.String(p)})
	}
	report(&types.Snapshot{SnapshotId: aws.String("snap-1"), State: types.SnapshotStateCompleted, Progress: aws.String("100%")})
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		got = append(got, line[strings.LastIndexByte(line, ' ')+1:])
	}
	if strings.Join(got, ",") != "0%,10%,42%,99%,100%" {
		t.Errorf("printed %v", got)
	}
}

func TestImageProgressPrintsChangesAndStillWaiting(t *testing.T) {
	var out bytes.Buffer
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	report := imageProgress(&packersdk.BasicUi{Writer: &out, ErrorWriter: &out}, "us-west-2: copy", time.Minute, func() time.Time { return clock })
	// (seconds since start, state) of each poll
	for _, poll := range []struct {
		at    int
		state types.ImageState
	}{{0, "pending"}, {15, "pending"}, {45, "pending"}, {60, "pending"}, {75, "pending"}, {130, "pending"}, {135, "available"}} {
		clock = time.Date(2026, 1, 1, 0, 0, poll.at, 0, time.UTC)
		report(&types.Image{ImageId: aws.String("ami-1"), State: poll.state})
	}
	want := []string{
		"us-west-2: copy ami-1: pending (0s waited)",
		"us-west-2: copy ami-1: pending (1m0s waited)",
		"us-west-2: copy ami-1: pending (2m10s waited)",
		"us-west-2: copy ami-1: available (2m15s waited)",
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		got = append(got, strings.TrimSpace(line))
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
