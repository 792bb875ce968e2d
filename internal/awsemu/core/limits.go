package core

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Limits are service quotas and request rate limits.
type Limits struct {
	// ConcurrentImageCopies per destination account-region (0: default 50).
	ConcurrentImageCopies int `json:"concurrent_image_copies"`
	// ConcurrentSnapshotCopies per destination account-region (0: default 20).
	ConcurrentSnapshotCopies int `json:"concurrent_snapshot_copies"`
	// Request rates: token buckets per account-region, one for
	// Describe*/List*/Get* calls and one for the others. A zero rate means
	// unlimited. Rates are per wall-clock second, unless EmulatedTime.
	DescribeRate  float64 `json:"describe_rate"`
	DescribeBurst int     `json:"describe_burst"`
	MutateRate    float64 `json:"mutate_rate"`
	MutateBurst   int     `json:"mutate_burst"`
	// EmulatedTime makes the rates per emulated second: the buckets refill
	// at rate / time scale per wall second (at time scale 0.01, 5 per
	// second becomes 500 per wall second), so a benchmark at a time scale
	// meets the throttling a real run would, in proportion.
	EmulatedTime bool `json:"emulated_time,omitempty"`
	// Services the request rates apply to ("ec2", "kms", "sts", "iam"); empty
	// means all.
	Services []string `json:"services,omitempty"`
}

// Limiter holds the request-rate token buckets, per account, region and
// class (describe or mutate), as EC2 meters API requests.
type Limiter struct {
	mu      sync.Mutex
	limits  Limits
	scale   float64 // wall seconds per emulated second (the time scale)
	buckets map[string]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

// AWSRequestRates returns l with EC2's documented default request-rate
// token buckets per account and region, for EC2 only (KMS and STS quotas
// are far higher): non-mutating actions a bucket of 100 refilled at 20 per
// second, mutating actions 200 at 5 per second.
func (l Limits) AWSRequestRates() Limits {
	l.DescribeRate, l.DescribeBurst = 20, 100
	l.MutateRate, l.MutateBurst = 5, 200
	l.Services = []string{"ec2"}
	return l
}

// NewLimiter makes the buckets of l. timeScale is the emulator's time
// scale (wall seconds per emulated second); it matters only with
// l.EmulatedTime. A non-positive one means 1.
func NewLimiter(l Limits, timeScale float64) *Limiter {
	if timeScale <= 0 {
		timeScale = 1
	}
	return &Limiter{limits: l, scale: timeScale, buckets: map[string]*tokenBucket{}}
}

// IsDescribe reports whether action is metered as a read (Describe*, List*, Get*).
func IsDescribe(action string) bool {
	return strings.HasPrefix(action, "Describe") || strings.HasPrefix(action, "List") || strings.HasPrefix(action, "Get")
}

// Allow takes one token from the caller's bucket, or reports false.
func (l *Limiter) Allow(c *Call, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	rate, burst, class := l.limits.MutateRate, l.limits.MutateBurst, "mutate"
	if IsDescribe(c.Action) {
		rate, burst, class = l.limits.DescribeRate, l.limits.DescribeBurst, "describe"
	}
	if rate <= 0 || (len(l.limits.Services) > 0 && !slices.Contains(l.limits.Services, c.Service)) {
		return true
	}
	if burst <= 0 {
		burst = int(rate)
		if burst < 1 {
			burst = 1
		}
	}
	key := c.Service + "|" + c.Account + "|" + c.Region + "|" + class
	b, ok := l.buckets[key]
	if !ok {
		b = &tokenBucket{tokens: float64(burst), last: now}
		l.buckets[key] = b
	}
	elapsed := now.Sub(b.last).Seconds()
	if l.limits.EmulatedTime {
		elapsed /= l.scale // emulated seconds gone by
	}
	b.tokens += elapsed * rate
	if b.tokens > float64(burst) {
		b.tokens = float64(burst)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// ThrottleError is the service's throttling error.
func ThrottleError(service string) *APIError {
	switch service {
	case "kms":
		return &APIError{HTTPStatus: 400, Code: "ThrottlingException", Message: "Rate exceeded"}
	case "sts", "iam":
		return &APIError{HTTPStatus: 400, Code: "Throttling", Message: "Rate exceeded"}
	default:
		return &APIError{HTTPStatus: 503, Code: "RequestLimitExceeded", Message: "Request limit exceeded."}
	}
}

// InternalError is the service's server fault.
func InternalError(service string) *APIError {
	switch service {
	case "kms":
		return &APIError{HTTPStatus: 500, Code: "KMSInternalException", Message: "An internal error has occurred. Try your request again."}
	case "sts", "iam":
		return &APIError{HTTPStatus: 500, Code: "InternalFailure", Message: "The request processing has failed because of an unknown error, exception or failure."}
	default:
		return &APIError{HTTPStatus: 500, Code: "InternalError", Message: "An internal error has occurred. Retry your request, but if the problem persists, contact us with details by posting a message on the AWS forums."}
	}
}
