package awsemu

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// kmsState is every KMS key, alias and grant. Exported fields only: the
// state file stores it with encoding/json.
type kmsState struct {
	Keys    map[string]*kmsKey   `json:"keys"`    // by key ARN
	Aliases map[string]*kmsAlias `json:"aliases"` // by alias ARN
	Grants  map[string]*kmsGrant `json:"grants"`  // by grant ID

	grantsByKey map[string]map[string]*kmsGrant // key ARN -> grant ID -> grant; rebuilt on load
}
type kmsKey struct {
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

	policy *Policy // parsed Policy, cached
}
type kmsAlias struct {
	Name    string    `json:"name"` // alias/x
	ARN     string    `json:"arn"`
	Account string    `json:"account"`
	Region  string    `json:"region"`
	KeyARN  string    `json:"key_arn"`
	Created time.Time `json:"created"`
}
type kmsGrant struct {
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
func newKMSState() *kmsState {
	s := &kmsState{}
	s.ensure()
	return s
}

// ensure makes the maps usable and rebuilds the indexes (after a load).
func (s *kmsState) ensure() {
	if s.Keys == nil {
		s.Keys = map[string]*kmsKey{}
	}
	if s.Aliases == nil {
		s.Aliases = map[string]*kmsAlias{}
	}
	if s.Grants == nil {
		s.Grants = map[string]*kmsGrant{}
	}
	s.grantsByKey = map[string]map[string]*kmsGrant{}
	for _, g := range s.Grants {
		s.indexGrant(g)
	}
}
func (s *kmsState) indexGrant(g *kmsGrant) {
	m, ok := s.grantsByKey[g.KeyARN]
	if !ok {
		m = map[string]*kmsGrant{}
		s.grantsByKey[g.KeyARN] = m
	}
	m[g.GrantID] = g
}
func (s *kmsState) deleteGrant(g *kmsGrant) {
	delete(s.Grants, g.GrantID)
	delete(s.grantsByKey[g.KeyARN], g.GrantID)
}

// seedKMS creates the world's customer keys and every account-region's
// alias/aws/ebs.
func (e *Emulator) seedKMS(w *World) error {
	epoch := e.now().Add(-90 * 24 * time.Hour)
	for _, a := range w.Accounts {
		for _, region := range w.Regions {
			e.ensureAWSManagedEBSKey(a.ID, region, epoch)
		}
		for i, wk := range a.Keys {
			id := wk.ID
			if id == "" {
				id = StableUUID(fmt.Sprintf("%s|%s|%d|%s", a.ID, wk.Region, i, strings.Join(wk.Aliases, ",")))
				if wk.MultiRegion {
					id = "mrk-" + strings.ReplaceAll(id, "-", "")
				}
			}
			policy := wk.Policy
			if policy == "" {
				policy = defaultKeyPolicy(a.ID)
			}
			k := &kmsKey{
				ARN: KeyARN(wk.Region, a.ID, id), KeyID: id, Account: a.ID, Region: wk.Region,
				Manager: "CUSTOMER", State: orDefaultState(wk.State), KeySpec: "SYMMETRIC_DEFAULT",
				KeyUsage: "ENCRYPT_DECRYPT", Policy: policy, MultiRegion: wk.MultiRegion,
				Material: RandomBytes(32), Created: epoch,
			}
			if k.State == "PendingDeletion" {
				k.DeletionDate = e.now().Add(30 * 24 * time.Hour)
			}
			if _, dup := e.kms.Keys[k.ARN]; dup {
				return fmt.Errorf("world: account %s declares key %s twice", a.ID, k.ARN)
			}
			e.kms.Keys[k.ARN] = k
			for _, r := range wk.ReplicaRegions {
				replica := *k
				replica.ARN, replica.Region = KeyARN(r, a.ID, id), r
				e.kms.Keys[replica.ARN] = &replica
			}
			for _, name := range wk.Aliases {
				al := &kmsAlias{Name: name, ARN: AliasARN(wk.Region, a.ID, name), Account: a.ID, Region: wk.Region, KeyARN: k.ARN, Created: epoch}
				if _, dup := e.kms.Aliases[al.ARN]; dup {
					return fmt.Errorf("world: account %s declares alias %s twice in %s", a.ID, name, wk.Region)
				}
				e.kms.Aliases[al.ARN] = al
			}
		}
	}
	return nil
}
func orDefaultState(s string) string {
	if s == "" {
		return "Enabled"
	}
	return s
}

// ensureAWSManagedEBSKey returns alias/aws/ebs of the account-region,
// creating it when missing.
func (e *Emulator) ensureAWSManagedEBSKey(account, region string, created time.Time) *kmsKey {
	aARN := AliasARN(region, account, "alias/aws/ebs")
	if al, ok := e.kms.Aliases[aARN]; ok {
		if k, ok := e.kms.Keys[al.KeyARN]; ok {
			return k
		}
	}
	id := StableUUID("aws/ebs|" + account + "|" + region)
	k := &kmsKey{
		ARN: KeyARN(region, account, id), KeyID: id, Account: account, Region: region,
		Manager: "AWS", State: "Enabled", KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT",
		Description: "Default key that protects my EBS volumes when no other key is defined",
		Policy:      awsManagedEBSPolicy(account, region), Material: RandomBytes(32), Created: created,
	}
	e.kms.Keys[k.ARN] = k
	e.kms.Aliases[aARN] = &kmsAlias{Name: "alias/aws/ebs", ARN: aARN, Account: account, Region: region, KeyARN: k.ARN, Created: created}
	return k
}
func (k *kmsKey) info() KeyInfo {
	return KeyInfo{ARN: k.ARN, KeyID: k.KeyID, Account: k.Account, Region: k.Region, Manager: k.Manager, State: k.State, KeySpec: k.KeySpec, MultiReg: k.MultiRegion}
}
func (k *kmsKey) parsedPolicy() *Policy {
	if k.policy == nil {
		p, err := ParsePolicy(k.Policy)
		if err != nil {
			p = &Policy{} // an unparsable stored policy allows nothing
		}
		k.policy = p
	}
	return k.policy
}

// resolveKey finds the key that ref names in region, as account sees it:
// key ID or alias name in the caller's own account, key ARN or alias ARN in
// any account. Keys past their deletion date are deleted here.
func (e *Emulator) resolveKey(ref, account, region string) (*kmsKey, *APIError) {
	if ref == "" {
		return nil, Errf("ValidationException", "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	var k *kmsKey
	switch {
	case strings.HasPrefix(ref, "arn:"):
		f := strings.SplitN(ref, ":", 6)
		if len(f) != 6 || f[2] != "kms" || (!strings.HasPrefix(f[5], "key/") && !strings.HasPrefix(f[5], "alias/")) {
			return nil, Errf("NotFoundException", "Invalid arn %s", ref)
		}
		if f[3] != region {
			return nil, Errf("NotFoundException", "Invalid arn %s", f[3])
		}
		if strings.HasPrefix(f[5], "alias/") {
			al, ok := e.kms.Aliases[ref]
			if !ok {
				return nil, Errf("NotFoundException", "Alias %s is not found.", ref)
			}
			k = e.kms.Keys[al.KeyARN]
		} else {
			k = e.kms.Keys[ref]
		}
	case strings.HasPrefix(ref, "alias/"):
		if ref == "alias/aws/ebs" && e.accountExists(account) && e.regionEnabled(region) {
			e.ensureAWSManagedEBSKey(account, region, e.now())
		}
		aARN := AliasARN(region, account, ref)
		al, ok := e.kms.Aliases[aARN]
		if !ok {
			return nil, Errf("NotFoundException", "Alias %s is not found.", aARN)
		}
		k = e.kms.Keys[al.KeyARN]
	default:
		k = e.kms.Keys[KeyARN(region, account, ref)]
	}
	if k == nil {
		return nil, Errf("NotFoundException", "Key '%s' does not exist", e.describeRef(ref, account, region))
	}
	if k.State == "PendingDeletion" && !k.DeletionDate.IsZero() && !e.now().Before(k.DeletionDate) {
		e.deleteKey(k)
		return nil, Errf("NotFoundException", "Key '%s' does not exist", k.ARN)
	}
	return k, nil
}
func (e *Emulator) describeRef(ref, account, region string) string {
	if strings.HasPrefix(ref, "arn:") {
		return ref
	}
	return KeyARN(region, account, ref)
}
func (e *Emulator) deleteKey(k *kmsKey) {
	delete(e.kms.Keys, k.ARN)
	for arn, al := range e.kms.Aliases {
		if al.KeyARN == k.ARN {
			delete(e.kms.Aliases, arn)
		}
	}
	for _, g := range e.kms.grantsByKey[k.ARN] {
		e.kms.deleteGrant(g)
	}
}

// keyStateError is the error of using a key that is not enabled.
func keyStateError(k *kmsKey) *APIError {
	switch k.State {
	case "Disabled":
		return Errf("DisabledException", "%s is disabled.", k.ARN)
	case "PendingDeletion":
		return Errf("KMSInvalidStateException", "%s is pending deletion.", k.ARN)
	}
	return nil
}

// keyAccess is one request to use a key.
type keyAccess struct {
	Account      string
	Principal    string
	PrincipalIAM string
	Action       string // KMS operation without prefix: "Decrypt"
	ViaService   string
	GrantTokens  []string
	// Context is the encryption context of a cryptographic operation; nil
	// for other operations, whose grants' constraints do not apply.
	Context map[string]string
}

// keyAllowed decides a key use: the caller's IAM must not deny it, no key
// policy Deny may match, and an Allow statement or an effective grant must.
func (e *Emulator) keyAllowed(k *kmsKey, a keyAccess) *APIError {
	iamAction := "kms:" + a.Action
	if !e.principalAllowed(a.PrincipalIAM, iamAction) {
		return Errf("AccessDeniedException", "User: %s is not authorized to perform: %s on resource: %s with an explicit deny in an identity-based policy", a.Principal, iamAction, k.ARN)
	}
	allowed, denied := e.policyAllows(k, a)
	if denied {
		return Errf("AccessDeniedException", "User: %s is not authorized to perform: %s on resource: %s with an explicit deny in a resource-based policy", a.Principal, iamAction, k.ARN)
	}
	if allowed || e.grantAllows(k, a) {
		return nil
	}
	return Errf("AccessDeniedException", "User: %s is not authorized to perform: %s on resource: %s because no resource-based policy allows the %s action", a.Principal, iamAction, k.ARN, iamAction)
}

// policyAllows evaluates k's key policy alone for a.
func (e *Emulator) policyAllows(k *kmsKey, a keyAccess) (allowed, denied bool) {
	slr := isServiceLinkedRole(a.PrincipalIAM)
	allowed, denied = k.parsedPolicy().Evaluate(PolicyRequest{
		Account: a.Account, Principal: a.Principal, PrincipalIAM: a.PrincipalIAM, Action: "kms:" + a.Action, ViaService: a.ViaService,
		NoIAMDelegation: slr,
	})
	if slr && k.Account != a.Account {
		// Cross-account use needs the principal's own IAM permission too,
		// which a service-linked role never has for KMS: only a grant helps.
		allowed = false
	}
	return allowed, denied
}

// regrantLimit is, when a's principal may CreateGrant on k only through
// grants, the operations those grants give it: KMS lets a grantee create
// grants with the same operations or fewer. nil when the key policy allows.
func (e *Emulator) regrantLimit(k *kmsKey, a keyAccess) []string {
	if allowed, _ := e.policyAllows(k, a); allowed {
		return nil
	}
	ops := []string{}
	for _, g := range e.effectiveGrants(k, a) {
		ops = append(ops, g.Operations...)
	}
	return ops
}

// grantAllows reports whether a grant on k lets a's principal perform its
// action: effective after its propagation delay, or at once when the caller
// presents the grant token. A grant to an account root covers the account.
func (e *Emulator) grantAllows(k *kmsKey, a keyAccess) bool {
	return len(e.effectiveGrants(k, a)) > 0
}

// effectiveGrants are the grants on k that let a's principal perform its
// action now.
func (e *Emulator) effectiveGrants(k *kmsKey, a keyAccess) []*kmsGrant {
	now := e.now()
	var out []*kmsGrant
	for _, g := range e.kms.grantsByKey[k.ARN] {
		if g.GranteePrincipal != a.PrincipalIAM && g.GranteePrincipal != a.Principal &&
			(g.GranteePrincipal != RootARN(a.Account) || isServiceLinkedRole(a.PrincipalIAM)) {
			continue
		}
		if !contains(g.Operations, a.Action) {
			continue
		}
		if now.Before(g.EffectiveAt) && !contains(a.GrantTokens, g.Token) {
			continue
		}
		if a.Context != nil && !g.Constraints.allow(a.Context) {
			continue
		}
		out = append(out, g)
	}
	return out
}

// isServiceLinkedRole reports whether principalIAM is a service-linked role
// (arn:aws:iam::ACCT:role/aws-service-role/SERVICE/NAME). Its permissions are
// fixed by AWS and include no KMS access to customer managed keys, so a key
// policy or grant naming the account root does not reach it: the key policy
// must name the role itself (same account) or a grant must
// (aws-behaviour.md 3.5; AWS EC2 Auto Scaling guide, "Required AWS KMS key
// policy for use with encrypted volumes").
func isServiceLinkedRole(principalIAM string) bool {
	return strings.Contains(principalIAM, ":role/aws-service-role/")
}

// authorizeKeyUse lets EC2 check a key use on a caller's behalf (see KeyUse
// in contract.go). Lock held.
func (e *Emulator) authorizeKeyUse(u KeyUse) (KeyInfo, *APIError) {
	var k *kmsKey
	if u.KeyRef == "" {
		k = e.ensureAWSManagedEBSKey(u.Account, u.Region, e.now())
	} else {
		var err *APIError
		if k, err = e.resolveKey(u.KeyRef, u.Account, u.Region); err != nil {
			return KeyInfo{}, err
		}
	}
	if err := keyStateError(k); err != nil {
		return k.info(), err
	}
	principal := u.PrincipalIAM
	if principal == "" {
		principal = RootARN(u.Account)
	}
	for _, op := range u.Ops {
		if err := e.keyAllowed(k, keyAccess{
			Account: u.Account, Principal: principal, PrincipalIAM: principal, Action: op,
			ViaService: "ec2." + u.Region + ".amazonaws.com",
		}); err != nil {
			return k.info(), err
		}
	}
	return k.info(), nil
}

// defaultEBSKey is the account's AWS-managed alias/aws/ebs key in region.
func (e *Emulator) defaultEBSKey(account, region string) KeyInfo {
	return e.ensureAWSManagedEBSKey(account, region, e.now()).info()
}

// keyInfoByARN describes the key with that ARN.
func (e *Emulator) keyInfoByARN(arn string) (KeyInfo, bool) {
	k, ok := e.kms.Keys[arn]
	if !ok {
		return KeyInfo{}, false
	}
	return k.info(), true
}

// GrantInfo is a live KMS grant, for the invariant checker and tests.
type GrantInfo struct {
	GrantID           string    `json:"grant_id"`
	KeyARN            string    `json:"key_arn"`
	KeyAccount        string    `json:"key_account"`
	Region            string    `json:"region"`
	Name              string    `json:"name,omitempty"`
	GranteePrincipal  string    `json:"grantee_principal"`
	RetiringPrincipal string    `json:"retiring_principal,omitempty"`
	IssuedBy          string    `json:"issued_by"`
	Operations        []string  `json:"operations"`
	Created           time.Time `json:"created"`
	EffectiveAt       time.Time `json:"effective_at"`
}

// liveGrants lists every grant not yet retired or revoked, oldest first
// (lock held).
func (e *Emulator) liveGrants() []GrantInfo {
	out := make([]GrantInfo, 0, len(e.kms.Grants))
	for _, g := range e.kms.Grants {
		k := e.kms.Keys[g.KeyARN]
		gi := GrantInfo{
			GrantID: g.GrantID, KeyARN: g.KeyARN, Name: g.Name, GranteePrincipal: g.GranteePrincipal,
			RetiringPrincipal: g.RetiringPrincipal, IssuedBy: g.IssuedBy, Operations: append([]string(nil), g.Operations...),
			Created: g.Created, EffectiveAt: g.EffectiveAt,
		}
		if k != nil {
			gi.KeyAccount, gi.Region = k.Account, k.Region
		}
		out = append(out, gi)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].GrantID < out[j].GrantID
	})
	return out
}

// Grants lists the live KMS grants.
func (e *Emulator) Grants() []GrantInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.liveGrants()
}
