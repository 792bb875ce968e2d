package copy

import (
	"context"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// polledIDs are the image IDs one DescribeImages call asked for, by its
// image-id filter ("" when the call had no such filter).
func polledIDs(e awsemu.AuditEntry) []string {
	var ids []string
	for name, value := range e.Params {
		if strings.HasPrefix(name, "Filter.") && strings.HasSuffix(name, ".Name") && value == "image-id" {
			prefix := strings.TrimSuffix(name, "Name") + "Value."
			for k, v := range e.Params {
				if strings.HasPrefix(k, prefix) {
					ids = append(ids, v)
				}
			}
		}
	}
	sort.Strings(ids)
	return ids
}

// TestWaitingIsBatchedPerAccountRegion puts several copies in flight in
// each of two account-regions and waits for them all through the runner's
// waiters. The audit must show one DescribeImages per account-region per
// poll, each asking for every copy still in flight there, and no other
// DescribeImages.
func TestWaitingIsBatchedPerAccountRegion(t *testing.T) {
	srv := emu(t, awsemu.Options{TimeScale: 0.01})
	ctx := context.Background()
	// The first poll comes one delay after the first Wait: ample time for
	// the other waits to register, so it must ask for every copy.
	r := &runner{poll: awsauth.NewPolling(50*time.Millisecond, 2000), waiters: map[string]*ebs.ImageWaiter{}}
	inFlight := map[string]int{"222222222222": 3, "333333333333": 2}

	type copyInFlight struct {
		c  *clients
		id string
	}
	var copies []copyInFlight
	for account, n := range inFlight {
		cfg := srv.Config(ctx, account, "us-east-1")
		c := &clients{Account: account, Region: "us-east-1", EC2: ec2.NewFromConfig(cfg)}
		for i := range n {
			out, err := c.EC2.CopyImage(ctx, &ec2.CopyImageInput{
				SourceImageId: aws.String(publicAMI), SourceRegion: aws.String("us-east-1"),
				Name: aws.String("batched-" + account + "-" + string(rune('a'+i))), Encrypted: aws.Bool(true),
				KmsKeyId: aws.String("alias/amicrypt-target"),
			})
			if err != nil {
				t.Fatal(err)
			}
			copies = append(copies, copyInFlight{c, aws.ToString(out.ImageId)})
		}
	}

	mark := srv.Emulator().CheckMark()
	var wg sync.WaitGroup
	for _, cp := range copies {
		wg.Go(func() {
			if _, err := r.waiter(cp.c).Wait(ctx, cp.id, nil); err != nil {
				t.Errorf("%s/%s %s: %v", cp.c.Account, cp.c.Region, cp.id, err)
			}
		})
	}
	wg.Wait()
	if len(r.waiters) != len(inFlight) {
		t.Errorf("%d waiters for %d account-regions", len(r.waiters), len(inFlight))
	}

	for account, n := range inFlight {
		calls := srv.Emulator().Audit(awsemu.AuditFilter{Action: "DescribeImages", Account: account, Region: "us-east-1", SinceSeq: mark})
		if len(calls) == 0 {
			t.Fatalf("%s: no DescribeImages", account)
		}
		lastPoll := map[string]int{} // image → index of the last call that asked for it
		for i, call := range calls {
			ids := polledIDs(call)
			if len(ids) == 0 {
				t.Fatalf("%s: DescribeImages %d is not a batched image-id poll: %v", account, call.Seq, call.Params)
			}
			for _, id := range ids {
				lastPoll[id] = i
			}
		}
		if len(lastPoll) != n {
			t.Errorf("%s: the polls asked for %d images, want the %d in flight", account, len(lastPoll), n)
		}
		// Each poll asks for every copy not yet settled: one call serves all.
		for i, call := range calls {
			var want []string
			for id, last := range lastPoll {
				if last >= i {
					want = append(want, id)
				}
			}
			sort.Strings(want)
			if got := polledIDs(call); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s: poll %d asked for %v, want every copy still in flight %v", account, i, got, want)
			}
		}
		if first := polledIDs(calls[0]); len(first) != n {
			t.Errorf("%s: the first poll asked for %d copies, want all %d", account, len(first), n)
		}
		t.Logf("%s/us-east-1: %d copies settled in %d DescribeImages", account, n, len(calls))
	}
}
