package agent_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent"
)

func TestUnitName(t *testing.T) {
	tests := map[string]string{
		"/mnt/instance-store": `mnt-instance\x2dstore.mount`,
		"/mnt/a.b/.hidden":    `mnt-a.b-.hidden.mount`,
		"/mnt/x y":            `mnt-x\x20y.mount`,
		"/srv/data_1:2":       `srv-data_1:2.mount`,
		"/.dot":               `\x2edot.mount`,
		"/mnt/store/0":        `mnt-store-0.mount`,
		"/mnt/ünï":            `mnt-\xc3\xbcn\xc3\xaf.mount`,
	}
	_, haveTool := exec.LookPath("systemd-escape")
	for path, want := range tests {
		if got := agent.UnitName(path, "mount"); got != want {
			t.Errorf("UnitName(%q) = %q, want %q", path, got, want)
		}
		if haveTool == nil {
			out, err := exec.Command("systemd-escape", "--path", "--suffix=mount", path).Output()
			if err == nil && strings.TrimSpace(string(out)) != want {
				t.Errorf("systemd-escape says %q for %q, the table says %q", strings.TrimSpace(string(out)), path, want)
			}
		}
	}
}

func TestMountUnit(t *testing.T) {
	u := agent.MountUnit("/dev/mapper/amicrypt", "/mnt/instance-store", "xfs")
	for _, want := range []string{"[Mount]\n", "What=/dev/mapper/amicrypt\n", "Where=/mnt/instance-store\n", "Type=xfs\n", "gone at the next boot"} {
		if !strings.Contains(u, want) {
			t.Errorf("unit lacks %q:\n%s", want, u)
		}
	}
}
