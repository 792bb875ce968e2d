package copy

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestProgressLines feeds the progress reporter the images successive
// batched polls would return: it says each change of a copy's state or
// snapshots, keeps quiet on repeats within progressInterval, and leaves the
// final state to copyOne.
func TestProgressLines(t *testing.T) {
	image := func(state ec2types.ImageState, snaps ...string) *ec2types.Image {
		img := &ec2types.Image{ImageId: aws.String("ami-0copy"), State: state}
		for _, s := range snaps {
			img.BlockDeviceMappings = append(img.BlockDeviceMappings, ec2types.BlockDeviceMapping{
				DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsBlockDevice{SnapshotId: aws.String(s)}})
		}
		return img
	}
	tests := []struct {
		name  string
		polls []*ec2types.Image
		want  []string // one entry per expected line, matched as substrings
	}{
		{"first sight", []*ec2types.Image{image(ec2types.ImageStatePending)},
			[]string{"222222222222/eu-west-1: ami-0copy pending after"}},
		{"repeats are quiet", []*ec2types.Image{image(ec2types.ImageStatePending), image(ec2types.ImageStatePending), image(ec2types.ImageStatePending)},
			[]string{"ami-0copy pending"}},
		{"snapshots appear", []*ec2types.Image{image(ec2types.ImageStatePending), image(ec2types.ImageStatePending, "snap-0a"), image(ec2types.ImageStatePending, "snap-0a")},
			[]string{"ami-0copy pending", "writing snap-0a"}},
		{"final state left to copyOne", []*ec2types.Image{image(ec2types.ImageStatePending), image(ec2types.ImageStateAvailable, "snap-0a")},
			[]string{"ami-0copy pending"}},
		{"failed left to copyOne", []*ec2types.Image{image(ec2types.ImageStateFailed)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ui := newUI()
			r := &runner{ui: ui}
			j := &job{Target: &target{Account: "222222222222"}, Region: "eu-west-1", Started: time.Now()}
			report := r.progress(j)
			for _, img := range tt.polls {
				report(img)
			}
			lines := strings.Split(strings.TrimSpace(ui.buf.String()), "\n")
			if ui.buf.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tt.want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(tt.want), ui.buf)
			}
			for i, want := range tt.want {
				if !strings.Contains(lines[i], want) {
					t.Errorf("line %d = %q, want it to contain %q", i, lines[i], want)
				}
			}
		})
	}
}
