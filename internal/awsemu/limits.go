package awsemu

import (
	"strings"
	"time"
)

// limiter holds the request-rate token buckets, per account, region and
// class (describe or mutate), as EC2 meters API requests.
type limiter struct {
	limits  Limits
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

func newLimiter(l Limits) *limiter {
	return &limiter{limits: l, buckets: map[string]*tokenBucket{}}
}

// isDescribe reports whether action is metered as a read (Describe*, List*, Get*).
func isDescribe(action string) bool {
	return strings.HasPrefix(action, "Describe") || strings.HasPrefix(action, "List") || strings.HasPrefix(action, "Get")
}

// allow takes one token from the caller's bucket, or reports false.
func (l *limiter) allow(c *Call, now time.Time) bool {
	rate, burst, class := l.limits.MutateRate, l.limits.MutateBurst, "mutate"
	if isDescribe(c.Action) {
		rate, burst, class = l.limits.DescribeRate, l.limits.DescribeBurst, "describe"
	}
	if rate <= 0 || (len(l.limits.Services) > 0 && !contains(l.limits.Services, c.Service)) {
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
	b.tokens += now.Sub(b.last).Seconds() * rate
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

// throttleError is the service's throttling error.
func throttleError(service string) *APIError {
	switch service {
	case "kms":
		return &APIError{400, "ThrottlingException", "Rate exceeded"}
	case "sts":
		return &APIError{400, "Throttling", "Rate exceeded"}
	default:
		return &APIError{503, "RequestLimitExceeded", "Request limit exceeded."}
	}
}

// internalError is the service's server fault.
func internalError(service string) *APIError {
	switch service {
	case "kms":
		return &APIError{500, "KMSInternalException", "An internal error has occurred. Try your request again."}
	case "sts":
		return &APIError{500, "InternalFailure", "The request processing has failed because of an unknown error, exception or failure."}
	default:
		return &APIError{500, "InternalError", "An internal error has occurred. Retry your request, but if the problem persists, contact us with details by posting a message on the AWS forums."}
	}
}

// admit applies request-rate limits and dispatcher-level faults before a
// handler runs (lock held).
func (e *Emulator) admit(c *Call) *APIError {
	if !e.limits.allow(c, e.opts.Now()) {
		return throttleError(c.Service)
	}
	if e.faultFiresFor(FaultThrottle, c, c.Action) {
		return throttleError(c.Service)
	}
	if e.faultFiresFor(FaultInternalError, c, c.Action) {
		return internalError(c.Service)
	}
	return nil
}
