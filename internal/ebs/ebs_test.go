package ebs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"golang.org/x/sync/errgroup"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
)

func fastPoll(attempts int) *awsauth.PollingConfig {
	return awsauth.NewPolling(time.Millisecond, attempts)
}

func TestParseKeyRef(t *testing.T) {
	cases := []struct {
		ref      string
		kind     KeyRefKind
		region   string
		awsAlias bool
		bad      bool
	}{
		{ref: "1234abcd-12ab-34cd-56ef-1234567890ab", kind: KeyRefID},
		{ref: "mrk-1234abcd12ab34cd56ef1234567890ab", kind: KeyRefID},
		{ref: "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab", kind: KeyRefARN, region: "us-east-1"},
		{ref: "arn:aws:kms:eu-west-1:111111111111:key/mrk-1234abcd12ab34cd56ef1234567890ab", kind: KeyRefARN, region: "eu-west-1"},
		{ref: "alias/amicrypt-build", kind: KeyRefAlias},
		{ref: "alias/aws/ebs", kind: KeyRefAlias, awsAlias: true},
		{ref: "arn:aws:kms:us-west-2:111111111111:alias/amicrypt-build", kind: KeyRefAliasARN, region: "us-west-2"},
		{ref: "arn:aws:kms:us-west-2:111111111111:alias/aws/ebs", kind: KeyRefAliasARN, region: "us-west-2", awsAlias: true},
		{ref: "amicrypt-build", bad: true},
		{ref: "1234abcd-12ab-34cd-56ef", bad: true},
		{ref: "arn:aws:kms:us-east-1:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab", bad: true},
		{ref: "arn:aws:kms:us-east-1:111111111111:key/not-a-key", bad: true},
		{ref: "alias/", bad: true},
		{ref: "", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.ref, func(t *testing.T) {
			r, err := ParseKeyRef(tc.ref)
			if tc.bad {
				if err == nil || !strings.Contains(err.Error(), "alias ARN") {
					t.Fatalf("want a syntax error listing the accepted forms, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Kind != tc.kind || r.Region != tc.region || r.AWSManagedAlias() != tc.awsAlias {
				t.Errorf("got %+v (aws alias %v)", r, r.AWSManagedAlias())
			}
		})
	}
}

func keyMeta(mut func(*kmstypes.KeyMetadata)) *kms.DescribeKeyOutput {
	md := &kmstypes.KeyMetadata{
		Arn:          aws.String("arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
		KeyId:        aws.String("1234abcd-12ab-34cd-56ef-1234567890ab"),
		AWSAccountId: aws.String("111111111111"),
		KeyManager:   kmstypes.KeyManagerTypeCustomer,
		KeyState:     kmstypes.KeyStateEnabled,
		KeySpec:      kmstypes.KeySpecSymmetricDefault,
		KeyUsage:     kmstypes.KeyUsageTypeEncryptDecrypt,
	}
	if mut != nil {
		mut(md)
	}
	return &kms.DescribeKeyOutput{KeyMetadata: md}
}

func TestCheckKey(t *testing.T) {
	cases := []struct {
		name    string
		out     *kms.DescribeKeyOutput
		err     error
		req     KeyRequirements
		problem KeyProblem
		quote   string
	}{
		{name: "good", out: keyMeta(nil), req: KeyRequirements{Region: "us-east-1", Account: "111111111111"}},
		{name: "not found", err: apiErr("NotFoundException", "Alias arn:aws:kms:us-east-1:111111111111:alias/nope is not found."), req: KeyRequirements{Region: "us-east-1"}, problem: KeyNotFound},
		{name: "denied", err: apiErr("AccessDeniedException", "no"), req: KeyRequirements{Region: "us-east-1"}, problem: KeyAccessDenied},
		{name: "disabled", out: keyMeta(func(m *kmstypes.KeyMetadata) { m.KeyState = kmstypes.KeyStateDisabled }), req: KeyRequirements{Region: "us-east-1"}, problem: KeyDisabled},
		{name: "pending deletion", out: keyMeta(func(m *kmstypes.KeyMetadata) { m.KeyState = kmstypes.KeyStatePendingDeletion }), req: KeyRequirements{Region: "us-east-1"}, problem: KeyPendingDeletion},
		{name: "asymmetric", out: keyMeta(func(m *kmstypes.KeyMetadata) { m.KeySpec = kmstypes.KeySpecRsa2048 }), req: KeyRequirements{Region: "us-east-1"}, problem: KeyNotSymmetric},
		{name: "hmac usage", out: keyMeta(func(m *kmstypes.KeyMetadata) { m.KeyUsage = kmstypes.KeyUsageTypeGenerateVerifyMac }), req: KeyRequirements{Region: "us-east-1"}, problem: KeyWrongUsage},
		{name: "other region", out: keyMeta(nil), req: KeyRequirements{Region: "eu-west-1"}, problem: KeyWrongRegion},
		{name: "other account", out: keyMeta(nil), req: KeyRequirements{Region: "us-east-1", Account: "222222222222"}, problem: KeyWrongAccount},
		{name: "aws managed refused", out: keyMeta(func(m *kmstypes.KeyMetadata) { m.KeyManager = kmstypes.KeyManagerTypeAws }), req: KeyRequirements{Region: "us-east-1"}, problem: KeyAWSManaged, quote: AWSManagedShareError},
		{name: "aws managed allowed", out: keyMeta(func(m *kmstypes.KeyMetadata) { m.KeyManager = kmstypes.KeyManagerTypeAws }), req: KeyRequirements{Region: "us-east-1", AllowAWSManaged: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := &fakeKMS{describeKey: func(in *kms.DescribeKeyInput) (*kms.DescribeKeyOutput, error) {
				if aws.ToString(in.KeyId) != "alias/amicrypt-build" {
					t.Errorf("KeyId = %q", aws.ToString(in.KeyId))
				}
				return tc.out, tc.err
			}}
			k, err := CheckKey(context.Background(), client, "alias/amicrypt-build", tc.req)
			if tc.problem == "" {
				if err != nil {
					t.Fatal(err)
				}
				if k.ARN != "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab" || k.Region != "us-east-1" {
					t.Errorf("key = %+v", k)
				}
				return
			}
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Problem != tc.problem {
				t.Fatalf("error = %v, want problem %q", err, tc.problem)
			}
			if !strings.Contains(err.Error(), "alias/amicrypt-build") {
				t.Errorf("error %q does not name the key", err)
			}
			if tc.quote != "" && !strings.Contains(err.Error(), tc.quote) {
				t.Errorf("error %q does not quote %q", err, tc.quote)
			}
		})
	}
}

func TestWaitImageAvailable(t *testing.T) {
	cases := []struct {
		name    string
		states  []types.Image // answers in order; the last repeats
		unseen  int           // leading answers without the image (EC2's eventual consistency)
		want    string        // "" success, else substring of the error
		polls   int
		isState bool
	}{
		{name: "pending then available", states: []types.Image{{State: types.ImageStatePending}, {State: types.ImageStateAvailable}}},
		{name: "eventual consistency", unseen: 3, states: []types.Image{{State: types.ImageStateAvailable}}},
		{name: "failed quotes reason", states: []types.Image{{State: types.ImageStatePending}, {State: types.ImageStateFailed, StateReason: &types.StateReason{
			Code: aws.String("Client.InvalidKMSKey.InvalidState"), Message: aws.String("The KMS key arn:aws:kms:… may not be used by account 222222222222")}}},
			want: "image ami-1 is failed: Client.InvalidKMSKey.InvalidState: The KMS key arn:aws:kms:… may not be used by account 222222222222", isState: true},
		{name: "disabled ends the wait", states: []types.Image{{State: types.ImageStatePending}, {State: types.ImageStateDisabled}}, want: "image ami-1 is disabled", isState: true},
		{name: "times out", states: []types.Image{{State: types.ImageStatePending}}, polls: 3, want: `gave up after`},
		{name: "never seen", unseen: 100, states: []types.Image{{}}, want: "image ami-1 not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			call := 0
			client := &fakeEC2{describeImages: func(in *ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error) {
				call++
				if len(in.Filters) != 1 || aws.ToString(in.Filters[0].Name) != "image-id" || in.Filters[0].Values[0] != "ami-1" {
					return nil, fmt.Errorf("unexpected input %+v", in)
				}
				// A filter answers an image not visible yet with an empty list.
				if call <= tc.unseen {
					return &ec2.DescribeImagesOutput{}, nil
				}
				i := min(call-tc.unseen-1, len(tc.states)-1)
				img := tc.states[i]
				img.ImageId = aws.String("ami-1")
				return &ec2.DescribeImagesOutput{Images: []types.Image{img}}, nil
			}}
			polls := tc.polls
			if polls == 0 {
				polls = 50
			}
			seen := 0
			img, err := WaitImageAvailable(context.Background(), client, fastPoll(polls), "ami-1", func(*types.Image) { seen++ })
			if tc.want == "" {
				if err != nil || img.State != types.ImageStateAvailable {
					t.Fatalf("img, err = %v, %v", img, err)
				}
				if seen == 0 {
					t.Error("progress never reported")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
			if IsStateError(err) != tc.isState {
				t.Errorf("IsStateError = %v", !tc.isState)
			}
		})
	}
}

func TestWaitSnapshotCompletedReportsProgress(t *testing.T) {
	progress := []string{"0%", "40%", "99%", "100%"}
	call := 0
	client := &fakeEC2{describeSnapshots: func(*ec2.DescribeSnapshotsInput) (*ec2.DescribeSnapshotsOutput, error) {
		p := progress[min(call, len(progress)-1)]
		call++
		st := types.SnapshotStatePending
		if p == "100%" {
			st = types.SnapshotStateCompleted
		}
		return &ec2.DescribeSnapshotsOutput{Snapshots: []types.Snapshot{{SnapshotId: aws.String("snap-1"), State: st, Progress: aws.String(p)}}}, nil
	}}
	var got []string
	_, err := WaitSnapshotCompleted(context.Background(), client, fastPoll(10), "snap-1", func(s *types.Snapshot) { got = append(got, aws.ToString(s.Progress)) })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "0%,40%,99%,100%" {
		t.Errorf("progress = %v", got)
	}
}

func TestWaitSnapshotErrorQuotesStateMessage(t *testing.T) {
	client := &fakeEC2{describeSnapshots: func(*ec2.DescribeSnapshotsInput) (*ec2.DescribeSnapshotsOutput, error) {
		return &ec2.DescribeSnapshotsOutput{Snapshots: []types.Snapshot{{SnapshotId: aws.String("snap-1"), State: types.SnapshotStateError,
			StateMessage: aws.String("Given key ID is not accessible")}}}, nil
	}}
	_, err := WaitSnapshotCompleted(context.Background(), client, fastPoll(10), "snap-1", nil)
	if err == nil || err.Error() != "snapshot snap-1 is error: Given key ID is not accessible" {
		t.Fatalf("error = %v", err)
	}
}

func TestWaitInstanceRunningLaunchFailure(t *testing.T) {
	states := []types.InstanceStateName{types.InstanceStateNamePending, types.InstanceStateNameTerminated}
	call := 0
	client := &fakeEC2{describeInstances: func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
		st := states[min(call, len(states)-1)]
		call++
		inst := types.Instance{InstanceId: aws.String("i-1"), State: &types.InstanceState{Name: st}}
		if st == types.InstanceStateNameTerminated {
			inst.StateReason = &types.StateReason{Code: aws.String("Client.InternalError"), Message: aws.String("Client.InternalError: Client error on launch")}
		}
		return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: []types.Instance{inst}}}}, nil
	}}
	_, err := WaitInstanceRunning(context.Background(), client, fastPoll(10), "i-1")
	if err == nil || !strings.Contains(err.Error(), "Client.InternalError: Client error on launch") {
		t.Fatalf("error = %v", err)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	client := &fakeEC2{describeImages: func(*ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error) {
		return &ec2.DescribeImagesOutput{Images: []types.Image{{ImageId: aws.String("ami-1"), State: types.ImageStatePending}}}, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := WaitImageAvailable(ctx, client, awsauth.NewPolling(time.Hour, 5), "ami-1", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

func TestImageWaiterBatches(t *testing.T) {
	var polls atomic.Int32
	ready := map[string]int32{"ami-a": 2, "ami-b": 3, "ami-c": 4} // available from that poll on
	client := &fakeEC2{describeImages: func(in *ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error) {
		n := polls.Add(1)
		if len(in.ImageIds) != 0 || len(in.Filters) != 1 || aws.ToString(in.Filters[0].Name) != "image-id" {
			return nil, fmt.Errorf("unexpected input %+v", in)
		}
		var out ec2.DescribeImagesOutput
		for _, id := range in.Filters[0].Values {
			st := types.ImageStatePending
			if n >= ready[id] {
				st = types.ImageStateAvailable
			}
			if id == "ami-bad" {
				st = types.ImageStateFailed
			}
			img := types.Image{ImageId: aws.String(id), State: st}
			if id == "ami-bad" {
				img.StateReason = &types.StateReason{Code: aws.String("Client.InvalidKMSKey.InvalidState"), Message: aws.String("denied")}
			}
			out.Images = append(out.Images, img)
		}
		return &out, nil
	}}
	waitAll := func(ids ...string) (map[string]*types.Image, error) {
		w := NewImageWaiter(client, fastPoll(20))
		var mu sync.Mutex
		imgs := map[string]*types.Image{}
		g, ctx := errgroup.WithContext(context.Background())
		for _, id := range ids {
			g.Go(func() error {
				img, err := w.Wait(ctx, id, nil)
				if err != nil {
					return err
				}
				mu.Lock()
				imgs[id] = img
				mu.Unlock()
				return nil
			})
		}
		return imgs, g.Wait()
	}
	imgs, err := waitAll("ami-a", "ami-b", "ami-c")
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 3 {
		t.Fatalf("got %d images", len(imgs))
	}
	// Three images, one call per poll: four polls, not 2+3+4.
	if got := client.n("DescribeImages"); got > 5 {
		t.Errorf("DescribeImages called %d times; want one per poll (≤5)", got)
	}

	_, err = waitAll("ami-a", "ami-bad")
	if err == nil || !strings.Contains(err.Error(), "Client.InvalidKMSKey.InvalidState: denied") {
		t.Fatalf("error = %v", err)
	}
}

func TestCopySnapshotEncrypted(t *testing.T) {
	var got *ec2.CopySnapshotInput
	client := &fakeEC2{copySnapshot: func(in *ec2.CopySnapshotInput) (*ec2.CopySnapshotOutput, error) {
		got = in
		return &ec2.CopySnapshotOutput{SnapshotId: aws.String("snap-enc")}, nil
	}}
	id, err := CopySnapshotEncrypted(context.Background(), client, CopySnapshotSpec{
		SourceSnapshotID: "snap-1", SourceRegion: "us-east-1", KmsKeyID: "arn:aws:kms:us-east-1:111111111111:key/k",
		Tags: map[string]string{"b": "2", "a": "1"},
	})
	if err != nil || id != "snap-enc" {
		t.Fatal(id, err)
	}
	if !aws.ToBool(got.Encrypted) || aws.ToString(got.KmsKeyId) != "arn:aws:kms:us-east-1:111111111111:key/k" {
		t.Errorf("input = %+v", got)
	}
	if len(got.TagSpecifications) != 1 || got.TagSpecifications[0].ResourceType != types.ResourceTypeSnapshot ||
		aws.ToString(got.TagSpecifications[0].Tags[0].Key) != "a" {
		t.Errorf("tag specs = %+v", got.TagSpecifications)
	}
	if _, err := CopySnapshotEncrypted(context.Background(), client, CopySnapshotSpec{SourceSnapshotID: "snap-1"}); err == nil {
		t.Error("a copy without a key must be refused (it would fall back to aws/ebs)")
	}
}

func TestCopyImageEncrypted(t *testing.T) {
	var got *ec2.CopyImageInput
	client := &fakeEC2{copyImage: func(in *ec2.CopyImageInput) (*ec2.CopyImageOutput, error) {
		got = in
		return &ec2.CopyImageOutput{ImageId: aws.String("ami-copy")}, nil
	}}
	_, err := CopyImageEncrypted(context.Background(), client, CopyImageSpec{SourceImageID: "ami-1", SourceRegion: "us-east-1", Name: "n",
		KmsKeyID: "arn:k", ClientToken: "tok", Tags: map[string]string{"a": "1"}, SnapshotTags: map[string]string{"s": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(got.Encrypted) || aws.ToString(got.KmsKeyId) != "arn:k" || aws.ToString(got.ClientToken) != "tok" || len(got.TagSpecifications) != 2 {
		t.Errorf("input = %+v", got)
	}
}

func TestDeleteImageAndSnapshots(t *testing.T) {
	inUse := 2
	var deleted []string
	client := &fakeEC2{
		describeImages: func(*ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error) {
			return &ec2.DescribeImagesOutput{Images: []types.Image{{ImageId: aws.String("ami-1"), BlockDeviceMappings: []types.BlockDeviceMapping{
				{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-1")}},
				{DeviceName: aws.String("/dev/sdb"), VirtualName: aws.String("ephemeral0")},
				{DeviceName: aws.String("/dev/sdc"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-2")}},
			}}}}, nil
		},
		deregisterImage: func(*ec2.DeregisterImageInput) (*ec2.DeregisterImageOutput, error) {
			return &ec2.DeregisterImageOutput{}, nil
		},
		deleteSnapshot: func(in *ec2.DeleteSnapshotInput) (*ec2.DeleteSnapshotOutput, error) {
			if aws.ToString(in.SnapshotId) == "snap-1" && inUse > 0 {
				inUse--
				return nil, apiErr("InvalidSnapshot.InUse", "The snapshot snap-1 is currently in use by ami-1")
			}
			deleted = append(deleted, aws.ToString(in.SnapshotId))
			return &ec2.DeleteSnapshotOutput{}, nil
		},
	}
	if err := DeleteImageAndSnapshots(context.Background(), client, "ami-1"); err != nil {
		t.Fatal(err)
	}
	if strings.Join(deleted, ",") != "snap-1,snap-2" || client.n("DeregisterImage") != 1 {
		t.Errorf("deleted %v, deregistered %d", deleted, client.n("DeregisterImage"))
	}

	gone := &fakeEC2{describeImages: func(*ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error) {
		return nil, apiErr("InvalidAMIID.NotFound", "gone")
	}}
	if err := DeleteImageAndSnapshots(context.Background(), gone, "ami-1"); err != nil {
		t.Errorf("deleting a missing image: %v", err)
	}
}

func TestCreateTagsRetriesNotYetVisible(t *testing.T) {
	fails := 2
	client := &fakeEC2{createTags: func(*ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
		if fails > 0 {
			fails--
			return nil, apiErr("InvalidAMIID.NotFound", "not yet")
		}
		return &ec2.CreateTagsOutput{}, nil
	}}
	if err := CreateTags(context.Background(), client, []string{"ami-1"}, map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	if client.n("CreateTags") != 3 {
		t.Errorf("calls = %d", client.n("CreateTags"))
	}
	denied := &fakeEC2{createTags: func(*ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
		return nil, apiErr("UnauthorizedOperation", "no")
	}}
	if err := CreateTags(context.Background(), denied, []string{"ami-1"}, map[string]string{"a": "b"}); !IsCode(err, "UnauthorizedOperation") || denied.n("CreateTags") != 1 {
		t.Errorf("err = %v after %d calls", err, denied.n("CreateTags"))
	}
}

func TestShareImage(t *testing.T) {
	var got *ec2.ModifyImageAttributeInput
	client := &fakeEC2{modifyImageAttr: func(in *ec2.ModifyImageAttributeInput) (*ec2.ModifyImageAttributeOutput, error) {
		got = in
		return &ec2.ModifyImageAttributeOutput{}, nil
	}}
	err := ShareImage(context.Background(), client, "ami-1", Sharing{Users: []string{"222222222222"}, OrgARNs: []string{"arn:aws:organizations::111111111111:organization/o-abc"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.LaunchPermission.Add) != 2 || aws.ToString(got.LaunchPermission.Add[0].UserId) != "222222222222" {
		t.Errorf("input = %+v", got.LaunchPermission)
	}
	if err := ShareImage(context.Background(), client, "ami-2", Sharing{}); err != nil || client.n("ModifyImageAttribute") != 1 {
		t.Error("empty sharing must make no call")
	}
}

func TestDeleteSnapshotWhenSettled(t *testing.T) {
	cases := []struct {
		name      string
		refuseNow bool
		gone      bool
		describes int
	}{
		{name: "pending copy deleted at once"},
		{name: "refused while pending, waits", refuseNow: true, describes: 1},
		{name: "already gone", gone: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			deletes := 0
			client := &fakeEC2{
				deleteSnapshot: func(*ec2.DeleteSnapshotInput) (*ec2.DeleteSnapshotOutput, error) {
					deletes++
					if tc.gone {
						return nil, apiErr("InvalidSnapshot.NotFound", "gone")
					}
					if tc.refuseNow && deletes == 1 {
						return nil, apiErr("IncorrectState", "snapshot is pending")
					}
					return &ec2.DeleteSnapshotOutput{}, nil
				},
				describeSnapshots: func(*ec2.DescribeSnapshotsInput) (*ec2.DescribeSnapshotsOutput, error) {
					return &ec2.DescribeSnapshotsOutput{Snapshots: []types.Snapshot{{SnapshotId: aws.String("snap-1"), State: types.SnapshotStateCompleted}}}, nil
				},
			}
			if err := DeleteSnapshotWhenSettled(context.Background(), client, fastPoll(5), "snap-1"); err != nil {
				t.Fatal(err)
			}
			if client.n("DescribeSnapshots") != tc.describes {
				t.Errorf("DescribeSnapshots calls = %d, want %d", client.n("DescribeSnapshots"), tc.describes)
			}
		})
	}
}

func TestValidLaunchPermissionNames(t *testing.T) {
	cases := []struct {
		value            string
		account, org, ou bool
	}{
		{value: "222222222222", account: true},
		{value: "22222222222"},
		{value: "2222222222223"},
		{value: "arn:aws:organizations::111111111111:organization/o-abcdefghij", org: true},
		{value: "arn:aws:organizations::111111111111:organization/o-abc"},
		{value: "arn:aws:organizations::111111111111:ou/o-abcdefghij/ou-ab12-abcdefgh", ou: true},
		{value: "arn:aws:organizations::111111111111:ou/o-abcdefghij/ou-ab12"},
		{value: ""},
	}
	for _, tc := range cases {
		if got := ValidAccountID(tc.value); got != tc.account {
			t.Errorf("ValidAccountID(%q) = %t", tc.value, got)
		}
		if got := ValidOrgARN(tc.value); got != tc.org {
			t.Errorf("ValidOrgARN(%q) = %t", tc.value, got)
		}
		if got := ValidOUARN(tc.value); got != tc.ou {
			t.Errorf("ValidOUARN(%q) = %t", tc.value, got)
		}
	}
}
