//go:build vm

package vmtest_test

// The amicrypt-agent VM suite: the real agent binary in a real guest
// kernel, with real dm-crypt on an NVMe instance-store disk, as an EC2
// instance of the in-process AWS emulator. The guest reaches only two
// loopback services: its instance's metadata service (as 169.254.169.254)
// and the emulator (as 169.254.0.10:4566). No AWS credentials are given to
// the guest: the agent takes its identity and the instance role's
// credentials from the metadata service, and the key's policy lets that
// role use data keys only with a context naming the instance that asks.

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/agentconfig"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/instancetest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/vmtest"
)

const (
	agentPkg   = "github.com/amicrypt/packer-plugin-amicrypt/cmd/amicrypt-agent"
	mountPoint = agentconfig.DefaultMountPoint
	diskSize   = 64 << 20 // a 64 MiB instance-store disk
)

// suite is one emulator world for agent boots: the agent binary, two
// running instances a and b with the amicrypt-instance-store profile, and
// the account user's KMS client (key administration only).
type suite struct {
	assets *vmtest.Assets
	agent  string
	srv    *emutest.Server
	a, b   instancetest.Instance
	admin  *kms.Client
	keyARN string
}

func newSuite(t testing.TB) *suite {
	t.Helper()
	s := &suite{assets: vmtest.RequireAssets(t)}
	if s.assets.Mke2fs == "" {
		t.Fatal("the agent makes its filesystem with mkfs.ext4, which a guest has only when the host has e2fsprogs' mke2fs: install e2fsprogs (apt-get)")
	}
	s.agent = vmtest.BuildGo(t, agentPkg)
	s.srv = emutest.Start(t, awsemu.Options{})
	s.a, s.b = instancetest.Launch(t, s.srv), instancetest.Launch(t, s.srv)
	s.admin = instancetest.AdminKMS(t.Context(), s.srv)
	out, err := s.admin.DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: aws.String(instancetest.Key)})
	if err != nil {
		t.Fatal(err)
	}
	s.keyARN = aws.ToString(out.KeyMetadata.Arn)
	return s
}

// emulatorAddr is the emulator's 127.0.0.1:PORT.
func (s *suite) emulatorAddr() string { return strings.TrimPrefix(s.srv.URL(), "http://") }

// agentBoot is one boot of an instance that runs `amicrypt-agent up`.
type agentBoot struct {
	name  string
	inst  instancetest.Instance
	disks []vmtest.Disk
	// aws is where the guest's AWS endpoint leads (default: the emulator).
	aws        string
	kmsTimeout time.Duration // default 20s
	// after runs once the agent is done (the disk is mounted if it worked).
	after string
	args  map[string]string
}

// agentRun is what a boot showed.
type agentRun struct {
	res     *vmtest.Result
	rc      int
	seconds float64          // the agent's run, on the guest's clock
	lines   []map[string]any // its structured log lines, from the console
	status  agent.StatusReport
}

// guestScript runs the agent as its systemd unit would, reports what came
// of it, runs the scenario's own steps and shuts down cleanly.
const guestScript = `export AWS_ENDPOINT_URL=http://169.254.0.10:4566
t0=$(cut -d' ' -f1 /proc/uptime)
amicrypt-agent up
rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
report agent.rc $rc
report agent.seconds "$(awk -v a=$t0 -v b=$t1 'BEGIN { printf "%%.2f", b - a }')"
report mounts "$(grep -c ' %[1]s' /proc/mounts)"
report mapper "$(ls /dev/mapper | tr '\n' ' ')"
report status "$(amicrypt-agent status -json | tr -d '\n')"
%[2]s
for m in $(grep -o ' %[1]s[^ ]*' /proc/mounts); do umount "$m"; done
for m in /dev/mapper/amicrypt*; do [ -e "$m" ] && cryptsetup close "${m##*/}"; done
true
`

// writeMarker writes the marker kernel argument into the mounted volume
// (never into the bare mount-point directory).
const writeMarker = `grep -q ' ` + mountPoint + ` ' /proc/mounts && echo "$marker" >` + mountPoint + `/marker && sync && report marker.written yes`

// config is the agent's config file for a boot: the instance-store key, the
// disks (listed when QEMU can't give them the EC2 model), a context key.
func (s *suite) config(t testing.TB, b agentBoot) []byte {
	t.Helper()
	c := agentconfig.Config{KMSKeyID: instancetest.Key, EncryptionContext: map[string]string{"team": "payments"},
		KMSTimeout: agentconfig.Duration(b.kmsTimeout)}
	if c.KMSTimeout == 0 {
		c.KMSTimeout = agentconfig.Duration(20 * time.Second)
	}
	if len(b.disks) > 1 {
		c.Layout = agentconfig.LayoutEach
	}
	if !s.assets.NVMeModelNumber {
		for i := range b.disks {
			c.Devices = append(c.Devices, fmt.Sprintf("/dev/nvme%dn1", i))
		}
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func (s *suite) boot(t testing.TB, b agentBoot) *agentRun {
	t.Helper()
	awsHost := b.aws
	if awsHost == "" {
		awsHost = s.emulatorAddr()
	}
	res := vmtest.Boot(t.Context(), t, vmtest.Config{
		Name:   b.name,
		Script: fmt.Sprintf(guestScript, mountPoint, b.after),
		Files: []vmtest.File{
			{Path: "/usr/local/sbin/amicrypt-agent", Source: s.agent},
			{Path: agentconfig.DefaultPath, Data: s.config(t, b)},
		},
		Disks: b.disks,
		Forwards: []vmtest.Forward{
			{Guest: vmtest.IMDSAddr, Host: b.inst.HostPort()},
			{Guest: vmtest.AWSAddr, Host: awsHost},
		},
		KernelArgs: b.args,
	})
	return parseRun(t, res)
}

func parseRun(t testing.TB, res *vmtest.Result) *agentRun {
	t.Helper()
	r := &agentRun{res: res, rc: -1}
	if n, err := strconv.Atoi(res.Lines["agent.rc"]); err == nil {
		r.rc = n
	}
	r.seconds, _ = strconv.ParseFloat(res.Lines["agent.seconds"], 64)
	for line := range strings.Lines(res.Console) {
		i := strings.Index(line, `{"time":`)
		if i < 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line[i:]), &m); err != nil {
			t.Errorf("an agent log line on the console is not JSON (%v): %q", err, line)
			continue
		}
		r.lines = append(r.lines, m)
	}
	if err := json.Unmarshal([]byte(res.Lines["status"]), &r.status); err != nil {
		t.Errorf("amicrypt-agent status -json: %v: %q", err, res.Lines["status"])
	}
	return r
}

// line is the agent's log line of `up` about dev.
func (r *agentRun) line(t testing.TB, dev string) map[string]any {
	t.Helper()
	for _, m := range r.lines {
		if m["action"] == "up" && m["device"] == dev {
			return m
		}
	}
	t.Fatalf("no structured line of up about %s on the console:\n%s", dev, r.res.Tail(30))
	return nil
}

// phases says where the time of one volume went, for the logs.
func phases(m map[string]any) string {
	var parts []string
	for _, k := range []string{"kms_ms", "format_ms", "open_ms", "mkfs_ms", "mount_ms"} {
		if v, ok := m[k].(float64); ok {
			parts = append(parts, fmt.Sprintf("%s %.0f", strings.TrimSuffix(k, "_ms"), v))
		}
	}
	return fmt.Sprintf("%v ms (%s)", m["duration_ms"], strings.Join(parts, ", "))
}

func (r *agentRun) logf(t testing.TB, what string) {
	t.Helper()
	var vols []string
	for _, m := range r.lines {
		if m["action"] == "up" {
			vols = append(vols, fmt.Sprintf("%s %s %s", m["device"], m["outcome"], phases(m)))
		}
	}
	t.Logf("%s: VM %.1fs (kernel %.1fs, ready %.1fs), agent exit %d in %.2fs; %s",
		what, r.res.Duration.Seconds(), r.res.KernelBoot.Seconds(), r.res.Ready.Seconds(), r.rc, r.seconds, strings.Join(vols, "; "))
}

// wantFailedClosed checks that a run failed and left nothing open or
// mounted.
func (r *agentRun) wantFailedClosed(t testing.TB) {
	t.Helper()
	if r.rc != 1 {
		t.Errorf("agent exit %d, want 1", r.rc)
	}
	if r.res.Lines["mounts"] != "0" || strings.TrimSpace(r.res.Lines["mapper"]) != "control" {
		t.Errorf("after a refusal: %s mounts under %s, /dev/mapper holds %q; want nothing", r.res.Lines["mounts"], mountPoint, r.res.Lines["mapper"])
	}
	for _, d := range r.status.Disks {
		if d.Open || d.Mounted {
			t.Errorf("status after a refusal: %+v", d)
		}
	}
	if len(r.lines) == 0 {
		t.Fatalf("no structured log lines on the console:\n%s", r.res.Tail(30))
	}
	last := r.lines[len(r.lines)-1]
	if last["msg"] != "amicrypt-agent up failed" || last["level"] != "ERROR" {
		t.Errorf("last log line %v, want amicrypt-agent up failed", last)
	}
}

// header reads a disk image's LUKS2 header from the host and its one
// amicrypt-kms token, and checks the token against the header.
func header(t testing.TB, disk vmtest.Disk) (*vmtest.LUKS2Header, *agent.Token) {
	t.Helper()
	h, err := vmtest.ReadLUKS2Header(disk.Path)
	if err != nil {
		t.Fatalf("the host reads no LUKS2 header: %v", err)
	}
	var ids []string
	for id, tok := range h.Metadata.Tokens {
		if tok.Type == agent.TokenType {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("LUKS2 tokens %v; want one of type %s", h.Metadata.Tokens, agent.TokenType)
	}
	tok, err := agent.ParseToken(h.Metadata.Tokens[ids[0]].Raw)
	if err != nil {
		t.Fatalf("the %s token: %v", agent.TokenType, err)
	}
	if _, ok := h.Metadata.Keyslots[tok.Keyslots[0]]; !ok || len(h.Metadata.Keyslots) != 1 {
		t.Errorf("the token names keyslot %s; the header has keyslots %v", tok.Keyslots[0], slices.Sorted(maps.Keys(h.Metadata.Keyslots)))
	}
	if tok.EncryptionContext[agent.ContextLUKSUUID] != h.UUID || h.Subsystem != agent.Subsystem || h.Label != agentconfig.DefaultName {
		t.Errorf("header UUID %s, subsystem %q, label %q; token context %v", h.UUID, h.Subsystem, h.Label, tok.EncryptionContext)
	}
	return h, tok
}

// wantToken checks that a token binds its key to inst and this header.
func (s *suite) wantToken(t testing.TB, tok *agent.Token, inst instancetest.Instance, h *vmtest.LUKS2Header) {
	t.Helper()
	want := map[string]string{agent.ContextInstanceARN: inst.ARN(), agent.ContextLUKSUUID: h.UUID, "team": "payments"}
	if !maps.Equal(tok.EncryptionContext, want) || tok.KMSKeyARN != s.keyARN || tok.Volume != agentconfig.DefaultName {
		t.Errorf("token: key %s, context %v, volume %q; want %s, %v, %q", tok.KMSKeyARN, tok.EncryptionContext, tok.Volume, s.keyARN, want, agentconfig.DefaultName)
	}
}

// uses are the KMS calls that used a key (not its administration) after
// audit position since, as CloudTrail recorded them.
func (s *suite) uses(t testing.TB, since int) []awsemu.CloudTrailEvent {
	t.Helper()
	var out []awsemu.CloudTrailEvent
	for _, ev := range instancetest.CloudTrail(t, s.srv, "", since) {
		switch ev.EventName {
		case "GenerateDataKey", "Decrypt", "ReEncrypt", "Encrypt", "GenerateDataKeyWithoutPlaintext":
			out = append(out, ev)
		}
	}
	return out
}

// by keeps the events of one principal.
func by(events []awsemu.CloudTrailEvent, principal string) []awsemu.CloudTrailEvent {
	return slices.DeleteFunc(slices.Clone(events), func(ev awsemu.CloudTrailEvent) bool { return ev.UserIdentity.ARN != principal })
}

// wantCalls checks an instance's KMS calls: each by its role session, with
// a context naming it, in the order and with the outcomes given ("Decrypt"
// or "Decrypt:DisabledException").
func wantCalls(t testing.TB, events []awsemu.CloudTrailEvent, inst instancetest.Instance, want ...string) {
	t.Helper()
	var got []string
	for _, ev := range events {
		call := ev.EventName
		if ev.ErrorCode != "" {
			call += ":" + ev.ErrorCode
		}
		got = append(got, call)
		if ev.UserIdentity.ARN != inst.SessionARN() || ev.UserIdentity.Type != "AssumedRole" ||
			instancetest.Context(ev)[agent.ContextInstanceARN] != inst.ARN() {
			t.Errorf("%s by %s (%s) with context %v; want %s's role session and its ARN", call, ev.UserIdentity.ARN, ev.UserIdentity.Type, instancetest.Context(ev), inst.ID)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("KMS calls of %s as CloudTrail recorded them: %v, want %v", inst.ID, got, want)
	}
}

func hashFile(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// copyDisk copies an image: the same disk's bytes for a boot that runs
// while another VM holds the original (QEMU locks an image to one VM).
func copyDisk(t testing.TB, d vmtest.Disk) vmtest.Disk {
	t.Helper()
	c := vmtest.NewDisk(t, 0)
	src, err := os.ReadFile(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.Path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

func plaintextOn(t testing.TB, d vmtest.Disk, marker string) bool {
	t.Helper()
	found, err := vmtest.ContainsBytes(d.Path, []byte(marker))
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// silentKMS is a listener on 127.0.0.1 that accepts connections and never
// answers: KMS unreachable in the way that takes longest to notice.
func silentKMS(t testing.TB) (addr string, dialed *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dialed = new(atomic.Int32)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), dialed
}

// TestAgentInstanceStore runs the instance-store scenarios in real guests,
// two at a time where they are independent:
//
//  1. first boot: a blank disk gets a new key, LUKS2, a filesystem, a mount;
//  2. reboot: the volume is unlocked and its data read back;
//  3. the disk attached to another instance is refused, untouched;
//  4. KMS unreachable: nothing mounted, disks untouched, within kms_timeout;
//  5. the key disabled: the same, and the message names the key;
//  6. stop/start: a new blank disk for the same instance gets a new key.
//
// Besides the guest's console it checks the raw images from the host (no
// plaintext, the LUKS2 header and its amicrypt-kms token), CloudTrail (one
// GenerateDataKey per new disk, one Decrypt per reboot, each by the
// instance's own role session with a context naming it) and the emulator's
// invariant checker.
func TestAgentInstanceStore(t *testing.T) {
	suiteStart := time.Now()
	s := newSuite(t)
	mark := s.srv.Mark()
	marker := "amicrypt-vm-plaintext-" + randomHex(t, 16)
	disk1 := vmtest.NewDisk(t, diskSize)
	var tok1 *agent.Token
	var hdr1 *vmtest.LUKS2Header

	ok := t.Run("1-first-boot", func(t *testing.T) {
		since := s.srv.Mark()
		r := s.boot(t, agentBoot{name: "first-boot", inst: s.a, disks: []vmtest.Disk{disk1},
			args:  map[string]string{"marker": marker},
			after: writeMarker})
		r.logf(t, "first boot")
		if r.rc != 0 || r.res.Lines["marker.written"] != "yes" || r.res.Lines["mounts"] != "1" {
			t.Fatalf("first boot: agent exit %d, marker written %q, %s mounts; console:\n%s", r.rc, r.res.Lines["marker.written"], r.res.Lines["mounts"], r.res.Tail(40))
		}
		line := r.line(t, "/dev/nvme0n1")
		if line["outcome"] != agent.OutcomeFormatted || line["state"] != string(agent.StateBlank) || line["instance"] != s.a.ID ||
			line["kms_key_arn"] != s.keyARN || line["mount_point"] != mountPoint || line["level"] != "INFO" {
			t.Errorf("log line %v", line)
		}
		for _, k := range []string{"kms_ms", "format_ms", "open_ms", "mkfs_ms", "mount_ms"} {
			if _, ok := line[k].(float64); !ok {
				t.Errorf("log line lacks %s: %v", k, line)
			}
		}
		if d := r.status.Disks; len(d) != 1 || d[0].State != agent.StateOurs || !d[0].Open || !d[0].Mounted || d[0].MountPoint != mountPoint {
			t.Errorf("status -json: %+v", r.status)
		}
		hdr1, tok1 = header(t, disk1)
		s.wantToken(t, tok1, s.a, hdr1)
		if line["luks_uuid"] != hdr1.UUID {
			t.Errorf("log line names LUKS UUID %v, the header has %s", line["luks_uuid"], hdr1.UUID)
		}
		if plaintextOn(t, disk1, marker) {
			t.Error("the raw disk image holds the plaintext marker")
		}
		wantCalls(t, s.uses(t, since), s.a, "GenerateDataKey")
	})
	if !ok {
		t.Fatal("the other scenarios need the first boot's volume")
	}

	// 2 and 3 run together: the reboot on a's disk, and a copy of it (the
	// same bytes; QEMU locks an image to one VM) attached to b.
	moved := copyDisk(t, disk1)
	movedHash := hashFile(t, moved.Path)
	since := s.srv.Mark()
	t.Run("reboot-and-moved-disk", func(t *testing.T) {
		t.Run("2-reboot", func(t *testing.T) {
			t.Parallel()
			r := s.boot(t, agentBoot{name: "reboot", inst: s.a, disks: []vmtest.Disk{disk1},
				after: `report marker.read "$(cat ` + mountPoint + `/marker)"`})
			r.logf(t, "reboot")
			if r.rc != 0 || r.res.Lines["marker.read"] != marker || r.res.Lines["mounts"] != "1" {
				t.Fatalf("reboot: agent exit %d, marker read %q (want %q), %s mounts; console:\n%s", r.rc, r.res.Lines["marker.read"], marker, r.res.Lines["mounts"], r.res.Tail(40))
			}
			line := r.line(t, "/dev/nvme0n1")
			if line["outcome"] != agent.OutcomeReopened || line["state"] != string(agent.StateOurs) || line["luks_uuid"] != hdr1.UUID {
				t.Errorf("log line %v", line)
			}
			for k, want := range map[string]bool{"kms_ms": true, "open_ms": true, "mount_ms": true, "format_ms": false, "mkfs_ms": false} {
				if _, ok := line[k]; ok != want {
					t.Errorf("log line has %s: %v, want %v: %v", k, ok, want, line)
				}
			}
			h, tok := header(t, disk1)
			if string(h.JSON) != string(hdr1.JSON) || !slices.Equal(tok.Blob(), tok1.Blob()) {
				t.Error("the LUKS2 header changed across a reboot")
			}
			if plaintextOn(t, disk1, marker) {
				t.Error("the raw disk image holds the plaintext marker")
			}
			wantCalls(t, by(s.uses(t, since), s.a.SessionARN()), s.a, "Decrypt")
		})
		t.Run("3-another-instance", func(t *testing.T) {
			t.Parallel()
			r := s.boot(t, agentBoot{name: "another-instance", inst: s.b, disks: []vmtest.Disk{moved}})
			r.logf(t, "another instance")
			r.wantFailedClosed(t)
			line := r.line(t, "/dev/nvme0n1")
			errText, _ := line["error"].(string)
			for _, want := range []string{"belongs to another instance", s.a.ARN(), s.b.ARN(), "InvalidCiphertextException", "left as it is"} {
				if !strings.Contains(errText, want) {
					t.Errorf("error lacks %q: %s", want, errText)
				}
			}
			if line["outcome"] != agent.OutcomeRefused || line["instance"] != s.b.ID {
				t.Errorf("log line %v", line)
			}
			if hashFile(t, moved.Path) != movedHash {
				t.Error("the disk changed on the other instance")
			}
			wantCalls(t, by(s.uses(t, since), s.b.SessionARN()), s.b, "Decrypt:InvalidCiphertextException")
			// What a thief on b would try next: ask for a's key with a's
			// context, as b's role. The key policy refuses it, and the
			// invariant checker reports it: the one finding this suite
			// provokes on purpose.
			_, err := s.b.KMS(t.Context(), s.srv).Decrypt(t.Context(), &kms.DecryptInput{
				KeyId: aws.String(tok1.KMSKeyARN), CiphertextBlob: tok1.Blob(), EncryptionContext: tok1.EncryptionContext})
			if !agent.IsCode(err, "AccessDeniedException") {
				t.Errorf("b's role asking with a's context: %v, want AccessDeniedException", err)
			}
		})
	})

	// 4 and 5 run together: KMS unreachable never reaches the emulator, so
	// disabling the key for 5 changes nothing for 4. Each boot has our
	// volume (a copy of disk1) and a blank disk.
	silent, dialed := silentKMS(t)
	const kmsTimeout = 10 * time.Second
	if _, err := s.admin.DisableKey(t.Context(), &kms.DisableKeyInput{KeyId: aws.String(s.keyARN)}); err != nil {
		t.Fatal(err)
	}
	since = s.srv.Mark()
	t.Run("kms-unreachable-and-key-disabled", func(t *testing.T) {
		t.Run("4-kms-unreachable", func(t *testing.T) {
			t.Parallel()
			disks := []vmtest.Disk{copyDisk(t, disk1), vmtest.NewDisk(t, diskSize)}
			hashes := []string{hashFile(t, disks[0].Path), hashFile(t, disks[1].Path)}
			r := s.boot(t, agentBoot{name: "kms-unreachable", inst: s.a, disks: disks, aws: silent, kmsTimeout: kmsTimeout})
			r.logf(t, "KMS unreachable")
			r.wantFailedClosed(t)
			var kmsMS float64
			for _, dev := range []string{"/dev/nvme0n1", "/dev/nvme1n1"} {
				line := r.line(t, dev)
				errText, _ := line["error"].(string)
				if line["outcome"] != agent.OutcomeFailed || !strings.Contains(errText, "did not answer within kms_timeout 10s") {
					t.Errorf("%s: %v", dev, line)
				}
				ms, _ := line["kms_ms"].(float64)
				kmsMS += ms
			}
			if e, _ := r.line(t, "/dev/nvme1n1")["error"].(string); !strings.Contains(e, "nothing was written") || !strings.Contains(e, "none of it was left for this call") {
				t.Errorf("the blank disk's error: %s", e)
			}
			// kms_timeout bounds the KMS calls of the whole run: all of it
			// went to the first volume, none was left for the second. The
			// agent waited that long for KMS (it did not give up at once),
			// and no longer: the rest of its run is IMDS and cryptsetup's
			// probes, slow on a TCG guest, hence the loose upper bound, which
			// only tells a bounded wait from a hang.
			if limit := kmsTimeout.Seconds() * 1000; kmsMS < limit-500 || kmsMS > limit+2000 {
				t.Errorf("KMS time %.0f ms, want kms_timeout (%.0f ms)", kmsMS, limit)
			}
			if r.seconds < kmsTimeout.Seconds()-0.5 || r.seconds > kmsTimeout.Seconds()+60 {
				t.Errorf("the agent ran %.2fs with kms_timeout %s", r.seconds, kmsTimeout)
			}
			if dialed.Load() == 0 {
				t.Error("the guest never dialed its KMS endpoint")
			}
			for i, d := range disks {
				if hashFile(t, d.Path) != hashes[i] {
					t.Errorf("disk %d changed while KMS was unreachable", i)
				}
			}
		})
		t.Run("5-key-disabled", func(t *testing.T) {
			t.Parallel()
			disks := []vmtest.Disk{copyDisk(t, disk1), vmtest.NewDisk(t, diskSize)}
			hashes := []string{hashFile(t, disks[0].Path), hashFile(t, disks[1].Path)}
			r := s.boot(t, agentBoot{name: "key-disabled", inst: s.a, disks: disks})
			r.logf(t, "key disabled")
			r.wantFailedClosed(t)
			for dev, key := range map[string]string{"/dev/nvme0n1": tok1.KMSKeyARN, "/dev/nvme1n1": instancetest.Key} {
				line := r.line(t, dev)
				errText, _ := line["error"].(string)
				for _, want := range []string{"DisabledException", "the key is disabled", "aws kms enable-key --key-id " + key} {
					if !strings.Contains(errText, want) {
						t.Errorf("%s: error lacks %q: %s", dev, want, errText)
					}
				}
			}
			for i, d := range disks {
				if hashFile(t, d.Path) != hashes[i] {
					t.Errorf("disk %d changed while the key was disabled", i)
				}
			}
			// All of a's calls in this round are this boot's: the other one
			// never reached KMS.
			wantCalls(t, s.uses(t, since), s.a, "Decrypt:DisabledException", "GenerateDataKey:DisabledException")
		})
	})
	if _, err := s.admin.EnableKey(t.Context(), &kms.EnableKeyInput{KeyId: aws.String(s.keyARN)}); err != nil {
		t.Fatal(err)
	}

	t.Run("6-stop-start", func(t *testing.T) {
		// The emulator stops and starts a: its metadata service goes quiet,
		// then answers again; the instance store comes back as a new blank
		// disk.
		instancetest.StopStart(t, s.srv, s.a)
		since := s.srv.Mark()
		disk2 := vmtest.NewDisk(t, diskSize)
		marker2 := "amicrypt-vm-plaintext-" + randomHex(t, 16)
		r := s.boot(t, agentBoot{name: "stop-start", inst: s.a, disks: []vmtest.Disk{disk2},
			args:  map[string]string{"marker": marker2},
			after: writeMarker})
		r.logf(t, "after stop/start")
		if r.rc != 0 || r.res.Lines["marker.written"] != "yes" {
			t.Fatalf("after stop/start: agent exit %d; console:\n%s", r.rc, r.res.Tail(40))
		}
		if line := r.line(t, "/dev/nvme0n1"); line["outcome"] != agent.OutcomeFormatted || line["state"] != string(agent.StateBlank) {
			t.Errorf("log line %v", line)
		}
		h, tok := header(t, disk2)
		s.wantToken(t, tok, s.a, h)
		if h.UUID == hdr1.UUID || bytes.Equal(tok.Blob(), tok1.Blob()) {
			t.Errorf("the new disk has LUKS UUID %s and the old one's wrapped key: want a new volume under a new data key", h.UUID)
		}
		if plaintextOn(t, disk2, marker2) {
			t.Error("the raw disk image holds the plaintext marker")
		}
		wantCalls(t, s.uses(t, since), s.a, "GenerateDataKey")
	})

	// The whole suite, as CloudTrail and the invariant checker saw it.
	counts := map[string]int{}
	for _, ev := range s.uses(t, mark) {
		counts[ev.EventName+":"+cmp.Or(ev.ErrorCode, "ok")]++
	}
	want := map[string]int{
		"GenerateDataKey:ok":                 2, // disk1, and the new disk after stop/start
		"Decrypt:ok":                         1, // the reboot
		"Decrypt:InvalidCiphertextException": 1, // b's agent on a's disk
		"Decrypt:AccessDeniedException":      1, // b's role with a's context
		"Decrypt:DisabledException":          1,
		"GenerateDataKey:DisabledException":  1,
	}
	if !maps.Equal(counts, want) {
		t.Errorf("KMS calls in CloudTrail: %v, want %v", counts, want)
	}
	findings := instancetest.InstanceContextFindings(s.srv, mark)
	if len(findings) != 1 || findings[0].Resource != s.a.ID || findings[0].Principal != s.b.SessionARN() {
		t.Errorf("instance-context findings %+v; want only b's attempt with a's context", findings)
	}
	t.Logf("CloudTrail: %v; instance-context findings: %d (b's role asking with a's context); suite %.1fs", counts, len(findings), time.Since(suiteStart).Seconds())
}
