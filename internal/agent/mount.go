package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command"
)

// Mounter mounts an opened volume. Never through fstab: an fstab line for
// an instance store disk breaks the boot after a stop/start, when the disk
// comes back blank.
type Mounter interface {
	Mount(ctx context.Context, dev, dir, fstype string) error
	// Kind names the mounter for logs ("systemd", "direct").
	Kind() string
}

// newMounter picks the systemd mounter when systemd runs (its runtime unit
// directory exists), else a direct mount (a minimal init).
func newMounter(r command.Runner, p Paths) Mounter {
	if st, err := os.Stat(p.SystemdRun); err == nil && st.IsDir() {
		return systemdMounter{r: r, unitDir: p.SystemdRun}
	}
	return directMounter{r: r}
}

// systemdMounter writes a runtime mount unit (under /run, so it is gone at
// the next boot, like the disk's plaintext view) and starts it. systemd then
// unmounts it at shutdown and shows it in `systemctl status`.
type systemdMounter struct {
	r       command.Runner
	unitDir string
}

func (systemdMounter) Kind() string { return "systemd" }

// MountUnit is the unit a volume is mounted with.
func MountUnit(dev, dir, fstype string) string {
	return fmt.Sprintf(`# Written at boot by amicrypt-agent; it lives under /run and is gone at the next boot.
[Unit]
Description=amicrypt encrypted instance store %s

[Mount]
What=%s
Where=%s
Type=%s
`, dir, dev, dir, fstype)
}

func (m systemdMounter) Mount(ctx context.Context, dev, dir, fstype string) error {
	unit := UnitName(dir, "mount")
	path := filepath.Join(m.unitDir, unit)
	if err := os.WriteFile(path, []byte(MountUnit(dev, dir, fstype)), 0o644); err != nil {
		return fmt.Errorf("writing the mount unit %s: %w", path, err)
	}
	if _, err := m.r.Run(ctx, command.Cmd{Name: "systemctl", Args: []string{"daemon-reload"}}); err != nil {
		return fmt.Errorf("mounting %s at %s: %w", dev, dir, err)
	}
	if _, err := m.r.Run(ctx, command.Cmd{Name: "systemctl", Args: []string{"start", unit}}); err != nil {
		return fmt.Errorf("mounting %s at %s (systemctl status %s says more): %w", dev, dir, unit, err)
	}
	return nil
}

// directMounter runs mount(8).
type directMounter struct{ r command.Runner }

func (directMounter) Kind() string { return "direct" }

func (m directMounter) Mount(ctx context.Context, dev, dir, fstype string) error {
	if _, err := m.r.Run(ctx, command.Cmd{Name: "mount", Args: []string{"-t", fstype, dev, dir}}); err != nil {
		return fmt.Errorf("mounting %s at %s: %w", dev, dir, err)
	}
	return nil
}

// UnitName is the systemd unit name of a path (systemd-escape --path
// --suffix=SUFFIX): "/mnt/instance-store" -> "mnt-instance\x2dstore.mount".
func UnitName(path, suffix string) string {
	p := strings.Trim(filepath.Clean(path), "/")
	if p == "" {
		return "-." + suffix
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0:
			fmt.Fprintf(&b, `\x%02x`, c)
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == ':', c == '_', c == '.':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String() + "." + suffix
}
