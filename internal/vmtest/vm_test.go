//go:build vm

package vmtest_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/vmtest"
)

// imdsStub stands in for IMDSv2 on 127.0.0.1: PUT /latest/api/token, then
// GET /latest/meta-data/instance-id with that token.
type imdsStub struct {
	instanceID, token string

	mu    sync.Mutex
	calls []string // "METHOD path status"
}

func newIMDSStub(t *testing.T, instanceID string) (*imdsStub, *httptest.Server) {
	stub := &imdsStub{instanceID: instanceID, token: "token-" + randomHex(t, 8)}
	srv := httptest.NewServer(stub)
	t.Cleanup(srv.Close)
	return stub, srv
}

func (s *imdsStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status := http.StatusOK
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			status = http.StatusBadRequest
			break
		}
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(s.token))
	case r.Method == http.MethodGet && r.URL.Path == "/latest/meta-data/instance-id":
		if r.Header.Get("X-aws-ec2-metadata-token") != s.token {
			status = http.StatusUnauthorized
			break
		}
		_, _ = w.Write([]byte(s.instanceID))
	default:
		status = http.StatusNotFound
	}
	if status != http.StatusOK {
		http.Error(w, http.StatusText(status), status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, r.Method+" "+r.URL.Path+" "+http.StatusText(status))
}

func (s *imdsStub) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// The guest fetches from IMDS through a forward with nc (PUT, raw HTTP) and
// wget (GET), so the stub sees the real IMDSv2 exchange.
const fetchInstanceID = `
token=$(printf 'PUT /latest/api/token HTTP/1.0\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n' | nc 169.254.169.254 80 | tail -n 1)
report imds.token "$token"
report imds.instance_id "$(wget -q -O - --header "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/instance-id)"
`

// Boot 1 formats nvme0n1 with LUKS2 (passphrase from the kernel command
// line, for this harness test only), writes the marker through dm-crypt and
// ext4, and writes it in the clear on nvme1n1 as a control.
const formatScenario = fetchInstanceID + `
/usr/local/bin/imdsget
set -e
# e2fsprogs when the host has it, else busybox's mke2fs (ext2 only).
if [ -x /sbin/mkfs.ext4 ]; then mkfs="/sbin/mkfs.ext4 -q" fs=ext4; else mkfs=mke2fs fs=ext2; fi
printf '%s' "$passphrase" | cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file - /dev/nvme0n1
printf '%s' "$passphrase" | cryptsetup open --key-file - /dev/nvme0n1 data
report luks.uuid "$(cryptsetup luksUUID /dev/nvme0n1)"
$mkfs /dev/mapper/data
mount -t $fs /dev/mapper/data /mnt
echo "$marker" >/mnt/marker
umount /mnt
cryptsetup close data
report luks.closed yes

$mkfs /dev/nvme1n1
mount -t $fs /dev/nvme1n1 /mnt
echo "$marker" >/mnt/marker
umount /mnt
report control.written yes
`

// Boot 2 unlocks the same disk and reads the marker back.
const readScenario = `
set -e
printf '%s' "$passphrase" | cryptsetup open --key-file - /dev/nvme0n1 data
report luks.uuid "$(cryptsetup luksUUID /dev/nvme0n1)"
mount -o ro /dev/mapper/data /mnt
report marker.read "$(cat /mnt/marker)"
umount /mnt
cryptsetup close data
`

func TestHarnessEncryptsAndReadsBack(t *testing.T) {
	t.Parallel() // two guests at once use 2 cores better than one (BenchmarkBoots)
	assets := vmtest.RequireAssets(t)
	ctx := t.Context()
	const instanceID = "i-0abc1234def567890"
	stub, imds := newIMDSStub(t, instanceID)
	marker := "amicrypt-vmtest-plaintext-" + randomHex(t, 12)
	encrypted := vmtest.NewDisk(t, 64<<20)
	encrypted.Serial = "AWS1ENCRYPTED"
	control := vmtest.NewDisk(t, 32<<20)
	control.Serial = "AWS2CONTROL"
	args := map[string]string{"passphrase": randomHex(t, 32), "marker": marker}

	imdsget := vmtest.BuildGo(t, "./testdata/imdsget")
	bootStart := time.Now()
	first := vmtest.Boot(ctx, t, vmtest.Config{
		Name:       "format",
		Script:     formatScenario,
		Files:      []vmtest.File{{Path: "/usr/local/bin/imdsget", Source: imdsget}},
		Disks:      []vmtest.Disk{encrypted, control},
		Forwards:   []vmtest.Forward{{Guest: vmtest.IMDSAddr, Host: imds.Listener.Addr().String()}},
		KernelArgs: args,
	})
	if first.ExitCode != 0 {
		t.Fatalf("format scenario exited %d; console:\n%s", first.ExitCode, first.Tail(40))
	}
	wantModel := "QEMU NVMe Ctrl"
	if assets.NVMeModelNumber {
		wantModel = vmtest.InstanceStoreModel
	}
	for key, want := range map[string]string{
		"imds.token":            stub.token,
		"imds.instance_id":      instanceID,
		"go.instance_id":        instanceID,
		"vmtest.netdevs":        "eth0 lo",
		"vmtest.nvme0n1.serial": encrypted.Serial,
		"vmtest.nvme1n1.serial": control.Serial,
		"vmtest.nvme0n1.model":  wantModel,
		"luks.closed":           "yes",
		"control.written":       "yes",
	} {
		if got := first.Lines[key]; got != want {
			t.Errorf("boot 1 reported %s=%q, want %q", key, got, want)
		}
	}
	guestClock, err := time.Parse(time.RFC3339, first.Lines["vmtest.date"])
	if skew := guestClock.Sub(bootStart).Abs(); err != nil || skew > 2*time.Minute {
		t.Errorf("guest clock %q (%v) is %v from the host's; SigV4 needs them close", first.Lines["vmtest.date"], err, skew)
	}
	wantCalls := []string{"PUT /latest/api/token OK", "GET /latest/meta-data/instance-id OK",
		"PUT /latest/api/token OK", "GET /latest/meta-data/instance-id OK"}
	if got := stub.Calls(); strings.Join(got, "\n") != strings.Join(wantCalls, "\n") {
		t.Errorf("IMDS stub saw %q, want %q", got, wantCalls)
	}

	second := vmtest.Boot(ctx, t, vmtest.Config{
		Name:       "unlock",
		Script:     readScenario,
		Disks:      []vmtest.Disk{encrypted},
		KernelArgs: args,
	})
	if second.ExitCode != 0 {
		t.Fatalf("unlock scenario exited %d; console:\n%s", second.ExitCode, second.Tail(40))
	}
	if got := second.Lines["marker.read"]; got != marker {
		t.Errorf("boot 2 read marker %q, want %q", got, marker)
	}
	if first.Lines["luks.uuid"] == "" || second.Lines["luks.uuid"] != first.Lines["luks.uuid"] {
		t.Errorf("LUKS UUID: boot 1 %q, boot 2 %q; want one, unchanged", first.Lines["luks.uuid"], second.Lines["luks.uuid"])
	}

	// The host's view of the raw images.
	raw, err := os.ReadFile(encrypted.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, vmtest.LUKS2Magic()) {
		t.Errorf("encrypted disk begins % x, want the LUKS magic % x", raw[:6], vmtest.LUKS2Magic())
	}
	hdr, err := vmtest.ReadLUKS2Header(encrypted.Path)
	if err != nil {
		t.Fatalf("reading the LUKS2 header from the host: %v", err)
	}
	if hdr.Version != 2 || hdr.UUID != first.Lines["luks.uuid"] || len(hdr.Metadata.Keyslots) != 1 {
		t.Errorf("LUKS2 header: version %d, UUID %q, %d keyslots; want 2, %q, 1", hdr.Version, hdr.UUID, len(hdr.Metadata.Keyslots), first.Lines["luks.uuid"])
	}
	for _, c := range []struct {
		disk vmtest.Disk
		want bool
	}{{encrypted, false}, {control, true}} {
		found, err := vmtest.ContainsBytes(c.disk.Path, []byte(marker))
		if err != nil {
			t.Fatal(err)
		}
		if found != c.want {
			t.Errorf("disk %s holds the plaintext marker: %v, want %v", c.disk.Serial, found, c.want)
		}
	}
	t.Logf("boot timings: format %.1fs (kernel %.1fs, ready %.1fs), unlock %.1fs (kernel %.1fs, ready %.1fs)",
		first.Duration.Seconds(), first.KernelBoot.Seconds(), first.Ready.Seconds(),
		second.Duration.Seconds(), second.KernelBoot.Seconds(), second.Ready.Seconds())
}

// A boot that outlives its timeout, or whose guest dies before the end of the
// scenario, is an error, and no QEMU survives it.
func TestBootFailures(t *testing.T) {
	assets := vmtest.RequireAssets(t)
	for _, tc := range []struct {
		name, script string
		timeout      time.Duration
		wantTimeout  bool
	}{
		{name: "timeout", script: "report started yes; sleep 3600", timeout: 30 * time.Second, wantTimeout: true},
		{name: "kernel-panic", script: "report started yes; echo c >/proc/sysrq-trigger; sleep 3600", timeout: 3 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tag := randomHex(t, 8)
			res, err := vmtest.Run(t.Context(), assets, vmtest.Config{
				Name:       tc.name,
				Script:     tc.script,
				Timeout:    tc.timeout,
				LogDir:     t.ArtifactDir(),
				KernelArgs: map[string]string{"tag": tag},
			})
			if err == nil {
				t.Fatalf("Run succeeded; want an error. Console:\n%s", res.Tail(20))
			}
			if errors.Is(err, vmtest.ErrTimeout) != tc.wantTimeout {
				t.Errorf("Run error %q: errors.Is(ErrTimeout) = %v, want %v", err, !tc.wantTimeout, tc.wantTimeout)
			}
			if res == nil || res.Completed || res.ExitCode != -1 {
				t.Fatalf("result %+v: want a partial result, not completed, exit -1", res)
			}
			if res.Lines["started"] != "yes" {
				t.Errorf("the scenario's first report is missing; console:\n%s", res.Tail(20))
			}
			if pids := processesWith("vmtest.tag=" + tag); len(pids) > 0 {
				t.Errorf("QEMU still runs after Run returned: pids %v", pids)
			}
			t.Logf("%s: %v after %.1fs", tc.name, err, res.Duration.Seconds())
		})
	}
}

// processesWith lists the processes whose command line contains s.
func processesWith(s string) []string {
	var pids []string
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, path := range cmdlines {
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, filepath.Base(filepath.Dir(path)))
		}
	}
	return pids
}

// BenchmarkBoots boots two guests that each format a disk with LUKS2, open
// it, make a file system and write to it: one after the other, or both at
// once, with one or two virtual CPUs each. On a 2-core host this tells
// whether running VM tests in parallel pays. Run with -benchtime=1x.
func BenchmarkBoots(b *testing.B) {
	assets := vmtest.RequireAssets(b)
	const workload = `set -e
printf '%s' "$passphrase" | cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file - /dev/nvme0n1
printf '%s' "$passphrase" | cryptsetup open --key-file - /dev/nvme0n1 data
/sbin/mkfs.ext4 -q /dev/mapper/data
mount /dev/mapper/data /mnt
dd if=/dev/urandom of=/mnt/data bs=1M count=8 2>/dev/null
umount /mnt
cryptsetup close data`
	for _, bc := range []struct {
		parallel bool
		cpus     int
	}{{false, 1}, {true, 1}, {false, 2}, {true, 2}} {
		name := fmt.Sprintf("serial/cpus=%d", bc.cpus)
		if bc.parallel {
			name = fmt.Sprintf("parallel/cpus=%d", bc.cpus)
		}
		b.Run(name, func(b *testing.B) {
			var boots []*vmtest.Result
			for b.Loop() {
				var wg sync.WaitGroup
				results := make([]*vmtest.Result, 2)
				errs := make([]error, 2)
				for i := range results {
					boot := func() {
						results[i], errs[i] = vmtest.Run(b.Context(), assets, vmtest.Config{
							Name:       fmt.Sprintf("bench-%d", i),
							Script:     workload,
							CPUs:       bc.cpus,
							Disks:      []vmtest.Disk{vmtest.NewDisk(b, 64<<20)},
							KernelArgs: map[string]string{"passphrase": randomHex(b, 32)},
						})
					}
					if bc.parallel {
						wg.Go(boot)
					} else {
						boot()
					}
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil || results[i].ExitCode != 0 {
						b.Fatalf("boot %d: %v (exit %d)", i, err, results[i].ExitCode)
					}
				}
				boots = append(boots, results...)
			}
			var boot, ready float64
			for _, r := range boots {
				boot += r.Duration.Seconds()
				ready += r.Ready.Seconds()
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/2boots")
			b.ReportMetric(boot/float64(len(boots)), "s/boot")
			b.ReportMetric(ready/float64(len(boots)), "s-to-ready/boot")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
