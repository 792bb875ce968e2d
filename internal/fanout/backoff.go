package fanout

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// Backoff is a bounded exponential backoff with jitter. The SDK's adaptive
// retryer handles throttling of single requests; this covers the errors it
// does not retry, such as a quota of concurrent copies being full. (It is
// hand-written: the SDK's retryers retry one request, not an operation made
// of several, and x/time/rate paces without backing off.)
type Backoff struct {
	Initial  time.Duration // first pause; default 1s
	Max      time.Duration // longest pause; default 60s
	Attempts int           // tries in all, including the first; default 8
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = time.Second
	}
	if b.Max <= 0 {
		b.Max = time.Minute
	}
	if b.Attempts <= 0 {
		b.Attempts = 8
	}
	return b
}

// Pause is the pause before retry n (1-based), jittered between half and
// all of the exponential value.
func (b Backoff) Pause(n int) time.Duration {
	b = b.withDefaults()
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d/2 + rand.N(d/2+1)
}

// Retry calls fn until it succeeds, returns an error retryable rejects,
// the attempts run out or ctx ends. onRetry, when set, hears about each
// retry before its pause.
func (b Backoff) Retry(ctx context.Context, retryable func(error) bool, onRetry func(attempt int, err error, pause time.Duration), fn func(context.Context) error) error {
	b = b.withDefaults()
	spent, err := ebs.Retry(ctx, b.Attempts, b.Pause, retryable, onRetry, fn)
	if spent {
		return fmt.Errorf("gave up after %d attempts: %w", b.Attempts, err)
	}
	return err
}

// QuotaFull reports whether err says a quota of concurrent operations is
// full (ResourceLimitExceeded): worth waiting for, unlike most errors.
func QuotaFull(err error) bool { return ebs.IsCode(err, "ResourceLimitExceeded") }
