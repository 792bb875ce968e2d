package ebs

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
)

func TestPacerFirstPoll(t *testing.T) {
	explicit := &awsauth.PollingConfig{DelaySeconds: 5}
	explicit.Prepare()
	cases := []struct {
		name    string
		poll    *awsauth.PollingConfig
		observe map[string]time.Duration // class → what an 8 GiB copy took
		class   string
		size    int32
		want    time.Duration
	}{
		// The prior, 1 min + 5 s/GiB of AWS time, at real time.
		{"prior, real time", awsauth.NewPolling(15*time.Second, 0), nil, "in-region", 8, 100 * time.Second},
		// AWS_POLL_DELAY_SECONDS = 0.15 tells a clock 100 times faster.
		{"prior, emulated at 0.01", awsauth.NewPolling(150*time.Millisecond, 0), nil, "in-region", 8, time.Second},
		// A delay the user set is real time: the prior is not scaled.
		{"prior, user's delay", explicit, nil, "in-region", 8, 100 * time.Second},
		{"learnt from the run", awsauth.NewPolling(15*time.Second, 0), map[string]time.Duration{"in-region": 200 * time.Second}, "in-region", 16, 400 * time.Second},
		{"borrowed from a faster class", awsauth.NewPolling(15*time.Second, 0), map[string]time.Duration{"in-region": 200 * time.Second}, "cross-region", 8, 200 * time.Second},
		{"own class first", awsauth.NewPolling(15*time.Second, 0), map[string]time.Duration{"in-region": 200 * time.Second, "cross-region": 600 * time.Second}, "cross-region", 8, 600 * time.Second},
		{"size unknown: one delay", awsauth.NewPolling(15*time.Second, 0), nil, "in-region", 0, 15 * time.Second},
		{"never under the delay", awsauth.NewPolling(15*time.Second, 0), map[string]time.Duration{"in-region": time.Second}, "in-region", 8, 15 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPacer(tc.poll)
			for class, took := range tc.observe {
				p.Observe(class, 8, took)
			}
			if got := p.First(tc.class, tc.size); got != tc.want {
				t.Errorf("First(%q, %d) = %s, want %s", tc.class, tc.size, got, tc.want)
			}
		})
	}
}

func TestPacerNext(t *testing.T) {
	learnt := map[string]time.Duration{"in-region": 200 * time.Second}
	cases := []struct {
		name    string
		elapsed time.Duration
		percent int
		observe map[string]time.Duration
		want    time.Duration
	}{
		// 50% at 100 s: the end is between 196 s and 200 s, within one
		// delay: poll when it is surely done.
		{"progress narrows the end", 100 * time.Second, 50, nil, 100 * time.Second},
		// 16% at 100 s: the end is 588 s at the earliest, but a poll never
		// waits longer than twice what the copy has run once a tenth is
		// done, once what it has run before.
		{"never more than twice the elapsed time", 100 * time.Second, 16, nil, 200 * time.Second},
		{"never more than the elapsed time", 100 * time.Second, 5, nil, 100 * time.Second},
		// 55% at 600 s: between 1071 s and 1091 s; one more reading a poll
		// delay before the earliest, 456 s away.
		{"a reading before the earliest end", 600 * time.Second, 55, nil, 600*time.Second*100/56 - 15*time.Second - 600*time.Second},
		// 48% at 300 s: between 612 s and 625 s, 13 s apart; a reading a
		// poll delay before 612 s narrows that to about 1% of the copy.
		{"one more reading before the end", 300 * time.Second, 48, nil, 300*time.Second*100/49 - 15*time.Second - 300*time.Second},
		// 97% at 597 s: between 609 s and 615.5 s, as sharp as it gets.
		{"a reading near the end: when surely done", 597 * time.Second, 97, nil, 597*time.Second*100/97 - 597*time.Second},
		{"almost done: the delay", 600 * time.Second, 99, nil, 15 * time.Second},
		{"snapshots done: the delay", 600 * time.Second, 100, nil, 15 * time.Second},
		{"no progress: what the run learnt", 150 * time.Second, -1, learnt, 50 * time.Second},
		{"no progress, far from the estimate: doubling", 60 * time.Second, -1, learnt, 60 * time.Second},
		{"no progress, past the estimate: back off", 300 * time.Second, 0, learnt, 300 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPacer(awsauth.NewPolling(15*time.Second, 0))
			for class, took := range tc.observe {
				p.Observe(class, 8, took)
			}
			if got, _ := p.Next("in-region", 8, tc.elapsed, tc.percent); got != tc.want {
				t.Errorf("Next(%s, %d%%) = %s, want %s", tc.elapsed, tc.percent, got, tc.want)
			}
		})
	}
}

// TestPacedWaiterPollsNearTheEnd: a copy of an 8 GiB snapshot whose
// Progress grows linearly is first polled no sooner than the prior says
// (1 min + 5 s/GiB of AWS time), read as available once done, and its
// duration is learnt; progress ticks come while no poll happens.
func TestPacedWaiterPollsNearTheEnd(t *testing.T) {
	delay := 10 * time.Millisecond // AWS time runs 1500 times faster
	poll := awsauth.NewPolling(delay, 0)
	start := time.Now()
	total := 400 * time.Millisecond // the copy's length
	var mu sync.Mutex
	var imagePolls []time.Duration
	client := &fakeEC2{
		describeImages: func(in *ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error) {
			mu.Lock()
			imagePolls = append(imagePolls, time.Since(start))
			mu.Unlock()
			st := types.ImageStatePending
			if time.Since(start) >= total {
				st = types.ImageStateAvailable
			}
			return &ec2.DescribeImagesOutput{Images: []types.Image{{ImageId: aws.String("ami-1"), State: st,
				BlockDeviceMappings: []types.BlockDeviceMapping{{Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-1"), VolumeSize: aws.Int32(8)}}}}}}, nil
		},
		describeSnapshots: func(in *ec2.DescribeSnapshotsInput) (*ec2.DescribeSnapshotsOutput, error) {
			pct := min(int(100*time.Since(start)/total), 99)
			return &ec2.DescribeSnapshotsOutput{Snapshots: []types.Snapshot{{SnapshotId: aws.String("snap-1"), State: types.SnapshotStatePending,
				Progress: aws.String(fmt.Sprintf("%d%%", pct))}}}, nil
		},
	}
	pacer := NewPacer(poll)
	w := NewPacedImageWaiter(client, poll, pacer)
	var ticks int
	img, err := w.WaitPaced(context.Background(), "ami-1", WaitOptions{
		Started: start, SizeGiB: 8, Class: "in-region",
		Tick: func(WaitStatus) { ticks++ }, TickEvery: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if img.State != types.ImageStateAvailable {
		t.Fatalf("state %s", img.State)
	}
	prior := pacer.AWSTime(priorBase + 8*priorPerGiB) // 100 s of AWS time
	mu.Lock()
	defer mu.Unlock()
	if imagePolls[0] < prior {
		t.Errorf("first poll after %s, before the expected %s", imagePolls[0], prior)
	}
	if last := imagePolls[len(imagePolls)-1]; last < total {
		t.Errorf("the last poll, at %s, came before the copy ended (%s)", last, total)
	}
	if ticks == 0 {
		t.Error("no progress tick while the copy was pending")
	}
	if client.n("DescribeSnapshots") == 0 {
		t.Error("the snapshots' Progress was never read")
	}
	if got, learnt := pacer.Expect("in-region", 8); !learnt || got < total {
		t.Errorf("Expect after the copy = %s (learnt %v), want at least %s", got, learnt, total)
	}
}

// TestEndWindowNarrows: two readings of an evenly growing copy keep what
// both say of its end (48% at 300 s: 612.2 s to 625 s; 97% at 597 s:
// 609.2 s to 615.5 s; together 612.2 s to 615.5 s), the done poll comes
// at the end of that, and a reading that agrees with none of it replaces it.
func TestEndWindowNarrows(t *testing.T) {
	var w EndWindow
	w.Narrow(300*time.Second, 300*time.Second, 48, 0)
	w.Narrow(597*time.Second, 597*time.Second, 97, 0)
	lo, hi := 300*time.Second*100/49, 597*time.Second*100/97
	if w.Lo != lo || w.Hi != hi {
		t.Fatalf("window %s..%s, want %s..%s", w.Lo, w.Hi, lo, hi)
	}
	p := NewPacer(awsauth.NewPolling(15*time.Second, 0))
	gap, done := p.NextIn("cross-region", 8, 597*time.Second, 97, w)
	if gap != hi-597*time.Second || !done {
		t.Fatalf("NextIn = %s, %v; want %s, true (when surely done)", gap, done, hi-597*time.Second)
	}
	w.Narrow(700*time.Second, 700*time.Second, 50, 0) // slower than every earlier reading said
	if w.Lo != 700*time.Second*100/51 || w.Hi != 1400*time.Second {
		t.Fatalf("a contradicting reading: window %s..%s, want it alone", w.Lo, w.Hi)
	}
}

// TestEndWindowSlack: a copy that began up to 2 s before the start its
// elapsed time counts from ends, at the latest, 2 s × (100/97 − 1) later
// than the reading says of that start.
func TestEndWindowSlack(t *testing.T) {
	var w EndWindow
	w.Narrow(597*time.Second, 597*time.Second, 97, 2*time.Second)
	if want := 599*time.Second*100/97 - 2*time.Second; w.Hi != want {
		t.Fatalf("latest end %s, want %s", w.Hi, want)
	}
	if want := 597 * time.Second * 100 / 98; w.Lo != want {
		t.Fatalf("earliest end %s, want %s", w.Lo, want)
	}
}

// TestPacedCopySeenDoneSoonAfterItsEnd follows the polls the Pacer asks
// for of a 615 s copy (8 GiB across regions in the emulator's model) whose
// Progress grows evenly. The copy began up to d before the CopyImage answer
// the waiter counts from (the call was on the wire d), and each poll's
// answer is seen lag after its Progress was read (a busy CPU). The poll
// that finds it done comes within one Progress step (1% of the copy) plus
// d of its end: no reading lands so near the end that the poll delay
// holds the next look back (a reading at 99% once meant seeing the copy
// done 12 s after it ended).
func TestPacedCopySeenDoneSoonAfterItsEnd(t *testing.T) {
	const took = 615 * time.Second
	for _, d := range []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second} {
		for _, lag := range []time.Duration{0, 300 * time.Millisecond, time.Second} {
			p := NewPacer(awsauth.NewPolling(15*time.Second, 0))
			var win EndWindow
			at := p.First("cross-region", 8) // since the CopyImage answer
			atEnd := false
			var polls []string
			for range 20 {
				if at+d >= took {
					break
				}
				if atEnd { // expected done, but pending
					polls = append(polls, fmt.Sprintf("pending at %s", at))
					at += p.Floor()
					continue
				}
				pct := int(100 * (at + d) / took)
				polls = append(polls, fmt.Sprintf("%d%% at %s", pct, at))
				seen := at + lag
				win.Narrow(at, seen, pct, d)
				var gap time.Duration
				gap, atEnd = p.NextIn("cross-region", 8, seen, pct, win)
				if gap < p.Floor() {
					t.Fatalf("d=%s lag=%s: a poll %s after the last, under the poll delay", d, lag, gap)
				}
				at = seen + gap
			}
			if late := at + d - took; late < 0 || late > took/100+d {
				t.Errorf("d=%s lag=%s: seen done %s after the end, want within %s; polls: %s", d, lag, late, took/100+d, strings.Join(polls, ", "))
			}
		}
	}
}
