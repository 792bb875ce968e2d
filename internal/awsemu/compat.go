package awsemu

// compat.go: the names that moved to package core, during the move to
// per-service packages. It goes when nothing here uses them.

import (
	"net/http"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

type (
	AuditEntry    = core.AuditEntry
	AuditFilter   = core.AuditFilter
	CallCount     = core.CallCount
	Call          = core.Call
	APIError      = core.APIError
	FaultKind     = core.FaultKind
	FaultProfile  = core.FaultProfile
	FaultRule     = core.FaultRule
	FaultState    = core.FaultState
	KeyUse        = core.KeyUse
	KeyInfo       = core.KeyInfo
	LatencySpec   = core.LatencySpec
	Limits        = core.Limits
	Limiter       = core.Limiter
	Policy        = core.Policy
	Statement     = core.Statement
	StringList    = core.StringList
	Principal     = core.Principal
	PolicyRequest = core.PolicyRequest
	SigV4Auth     = core.SigV4Auth
	World         = core.World
	WorldAccount  = core.WorldAccount
	WorldUser     = core.WorldUser
	WorldRole     = core.WorldRole
	WorldKey      = core.WorldKey
	WorldImage    = core.WorldImage
	WorldVolume   = core.WorldVolume
)

const (
	FaultThrottle                     = core.FaultThrottle
	FaultInternalError                = core.FaultInternalError
	FaultCopyFails                    = core.FaultCopyFails
	FaultNotFoundAfterNew             = core.FaultNotFoundAfterNew
	FaultSlowGrant                    = core.FaultSlowGrant
	OpDescribeKey                     = core.OpDescribeKey
	OpDecrypt                         = core.OpDecrypt
	OpCreateGrant                     = core.OpCreateGrant
	OpReEncryptFrom                   = core.OpReEncryptFrom
	OpReEncryptTo                     = core.OpReEncryptTo
	OpGenerateDataKeyWithoutPlaintext = core.OpGenerateDataKeyWithoutPlaintext
	LatencyInstanceStart              = core.LatencyInstanceStart
	LatencyInstanceStop               = core.LatencyInstanceStop
	LatencyInstanceTerm               = core.LatencyInstanceTerm
	LatencySnapshot                   = core.LatencySnapshot
	LatencySnapshotCopy               = core.LatencySnapshotCopy
	LatencyImageRegister              = core.LatencyImageRegister
	LatencyGrant                      = core.LatencyGrant
)

var ErrNoAuth = core.ErrNoAuth

func UserARN(account, name string) string { return core.UserARN(account, name) }

func RoleARN(account, name string) string { return core.RoleARN(account, name) }

func RootARN(account string) string { return core.RootARN(account) }

func ARNAccount(s string) string { return core.ARNAccount(s) }

func ActionMatches(pattern, action string) bool { return core.ActionMatches(pattern, action) }

func GlobMatch(pattern, s string) bool { return core.GlobMatch(pattern, s) }

func UniqueID(prefix, arn string) string { return core.UniqueID(prefix, arn) }

func KeyARN(region, account, id string) string { return core.KeyARN(region, account, id) }

func AliasARN(region, account, name string) string { return core.AliasARN(region, account, name) }

func StableUUID(seed string) string { return core.StableUUID(seed) }

func RandomBytes(n int) []byte { return core.RandomBytes(n) }

func RandomUUID() string { return core.RandomUUID() }

func AuditParams(c *core.Call) map[string]string { return core.AuditParams(c) }

func CountCalls(entries []core.AuditEntry) []core.CallCount { return core.CountCalls(entries) }

func Errf(code, format string, args ...any) *core.APIError { return core.Errf(code, format, args...) }

func LoadFaultProfile(path string) (*core.FaultProfile, error) { return core.LoadFaultProfile(path) }

func ParseFaultProfile(data []byte) (*core.FaultProfile, error) { return core.ParseFaultProfile(data) }

func NewFaultState(p *core.FaultProfile) *core.FaultState { return core.NewFaultState(p) }

func DefaultLatency() map[string]core.LatencySpec { return core.DefaultLatency() }

func NewLimiter(l core.Limits) *core.Limiter { return core.NewLimiter(l) }

func IsDescribe(action string) bool { return core.IsDescribe(action) }

func ThrottleError(service string) *core.APIError { return core.ThrottleError(service) }

func InternalError(service string) *core.APIError { return core.InternalError(service) }

func ParsePolicy(doc string) (*core.Policy, error) { return core.ParsePolicy(doc) }

func ParseSigV4(h string) (core.SigV4Auth, error) { return core.ParseSigV4(h) }

func VerifySigV4(r *http.Request, body []byte, a core.SigV4Auth, secret string) bool {
	return core.VerifySigV4(r, body, a, secret)
}

func DefaultWorld() (*core.World, error) { return core.DefaultWorld() }

func LoadWorld(path string) (*core.World, error) { return core.LoadWorld(path) }

func ParseWorld(filename string, data []byte) (*core.World, error) {
	return core.ParseWorld(filename, data)
}
