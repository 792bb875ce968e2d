package instancestore

import (
	"fmt"
	"strings"
	"time"
)

// Unit renders the systemd unit that runs the agent at every boot.
//
// It is a oneshot after network-online.target (KMS is reached over the
// network; outside the initramfs, so a KMS outage never makes the instance
// unreachable). When the agent fails, the unit fails and nothing is mounted:
// the failure shows in `systemctl --failed`, and the units of required_by
// don't start. The mount itself is a runtime mount unit the agent starts,
// never an fstab line that could break a boot after a stop/start.
func (c *Config) Unit() string {
	var b strings.Builder
	b.WriteString("# Installed by the amicrypt-instance-store Packer provisioner.\n")
	b.WriteString("# amicrypt-agent encrypts the EC2 instance-store disks with LUKS2 under a\n")
	b.WriteString("# data key wrapped by AWS KMS (kept in each disk's LUKS2 header), and mounts\n")
	fmt.Fprintf(&b, "# them at %s. It fails closed: no KMS, no mount.\n", c.MountPoint)
	b.WriteString("[Unit]\n")
	b.WriteString("Description=amicrypt encrypted instance store (LUKS2, key wrapped by AWS KMS)\n")
	b.WriteString("Documentation=https://github.com/amicrypt/packer-plugin-amicrypt/blob/main/docs/provisioners/instance-store.mdx\n")
	b.WriteString("Wants=network-online.target\n")
	b.WriteString("After=network-online.target\n")
	if len(c.RequiredBy) > 0 {
		fmt.Fprintf(&b, "Before=%s\n", strings.Join(c.RequiredBy, " "))
	}
	b.WriteString("\n[Service]\n")
	b.WriteString("Type=oneshot\n")
	b.WriteString("RemainAfterExit=yes\n")
	fmt.Fprintf(&b, "ExecStart=%s up\n", AgentPath)
	// kms_timeout bounds the KMS calls; luksFormat, mdadm and mkfs come on top.
	fmt.Fprintf(&b, "TimeoutStartSec=%d\n", int((c.kmsTimeout+unitStartTimeMargin)/time.Second))
	b.WriteString("\n[Install]\n")
	b.WriteString("WantedBy=multi-user.target\n")
	if len(c.RequiredBy) > 0 {
		fmt.Fprintf(&b, "RequiredBy=%s\n", strings.Join(c.RequiredBy, " "))
	}
	return b.String()
}

// CloudInitDropIn is the cloud-init config that removes the `ephemeral0`
// entry of cloud-init's mounts module, so cloud-init never mounts the raw
// instance-store disk (by default at /mnt or /media/ephemeral0) before, or
// instead of, the agent. Listing a device with a null mount point removes it
// from the defaults; later files in cloud.cfg.d win over cloud.cfg.
const CloudInitDropIn = `# Installed by the amicrypt-instance-store Packer provisioner: amicrypt-agent
# encrypts and mounts the instance store at boot, so cloud-init must not mount
# the raw ephemeral disk.
mounts:
  - [ ephemeral0, null ]
`
