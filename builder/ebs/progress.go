package ebs

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

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
		u.Message(fmt.Sprintf("%s %s: %s %s", label, aws.ToString(s.SnapshotId), s.State, p))
	}
}
