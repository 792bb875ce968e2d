package ebs

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// progressStep is how far Progress must move before it is printed again;
// state changes are always printed.
const progressStep = 10

// snapshotProgress prints a snapshot's state and Progress as they change.
func snapshotProgress(u packersdk.Ui, label string) func(*types.Snapshot) {
	var mu sync.Mutex
	lastState, lastPct := types.SnapshotState(""), -progressStep
	return func(s *types.Snapshot) {
		p := aws.ToString(s.Progress)
		pct, err := strconv.Atoi(strings.TrimSuffix(p, "%"))
		if err != nil {
			pct = lastPct
		}
		mu.Lock()
		defer mu.Unlock()
		if s.State == lastState && pct-lastPct < progressStep {
			return
		}
		lastState, lastPct = s.State, pct
		detail(u, fmt.Sprintf("%s %s: %s %s", label, aws.ToString(s.SnapshotId), s.State, p))
	}
}

// stillWaitingEvery is how often a long image wait says it is still waiting:
// an image has no Progress, and a first cross-region copy takes hours.
const stillWaitingEvery = time.Minute

// imageProgress prints an image's state when it changes, and while it stays
// the same at most once per interval with the time waited. now is the clock.
func imageProgress(u packersdk.Ui, label string, interval time.Duration, now func() time.Time) func(*types.Image) {
	var mu sync.Mutex
	start := now()
	lastState, lastPrint := types.ImageState(""), start
	return func(img *types.Image) {
		mu.Lock()
		defer mu.Unlock()
		t := now()
		if img.State == lastState && t.Sub(lastPrint) < interval {
			return
		}
		lastState, lastPrint = img.State, t
		detail(u, fmt.Sprintf("%s %s: %s (%s waited)", label, aws.ToString(img.ImageId), img.State, t.Sub(start).Round(time.Second)))
	}
}
