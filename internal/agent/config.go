package agent

import (
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/agentconfig"
)

// The config file's schema lives in agentconfig, which the
// amicrypt-instance-store provisioner shares; these names keep the agent's
// code and its callers short.

// DefaultConfigPath is where the provisioner writes the agent's config.
const DefaultConfigPath = agentconfig.DefaultPath

// Layouts.
const (
	LayoutSingle = agentconfig.LayoutSingle
	LayoutEach   = agentconfig.LayoutEach
	LayoutRAID0  = agentconfig.LayoutRAID0
)

// Defaults of the optional fields.
const (
	DefaultLayout     = agentconfig.DefaultLayout
	DefaultMountPoint = agentconfig.DefaultMountPoint
	DefaultFilesystem = agentconfig.DefaultFilesystem
	DefaultKMSTimeout = agentconfig.DefaultKMSTimeout
	DefaultName       = agentconfig.DefaultName
)

// ReservedContextPrefix starts the encryption context keys the agent sets
// itself; users can't set them.
const ReservedContextPrefix = agentconfig.ReservedContextPrefix

// Config is /etc/amicrypt/instance-store.json (agentconfig.Config).
type Config = agentconfig.Config

// Duration is kms_timeout's type: a Go duration string in JSON.
type Duration = agentconfig.Duration

// LoadConfig reads, defaults and validates the config file at path.
func LoadConfig(path string) (*Config, error) { return agentconfig.Load(path) }

// ParseConfig parses, defaults and validates a config.
func ParseConfig(data []byte) (*Config, error) { return agentconfig.Parse(data) }

// ValidateKeyRef checks the syntax of a KMS key reference.
func ValidateKeyRef(ref string) error { return agentconfig.ValidateKeyRef(ref) }
