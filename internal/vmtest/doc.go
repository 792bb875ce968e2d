// Package vmtest boots a real Linux guest under QEMU (TCG: no KVM needed) to
// test what only a real kernel can show: dm-crypt on an NVMe instance-store
// disk, unlocked by a program that reaches IMDS and KMS over loopback only.
//
// A boot is one call: Boot builds an initramfs (static busybox, cryptsetup
// and its libraries, mke2fs, the kernel modules for virtio, NVMe and
// dm-crypt, plus the caller's files and scenario script), starts QEMU with
// the caller's raw disk images as NVMe drives and a restricted network whose
// only exits are forwards to 127.0.0.0/8, and returns once the guest powered
// off. The guest reports through console lines of the form
//
//	VMTEST key=value
//
// which the scenario script writes with its `report key value` function and
// Result.Lines holds. Disk helpers read the raw images from the host
// afterwards: ContainsBytes for plaintext, ReadLUKS2Header for the header.
//
// A scenario for the boot agent, in a test built with the tag vm:
//
//	agent := vmtest.BuildGo(t, "github.com/amicrypt/packer-plugin-amicrypt/cmd/amicrypt-agent")
//	disk := vmtest.NewDisk(t, 64<<20)
//	res := vmtest.Boot(ctx, t, vmtest.Config{
//		Name:  "first-boot",
//		Disks: []vmtest.Disk{disk},
//		Files: []vmtest.File{
//			{Path: "/usr/local/bin/amicrypt-agent", Source: agent},
//			{Path: "/etc/amicrypt/instance-store.json", Data: configJSON},
//		},
//		Forwards: []vmtest.Forward{
//			{Guest: vmtest.IMDSAddr, Host: imdsAddr},   // 127.0.0.1:port
//			{Guest: vmtest.AWSAddr, Host: emulatorAddr}, // 127.0.0.1:port
//		},
//		Script: `export AWS_ENDPOINT_URL=http://169.254.0.10:4566
//	amicrypt-agent up --config /etc/amicrypt/instance-store.json
//	report agent.rc $?
//	report mounted "$(grep -c /data /proc/mounts)"`,
//	})
//	// res.Lines["agent.rc"], res.Lines["mounted"], res.Duration;
//	// vmtest.ReadLUKS2Header(disk.Path), vmtest.ContainsBytes(disk.Path, ...)
//
// The package's own VM tests include the amicrypt-agent suite,
// TestAgentInstanceStore: the real agent as an instance of the in-process
// AWS emulator (internal/agent/instancetest), whose only exits are the
// instance's metadata service and the emulator, through a first boot, a
// reboot, the disk moved to another instance, KMS unreachable, a disabled
// key and a stop/start, checked on the console, on the raw images, in
// CloudTrail and by the emulator's invariant checker. BenchmarkAgentBoot
// times the agent's first boot and reboot (KMS, luksFormat, open, mkfs,
// mount) and weighs its binary:
//
//	go test -tags vm -run '^$' -bench '^BenchmarkAgentBoot$' -benchtime 3x ./internal/vmtest/
//
// The kernel comes from scripts/vm-assets.sh (`make vm-assets`); tests that
// boot carry the build tag `vm` and run with `make vmtest`. Without the
// assets FindAssets fails and RequireAssets skips the test, or fails it when
// AMICRYPT_REQUIRE_VM=1 (which `make vmtest` sets).
package vmtest
