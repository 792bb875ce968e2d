package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Policy is the subset of the IAM policy language KMS key policies use
// here: Allow and Deny statements, Principal "*" or {"AWS": …}, Action with
// wildcards, and StringEquals/StringLike/Bool conditions on a few keys.
type Policy struct {
	Version   string      `json:"Version,omitempty"`
	ID        string      `json:"Id,omitempty"`
	Statement []Statement `json:"Statement"`
}

type Statement struct {
	Sid       string                           `json:"Sid,omitempty"`
	Effect    string                           `json:"Effect"`
	Principal Principal                        `json:"Principal"`
	Action    StringList                       `json:"Action"`
	Resource  StringList                       `json:"Resource,omitempty"`
	Condition map[string]map[string]StringList `json:"Condition,omitempty"`
}

// StringList is a JSON string or array of strings.
type StringList []string

func (s *StringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = StringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("must be a string or a list of strings")
	}
	*s = many
	return nil
}

// Principal is "*" or {"AWS": …, "Service": …}.
type Principal struct {
	Any     bool
	AWS     StringList
	Service StringList
}

func (p *Principal) UnmarshalJSON(b []byte) error {
	var star string
	if err := json.Unmarshal(b, &star); err == nil {
		if star != "*" {
			return fmt.Errorf("field Principal %q must be \"*\" or an object like {\"AWS\": \"arn:aws:iam::111111111111:root\"}", star)
		}
		p.Any = true
		return nil
	}
	var obj struct {
		AWS     StringList `json:"AWS"`
		Service StringList `json:"Service"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("field Principal: %w", err)
	}
	p.AWS, p.Service = obj.AWS, obj.Service
	for _, v := range p.AWS {
		if v == "*" {
			p.Any = true
		}
	}
	return nil
}

func (p Principal) MarshalJSON() ([]byte, error) {
	if p.Any && len(p.AWS) == 0 {
		return json.Marshal("*")
	}
	m := map[string]StringList{}
	if len(p.AWS) > 0 {
		m["AWS"] = p.AWS
	}
	if len(p.Service) > 0 {
		m["Service"] = p.Service
	}
	return json.Marshal(m)
}

// ParsePolicy parses and checks a key policy document.
func ParsePolicy(doc string) (*Policy, error) {
	var p Policy
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return nil, fmt.Errorf("key policy is not a valid policy document: %w", err)
	}
	if len(p.Statement) == 0 {
		return nil, errors.New("key policy has no Statement")
	}
	for i, s := range p.Statement {
		if s.Effect != "Allow" && s.Effect != "Deny" {
			return nil, fmt.Errorf("key policy Statement[%d].Effect %q must be Allow or Deny", i, s.Effect)
		}
		if len(s.Action) == 0 {
			return nil, fmt.Errorf("key policy Statement[%d] has no Action", i)
		}
		if !s.Principal.Any && len(s.Principal.AWS) == 0 && len(s.Principal.Service) == 0 {
			return nil, fmt.Errorf("key policy Statement[%d] has no Principal", i)
		}
	}
	return &p, nil
}

// PolicyRequest is what a key policy is evaluated against.
type PolicyRequest struct {
	Account      string // caller account
	Principal    string // caller ARN (user, root or assumed-role session)
	PrincipalIAM string // IAM identity (user, root or role ARN)
	Action       string // "kms:Decrypt"
	ViaService   string // "ec2.us-east-1.amazonaws.com" when EC2 acts for the caller
	// NoIAMDelegation: the caller's IAM grants it no KMS permissions (a
	// service-linked role), so an Allow naming its account or account root
	// does not apply to it; only one naming it (or "*") does.
	NoIAMDelegation bool
}

// Evaluate returns whether some Allow statement matches and whether some
// Deny statement matches.
func (p *Policy) Evaluate(r PolicyRequest) (allowed, denied bool) {
	for _, s := range p.Statement {
		if !s.matches(r) {
			continue
		}
		if s.Effect == "Deny" {
			denied = true
		} else if !r.NoIAMDelegation || s.principalNamesDirectly(r) {
			allowed = true
		}
	}
	return allowed, denied
}

func (s Statement) matches(r PolicyRequest) bool {
	if !s.principalMatches(r) {
		return false
	}
	actionOK := false
	for _, a := range s.Action {
		actionOK = actionOK || ActionMatches(a, r.Action)
	}
	return actionOK && s.conditionsMatch(r)
}

// principalMatches: an account ID or its root ARN names every principal of
// that account (whose own IAM must also allow; the caller checks it).
func (s Statement) principalMatches(r PolicyRequest) bool {
	if s.Principal.Any {
		return true
	}
	for _, v := range s.Principal.AWS {
		switch v {
		case r.Account, RootARN(r.Account), r.PrincipalIAM, r.Principal:
			return true
		}
	}
	return false
}

// principalNamesDirectly: the statement names the caller itself or "*",
// not merely its account.
func (s Statement) principalNamesDirectly(r PolicyRequest) bool {
	if s.Principal.Any {
		return true
	}
	for _, v := range s.Principal.AWS {
		if v == r.PrincipalIAM || v == r.Principal {
			return true
		}
	}
	return false
}

func (s Statement) conditionsMatch(r PolicyRequest) bool {
	for op, kv := range s.Condition {
		for key, want := range kv {
			var got string
			switch strings.ToLower(key) {
			case "kms:calleraccount":
				got = r.Account
			case "kms:viaservice":
				got = r.ViaService
			case "aws:principalarn":
				got = r.PrincipalIAM
			default:
				return false // unknown keys never match (conservative)
			}
			if !conditionValueMatches(op, got, want) {
				return false
			}
		}
	}
	return true
}

func conditionValueMatches(op, got string, want []string) bool {
	for _, w := range want {
		switch op {
		case "StringEquals":
			if got == w {
				return true
			}
		case "StringLike":
			if GlobMatch(w, got) {
				return true
			}
		default:
			return false
		}
	}
	return false
}
