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
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

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

// fakeKMS answers DescribeKey with state (Enabled when ""), or with err.
type fakeKMS struct {
	kmsAPI
	state string
	err   error
}

func (f *fakeKMS) DescribeKey(_ context.Context, in *kms.DescribeKeyInput, _ ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	if f.err != nil {
		return nil, f.err
	}
	state := kmstypes.KeyStateEnabled
	if f.state != "" {
		state = kmstypes.KeyState(f.state)
	}
	arn := aws.ToString(in.KeyId)
	account := "222222222222"
	if arn == "arn:k" {
		account = "111111111111"
	}
	return &kms.DescribeKeyOutput{KeyMetadata: &kmstypes.KeyMetadata{
		Arn: aws.String(arn), KeyId: aws.String("t"), AWSAccountId: aws.String(account), KeyState: state,
		KeyManager: kmstypes.KeyManagerTypeCustomer, KeySpec: kmstypes.KeySpecSymmetricDefault, KeyUsage: kmstypes.KeyUsageTypeEncryptDecrypt,
	}}, nil
}

// fakeRunner runs one job against fakes: the target account's EC2 (f) and
// KMS (k), and the source account's KMS, which always finds its key
// enabled. The session's cache holds them, so no client dials anything.
func fakeRunner(t *testing.T, f *fakeEC2, k *fakeKMS) (*runner, *job, *clients) {
	t.Helper()
	cfg := &Config{}
	if err := cfg.Prepare(validRaw()); err != nil {
		t.Fatal(err)
	}
	src := &source{Region: "us-east-1", ImageID: "ami-source", Shared: "ami-source", SharedKeys: []string{"arn:k"}}
	tgt := &target{Account: "222222222222", RoleARN: "arn:aws:iam::222222222222:role/amicrypt-copy"}
	j := &job{Target: tgt, Region: "us-east-1", Source: src, KeyARN: "arn:aws:kms:us-east-1:222222222222:key/t", Name: "copy", State: "planned", Started: time.Now()}
	sess := &session{SourceAccount: "111111111111", clock: &awsClock{}}
	sess.cache.Store("111111111111//us-east-1", &clients{Account: "111111111111", Region: "us-east-1", KMS: &fakeKMS{}})
	r := &runner{
		cfg: cfg, ui: newUI(), plan: &plan{sess: sess, jobs: []*job{j}, run: "testrun", template: "tpl"},
		poll:    awsauth.NewPolling(time.Millisecond, 50),
		retry:   fanout.Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond},
		waiters: map[string]*ebs.ImageWaiter{},
	}
	return r, j, &clients{Account: tgt.Account, Region: j.Region, EC2: f, KMS: k}
}

const (
	kmsReason    = "Client.InvalidKMSKey.InvalidState"
	serverReason = "Server.InternalError"
)

// TestCopyRetriesOnItsOwn: a copy that fails for a transient reason (a
// server error, a key reason while the target key is fine: a grant not yet
// in effect) is removed and made again, each time with a new ClientToken,
// at most copyAttempts times; one that fails for a lasting reason (the
// target key disabled, pending deletion or refused, a source snapshot gone,
// an unknown client reason) fails at once, saying why.
func TestCopyRetriesOnItsOwn(t *testing.T) {
	denied := &smithy.GenericAPIError{Code: "AccessDeniedException",
		Message: "User: arn:aws:sts::222222222222:assumed-role/amicrypt-copy/x is not authorized to perform: kms:DescribeKey on resource: arn:aws:kms:us-east-1:222222222222:key/t with an explicit deny in an identity-based policy"}
	tests := []struct {
		name       string
		outcomes   []string
		targetKey  *fakeKMS
		wantErr    []string // "" for success
		wantCopies int
	}{
		{"grant late once", []string{kmsReason, "available"}, &fakeKMS{}, nil, 2},
		{"server error once", []string{serverReason, "available"}, &fakeKMS{}, nil, 2},
		{"server error twice", []string{serverReason, serverReason, "available"}, &fakeKMS{}, nil, 3},
		{"grant never works", []string{kmsReason, kmsReason, kmsReason, "available"}, &fakeKMS{},
			[]string{"the copy failed 3 times", kmsReason + ": " + kmsReasonMessage}, 3},
		{"server error keeps failing", []string{serverReason, serverReason, serverReason, "available"}, &fakeKMS{},
			[]string{"the copy failed 3 times", serverReason + ": " + kmsReasonMessage}, 3},
		{"target key disabled", []string{kmsReason, "available"}, &fakeKMS{state: "Disabled"},
			[]string{"the target key is the cause", "arn:aws:kms:us-east-1:222222222222:key/t", "disabled", "not retried"}, 1},
		{"target key pending deletion", []string{kmsReason, "available"}, &fakeKMS{state: "PendingDeletion"},
			[]string{"the target key is the cause", "pending deletion", "not retried"}, 1},
		{"target key refused by the role's IAM policy", []string{kmsReason, "available"}, &fakeKMS{err: denied},
			[]string{"the target key is the cause", "in the IAM policy of arn:aws:iam::222222222222:role/amicrypt-copy", "not retried"}, 1},
		{"source snapshot gone", []string{"Client.InvalidSnapshot.NotFound", "available"}, &fakeKMS{},
			[]string{"a snapshot of the source AMI ami-source is gone"}, 1},
		{"unknown client reason", []string{"Client.UnsupportedOperation", "available"}, &fakeKMS{},
			[]string{"Client.UnsupportedOperation"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeEC2{outcomes: tt.outcomes, images: map[string]ec2types.Image{}}
			r, j, c := fakeRunner(t, f, tt.targetKey)
			_, err := r.copyWithRetries(context.Background(), c, j)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("copy failed: %v", err)
			case tt.wantErr != nil && err == nil:
				t.Fatalf("copy succeeded; want a failure saying %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
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
			if want := tt.wantCopies - 1; len(f.deregister) != want {
				t.Errorf("deregistered %v, want the %d retried copies", f.deregister, want)
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
			r, j, c := fakeRunner(t, f, &fakeKMS{})
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
