#!/usr/bin/env bash
# Provides what the VM tests (internal/vmtest, `make vmtest`) boot: Debian's
# cloud kernel and its modules, unpacked into a git-ignored cache, and prints
# the kernel's path. Idempotent: once the kernel is cached it touches neither
# apt nor the network.
#
# Host packages: qemu-system-x86 cryptsetup-bin busybox-static e2fsprogs.
# CI installs them with apt-get first; when one is missing this script installs
# them itself (as root, or with sudo). The kernel comes from Debian's archive
# through apt (`apt-get download` of the versioned package that
# linux-image-cloud-amd64 depends on, unpacked with `dpkg-deb -x`): the cloud
# flavour is small and has virtio, NVMe and dm-crypt.
#
#   bash scripts/vm-assets.sh        # prints .../.cache/vm/kernel/boot/vmlinuz-<version>
#
# AMICRYPT_CACHE moves the cache (default: <repo>/.cache); the VM tests find
# it the same way, or through AMICRYPT_VM_ASSETS=<dir>.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${AMICRYPT_VM_ASSETS:-${AMICRYPT_CACHE:-$root/.cache}/vm}"
meta_pkg="linux-image-cloud-amd64"

log() { printf 'vm-assets: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Host tools: install the packages only when a command is missing.
missing=()
for cmd in qemu-system-x86_64 cryptsetup busybox mke2fs dpkg-deb; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "missing ${missing[*]}: installing qemu-system-x86 cryptsetup-bin busybox-static e2fsprogs with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends qemu-system-x86 cryptsetup-bin busybox-static e2fsprogs
fi
if ! busybox_path="$(command -v busybox)" || ldd "$busybox_path" >/dev/null 2>&1; then
  log "busybox at ${busybox_path:-?} is not statically linked: install busybox-static"
  exit 1
fi

# The kernel: reuse the cached one when its version file and files are there.
mkdir -p "$dir"
if [ -s "$dir/kernel-version" ]; then
  version="$(cat "$dir/kernel-version")"
  if [ -f "$dir/kernel/boot/vmlinuz-$version" ] && [ -f "$dir/kernel/lib/modules/$version/modules.builtin" ]; then
    echo "$dir/kernel/boot/vmlinuz-$version"
    exit 0
  fi
fi

kernel_pkg() {
  apt-cache depends "$meta_pkg" 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }'
}
pkg="$(kernel_pkg)"
if [ -z "$pkg" ]; then
  log "apt knows no $meta_pkg yet: running apt-get update"
  as_root apt-get update -q
  pkg="$(kernel_pkg)"
fi
if [ -z "$pkg" ]; then
  log "apt-cache depends $meta_pkg names no linux-image-* package; is a Debian archive in /etc/apt/sources.list*?"
  exit 1
fi
version="${pkg#linux-image-}"
log "downloading $pkg"

work="$(mktemp -d "$dir/.download.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current directory (as root it may warn that
# it downloads unsandboxed, which is harmless). Its progress goes to stderr:
# stdout carries only the kernel path.
(cd "$work" && apt-get download -q "$pkg") >&2
deb="$(ls "$work"/"${pkg}"_*.deb)"
# The package has no modules.dep (its postinst runs depmod): the harness reads
# each module's own dependency list from its .modinfo section instead.
dpkg-deb -x "$deb" "$work/kernel"
if [ ! -f "$work/kernel/boot/vmlinuz-$version" ] || [ ! -f "$work/kernel/lib/modules/$version/modules.builtin" ]; then
  log "$deb has no boot/vmlinuz-$version or lib/modules/$version/modules.builtin"
  exit 1
fi
rm -rf "$dir/kernel"
mv "$work/kernel" "$dir/kernel"
echo "$version" >"$dir/kernel-version"
log "unpacked $pkg into $dir/kernel"
echo "$dir/kernel/boot/vmlinuz-$version"
