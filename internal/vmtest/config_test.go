package vmtest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestConfigChecks(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	valid := func() Config {
		return Config{
			Script:     "report ok yes",
			Disks:      []Disk{{Path: disk}},
			Forwards:   []Forward{{Guest: IMDSAddr, Host: "127.0.0.1:8080"}, {Guest: "169.254.0.10:4566", Host: "127.9.9.9:4566"}},
			KernelArgs: map[string]string{"passphrase": "0123abcd", "list": "a,b"},
		}
	}
	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		wantErr string // "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"host outside loopback", func(c *Config) { c.Forwards[0].Host = "10.0.0.1:80" }, `Host "10.0.0.1:80": VMs may reach only 127.0.0.0/8`},
		{"host any address", func(c *Config) { c.Forwards[0].Host = "0.0.0.0:80" }, "127.0.0.0/8"},
		{"host by name", func(c *Config) { c.Forwards[0].Host = "localhost:80" }, "127.0.0.0/8"},
		{"host IPv6 loopback", func(c *Config) { c.Forwards[0].Host = "[::1]:80" }, "127.0.0.0/8"},
		{"host link-local", func(c *Config) { c.Forwards[0].Host = "169.254.169.254:80" }, "127.0.0.0/8"},
		{"host port zero", func(c *Config) { c.Forwards[0].Host = "127.0.0.1:0" }, "127.0.0.0/8"},
		{"guest off the guest network", func(c *Config) { c.Forwards[0].Guest = "10.0.2.2:80" }, `Guest "10.0.2.2:80": give an address and port on 169.254.0.0/16`},
		{"guest is the guest", func(c *Config) { c.Forwards[0].Guest = GuestIP + ":80" }, "is taken"},
		{"guest is QEMU's gateway", func(c *Config) { c.Forwards[0].Guest = gatewayIP + ":80" }, "is taken"},
		{"guest forwarded twice", func(c *Config) { c.Forwards[1].Guest = IMDSAddr }, "forwarded twice"},
		{"no script", func(c *Config) { c.Script = " \n" }, "Config.Script is empty"},
		{"disk without path", func(c *Config) { c.Disks[0].Path = "" }, "Config.Disks[0].Path is empty"},
		{"serial too long", func(c *Config) { c.Disks[0].Serial = strings.Repeat("S", 21) }, "Config.Disks[0].Serial"},
		{"serial with comma", func(c *Config) { c.Disks[0].Serial = "AWS,1" }, "without commas"},
		{"same serial twice", func(c *Config) { c.Disks = append(c.Disks, Disk{Path: disk, Serial: "AWS00000000000000001"}) }, "Config.Disks[1].Serial"},
		{"kernel arg upper case", func(c *Config) { c.KernelArgs["PATH"] = "/x" }, `Config.KernelArgs name "PATH"`},
		{"kernel arg with space", func(c *Config) { c.KernelArgs["marker"] = "a b" }, `Config.KernelArgs["marker"]`},
		{"kernel arg with quote", func(c *Config) { c.KernelArgs["marker"] = `a"b` }, `Config.KernelArgs["marker"]`},
		{"kernel args too long", func(c *Config) { c.KernelArgs["big"] = strings.Repeat("x", 1600) }, "command line holds 2048"},
		{"name with slash", func(c *Config) { c.Name = "../x" }, "Config.Name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.edit(&cfg)
			_, err := cfg.withDefaults()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("withDefaults: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("withDefaults error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// The QEMU command line keeps the guest on a restricted network whose only
// exits are "cmd:" forwards to loopback, with or without forwards.
func TestQEMUArgs(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "a,b.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a := &Assets{Kernel: "/k/vmlinuz", Busybox: "/usr/bin/busybox", NVMeModelNumber: true}
	for _, tc := range []struct {
		name     string
		forwards []Forward
		want     []string // substrings of the joined command line
	}{
		{"no forwards", nil, []string{
			"-netdev user,id=net0,restrict=on,ipv6=off,net=169.254.0.0/16,host=169.254.0.2,dns=169.254.0.3 -device virtio-net-pci",
		}},
		{"two forwards", []Forward{{Guest: IMDSAddr, Host: "127.0.0.1:8080"}, {Guest: "169.254.0.10:4566", Host: "127.0.0.2:9000"}}, []string{
			"restrict=on",
			",guestfwd=tcp:169.254.169.254:80-cmd:/usr/bin/busybox nc 127.0.0.1 8080",
			",guestfwd=tcp:169.254.0.10:4566-cmd:/usr/bin/busybox nc 127.0.0.2 9000",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Config{Script: "true", Forwards: tc.forwards, Disks: []Disk{{Path: disk, Serial: "AWS1"}},
				KernelArgs: map[string]string{"b": "2", "a": "1"}}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			args, err := qemuArgs(a, cfg, "/tmp/initrd")
			if err != nil {
				t.Fatal(err)
			}
			line := strings.Join(args, " ")
			want := append(tc.want,
				"-accel tcg", "-m 512", "-smp 1", "-nographic -no-reboot",
				"console=ttyS0 quiet panic=-1 vmtest.a=1 vmtest.b=2",
				"file="+strings.ReplaceAll(disk, ",", ",,")+",if=none,id=disk0,format=raw",
				"nvme,serial=AWS1,drive=disk0,mn=Amazon EC2 NVMe Instance Storage",
				"-device virtio-rng-pci")
			for _, w := range want {
				if !strings.Contains(line, w) {
					t.Errorf("QEMU command line lacks %q:\n%s", w, line)
				}
			}
			if strings.Contains(line, "-tcp:") || slices.Contains(args, "user") || strings.Contains(line, "hostfwd") {
				t.Errorf("QEMU command line has a forbidden network form:\n%s", line)
			}
			if got := strings.Count(line, "restrict=on"); got != 1 {
				t.Errorf("%d restricted netdevs, want exactly 1:\n%s", got, line)
			}
		})
	}

	a.NVMeModelNumber = false
	cfg, _ := Config{Script: "true", Disks: []Disk{{Path: disk}}}.withDefaults()
	args, err := qemuArgs(a, cfg, "/tmp/initrd")
	if err != nil {
		t.Fatal(err)
	}
	if line := strings.Join(args, " "); strings.Contains(line, "mn=") {
		t.Errorf("QEMU without the nvme model property got mn=:\n%s", line)
	}
}

func TestParseReports(t *testing.T) {
	console := "SeaBIOS\n" +
		"VMTEST vmtest.init=2.31\r\n" +
		"VMTEST luks.uuid=c8754 5e5 \n" +
		"[    3.1] kernel says VMTEST spliced=yes\n" +
		"VMTEST no equals sign\n" +
		"VMTEST =empty key\n" +
		"VMTEST luks.uuid=second\n" +
		"VMTEST empty=\n" +
		"echo VMTESTx=not a report\n"
	want := []Report{
		{"vmtest.init", "2.31"},
		{"luks.uuid", "c8754 5e5"},
		{"spliced", "yes"},
		{"luks.uuid", "second"},
		{"empty", ""},
	}
	if got := parseReports(console); !slices.Equal(got, want) {
		t.Errorf("parseReports:\n got %q\nwant %q", got, want)
	}
}
