// Package iam is the emulator's IAM: the accounts of the world, their users
// and access keys, roles and their trust, instance profiles, and whether a
// principal's own identity policy allows an action. It is fixed by the world
// file, so it needs no lock.
package iam

import (
	"fmt"
	"strings"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// IAM is the identity side of the world.
type IAM struct {
	accounts map[string]*core.WorldAccount
	keys     map[string]User                 // access key -> user
	users    map[string]User                 // user ARN -> user
	roles    map[string]core.Role            // role ARN -> role
	profiles map[string]core.InstanceProfile // "account|name" -> instance profile
}

// User is an IAM user with an access key.
type User struct {
	Account   string
	Name      string
	ARN       string
	AccessKey string
	Secret    string
	Deny      []string
	Policies  []*core.Policy
}

// New builds the IAM of a validated world.
func New(w *core.World) *IAM {
	s := &IAM{
		accounts: map[string]*core.WorldAccount{},
		keys:     map[string]User{},
		users:    map[string]User{},
		roles:    map[string]core.Role{},
		profiles: map[string]core.InstanceProfile{},
	}
	for i := range w.Accounts {
		a := &w.Accounts[i]
		s.accounts[a.ID] = a
		for _, u := range a.Users {
			iu := User{Account: a.ID, Name: u.Name, ARN: core.UserARN(a.ID, u.Name), AccessKey: u.AccessKey, Secret: u.SecretKey, Deny: u.Deny,
				Policies: mustParse(u.Policies)}
			s.keys[u.AccessKey] = iu
			s.users[iu.ARN] = iu
		}
		for _, r := range a.Roles {
			ir := core.Role{Account: a.ID, Name: r.Name, ARN: core.RoleARN(a.ID, r.Name), Trusted: r.TrustedBy, ExternalID: r.ExternalID, Deny: r.Deny,
				Policies: mustParse(r.Policies)}
			s.roles[ir.ARN] = ir
		}
		for _, p := range a.InstanceProfiles {
			s.profiles[a.ID+"|"+p.Name] = core.InstanceProfile{
				Account: a.ID, Name: p.Name, ARN: ProfileARN(a.ID, p.Name),
				Role: s.roles[core.RoleARN(a.ID, p.Role)],
			}
		}
	}
	return s
}

// ProfileARN is the ARN of an instance profile.
func ProfileARN(account, name string) string {
	return "arn:aws:iam::" + account + ":instance-profile/" + name
}

// UserByAccessKey finds the user an access key belongs to.
func (s *IAM) UserByAccessKey(accessKey string) (User, bool) {
	u, ok := s.keys[accessKey]
	return u, ok
}

// Role finds a role by ARN.
func (s *IAM) Role(arn string) (core.Role, bool) {
	r, ok := s.roles[arn]
	return r, ok
}

// InstanceProfile finds an instance profile of account by name or ARN.
func (s *IAM) InstanceProfile(account, nameOrARN string) (core.InstanceProfile, bool) {
	name := nameOrARN
	if strings.HasPrefix(nameOrARN, "arn:") {
		if core.ARNAccount(nameOrARN) != account {
			return core.InstanceProfile{}, false
		}
		_, name, _ = strings.Cut(nameOrARN, ":instance-profile/")
	}
	p, ok := s.profiles[account+"|"+name]
	return p, ok
}

// ProfilesForRole lists the instance profiles that pass roleARN.
func (s *IAM) ProfilesForRole(roleARN string) []core.InstanceProfile {
	var out []core.InstanceProfile
	for _, p := range s.profiles {
		if p.Role.ARN == roleARN {
			out = append(out, p)
		}
	}
	return out
}

// AccountExists reports whether id is an account of the world.
func (s *IAM) AccountExists(id string) bool {
	_, ok := s.accounts[id]
	return ok
}

// AccountByAlias returns the account ID with that alias ("amazon").
func (s *IAM) AccountByAlias(alias string) (string, bool) {
	for id, a := range s.accounts {
		if a.Alias == alias {
			return id, true
		}
	}
	return "", false
}

// Aliases maps account IDs to their aliases.
func (s *IAM) Aliases() map[string]string {
	out := map[string]string{}
	for id, a := range s.accounts {
		if a.Alias != "" {
			out[id] = a.Alias
		}
	}
	return out
}

// EBSEncryptionByDefault reports whether the world has the account encrypt
// new EBS volumes by default in region.
func (s *IAM) EBSEncryptionByDefault(account, region string) bool {
	a, ok := s.accounts[account]
	if !ok {
		return false
	}
	for _, r := range a.EBSEncryptionByDefault {
		if r == "*" || strings.EqualFold(r, region) {
			return true
		}
	}
	return false
}

// Credentials returns the access key and secret of the account's first user.
func (s *IAM) Credentials(account string) (accessKey, secretKey string, err error) {
	a, ok := s.accounts[account]
	if !ok {
		return "", "", fmt.Errorf("account %s is not in the emulator's world", account)
	}
	if len(a.Users) == 0 {
		return "", "", fmt.Errorf("account %s has no IAM user with an access key in the world", account)
	}
	return a.Users[0].AccessKey, a.Users[0].SecretKey, nil
}

// mustParse parses identity policies World.Validate already checked.
func mustParse(docs []string) []*core.Policy {
	out := make([]*core.Policy, 0, len(docs))
	for _, d := range docs {
		p, err := core.ParseIdentityPolicy(d)
		if err != nil {
			panic(fmt.Sprintf("iam: a validated world has an invalid policy: %v", err))
		}
		out = append(out, p)
	}
	return out
}

// Allowed reports whether the identity policies of an IAM principal (user
// or role ARN) allow action ("ec2:CopyImage") on any resource.
func (s *IAM) Allowed(principalIAM, action string) bool {
	return s.Authorize(core.PolicyRequest{PrincipalIAM: principalIAM, Action: action}).Allowed
}

// Authorize evaluates a principal's identity policies for a request, as IAM
// does: an explicit Deny (a statement, or the world's deny list) wins; a
// principal with policies may do only what one allows; a principal without
// any (and an account root) may do everything not denied. Principals IAM
// does not know (service-linked roles) have no identity policies here;
// KMS decides for them.
func (s *IAM) Authorize(r core.PolicyRequest) core.IdentityDecision {
	deny, policies := s.identity(r.PrincipalIAM)
	var d core.IdentityDecision
	for _, pattern := range deny {
		if core.ActionMatches(pattern, r.Action) {
			d.ExplicitDeny = true
			d.Denies = append(d.Denies, core.Statement{Sid: "WorldDenyList", Effect: "Deny", Action: core.StringList{pattern}, Resource: core.StringList{"*"}})
		}
	}
	for _, p := range policies {
		ev := p.Eval(r)
		d.Allowed = d.Allowed || ev.Allowed
		if ev.Denied {
			d.ExplicitDeny = true
			d.Denies = append(d.Denies, p.Matching(r, "Deny")...)
		}
	}
	if len(policies) == 0 {
		d.Allowed = true // no identity policies: everything the deny list does not name
	}
	if d.ExplicitDeny {
		d.Allowed = false
	}
	return d
}

func (s *IAM) identity(principalIAM string) (deny []string, policies []*core.Policy) {
	if u, ok := s.users[principalIAM]; ok {
		return u.Deny, u.Policies
	}
	if r, ok := s.roles[principalIAM]; ok {
		return r.Deny, r.Policies
	}
	return nil, nil
}
