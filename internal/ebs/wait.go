package ebs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
)

// The SDK's generated waiters poll one resource and can neither report
// progress nor batch many IDs. So amicrypt has its own: wait (one snapshot or
// instance), ImageWaiter (images, batched), and Retry (a call EC2
// refuses for a moment). Nothing else in this package or the amicrypt-ebs
// builder polls AWS.

// notFoundGrace is how many consecutive not-found answers a wait tolerates
// for a resource just created (EC2 is eventually consistent).
const notFoundGrace = 10

// StateError is a resource that ended in a failure state. Reason and Message
// are AWS's words, unchanged.
type StateError struct {
	Kind    string
	ID      string
	State   string
	Reason  string // state reason code, e.g. "Client.InternalError"
	Message string // state reason or state message, word for word
}

func (e *StateError) Error() string {
	s := fmt.Sprintf("%s %s is %s", e.Kind, e.ID, e.State)
	switch {
	case e.Reason != "" && e.Message != "":
		s += ": " + e.Reason + ": " + e.Message
	case e.Message != "":
		s += ": " + e.Message
	case e.Reason != "":
		s += ": " + e.Reason
	}
	return s
}

// TimeoutError is a wait that ran out of polls.
type TimeoutError struct {
	Kind, ID, Want, LastState string
	Waited                    time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("gave up after %s waiting for %s %s to be %s (last state %q); raise aws_polling { max_attempts } or AWS_MAX_ATTEMPTS",
		e.Waited.Round(time.Second), e.Kind, e.ID, e.Want, e.LastState)
}

// waitSpec describes one wait: how to find the resource and read its state.
type waitSpec[T any] struct {
	kind, id, want string
	find           func(context.Context) (T, error)
	state          func(T) string
	pending        func(string) bool
	failure        func(T) *StateError // non-nil when the state is a failure
	progress       func(T)             // called after every successful poll
}

// wait polls until the resource reaches spec.want, fails, vanishes for good
// or the polling budget runs out.
func wait[T any](ctx context.Context, poll *awsauth.PollingConfig, spec waitSpec[T]) (T, error) {
	var zero T
	delay, attempts := poll.Delay(), poll.Attempts()
	start := time.Now()
	lastState, notFound := "", 0
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return zero, fmt.Errorf("waiting for %s %s to be %s: %w", spec.kind, spec.id, spec.want, ctx.Err())
			case <-t.C:
			}
		}
		res, err := spec.find(ctx)
		if err != nil {
			if IsNotFound(err) && notFound < notFoundGrace {
				notFound++
				continue
			}
			return zero, fmt.Errorf("waiting for %s %s to be %s: %w", spec.kind, spec.id, spec.want, err)
		}
		notFound = 0
		if spec.progress != nil {
			spec.progress(res)
		}
		lastState = spec.state(res)
		if lastState == spec.want {
			return res, nil
		}
		if se := spec.failure(res); se != nil {
			return res, se
		}
		if !spec.pending(lastState) {
			return res, &StateError{Kind: spec.kind, ID: spec.id, State: lastState,
				Message: fmt.Sprintf("unexpected state while waiting for %s", spec.want)}
		}
	}
	return zero, &TimeoutError{Kind: spec.kind, ID: spec.id, Want: spec.want, LastState: lastState, Waited: time.Since(start)}
}

// IsStateError reports whether err is a resource that ended in a failure state.
func IsStateError(err error) bool {
	var se *StateError
	return errors.As(err, &se)
}

// Retry calls call until it succeeds, fails with an error retryable
// rejects, has been tried tries times, or ctx ends. Before try n+1 it pauses
// pause(n); onRetry, when set, hears about each retry before its pause. It
// returns call's last error (joined with ctx's when ctx ended the wait), and
// spent reports whether the tries ran out on an error still retryable.
// Hand-written: the SDK's retryers retry one request, not an operation made
// of several or an error they don't class as retryable.
func Retry(ctx context.Context, tries int, pause func(try int) time.Duration, retryable func(error) bool,
	onRetry func(try int, err error, pause time.Duration), call func(context.Context) error) (spent bool, err error) {
	for try := 1; ; try++ {
		if err = call(ctx); err == nil || !retryable(err) {
			return false, err
		}
		if try >= tries {
			return true, err
		}
		d := pause(try)
		if onRetry != nil {
			onRetry(try, err, d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

// linearPause pauses step, 2×step, 3×step… between tries.
func linearPause(step time.Duration) func(int) time.Duration {
	return func(try int) time.Duration { return time.Duration(try) * step }
}

func oneOf(states ...string) func(string) bool {
	return func(s string) bool {
		for _, x := range states {
			if s == x {
				return true
			}
		}
		return false
	}
}
