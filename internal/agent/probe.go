package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/luks2"
)

// Paths are the system locations the agent reads and writes; tests point
// them into a temporary directory.
type Paths struct {
	SysBlock   string // /sys/block: disk discovery
	Dev        string // /dev: where discovered disks live
	Mapper     string // /dev/mapper: opened volumes (and "control")
	MD         string // /dev/md: raid0 arrays
	Mounts     string // /proc/self/mounts
	SystemdRun string // /run/systemd/system: present when systemd runs; runtime units go here
	Lock       string // a lock file that keeps two agents apart
}

// DefaultPaths are the real system's.
func DefaultPaths() Paths {
	return Paths{SysBlock: "/sys/block", Dev: "/dev", Mapper: "/dev/mapper", MD: "/dev/md",
		Mounts: "/proc/self/mounts", SystemdRun: "/run/systemd/system", Lock: "/run/amicrypt-agent.lock"}
}

// InstanceStoreModel is the NVMe model of EC2 instance store disks.
const InstanceStoreModel = "Amazon EC2 NVMe Instance Storage"

// FindInstanceStore lists the NVMe instance store disks, in a natural order
// (nvme1n1, nvme2n1, …, nvme10n1).
func FindInstanceStore(p Paths) ([]string, error) {
	entries, err := os.ReadDir(p.SysBlock)
	if err != nil {
		return nil, fmt.Errorf("listing disks in %s: %w", p.SysBlock, err)
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "nvme") {
			continue
		}
		model, err := os.ReadFile(filepath.Join(p.SysBlock, e.Name(), "device", "model"))
		if err != nil {
			continue
		}
		if strings.TrimSpace(string(model)) == InstanceStoreModel {
			names = append(names, e.Name())
		}
	}
	sort.Slice(names, func(i, j int) bool {
		if len(names[i]) != len(names[j]) {
			return len(names[i]) < len(names[j])
		}
		return names[i] < names[j]
	})
	devs := make([]string, len(names))
	for i, n := range names {
		devs[i] = filepath.Join(p.Dev, n)
	}
	return devs, nil
}

// State is what a disk holds.
type State string

// The states a disk can be in.
const (
	StateBlank   State = "blank"         // zeros at both ends, no signature
	StateOurs    State = "luks-amicrypt" // LUKS2 with an amicrypt-kms token
	StateLUKS    State = "luks-other"    // LUKS without our token
	StateForeign State = "foreign"       // anything else
)

// probeSpan is how much of each end of a disk the probe reads.
const probeSpan = 1 << 20

// Probe is what the agent found on a disk.
type Probe struct {
	Device string
	Size   int64
	State  State
	// Detail says what a foreign or luks-other disk holds.
	Detail string
	// MDMember: the disk carries an md RAID superblock.
	MDMember bool
	// For LUKS disks:
	UUID     string
	Metadata *luks2.Metadata
	// For luks-amicrypt disks: the first valid amicrypt-kms token, or the
	// error that made it unusable.
	Token    *Token
	TokenID  int
	TokenErr error
	// MountedAt is where the raw disk is mounted ("" when it is not).
	MountedAt string
}

// readEnds reads the first and last probeSpan bytes of a device.
func readEnds(dev string) (first, last []byte, size int64, err error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	size, err = f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("sizing %s: %w", dev, err)
	}
	first = make([]byte, min(size, probeSpan))
	if _, err := f.ReadAt(first, 0); err != nil {
		return nil, nil, 0, fmt.Errorf("reading the start of %s: %w", dev, err)
	}
	last = make([]byte, min(size, probeSpan))
	if _, err := f.ReadAt(last, size-int64(len(last))); err != nil {
		return nil, nil, 0, fmt.Errorf("reading the end of %s: %w", dev, err)
	}
	return first, last, size, nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

var mdMagic = []byte{0xfc, 0x4e, 0x2b, 0xa9} // 0xa92b4efc, little-endian

// mdSuperblock reports an md superblock: 1.1 at 0, 1.2 at 4 KiB, 1.0 at 8 KiB
// from the end (4 KiB aligned), 0.90 at the last 64 KiB-aligned 64 KiB.
func mdSuperblock(first, last []byte, size int64) bool {
	at := func(b []byte, off int64) bool {
		return off >= 0 && off+4 <= int64(len(b)) && bytes.Equal(b[off:off+4], mdMagic)
	}
	if at(first, 0) || at(first, 4096) {
		return true
	}
	lastStart := size - int64(len(last))
	v10 := (size - 8192) &^ 4095
	v090 := (size &^ 65535) - 65536
	return at(last, v10-lastStart) || at(last, v090-lastStart)
}

// signature names what non-blank bytes look like.
func signature(first, last []byte, size int64) string {
	has := func(off int, magic string) bool {
		return off+len(magic) <= len(first) && string(first[off:off+len(magic)]) == magic
	}
	switch {
	case mdSuperblock(first, last, size):
		return "an md RAID member"
	case has(0x438, "\x53\xef"):
		return "an ext2/3/4 filesystem"
	case has(0, "XFSB"):
		return "an XFS filesystem"
	case has(0x10040, "_BHRfS_M"):
		return "a btrfs filesystem"
	case has(4086, "SWAPSPACE2"), has(4086, "SWAP-SPACE"):
		return "swap space"
	case has(512, "EFI PART"):
		return "a GPT partition table"
	case has(510, "\x55\xaa"):
		return "an MBR partition table or boot sector"
	case has(3, "NTFS    "):
		return "an NTFS filesystem"
	}
	return noSignature
}

// noSignature is what signature says of bytes it does not recognise.
const noSignature = "data (no known signature)"

// probeRaw reads a device's bytes: blank, LUKS-looking, or something else.
func probeRaw(dev string) (*Probe, []byte, error) {
	first, last, size, err := readEnds(dev)
	if err != nil {
		return nil, nil, err
	}
	p := &Probe{Device: dev, Size: size}
	switch {
	case luks2.FindHeader(first):
		p.State = StateLUKS // refined by the caller through cryptsetup
	case allZero(first) && allZero(last):
		p.State = StateBlank
	default:
		p.State, p.Detail = StateForeign, signature(first, last, size)
		p.MDMember = mdSuperblock(first, last, size)
	}
	return p, first, nil
}

// probe classifies dev: its bytes, then, for LUKS, its header through
// cryptsetup (which decides which header copy is in force).
func (a *Agent) probe(ctx context.Context, dev string) (*Probe, error) {
	p, _, err := probeRaw(dev)
	if err != nil {
		return nil, err
	}
	mounts, err := readMounts(a.paths.Mounts)
	if err != nil {
		return nil, err
	}
	p.MountedAt = mountedAt(mounts, dev)
	if p.State != StateLUKS {
		return p, nil
	}
	isLUKS, err := a.cs.IsLUKS(ctx, dev)
	if err != nil {
		return nil, err
	}
	if !isLUKS {
		p.State, p.Detail = StateForeign, "a damaged LUKS header (cryptsetup does not recognise it)"
		return p, nil
	}
	md, err := a.cs.Metadata(ctx, dev)
	if err != nil {
		p.Detail = fmt.Sprintf("a LUKS volume cryptsetup can't dump as LUKS2 (LUKS1?): %v", err)
		return p, nil
	}
	p.Metadata = md
	if p.UUID, err = a.cs.UUID(ctx, dev); err != nil {
		return nil, err
	}
	ids := md.TokensOfType(TokenType)
	if len(ids) == 0 {
		p.Detail = "a LUKS2 volume without an amicrypt-kms token"
		if len(md.Tokens) > 0 {
			var types []string
			for _, id := range luks2.SortedIDs(md.Tokens) {
				types = append(types, md.Tokens[id].Type)
			}
			p.Detail += " (tokens: " + strings.Join(types, ", ") + ")"
		}
		return p, nil
	}
	// Any amicrypt-kms token makes the disk ours: it is never reformatted,
	// even when its token is damaged.
	p.State = StateOurs
	for _, id := range ids {
		tok, err := ParseToken(md.Tokens[id].Raw)
		if err != nil {
			if p.TokenErr == nil {
				p.TokenErr = fmt.Errorf("token %s: %w", id, err)
			}
			continue
		}
		p.Token, p.TokenID, p.TokenErr = tok, mustAtoi(id), nil
		break
	}
	return p, nil
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// mountEntry is one line of /proc/self/mounts.
type mountEntry struct {
	Source, Target, FSType string
}

// readMounts parses a mounts file (octal escapes decoded).
func readMounts(path string) ([]mountEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		out = append(out, mountEntry{Source: unescapeMount(fields[0]), Target: unescapeMount(fields[1]), FSType: fields[2]})
	}
	return out, sc.Err()
}

// unescapeMount decodes the \ooo escapes the kernel writes for space, tab,
// newline and backslash.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	ra, errA := filepath.EvalSymlinks(a)
	rb, errB := filepath.EvalSymlinks(b)
	return errA == nil && errB == nil && ra == rb
}

// mountedAt returns where dev is mounted, or "".
func mountedAt(mounts []mountEntry, dev string) string {
	for _, m := range mounts {
		if strings.HasPrefix(m.Source, "/") && sameFile(m.Source, dev) {
			return m.Target
		}
	}
	return ""
}

// mountOf returns what is mounted at dir ("" when nothing).
func mountOf(mounts []mountEntry, dir string) string {
	for _, m := range mounts {
		if m.Target == dir {
			return m.Source
		}
	}
	return ""
}

// fsProbeSpan covers the superblocks filesystemOn looks for (btrfs's is at
// 64 KiB).
const fsProbeSpan = 128 << 10

// filesystemOn names what an opened volume holds: "ext4" (an ext2/3/4
// superblock), "xfs", the description of another known signature, or ""
// when its start holds none.
func filesystemOn(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	buf := make([]byte, fsProbeSpan)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading %s: %w", dev, err)
	}
	first := buf[:n]
	has := func(off int, magic string) bool {
		return off+len(magic) <= len(first) && string(first[off:off+len(magic)]) == magic
	}
	switch {
	case has(0x438, "\x53\xef"):
		return "ext4", nil
	case has(0, "XFSB"):
		return "xfs", nil
	}
	if sig := signature(first, nil, int64(len(first))); sig != noSignature {
		return sig, nil
	}
	return "", nil
}
