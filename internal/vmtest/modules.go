package vmtest

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultModules lists the kernel modules every guest loads (when the kernel
// has them as modules rather than built in): the virtio PCI transport, its
// network card and entropy source, dm-crypt, the XTS mode it uses for
// aes-xts-plain64 (over ECB; no modprobe in the guest loads them on demand),
// and AF_ALG skcipher, which cryptsetup uses for keyslots instead of a
// temporary dm-crypt mapping. NVMe and ext4 are built into Debian's cloud
// kernel.
func DefaultModules() []string {
	return []string{
		"virtio_pci", "virtio_net", "virtio_rng",
		"dm_crypt", "xts", "ecb", "algif_skcipher",
		"nvme", "ext4",
	}
}

// module is one kernel module file to copy into the guest.
type module struct {
	name string // normalised: dashes become underscores
	path string // absolute path on the host
}

// resolveModules returns the modules to load for the wanted names, each after
// the modules it depends on, skipping those built into the kernel. The
// packaged kernel has no modules.dep (depmod runs at install time), so the
// dependencies come from where depmod and modprobe's own checks read them:
// each module's .modinfo section (depends=), which the kernel build records.
func resolveModules(modulesDir string, wanted []string) ([]module, error) {
	builtin, err := readBuiltin(filepath.Join(modulesDir, "modules.builtin"))
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	err = filepath.WalkDir(filepath.Join(modulesDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name, ok := strings.CutSuffix(d.Name(), ".ko"); ok && d.Type().IsRegular() {
			files[normaliseModule(name)] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the modules of %s: %w", modulesDir, err)
	}

	var order []module
	done := map[string]bool{}
	visiting := map[string]bool{}
	var visit func(name, neededBy string) error
	visit = func(name, neededBy string) error {
		name = normaliseModule(name)
		switch {
		case done[name] || builtin[name]:
			return nil
		case visiting[name]:
			return fmt.Errorf("kernel module %s depends on itself through %s", name, neededBy)
		}
		path, ok := files[name]
		if !ok {
			if neededBy == "" {
				return fmt.Errorf("kernel module %q is neither built into kernel %s nor a module of it; drop it from Config.Modules", name, filepath.Base(modulesDir))
			}
			return fmt.Errorf("kernel module %s (needed by %s) is missing from %s", name, neededBy, modulesDir)
		}
		visiting[name] = true
		deps, err := moduleDepends(path)
		if err != nil {
			return err
		}
		for _, dep := range deps {
			if err := visit(dep, name); err != nil {
				return err
			}
		}
		visiting[name] = false
		done[name] = true
		order = append(order, module{name: name, path: path})
		return nil
	}
	for _, name := range wanted {
		if err := visit(name, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// readBuiltin reads modules.builtin: one path per line, kernel/.../name.ko.
func readBuiltin(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the kernel's built-in module list: %w", err)
	}
	defer f.Close()
	builtin := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, ok := strings.CutSuffix(filepath.Base(sc.Text()), ".ko"); ok {
			builtin[normaliseModule(name)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return builtin, nil
}

// moduleDepends reads the depends= entry of a module's .modinfo section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading kernel module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("kernel module %s has no .modinfo section", path)
	}
	info, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo of %s: %w", path, err)
	}
	for field := range bytes.SplitSeq(info, []byte{0}) {
		if deps, ok := bytes.CutPrefix(field, []byte("depends=")); ok {
			return slices.DeleteFunc(strings.Split(string(deps), ","), func(s string) bool { return s == "" }), nil
		}
	}
	return nil, nil
}

// normaliseModule spells a module name as the kernel does (virtio-rng and
// virtio_rng are one module).
func normaliseModule(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}
