package ebs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestRetry(t *testing.T) {
	busy := apiErr("InvalidSnapshot.InUse", "in use")
	denied := apiErr("UnauthorizedOperation", "no")
	cases := []struct {
		name      string
		answers   []error // in order; the last repeats
		tries     int
		wantCalls int
		wantCode  string // "" for success
		wantSpent bool
	}{
		{name: "succeeds at once", answers: []error{nil}, tries: 5, wantCalls: 1},
		{name: "retries while retryable", answers: []error{busy, busy, nil}, tries: 5, wantCalls: 3},
		{name: "gives up after tries", answers: []error{busy}, tries: 4, wantCalls: 4, wantCode: "InvalidSnapshot.InUse", wantSpent: true},
		{name: "other errors at once", answers: []error{busy, denied}, tries: 5, wantCalls: 2, wantCode: "UnauthorizedOperation"},
		{name: "other error on the last try", answers: []error{busy, denied}, tries: 2, wantCalls: 2, wantCode: "UnauthorizedOperation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			var pauses, heard []time.Duration
			spent, err := Retry(context.Background(), tc.tries,
				func(try int) time.Duration {
					d := linearPause(time.Microsecond)(try)
					pauses = append(pauses, d)
					return d
				},
				func(err error) bool { return IsCode(err, "InvalidSnapshot.InUse") },
				func(try int, err error, pause time.Duration) {
					if try != len(heard)+1 || !IsCode(err, "InvalidSnapshot.InUse") {
						t.Errorf("onRetry(%d, %v) after %d retries", try, err, len(heard))
					}
					heard = append(heard, pause)
				},
				func(context.Context) error {
					calls++
					return tc.answers[min(calls, len(tc.answers))-1]
				})
			if calls != tc.wantCalls || ErrorCode(err) != tc.wantCode || (tc.wantCode == "") != (err == nil) || spent != tc.wantSpent {
				t.Fatalf("calls = %d, err = %v, spent = %t; want %d calls, code %q, spent %t", calls, err, spent, tc.wantCalls, tc.wantCode, tc.wantSpent)
			}
			for i, d := range pauses {
				if d != time.Duration(i+1)*time.Microsecond {
					t.Errorf("pause %d = %s, want linear growth", i+1, d)
				}
			}
			if len(pauses) != calls-1 || len(heard) != len(pauses) {
				t.Errorf("%d pauses and %d onRetry calls for %d calls", len(pauses), len(heard), calls)
			}
			for i := range heard {
				if heard[i] != pauses[i] {
					t.Errorf("onRetry heard pause %s, slept %s", heard[i], pauses[i])
				}
			}
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	spent, err := Retry(ctx, 5, linearPause(time.Hour), func(error) bool { return true }, nil, func(context.Context) error { return busy })
	if spent || !errors.Is(err, context.Canceled) || !IsCode(err, "InvalidSnapshot.InUse") {
		t.Errorf("cancelled retry = %v; want the last error and context.Canceled", err)
	}
}

func TestDeleteSecurityGroup(t *testing.T) {
	cases := []struct {
		name      string
		busyFor   int   // DependencyViolation answers before the final one
		final     error // the answer after them
		wantCalls int
		wantErr   bool
	}{
		{name: "deleted", final: nil, wantCalls: 1},
		{name: "held by a terminating instance", busyFor: 3, final: nil, wantCalls: 4},
		{name: "already gone", final: apiErr("InvalidGroup.NotFound", "gone"), wantCalls: 1},
		{name: "held for good", busyFor: 100, wantCalls: securityGroupTries, wantErr: true},
		{name: "denied", final: apiErr("UnauthorizedOperation", "no"), wantCalls: 1, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := &fakeEC2{deleteSG: func(in *ec2.DeleteSecurityGroupInput) (*ec2.DeleteSecurityGroupOutput, error) {
				if aws.ToString(in.GroupId) != "sg-1" {
					t.Errorf("GroupId = %s", aws.ToString(in.GroupId))
				}
				if tc.busyFor > 0 {
					tc.busyFor--
					return nil, apiErr("DependencyViolation", "resource sg-1 has a dependent object")
				}
				return &ec2.DeleteSecurityGroupOutput{}, tc.final
			}}
			err := DeleteSecurityGroup(context.Background(), client, fastPoll(1), "sg-1")
			if (err != nil) != tc.wantErr || client.n("DeleteSecurityGroup") != tc.wantCalls {
				t.Errorf("err = %v after %d calls; want error %v after %d", err, client.n("DeleteSecurityGroup"), tc.wantErr, tc.wantCalls)
			}
		})
	}
}

func TestCreateSecurityGroupOpenOn(t *testing.T) {
	var authorized *ec2.AuthorizeSecurityGroupIngressInput
	client := &fakeEC2{
		createSG: func(in *ec2.CreateSecurityGroupInput) (*ec2.CreateSecurityGroupOutput, error) {
			if aws.ToString(in.VpcId) != "vpc-1" || aws.ToString(in.GroupName) != "tmp" {
				t.Errorf("input = %+v", in)
			}
			return &ec2.CreateSecurityGroupOutput{GroupId: aws.String("sg-1")}, nil
		},
		authorizeSG: func(in *ec2.AuthorizeSecurityGroupIngressInput) (*ec2.AuthorizeSecurityGroupIngressOutput, error) {
			authorized = in
			return &ec2.AuthorizeSecurityGroupIngressOutput{}, nil
		},
	}
	id, err := CreateSecurityGroupOpenOn(context.Background(), client, "tmp", "temporary", "vpc-1", 22)
	if err != nil || id != "sg-1" {
		t.Fatalf("id, err = %s, %v", id, err)
	}
	p := authorized.IpPermissions[0]
	if aws.ToString(authorized.GroupId) != "sg-1" || aws.ToInt32(p.FromPort) != 22 || aws.ToInt32(p.ToPort) != 22 || aws.ToString(p.IpProtocol) != "tcp" {
		t.Errorf("ingress = %+v", authorized)
	}

	// The group made but the port refused: the ID comes back for cleanup.
	client.authorizeSG = func(*ec2.AuthorizeSecurityGroupIngressInput) (*ec2.AuthorizeSecurityGroupIngressOutput, error) {
		return nil, apiErr("UnauthorizedOperation", "no")
	}
	if id, err := CreateSecurityGroupOpenOn(context.Background(), client, "tmp", "temporary", "vpc-1", 22); id != "sg-1" || !IsCode(err, "UnauthorizedOperation") {
		t.Errorf("id, err = %q, %v; want the group ID and the error", id, err)
	}
}

func TestDeleteKeyPair(t *testing.T) {
	for _, answer := range []error{nil, apiErr("InvalidKeyPair.NotFound", "gone")} {
		client := &fakeEC2{deleteKeyPair: func(*ec2.DeleteKeyPairInput) (*ec2.DeleteKeyPairOutput, error) {
			return &ec2.DeleteKeyPairOutput{}, answer
		}}
		if err := DeleteKeyPair(context.Background(), client, "k"); err != nil {
			t.Errorf("answer %v: %v", answer, err)
		}
	}
	denied := &fakeEC2{deleteKeyPair: func(*ec2.DeleteKeyPairInput) (*ec2.DeleteKeyPairOutput, error) {
		return nil, apiErr("UnauthorizedOperation", "no")
	}}
	if err := DeleteKeyPair(context.Background(), denied, "k"); !IsCode(err, "UnauthorizedOperation") {
		t.Errorf("err = %v", err)
	}
}

func TestDeregisterImageWhenSettled(t *testing.T) {
	cases := []struct {
		name        string
		states      []types.ImageState // DescribeImages answers in order; the last repeats; none: gone
		deregisters int
	}{
		{name: "available", states: []types.ImageState{types.ImageStateAvailable}, deregisters: 1},
		{name: "pending, waited for", states: []types.ImageState{types.ImageStatePending, types.ImageStatePending, types.ImageStateFailed}, deregisters: 1},
		{name: "already gone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			call := 0
			client := &fakeEC2{
				describeImages: func(*ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error) {
					call++
					if len(tc.states) == 0 {
						return nil, apiErr("InvalidAMIID.NotFound", "The image id '[ami-1]' does not exist")
					}
					st := tc.states[min(call, len(tc.states))-1]
					return &ec2.DescribeImagesOutput{Images: []types.Image{{ImageId: aws.String("ami-1"), State: st,
						BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-1")}}}}}}, nil
				},
				deregisterImage: func(*ec2.DeregisterImageInput) (*ec2.DeregisterImageOutput, error) {
					return &ec2.DeregisterImageOutput{}, nil
				},
			}
			if err := DeregisterImageWhenSettled(context.Background(), client, fastPoll(10), "ami-1"); err != nil {
				t.Fatal(err)
			}
			if client.n("DeregisterImage") != tc.deregisters || client.n("DeleteSnapshot") != 0 {
				t.Errorf("DeregisterImage calls %d (want %d), DeleteSnapshot calls %d (want 0: the snapshots are not the caller's)",
					client.n("DeregisterImage"), tc.deregisters, client.n("DeleteSnapshot"))
			}
		})
	}
}
