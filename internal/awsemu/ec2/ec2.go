// Package ec2 is the emulator's EC2 and EBS: images, snapshots, volumes,
// instances, key pairs, security groups, VPCs and subnets, tags and the EBS
// encryption defaults, over the EC2 Query protocol. State lives in one store
// per account and region (store.go); it reaches KMS and IAM only through
// the small interfaces below.
package ec2

import (
	"sync"
	"sync/atomic"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// Keys is what EC2 asks of KMS when it uses keys on a caller's behalf.
type Keys interface {
	// AuthorizeKeyUse resolves u.KeyRef as u.Account sees it in u.Region
	// (empty: the account's default EBS key) and checks that
	// u.PrincipalIAM may perform u.Ops with it through EC2.
	AuthorizeKeyUse(u core.KeyUse) (core.KeyInfo, *core.APIError)
	// DefaultEBSKey is the account's alias/aws/ebs in region.
	DefaultEBSKey(account, region string) core.KeyInfo
	// KeyInfoByARN describes a key.
	KeyInfoByARN(arn string) (core.KeyInfo, bool)
}

// Identity is what EC2 asks of IAM.
type Identity interface {
	// Authorize evaluates the caller's identity policies for a request.
	Authorize(r core.PolicyRequest) core.IdentityDecision
	AccountExists(id string) bool
	AccountByAlias(alias string) (string, bool)
	Aliases() map[string]string
	EBSEncryptionByDefault(account, region string) bool
	// InstanceProfile finds an instance profile of account by name or ARN.
	InstanceProfile(account, nameOrARN string) (core.InstanceProfile, bool)
	// Role finds a role by ARN.
	Role(arn string) (core.Role, bool)
}

// Options configure the service.
type Options struct {
	Limits core.Limits // the copy quotas
}

// Service serves EC2. Safe for concurrent use: a call locks only the stores
// of the account-regions it touches.
type Service struct {
	clock    *core.Clock
	faults   *core.FaultState
	world    *core.World
	keys     Keys
	iam      Identity
	sessions Sessions
	opts     Options
	aliases  map[string]string // account ID -> alias ("amazon"); read-only

	mu       sync.Mutex // guards stores and byRegion (not the stores)
	stores   map[core.Scope]*store
	byRegion map[string][]core.Scope // the scopes of stores, by region, sorted
	index    sync.Map                // resource ID -> indexed
	seq      atomic.Uint64           // makes resource IDs

	imds imdsState // the metadata services' tokens and credentials
}

// New makes the EC2 service of a world and seeds it.
func New(clock *core.Clock, faults *core.FaultState, w *core.World, keys Keys, iam Identity, sessions Sessions, opts Options) *Service {
	e := &Service{clock: clock, faults: faults, world: w, keys: keys, iam: iam, sessions: sessions, opts: opts,
		aliases: iam.Aliases(), stores: map[core.Scope]*store{}}
	e.seed(w)
	return e
}

func (e *Service) regions() (enabled, disabled []string) {
	return append([]string(nil), e.world.Regions...), append([]string(nil), e.world.Disabled...)
}
