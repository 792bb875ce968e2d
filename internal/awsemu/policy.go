package awsemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// keyPolicy is the subset of the IAM policy language KMS key policies use
// here: Allow and Deny statements, Principal "*" or {"AWS": …}, Action with
// wildcards, and StringEquals/StringLike/Bool conditions on a few keys.
type keyPolicy struct {
	Version   string            `json:"Version,omitempty"`
	ID        string            `json:"Id,omitempty"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Sid       string                           `json:"Sid,omitempty"`
	Effect    string                           `json:"Effect"`
	Principal policyPrincipal                  `json:"Principal"`
	Action    stringList                       `json:"Action"`
	Resource  stringList                       `json:"Resource,omitempty"`
	Condition map[string]map[string]stringList `json:"Condition,omitempty"`
}

// stringList is a JSON string or array of strings.
type stringList []string

func (s *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("must be a string or a list of strings")
	}
	*s = many
	return nil
}

// policyPrincipal is "*" or {"AWS": …, "Service": …}.
type policyPrincipal struct {
	Any     bool
	AWS     stringList
	Service stringList
}

func (p *policyPrincipal) UnmarshalJSON(b []byte) error {
	var star string
	if err := json.Unmarshal(b, &star); err == nil {
		if star != "*" {
			return fmt.Errorf("field Principal %q must be \"*\" or an object like {\"AWS\": \"arn:aws:iam::111111111111:root\"}", star)
		}
		p.Any = true
		return nil
	}
	var obj struct {
		AWS     stringList `json:"AWS"`
		Service stringList `json:"Service"`
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

func (p policyPrincipal) MarshalJSON() ([]byte, error) {
	if p.Any && len(p.AWS) == 0 {
		return json.Marshal("*")
	}
	m := map[string]stringList{}
	if len(p.AWS) > 0 {
		m["AWS"] = p.AWS
	}
	if len(p.Service) > 0 {
		m["Service"] = p.Service
	}
	return json.Marshal(m)
}

// parsePolicy parses and checks a key policy document.
func parsePolicy(doc string) (*keyPolicy, error) {
	var p keyPolicy
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

// defaultKeyPolicy lets the account's root — and so the account's IAM —
// do everything with the key, as KMS's default key policy does.
func defaultKeyPolicy(account string) string {
	return `{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` +
		account + `:root"},"Action":"kms:*","Resource":"*"}]}`
}

// awsManagedEBSPolicy is the key policy AWS gives alias/aws/ebs: use only
// through EC2 by the account's principals, metadata reads for the account.
func awsManagedEBSPolicy(account, region string) string {
	return `{"Version":"2012-10-17","Id":"auto-ebs-2","Statement":[` +
		`{"Sid":"Allow access through EBS for all principals in the account that are authorized to use EBS","Effect":"Allow","Principal":{"AWS":"*"},` +
		`"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant","kms:DescribeKey"],"Resource":"*",` +
		`"Condition":{"StringEquals":{"kms:CallerAccount":"` + account + `","kms:ViaService":"ec2.` + region + `.amazonaws.com"}}},` +
		`{"Sid":"Allow direct access to key metadata to the account","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + account + `:root"},` +
		`"Action":["kms:Describe*","kms:Get*","kms:List*","kms:RevokeGrant"],"Resource":"*"}]}`
}

// policyRequest is what a key policy is evaluated against.
type policyRequest struct {
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

// evaluate returns whether some Allow statement matches and whether some
// Deny statement matches.
func (p *keyPolicy) evaluate(r policyRequest) (allowed, denied bool) {
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

func (s policyStatement) matches(r policyRequest) bool {
	if !s.principalMatches(r) {
		return false
	}
	actionOK := false
	for _, a := range s.Action {
		actionOK = actionOK || actionMatches(a, r.Action)
	}
	return actionOK && s.conditionsMatch(r)
}

// principalMatches: an account ID or its root ARN names every principal of
// that account (whose own IAM must also allow; the caller checks it).
func (s policyStatement) principalMatches(r policyRequest) bool {
	if s.Principal.Any {
		return true
	}
	for _, v := range s.Principal.AWS {
		switch v {
		case r.Account, rootARN(r.Account), r.PrincipalIAM, r.Principal:
			return true
		}
	}
	return false
}

// principalNamesDirectly: the statement names the caller itself or "*",
// not merely its account.
func (s policyStatement) principalNamesDirectly(r policyRequest) bool {
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

func (s policyStatement) conditionsMatch(r policyRequest) bool {
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
			if globMatch(w, got) {
				return true
			}
		default:
			return false
		}
	}
	return false
}
