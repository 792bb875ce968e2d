package instancestore

import "github.com/amicrypt/packer-plugin-amicrypt/internal/agent/agentconfig"

// Where the provisioner installs things in the image.
const (
	// AgentConfigPath is the agent's default config file.
	AgentConfigPath = agentconfig.DefaultPath
	// AgentPath is where the agent binary is installed; the unit runs it.
	AgentPath = "/usr/local/sbin/amicrypt-agent"
	// UnitName is the systemd unit that runs `amicrypt-agent up` at boot.
	UnitName = "amicrypt-instance-store.service"
	// UnitPath is the unit file.
	UnitPath = "/etc/systemd/system/" + UnitName
	// CloudInitDropInPath stops cloud-init mounting the raw ephemeral disk.
	CloudInitDropInPath = "/etc/cloud/cloud.cfg.d/90-amicrypt-instance-store.cfg"
)

// Layouts of the instance-store disks: the agent's.
const (
	LayoutSingle = agentconfig.LayoutSingle // exactly one disk, one volume
	LayoutEach   = agentconfig.LayoutEach   // one volume per disk, mounted at MOUNT_POINT/N
	LayoutRAID0  = agentconfig.LayoutRAID0  // all disks striped into one md array, one volume
)

// Defaults of the optional fields: the agent's own.
const (
	DefaultLayout     = agentconfig.DefaultLayout
	DefaultMountPoint = agentconfig.DefaultMountPoint
	DefaultFilesystem = agentconfig.DefaultFilesystem
	// DefaultKMSTimeout is agentconfig.DefaultKMSTimeout as users write it.
	DefaultKMSTimeout = "60s"
	DefaultName       = agentconfig.DefaultName
)

// ReservedContextPrefix starts the encryption-context keys the agent sets
// itself (amicrypt:instance-arn, amicrypt:luks-uuid).
const ReservedContextPrefix = agentconfig.ReservedContextPrefix

// AgentConfig is the file amicrypt-agent reads at every boot
// (AgentConfigPath): the agent's own schema, agentconfig.Config, which both
// sides import. It never holds key material: each disk's data key lives in
// the disk's own LUKS2 header, wrapped by KMS.
type AgentConfig = agentconfig.Config
