package bench

import (
	"context"
	"io"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

func TestCalls(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	entries := []awsemu.AuditEntry{
		{Service: "ec2", Action: "CopyImage", Outcome: "ok", Time: t0.Add(time.Second)},
		{Service: "ec2", Action: "DescribeImages", Outcome: "RequestLimitExceeded", Time: t0},
		{Service: "kms", Action: "CreateGrant", Outcome: "ThrottlingException", Time: t0.Add(3 * time.Second)},
		{Service: "sts", Action: "AssumeRole", Outcome: "AccessDenied", Time: t0.Add(2 * time.Second)},
		{Service: "ec2", Action: "DescribeImages", Outcome: "ok", Time: t0.Add(2 * time.Second)},
		// DryRun probes: counted as calls, not as errors nor as mutating.
		{Service: "ec2", Action: "CopyImage", Outcome: "DryRunOperation", Time: t0.Add(time.Second)},
		{Service: "kms", Action: "CreateGrant", Outcome: "DryRunOperationException", Time: t0.Add(time.Second)},
		{Service: "ec2", Action: "DescribeImages", Outcome: "DryRunOperation", Time: t0.Add(time.Second)},
	}
	s := Calls(entries)
	if s.Total != 8 || s.Errors != 3 || s.Throttled != 2 || s.DryRun != 3 {
		t.Errorf("total, errors, throttled, dry run = %d, %d, %d, %d; want 8, 3, 2, 3", s.Total, s.Errors, s.Throttled, s.DryRun)
	}
	if s.ErrorsBy["sts:AssumeRole AccessDenied"] != 1 || len(s.ErrorsBy) != 3 {
		t.Errorf("errors by action and code: %v", s.ErrorsBy)
	}
	if s.DryRunBy["kms:CreateGrant"] != 1 || s.DryRunBy["ec2:CopyImage"] != 1 || len(s.DryRunBy) != 3 {
		t.Errorf("dry run by action: %v", s.DryRunBy)
	}
	if s.ByAction["ec2:DescribeImages"] != 3 || s.ByAction["ec2:CopyImage"] != 2 || s.Mutating() != 3 {
		t.Errorf("by action %v, mutating %d (want 3: CopyImage, CreateGrant, AssumeRole)", s.ByAction, s.Mutating())
	}
	if s.Span() != 3*time.Second {
		t.Errorf("span %s, want 3s (out-of-order entries)", s.Span())
	}
	if (CallStats{}).Span() != 0 {
		t.Error("an empty run has a span")
	}
}

func TestCadence(t *testing.T) {
	calls := map[string]int{"ec2:DescribeImages": 40, "ec2:CopyImage": 10, "sts:AssumeRole": 10}
	tests := []struct {
		name     string
		c        Cadence
		emulated time.Duration
		factor   float64
		calls    float64
	}{
		// The harness default: 15 s × scale of wall time is 15 s emulated.
		{"scaled with the clock", Cadence{WallDelay: 150 * time.Millisecond, Scale: 0.01, RealTime: 15 * time.Second}, 15 * time.Second, 1, 60},
		// 1 s of wall time at 1/30 is 30 s emulated: half the polls.
		{"polls half as often", Cadence{WallDelay: time.Second, Scale: 1.0 / 30, RealTime: 15 * time.Second}, 30 * time.Second, 2, 100},
		// 15 s of wall time at 0.01 is 1500 s emulated: a hundredth.
		{"wall-clock polling", Cadence{WallDelay: 15 * time.Second, Scale: 0.01, RealTime: 15 * time.Second}, 1500 * time.Second, 100, 4020},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.Emulated(); got.Round(time.Millisecond) != tc.emulated {
				t.Errorf("emulated interval %s, want %s", got, tc.emulated)
			}
			if got := tc.c.Factor(); math.Abs(got-tc.factor) > 1e-9 {
				t.Errorf("factor %g, want %g", got, tc.factor)
			}
			if got := tc.c.RealTimeCalls(calls); math.Abs(got-tc.calls) > 1e-6 {
				t.Errorf("real-time calls %g, want %g", got, tc.calls)
			}
		})
	}
}

// TestCopiedAgainstTheEmulator copies the public AMI twice into one
// account-region and once into another through the emulator, then reads
// its state: three 8 GiB copies, the repeat one incremental.
func TestCopiedAgainstTheEmulator(t *testing.T) {
	const scale = 0.001
	srv := emutest.Start(t, awsemu.Options{TimeScale: scale})
	ctx := context.Background()
	copyTo := func(region, name string) string {
		t.Helper()
		out, err := ec2.NewFromConfig(srv.Config(ctx, BuildAccount, region)).CopyImage(ctx, &ec2.CopyImageInput{
			SourceImageId: aws.String(FanoutSourceAMI), SourceRegion: aws.String("us-east-1"),
			Name: aws.String(name), Encrypted: aws.Bool(true), KmsKeyId: aws.String(BuildKeyAlias),
		})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.ImageId)
	}
	first := copyTo("us-east-1", "bench-copy-1")
	copyTo("us-east-1", "bench-copy-2")
	cross := copyTo("eu-west-1", "bench-copy-3")

	st := readState(t, srv.URL())
	entries := srv.Emulator().Audit(awsemu.AuditFilter{})
	got := Copied(entries, st, DefaultModel(), scale)
	if got != (CopiedData{GiB: 24, FullCopies: 2}) {
		t.Errorf("copied %+v, want 24 GiB in 2 full copies and 1 incremental", got)
	}

	// Available 205 s (same region) and 615 s (across regions) after the
	// call, in emulated time.
	for id, want := range map[string]time.Duration{first: 205 * time.Second, cross: 615 * time.Second} {
		img := st.Images[id]
		at, ok := st.AvailableAt(img)
		if !ok {
			t.Fatalf("%s: no availability time", id)
		}
		if d := Emulated(at.Sub(img.Created), scale); d.Round(time.Second) != want {
			t.Errorf("%s available after %s emulated, want %s", id, d, want)
		}
	}
}

func readState(t *testing.T, url string) EmuState {
	t.Helper()
	resp, err := http.Get(url + "/_emu/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseState(body)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestParseStateLayouts(t *testing.T) {
	flat := `{"ec2":{"images":{"ami-1":{"id":"ami-1"}},"snapshots":{"snap-1":{"id":"snap-1","size_gib":8}}}}`
	stores := `{"ec2":{"stores":[{"state":{"images":{"ami-1":{"id":"ami-1"}}}},{"state":{"snapshots":{"snap-1":{"id":"snap-1","size_gib":8}}}}]}}`
	for name, doc := range map[string]string{"flat": flat, "stores": stores} {
		st, err := ParseState([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, ok := st.Images["ami-1"]; !ok || st.Snapshots["snap-1"].SizeGiB != 8 {
			t.Errorf("%s: %+v", name, st)
		}
	}
	if _, err := ParseState([]byte(`{"ec2":{"things":{}}}`)); err == nil {
		t.Error("an unknown layout parsed without error")
	}
}

func TestLifetimeAndSplit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	entries := []awsemu.AuditEntry{
		{Action: "CreateImage", Outcome: "ok", Notes: map[string]string{"imageId": "ami-1"}, Time: t0, Principal: BuildUserARN},
		{Action: "CopyImage", Outcome: "ok", Notes: map[string]string{"imageId": "ami-2"}, Time: t0.Add(time.Second), Principal: CopyUserARN},
		{Action: "DeregisterImage", Outcome: "ok", Params: map[string]string{"ImageId": "ami-1"}, Time: t0.Add(3 * time.Second), PrincipalIAM: BuildUserARN},
		{Action: "DescribeImages", Outcome: "ok", Time: t0.Add(5 * time.Second), Principal: CopyUserARN},
	}
	if got := Lifetime(entries, "ami-1", 0.1); got != 30*time.Second {
		t.Errorf("ami-1 lived %s, want 30s emulated", got)
	}
	if got := Lifetime(entries, "ami-2", 0.1); got != 40*time.Second {
		t.Errorf("ami-2 lived %s, want 40s (to the last call)", got)
	}
	if got := Lifetime(entries, "ami-3", 0.1); got != 0 {
		t.Errorf("ami-3 never existed, lived %s", got)
	}
	builder, others := SplitByPrincipal(entries, BuildUserARN)
	if len(builder) != 2 || len(others) != 2 {
		t.Errorf("split %d/%d, want 2/2", len(builder), len(others))
	}
	if got := PerCopy(map[string]int{"ec2:CopyImage": 10}, 4)["ec2:CopyImage"]; got != 2.5 {
		t.Errorf("per copy %g", got)
	}
}

func TestPollLag(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	st := EmuState{
		Images: map[string]EmuImage{
			// Ready at 10 s once its snapshot is done at 10 s.
			"ami-1": {ID: "ami-1", State: "pending", ReadyAt: at(1), Mappings: []EmuMapping{{SnapshotID: "snap-1", SizeGiB: 8}}},
		},
		Snapshots: map[string]EmuSnapshot{
			"snap-1": {ID: "snap-1", DoneAt: at(10), State: "pending"},
			"snap-2": {ID: "snap-2", DoneAt: at(2), State: "completed"},
		},
	}
	describe := func(s float64, params map[string]string) awsemu.AuditEntry {
		return awsemu.AuditEntry{Action: "DescribeImages", Outcome: "ok", Time: at(s), Params: params}
	}
	entries := []awsemu.AuditEntry{
		describe(5, map[string]string{"ImageId.1": "ami-1"}),
		describe(13, map[string]string{"ImageId.1": "ami-0,ami-1"}), // sees it 3 s late
		describe(20, map[string]string{"ImageId.1": "ami-1"}),       // later polls don't count
		// snap-2 was never polled before it was ready: no wait.
		{Action: "DescribeSnapshots", Outcome: "ok", Time: at(30), Params: map[string]string{"SnapshotId.1": "snap-2"}},
		// A failed call saw nothing.
		{Action: "DescribeSnapshots", Outcome: "RequestLimitExceeded", Time: at(9), Params: map[string]string{"SnapshotId.1": "snap-1"}},
		{Action: "DescribeSnapshots", Outcome: "ok", Time: at(9.5), Params: map[string]string{"SnapshotId.1": "snap-1"}},
		{Action: "DescribeSnapshots", Outcome: "ok", Time: at(10.5), Params: map[string]string{"SnapshotId.1": "snap-1"}},
	}
	lag := PollLag(entries, st, 0.1)
	// (13 − 10) + (10.5 − 10) = 3.5 s on the emulator clock, 35 s emulated.
	if lag.Waits != 2 || lag.Total != 35*time.Second {
		t.Errorf("lag %s over %d waits, want 35s over 2", lag.Total, lag.Waits)
	}

	merged := EmuState{Images: map[string]EmuImage{}, Snapshots: map[string]EmuSnapshot{"snap-1": {ID: "snap-1", SizeGiB: 1}}}
	merged.Merge(st)
	if len(merged.Images) != 1 || len(merged.Snapshots) != 2 || merged.Snapshots["snap-1"].SizeGiB != 1 {
		t.Errorf("merge: %+v (a resource seen first keeps its first record)", merged)
	}
}
