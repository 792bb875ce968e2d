package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

func TestRunRespectsConcurrencyAndPerDestLimit(t *testing.T) {
	tests := []struct {
		name        string
		concurrency int
		perDest     int
		dests       int
		jobsPerDest int
		wantGlobal  int // max observed at once overall
		wantPerDest int // max observed at once in one destination (an upper bound when perDest is 0)
	}{
		{"global cap binds", 3, 0, 4, 4, 3, 3},
		{"per-dest cap binds", 0, 2, 3, 5, 6, 2},
		{"both", 4, 1, 6, 3, 4, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var jobs []Job[int]
			for d := 0; d < tt.dests; d++ {
				for j := 0; j < tt.jobsPerDest; j++ {
					jobs = append(jobs, Job[int]{Dest: Dest{Account: fmt.Sprint(d), Region: "r"}, Item: j})
				}
			}
			var mu sync.Mutex
			global, maxGlobal := 0, 0
			perDest, maxPerDest := map[Dest]int{}, 0
			// Jobs hold their slot until both caps have been reached once
			// (or a generous deadline passes, when Run never allows that
			// many at once), so reaching them does not depend on timing;
			// exceeding them is checked on every start.
			reached := make(chan struct{})
			res := Run(context.Background(), tt.concurrency, NewLimiter(tt.perDest), jobs, func(ctx context.Context, j Job[int]) error {
				mu.Lock()
				global++
				perDest[j.Dest]++
				maxGlobal = max(maxGlobal, global)
				maxPerDest = max(maxPerDest, perDest[j.Dest])
				if maxGlobal >= tt.wantGlobal && (tt.perDest == 0 || maxPerDest >= tt.wantPerDest) {
					select {
					case <-reached:
					default:
						close(reached)
					}
				}
				mu.Unlock()
				select {
				case <-reached:
				case <-time.After(5 * time.Second):
				}
				mu.Lock()
				global--
				perDest[j.Dest]--
				mu.Unlock()
				if j.Item == 0 {
					return errors.New("first job of each dest fails")
				}
				return nil
			})
			// Without a per-destination cap, how many of one destination run
			// at once depends on the order; it is only bounded.
			perDestOK := maxPerDest == tt.wantPerDest || (tt.perDest == 0 && maxPerDest <= tt.wantPerDest)
			if maxGlobal != tt.wantGlobal || !perDestOK {
				t.Errorf("max at once: global %d per-dest %d; want %d and %d", maxGlobal, maxPerDest, tt.wantGlobal, tt.wantPerDest)
			}
			failed := 0
			for i, r := range res {
				if r.Item != jobs[i].Item || r.Dest != jobs[i].Dest {
					t.Fatalf("result %d is for %v, want %v", i, r.Job, jobs[i])
				}
				if r.Err != nil {
					failed++
				}
			}
			if failed != tt.dests {
				t.Errorf("%d failed results, want %d (one failure must not stop the others)", failed, tt.dests)
			}
		})
	}
}

func TestRunCancelledDoesNotStartJobs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var started atomic.Int32
	res := Run(ctx, 2, nil, []Job[int]{{Item: 1}, {Item: 2}}, func(context.Context, Job[int]) error {
		started.Add(1)
		return nil
	})
	if started.Load() != 0 {
		t.Errorf("%d jobs started after cancel", started.Load())
	}
	if err := Errors(res); !errors.Is(err, context.Canceled) {
		t.Errorf("Errors = %v, want context.Canceled", err)
	}
}

func TestLimiterAcquireHonoursContext(t *testing.T) {
	l := NewLimiter(1)
	d := Dest{"1", "r"}
	release, err := l.Acquire(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(ctx, d); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Acquire = %v, want deadline exceeded", err)
	}
	release()
	release() // a second release must not free a slot it does not hold
	if _, err := l.Acquire(context.Background(), d); err != nil {
		t.Fatalf("Acquire after release: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if _, err := l.Acquire(ctx2, d); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire beyond capacity after a double release = %v, want deadline exceeded", err)
	}
	if _, err := l.Acquire(context.Background(), Dest{"2", "r"}); err != nil {
		t.Fatalf("other destination blocked: %v", err)
	}
}

func apiErr(code string) error {
	return fmt.Errorf("wrapped: %w", &smithy.GenericAPIError{Code: code, Message: "m"})
}

func TestBackoffRetry(t *testing.T) {
	tests := []struct {
		name      string
		errs      []error // returned by successive calls; nil after the list
		attempts  int
		wantCalls int
		wantErr   string // code of the final error, "" for success
	}{
		{"quota then ok", []error{apiErr("ResourceLimitExceeded"), apiErr("ResourceLimitExceeded")}, 5, 3, ""},
		{"non-retryable stops", []error{apiErr("InvalidAMIID.NotFound")}, 5, 1, "InvalidAMIID.NotFound"},
		{"runs out", []error{apiErr("ResourceLimitExceeded"), apiErr("ResourceLimitExceeded"), apiErr("ResourceLimitExceeded")}, 2, 2, "ResourceLimitExceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, retries := 0, 0
			b := Backoff{Initial: time.Microsecond, Max: time.Millisecond, Attempts: tt.attempts}
			err := b.Retry(context.Background(), QuotaFull, func(int, error, time.Duration) { retries++ }, func(context.Context) error {
				calls++
				if calls <= len(tt.errs) {
					return tt.errs[calls-1]
				}
				return nil
			})
			if calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
			}
			if retries != calls-1 {
				t.Errorf("onRetry called %d times for %d calls", retries, calls)
			}
			if got := ebs.ErrorCode(err); got != tt.wantErr {
				t.Errorf("error = %v, want code %q", err, tt.wantErr)
			}
			// Only running out of attempts says so; other errors come back as they were.
			gaveUp := fmt.Sprintf("gave up after %d attempts: ", tt.attempts)
			if ranOut := calls == tt.attempts && tt.wantErr != ""; ranOut != (err != nil && strings.HasPrefix(err.Error(), gaveUp)) {
				t.Errorf("error = %v; want the %q prefix only when the attempts ran out", err, gaveUp)
			}
		})
	}
}

func TestBackoffPauseGrowsAndCaps(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 9: 400 * time.Millisecond} {
		for range 20 {
			if p := b.Pause(n); p < want/2 || p > want {
				t.Fatalf("Pause(%d) = %v, want within [%v, %v]", n, p, want/2, want)
			}
		}
	}
}

func TestQuotaFull(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"quota code", apiErr("ResourceLimitExceeded"), true},
		{"other code", apiErr("RequestLimitExceeded"), false},
		{"message text only", errors.New("ResourceLimitExceeded"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := QuotaFull(tt.err); got != tt.want {
			t.Errorf("%s: QuotaFull = %v, want %v (API codes only, never message text)", tt.name, got, tt.want)
		}
	}
}
