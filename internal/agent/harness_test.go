package agent_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command/commandtest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/instancetest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

const (
	account  = instancetest.Account
	region   = instancetest.Region
	key      = instancetest.Key // its policy binds data keys to the instance that asks
	diskSize = 64 << 20
)

// world is one test's machine: an emulator for EC2 and KMS with two running
// instances, a and b, of the amicrypt-instance-store profile (the agent
// takes its identity and credentials from their metadata services), the
// fake system tools, and a temporary directory standing for /dev,
// /sys/block, /run and /proc/self/mounts.
type world struct {
	t     *testing.T
	ctx   context.Context
	srv   *emutest.Server
	a, b  instancetest.Instance
	fake  *commandtest.Fake
	paths agent.Paths
	kms   *kms.Client // the account user's: key administration
	logs  *syncBuffer
	dir   string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newWorld(t *testing.T, opts awsemu.Options) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), dir: t.TempDir(), logs: &syncBuffer{}}
	w.srv = emutest.Start(t, opts)
	// No credentials in the environment: the agent's come from IMDS.
	w.srv.PointEnv(t, "")
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_SERVICE_ENDPOINT"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	w.a, w.b = instancetest.Launch(t, w.srv), instancetest.Launch(t, w.srv)
	w.paths = agent.Paths{
		SysBlock: filepath.Join(w.dir, "sys", "block"), Dev: filepath.Join(w.dir, "dev"),
		Mapper: filepath.Join(w.dir, "dev", "mapper"), MD: filepath.Join(w.dir, "dev", "md"),
		Mounts: filepath.Join(w.dir, "mounts"), SystemdRun: filepath.Join(w.dir, "run", "systemd", "system"),
		Lock: filepath.Join(w.dir, "run", "amicrypt-agent.lock"),
	}
	for _, d := range []string{w.paths.SysBlock, w.paths.Mapper} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w.fake = commandtest.New(w.paths.Mapper, w.paths.Mounts, w.paths.SystemdRun)
	w.kms = instancetest.AdminKMS(w.ctx, w.srv)
	return w
}

// testRetries keep the tests' retries short: 4 attempts, 5 ms backoff.
func testRetries() agent.RetryOptions {
	return agent.RetryOptions{MaxAttempts: 4, MaxBackoff: 5 * time.Millisecond}
}

// onInstance is what the agent's main gives it on inst: its identity from
// the instance identity document and a KMS client signed with the
// instance role's credentials, both from inst's metadata service.
func (w *world) onInstance(inst instancetest.Instance, ro agent.RetryOptions) (agent.Identity, *kms.Client) {
	w.t.Helper()
	cfg, id, err := agent.LoadAWS(w.ctx, 10*time.Second, ro,
		awsconfig.WithEC2IMDSEndpoint(inst.IMDS), awsconfig.WithBaseEndpoint(w.srv.URL()))
	if err != nil {
		w.t.Fatalf("the agent's AWS setup on %s: %v", inst.ID, err)
	}
	if id.InstanceID != inst.ID || id.RoleName != instancetest.Role || id.AccountID != account || id.Region != region {
		w.t.Fatalf("identity from %s's metadata: %+v", inst.ID, id)
	}
	return id, kms.NewFromConfig(cfg)
}

// disk makes a blank sparse disk under dev/ and returns its path.
func (w *world) disk(name string) string {
	w.t.Helper()
	p := filepath.Join(w.paths.Dev, name)
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Truncate(p, diskSize); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// write puts bytes on a disk at off.
func (w *world) write(dev string, off int64, b []byte) {
	w.t.Helper()
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		w.t.Fatal(err)
	}
}

// config returns a valid config for disks, changed by edit.
func config(t *testing.T, disks []string, edit func(*agent.Config)) *agent.Config {
	t.Helper()
	c := &agent.Config{KMSKeyID: key, Devices: disks, Layout: agent.LayoutSingle,
		EncryptionContext: map[string]string{"team": "payments"}}
	if len(disks) > 1 {
		c.Layout = agent.LayoutEach
	}
	if edit != nil {
		edit(c)
	}
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := agent.ParseConfig(raw)
	if err != nil {
		t.Fatalf("test config: %v", err)
	}
	return parsed
}

func (w *world) mountPoint() string { return filepath.Join(w.dir, "mnt", "store") }

// agent returns an agent running on inst with cfg.
func (w *world) agent(inst instancetest.Instance, cfg *agent.Config) *agent.Agent {
	return w.agentWith(inst, cfg, testRetries())
}

func (w *world) agentWith(inst instancetest.Instance, cfg *agent.Config, ro agent.RetryOptions) *agent.Agent {
	if cfg.MountPoint == agent.DefaultMountPoint {
		cfg.MountPoint = w.mountPoint()
	}
	id, client := w.onInstance(inst, ro)
	return agent.New(agent.Options{
		Config: cfg, Identity: id, KMS: client, Runner: w.fake, Paths: w.paths,
		Log: slogJSON(w.logs),
	})
}

// logLines parses the JSON log lines written so far.
func (w *world) logLines() []map[string]any {
	w.t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(w.logs.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			w.t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// lastLog is the last log line about device.
func (w *world) lastLog(device string) map[string]any {
	w.t.Helper()
	var last map[string]any
	for _, m := range w.logLines() {
		if m["device"] == device {
			last = m
		}
	}
	if last == nil {
		w.t.Fatalf("no log line for %s in:\n%s", device, w.logs.String())
	}
	return last
}

func (w *world) calls(action string, since int) int {
	return w.srv.Calls(awsemu.AuditFilter{Service: "kms", Action: action, SinceSeq: since})
}

// checkNoSecretLeaks fails when a secret given to a tool shows up in an
// argument, the logs or errs, or when the agent left a secret buffer
// uncleared.
func (w *world) checkNoSecretLeaks(errs ...error) {
	w.t.Helper()
	logs := w.logs.String()
	for _, c := range w.fake.Calls() {
		keyed := false
		for _, a := range c.Args {
			keyed = keyed || a == "--key-file" || a == "/dev/fd/3"
		}
		if !keyed {
			continue
		}
		for i, s := range c.Secrets {
			forms := []string{string(s), hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s)}
			for _, f := range forms {
				if strings.Contains(c.String(), f) || strings.Contains(logs, f) {
					w.t.Errorf("secret of %q shows in arguments or logs", c.String())
				}
				for _, err := range errs {
					if err != nil && strings.Contains(err.Error(), f) {
						w.t.Errorf("secret of %q shows in an error", c.String())
					}
				}
			}
			if buf := c.Buffers[i]; !bytes.Equal(buf, make([]byte, len(buf))) {
				w.t.Errorf("the agent did not clear the secret it gave %q", c.String())
			}
		}
	}
}

// fileHash is a disk's bytes, to compare before and after.
func fileHash(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(sha256Sum(b))
}

// keyARN resolves an alias to its key ARN.
func (w *world) keyARN(ref string) string {
	w.t.Helper()
	out, err := w.kms.DescribeKey(w.ctx, &kms.DescribeKeyInput{KeyId: aws.String(ref)})
	if err != nil {
		w.t.Fatal(err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// newKey makes a customer key with alias.
func (w *world) newKey(alias string) string {
	w.t.Helper()
	out, err := w.kms.CreateKey(w.ctx, &kms.CreateKeyInput{Description: aws.String("test " + alias)})
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.kms.CreateAlias(w.ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: out.KeyMetadata.KeyId}); err != nil {
		w.t.Fatal(err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

func (w *world) mounts() string {
	b, _ := os.ReadFile(w.paths.Mounts)
	return string(b)
}
