// Package cryptsetup drives the cryptsetup CLI (2.5 or later) for the agent:
// LUKS2 format, tokens, keyslots, passphrase tests and activation. Every
// passphrase goes on standard input or an inherited pipe, never in an
// argument or a file.
package cryptsetup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/luks2"
)

// Keyslot parameters of every passphrase the agent sets. The passphrase is a
// 256-bit random data key, so a memory-hard or slow KDF adds nothing but
// boot time; Argon2's default memory cost runs small instances out of memory.
var keyslotArgs = []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}

// Exit statuses of cryptsetup (cryptsetup(8), RETURN CODES).
const (
	exitWrongPassphrase = 2
	exitNoSuchDevice    = 4
)

// ErrWrongPassphrase means no keyslot (or not the one asked for) opens with
// the passphrase.
var ErrWrongPassphrase = errors.New("no key available with this passphrase")

// The oldest cryptsetup the agent works with: 2.5 brought `token import
// --token-replace` and `luksDump --dump-json-metadata`.
const (
	MinMajor = 2
	MinMinor = 5
)

// CLI is the cryptsetup command line.
type CLI struct {
	Runner command.Runner
	Path   string // default "cryptsetup"
}

func (c CLI) run(ctx context.Context, stdin []byte, pipes [][]byte, args ...string) (command.Result, error) {
	path := c.Path
	if path == "" {
		path = "cryptsetup"
	}
	return c.Runner.Run(ctx, command.Cmd{Name: path, Args: args, Stdin: stdin, Pipes: pipes})
}

var versionRe = regexp.MustCompile(`cryptsetup (\d+)\.(\d+)\.(\d+)`)

// Version returns cryptsetup's version (major, minor, patch).
func (c CLI) Version(ctx context.Context) ([3]int, error) {
	res, err := c.run(ctx, nil, nil, "--version")
	if err != nil {
		return [3]int{}, fmt.Errorf("asking the cryptsetup version: %w", err)
	}
	m := versionRe.FindSubmatch(res.Stdout)
	if m == nil {
		return [3]int{}, fmt.Errorf("cryptsetup --version printed %q, not a version", bytes.TrimSpace(res.Stdout))
	}
	var v [3]int
	for i := range v {
		v[i], _ = strconv.Atoi(string(m[i+1]))
	}
	return v, nil
}

// CheckVersion fails when cryptsetup is missing or older than MinVersion.
func (c CLI) CheckVersion(ctx context.Context) error {
	v, err := c.Version(ctx)
	if err != nil {
		return err
	}
	if v[0] < MinMajor || (v[0] == MinMajor && v[1] < MinMinor) {
		return fmt.Errorf("cryptsetup %d.%d.%d is too old: the agent needs %d.%d or later (token import --token-replace, luksDump --dump-json-metadata); install a newer cryptsetup in the image", v[0], v[1], v[2], MinMajor, MinMinor)
	}
	return nil
}

// IsLUKS reports whether dev holds a LUKS header (any version).
func (c CLI) IsLUKS(ctx context.Context, dev string) (bool, error) {
	_, err := c.run(ctx, nil, nil, "isLuks", dev)
	switch command.ExitCode(err) {
	case -1:
		if err != nil {
			return false, fmt.Errorf("checking %s for a LUKS header: %w", dev, err)
		}
		return true, nil
	case 1:
		return false, nil
	}
	return false, fmt.Errorf("checking %s for a LUKS header: %w", dev, err)
}

// Metadata returns the LUKS2 JSON metadata of dev.
func (c CLI) Metadata(ctx context.Context, dev string) (*luks2.Metadata, error) {
	res, err := c.run(ctx, nil, nil, "luksDump", "--dump-json-metadata", dev)
	if err != nil {
		return nil, fmt.Errorf("reading the LUKS2 metadata of %s: %w", dev, err)
	}
	md, err := luks2.ParseMetadata(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("reading the LUKS2 metadata of %s: %w", dev, err)
	}
	return md, nil
}

// UUID returns the LUKS UUID of dev.
func (c CLI) UUID(ctx context.Context, dev string) (string, error) {
	res, err := c.run(ctx, nil, nil, "luksUUID", dev)
	if err != nil {
		return "", fmt.Errorf("reading the LUKS UUID of %s: %w", dev, err)
	}
	return strings.TrimSpace(string(res.Stdout)), nil
}

// FormatOptions are the header fields luksFormat sets.
type FormatOptions struct {
	UUID      string // LUKS UUID (the agent binds it into the KMS context)
	Label     string
	Subsystem string
}

// Format makes dev a LUKS2 volume (AES-XTS, 512-bit key) with passphrase in
// keyslot 0.
func (c CLI) Format(ctx context.Context, dev string, o FormatOptions, passphrase []byte) error {
	args := []string{"luksFormat", "--type", "luks2", "--batch-mode", "--cipher", "aes-xts-plain64", "--key-size", "512",
		"--key-slot", "0", "--key-file", "-"}
	args = append(args, keyslotArgs...)
	if o.UUID != "" {
		args = append(args, "--uuid", o.UUID)
	}
	if o.Label != "" {
		args = append(args, "--label", o.Label)
	}
	if o.Subsystem != "" {
		args = append(args, "--subsystem", o.Subsystem)
	}
	if _, err := c.run(ctx, passphrase, nil, append(args, dev)...); err != nil {
		return fmt.Errorf("formatting %s as LUKS2: %w", dev, err)
	}
	return nil
}

// ImportToken stores token (a JSON object with type and keyslots) as token
// id of dev; with replace, it replaces the token already there in one
// header update.
func (c CLI) ImportToken(ctx context.Context, dev string, id int, token []byte, replace bool) error {
	args := []string{"token", "import", "--token-id", strconv.Itoa(id)}
	if replace {
		args = append(args, "--token-replace")
	}
	if _, err := c.run(ctx, token, nil, append(args, dev)...); err != nil {
		return fmt.Errorf("storing token %d in the header of %s: %w", id, dev, err)
	}
	return nil
}

// ExportToken returns token id of dev.
func (c CLI) ExportToken(ctx context.Context, dev string, id int) ([]byte, error) {
	res, err := c.run(ctx, nil, nil, "token", "export", "--token-id", strconv.Itoa(id), dev)
	if err != nil {
		return nil, fmt.Errorf("reading token %d of %s: %w", id, dev, err)
	}
	return res.Stdout, nil
}

// TestPassphrase checks that passphrase opens keyslot slot of dev (slot < 0:
// any keyslot) without activating anything: no device-mapper needed.
func (c CLI) TestPassphrase(ctx context.Context, dev string, slot int, passphrase []byte) error {
	args := []string{"open", "--test-passphrase", "--disable-external-tokens", "--key-file", "-"}
	if slot >= 0 {
		args = append(args, "--key-slot", strconv.Itoa(slot))
	}
	_, err := c.run(ctx, passphrase, nil, append(args, dev)...)
	if command.ExitCode(err) == exitWrongPassphrase {
		return fmt.Errorf("testing the key on keyslot %d of %s: %w", slot, dev, ErrWrongPassphrase)
	}
	if err != nil {
		return fmt.Errorf("testing the key on %s: %w", dev, err)
	}
	return nil
}

// Open activates dev as /dev/mapper/name.
func (c CLI) Open(ctx context.Context, dev, name string, passphrase []byte) error {
	_, err := c.run(ctx, passphrase, nil, "open", "--type", "luks2", "--disable-external-tokens", "--key-file", "-", dev, name)
	if command.ExitCode(err) == exitWrongPassphrase {
		return fmt.Errorf("opening %s as %s: %w", dev, name, ErrWrongPassphrase)
	}
	if err != nil {
		return fmt.Errorf("opening %s as %s: %w", dev, name, err)
	}
	return nil
}

// Close deactivates /dev/mapper/name.
func (c CLI) Close(ctx context.Context, name string) error {
	if _, err := c.run(ctx, nil, nil, "close", name); err != nil {
		return fmt.Errorf("closing %s: %w", name, err)
	}
	return nil
}

// Mapping is the state of a device-mapper name.
type Mapping struct {
	Active bool
	Device string // the underlying device when active
}

// Status reports whether /dev/mapper/name is active and on which device.
// Without device-mapper in the kernel cryptsetup fails with status 1; the
// caller decides what that means.
func (c CLI) Status(ctx context.Context, name string) (Mapping, error) {
	res, err := c.run(ctx, nil, nil, "status", name)
	if command.ExitCode(err) == exitNoSuchDevice {
		return Mapping{}, nil
	}
	if err != nil {
		return Mapping{}, fmt.Errorf("asking whether %s is open: %w", name, err)
	}
	m := Mapping{Active: true}
	sc := bufio.NewScanner(bytes.NewReader(res.Stdout))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "device:"); ok {
			m.Device = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// AddKey adds a keyslot newSlot opened by added, authorized by existing.
// existing goes on stdin and added on an inherited pipe (/dev/fd/3).
func (c CLI) AddKey(ctx context.Context, dev string, newSlot int, existing, added []byte) error {
	args := append([]string{"luksAddKey", "--batch-mode", "--key-file", "-", "--new-key-slot", strconv.Itoa(newSlot)}, keyslotArgs...)
	args = append(args, dev, "/dev/fd/3")
	_, err := c.run(ctx, existing, [][]byte{added}, args...)
	if command.ExitCode(err) == exitWrongPassphrase {
		return fmt.Errorf("adding a keyslot to %s: %w", dev, ErrWrongPassphrase)
	}
	if err != nil {
		return fmt.Errorf("adding keyslot %d to %s: %w", newSlot, dev, err)
	}
	return nil
}

// KillSlot wipes keyslot slot of dev; remaining must open another keyslot.
func (c CLI) KillSlot(ctx context.Context, dev string, slot int, remaining []byte) error {
	_, err := c.run(ctx, remaining, nil, "luksKillSlot", "--batch-mode", "--key-file", "-", dev, strconv.Itoa(slot))
	if command.ExitCode(err) == exitWrongPassphrase {
		return fmt.Errorf("killing keyslot %d of %s: %w", slot, dev, ErrWrongPassphrase)
	}
	if err != nil {
		return fmt.Errorf("killing keyslot %d of %s: %w", slot, dev, err)
	}
	return nil
}
