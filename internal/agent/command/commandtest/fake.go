// Package commandtest is a recording fake of the system tools the agent
// drives (cryptsetup, mdadm, mkfs, wipefs, mount, systemctl). It keeps a
// small model of LUKS volumes, arrays, mappings and mounts, so the agent's
// decisions can be tested end to end without root, device-mapper or disks,
// and it records every call and whether it wrote to a device.
//
// Devices are real files (a test's sparse files); the fake writes the few
// bytes a probe looks at (the LUKS magic, an md superblock magic, a
// filesystem magic) so what the agent reads agrees with what it did.
package commandtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command"
)

// Call is one recorded command.
type Call struct {
	Name   string
	Args   []string
	Writes bool // it changed a device (format, token, keyslot, mkfs, wipe, array)
	// Secrets are what the command received on stdin and its pipes. The
	// fake keeps them so tests can check that no secret ever shows up in an
	// argument; a real runner keeps nothing.
	Secrets [][]byte
	// Buffers are the caller's own stdin and pipe slices (not copies), so a
	// test can check that the caller cleared them after use.
	Buffers [][]byte
	Code    int // exit status the fake answered
}

// String is the command line.
func (c Call) String() string { return strings.Join(append([]string{c.Name}, c.Args...), " ") }

// Failure makes matching commands fail.
type Failure struct {
	Match  string // substring of the command line
	Code   int
	Stderr string
	Times  int // how many times (0: always)
}

// Volume is the fake's model of a LUKS2 header.
type Volume struct {
	UUID, Label, Subsystem string
	Slots                  map[int][32]byte // keyslot -> SHA-256 of its passphrase
	Tokens                 map[int]json.RawMessage
}

type array struct {
	uuid, name string
	members    []string
	active     bool
}

// Fake implements command.Runner.
type Fake struct {
	// MapperDir is where an opened volume appears (default: a temp dir the
	// test gives). MountsFile receives a line per mount, in /proc/mounts
	// format. UnitDir is where systemctl reads mount units.
	MapperDir, MountsFile, UnitDir string
	// NoDeviceMapper makes open fail as on a kernel without device-mapper.
	NoDeviceMapper bool
	// Version is what cryptsetup --version prints (default 2.6.1).
	Version string
	// BeforeWrite, when set, runs before every command that writes to a
	// device; an error fails the command.
	BeforeWrite func(Call) error

	mu       sync.Mutex
	calls    []Call
	failures []Failure
	luks     map[string]*Volume
	active   map[string]string // dm name -> device
	fsOn     map[string]string // LUKS device -> filesystem type inside
	arrays   map[string]*array // array device -> array
	member   map[string]string // member device -> array device
	mounts   []string
}

// New returns a fake whose mapped devices appear in mapperDir and whose
// mounts are written to mountsFile; unitDir holds systemd mount units.
func New(mapperDir, mountsFile, unitDir string) *Fake {
	return &Fake{MapperDir: mapperDir, MountsFile: mountsFile, UnitDir: unitDir,
		luks: map[string]*Volume{}, active: map[string]string{}, fsOn: map[string]string{},
		arrays: map[string]*array{}, member: map[string]string{}}
}

// Fail makes commands whose line contains f.Match fail.
func (f *Fake) Fail(fl Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, fl)
}

// Calls returns the recorded calls.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Writes returns the recorded calls that wrote to a device.
func (f *Fake) Writes() []Call {
	var w []Call
	for _, c := range f.Calls() {
		if c.Writes {
			w = append(w, c)
		}
	}
	return w
}

// Volume returns a copy of the LUKS model of dev (nil when not LUKS).
func (f *Fake) Volume(dev string) *Volume {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.luks[dev]
	if v == nil {
		return nil
	}
	c := *v
	c.Slots, c.Tokens = map[int][32]byte{}, map[int]json.RawMessage{}
	for k, s := range v.Slots {
		c.Slots[k] = s
	}
	for k, t := range v.Tokens {
		c.Tokens[k] = t
	}
	return &c
}

// AddLUKS makes dev a LUKS2 volume made by someone else (no token), with
// one keyslot opened by passphrase.
func (f *Fake) AddLUKS(dev, uuid string, passphrase []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := writeAt(dev, 0, luksMagic); err != nil {
		return err
	}
	f.luks[dev] = &Volume{UUID: uuid, Slots: map[int][32]byte{0: sha256.Sum256(passphrase)}, Tokens: map[int]json.RawMessage{}}
	return nil
}

// Reboot forgets what lives only in memory: mappings, assembled arrays and
// mounts, and the mapped device files.
func (f *Fake) Reboot() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name := range f.active {
		os.Remove(filepath.Join(f.MapperDir, name))
	}
	f.active = map[string]string{}
	for _, a := range f.arrays {
		a.active = false
	}
	f.mounts = nil
	if f.MountsFile != "" {
		_ = os.WriteFile(f.MountsFile, nil, 0o644) // a test's temp file
	}
}

// AssembleAs assembles the array made as array under another device path,
// as udev's incremental assembly may at boot (/dev/md127). The LUKS volume
// on it moves along.
func (f *Fake) AssembleAs(array, dev string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.arrays[array]
	if !ok {
		return fmt.Errorf("no array %s", array)
	}
	if err := os.Rename(array, dev); err != nil {
		return err
	}
	delete(f.arrays, array)
	f.arrays[dev] = a
	a.active = true
	for _, m := range a.members {
		f.member[m] = dev
	}
	if v, ok := f.luks[array]; ok {
		delete(f.luks, array)
		f.luks[dev] = v
	}
	if fs, ok := f.fsOn[array]; ok {
		delete(f.fsOn, array)
		f.fsOn[dev] = fs
	}
	return nil
}

var (
	luksMagic = []byte("LUKS\xba\xbe\x00\x02")
	mdMagic   = []byte{0xfc, 0x4e, 0x2b, 0xa9} // md superblock 1.x, little-endian a92b4efc
)

func writeAt(path string, off int64, b []byte) error {
	fl, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer fl.Close()
	_, err = fl.WriteAt(b, off)
	return err
}

type exit struct {
	code   int
	stdout string
	stderr string
}

func fail(code int, format string, args ...any) exit {
	return exit{code: code, stderr: fmt.Sprintf(format, args...)}
}

// parsed is a command line split into flags and positionals.
type parsed struct {
	flags map[string]string
	pos   []string
}

func (p parsed) has(f string) bool { _, ok := p.flags[f]; return ok }

// parseArgs splits args; valueFlags take the next argument (or =value).
func parseArgs(args []string, valueFlags ...string) (parsed, error) {
	p := parsed{flags: map[string]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			p.pos = append(p.pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		if slices.Contains(valueFlags, name) && !hasVal {
			if i+1 >= len(args) {
				return p, fmt.Errorf("%s needs a value", name)
			}
			i++
			val = args[i]
		}
		p.flags[name] = val
	}
	return p, nil
}

// Run implements command.Runner.
func (f *Fake) Run(ctx context.Context, cmd command.Cmd) (command.Result, error) {
	if err := ctx.Err(); err != nil {
		return command.Result{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	call := Call{Name: filepath.Base(cmd.Name), Args: slices.Clone(cmd.Args)}
	if cmd.Stdin != nil {
		call.Secrets = append(call.Secrets, slices.Clone(cmd.Stdin))
		call.Buffers = append(call.Buffers, cmd.Stdin)
	}
	for _, p := range cmd.Pipes {
		call.Secrets = append(call.Secrets, slices.Clone(p))
		call.Buffers = append(call.Buffers, p)
	}
	call.Writes = writes(call)
	var res exit
	if fl, ok := f.failure(call); ok {
		res = exit{code: fl.Code, stderr: fl.Stderr}
	} else if call.Writes && f.BeforeWrite != nil {
		if err := f.BeforeWrite(call); err != nil {
			res = fail(1, "%v", err)
		}
	}
	if res.code == 0 && res.stderr == "" {
		res = f.dispatch(call, cmd)
	}
	call.Code = res.code
	f.calls = append(f.calls, call)
	out := command.Result{Stdout: []byte(res.stdout), Stderr: []byte(res.stderr)}
	if res.code != 0 {
		return out, &command.ExitError{Cmd: call.String(), Code: res.code, Stderr: strings.TrimSpace(res.stderr)}
	}
	return out, nil
}

func (f *Fake) failure(c Call) (Failure, bool) {
	line := c.String()
	for i := range f.failures {
		fl := &f.failures[i]
		if fl.Times < 0 || !strings.Contains(line, fl.Match) {
			continue
		}
		if fl.Times > 0 {
			fl.Times--
			if fl.Times == 0 {
				fl.Times = -1
			}
		}
		return *fl, true
	}
	return Failure{}, false
}

// writes reports whether a command changes a device.
func writes(c Call) bool {
	switch c.Name {
	case "cryptsetup":
		if len(c.Args) == 0 {
			return false
		}
		switch c.Args[0] {
		case "luksFormat", "luksAddKey", "luksKillSlot":
			return true
		case "token":
			return len(c.Args) > 1 && c.Args[1] != "export"
		}
	case "mkfs.ext4", "mkfs.xfs", "wipefs":
		return true
	case "mdadm":
		return slices.Contains(c.Args, "--create") || slices.Contains(c.Args, "--zero-superblock")
	}
	return false
}

func (f *Fake) dispatch(c Call, cmd command.Cmd) exit {
	switch c.Name {
	case "cryptsetup":
		return f.cryptsetup(c, cmd)
	case "mdadm":
		return f.mdadm(c)
	case "mkfs.ext4", "mkfs.xfs":
		return f.mkfs(c)
	case "wipefs":
		return f.wipefs(c)
	case "mount":
		return f.mount(c)
	case "systemctl":
		return f.systemctl(c)
	}
	return fail(127, "%s: command not found", c.Name)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (f *Fake) cryptsetup(c Call, cmd command.Cmd) exit {
	p, err := parseArgs(c.Args, "--type", "--cipher", "--key-size", "--key-slot", "--key-file", "--pbkdf",
		"--pbkdf-force-iterations", "--uuid", "--label", "--subsystem", "--token-id", "--new-key-slot", "--json-file")
	if err != nil {
		return fail(1, "%v", err)
	}
	if p.has("--version") {
		v := f.Version
		if v == "" {
			v = "2.6.1"
		}
		return exit{stdout: "cryptsetup " + v + " flags: UDEV BLKID KEYRING KERNEL_CAPI\n"}
	}
	if len(p.pos) == 0 {
		return fail(1, "no action")
	}
	action, pos := p.pos[0], p.pos[1:]
	if p.has("--key-file") && p.flags["--key-file"] != "-" {
		return fail(1, "the fake accepts passphrases on stdin only (--key-file -), got %s", p.flags["--key-file"])
	}
	needDev := func(n int) (string, *Volume, exit, bool) {
		if len(pos) < n {
			return "", nil, fail(1, "%s: missing arguments", action), false
		}
		dev := pos[0]
		if !exists(dev) {
			return "", nil, fail(4, "Device %s does not exist or access denied.", dev), false
		}
		return dev, f.luks[dev], exit{}, true
	}
	switch action {
	case "isLuks":
		dev, v, e, ok := needDev(1)
		if !ok {
			return e
		}
		if v == nil {
			return fail(1, "Device %s is not a valid LUKS device.", dev)
		}
		return exit{}
	case "luksDump":
		dev, v, e, ok := needDev(1)
		if !ok {
			return e
		}
		if v == nil {
			return fail(1, "Device %s is not a valid LUKS device.", dev)
		}
		if !p.has("--dump-json-metadata") {
			return fail(1, "the fake dumps JSON only")
		}
		return exit{stdout: v.metadataJSON()}
	case "luksUUID":
		dev, v, e, ok := needDev(1)
		if !ok {
			return e
		}
		if v == nil {
			return fail(1, "Device %s is not a valid LUKS device.", dev)
		}
		return exit{stdout: v.UUID + "\n"}
	case "luksFormat":
		dev, _, e, ok := needDev(1)
		if !ok {
			return e
		}
		if p.flags["--type"] != "luks2" || p.flags["--key-file"] != "-" || len(cmd.Stdin) == 0 {
			return fail(1, "the fake formats LUKS2 with a passphrase on stdin only")
		}
		for _, a := range f.activeOn(dev) {
			return fail(5, "Cannot format device %s in use (mapped as %s).", dev, a)
		}
		if err := writeAt(dev, 0, luksMagic); err != nil {
			return fail(1, "%v", err)
		}
		uuid := p.flags["--uuid"]
		if uuid == "" {
			uuid = "00000000-0000-4000-8000-000000000000"
		}
		f.luks[dev] = &Volume{UUID: uuid, Label: p.flags["--label"], Subsystem: p.flags["--subsystem"],
			Slots: map[int][32]byte{0: sha256.Sum256(cmd.Stdin)}, Tokens: map[int]json.RawMessage{}}
		delete(f.fsOn, dev)
		return exit{}
	case "token":
		if len(pos) < 2 {
			return fail(1, "token: missing arguments")
		}
		sub := pos[0]
		pos = pos[1:]
		dev, v, e, ok := needDev(1)
		if !ok {
			return e
		}
		if v == nil {
			return fail(1, "Device %s is not a valid LUKS device.", dev)
		}
		id := -1
		if s, ok := p.flags["--token-id"]; ok {
			id, _ = strconv.Atoi(s)
		}
		switch sub {
		case "export":
			t, ok := v.Tokens[id]
			if !ok {
				return fail(1, "Failed to get token %d for export.", id)
			}
			return exit{stdout: string(t)}
		case "import":
			var head struct {
				Type     string   `json:"type"`
				Keyslots []string `json:"keyslots"`
			}
			if err := json.Unmarshal(cmd.Stdin, &head); err != nil || head.Type == "" || head.Keyslots == nil {
				return fail(1, "Failed to import token from file.")
			}
			for _, ks := range head.Keyslots {
				n, err := strconv.Atoi(ks)
				if _, ok := v.Slots[n]; err != nil || !ok {
					return fail(1, "Failed to import token from file.")
				}
			}
			if id < 0 {
				for id = 0; v.Tokens[id] != nil; id++ {
				}
			}
			if _, taken := v.Tokens[id]; taken && !p.has("--token-replace") {
				return fail(1, "Token %d in use.", id)
			}
			var buf bytes.Buffer
			if err := json.Compact(&buf, cmd.Stdin); err != nil {
				return fail(1, "Failed to import token from file.")
			}
			v.Tokens[id] = buf.Bytes()
			return exit{stdout: fmt.Sprintf("Token %d created.\n", id)}
		case "remove":
			delete(v.Tokens, id)
			return exit{}
		}
		return fail(1, "token %s: not in the fake", sub)
	case "open":
		if !p.has("--test-passphrase") && len(pos) < 2 {
			return fail(1, "open: missing arguments")
		}
		dev, v, e, ok := needDev(1)
		if !ok {
			return e
		}
		if v == nil {
			return fail(1, "Device %s is not a valid LUKS device.", dev)
		}
		slot := -1
		if s, ok := p.flags["--key-slot"]; ok {
			slot, _ = strconv.Atoi(s)
		}
		if !v.opens(slot, cmd.Stdin) {
			return fail(2, "No key available with this passphrase.")
		}
		if p.has("--test-passphrase") {
			return exit{}
		}
		name := pos[1]
		if f.NoDeviceMapper {
			return fail(1, "Cannot initialize device-mapper. Is dm_mod kernel module loaded?\nCannot use device %s, name is invalid or still in use.", name)
		}
		if _, busy := f.active[name]; busy {
			return fail(5, "Device %s already exists.", name)
		}
		if len(f.activeOn(dev)) > 0 {
			return fail(5, "Cannot use device %s which is in use (already mapped or mounted).", dev)
		}
		mapped := filepath.Join(f.MapperDir, name)
		if err := os.WriteFile(mapped, nil, 0o600); err != nil {
			return fail(1, "%v", err)
		}
		if err := os.Truncate(mapped, 16<<20); err != nil {
			return fail(1, "%v", err)
		}
		// As real dm-crypt over a disk that was zeros, a volume without a
		// filesystem reads as the decryption of zeros, which looks random:
		// never as zeros.
		if err := writeAt(mapped, 0, bytes.Repeat([]byte{0xa5}, 128<<10)); err != nil {
			return fail(1, "%v", err)
		}
		if fs := f.fsOn[dev]; fs != "" {
			if err := writeFSMagic(mapped, fs); err != nil {
				return fail(1, "%v", err)
			}
		}
		f.active[name] = dev
		return exit{}
	case "status":
		if len(pos) < 1 {
			return fail(1, "status: missing arguments")
		}
		if f.NoDeviceMapper {
			return fail(1, "Cannot initialize device-mapper. Is dm_mod kernel module loaded?")
		}
		dev, ok := f.active[pos[0]]
		if !ok {
			return fail(4, "/dev/mapper/%s is inactive.", pos[0])
		}
		return exit{stdout: fmt.Sprintf("/dev/mapper/%s is active.\n  type:    LUKS2\n  cipher:  aes-xts-plain64\n  device:  %s\n", pos[0], dev)}
	case "close":
		if len(pos) < 1 {
			return fail(1, "close: missing arguments")
		}
		if _, ok := f.active[pos[0]]; !ok {
			return fail(4, "Device %s is not active.", pos[0])
		}
		delete(f.active, pos[0])
		os.Remove(filepath.Join(f.MapperDir, pos[0]))
		return exit{}
	case "luksAddKey":
		dev, v, e, ok := needDev(2)
		if !ok {
			return e
		}
		if v == nil {
			return fail(1, "Device %s is not a valid LUKS device.", dev)
		}
		if pos[1] != "/dev/fd/3" || len(cmd.Pipes) != 1 {
			return fail(1, "the fake takes the new passphrase on /dev/fd/3 only")
		}
		if !v.opens(-1, cmd.Stdin) {
			return fail(2, "No key available with this passphrase.")
		}
		n, err := strconv.Atoi(p.flags["--new-key-slot"])
		if err != nil {
			return fail(1, "the fake wants --new-key-slot")
		}
		if _, taken := v.Slots[n]; taken {
			return fail(1, "Key slot %d is full, please select another one.", n)
		}
		v.Slots[n] = sha256.Sum256(cmd.Pipes[0])
		return exit{}
	case "luksKillSlot":
		dev, v, e, ok := needDev(2)
		if !ok {
			return e
		}
		if v == nil {
			return fail(1, "Device %s is not a valid LUKS device.", dev)
		}
		n, err := strconv.Atoi(pos[1])
		if _, has := v.Slots[n]; err != nil || !has {
			return fail(1, "Keyslot %s is not active.", pos[1])
		}
		if !v.opensOther(n, cmd.Stdin) {
			return fail(2, "No key available with this passphrase.")
		}
		delete(v.Slots, n)
		for id, raw := range v.Tokens {
			v.Tokens[id] = dropKeyslot(raw, strconv.Itoa(n))
		}
		return exit{}
	}
	return fail(1, "cryptsetup %s: not in the fake", action)
}

func (f *Fake) activeOn(dev string) []string {
	var names []string
	for n, d := range f.active {
		if d == dev {
			names = append(names, n)
		}
	}
	return names
}

func (v *Volume) opens(slot int, pass []byte) bool {
	sum := sha256.Sum256(pass)
	for n, s := range v.Slots {
		if (slot < 0 || slot == n) && s == sum {
			return true
		}
	}
	return false
}

func (v *Volume) opensOther(except int, pass []byte) bool {
	sum := sha256.Sum256(pass)
	for n, s := range v.Slots {
		if n != except && s == sum {
			return true
		}
	}
	return false
}

func dropKeyslot(raw json.RawMessage, slot string) json.RawMessage {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	if ks, ok := m["keyslots"].([]any); ok {
		var kept []any
		for _, s := range ks {
			if s != slot {
				kept = append(kept, s)
			}
		}
		if kept == nil {
			kept = []any{}
		}
		m["keyslots"] = kept
	}
	out, _ := json.Marshal(m)
	return out
}

// metadataJSON is what luksDump --dump-json-metadata prints for the model.
func (v *Volume) metadataJSON() string {
	var slots []int
	for n := range v.Slots {
		slots = append(slots, n)
	}
	sort.Ints(slots)
	ks := map[string]any{}
	var slotIDs []string
	for _, n := range slots {
		id := strconv.Itoa(n)
		slotIDs = append(slotIDs, id)
		ks[id] = map[string]any{
			"type": "luks2", "key_size": 64,
			"af":   map[string]any{"type": "luks1", "stripes": 4000, "hash": "sha256"},
			"area": map[string]any{"type": "raw", "offset": strconv.Itoa(32768 + n*258048), "size": "258048", "encryption": "aes-xts-plain64", "key_size": 64},
			"kdf":  map[string]any{"type": "pbkdf2", "hash": "sha256", "iterations": 1000, "salt": "AAAA"},
		}
	}
	tokens := map[string]json.RawMessage{}
	for id, t := range v.Tokens {
		tokens[strconv.Itoa(id)] = t
	}
	md := map[string]any{
		"keyslots": ks,
		"tokens":   tokens,
		"segments": map[string]any{"0": map[string]any{"type": "crypt", "offset": "16777216", "size": "dynamic", "iv_tweak": "0", "encryption": "aes-xts-plain64", "sector_size": 4096}},
		"digests":  map[string]any{"0": map[string]any{"type": "pbkdf2", "keyslots": slotIDs, "segments": []string{"0"}, "hash": "sha256", "iterations": 1000, "salt": "AAAA", "digest": "AAAA"}},
		"config":   map[string]any{"json_size": "12288", "keyslots_size": "16744448"},
	}
	out, _ := json.MarshalIndent(md, "", "  ")
	return string(out)
}

func writeFSMagic(path, fs string) error {
	switch fs {
	case "ext4":
		return writeAt(path, 0x438, []byte{0x53, 0xef})
	case "xfs":
		return writeAt(path, 0, []byte("XFSB"))
	}
	return fmt.Errorf("no magic for %s", fs)
}

func (f *Fake) mkfs(c Call) exit {
	fs := strings.TrimPrefix(c.Name, "mkfs.")
	p, _ := parseArgs(c.Args)
	if len(p.pos) != 1 {
		return fail(1, "%s: want one device", c.Name)
	}
	dev := p.pos[0]
	if !exists(dev) {
		return fail(1, "%s: No such file or directory while trying to determine filesystem size", dev)
	}
	if err := writeFSMagic(dev, fs); err != nil {
		return fail(1, "%v", err)
	}
	if filepath.Dir(dev) == filepath.Clean(f.MapperDir) {
		if under, ok := f.active[filepath.Base(dev)]; ok {
			f.fsOn[under] = fs
		}
	}
	return exit{}
}

func (f *Fake) wipefs(c Call) exit {
	p, _ := parseArgs(c.Args)
	if !p.has("--all") || len(p.pos) != 1 {
		return fail(1, "the fake wipes with --all DEVICE only")
	}
	dev := p.pos[0]
	if len(f.activeOn(dev)) > 0 {
		return fail(1, "wipefs: error: %s: probing initialization failed: Device or resource busy", dev)
	}
	if err := writeAt(dev, 0, make([]byte, 64<<10)); err != nil {
		return fail(1, "%v", err)
	}
	delete(f.luks, dev)
	delete(f.fsOn, dev)
	delete(f.member, dev)
	return exit{}
}

func (f *Fake) mdadm(c Call) exit {
	p, err := parseArgs(c.Args)
	if err != nil {
		return fail(1, "%v", err)
	}
	switch {
	case p.has("--examine"):
		if len(p.pos) != 1 {
			return fail(1, "mdadm --examine: one device")
		}
		a, ok := f.arrays[f.member[p.pos[0]]]
		if !ok {
			return fail(1, "mdadm: No md superblock detected on %s.", p.pos[0])
		}
		return exit{stdout: fmt.Sprintf("MD_LEVEL=raid0\nMD_DEVICES=%d\nMD_NAME=any:%s\nMD_UUID=%s\n", len(a.members), a.name, a.uuid)}
	case p.has("--create"):
		if len(p.pos) < 3 || p.flags["--level"] != "0" || p.flags["--raid-devices"] != strconv.Itoa(len(p.pos)-1) || !p.has("--run") {
			return fail(1, "the fake creates raid0 as: --create ARRAY --run --level=0 --raid-devices=N DEVICES")
		}
		arr, members := p.pos[0], p.pos[1:]
		for _, m := range members {
			if _, ok := f.member[m]; ok || f.luks[m] != nil {
				return fail(1, "mdadm: %s appears to be part of another array or holds data (the fake refuses without wipefs)", m)
			}
		}
		if err := os.MkdirAll(filepath.Dir(arr), 0o755); err != nil {
			return fail(1, "%v", err)
		}
		if err := os.WriteFile(arr, nil, 0o600); err != nil {
			return fail(1, "%v", err)
		}
		if err := os.Truncate(arr, int64(len(members))*(32<<20)); err != nil {
			return fail(1, "%v", err)
		}
		sum := sha256.Sum256([]byte(strings.Join(members, ",")))
		a := &array{uuid: fmt.Sprintf("%x:%x:%x:%x", sum[0:4], sum[4:8], sum[8:12], sum[12:16]), name: p.flags["--name"], members: members, active: true}
		for _, m := range members {
			if err := writeAt(m, 4096, mdMagic); err != nil {
				return fail(1, "%v", err)
			}
			f.member[m] = arr
		}
		f.arrays[arr] = a
		return exit{}
	case p.has("--assemble"):
		if len(p.pos) < 2 {
			return fail(1, "mdadm --assemble: ARRAY DEVICES")
		}
		arr := p.pos[0]
		a, ok := f.arrays[arr]
		if !ok {
			return fail(1, "mdadm: no RAID superblock on the devices given for %s", arr)
		}
		for _, m := range p.pos[1:] {
			if f.member[m] != arr {
				return fail(1, "mdadm: %s is not part of %s", m, arr)
			}
		}
		if a.active {
			return fail(1, "mdadm: %s is already in use.", arr)
		}
		a.active = true
		return exit{}
	case p.has("--detail"):
		if len(p.pos) != 1 {
			return fail(1, "mdadm --detail: one array")
		}
		a, ok := f.arrays[p.pos[0]]
		if !ok || !a.active {
			return fail(1, "mdadm: cannot open %s: No such file or directory", p.pos[0])
		}
		return exit{stdout: fmt.Sprintf("MD_LEVEL=raid0\nMD_DEVICES=%d\nMD_UUID=%s\n", len(a.members), a.uuid)}
	case p.has("--stop"):
		if len(p.pos) != 1 {
			return fail(1, "mdadm --stop: one array")
		}
		if a, ok := f.arrays[p.pos[0]]; ok {
			a.active = false
		}
		return exit{}
	}
	return fail(1, "mdadm %v: not in the fake", c.Args)
}

func (f *Fake) mount(c Call) exit {
	p, err := parseArgs(c.Args, "-t", "-o")
	if err != nil || len(p.pos) != 2 || p.flags["-t"] == "" {
		return fail(1, "the fake mounts as: mount -t TYPE DEVICE DIR")
	}
	return f.doMount(p.pos[0], p.pos[1], p.flags["-t"])
}

func (f *Fake) doMount(dev, dir, fs string) exit {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fail(32, "mount: %s: mount point does not exist.", dir)
	}
	if !exists(dev) {
		return fail(32, "mount: %s: special device %s does not exist.", dir, dev)
	}
	under := f.active[filepath.Base(dev)]
	if filepath.Dir(dev) != filepath.Clean(f.MapperDir) || f.fsOn[under] != fs {
		return fail(32, "mount: %s: wrong fs type, bad option, bad superblock on %s.", dir, dev)
	}
	for _, m := range f.mounts {
		if strings.Fields(m)[1] == dir {
			return fail(32, "mount: %s: %s already mounted or mount point busy.", dir, dev)
		}
	}
	line := fmt.Sprintf("%s %s %s rw,relatime 0 0", dev, dir, fs)
	f.mounts = append(f.mounts, line)
	if f.MountsFile != "" {
		if err := os.WriteFile(f.MountsFile, []byte(strings.Join(f.mounts, "\n")+"\n"), 0o644); err != nil {
			return fail(1, "%v", err)
		}
	}
	return exit{}
}

func (f *Fake) systemctl(c Call) exit {
	if len(c.Args) == 1 && c.Args[0] == "daemon-reload" {
		return exit{}
	}
	if len(c.Args) != 2 || c.Args[0] != "start" {
		return fail(1, "systemctl %v: not in the fake", c.Args)
	}
	unit := c.Args[1]
	b, err := os.ReadFile(filepath.Join(f.UnitDir, unit))
	if err != nil {
		return fail(5, "Failed to start %s: Unit %s not found.", unit, unit)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if e := f.doMount(kv["What"], kv["Where"], kv["Type"]); e.code != 0 {
		return fail(1, "Job for %s failed. %s", unit, e.stderr)
	}
	return exit{}
}
