package copy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/fanout"
)

// fakeEC2 is a fake target account: copies end in the states listed in
// outcomes, one per CopyImage call. Methods it doesn't override panic
// through the nil embedded interface, so a test notices any other call.
type fakeEC2 struct {
	ec2API
	mu         sync.Mutex
	outcomes   []string // "available" or a failure state reason code
	images     map[string]ec2types.Image
	tokens     []string
	deregister []string
	// usedKey, when set, is the key EC2 encrypts copies under whatever
	// was asked: what the read-back must catch. Copies get one snapshot.
	usedKey   string
	snapshots map[string]ec2types.Snapshot
}

const kmsReasonMessage = "The KMS key arn:aws:kms:us-east-1:111111111111:key/k is not usable: account 222222222222 may not use it"

func (f *fakeEC2) CopyImage(_ context.Context, in *ec2.CopyImageInput, _ ...func(*ec2.Options)) (*ec2.CopyImageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.tokens)
	f.tokens = append(f.tokens, aws.ToString(in.ClientToken))
	id := fmt.Sprintf("ami-%08d", n+1)
	img := ec2types.Image{ImageId: aws.String(id), State: ec2types.ImageStateAvailable, Name: in.Name}
	if code := f.outcomes[n]; code != "available" {
		img.State = ec2types.ImageStateFailed
		img.StateReason = &ec2types.StateReason{Code: aws.String(code), Message: aws.String(kmsReasonMessage)}
	}
	if f.snapshots != nil {
		snap := fmt.Sprintf("snap-%08d", n+1)
		key := aws.ToString(in.KmsKeyId)
		if f.usedKey != "" {
			key = f.usedKey
		}
		f.snapshots[snap] = ec2types.Snapshot{SnapshotId: aws.String(snap), Encrypted: aws.Bool(true), KmsKeyId: aws.String(key), State: ec2types.SnapshotStateCompleted}
		img.BlockDeviceMappings = []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsBlockDevice{SnapshotId: aws.String(snap), Encrypted: aws.Bool(true)}}}
	}
	f.images[id] = img
	return &ec2.CopyImageOutput{ImageId: aws.String(id)}, nil
}

func (f *fakeEC2) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &ec2.DescribeSnapshotsOutput{}
	for _, id := range in.SnapshotIds {
		if s, ok := f.snapshots[id]; ok {
			out.Snapshots = append(out.Snapshots, s)
		}
	}
	return out, nil
}

func (f *fakeEC2) DescribeImages(_ context.Context, in *ec2.DescribeImagesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := in.ImageIds
	for _, flt := range in.Filters {
		if aws.ToString(flt.Name) == "image-id" {
			ids = append(ids, flt.Values...)
		}
	}
	out := &ec2.DescribeImagesOutput{}
	for _, id := range ids {
		if img, ok := f.images[id]; ok {
			out.Images = append(out.Images, img)
		}
	}
	return out, nil
}

func (f *fakeEC2) DeregisterImage(_ context.Context, in *ec2.DeregisterImageInput, _ ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deregister = append(f.deregister, aws.ToString(in.ImageId))
	delete(f.images, aws.ToString(in.ImageId))
	return &ec2.DeregisterImageOutput{}, nil
}

func fakeRunner(t *testing.T, f *fakeEC2) (*runner, *job, *clients) {
	t.Helper()
	cfg := &Config{}
	if err := cfg.Prepare(validRaw()); err != nil {
		t.Fatal(err)
	}
	src := &source{Region: "us-east-1", ImageID: "ami-source", Shared: "ami-source", SharedKeys: []string{"arn:k"}}
	tgt := &target{Account: "222222222222", RoleARN: "arn:aws:iam::222222222222:role/amicrypt-copy"}
	j := &job{Target: tgt, Region: "us-east-1", Source: src, KeyARN: "arn:aws:kms:us-east-1:222222222222:key/t", Name: "copy", State: "planned", Started: time.Now()}
	r := &runner{
		cfg: cfg, ui: newUI(), plan: &plan{sess: &session{SourceAccount: "111111111111"}, jobs: []*job{j}},
		poll:    awsauth.NewPolling(time.Millisecond, 50),
		retry:   fanout.Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond},
		waiters: map[string]*ebs.ImageWaiter{},
	}
	return r, j, &clients{Account: tgt.Account, Region: j.Region, EC2: f}
}

func TestCopyRetriesAfterKMSStateReason(t *testing.T) {
	tests := []struct {
		name       string
		outcomes   []string
		wantErr    string // "" for success
		wantCopies int
	}{
		{"grant late once", []string{"Client.InvalidKMSKey.InvalidState", "available"}, "", 2},
		{"grant never works", []string{"Client.InvalidKMSKey.InvalidState", "Client.InvalidKMSKey.InvalidState", "Client.InvalidKMSKey.InvalidState", "available"},
			"Client.InvalidKMSKey.InvalidState: " + kmsReasonMessage, 3},
		{"other failure is not retried", []string{"Server.InternalError", "available"}, "Server.InternalError: " + kmsReasonMessage, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeEC2{outcomes: tt.outcomes, images: map[string]ec2types.Image{}}
			r, j, c := fakeRunner(t, f)
			_, err := r.copyWithRetries(context.Background(), c, j)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("copy failed: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want AWS's reason word for word: %q", err, tt.wantErr)
			}
			if len(f.tokens) != tt.wantCopies {
				t.Fatalf("%d CopyImage calls, want %d", len(f.tokens), tt.wantCopies)
			}
			seen := map[string]bool{}
			for _, tok := range f.tokens {
				if seen[tok] {
					t.Errorf("ClientToken %s reused for a new attempt", tok)
				}
				seen[tok] = true
			}
			if f.tokens[0] != clientToken("ami-source", "222222222222", "us-east-1", j.KeyARN, 0) {
				t.Errorf("first token %s is not the deterministic one", f.tokens[0])
			}
			// Failed copies that were retried are removed; the last one stays
			// for the rollback to handle.
			if len(f.deregister) != len(tt.outcomes[:tt.wantCopies])-1 && tt.wantErr == "" {
				t.Errorf("deregistered %v", f.deregister)
			}
			if got := len(r.ledger.Pending(fanout.Rollback)); got != 1 {
				t.Errorf("%d copies recorded for rollback, want exactly the last one", got)
			}
		})
	}
}

// TestCopyIsReadBack: a copy is available, yet only a read-back that finds
// every snapshot under the target key makes it a success; one under another
// key is a failure naming the snapshot and both keys, left to the rollback.
func TestCopyIsReadBack(t *testing.T) {
	const stray = "arn:aws:kms:us-east-1:222222222222:key/stray"
	for _, tt := range []struct {
		name    string
		usedKey string
	}{{"under the target key", ""}, {"under another key", stray}} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeEC2{outcomes: []string{"available"}, images: map[string]ec2types.Image{}, usedKey: tt.usedKey, snapshots: map[string]ec2types.Snapshot{}}
			r, j, c := fakeRunner(t, f)
			j.Target.IsSource = true // no grant to wait for
			err := r.copyWith(context.Background(), c, j)
			if tt.usedKey == "" {
				if err != nil || !j.Verified || j.State != "available" {
					t.Fatalf("copy: %v, verified %v, state %s", err, j.Verified, j.State)
				}
				if c := j.copy(); !c.Verified {
					t.Errorf("the artifact's copy does not record verified: %+v", c)
				}
				return
			}
			want := "snapshot snap-00000001 (/dev/xvda) of ami-00000001 is encrypted under " + stray + ", not under the expected " + j.KeyARN
			if err == nil || !strings.Contains(err.Error(), want) || j.Verified || j.State != stateUnverified || !strings.Contains(j.Reason, want) {
				t.Fatalf("err %v, state %s, verified %v, reason %q; want a failure saying %q", err, j.State, j.Verified, j.Reason, want)
			}
			if got := len(r.ledger.Pending(fanout.Rollback)); got != 1 {
				t.Errorf("%d copies recorded for rollback; the unverified copy must be", got)
			}
		})
	}
}
