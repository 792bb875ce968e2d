package copy

import (
	"context"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// TestSDKBackoffOnThePollsClock: when AWS_POLL_DELAY_SECONDS says the
// clock runs 100 times faster than AWS's, the SDK's backoff ceiling (20 s)
// shrinks with it; at the default delay it stays.
func TestSDKBackoffOnThePollsClock(t *testing.T) {
	emu(t, awsemu.Options{})
	throttled := &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}
	for _, tc := range []struct {
		name    string
		poll    *awsauth.PollingConfig
		ceiling time.Duration
	}{
		{"scaled clock", awsauth.NewPolling(150*time.Millisecond, 0), 200 * time.Millisecond},
		{"AWS's clock", awsauth.NewPolling(awsauth.DefaultPollDelay, 0), sdkMaxBackoff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPP(t, baseConfig(t))
			sess, err := newSession(context.Background(), &p.config.AccessConfig, tc.poll, "us-east-1")
			if err != nil {
				t.Fatal(err)
			}
			r := sess.base.Retryer()
			var longest time.Duration
			for range 50 {
				d, err := r.RetryDelay(10, throttled)
				if err != nil {
					t.Fatal(err)
				}
				longest = max(longest, d)
			}
			if longest > tc.ceiling || longest < tc.ceiling/10 {
				t.Errorf("longest of 50 pauses before the 10th retry: %s, want up to %s", longest, tc.ceiling)
			}
		})
	}
}
