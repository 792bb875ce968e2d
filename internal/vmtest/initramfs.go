package vmtest

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	// The initramfs is a cpio "newc" archive. cavaliergopher/cpio writes it
	// (its Writer speaks SVR4/newc); it can't write device nodes, which the
	// guest doesn't need: the kernel's built-in initramfs already has
	// /dev/console, and the init mounts devtmpfs.
	"github.com/cavaliergopher/cpio"
)

// guestInit is the guest's /init: it mounts the kernel file systems, loads the
// modules, sets up the network, reports the disks, runs the scenario and
// powers the guest off.
//
//go:embed guest_init.sh
var guestInit string

// Guest paths the harness owns.
const (
	guestInitPath     = "/init"
	guestDir          = "/etc/vmtest"
	guestScenarioPath = guestDir + "/scenario.sh"
	guestModulesPath  = guestDir + "/modules"
	guestConfigPath   = guestDir + "/config"
	guestModuleDir    = "/lib/modules"
)

// File is a file the guest finds in its initramfs: the contents of a host
// file (Source) or given bytes (Data).
type File struct {
	// Path is where the guest sees it: absolute, e.g.
	// /usr/local/bin/amicrypt-agent.
	Path string
	// Source is a host file to copy. Exactly one of Source and Data is set.
	Source string
	// Data is the content, e.g. a JSON config.
	Data []byte
	// Mode holds the permission bits; zero means 0o755 for a Source that is
	// executable on the host, else 0o644.
	Mode fs.FileMode
}

// BuildInitramfs writes the guest's initramfs for cfg to dst: an uncompressed
// cpio archive (a TCG guest would spend seconds inflating a compressed one)
// with busybox and its applets, cryptsetup, mke2fs, cfg.Programs (each with
// the shared libraries ldd lists), the kernel modules of DefaultModules and
// cfg.Modules with their dependencies, the harness's /init, cfg.Script as
// the scenario and cfg.Files.
func BuildInitramfs(ctx context.Context, a *Assets, cfg Config, dst string) error {
	img := newImage()
	for _, dir := range []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/proc", "/sys", "/dev", "/run", "/tmp", "/mnt", "/root", guestDir, guestModuleDir} {
		img.dir(dir)
	}

	if err := img.busybox(ctx, a.Busybox); err != nil {
		return err
	}
	if err := img.program(ctx, "/sbin/cryptsetup", a.Cryptsetup); err != nil {
		return err
	}
	if a.Mke2fs != "" {
		if err := img.program(ctx, "/sbin/mke2fs", a.Mke2fs); err != nil {
			return err
		}
		img.symlink("/sbin/mkfs.ext4", "mke2fs")
		img.symlink("/sbin/mkfs.ext2", "mke2fs")
		if _, err := os.Stat("/etc/mke2fs.conf"); err == nil {
			img.hostFile("/etc/mke2fs.conf", "/etc/mke2fs.conf", 0o644)
		}
	}
	for _, p := range cfg.Programs {
		if err := img.program(ctx, path.Join("/usr/bin", filepath.Base(p)), p); err != nil {
			return fmt.Errorf("Config.Programs: %w", err)
		}
	}

	mods, err := resolveModules(a.ModulesDir, append(DefaultModules(), cfg.Modules...))
	if err != nil {
		return err
	}
	var loadOrder bytes.Buffer
	for _, m := range mods {
		img.hostFile(path.Join(guestModuleDir, m.name+".ko"), m.path, 0o644)
		fmt.Fprintf(&loadOrder, "%s.ko\n", m.name)
	}
	img.data(guestModulesPath, loadOrder.Bytes(), 0o644)
	img.data(guestInitPath, []byte(guestInit), 0o755)
	img.data(guestScenarioPath, []byte(cfg.Script), 0o644)
	img.data(guestConfigPath, guestConfig(cfg), 0o644)

	for i, f := range cfg.Files {
		if err := img.callerFile(f); err != nil {
			return fmt.Errorf("Config.Files[%d]: %w", i, err)
		}
	}
	return img.writeFile(dst)
}

// image is an initramfs being assembled: guest path -> entry.
type image struct {
	entries map[string]entry
}

type entry struct {
	mode   cpio.FileMode // type and permission bits
	source string        // host file to copy, or
	data   []byte        // the content, or
	link   string        // a symlink's target
}

func newImage() *image { return &image{entries: map[string]entry{}} }

func (img *image) dir(p string) {
	for ; p != "/" && p != "."; p = path.Dir(p) {
		if _, ok := img.entries[p]; !ok {
			img.entries[p] = entry{mode: cpio.TypeDir | 0o755}
		}
	}
}

func (img *image) add(p string, e entry) {
	img.dir(path.Dir(p))
	img.entries[p] = e
}

func (img *image) data(p string, data []byte, perm fs.FileMode) {
	img.add(p, entry{mode: cpio.TypeReg | cpio.FileMode(perm.Perm()), data: data})
}

func (img *image) hostFile(p, source string, perm fs.FileMode) {
	img.add(p, entry{mode: cpio.TypeReg | cpio.FileMode(perm.Perm()), source: source})
}

func (img *image) symlink(p, target string) {
	img.add(p, entry{mode: cpio.TypeSymlink | 0o777, link: target})
}

// busybox adds the static busybox as /bin/busybox and a link for each of its
// applets at the path busybox gives it (/bin/sh, /sbin/insmod,
// /usr/bin/wget...).
func (img *image) busybox(ctx context.Context, host string) error {
	out, err := exec.CommandContext(ctx, host, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("listing busybox applets (%s --list-full): %w", host, err)
	}
	img.hostFile("/bin/busybox", host, 0o755)
	for _, applet := range strings.Fields(string(out)) {
		if !strings.Contains(applet, "/") {
			continue // linuxrc: the initramfs runs /init
		}
		p := "/" + applet
		if p != "/bin/busybox" {
			img.symlink(p, "/bin/busybox")
		}
	}
	return nil
}

// program adds a host executable at guestPath and the shared libraries it
// needs at the paths ldd names, so the guest's dynamic loader finds them.
func (img *image) program(ctx context.Context, guestPath, host string) error {
	if !filepath.IsAbs(host) {
		return fmt.Errorf("program %q is not an absolute host path", host)
	}
	if _, err := os.Stat(host); err != nil {
		return fmt.Errorf("program %s: %w", host, err)
	}
	img.hostFile(guestPath, host, 0o755)
	static, err := isStatic(host)
	if err != nil || static {
		return err
	}
	libs, err := sharedLibraries(ctx, host)
	if err != nil {
		return err
	}
	for _, lib := range libs {
		img.hostFile(lib, lib, 0o755)
	}
	return nil
}

// sharedLibraries asks ldd which libraries a dynamic executable loads.
func sharedLibraries(ctx context.Context, program string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", program).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", program, err)
	}
	return parseLdd(out), nil
}

// parseLdd picks the library paths out of ldd's output: "libc.so.6 =>
// /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and the loader's
// "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no file.
func parseLdd(out []byte) []string {
	var libs []string
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if i := slices.Index(fields, "=>"); i >= 0 && i+1 < len(fields) && strings.HasPrefix(fields[i+1], "/") {
			libs = append(libs, fields[i+1])
		} else if len(fields) > 0 && strings.HasPrefix(fields[0], "/") {
			libs = append(libs, fields[0])
		}
	}
	return libs
}

// callerFile checks and adds one of Config.Files.
func (img *image) callerFile(f File) error {
	clean := path.Clean(f.Path)
	switch {
	case !path.IsAbs(f.Path) || clean != f.Path:
		return fmt.Errorf("File.Path %q must be an absolute, clean guest path such as /usr/local/bin/amicrypt-agent", f.Path)
	case f.Path == guestInitPath || strings.HasPrefix(f.Path, guestDir+"/") || f.Path == guestDir:
		return fmt.Errorf("File.Path %q belongs to the harness (%s and %s/); put the scenario in Config.Script and files elsewhere", f.Path, guestInitPath, guestDir)
	case (f.Source == "") == (f.Data == nil):
		return fmt.Errorf("file %s: set exactly one of Source (a host file) and Data", f.Path)
	}
	if e, ok := img.entries[f.Path]; ok && e.mode&cpio.ModeType == cpio.TypeDir {
		return fmt.Errorf("file %s: the guest has a directory there", f.Path)
	}
	perm := f.Mode.Perm()
	if f.Source != "" {
		fi, err := os.Stat(f.Source)
		if err != nil {
			return fmt.Errorf("file %s: Source: %w", f.Path, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("file %s: Source %s is not a regular file", f.Path, f.Source)
		}
		if perm == 0 {
			perm = 0o644
			if fi.Mode()&0o111 != 0 {
				perm = 0o755
			}
		}
		img.hostFile(f.Path, f.Source, perm)
		return nil
	}
	if perm == 0 {
		perm = 0o644
	}
	img.data(f.Path, f.Data, perm)
	return nil
}

// writeFile writes the archive to dst: entries sorted by path, so that each
// directory comes before what it holds.
func (img *image) writeFile(dst string) (err error) {
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("creating the initramfs: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing the initramfs %s: %w", dst, cerr)
		}
	}()
	buf := bufio.NewWriterSize(out, 1<<20)
	if err := img.write(buf); err != nil {
		return fmt.Errorf("writing the initramfs %s: %w", dst, err)
	}
	return buf.Flush()
}

func (img *image) write(w io.Writer) error {
	archive := cpio.NewWriter(w)
	for _, p := range slices.Sorted(maps.Keys(img.entries)) {
		if err := writeEntry(archive, strings.TrimPrefix(p, "/"), img.entries[p]); err != nil {
			return err
		}
	}
	return archive.Close()
}

func writeEntry(archive *cpio.Writer, name string, e entry) error {
	hdr := &cpio.Header{Name: name, Mode: e.mode}
	var body io.Reader
	switch {
	case e.mode&cpio.ModeType == cpio.TypeDir:
		hdr.Links = 2
	case e.link != "":
		hdr.Size = int64(len(e.link))
		body = strings.NewReader(e.link)
	case e.source != "":
		f, err := os.Open(e.source)
		if err != nil {
			return fmt.Errorf("copying %s into the guest: %w", e.source, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		hdr.Size = fi.Size()
		body = f
	default:
		hdr.Size = int64(len(e.data))
		body = bytes.NewReader(e.data)
	}
	if err := archive.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if body != nil {
		if n, err := io.Copy(archive, body); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		} else if n != hdr.Size {
			return fmt.Errorf("%s: wrote %d bytes of %d (did it change while being copied?)", name, n, hdr.Size)
		}
	}
	return nil
}
