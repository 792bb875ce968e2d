package ebs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
)

// Every copy ends in error; Recheck decides whether a fresh one is tried.
func TestCopySnapshotRetryingRecheck(t *testing.T) {
	errKey := errors.New("the key is disabled")
	tests := []struct {
		name    string
		recheck func(context.Context, error) error
		copies  int
		errHas  []string
	}{
		{"no recheck: three copies", nil, 3, []string{"failed 3 times", "is error: copy broke"}},
		{"recheck passes: three copies", func(context.Context, error) error { return nil }, 3, []string{"failed 3 times"}},
		{"recheck finds the cause: one copy", func(context.Context, error) error { return errKey }, 1, []string{"is error: copy broke", "not retried: the key is disabled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			f := &fakeEC2{
				copySnapshot: func(*ec2.CopySnapshotInput) (*ec2.CopySnapshotOutput, error) {
					n++
					return &ec2.CopySnapshotOutput{SnapshotId: aws.String(fmt.Sprintf("snap-%017d", n))}, nil
				},
				describeSnapshots: func(in *ec2.DescribeSnapshotsInput) (*ec2.DescribeSnapshotsOutput, error) {
					return &ec2.DescribeSnapshotsOutput{Snapshots: []types.Snapshot{{SnapshotId: aws.String(in.SnapshotIds[0]),
						State: types.SnapshotStateError, StateMessage: aws.String("copy broke")}}}, nil
				},
				deleteSnapshot: func(*ec2.DeleteSnapshotInput) (*ec2.DeleteSnapshotOutput, error) {
					return &ec2.DeleteSnapshotOutput{}, nil
				},
			}
			var started []string
			_, err := CopySnapshotEncryptedRetrying(context.Background(), f, awsauth.NewPolling(time.Millisecond, 10),
				CopySnapshotSpec{SourceSnapshotID: "snap-00000000000000001", SourceRegion: "us-east-1", KmsKeyID: "arn:aws:kms:us-east-1:111111111111:key/k"},
				nil, CopyRetry{Recheck: tt.recheck, Started: func(id string) { started = append(started, id) }})
			if err == nil {
				t.Fatal("copy succeeded")
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q: %v", s, err)
				}
			}
			if f.n("CopySnapshot") != tt.copies || len(started) != tt.copies {
				t.Errorf("%d copies started (%d reported), want %d", f.n("CopySnapshot"), len(started), tt.copies)
			}
			if tt.recheck != nil && tt.copies == 1 && !errors.Is(err, errKey) {
				t.Errorf("the recheck's error is not wrapped: %v", err)
			}
		})
	}
}
