package vmtest

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Environment variables that steer where the assets are and whether their
// absence skips or fails a test.
const (
	// EnvAssets names the directory scripts/vm-assets.sh filled (default:
	// $AMICRYPT_CACHE/vm, else .cache/vm at the repository root).
	EnvAssets = "AMICRYPT_VM_ASSETS"
	// EnvRequire set to 1 turns a skip for missing assets into a failure, so
	// that a CI which meant to boot VMs can't pass by skipping them.
	EnvRequire = "AMICRYPT_REQUIRE_VM"
)

// Assets are what a boot takes from the host: the guest kernel and its
// modules (from scripts/vm-assets.sh) and the host programs that QEMU runs or
// that are copied into the guest.
type Assets struct {
	// Kernel is the guest kernel image (vmlinuz).
	Kernel string
	// KernelVersion is its release, e.g. 6.1.0-57-cloud-amd64.
	KernelVersion string
	// ModulesDir is lib/modules/<KernelVersion> of that kernel.
	ModulesDir string

	// QEMU is qemu-system-x86_64.
	QEMU string
	// Busybox is a statically linked busybox: the guest's shell and tools,
	// and on the host the `nc` that each network forward runs.
	Busybox string
	// Cryptsetup is copied into the guest with its shared libraries.
	Cryptsetup string
	// Mke2fs is e2fsprogs' mke2fs, copied into the guest as mke2fs and
	// mkfs.ext4. Empty when e2fsprogs is missing: the guest then has only
	// busybox's mke2fs, which makes ext2.
	Mke2fs string

	// NVMeModelNumber tells whether this QEMU's nvme device takes a model
	// number (property mn). Without it guests see QEMU's own model
	// ("QEMU NVMe Ctrl"), not "Amazon EC2 NVMe Instance Storage", and a
	// program that finds instance-store disks by model must be given the
	// device list instead.
	NVMeModelNumber bool
}

// FindAssets locates the kernel that scripts/vm-assets.sh cached and the host
// programs, and checks that they are usable.
func FindAssets(ctx context.Context) (*Assets, error) {
	dir, err := assetsDir()
	if err != nil {
		return nil, err
	}
	const fix = "run `make vm-assets` (scripts/vm-assets.sh)"
	versionBytes, err := os.ReadFile(filepath.Join(dir, "kernel-version"))
	if err != nil {
		return nil, fmt.Errorf("no guest kernel in %s (%s=%q): %w; %s", dir, EnvAssets, os.Getenv(EnvAssets), err, fix)
	}
	version := strings.TrimSpace(string(versionBytes))
	a := &Assets{
		Kernel:        filepath.Join(dir, "kernel", "boot", "vmlinuz-"+version),
		KernelVersion: version,
		ModulesDir:    filepath.Join(dir, "kernel", "lib", "modules", version),
	}
	for _, p := range []string{a.Kernel, filepath.Join(a.ModulesDir, "modules.builtin")} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("guest kernel %s is incomplete: %w; %s", version, err, fix)
		}
	}

	const pkgs = "install qemu-system-x86 cryptsetup-bin busybox-static e2fsprogs (apt-get), or " + fix
	for _, tool := range []struct {
		name string
		dst  *string
	}{
		{"qemu-system-x86_64", &a.QEMU},
		{"busybox", &a.Busybox},
		{"cryptsetup", &a.Cryptsetup},
	} {
		p, err := lookPath(tool.name)
		if err != nil {
			return nil, fmt.Errorf("host program %s: %w; %s", tool.name, err, pkgs)
		}
		*tool.dst = p
	}
	if p, err := lookPath("mke2fs"); err == nil {
		a.Mke2fs = p
	}
	static, err := isStatic(a.Busybox)
	if err != nil {
		return nil, err
	}
	if !static {
		return nil, fmt.Errorf("busybox at %s is dynamically linked; the guest and the network forwards need a static one: %s", a.Busybox, pkgs)
	}
	if strings.ContainsAny(a.Busybox, ", ") {
		return nil, fmt.Errorf("busybox path %q has a comma or a space, which QEMU's guestfwd command can't carry; put a static busybox on PATH at a plain path", a.Busybox)
	}

	help, err := exec.CommandContext(ctx, a.QEMU, "-device", "nvme,help").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s -device nvme,help: %w: %s", a.QEMU, err, bytes.TrimSpace(help))
	}
	a.NVMeModelNumber = bytes.Contains(help, []byte("\n  mn="))
	return a, nil
}

// RequireAssets returns the assets, or skips the test when they are missing
// (fails it instead when AMICRYPT_REQUIRE_VM=1).
func RequireAssets(t testing.TB) *Assets {
	t.Helper()
	a, err := FindAssets(t.Context())
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("VM assets missing and %s=1: %v", EnvRequire, err)
		}
		t.Skipf("skipping a VM test: %v (set %s=1 to fail instead)", err, EnvRequire)
	}
	return a
}

// assetsDir is $AMICRYPT_VM_ASSETS, else $AMICRYPT_CACHE/vm, else .cache/vm
// at the root of the module this runs in: the same rule as
// scripts/vm-assets.sh.
func assetsDir() (string, error) {
	if d := os.Getenv(EnvAssets); d != "" {
		return d, nil
	}
	if c := os.Getenv("AMICRYPT_CACHE"); c != "" {
		return filepath.Join(c, "vm"), nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".cache", "vm"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory, so no .cache/vm; set %s to the directory scripts/vm-assets.sh filled", EnvAssets)
		}
		dir = parent
	}
}

// lookPath finds a program on PATH or in the sbin directories, which a
// non-root PATH often lacks.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH nor in /usr/sbin, /sbin: %w", name, exec.ErrNotFound)
}

// isStatic tells whether the ELF executable at path has no program
// interpreter, i.e. needs no shared libraries.
func isStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("reading %s as an ELF executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}
