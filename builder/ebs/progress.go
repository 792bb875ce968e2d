package ebs

import (
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// snapshotProgress prints a snapshot's Progress when it changes.
func snapshotProgress(u packersdk.Ui, label string) func(*types.Snapshot) {
	var mu sync.Mutex
	last := ""
	return func(s *types.Snapshot) {
		p := aws.ToString(s.Progress)
		mu.Lock()
		defer mu.Unlock()
		if p == "" || p == last {
			return
		}
		last = p
		u.Message(fmt.Sprintf("%s %s: %s %s", label, aws.ToString(s.SnapshotId), s.State, p))
	}
}
