package copy

import (
	"strings"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
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

// TestLargeFanoutSaysOneLine: with more copies than perCopyLines, a
// copy's polls and ticks say nothing of their own; the summary counts the
// copies by where they stand, with the spread of their Progress.
func TestLargeFanoutSaysOneLine(t *testing.T) {
	ui := newUI()
	p := &plan{}
	for range perCopyLines + 5 {
		p.jobs = append(p.jobs, &job{Target: &target{Account: "222222222222"}, Region: "eu-west-1"})
	}
	r := &runner{ui: ui, plan: p}
	j := p.jobs[0]
	r.progress(j)(&ec2types.Image{ImageId: aws.String("ami-0copy"), State: ec2types.ImageStatePending})
	r.tick(j)(ebs.WaitStatus{Percent: 40})
	r.tick(p.jobs[1])(ebs.WaitStatus{Percent: 12})
	r.stand(p.jobs[2], copyStanding{state: standPending, percent: -1})
	r.stand(p.jobs[3], copyStanding{state: standAvailable})
	r.stand(p.jobs[4], copyStanding{state: standFailed})
	if ui.buf.Len() != 0 {
		t.Fatalf("a large fan-out's copies said lines of their own:\n%s", ui.buf)
	}
	want := "3 of 25 copies pending (12% to 40% copied), 1 available, 1 failed, 20 not started"
	if got := r.summary(); got != want {
		t.Fatalf("summary %q, want %q", got, want)
	}
}
