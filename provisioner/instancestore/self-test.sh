#!/bin/sh
# amicrypt-instance-store self-test: can this image run amicrypt-agent?
#
#   sh self-test.sh MIN_MAJOR MIN_MINOR [COMMAND...]
#
# Checks that cryptsetup >= MIN_MAJOR.MIN_MINOR and every COMMAND are
# installed, then that dm-crypt works: it makes a LUKS2 volume in a
# temporary FILE (never a disk) under a throwaway random passphrase, opens
# it (cryptsetup attaches a loop device to the file), closes it and deletes
# everything. It prints "amicrypt-selftest KEY VALUE" lines, which the
# provisioner reads, and exits 0 only when everything passed.
set -u

min_major=$1
min_minor=$2
shift 2

report() { echo "amicrypt-selftest $*"; }

for pm in dnf yum apt-get zypper apk; do
	if command -v "$pm" >/dev/null 2>&1; then
		report package-manager "$pm"
		break
	fi
done

failed=0
for cmd in "$@"; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		report missing "$cmd"
		failed=1
	fi
done

if ! command -v cryptsetup >/dev/null 2>&1; then
	report missing cryptsetup
	exit 1
fi
version=$(cryptsetup --version 2>/dev/null | sed -n 's/^cryptsetup \([0-9][0-9]*\.[0-9][0-9]*[0-9.]*\).*/\1/p' | head -n 1)
if [ -z "$version" ]; then
	report failed cryptsetup-version
	report detail "cryptsetup --version printed: $(cryptsetup --version 2>&1 | head -n 1)"
	exit 1
fi
report cryptsetup-version "$version"
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
if [ "$major" -lt "$min_major" ] || { [ "$major" -eq "$min_major" ] && [ "$minor" -lt "$min_minor" ]; }; then
	report too-old cryptsetup
	exit 1
fi

[ -e /dev/mapper/control ] || report no-device-mapper /dev/mapper/control
[ -e /dev/loop-control ] || report no-loop /dev/loop-control

dir=$(mktemp -d "${TMPDIR:-/tmp}/amicrypt-selftest.XXXXXX") || {
	report failed mktemp
	exit 1
}
name="amicrypt-selftest-$$"
opened=0
cleanup() {
	if [ "$opened" = 1 ]; then cryptsetup close "$name" >/dev/null 2>&1; fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# 256 random bits as hex: a passphrase nobody will ever need again. It is
# passed on stdin, never written to a file.
passphrase=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
volume="$dir/volume"

step() { # step NAME COMMAND...: runs COMMAND with the passphrase on stdin
	label=$1
	shift
	if ! printf '%s' "$passphrase" | "$@" >"$dir/log" 2>&1; then
		report failed "$label"
		report detail "$(tail -n 3 "$dir/log" | tr '\n' ' ')"
		exit 1
	fi
}

if ! { truncate -s 32M "$volume" 2>/dev/null || dd if=/dev/zero of="$volume" bs=1048576 count=32 2>/dev/null; }; then
	report failed volume-file
	exit 1
fi
# The agent's own format: LUKS2, AES-XTS, PBKDF2 with minimal iterations
# (the passphrase is a 256-bit random key; a memory-hard KDF adds nothing).
step luksFormat cryptsetup luksFormat --batch-mode --type luks2 --cipher aes-xts-plain64 --key-size 512 \
	--pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file - "$volume"
step open cryptsetup open --type luks2 --key-file - "$volume" "$name"
opened=1
if [ ! -b "/dev/mapper/$name" ]; then
	report failed open
	report detail "cryptsetup open succeeded but /dev/mapper/$name is not a block device"
	exit 1
fi
step close cryptsetup close "$name"
opened=0
report ok dm-crypt
exit "$failed"
