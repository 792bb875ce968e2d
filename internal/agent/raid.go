package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command"
)

// mdadm drives the md RAID tools for layout raid0: the array is made before
// LUKS, so one volume (one key) covers all disks.
type mdadm struct{ r command.Runner }

// mdMember is what a member's md superblock says.
type mdMember struct {
	Level   string
	Devices int
	UUID    string
	Name    string
}

func parseExport(out []byte) map[string]string {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// examine reads dev's md superblock; ok is false when it has none.
func (m mdadm) examine(ctx context.Context, dev string) (info mdMember, ok bool, err error) {
	res, err := m.r.Run(ctx, command.Cmd{Name: "mdadm", Args: []string{"--examine", "--export", dev}})
	if command.ExitCode(err) == 1 {
		return mdMember{}, false, nil
	}
	if err != nil {
		return mdMember{}, false, fmt.Errorf("mdadm --examine %s: %w", dev, err)
	}
	kv := parseExport(res.Stdout)
	n, _ := strconv.Atoi(kv["MD_DEVICES"])
	return mdMember{Level: kv["MD_LEVEL"], Devices: n, UUID: kv["MD_UUID"], Name: kv["MD_NAME"]}, true, nil
}

// active reports whether array is assembled.
func (m mdadm) active(ctx context.Context, array string) bool {
	_, err := m.r.Run(ctx, command.Cmd{Name: "mdadm", Args: []string{"--detail", "--export", array}})
	return err == nil
}

func (m mdadm) create(ctx context.Context, array, name string, members []string) error {
	// homehost "any": whatever the instance's hostname, udev's incremental
	// assembly names the array /dev/md/NAME, not /dev/md127.
	args := []string{"--create", array, "--run", "--level=0", "--metadata=1.2", "--raid-devices=" + strconv.Itoa(len(members)), "--name=" + name, "--homehost=any"}
	if _, err := m.r.Run(ctx, command.Cmd{Name: "mdadm", Args: append(args, members...)}); err != nil {
		return fmt.Errorf("creating the raid0 array %s over %s: %w", array, strings.Join(members, ", "), err)
	}
	return nil
}

func (m mdadm) assemble(ctx context.Context, array string, members []string) error {
	args := append([]string{"--assemble", array, "--run"}, members...)
	if _, err := m.r.Run(ctx, command.Cmd{Name: "mdadm", Args: args}); err != nil {
		return fmt.Errorf("assembling the raid0 array %s from %s: %w", array, strings.Join(members, ", "), err)
	}
	return nil
}

// heldBy returns the md device that holds all members (udev may have
// assembled the array at boot under another name, e.g. /dev/md127), or "".
func heldBy(p Paths, members []string) string {
	held := ""
	for _, m := range members {
		entries, err := os.ReadDir(filepath.Join(p.SysBlock, filepath.Base(m), "holders"))
		if err != nil {
			return ""
		}
		h := ""
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "md") {
				h = e.Name()
			}
		}
		if h == "" || (held != "" && h != held) {
			return ""
		}
		held = h
	}
	if held == "" {
		return ""
	}
	return filepath.Join(p.Dev, held)
}

// activeArray returns the device of the assembled array over members:
// /dev/md/NAME, or the md device that holds them; "" when not assembled.
func (a *Agent) activeArray(ctx context.Context, members []string) string {
	if a.md.active(ctx, a.arrayDevice()) {
		return a.arrayDevice()
	}
	if dev := heldBy(a.paths, members); dev != "" && a.md.active(ctx, dev) {
		return dev
	}
	return ""
}
