package kms

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// lockKey finds the key that ref names in region, as account sees it (key
// ID or alias name in the caller's own account, key ARN or alias ARN in any
// account), and returns it with its store locked; the caller unlocks
// st.mu. On error nothing is locked. Keys past their deletion date are
// deleted here.
func (s *Service) lockKey(ref, account, region string) (*store, *key, *core.APIError) {
	if ref == "" {
		return nil, nil, core.Errf("ValidationException", "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	scope := core.Scope{Account: account, Region: region}
	if strings.HasPrefix(ref, "arn:") {
		f := strings.SplitN(ref, ":", 6)
		if len(f) != 6 || f[2] != "kms" || (!strings.HasPrefix(f[5], "key/") && !strings.HasPrefix(f[5], "alias/")) {
			return nil, nil, core.Errf("NotFoundException", "Invalid arn %s", ref)
		}
		if f[3] != region {
			return nil, nil, core.Errf("NotFoundException", "Invalid arn %s", f[3])
		}
		scope = core.Scope{Account: f[4], Region: f[3]}
	}
	st := s.store(scope)
	st.mu.Lock()
	k, err := s.findKey(st, ref, account, region)
	if err != nil {
		st.mu.Unlock()
		return nil, nil, err
	}
	return st, k, nil
}

// findKey is lockKey's lookup in the key's store (locked).
func (s *Service) findKey(st *store, ref, account, region string) (*key, *core.APIError) {
	var k *key
	switch {
	case strings.HasPrefix(ref, "arn:"):
		if f := strings.SplitN(ref, ":", 6); strings.HasPrefix(f[5], "alias/") {
			al, ok := st.aliases[ref]
			if !ok {
				return nil, core.Errf("NotFoundException", "Alias %s is not found.", ref)
			}
			k = st.keys[al.KeyARN]
		} else {
			k = st.keys[ref]
		}
	case strings.HasPrefix(ref, "alias/"):
		if ref == "alias/aws/ebs" && s.iam.AccountExists(account) && s.world.RegionEnabled(region) {
			ensureAWSManagedEBSKey(st, account, region, s.clock.Now())
		}
		aARN := core.AliasARN(region, account, ref)
		al, ok := st.aliases[aARN]
		if !ok {
			return nil, core.Errf("NotFoundException", "Alias %s is not found.", aARN)
		}
		k = st.keys[al.KeyARN]
	default:
		k = st.keys[core.KeyARN(region, account, ref)]
	}
	if k == nil {
		return nil, core.Errf("NotFoundException", "Key '%s' does not exist", describeRef(ref, account, region))
	}
	if k.State == "PendingDeletion" && !k.DeletionDate.IsZero() && !s.clock.Now().Before(k.DeletionDate) {
		s.deleteKey(st, k)
		return nil, core.Errf("NotFoundException", "Key '%s' does not exist", k.ARN)
	}
	return k, nil
}

func describeRef(ref, account, region string) string {
	if strings.HasPrefix(ref, "arn:") {
		return ref
	}
	return core.KeyARN(region, account, ref)
}

func (s *Service) deleteKey(st *store, k *key) {
	delete(st.keys, k.ARN)
	for arn, al := range st.aliases {
		if al.KeyARN == k.ARN {
			delete(st.aliases, arn)
		}
	}
	for _, g := range st.grantsByKey[k.ARN] {
		s.deleteGrant(st, g)
	}
}

func (k *key) info() core.KeyInfo {
	return core.KeyInfo{ARN: k.ARN, KeyID: k.KeyID, Account: k.Account, Region: k.Region, Manager: k.Manager, State: k.State, KeySpec: k.KeySpec, MultiReg: k.MultiRegion}
}

func (k *key) parsedPolicy() *core.Policy {
	if k.policy == nil {
		p, err := core.ParsePolicy(k.Policy)
		if err != nil {
			p = &core.Policy{} // an unparsable stored policy allows nothing
		}
		k.policy = p
	}
	return k.policy
}

// access is one request to use a key.
type access struct {
	Account      string
	Principal    string
	PrincipalIAM string
	Action       string // KMS operation without prefix: "Decrypt"
	ViaService   string
	GrantTokens  []string
	// Context is the encryption context of a cryptographic operation; nil
	// for other operations, whose grants' constraints do not apply.
	Context map[string]string
	// Grant is what a CreateGrant asks for, for the kms:Grant* condition
	// keys; nil for other operations.
	Grant *grantRequest
	// SourceInstanceARN: the call is signed with an instance role's
	// credentials (ec2:SourceInstanceARN).
	SourceInstanceARN string
}

// grantRequest is the part of a CreateGrant the condition keys describe.
type grantRequest struct {
	Operations        []string
	Grantee, Retiring string
	ForAWSResource    bool // an AWS service (EC2) creates it for the caller
}

// request is a's policy request on k: the condition keys KMS sets
// (docs/aws-behaviour.md, KMS condition keys).
func (a access) request(k *key) core.PolicyRequest {
	ctx := map[string][]string{}
	if a.Context != nil {
		keys := make([]string, 0, len(a.Context))
		for ck, cv := range a.Context {
			ctx["kms:encryptioncontext:"+strings.ToLower(ck)] = []string{cv}
			keys = append(keys, ck)
		}
		sort.Strings(keys)
		if len(keys) > 0 {
			ctx["kms:encryptioncontextkeys"] = keys
		}
	}
	if g := a.Grant; g != nil {
		ctx["kms:grantoperations"] = g.Operations
		ctx["kms:granteeprincipal"] = []string{g.Grantee}
		if g.Retiring != "" {
			ctx["kms:retiringprincipal"] = []string{g.Retiring}
		}
		ctx["kms:grantisforawsresource"] = []string{strconv.FormatBool(g.ForAWSResource)}
	}
	if a.SourceInstanceARN != "" {
		ctx["ec2:sourceinstancearn"] = []string{a.SourceInstanceARN}
	}
	return core.PolicyRequest{
		Account: a.Account, Principal: a.Principal, PrincipalIAM: a.PrincipalIAM, Action: "kms:" + a.Action,
		Resource: k.ARN, ViaService: a.ViaService, Context: ctx, NoIAMDelegation: isServiceLinkedRole(a.PrincipalIAM),
	}
}

// allowed decides a key use (store locked): the caller's IAM must not deny
// it, no key policy Deny may match, and an Allow statement or an effective
// grant must.
// A key policy statement that names the caller itself (same account) is
// enough; one that names its account delegates to the account's IAM, whose
// identity policies must allow too, as must a cross-account caller's; a
// grant is enough on its own; any explicit Deny wins
// (docs/aws-behaviour.md, KMS authorization).
func (s *Service) allowed(st *store, k *key, a access) *core.APIError {
	iamAction := "kms:" + a.Action
	req := a.request(k)
	identity := s.iam.Authorize(req)
	if identity.ExplicitDeny {
		return accessDenied(a.Principal, iamAction, k.ARN, "with an explicit deny in an identity-based policy")
	}
	kp := policyEval(k, req)
	if kp.Denied {
		return accessDenied(a.Principal, iamAction, k.ARN, "with an explicit deny in a resource-based policy")
	}
	if len(s.effectiveGrants(st, k, a)) > 0 {
		return nil
	}
	if kp.Allowed {
		if (kp.Direct && k.Account == a.Account) || identity.Allowed {
			return nil
		}
		return accessDenied(a.Principal, iamAction, k.ARN, "because no identity-based policy allows the "+iamAction+" action")
	}
	return accessDenied(a.Principal, iamAction, k.ARN, "because no resource-based policy allows the "+iamAction+" action")
}

// policyEval evaluates k's key policy alone.
func policyEval(k *key, req core.PolicyRequest) core.Evaluation {
	ev := k.parsedPolicy().Eval(req)
	if req.NoIAMDelegation && k.Account != req.Account {
		// Cross-account use needs the principal's own IAM permission too,
		// which a service-linked role never has for KMS: only a grant helps.
		ev.Allowed = false
	}
	return ev
}

// regrantLimit is, when a's principal may CreateGrant on k only through
// grants, the operations those grants give it: KMS lets a grantee create
// grants with the same operations or fewer. nil when the key policy allows.
func (s *Service) regrantLimit(st *store, k *key, a access) []string {
	if policyEval(k, a.request(k)).Allowed {
		return nil
	}
	ops := []string{}
	for _, g := range s.effectiveGrants(st, k, a) {
		ops = append(ops, g.Operations...)
	}
	return ops
}

// effectiveGrants are the grants on k that let a's principal perform its
// action now: effective after their propagation delay, or at once when the
// caller presents the grant token. A grant to an account root covers the
// account.
func (s *Service) effectiveGrants(st *store, k *key, a access) []*grant {
	now := s.clock.Now()
	var out []*grant
	for _, g := range st.grantsByKey[k.ARN] {
		if g.GranteePrincipal != a.PrincipalIAM && g.GranteePrincipal != a.Principal &&
			(g.GranteePrincipal != core.RootARN(a.Account) || isServiceLinkedRole(a.PrincipalIAM)) {
			continue
		}
		if !slices.Contains(g.Operations, a.Action) {
			continue
		}
		if now.Before(g.EffectiveAt) && !slices.Contains(a.GrantTokens, g.Token) {
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
// (docs/aws-behaviour.md; AWS EC2 Auto Scaling guide, "Required AWS KMS key
// policy for use with encrypted volumes").
func isServiceLinkedRole(principalIAM string) bool {
	return strings.Contains(principalIAM, ":role/aws-service-role/")
}

// AuthorizeKeyUse lets EC2 check a key use on a caller's behalf: it
// resolves u.KeyRef in u.Region as u.Account sees it (empty: the account's
// default EBS key there, alias/aws/ebs), then checks the key's state and
// that u.PrincipalIAM may perform every op in u.Ops through EC2. The error
// is the KMS error; EC2 turns it into its own.
func (s *Service) AuthorizeKeyUse(u core.KeyUse) (core.KeyInfo, *core.APIError) {
	var st *store
	var k *key
	if u.KeyRef == "" {
		st = s.store(core.Scope{Account: u.Account, Region: u.Region})
		st.mu.Lock()
		k = ensureAWSManagedEBSKey(st, u.Account, u.Region, s.clock.Now())
	} else {
		var err *core.APIError
		if st, k, err = s.lockKey(u.KeyRef, u.Account, u.Region); err != nil {
			return core.KeyInfo{}, err
		}
	}
	defer st.mu.Unlock()
	if err := keyStateError(k); err != nil {
		return k.info(), err
	}
	principal := u.PrincipalIAM
	if principal == "" {
		principal = core.RootARN(u.Account)
	}
	for _, op := range u.Ops {
		a := access{
			Account: u.Account, Principal: principal, PrincipalIAM: principal, Action: op,
			ViaService: "ec2." + u.Region + ".amazonaws.com",
		}
		if op == core.OpCreateGrant {
			// EC2 creates grants for the volumes it makes: kms:GrantIsForAWSResource.
			a.Grant = &grantRequest{ForAWSResource: true}
		}
		if err := s.allowed(st, k, a); err != nil {
			return k.info(), err
		}
	}
	return k.info(), nil
}

// DefaultEBSKey is the account's AWS-managed alias/aws/ebs key in region.
func (s *Service) DefaultEBSKey(account, region string) core.KeyInfo {
	st := s.store(core.Scope{Account: account, Region: region})
	st.mu.Lock()
	defer st.mu.Unlock()
	return ensureAWSManagedEBSKey(st, account, region, s.clock.Now()).info()
}

// KeyInfoByARN describes the key with that ARN.
func (s *Service) KeyInfoByARN(arn string) (core.KeyInfo, bool) {
	st := s.store(scopeOfARN(arn))
	st.mu.Lock()
	defer st.mu.Unlock()
	k, ok := st.keys[arn]
	if !ok {
		return core.KeyInfo{}, false
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

// Grants lists every grant not yet retired or revoked, oldest first.
func (s *Service) Grants() []GrantInfo {
	out := []GrantInfo{}
	for _, st := range s.allStores() {
		st.mu.Lock()
		for _, g := range st.grants {
			gi := GrantInfo{
				GrantID: g.GrantID, KeyARN: g.KeyARN, Name: g.Name, GranteePrincipal: g.GranteePrincipal,
				RetiringPrincipal: g.RetiringPrincipal, IssuedBy: g.IssuedBy, Operations: append([]string(nil), g.Operations...),
				Created: g.Created, EffectiveAt: g.EffectiveAt,
			}
			if k := st.keys[g.KeyARN]; k != nil {
				gi.KeyAccount, gi.Region = k.Account, k.Region
			}
			out = append(out, gi)
		}
		st.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].GrantID < out[j].GrantID
	})
	return out
}
