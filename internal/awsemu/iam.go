package awsemu

import (
	"crypto/sha256"
	"strings"
)

// iamState is the static IAM of the world: accounts, users and their access
// keys, roles and their trust. Session credentials live in stsState.
type iamState struct {
	accounts map[string]*WorldAccount
	keys     map[string]iamUser // access key -> user
	users    map[string]iamUser // user ARN -> user
	roles    map[string]iamRole // role ARN -> role
}

type iamUser struct {
	Account string
	Name    string
	ARN     string
	Secret  string
	Deny    []string
}

type iamRole struct {
	Account    string
	Name       string
	ARN        string
	Trusted    []string
	ExternalID string
	Deny       []string
}

func newIAMState(w *World) *iamState {
	s := &iamState{
		accounts: map[string]*WorldAccount{},
		keys:     map[string]iamUser{},
		users:    map[string]iamUser{},
		roles:    map[string]iamRole{},
	}
	for i := range w.Accounts {
		a := &w.Accounts[i]
		s.accounts[a.ID] = a
		for _, u := range a.Users {
			iu := iamUser{Account: a.ID, Name: u.Name, ARN: userARN(a.ID, u.Name), Secret: u.SecretKey, Deny: u.Deny}
			s.keys[u.AccessKey] = iu
			s.users[iu.ARN] = iu
		}
		for _, r := range a.Roles {
			ir := iamRole{Account: a.ID, Name: r.Name, ARN: roleARN(a.ID, r.Name), Trusted: r.TrustedBy, ExternalID: r.ExternalID, Deny: r.Deny}
			s.roles[ir.ARN] = ir
		}
	}
	return s
}

func userARN(account, name string) string { return "arn:aws:iam::" + account + ":user/" + name }
func roleARN(account, name string) string { return "arn:aws:iam::" + account + ":role/" + name }
func rootARN(account string) string       { return "arn:aws:iam::" + account + ":root" }

// arnAccount returns the account field of an ARN, or "" when s is no ARN.
func arnAccount(s string) string {
	f := strings.SplitN(s, ":", 6)
	if len(f) < 6 || f[0] != "arn" {
		return ""
	}
	return f[4]
}

// denyList is the IAM deny list of an IAM principal (user or role ARN).
func (e *Emulator) denyList(principalIAM string) []string {
	if u, ok := e.iam.users[principalIAM]; ok {
		return u.Deny
	}
	if r, ok := e.iam.roles[principalIAM]; ok {
		return r.Deny
	}
	return nil
}

// iamAllowed reports whether the caller's own IAM policy allows action
// ("ec2:CopyImage", "kms:CreateGrant"). The emulator's IAM allows everything
// but what the world's deny lists name.
func (e *Emulator) iamAllowed(c *Call, action string) bool {
	return e.principalAllowed(c.PrincipalIAM, action)
}

// principalAllowed is iamAllowed for a principal named by its IAM ARN.
func (e *Emulator) principalAllowed(principalIAM, action string) bool {
	for _, pattern := range e.denyList(principalIAM) {
		if actionMatches(pattern, action) {
			return false
		}
	}
	return true
}

// actionMatches matches an IAM action against a pattern with * and ?
// wildcards, case-insensitively ("kms:*", "ec2:Describe*").
func actionMatches(pattern, action string) bool {
	return globMatch(strings.ToLower(pattern), strings.ToLower(action))
}

// globMatch matches s against pattern, where * is any run of characters
// (slashes included, as in IAM) and ? any one character.
func globMatch(pattern, s string) bool {
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pattern) && (pattern[px] == '?' || pattern[px] == s[sx]):
			px++
			sx++
		case px < len(pattern) && pattern[px] == '*':
			starP, starS = px, sx
			px++
		case starP >= 0:
			starS++
			px, sx = starP+1, starS
		default:
			return false
		}
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}

// uniqueID is a stable AWS-style unique ID (AIDA…, AROA…) for an ARN.
func uniqueID(prefix, arn string) string {
	sum := sha256.Sum256([]byte(arn))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := []byte(prefix)
	for i := 0; len(b) < 21; i++ {
		b = append(b, alphabet[sum[i]%32])
	}
	return string(b)
}
