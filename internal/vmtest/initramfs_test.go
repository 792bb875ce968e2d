package vmtest

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"
)

func TestParseLdd(t *testing.T) {
	out := []byte(`	linux-vdso.so.1 (0x00007ffd)
	libcryptsetup.so.12 => /lib/x86_64-linux-gnu/libcryptsetup.so.12 (0x00007fd9)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fd9)
	libmissing.so.1 => not found
	/lib64/ld-linux-x86-64.so.2 (0x00007fd9)
`)
	want := []string{"/lib/x86_64-linux-gnu/libcryptsetup.so.12", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if got := parseLdd(out); !slices.Equal(got, want) {
		t.Errorf("parseLdd = %q, want %q", got, want)
	}
}

func TestCallerFileChecks(t *testing.T) {
	source := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(source, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		file    File
		wantErr string
	}{
		{"data", File{Path: "/etc/amicrypt/instance-store.json", Data: []byte("{}")}, ""},
		{"empty data", File{Path: "/etc/empty", Data: []byte{}}, ""},
		{"source", File{Path: "/usr/local/bin/amicrypt-agent", Source: source}, ""},
		{"relative", File{Path: "etc/x", Data: []byte("x")}, "absolute, clean guest path"},
		{"unclean", File{Path: "/etc/../init", Data: []byte("x")}, "absolute, clean guest path"},
		{"harness init", File{Path: "/init", Data: []byte("x")}, "belongs to the harness"},
		{"harness dir", File{Path: "/etc/vmtest/scenario.sh", Data: []byte("x")}, "belongs to the harness"},
		{"neither", File{Path: "/etc/x"}, "exactly one of Source"},
		{"both", File{Path: "/etc/x", Source: source, Data: []byte("x")}, "exactly one of Source"},
		{"missing source", File{Path: "/etc/x", Source: source + ".missing"}, "no such file"},
		{"directory source", File{Path: "/etc/x", Source: filepath.Dir(source)}, "not a regular file"},
		{"onto a directory", File{Path: "/usr/local/bin", Data: []byte("x")}, "a directory there"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := newImage()
			img.dir("/usr/local/bin")
			err := img.callerFile(tc.file)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("callerFile: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("callerFile error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// readArchive reads a cpio archive into path -> header and content.
func readArchive(t *testing.T, path string) (map[string]*cpio.Header, map[string][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	headers, contents := map[string]*cpio.Header{}, map[string][]byte{}
	r := cpio.NewReader(f)
	for {
		hdr, err := r.Next()
		if errors.Is(err, io.EOF) {
			return headers, contents
		}
		if err != nil {
			t.Fatalf("reading the archive back: %v", err)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := headers[hdr.Name]; dup {
			t.Errorf("%s is in the archive twice", hdr.Name)
		}
		headers[hdr.Name], contents[hdr.Name] = hdr, body
	}
}

// The archive holds directories before their contents, symlinks with their
// targets and files with their bytes and permissions.
func TestImageWrite(t *testing.T) {
	source := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(source, []byte("host bytes"), 0o700); err != nil {
		t.Fatal(err)
	}
	img := newImage()
	img.data("/etc/vmtest/config", []byte("A=1\n"), 0o644)
	img.hostFile("/usr/bin/tool", source, 0o755)
	img.symlink("/bin/sh", "/bin/busybox")
	dst := filepath.Join(t.TempDir(), "initramfs.cpio")
	if err := img.writeFile(dst); err != nil {
		t.Fatal(err)
	}

	headers, contents := readArchive(t, dst)
	for name, want := range map[string]struct {
		mode cpio.FileMode
		body string
	}{
		"etc":               {cpio.TypeDir | 0o755, ""},
		"etc/vmtest":        {cpio.TypeDir | 0o755, ""},
		"etc/vmtest/config": {cpio.TypeReg | 0o644, "A=1\n"},
		"usr/bin/tool":      {cpio.TypeReg | 0o755, "host bytes"},
		"bin/sh":            {cpio.TypeSymlink | 0o777, ""},
	} {
		hdr, ok := headers[name]
		if !ok {
			t.Errorf("archive lacks %s", name)
			continue
		}
		if hdr.Mode != want.mode || string(contents[name]) != want.body {
			t.Errorf("%s: mode %o, body %q; want %o, %q", name, hdr.Mode, contents[name], want.mode, want.body)
		}
	}
	if got := headers["bin/sh"].Linkname; got != "/bin/busybox" {
		t.Errorf("bin/sh links to %q, want /bin/busybox", got)
	}
	if names := slices.Sorted(maps.Keys(headers)); len(names) != 8 { // the 5 above, bin, usr, usr/bin
		t.Errorf("archive holds %q", names)
	}
}

// With the real kernel and host programs (skipped without them): the whole
// initramfs has what the guest needs, modules in an order that loads.
func TestBuildInitramfs(t *testing.T) {
	a, err := FindAssets(t.Context())
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatal(err)
		}
		t.Skipf("no VM assets: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "initramfs.cpio")
	cfg := Config{
		Script:  "report hello world",
		Files:   []File{{Path: "/etc/amicrypt/instance-store.json", Data: []byte(`{"mount":"/data"}`)}},
		Modules: []string{"raid0"},
	}
	if err := BuildInitramfs(t.Context(), a, cfg, dst); err != nil {
		t.Fatal(err)
	}
	headers, contents := readArchive(t, dst)
	for _, name := range []string{"init", "bin/busybox", "bin/sh", "usr/bin/wget", "sbin/cryptsetup", "etc/vmtest/scenario.sh", "etc/vmtest/config", "etc/amicrypt/instance-store.json", "lib64/ld-linux-x86-64.so.2"} {
		if _, ok := headers[name]; !ok {
			t.Errorf("initramfs lacks %s", name)
		}
	}
	if !bytes.Equal(contents["init"], []byte(guestInit)) || headers["init"].Mode.Perm() != 0o755 {
		t.Errorf("/init is not the harness's executable guest_init.sh")
	}
	if got := string(contents["etc/vmtest/scenario.sh"]); got != cfg.Script {
		t.Errorf("scenario = %q, want %q", got, cfg.Script)
	}
	libs, err := sharedLibraries(t.Context(), a.Cryptsetup)
	if err != nil || len(libs) == 0 {
		t.Fatalf("cryptsetup's libraries: %q, %v", libs, err)
	}
	for _, lib := range libs {
		if _, ok := headers[strings.TrimPrefix(lib, "/")]; !ok {
			t.Errorf("initramfs lacks cryptsetup's library %s", lib)
		}
	}

	order := strings.Fields(string(contents["etc/vmtest/modules"]))
	position := func(m string) int { return slices.Index(order, m+".ko") }
	for _, m := range []string{"dm_mod", "dm_crypt", "xts", "ecb", "virtio_net", "virtio_rng", "virtio_pci", "raid0", "md_mod"} {
		if position(m) < 0 {
			t.Errorf("module %s is not loaded (order %q)", m, order)
		} else if _, ok := headers["lib/modules/"+m+".ko"]; !ok {
			t.Errorf("module %s is listed but not in the archive", m)
		}
	}
	for _, dep := range [][2]string{{"dm_mod", "dm_crypt"}, {"virtio", "virtio_net"}, {"md_mod", "raid0"}} {
		if position(dep[0]) > position(dep[1]) {
			t.Errorf("module %s loads after %s, which needs it (order %q)", dep[0], dep[1], order)
		}
	}
	for _, builtin := range []string{"nvme", "ext4"} {
		if position(builtin) >= 0 {
			t.Errorf("built-in %s is loaded as a module", builtin)
		}
	}

	_, err = resolveModules(a.ModulesDir, []string{"no_such_module"})
	if err == nil || !strings.Contains(err.Error(), `kernel module "no_such_module" is neither built into`) {
		t.Errorf("resolving an unknown module: %v", err)
	}
}
