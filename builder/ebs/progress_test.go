package ebs

import (
	"bytes"
	"strings"
	"testing"

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
