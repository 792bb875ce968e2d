package instancestore

import (
	"encoding/json"
	"fmt"
)

// Where the provisioner installs things in the image.
const (
	// AgentConfigPath is the agent's default config file.
	AgentConfigPath = "/etc/amicrypt/instance-store.json"
	// AgentPath is where the agent binary is installed; the unit runs it.
	AgentPath = "/usr/local/sbin/amicrypt-agent"
	// UnitName is the systemd unit that runs `amicrypt-agent up` at boot.
	UnitName = "amicrypt-instance-store.service"
	// UnitPath is the unit file.
	UnitPath = "/etc/systemd/system/" + UnitName
	// CloudInitDropInPath stops cloud-init mounting the raw ephemeral disk.
	CloudInitDropInPath = "/etc/cloud/cloud.cfg.d/90-amicrypt-instance-store.cfg"
)

// Layouts of the instance-store disks.
const (
	LayoutSingle = "single" // exactly one disk, one volume
	LayoutEach   = "each"   // one volume per disk, mounted at MOUNT_POINT/N
	LayoutRAID0  = "raid0"  // all disks striped into one md array, one volume
)

// Defaults of the optional fields, the same as the agent's own.
const (
	DefaultLayout     = LayoutSingle
	DefaultMountPoint = "/mnt/instance-store"
	DefaultFilesystem = "ext4"
	DefaultKMSTimeout = "60s"
	DefaultName       = "amicrypt"
)

// ReservedContextPrefix starts the encryption-context keys the agent sets
// itself (amicrypt:instance-arn, amicrypt:luks-uuid).
const ReservedContextPrefix = "amicrypt:"

// AgentConfig is the file amicrypt-agent reads at every boot
// (AgentConfigPath). It never holds key material: each disk's data key lives
// in the disk's own LUKS2 header, wrapped by KMS. The field names and
// meanings are the agent's; this struct is the one schema both sides share.
type AgentConfig struct {
	// KMSKeyID wraps new disks' keys: key ID, key ARN, alias name or alias
	// ARN. An alias name resolves in the account and region the instance
	// runs in.
	KMSKeyID string `json:"kms_key_id"`
	// Devices lists the disks to encrypt; empty means every NVMe instance
	// store disk (model "Amazon EC2 NVMe Instance Storage").
	Devices []string `json:"devices,omitempty"`
	// Layout is single, each or raid0.
	Layout string `json:"layout,omitempty"`
	// MountPoint is where the volume is mounted (each: MountPoint/0, /1, …).
	MountPoint string `json:"mount_point,omitempty"`
	// Filesystem is ext4 or xfs.
	Filesystem string `json:"filesystem,omitempty"`
	// EncryptionContext adds keys to the KMS encryption context; keys
	// starting with "amicrypt:" are the agent's.
	EncryptionContext map[string]string `json:"encryption_context,omitempty"`
	// KMSTimeout is the total time the KMS calls of one boot may take,
	// retries included, as a Go duration ("60s"); then the agent fails closed.
	KMSTimeout string `json:"kms_timeout,omitempty"`
	// WipeForeign lets the agent reformat a disk that holds something else
	// than a blank disk or an amicrypt volume.
	WipeForeign bool `json:"wipe_foreign,omitempty"`
	// Name prefixes the device-mapper names (/dev/mapper/NAME, NAME-0, …).
	Name string `json:"name,omitempty"`
}

// Marshal renders the config file: indented JSON and a final newline.
func (c AgentConfig) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the agent config: %w", err)
	}
	return append(data, '\n'), nil
}
