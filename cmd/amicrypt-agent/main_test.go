package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command/commandtest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/instancetest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

const (
	account = instancetest.Account
	region  = instancetest.Region
	key     = instancetest.Key
)

// harness runs the agent's main the way systemd does on an instance: the
// emulator for KMS and EC2, two running instances with the
// amicrypt-instance-store profile, whose own metadata services give the
// agent its identity and credentials (no AWS credentials in the
// environment), and files standing for disks.
type harness struct {
	t      *testing.T
	ctx    context.Context
	srv    *emutest.Server
	a, b   instancetest.Instance
	imds   *imdsRelay // what the agent reaches as its metadata service: a's, or b's
	dir    string
	paths  agent.Paths
	config string
	kms    *kms.Client // the account user's client: key administration only
	mark   int         // audit position after the setup
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, ctx: context.Background(), dir: t.TempDir()}
	h.srv = emutest.Start(t, awsemu.Options{})
	h.srv.PointEnv(t, "") // the endpoint, and no credentials: they come from IMDS
	h.a, h.b = instancetest.Launch(t, h.srv), instancetest.Launch(t, h.srv)
	h.imds = startIMDSRelay(t, h.a)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", h.imds.URL)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	h.paths = agent.Paths{
		SysBlock: filepath.Join(h.dir, "sys", "block"), Dev: filepath.Join(h.dir, "dev"),
		Mapper: filepath.Join(h.dir, "dev", "mapper"), MD: filepath.Join(h.dir, "dev", "md"),
		Mounts: filepath.Join(h.dir, "mounts"), SystemdRun: filepath.Join(h.dir, "run", "systemd", "system"),
		Lock: filepath.Join(h.dir, "run", "amicrypt-agent.lock"),
	}
	for _, d := range []string{h.paths.Mapper, h.paths.SysBlock} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.config = filepath.Join(h.dir, "instance-store.json")
	h.kms = instancetest.AdminKMS(h.ctx, h.srv)
	h.mark = h.srv.Mark()
	return h
}

func (h *harness) disk(name string) string {
	h.t.Helper()
	p := filepath.Join(h.paths.Dev, name)
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Truncate(p, 64<<20); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *harness) writeConfig(devices ...string) {
	h.t.Helper()
	cfg := map[string]any{
		"kms_key_id": key, "devices": devices, "layout": "single",
		"mount_point": filepath.Join(h.dir, "mnt"), "encryption_context": map[string]string{"team": "payments"}, "kms_timeout": "20s",
	}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(h.config, b, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// run runs amicrypt-agent with args and returns its exit status and output.
func (h *harness) run(runner command.Runner, args ...string) (int, string, string) {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(h.ctx, append([]string{"-config", h.config}, args...), env{stdout: &stdout, stderr: &stderr, paths: h.paths, runner: runner,
		retry: agent.RetryOptions{MaxAttempts: 3, MaxBackoff: 10 * time.Millisecond}})
	return code, stdout.String(), stderr.String()
}

// logLine returns the JSON log line of action about dev.
func logLine(t *testing.T, stderr, action, dev string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["action"] == action && m["device"] == dev {
			return m
		}
	}
	t.Fatalf("no %s log line for %s in:\n%s", action, dev, stderr)
	return nil
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: amicrypt-agent"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"rewrap"}, 2, "-to KEY is required"},
		{[]string{"up", "extra"}, 2, "unexpected arguments"},
		{[]string{"status", "-bogus"}, 2, "flag provided but not defined"},
		{[]string{"-config", "/nonexistent/x.json", "up"}, 1, "amicrypt-instance-store provisioner writes it"},
		{[]string{"help"}, 0, "kms_key_id (required)"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, env{stdout: &stdout, stderr: &stderr, paths: agent.DefaultPaths(), runner: commandtest.New("", "", "")})
		if code != tt.code || !strings.Contains(stderr.String()+stdout.String(), tt.want) {
			t.Errorf("run(%q) = %d, %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.want)
		}
	}
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"version"}, env{stdout: &stdout, stderr: io.Discard}); code != 0 || !strings.HasPrefix(stdout.String(), "amicrypt-agent ") {
		t.Errorf("version: %d %q", code, stdout.String())
	}
}

// TestUpThroughIMDS runs up, status and verify through main with the fake
// tools: the identity comes from IMDSv2 (never v1), the context from it.
func TestUpThroughIMDS(t *testing.T) {
	h := newHarness(t)
	dev := h.disk("nvme1n1")
	h.writeConfig(dev)
	fake := commandtest.New(h.paths.Mapper, h.paths.Mounts, h.paths.SystemdRun)

	code, _, stderr := h.run(fake, "up")
	if code != 0 {
		t.Fatalf("up: exit %d\n%s", code, stderr)
	}
	line := logLine(t, stderr, "up", dev)
	if line["outcome"] != "formatted" || line["instance"] != h.a.ID {
		t.Errorf("log line %v", line)
	}
	// KMS saw the instance's own role session, with a context naming it.
	gdk := instancetest.CloudTrail(t, h.srv, "GenerateDataKey", h.mark)
	if len(gdk) != 1 || gdk[0].AWSRegion != region || gdk[0].UserIdentity.ARN != h.a.SessionARN() ||
		instancetest.Context(gdk[0])[agent.ContextInstanceARN] != h.a.ARN() || gdk[0].ErrorCode != "" {
		t.Errorf("GenerateDataKey as CloudTrail recorded it: %+v", gdk)
	}
	if tokens, v1 := h.imds.counts(); tokens == 0 || v1 != 0 {
		t.Errorf("IMDS: %d tokens, %d requests without a token; want IMDSv2 only", tokens, v1)
	}

	code, stdout, stderr := h.run(fake, "status", "-json")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, stderr)
	}
	var rep agent.StatusReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("status -json: %v\n%s", err, stdout)
	}
	if len(rep.Disks) != 1 || rep.Disks[0].State != agent.StateOurs || !rep.Disks[0].Open || !rep.Disks[0].Mounted {
		t.Errorf("status: %s", stdout)
	}
	if code, _, stderr := h.run(fake, "verify"); code != 0 {
		t.Errorf("verify: exit %d\n%s", code, stderr)
	}
	if dec := instancetest.CloudTrail(t, h.srv, "Decrypt", h.mark); len(dec) != 1 || dec[0].UserIdentity.ARN != h.a.SessionARN() {
		t.Errorf("verify's Decrypt as CloudTrail recorded it: %+v", dec)
	}
	if f := instancetest.InstanceContextFindings(h.srv, h.mark); len(f) != 0 {
		t.Errorf("invariant checker: %+v", f)
	}
}

func TestIMDSv1Refused(t *testing.T) {
	h := newHarness(t)
	dev := h.disk("nvme1n1")
	h.writeConfig(dev)
	// An IMDS that hands out no tokens: the agent must not fall back to v1.
	h.imds.setV1Only(true)
	fake := commandtest.New(h.paths.Mapper, h.paths.Mounts, h.paths.SystemdRun)
	code, _, stderr := h.run(fake, "up")
	if code != 1 || !strings.Contains(stderr, "IMDSv2") {
		t.Fatalf("up without IMDSv2: exit %d\n%s", code, stderr)
	}
	if _, v1 := h.imds.counts(); v1 != 0 {
		t.Errorf("%d IMDS requests without a token", v1)
	}
	if len(fake.Writes()) != 0 || h.srv.Calls(awsemu.AuditFilter{Service: "kms", SinceSeq: h.mark}) != 0 {
		t.Error("the agent went on without an identity")
	}
}

func hashFile(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := sha256.New()
	if _, err := io.Copy(s, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(s.Sum(nil))
}

func (h *harness) disableKey(ref string) {
	h.t.Helper()
	out, err := h.kms.DescribeKey(h.ctx, &kms.DescribeKeyInput{KeyId: aws.String(ref)})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.kms.DisableKey(h.ctx, &kms.DisableKeyInput{KeyId: out.KeyMetadata.Arn}); err != nil {
		h.t.Fatal(err)
	}
}
