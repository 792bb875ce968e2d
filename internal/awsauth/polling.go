//go:generate sh -c "ln -sfn \"$(dirname $(go env GOMOD))\" \"${TMPDIR:-/tmp}/packer-plugin-amicrypt\" && cd \"${TMPDIR:-/tmp}/packer-plugin-amicrypt/internal/awsauth\" && go tool packer-sdc struct-markdown"

package awsauth

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"time"
)

// Polling defaults. A first full copy of a large volume to a new region or
// key takes hours; waits must outlast that, so the default budget is six
// hours whatever delay is chosen.
const (
	DefaultPollDelay   = 15 * time.Second
	DefaultWaitBudget  = 6 * time.Hour
	EnvPollDelay       = "AWS_POLL_DELAY_SECONDS"
	EnvPollMaxAttempts = "AWS_MAX_ATTEMPTS"
)

// PollingConfig sets how waits for long operations poll AWS. Settings in the
// template win over the environment variables `AWS_POLL_DELAY_SECONDS` and
// `AWS_MAX_ATTEMPTS`.
type PollingConfig struct {
	// Seconds between two polls. Defaults to `AWS_POLL_DELAY_SECONDS`, else 15.
	DelaySeconds int `mapstructure:"delay_seconds" required:"false"`
	// How many polls before a wait gives up. Defaults to `AWS_MAX_ATTEMPTS`,
	// else as many as fit in six hours at the chosen delay.
	MaxAttempts int `mapstructure:"max_attempts" required:"false"`

	delay time.Duration
}

// Prepare resolves the settings against the environment and validates them.
func (p *PollingConfig) Prepare() []error {
	var errs []error
	if p.DelaySeconds < 0 {
		errs = append(errs, fmt.Errorf("aws_polling.delay_seconds: %d is negative; use a number of seconds such as 15", p.DelaySeconds))
	}
	if p.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("aws_polling.max_attempts: %d is negative; use a count such as 1440, or leave it unset", p.MaxAttempts))
	}
	p.delay = time.Duration(p.DelaySeconds) * time.Second
	if p.DelaySeconds == 0 {
		p.delay = DefaultPollDelay
		if v := os.Getenv(EnvPollDelay); v != "" {
			// Fractions are accepted so tests against the emulator can poll
			// in milliseconds; the unit stays seconds.
			secs, err := strconv.ParseFloat(v, 64)
			if err != nil || secs <= 0 || math.IsInf(secs, 0) {
				errs = append(errs, fmt.Errorf("%s: %q is not a positive number of seconds; use e.g. %s=15", EnvPollDelay, v, EnvPollDelay))
			} else {
				p.delay = time.Duration(secs * float64(time.Second))
			}
		}
	}
	if p.MaxAttempts == 0 {
		if v := os.Getenv(EnvPollMaxAttempts); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a positive count of polls; use e.g. %s=1440", EnvPollMaxAttempts, v, EnvPollMaxAttempts))
			} else {
				p.MaxAttempts = n
			}
		}
	}
	if p.MaxAttempts == 0 && p.delay > 0 {
		p.MaxAttempts = int(DefaultWaitBudget / p.delay)
		if p.MaxAttempts < 1 {
			p.MaxAttempts = 1
		}
	}
	return errs
}

// Delay is the pause between two polls.
func (p *PollingConfig) Delay() time.Duration {
	switch {
	case p == nil:
		return DefaultPollDelay
	case p.delay != 0: // resolved by Prepare or NewPolling
		return p.delay
	case p.DelaySeconds > 0: // not prepared
		return time.Duration(p.DelaySeconds) * time.Second
	default:
		return DefaultPollDelay
	}
}

// Attempts is the number of polls before a wait gives up.
func (p *PollingConfig) Attempts() int {
	if p == nil || p.MaxAttempts <= 0 {
		return int(DefaultWaitBudget / p.Delay())
	}
	return p.MaxAttempts
}

// Timeout is the longest a wait lasts: Delay × Attempts.
func (p *PollingConfig) Timeout() time.Duration {
	return p.Delay() * time.Duration(p.Attempts())
}

// NewPolling builds a resolved PollingConfig from a delay and attempt count,
// for callers that don't decode a template (tests, the post-processor's
// internal waits).
func NewPolling(delay time.Duration, attempts int) *PollingConfig {
	p := &PollingConfig{delay: delay, MaxAttempts: attempts}
	if attempts <= 0 {
		p.MaxAttempts = int(DefaultWaitBudget / p.Delay())
	}
	return p
}
