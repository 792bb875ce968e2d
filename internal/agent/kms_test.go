package agent_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&smithy.GenericAPIError{Code: "ThrottlingException"}, true},
		{&smithy.GenericAPIError{Code: "RequestLimitExceeded"}, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{&smithy.GenericAPIError{Code: "AccessDeniedException"}, false},
		{&smithy.GenericAPIError{Code: "DisabledException"}, false},
		{&smithy.GenericAPIError{Code: "NotFoundException"}, false},
		{&smithy.GenericAPIError{Code: "InvalidCiphertextException"}, false},
		{&smithy.GenericAPIError{Code: "IncorrectKeyException"}, false},
		{&smithy.GenericAPIError{Code: "KMSInvalidStateException"}, false},
	}
	for _, tt := range tests {
		if got := agent.Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// denyPolicy keeps the account's admin rights and denies the data-key
// operations to everyone.
const denyPolicy = `{"Version":"2012-10-17","Statement":[
 {"Sid":"admin","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"},
 {"Sid":"no data keys","Effect":"Deny","Principal":"*","Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*"}]}`

func (w *world) disableKey(ref string) {
	w.t.Helper()
	if _, err := w.kms.DisableKey(w.ctx, &kms.DisableKeyInput{KeyId: aws.String(w.keyARN(ref))}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) scheduleDeletion(ref string) {
	w.t.Helper()
	if _, err := w.kms.ScheduleKeyDeletion(w.ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(w.keyARN(ref)), PendingWindowInDays: aws.Int32(7)}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) denyDataKeys(ref string) {
	w.t.Helper()
	if _, err := w.kms.PutKeyPolicy(w.ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(w.keyARN(ref)), Policy: aws.String(denyPolicy), PolicyName: aws.String("default")}); err != nil {
		w.t.Fatal(err)
	}
}

func throttle(action string, nth ...int) *awsemu.FaultProfile {
	return &awsemu.FaultProfile{Rules: []awsemu.FaultRule{{Kind: awsemu.FaultThrottle, Service: "kms", Action: action, Nth: nth}}}
}

// The retry / no-retry table of a first boot: transient failures are
// retried a bounded number of times; refusals that retrying can't change
// are not. Either way a failure writes nothing and mounts nothing.
func TestUpBlankFailClosed(t *testing.T) {
	tests := []struct {
		name      string
		faults    *awsemu.FaultProfile
		prepare   func(w *world)
		keyID     string
		wantCalls int      // GenerateDataKey calls KMS saw
		wantErr   []string // empty: Up succeeds
	}{
		{name: "throttled twice, then served", faults: throttle("GenerateDataKey", 1, 2), wantCalls: 3},
		{name: "throttled always", faults: throttle("GenerateDataKey"), wantCalls: 4,
			wantErr: []string{"kept failing after 4 attempts", "ThrottlingException"}},
		{name: "internal error always", faults: &awsemu.FaultProfile{Rules: []awsemu.FaultRule{{Kind: awsemu.FaultInternalError, Service: "kms"}}}, wantCalls: 4,
			wantErr: []string{"4 attempts", "KMSInternalException"}},
		{name: "disabled key", prepare: func(w *world) { w.disableKey(key) }, wantCalls: 1,
			wantErr: []string{"DisabledException", "the key is disabled", "aws kms enable-key --key-id alias/amicrypt-instance-store"}},
		{name: "pending deletion", prepare: func(w *world) { w.scheduleDeletion(key) }, wantCalls: 1,
			wantErr: []string{"KMSInvalidStateException", "cancel-key-deletion"}},
		{name: "no such alias", keyID: "alias/not-here", wantCalls: 1,
			wantErr: []string{"NotFoundException", "alias/not-here", "does not exist in account 111111111111 region us-east-1", "create the alias there"}},
		{name: "key policy denies", prepare: func(w *world) { w.denyDataKeys(key) }, wantCalls: 1,
			wantErr: []string{"AccessDeniedException",
				"the key policy of the key behind alias/amicrypt-instance-store (arn:aws:kms:us-east-1:111111111111:alias/amicrypt-instance-store) needs a statement allowing kms:GenerateDataKey to arn:aws:iam::111111111111:role/amicrypt-instance-store with condition StringEquals kms:EncryptionContext:amicrypt:instance-arn",
				"role session arn:aws:sts::111111111111:assumed-role/amicrypt-instance-store/{a}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, awsemu.Options{Faults: tt.faults})
			if tt.prepare != nil {
				tt.prepare(w)
			}
			mark := w.srv.Mark()
			dev := w.disk("nvme1n1")
			hash := fileHash(t, dev)
			cfg := config(t, []string{dev}, func(c *agent.Config) {
				if tt.keyID != "" {
					c.KMSKeyID = tt.keyID
				}
			})
			err := w.agent(w.a, cfg).Up(w.ctx)
			if got := w.calls("GenerateDataKey", mark); got != tt.wantCalls {
				t.Errorf("GenerateDataKey calls %d, want %d", got, tt.wantCalls)
			}
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Up: %v", err)
				}
				formatted(t, w, dev, w.a)
				return
			}
			if err == nil {
				t.Fatal("Up succeeded")
			}
			wants := append([]string{dev, "nothing was written", w.a.ID, w.a.ARN()}, tt.wantErr...)
			for _, want := range wants {
				want = strings.ReplaceAll(want, "{a}", w.a.ID)
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			var kerr *agent.KMSError
			if !errors.As(err, &kerr) || kerr.Op != "GenerateDataKey" {
				t.Errorf("error is not a KMSError for GenerateDataKey: %v", err)
			}
			if len(w.fake.Writes()) != 0 || fileHash(t, dev) != hash {
				t.Errorf("written before the data key: %v", w.fake.Writes())
			}
			if w.mounts() != "" {
				t.Errorf("mounted: %q", w.mounts())
			}
			if got := w.lastLog(dev); got["outcome"] != agent.OutcomeFailed || got["level"] != "ERROR" {
				t.Errorf("log line %v", got)
			}
			w.checkNoSecretLeaks(err)
		})
	}
}

// After a reboot KMS failing must never get a volume of ours reformatted,
// wipe_foreign or not.
func TestUpRebootFailClosed(t *testing.T) {
	tests := []struct {
		name      string
		faults    *awsemu.FaultProfile
		prepare   func(w *world)
		wantCalls int
		wantErr   []string
	}{
		{name: "disabled key", prepare: func(w *world) { w.disableKey(key) }, wantCalls: 1, wantErr: []string{"kms:Decrypt", "DisabledException"}},
		{name: "key policy denies", prepare: func(w *world) { w.denyDataKeys(key) }, wantCalls: 1,
			wantErr: []string{"needs a statement allowing kms:Decrypt to arn:aws:iam::111111111111:role/amicrypt-instance-store"}},
		{name: "throttled always", faults: throttle("Decrypt"), wantCalls: 4, wantErr: []string{"4 attempts"}},
		{name: "throttled once", faults: throttle("Decrypt", 1), wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, awsemu.Options{Faults: tt.faults})
			dev := w.disk("nvme1n1")
			cfg := config(t, []string{dev}, func(c *agent.Config) { c.WipeForeign = true })
			if err := w.agent(w.a, cfg).Up(w.ctx); err != nil {
				t.Fatal(err)
			}
			w.fake.Reboot()
			if tt.prepare != nil {
				tt.prepare(w)
			}
			before, hash, writes, mark := w.fake.Volume(dev), fileHash(t, dev), len(w.fake.Writes()), w.srv.Mark()
			err := w.agent(w.a, cfg).Up(w.ctx)
			if got := w.calls("Decrypt", mark); got != tt.wantCalls {
				t.Errorf("Decrypt calls %d, want %d", got, tt.wantCalls)
			}
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Up: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Up succeeded")
			}
			for _, want := range append([]string{dev, w.keyARN(key)}, tt.wantErr...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			after := w.fake.Volume(dev)
			if len(w.fake.Writes()) != writes || fileHash(t, dev) != hash || after.UUID != before.UUID || string(after.Tokens[0]) != string(before.Tokens[0]) {
				t.Errorf("a volume of ours changed because KMS failed: %v", w.fake.Writes()[writes:])
			}
			if w.mounts() != "" {
				t.Errorf("mounted: %q", w.mounts())
			}
		})
	}
}

func TestKMSTimeout(t *testing.T) {
	w := newWorld(t, awsemu.Options{Faults: throttle("GenerateDataKey")})
	dev := w.disk("nvme1n1")
	c := config(t, []string{dev}, func(c *agent.Config) { c.KMSTimeout = agent.Duration(time.Second) })
	a := w.agentWith(w.a, c, agent.RetryOptions{MaxAttempts: 1000, MaxBackoff: 20 * time.Millisecond})
	start := time.Now()
	err := a.Up(w.ctx)
	if err == nil || !strings.Contains(err.Error(), "did not answer within kms_timeout 1s") {
		t.Fatalf("Up: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Up took %s with kms_timeout 1s", took)
	}
	if n := w.calls("GenerateDataKey", 0); n < 2 {
		t.Errorf("%d GenerateDataKey calls: the call was not retried within the timeout", n)
	}
	if len(w.fake.Writes()) != 0 {
		t.Error("written after a timeout")
	}
}

func TestAccessDeniedWithoutInstanceProfile(t *testing.T) {
	w := newWorld(t, awsemu.Options{})
	w.denyDataKeys(key)
	dev := w.disk("nvme1n1")
	cfg := config(t, []string{dev}, nil)
	cfg.MountPoint = w.mountPoint()
	// Credentials from elsewhere than an instance profile (the account
	// user's here): IMDS names no role, and the message says so.
	id, _ := w.onInstance(w.a, testRetries())
	id.RoleName = ""
	a := agent.New(agent.Options{Config: cfg, Identity: id, KMS: w.kms, Runner: w.fake, Paths: w.paths, Log: slogJSON(w.logs)})
	err := a.Up(w.ctx)
	if err == nil || !strings.Contains(err.Error(), "IMDS shows no instance profile role: attach an instance profile") || strings.Contains(err.Error(), "role session") {
		t.Fatalf("Up: %v", err)
	}
}

// kms_timeout is the total for a run: once the first disk used it up, the
// second disk's key is not even asked for.
func TestKMSTimeoutIsTotal(t *testing.T) {
	w := newWorld(t, awsemu.Options{Faults: throttle("GenerateDataKey")})
	disks := []string{w.disk("nvme1n1"), w.disk("nvme2n1")}
	c := config(t, disks, func(c *agent.Config) { c.KMSTimeout = agent.Duration(time.Second) })
	a := w.agentWith(w.a, c, agent.RetryOptions{MaxAttempts: 1000, MaxBackoff: 20 * time.Millisecond})
	err := a.Up(w.ctx)
	for _, d := range disks {
		if !strings.Contains(err.Error(), d+": no new key") {
			t.Errorf("%s did not fail for want of a key: %v", d, err)
		}
	}
	uuids := map[string]bool{}
	for _, e := range w.srv.Emulator().Audit(awsemu.AuditFilter{Service: "kms", Action: "GenerateDataKey"}) {
		uuids[e.Params["EncryptionContext"]] = true
	}
	if len(uuids) != 1 {
		t.Errorf("KMS was asked for %d disks' keys, want 1: the budget is for the whole run", len(uuids))
	}
	if len(w.fake.Writes()) != 0 {
		t.Error("written without a key")
	}
}
