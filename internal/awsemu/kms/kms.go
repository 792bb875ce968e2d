// Package kms is the emulator's KMS: customer-managed and AWS-managed keys,
// aliases, key policies, grants and the cryptographic operations, over the
// JSON 1.1 protocol. Keys, their aliases and grants live in one store per
// account and region, each with its own lock.
package kms

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// Identity is what KMS needs of IAM: what a principal's own identity
// policies say of a request, and which accounts exist.
type Identity interface {
	Allowed(principalIAM, action string) bool
	Authorize(r core.PolicyRequest) core.IdentityDecision
	AccountExists(id string) bool
}

// Options configure the service.
type Options struct {
	// SlowGrantDelay is how long a grant takes to take effect when the
	// slow-grant fault fires (emulated time).
	SlowGrantDelay time.Duration
}

// Service serves KMS. Safe for concurrent use: a call locks only the store
// of the key it uses, one store at a time.
type Service struct {
	clock  *core.Clock
	faults *core.FaultState
	world  *core.World
	iam    Identity
	opts   Options

	mu     sync.Mutex // guards stores (the map, not the stores)
	stores map[core.Scope]*store
	tokens sync.Map // grant token -> grant's key ARN
}

// store is the keys, aliases and grants of one account and region.
type store struct {
	mu          sync.Mutex
	keys        map[string]*key   // by key ARN
	aliases     map[string]*alias // by alias ARN
	grants      map[string]*grant // by grant ID
	grantsByKey map[string]map[string]*grant
}

type key struct {
	ARN          string    `json:"arn"`
	KeyID        string    `json:"key_id"`
	Account      string    `json:"account"`
	Region       string    `json:"region"`
	Manager      string    `json:"manager"` // AWS or CUSTOMER
	State        string    `json:"state"`   // Enabled, Disabled, PendingDeletion
	KeySpec      string    `json:"key_spec"`
	KeyUsage     string    `json:"key_usage"`
	Description  string    `json:"description,omitempty"`
	Policy       string    `json:"policy"`
	MultiRegion  bool      `json:"multi_region,omitempty"`
	Material     []byte    `json:"material"` // AES-256 key
	Created      time.Time `json:"created"`
	DeletionDate time.Time `json:"deletion_date,omitzero"`

	policy *core.Policy // parsed Policy, cached
}

type alias struct {
	Name    string    `json:"name"` // alias/x
	ARN     string    `json:"arn"`
	Account string    `json:"account"`
	Region  string    `json:"region"`
	KeyARN  string    `json:"key_arn"`
	Created time.Time `json:"created"`
}

type grant struct {
	GrantID           string            `json:"grant_id"`
	Token             string            `json:"token"`
	KeyARN            string            `json:"key_arn"`
	Name              string            `json:"name,omitempty"`
	GranteePrincipal  string            `json:"grantee_principal"`
	RetiringPrincipal string            `json:"retiring_principal,omitempty"`
	IssuingAccount    string            `json:"issuing_account"` // arn:aws:iam::ACCT:root
	IssuedBy          string            `json:"issued_by"`       // principal that created it
	Operations        []string          `json:"operations"`
	Constraints       *grantConstraints `json:"constraints,omitempty"`
	Created           time.Time         `json:"created"`
	EffectiveAt       time.Time         `json:"effective_at"`
}

type grantConstraints struct {
	EncryptionContextSubset map[string]string `json:"EncryptionContextSubset,omitempty"`
	EncryptionContextEquals map[string]string `json:"EncryptionContextEquals,omitempty"`
}

// allow reports whether an encryption context satisfies the constraints.
func (gc *grantConstraints) allow(context map[string]string) bool {
	if gc == nil {
		return true
	}
	if gc.EncryptionContextEquals != nil {
		if len(gc.EncryptionContextEquals) != len(context) {
			return false
		}
		for k, v := range gc.EncryptionContextEquals {
			if context[k] != v {
				return false
			}
		}
	}
	for k, v := range gc.EncryptionContextSubset {
		if got, ok := context[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// New makes the KMS service of a world, with its keys: the world's
// customer keys and every account-region's alias/aws/ebs.
func New(clock *core.Clock, faults *core.FaultState, w *core.World, iam Identity, opts Options) (*Service, error) {
	s := &Service{clock: clock, faults: faults, world: w, iam: iam, opts: opts, stores: map[core.Scope]*store{}}
	return s, s.seed()
}

func newStore() *store {
	return &store{keys: map[string]*key{}, aliases: map[string]*alias{}, grants: map[string]*grant{}, grantsByKey: map[string]map[string]*grant{}}
}

// store returns the store of an account-region, made on first use.
func (s *Service) store(scope core.Scope) *store {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.stores[scope]
	if !ok {
		st = newStore()
		s.stores[scope] = st
	}
	return st
}

// allStores lists the stores, in a stable order.
func (s *Service) allStores() []*store {
	s.mu.Lock()
	defer s.mu.Unlock()
	scopes := make([]core.Scope, 0, len(s.stores))
	for sc := range s.stores {
		scopes = append(scopes, sc)
	}
	sort.Slice(scopes, func(i, j int) bool { return scopes[i].Less(scopes[j]) })
	out := make([]*store, 0, len(scopes))
	for _, sc := range scopes {
		out = append(out, s.stores[sc])
	}
	return out
}

func (st *store) indexGrant(g *grant) {
	m, ok := st.grantsByKey[g.KeyARN]
	if !ok {
		m = map[string]*grant{}
		st.grantsByKey[g.KeyARN] = m
	}
	m[g.GrantID] = g
}

func (s *Service) addGrant(st *store, g *grant) {
	st.grants[g.GrantID] = g
	st.indexGrant(g)
	s.tokens.Store(g.Token, g.KeyARN)
}

func (s *Service) deleteGrant(st *store, g *grant) {
	delete(st.grants, g.GrantID)
	delete(st.grantsByKey[g.KeyARN], g.GrantID)
	s.tokens.Delete(g.Token)
}

// scopeOfARN is the account-region of a KMS ARN.
func scopeOfARN(arn string) core.Scope {
	f := strings.SplitN(arn, ":", 6)
	if len(f) < 6 {
		return core.Scope{}
	}
	return core.Scope{Account: f[4], Region: f[3]}
}

// seed creates the world's customer keys and every account-region's
// alias/aws/ebs.
func (s *Service) seed() error {
	now := s.clock.Now()
	epoch := now.Add(-90 * 24 * time.Hour)
	for _, a := range s.world.Accounts {
		for _, region := range s.world.Regions {
			st := s.store(core.Scope{Account: a.ID, Region: region})
			st.mu.Lock()
			ensureAWSManagedEBSKey(st, a.ID, region, epoch)
			st.mu.Unlock()
		}
		for i, wk := range a.Keys {
			id := wk.ID
			if id == "" {
				id = core.StableUUID(fmt.Sprintf("%s|%s|%d|%s", a.ID, wk.Region, i, strings.Join(wk.Aliases, ",")))
				if wk.MultiRegion {
					id = "mrk-" + strings.ReplaceAll(id, "-", "")
				}
			}
			policy := wk.Policy
			if policy == "" {
				policy = defaultKeyPolicy(a.ID)
			}
			k := &key{
				ARN: core.KeyARN(wk.Region, a.ID, id), KeyID: id, Account: a.ID, Region: wk.Region,
				Manager: "CUSTOMER", State: orDefaultState(wk.State), KeySpec: "SYMMETRIC_DEFAULT",
				KeyUsage: "ENCRYPT_DECRYPT", Policy: policy, MultiRegion: wk.MultiRegion,
				Material: core.RandomBytes(32), Created: epoch,
			}
			if k.State == "PendingDeletion" {
				k.DeletionDate = now.Add(30 * 24 * time.Hour)
			}
			if err := s.seedKey(k); err != nil {
				return err
			}
			for _, r := range wk.ReplicaRegions {
				replica := *k
				replica.ARN, replica.Region = core.KeyARN(r, a.ID, id), r
				if err := s.seedKey(&replica); err != nil {
					return err
				}
			}
			st := s.store(core.Scope{Account: a.ID, Region: wk.Region})
			for _, name := range wk.Aliases {
				al := &alias{Name: name, ARN: core.AliasARN(wk.Region, a.ID, name), Account: a.ID, Region: wk.Region, KeyARN: k.ARN, Created: epoch}
				if _, dup := st.aliases[al.ARN]; dup {
					return fmt.Errorf("world: account %s declares alias %s twice in %s", a.ID, name, wk.Region)
				}
				st.aliases[al.ARN] = al
			}
		}
	}
	return nil
}

func (s *Service) seedKey(k *key) error {
	st := s.store(core.Scope{Account: k.Account, Region: k.Region})
	if _, dup := st.keys[k.ARN]; dup {
		return fmt.Errorf("world: account %s declares key %s twice", k.Account, k.ARN)
	}
	st.keys[k.ARN] = k
	return nil
}

func orDefaultState(s string) string {
	if s == "" {
		return "Enabled"
	}
	return s
}

// ensureAWSManagedEBSKey returns alias/aws/ebs of the account-region,
// creating it when missing (store locked).
func ensureAWSManagedEBSKey(st *store, account, region string, created time.Time) *key {
	aARN := core.AliasARN(region, account, "alias/aws/ebs")
	if al, ok := st.aliases[aARN]; ok {
		if k, ok := st.keys[al.KeyARN]; ok {
			return k
		}
	}
	id := core.StableUUID("aws/ebs|" + account + "|" + region)
	k := &key{
		ARN: core.KeyARN(region, account, id), KeyID: id, Account: account, Region: region,
		Manager: "AWS", State: "Enabled", KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT",
		Description: "Default key that protects my EBS volumes when no other key is defined",
		Policy:      awsManagedEBSPolicy(account, region), Material: core.RandomBytes(32), Created: created,
	}
	st.keys[k.ARN] = k
	st.aliases[aARN] = &alias{Name: "alias/aws/ebs", ARN: aARN, Account: account, Region: region, KeyARN: k.ARN, Created: created}
	return k
}

// state is the JSON form of every store in the state file.
type state struct {
	Keys    map[string]*key   `json:"keys"`    // by key ARN
	Aliases map[string]*alias `json:"aliases"` // by alias ARN
	Grants  map[string]*grant `json:"grants"`  // by grant ID
}

// MarshalJSON encodes the keys, aliases and grants for the state file.
func (s *Service) MarshalJSON() ([]byte, error) {
	all := state{Keys: map[string]*key{}, Aliases: map[string]*alias{}, Grants: map[string]*grant{}}
	for _, st := range s.allStores() {
		st.mu.Lock()
		for k, v := range st.keys {
			c := *v
			all.Keys[k] = &c
		}
		for k, v := range st.aliases {
			c := *v
			all.Aliases[k] = &c
		}
		for k, v := range st.grants {
			c := *v
			all.Grants[k] = &c
		}
		st.mu.Unlock()
	}
	return json.Marshal(all)
}

// UnmarshalJSON replaces every store with the state file's.
func (s *Service) UnmarshalJSON(data []byte) error {
	var all state
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	s.mu.Lock()
	s.stores = map[core.Scope]*store{}
	s.mu.Unlock()
	s.tokens.Clear()
	for _, k := range all.Keys {
		s.store(scopeOfARN(k.ARN)).keys[k.ARN] = k
	}
	for _, al := range all.Aliases {
		s.store(scopeOfARN(al.ARN)).aliases[al.ARN] = al
	}
	for _, g := range all.Grants {
		s.addGrant(s.store(scopeOfARN(g.KeyARN)), g)
	}
	return nil
}
