package core

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

func UserARN(account, name string) string { return "arn:aws:iam::" + account + ":user/" + name }

func RoleARN(account, name string) string { return "arn:aws:iam::" + account + ":role/" + name }

func RootARN(account string) string { return "arn:aws:iam::" + account + ":root" }

// ARNAccount returns the account field of an ARN, or "" when s is no ARN.
func ARNAccount(s string) string {
	f := strings.SplitN(s, ":", 6)
	if len(f) < 6 || f[0] != "arn" {
		return ""
	}
	return f[4]
}

// ActionMatches matches an IAM action against a pattern with * and ?
// wildcards, case-insensitively ("kms:*", "ec2:Describe*").
func ActionMatches(pattern, action string) bool {
	return GlobMatch(strings.ToLower(pattern), strings.ToLower(action))
}

// GlobMatch matches s against pattern, where * is any run of characters
// (slashes included, as in IAM) and ? any one character.
func GlobMatch(pattern, s string) bool {
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

// UniqueID is a stable AWS-style unique ID (AIDA…, AROA…) for an ARN.
func UniqueID(prefix, arn string) string {
	sum := sha256.Sum256([]byte(arn))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := []byte(prefix)
	for i := 0; len(b) < 21; i++ {
		b = append(b, alphabet[sum[i]%32])
	}
	return string(b)
}

func KeyARN(region, account, id string) string {
	return "arn:aws:kms:" + region + ":" + account + ":key/" + id
}

func AliasARN(region, account, name string) string {
	return "arn:aws:kms:" + region + ":" + account + ":" + name
}

// StableUUID derives a UUID-shaped ID from seed, so world keys keep their
// IDs across restarts without a state file.
func StableUUID(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

func RandomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b
}

func RandomUUID() string {
	h := hex.EncodeToString(RandomBytes(16))
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// IsAccountID reports whether s is a 12-digit AWS account ID.
func IsAccountID(s string) bool { return accountIDRe.MatchString(s) }

// Role is an IAM role and its trust, as STS and EC2 see it.
type Role struct {
	Account    string
	Name       string
	ARN        string
	Trusted    []string // account IDs, principal ARNs or service principals
	ExternalID string
	Deny       []string
	Policies   []*Policy // identity policies; none: everything but Deny
}

// Scope is an account and a region: the unit of a service's store.
type Scope struct {
	Account string
	Region  string
}

// Less orders scopes by account, then region.
func (s Scope) Less(o Scope) bool {
	if s.Account != o.Account {
		return s.Account < o.Account
	}
	return s.Region < o.Region
}

// Compare orders scopes as Less does: -1, 0 or +1.
func (s Scope) Compare(o Scope) int {
	return cmp.Or(cmp.Compare(s.Account, o.Account), cmp.Compare(s.Region, o.Region))
}

func (s Scope) String() string { return s.Account + "/" + s.Region }

// InstanceProfile is an instance profile and the role it passes to
// instances.
type InstanceProfile struct {
	Account string
	Name    string
	ARN     string // arn:aws:iam::ACCT:instance-profile/NAME
	Role    Role
}

// IdentityDecision is what a principal's own identity policies say of a
// request.
type IdentityDecision struct {
	Allowed      bool // an identity policy (or the absence of any) allows it
	ExplicitDeny bool // a Deny statement or the world's deny list matches
	// Denies are the Deny statements that matched (an entry of the world's
	// deny list as a statement of its own), for authorization messages.
	Denies []Statement
}

// Credentials are temporary security credentials, as STS issues them.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Expiration      time.Time
	// ARN is the session: arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION.
	ARN string
}
