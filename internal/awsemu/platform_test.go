package awsemu_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
func TestFaultInjection(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		rules   []awsemu.FaultRule
		call    func(cfg aws.Config) error
		calls   int
		want    []string // error code per call, "" for success (or the EC2 side's own answer)
		status  int      // HTTP status of the injected errors
		service string
	}{
		{
			name:  "throttle the 2nd KMS ListKeys",
			rules: []awsemu.FaultRule{{Kind: awsemu.FaultThrottle, Action: "ListKeys", Nth: []int{2}}},
			call: func(cfg aws.Config) error {
				_, err := kms.NewFromConfig(cfg).ListKeys(ctx, &kms.ListKeysInput{})
				return err
			},
			calls: 3, want: []string{"", "ThrottlingException", ""}, status: 400,
		},
		{
			name:  "internal error on every 2nd EC2 DescribeRegions",
			rules: []awsemu.FaultRule{{Kind: awsemu.FaultInternalError, Action: "Describe*", Every: 2}},
			call: func(cfg aws.Config) error {
				_, err := ec2.NewFromConfig(cfg).DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
				return err
			},
			calls: 4, want: []string{"*", "InternalError", "*", "InternalError"}, status: 500,
		},
		{
			name:  "EC2 throttling is a 503 RequestLimitExceeded, only for the named account",
			rules: []awsemu.FaultRule{{Kind: awsemu.FaultThrottle, Service: "ec2", Account: "111111111111", Max: 1}},
			call: func(cfg aws.Config) error {
				_, err := ec2.NewFromConfig(cfg).DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
				return err
			},
			calls: 2, want: []string{"RequestLimitExceeded", "*"}, status: 503,
		},
		{
			name:  "STS internal error",
			rules: []awsemu.FaultRule{{Kind: awsemu.FaultInternalError, Action: "GetCallerIdentity", Probability: 1}},
			call: func(cfg aws.Config) error {
				_, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
				return err
			},
			calls: 1, want: []string{"InternalFailure"}, status: 500,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := emutest.Start(t, awsemu.Options{Faults: &awsemu.FaultProfile{Rules: tc.rules}})
			cfg := srv.Config(ctx, "111111111111", "us-east-1")
			cfg.RetryMaxAttempts = 1
			for i := 0; i < tc.calls; i++ {
				err := tc.call(cfg)
				got := emutest.APICode(err)
				want := tc.want[i]
				if want == "*" { // not injected: whatever the handler answers, but no injected code
					if got == "RequestLimitExceeded" || got == "InternalError" {
						t.Fatalf("call %d: injected %s unexpectedly", i+1, got)
					}
					continue
				}
				if got != want {
					t.Fatalf("call %d: got %q (%v), want %q", i+1, got, err, want)
				}
				if want != "" && httpStatus(err) != tc.status {
					t.Fatalf("call %d: HTTP %d, want %d", i+1, httpStatus(err), tc.status)
				}
			}
		})
	}
}
func TestRequestRateLimits(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	srv := emutest.Start(t, awsemu.Options{Now: clock, Limits: awsemu.Limits{DescribeRate: 1, DescribeBurst: 2, MutateRate: 1, MutateBurst: 1}})
	c := emutest.KMSClient(ctx, srv, "111111111111", "us-east-1")
	other := emutest.KMSClient(ctx, srv, "222222222222", "us-east-1")
	list := func(c *kms.Client) error { _, err := c.ListKeys(ctx, &kms.ListKeysInput{}); return err }
	encrypt := func(c *kms.Client) error {
		_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/amicrypt-build"), Plaintext: []byte("x")})
		return err
	}
	steps := []struct {
		name string
		call func() error
		want string
	}{
		{"describe 1 (burst)", func() error { return list(c) }, ""},
		{"describe 2 (burst)", func() error { return list(c) }, ""},
		{"describe 3 over the bucket", func() error { return list(c) }, "ThrottlingException"},
		{"mutating calls have their own bucket", func() error { return encrypt(c) }, ""},
		{"mutate 2 over the bucket", func() error { return encrypt(c) }, "ThrottlingException"},
		{"another account has its own buckets", func() error { return list(other) }, ""},
		{"refilled after a second", func() error { now = now.Add(time.Second); return list(c) }, ""},
	}
	for _, s := range steps {
		emutest.WantCode(t, s.name, s.call(), s.want)
	}

	// EC2 throttling answers HTTP 503 RequestLimitExceeded.
	cfg := srv.Config(ctx, "333333333333", "us-east-1")
	cfg.RetryMaxAttempts = 1
	e2 := ec2.NewFromConfig(cfg)
	var last error
	for range 3 {
		_, last = e2.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	}
	emutest.WantCode(t, "EC2 over the describe bucket", last, "RequestLimitExceeded")
	if httpStatus(last) != 503 || !strings.Contains(last.Error(), "Request limit exceeded.") {
		t.Fatalf("EC2 throttling: HTTP %d %v", httpStatus(last), last)
	}
}

// Limits.EmulatedTime: the buckets refill per emulated second, so at time
// scale 0.01 a second's refill takes 10 ms of wall time.
func TestRequestRateLimitsOnEmulatedTime(t *testing.T) {
	ctx := context.Background()
	for _, emulated := range []bool{false, true} {
		t.Run(fmt.Sprintf("emulated=%v", emulated), func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var mu sync.Mutex
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			srv := emutest.Start(t, awsemu.Options{Now: clock, TimeScale: 0.01,
				Limits: awsemu.Limits{DescribeRate: 1, DescribeBurst: 1, EmulatedTime: emulated}})
			c := emutest.KMSClient(ctx, srv, "111111111111", "us-east-1")
			list := func() error { _, err := c.ListKeys(ctx, &kms.ListKeysInput{}); return err }
			emutest.WantCode(t, "first call (burst)", list(), "")
			emutest.WantCode(t, "second call at once", list(), "ThrottlingException")
			mu.Lock()
			now = now.Add(10 * time.Millisecond) // one emulated second at scale 0.01
			mu.Unlock()
			want := "ThrottlingException"
			if emulated {
				want = ""
			}
			emutest.WantCode(t, "after 10 ms of wall time", list(), want)
		})
	}
}

func TestAuditAndAdmin(t *testing.T) {
	ctx := context.Background()
	srv := emutest.Start(t, awsemu.Options{})
	c := emutest.KMSClient(ctx, srv, "111111111111", "us-west-2")
	key := emutest.KeyARNOf(t, ctx, c, "alias/amicrypt-build")
	if _, err := c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(key), GranteePrincipal: aws.String("222222222222"), Operations: []types.GrantOperation{"Decrypt"}}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/nope"), Plaintext: []byte("top secret")})
	emutest.WantCode(t, "Encrypt unknown alias", err, "NotFoundException")

	entries := srv.Emulator().Audit(awsemu.AuditFilter{Account: "111111111111", Service: "kms"})
	if len(entries) != 3 {
		t.Fatalf("%d audit entries: %+v", len(entries), entries)
	}
	g := entries[1]
	if g.Action != "CreateGrant" || g.Outcome != "ok" || g.Region != "us-west-2" || g.Principal != "arn:aws:iam::111111111111:user/packer" ||
		g.Params["GranteePrincipal"] != "222222222222" || g.Notes["GrantId"] == "" || g.Notes["KeyArn"] != key || g.HTTPStatus != 200 {
		t.Fatalf("CreateGrant entry: %+v", g)
	}
	enc := entries[2]
	if enc.Outcome != "NotFoundException" || enc.HTTPStatus != 400 || enc.Params["Plaintext"] != "" {
		t.Fatalf("failed Encrypt entry (plaintext must not be recorded): %+v", enc)
	}
	if n := len(srv.Emulator().Audit(awsemu.AuditFilter{Outcome: "error"})); n != 1 {
		t.Fatalf("%d error entries", n)
	}

	get := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(srv.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	var audit []awsemu.AuditEntry
	get("/_emu/audit?action=CreateGrant", &audit)
	if len(audit) != 1 || audit[0].Notes["GrantId"] != g.Notes["GrantId"] {
		t.Fatalf("admin audit: %+v", audit)
	}
	var counts []awsemu.CallCount
	get("/_emu/counts?service=kms", &counts)
	found := false
	for _, cc := range counts {
		if cc.Action == "Encrypt" && cc.Account == "111111111111" && cc.Region == "us-west-2" && cc.Calls == 1 && cc.Errors == 1 {
			found = true
		}
	}
	if !found {
		t.Fatalf("counts: %+v", counts)
	}
	var grants []awsemu.GrantInfo
	get("/_emu/grants", &grants)
	if len(grants) != 1 || grants[0].GranteePrincipal != "arn:aws:iam::222222222222:root" || grants[0].KeyAccount != "111111111111" {
		t.Fatalf("grants: %+v", grants)
	}
	var state map[string]json.RawMessage
	get("/_emu/state", &state)
	for _, k := range []string{"kms", "sts", "ec2", "audit"} {
		if len(state[k]) == 0 {
			t.Fatalf("state lacks %s", k)
		}
	}
	// The invariant checker answers through the same endpoint.
	var report map[string]any
	get("/_emu/check?principal=arn:aws:iam::111111111111:user/packer", &report)
	if len(report) == 0 {
		t.Fatal("empty check report")
	}
	before := srv.Emulator().Now()
	adv, err := http.Post(srv.URL()+"/_emu/advance?by=2h", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	adv.Body.Close()
	if adv.StatusCode != http.StatusOK || srv.Emulator().Now().Sub(before) < 2*time.Hour {
		t.Fatalf("advance: %d", adv.StatusCode)
	}
	// The model endpoint reports what the emulator was started with and the
	// defaults it filled in.
	var model awsemu.Model
	get("/_emu/model", &model)
	if model.TimeScale != 0.001 || model.CrossRegionFactor != 3 || model.Limits.ConcurrentImageCopies != 50 ||
		model.Latency[awsemu.LatencySnapshotCopy] != (awsemu.LatencySpec{Base: 45 * time.Second, PerGiB: 20 * time.Second}) {
		t.Fatalf("model: %+v", model)
	}
	// A POST-only endpoint refuses GET and says how to call it.
	notPost, err := http.Get(srv.URL() + "/_emu/advance?by=1h")
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(notPost.Body)
	notPost.Body.Close()
	if notPost.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(msg), "use POST /_emu/advance?by=DURATION") {
		t.Fatalf("GET advance: %d %s", notPost.StatusCode, msg)
	}
	resp, err := http.Get(srv.URL() + "/_emu/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown admin path: %d", resp.StatusCode)
	}
}
func TestStateFileRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	raw, err := awsemu.Listen("127.0.0.1:0", awsemu.Options{StatePath: path, TimeScale: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	srv := &emutest.Server{Server: raw}
	c := emutest.KMSClient(ctx, srv, "222222222222", "us-east-1")
	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("survives restarts")})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: created.KeyMetadata.KeyId, Plaintext: []byte("persisted")})
	if err != nil {
		t.Fatal(err)
	}
	role, err := sts.NewFromConfig(srv.Config(ctx, "111111111111", "us-east-1")).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::222222222222:role/amicrypt-copy"), RoleSessionName: aws.String("persist")})
	if err != nil {
		t.Fatal(err)
	}
	srv.Emulator().Advance(time.Minute)
	auditBefore := len(srv.Emulator().Audit(awsemu.AuditFilter{}))
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	// A crash while appending leaves a torn last line; it is dropped.
	f, err := os.OpenFile(path+".audit.jsonl", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"seq":99,"act`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	raw2, err := awsemu.Listen("127.0.0.1:0", awsemu.Options{StatePath: path, TimeScale: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	srv2 := &emutest.Server{Server: raw2}
	defer srv2.Close()
	c2 := emutest.KMSClient(ctx, srv2, "222222222222", "us-east-1")
	dec, err := c2.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "persisted" {
		t.Fatalf("Decrypt after restart: %v", err)
	}
	// The session from before the restart is still valid.
	cfg := srv2.Config(ctx, "222222222222", "us-east-1")
	cfg.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: aws.ToString(role.Credentials.AccessKeyId), SecretAccessKey: aws.ToString(role.Credentials.SecretAccessKey), SessionToken: aws.ToString(role.Credentials.SessionToken)}, nil
	})
	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || !strings.Contains(aws.ToString(id.Arn), "assumed-role/amicrypt-copy/persist") {
		t.Fatalf("session after restart: %v", err)
	}
	if got := len(srv2.Emulator().Audit(awsemu.AuditFilter{})); got != auditBefore+2 {
		t.Fatalf("audit after restart has %d entries, want %d", got, auditBefore+2)
	}
	// Entries appended after the repair survive the next restart too.
	if err := srv2.Emulator().SaveState(); err != nil {
		t.Fatal(err)
	}
	reloaded, err := auditLogEntries(path + ".audit.jsonl")
	if err != nil || len(reloaded) != auditBefore+2 || reloaded[len(reloaded)-1].Action != "GetCallerIdentity" {
		t.Fatalf("audit log after repair and append: %v, %d entries", err, len(reloaded))
	}
	if time.Until(srv2.Emulator().Now()) < 50*time.Second {
		t.Fatal("the clock offset was not restored")
	}
}
func TestListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:4566", "example.com:80"} {
		if _, err := awsemu.Listen(addr, awsemu.Options{}); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: got %v, want a loopback error", addr, err)
		}
	}
}

// auditLogEntries reads an audit log (one JSON entry per line).
func auditLogEntries(path string) ([]awsemu.AuditEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []awsemu.AuditEntry
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		var a awsemu.AuditEntry
		if err := dec.Decode(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// TestHoldAndRelease: a held action blocks until released, others pass,
// and GET /_emu/held shows the waiting call.
func TestHoldAndRelease(t *testing.T) {
	srv := emutest.Start(t, awsemu.Options{})
	ctx := context.Background()
	post := func(path string) map[string]any {
		t.Helper()
		resp, err := http.Post(srv.URL()+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: HTTP %d %v %v", path, resp.StatusCode, out, err)
		}
		return out
	}
	held := func() []map[string]any {
		t.Helper()
		resp, err := http.Get(srv.URL() + "/_emu/held")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	id := post("/_emu/hold?action=DescribeKey&account=111111111111")["id"].(string)
	c := emutest.KMSClient(ctx, srv, "111111111111", "us-east-1")
	done := make(chan error, 1)
	go func() {
		_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-build")})
		done <- err
	}()
	emutest.Poll(t, "the call to be held", func() (any, bool) {
		h := held()
		return h, len(h) == 1 && h[0]["waiting"].(float64) == 1
	})
	// Another account's call, and another action, are not held.
	if _, err := emutest.KMSClient(ctx, srv, "222222222222", "us-east-1").DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-target")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListAliases(ctx, &kms.ListAliasesInput{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("the held call returned before release: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	post("/_emu/release?id=" + id)
	if err := <-done; err != nil {
		t.Fatalf("released call: %v", err)
	}
	if h := held(); len(h) != 0 {
		t.Fatalf("holds after release: %v", h)
	}
}

// TestHostileBodies: a body over the limit is refused whole (413), and a
// body shorter than its Content-Length ends with the read timeout, as an
// AWS-shaped error rather than a connection held open.
func TestHostileBodies(t *testing.T) {
	srv := emutest.Start(t, awsemu.Options{ReadTimeout: 300 * time.Millisecond})
	big := strings.NewReader("Action=DescribeImages&Version=2016-11-15&X=" + strings.Repeat("a", 8<<20))
	resp, err := http.Post(srv.URL()+"/", "application/x-www-form-urlencoded", big)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "RequestEntityTooLarge") {
		t.Fatalf("oversized body: HTTP %d %s", resp.StatusCode, body)
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nAction=Describe")
	// The client's own deadline is far past the server's read timeout: an
	// answer before it is the server's.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	answer, err := io.ReadAll(conn)
	if err != nil || !strings.HasPrefix(string(answer), "HTTP/1.1 400") || !strings.Contains(string(answer), "RequestTimeout") {
		t.Fatalf("short body: %v, answered %q", err, answer)
	}
}

// CallLatency holds every API call for its emulated time, scaled, before
// it is served; the model endpoint reports it. Admin endpoints answer at
// once.
func TestCallLatency(t *testing.T) {
	ctx := context.Background()
	srv := emutest.Start(t, awsemu.Options{TimeScale: 0.1, CallLatency: 300 * time.Millisecond})
	if got := srv.Emulator().Model().Latency[awsemu.LatencyAPICall]; got != (awsemu.LatencySpec{Base: 300 * time.Millisecond}) {
		t.Fatalf("model api-call latency %+v, want base 300ms", got)
	}
	c := emutest.KMSClient(ctx, srv, "222222222222", "us-east-1")
	mark := srv.Mark()
	start := time.Now()
	for range 3 {
		if _, err := c.ListAliases(ctx, &kms.ListAliasesInput{}); err != nil {
			t.Fatal(err)
		}
	}
	// 3 calls one after the other: at least 3 × 300ms × 0.1 of wall time.
	if took := time.Since(start); took < 90*time.Millisecond {
		t.Fatalf("3 calls took %v, want at least 90ms (3 × 30ms)", took)
	}
	if n := srv.Calls(awsemu.AuditFilter{Action: "ListAliases", SinceSeq: mark}); n != 3 {
		t.Fatalf("audit has %d ListAliases, want 3", n)
	}

	plain := emutest.Start(t, awsemu.Options{TimeScale: 0.1})
	if got := plain.Emulator().Model().Latency[awsemu.LatencyAPICall]; got != (awsemu.LatencySpec{}) {
		t.Fatalf("default api-call latency %+v, want none", got)
	}
}
