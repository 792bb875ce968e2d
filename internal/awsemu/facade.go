package awsemu

// facade.go: the names the emulator's users (tests, e2e, benchmarks,
// cmd/awsemu) write as awsemu.X. They are defined by the package that owns
// them; these aliases keep one import for a user of the emulator.

import "github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"

// The world file.
type (
	World                = core.World
	WorldAccount         = core.WorldAccount
	WorldUser            = core.WorldUser
	WorldRole            = core.WorldRole
	WorldInstanceProfile = core.WorldInstanceProfile
	WorldKey             = core.WorldKey
	WorldImage           = core.WorldImage
	WorldVolume          = core.WorldVolume
)

// DefaultWorld returns a fresh copy of the embedded default world.
func DefaultWorld() (*World, error) { return core.DefaultWorld() }

// LoadWorld reads a world file: HCL when its name ends in .hcl, else JSON.
func LoadWorld(path string) (*World, error) { return core.LoadWorld(path) }

// ParseWorld parses a world file; filename picks the syntax.
func ParseWorld(filename string, data []byte) (*World, error) {
	return core.ParseWorld(filename, data)
}

// The audit.
type (
	AuditEntry  = core.AuditEntry
	AuditFilter = core.AuditFilter
	CallCount   = core.CallCount
)

// Faults.
type (
	FaultProfile = core.FaultProfile
	FaultRule    = core.FaultRule
	FaultKind    = core.FaultKind
)

// Fault kinds.
const (
	FaultThrottle         = core.FaultThrottle
	FaultInternalError    = core.FaultInternalError
	FaultCopyFails        = core.FaultCopyFails
	FaultNotFoundAfterNew = core.FaultNotFoundAfterNew
	FaultSlowGrant        = core.FaultSlowGrant
)

// LoadFaultProfile reads a fault profile (JSON).
func LoadFaultProfile(path string) (*FaultProfile, error) { return core.LoadFaultProfile(path) }

// ParseFaultProfile parses and validates a fault profile.
func ParseFaultProfile(data []byte) (*FaultProfile, error) { return core.ParseFaultProfile(data) }

// Quotas, request rates and the latency model.
type (
	Limits      = core.Limits
	LatencySpec = core.LatencySpec
)

// Latency model operations (Options.Latency keys).
const (
	LatencyInstanceStart = core.LatencyInstanceStart
	LatencyInstanceStop  = core.LatencyInstanceStop
	LatencyInstanceTerm  = core.LatencyInstanceTerm
	LatencySnapshot      = core.LatencySnapshot
	LatencySnapshotCopy  = core.LatencySnapshotCopy
	LatencyImageRegister = core.LatencyImageRegister
	LatencyVolumeCreate  = core.LatencyVolumeCreate
	LatencyGrant         = core.LatencyGrant
	LatencyAPICall       = core.LatencyAPICall
)

// What EC2 asks of KMS (for tests of the KMS side).
type (
	KeyUse   = core.KeyUse
	KeyInfo  = core.KeyInfo
	APIError = core.APIError
)

// KMS operations EC2 performs on a caller's behalf.
const (
	OpDescribeKey                     = core.OpDescribeKey
	OpDecrypt                         = core.OpDecrypt
	OpCreateGrant                     = core.OpCreateGrant
	OpReEncryptFrom                   = core.OpReEncryptFrom
	OpReEncryptTo                     = core.OpReEncryptTo
	OpGenerateDataKeyWithoutPlaintext = core.OpGenerateDataKeyWithoutPlaintext
)

// DefaultLatency is the default latency model, in emulated time.
func DefaultLatency() map[string]LatencySpec { return core.DefaultLatency() }

// IsDescribe reports whether action is metered as a read (Describe*, List*, Get*).
func IsDescribe(action string) bool { return core.IsDescribe(action) }
