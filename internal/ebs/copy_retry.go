package ebs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
)

// CopyRetry bounds how an encrypted snapshot copy is retried.
type CopyRetry struct {
	// Attempts is how many copies may be started in all: a copy that ends
	// in error is deleted and a fresh one started. 0 means 3.
	Attempts int
	// LimitWaits is how many times a copy refused with ResourceLimitExceeded
	// (the concurrent snapshot copy quota of the region) is asked again,
	// backing off from one poll delay up to 30. 0 means 40.
	LimitWaits int
	// OnRetry hears why the copy is tried again, for the build's output.
	OnRetry func(msg string)
	// Started hears the ID of every copy started, so a cleanup can find it.
	Started func(id string)
	// Recheck, when set, is asked before a failed copy is tried afresh; an
	// error from it ends the retries, as the failure won't pass (the key
	// was disabled meanwhile, say).
	Recheck func(ctx context.Context, failure error) error
}

// CopySnapshotEncryptedRetrying makes an encrypted copy (CopySnapshotEncrypted)
// and waits for it to complete. A copy that fails is deleted and a fresh one
// started, up to r.Attempts; the quota on concurrent copies
// (ResourceLimitExceeded, docs/aws-behaviour.md: quotas) makes it back off
// and ask again rather than fail. Hand-written: the SDK retries one request
// on transient errors, not an operation whose resource ended in error, nor a
// quota that frees up minutes later.
func CopySnapshotEncryptedRetrying(ctx context.Context, client EC2API, poll *awsauth.PollingConfig, s CopySnapshotSpec,
	progress func(*types.Snapshot), r CopyRetry) (*types.Snapshot, error) {
	attempts, limitWaits := r.Attempts, r.LimitWaits
	if attempts <= 0 {
		attempts = 3
	}
	if limitWaits <= 0 {
		limitWaits = 40
	}
	say := func(format string, args ...any) {
		if r.OnRetry != nil {
			r.OnRetry(fmt.Sprintf(format, args...))
		}
	}
	var lastErr error
	for attempt := 1; attempt <= attempts; attempt++ {
		var id string
		spent, err := Retry(ctx, limitWaits+1, backoffPause(poll.Delay(), 30*poll.Delay()),
			func(err error) bool { return IsCode(err, "ResourceLimitExceeded") },
			func(try int, err error, pause time.Duration) {
				say("copy of %s refused: the region's concurrent snapshot copy quota is reached (ResourceLimitExceeded); asking again in %s", s.SourceSnapshotID, pause.Round(time.Millisecond))
			},
			func(ctx context.Context) error {
				var err error
				id, err = CopySnapshotEncrypted(ctx, client, s)
				return err
			})
		if spent {
			return nil, fmt.Errorf("%w; the quota stayed reached after %d tries: fewer copies at a time, or ask AWS for a higher quota", err, limitWaits+1)
		}
		if err != nil {
			return nil, err
		}
		if r.Started != nil {
			r.Started(id)
		}
		snap, err := WaitSnapshotCompleted(ctx, client, poll, id, progress)
		if err == nil {
			return snap, nil
		}
		if !IsStateError(err) || ctx.Err() != nil {
			return nil, err
		}
		lastErr = err
		if attempt == attempts {
			break
		}
		if r.Recheck != nil {
			if rerr := r.Recheck(ctx, err); rerr != nil {
				return nil, fmt.Errorf("%w; not retried: %w", err, rerr)
			}
		}
		say("%v; deleting it and starting a fresh copy (attempt %d of %d)", err, attempt+1, attempts)
		if derr := DeleteSnapshotWhenSettled(ctx, client, poll, id); derr != nil {
			return nil, errors.Join(err, derr)
		}
	}
	return nil, fmt.Errorf("copying snapshot %s failed %d times, the last: %w", s.SourceSnapshotID, attempts, lastErr)
}

// backoffPause doubles from base up to most.
func backoffPause(base, most time.Duration) func(int) time.Duration {
	return func(try int) time.Duration {
		d := base
		for i := 1; i < try && d < most; i++ {
			d *= 2
		}
		return min(d, most)
	}
}
