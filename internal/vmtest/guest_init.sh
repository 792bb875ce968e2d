#!/bin/sh
# The guest's /init, put there by internal/vmtest. It prepares the guest, runs
# the scenario (/etc/vmtest/scenario.sh) in a subshell and powers off. Lines
# "VMTEST key=value" on the console are reports for the harness; its own keys
# start with "vmtest.".
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

# report KEY VALUE...: one line the harness parses (the value ends the line).
report() {
	_report_key=$1
	shift
	echo "VMTEST $_report_key=$*"
}
uptime_seconds() { cut -d' ' -f1 /proc/uptime; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run/cryptsetup /run/lock /tmp
report vmtest.init "$(uptime_seconds)"
report vmtest.kernel "$(uname -r)"
# The clock comes from QEMU's RTC (host time): SigV4 needs it right.
report vmtest.date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# VMTEST_GUEST_IP, VMTEST_PREFIX, VMTEST_DISKS.
. /etc/vmtest/config

while read -r module; do
	insmod "/lib/modules/$module" || report vmtest.error "insmod $module failed"
done </etc/vmtest/modules

# Kernel arguments vmtest.NAME=VALUE (Config.KernelArgs) become variables.
for arg in $(cat /proc/cmdline); do
	case $arg in
	vmtest.*=*)
		name=${arg%%=*}
		export "${name#vmtest.}=${arg#*=}"
		;;
	esac
done

# The only network: QEMU's restricted user network, whose sole exits are the
# forwards the harness set up. No default route: nothing else is reachable.
ip link set lo up
if ip link set eth0 up && ip addr add "$VMTEST_GUEST_IP/$VMTEST_PREFIX" dev eth0; then :; else
	report vmtest.error "network setup failed"
fi
report vmtest.netdevs "$(ls /sys/class/net | tr '\n' ' ')"

# NVMe namespaces appear asynchronously; wait (up to 20 s) for all of them.
waited=0
while [ "$(ls -d /sys/block/nvme* 2>/dev/null | wc -l)" -lt "$VMTEST_DISKS" ]; do
	if [ "$waited" -ge 200 ]; then
		report vmtest.error "only $(ls -d /sys/block/nvme* 2>/dev/null | wc -l) of $VMTEST_DISKS NVMe disks appeared"
		break
	fi
	waited=$((waited + 1))
	sleep 0.1
done
# (Unquoted $(cat ...): word splitting trims the padding NVMe strings carry.)
for block in /sys/block/nvme*; do
	[ -e "$block" ] || continue
	disk=${block##*/}
	report "vmtest.$disk.serial" $(cat "$block/device/serial")
	report "vmtest.$disk.model" $(cat "$block/device/model")
done

report vmtest.ready "$(uptime_seconds)"
(. /etc/vmtest/scenario.sh)
report vmtest.exit "$?"
sync
report vmtest.done "$(uptime_seconds)"
poweroff -f
