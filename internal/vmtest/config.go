package vmtest

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The guest's network: QEMU's user network on the link-local range, where
// EC2 puts IMDS, restricted so that the forwards are its only exits.
const (
	// GuestNet is the guest's network.
	GuestNet = "169.254.0.0/16"
	// GuestIP is the guest's address on it.
	GuestIP = "169.254.0.15"
	// IMDSAddr is where the guest finds the instance metadata service, as on
	// EC2: forward it to a server on 127.0.0.1.
	IMDSAddr = "169.254.169.254:80"
	// AWSAddr is a suggested guest address for the AWS emulator, which a
	// scenario names with AWS_ENDPOINT_URL=http://169.254.0.10:4566.
	AWSAddr = "169.254.0.10:4566"
	// gatewayIP and dnsIP are QEMU's own addresses on GuestNet; restrict=on
	// leaves them unreachable, and no forward may take them.
	gatewayIP = "169.254.0.2"
	dnsIP     = "169.254.0.3"
)

// InstanceStoreModel is the NVMe model number of EC2 instance-store disks.
const InstanceStoreModel = "Amazon EC2 NVMe Instance Storage"

// Defaults for the zero values of Config.
const (
	DefaultTimeout   = 5 * time.Minute
	DefaultMemoryMiB = 512
	DefaultCPUs      = 1
)

// Config describes one boot.
type Config struct {
	// Name names the boot in logs and its console log file ("boot" if empty).
	Name string
	// Script is the scenario: shell (busybox ash) that /init sources in a
	// subshell once the guest is ready. It reports with `report KEY VALUE`;
	// its exit status becomes Result.ExitCode. Keys starting with "vmtest."
	// are the harness's. It returns rather than powering off: /init does
	// that, after reporting the end. Debian's busybox shell runs its own applets
	// before anything on PATH, so call a program that shares a name with
	// an applet by its full path (/sbin/mke2fs is e2fsprogs', mke2fs is
	// busybox's).
	Script string
	// Files are put into the guest, e.g. the agent and its config.
	Files []File
	// Programs are host executables copied to /usr/bin with the shared
	// libraries they need (e.g. /usr/sbin/wipefs). Busybox, cryptsetup and
	// mke2fs are always there.
	Programs []string
	// Modules are kernel modules to load besides DefaultModules (e.g.
	// "raid0"), with their dependencies; built-in ones are skipped.
	Modules []string
	// Disks become NVMe drives, nvme0n1, nvme1n1... in order.
	Disks []Disk
	// Forwards are the guest's only network exits: each connection the guest
	// makes to Guest is relayed to Host on 127.0.0.0/8.
	Forwards []Forward
	// KernelArgs become vmtest.NAME=VALUE on the kernel command line and the
	// shell variable NAME in the scenario. Names are lower case
	// ([a-z][a-z0-9_]*); values have no spaces or quotes.
	KernelArgs map[string]string
	// Timeout bounds the boot, from QEMU's start to its exit
	// (DefaultTimeout if zero). QEMU is killed when it expires.
	Timeout time.Duration
	// MemoryMiB is the guest's memory (DefaultMemoryMiB if zero).
	MemoryMiB int
	// CPUs is the guest's CPU count (DefaultCPUs if zero).
	CPUs int
	// LogDir receives the console log, <Name>.console.log (Boot: the test's
	// ArtifactDir). Empty: the console is kept in memory only.
	LogDir string
}

// Disk is a raw disk image on the host that the guest sees as an NVMe drive.
type Disk struct {
	// Path is the raw image file; NewDisk makes a blank one.
	Path string
	// Serial is the NVMe serial number (at most 20 characters; default
	// AWS00000000000000001, ...2 by position, the shape of EC2 serials).
	Serial string
	// Model is the NVMe model number (default InstanceStoreModel). It is
	// applied only when Assets.NVMeModelNumber says QEMU can.
	Model string
}

// Forward relays the guest's TCP connections to Guest (an address on
// GuestNet, e.g. IMDSAddr) to Host, which must be on 127.0.0.0/8 (e.g. an
// httptest.Server's Listener.Addr().String()).
type Forward struct {
	Guest string
	Host  string
}

var kernelArgName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// withDefaults fills the zero values and checks every field, naming the field,
// the value and the fix in its error.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Name == "" {
		cfg.Name = "boot"
	}
	if strings.ContainsAny(cfg.Name, `/\`) || strings.HasPrefix(cfg.Name, ".") {
		return cfg, fmt.Errorf("Config.Name %q: use a plain name without slashes, e.g. first-boot", cfg.Name)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = DefaultMemoryMiB
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = DefaultCPUs
	}
	if cfg.Timeout < 0 || cfg.MemoryMiB < 128 || cfg.CPUs < 0 {
		return cfg, fmt.Errorf("Config: Timeout %v, MemoryMiB %d, CPUs %d: use a positive timeout, at least 128 MiB and a positive CPU count (or zero for the defaults)", cfg.Timeout, cfg.MemoryMiB, cfg.CPUs)
	}
	if strings.TrimSpace(cfg.Script) == "" {
		return cfg, fmt.Errorf("Config.Script is empty: give the scenario the guest runs, e.g. `report hello world`")
	}

	cfg.Disks = slices.Clone(cfg.Disks)
	serials := map[string]bool{}
	for i := range cfg.Disks {
		d := &cfg.Disks[i]
		if d.Path == "" {
			return cfg, fmt.Errorf("Config.Disks[%d].Path is empty: give a raw image, e.g. from vmtest.NewDisk", i)
		}
		if d.Serial == "" {
			d.Serial = fmt.Sprintf("AWS%017X", i+1) // the shape of EC2 serials
		}
		if d.Model == "" {
			d.Model = InstanceStoreModel
		}
		if len(d.Serial) > 20 || !printableNoComma(d.Serial) || serials[d.Serial] {
			return cfg, fmt.Errorf("Config.Disks[%d].Serial %q: use a unique serial of at most 20 printable characters without commas", i, d.Serial)
		}
		if len(d.Model) > 40 || !printableNoComma(d.Model) {
			return cfg, fmt.Errorf("Config.Disks[%d].Model %q: use at most 40 printable characters without commas", i, d.Model)
		}
		serials[d.Serial] = true
	}

	guests := map[netip.AddrPort]bool{}
	for i, f := range cfg.Forwards {
		guest, err := checkForward(f)
		if err != nil {
			return cfg, fmt.Errorf("Config.Forwards[%d]: %w", i, err)
		}
		if guests[guest] {
			return cfg, fmt.Errorf("Config.Forwards[%d].Guest %q is forwarded twice: keep one", i, f.Guest)
		}
		guests[guest] = true
	}

	cmdline := 0
	for name, value := range cfg.KernelArgs {
		if !kernelArgName.MatchString(name) {
			return cfg, fmt.Errorf("Config.KernelArgs name %q: use lower-case letters, digits and underscores, starting with a letter", name)
		}
		if strings.ContainsFunc(value, func(r rune) bool { return r <= ' ' || r > '~' || strings.ContainsRune(`"'\`, r) }) {
			return cfg, fmt.Errorf("Config.KernelArgs[%q] = %q: the kernel command line can't carry spaces, quotes or control characters; put such data in Config.Files", name, value)
		}
		cmdline += len("vmtest.=") + len(name) + len(value) + 1
	}
	if cmdline > 1500 {
		return cfg, fmt.Errorf("Config.KernelArgs take %d bytes; the kernel command line holds 2048 in all: put large values in Config.Files", cmdline)
	}
	return cfg, nil
}

// checkForward refuses a forward whose host side is not on 127.0.0.0/8 or
// whose guest side is not a free address on GuestNet.
func checkForward(f Forward) (netip.AddrPort, error) {
	host, err := netip.ParseAddrPort(f.Host)
	if err != nil || !host.Addr().Is4() || !host.Addr().IsLoopback() || host.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("Forward.Host %q: VMs may reach only 127.0.0.0/8; give an IPv4 loopback address and port such as 127.0.0.1:8080 (e.g. an httptest server's Listener.Addr())", f.Host)
	}
	guest, err := netip.ParseAddrPort(f.Guest)
	net := netip.MustParsePrefix(GuestNet)
	if err != nil || !net.Contains(guest.Addr()) || guest.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("Forward.Guest %q: give an address and port on %s, such as %s or 169.254.0.10:4566", f.Guest, GuestNet, IMDSAddr)
	}
	switch guest.Addr().String() {
	case GuestIP, gatewayIP, dnsIP, "169.254.0.0", "169.254.255.255":
		return netip.AddrPort{}, fmt.Errorf("Forward.Guest %q: %s is taken (the guest is %s, QEMU uses %s and %s); pick another address on %s", f.Guest, guest.Addr(), GuestIP, gatewayIP, dnsIP, GuestNet)
	}
	return guest, nil
}

func printableNoComma(s string) bool {
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == ',' {
			return false
		}
	}
	return true
}

// guestConfig is /etc/vmtest/config, which the guest's /init sources.
func guestConfig(cfg Config) []byte {
	return fmt.Appendf(nil, "VMTEST_GUEST_IP=%s\nVMTEST_PREFIX=%d\nVMTEST_DISKS=%d\n",
		GuestIP, netip.MustParsePrefix(GuestNet).Bits(), len(cfg.Disks))
}
