package core

// policy.go: the part of the IAM policy language the emulator evaluates,
// for KMS key policies (resource-based: a Principal per statement) and for
// the identity policies of IAM users and roles (no Principal; Resource
// matters). The evaluator is hand-written: no maintained Go library
// evaluates IAM policies.

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Policy is a policy document.
type Policy struct {
	Version   string     `json:"Version,omitempty"`
	ID        string     `json:"Id,omitempty"`
	Statement Statements `json:"Statement"`
}

// Statements is a Statement list, which JSON may write as a single object.
type Statements []Statement

// UnmarshalJSON takes one statement or a list.
func (s *Statements) UnmarshalJSON(b []byte) error {
	var one Statement
	if err := json.Unmarshal(b, &one); err == nil && one.Effect != "" {
		*s = Statements{one}
		return nil
	}
	var many []Statement
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("field Statement: %w", err)
	}
	*s = many
	return nil
}

// Statement is one statement of a policy.
type Statement struct {
	Sid         string                           `json:"Sid,omitempty"`
	Effect      string                           `json:"Effect"`
	Principal   *Principal                       `json:"Principal,omitempty"`
	Action      StringList                       `json:"Action,omitempty"`
	NotAction   StringList                       `json:"NotAction,omitempty"`
	Resource    StringList                       `json:"Resource,omitempty"`
	NotResource StringList                       `json:"NotResource,omitempty"`
	Condition   map[string]map[string]StringList `json:"Condition,omitempty"`
}

// StringList is a JSON string or array of strings.
type StringList []string

// UnmarshalJSON takes a string or a list of strings.
func (s *StringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = StringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		// Condition values may be booleans or numbers.
		var values []any
		if json.Unmarshal(b, &values) != nil {
			var scalar any
			if json.Unmarshal(b, &scalar) != nil {
				return errors.New("must be a string or a list of strings")
			}
			values = []any{scalar}
		}
		for _, v := range values {
			many = append(many, fmt.Sprint(v))
		}
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

// UnmarshalJSON takes "*" or an object.
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
	if slices.Contains(p.AWS, "*") {
		p.Any = true
	}
	return nil
}

// MarshalJSON writes "*" or the object.
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

// ParsePolicy parses and checks a key policy document: every statement
// names a Principal.
func ParsePolicy(doc string) (*Policy, error) {
	p, err := parsePolicy(doc, "key policy")
	if err != nil {
		return nil, err
	}
	for i, s := range p.Statement {
		if s.Principal == nil || !s.Principal.Any && len(s.Principal.AWS) == 0 && len(s.Principal.Service) == 0 {
			return nil, fmt.Errorf("key policy Statement[%d] has no Principal", i)
		}
	}
	return p, nil
}

// ParseIdentityPolicy parses and checks the identity policy of a user or
// role: no statement names a Principal, every one has a Resource.
func ParseIdentityPolicy(doc string) (*Policy, error) {
	p, err := parsePolicy(doc, "identity policy")
	if err != nil {
		return nil, err
	}
	for i, s := range p.Statement {
		if s.Principal != nil {
			return nil, fmt.Errorf("identity policy Statement[%d] has a Principal; identity policies name none (it is the user or role they are attached to)", i)
		}
		if len(s.Resource) == 0 && len(s.NotResource) == 0 {
			return nil, fmt.Errorf("identity policy Statement[%d] has no Resource; write \"Resource\": \"*\" or the ARNs it applies to", i)
		}
	}
	return p, nil
}

func parsePolicy(doc, what string) (*Policy, error) {
	var p Policy
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return nil, fmt.Errorf("%s is not a valid policy document: %w", what, err)
	}
	if len(p.Statement) == 0 {
		return nil, fmt.Errorf("%s has no Statement", what)
	}
	for i, s := range p.Statement {
		if s.Effect != "Allow" && s.Effect != "Deny" {
			return nil, fmt.Errorf("%s Statement[%d].Effect %q must be Allow or Deny", what, i, s.Effect)
		}
		if len(s.Action) == 0 && len(s.NotAction) == 0 {
			return nil, fmt.Errorf("%s Statement[%d] has no Action", what, i)
		}
		for op := range s.Condition {
			if _, _, ok := conditionOperator(op); !ok {
				return nil, fmt.Errorf("%s Statement[%d].Condition: operator %q is not one this emulator evaluates (String*, Arn*, Bool, with IfExists / ForAnyValue: / ForAllValues:)", what, i, op)
			}
		}
	}
	return &p, nil
}

// PolicyRequest is what a policy is evaluated against.
type PolicyRequest struct {
	Account      string // caller account
	Principal    string // caller ARN (user, root or assumed-role session)
	PrincipalIAM string // IAM identity (user, root or role ARN)
	Action       string // "kms:Decrypt"
	Resource     string // the ARN acted on; "" is "*"
	ViaService   string // "ec2.us-east-1.amazonaws.com" when EC2 acts for the caller
	// Context holds the other condition keys of the request, by lower-case
	// name: "kms:encryptioncontext:amicrypt:instance-arn",
	// "kms:grantisforawsresource", "aws:resourcetag/team"…
	Context map[string][]string
	// NoIAMDelegation: the caller's IAM grants it no KMS permissions (a
	// service-linked role), so an Allow naming its account or account root
	// does not apply to it; only one naming it (or "*") does.
	NoIAMDelegation bool
}

// Evaluation is what a policy says of a request.
type Evaluation struct {
	Allowed bool // some Allow statement matches
	Denied  bool // some Deny statement matches (explicit deny)
	// Direct: an Allow statement names the caller itself or "*" (not only
	// its account), so the caller's own IAM need not allow too.
	Direct bool
}

// Evaluate returns whether some Allow statement matches and whether some
// Deny statement matches.
func (p *Policy) Evaluate(r PolicyRequest) (allowed, denied bool) {
	ev := p.Eval(r)
	return ev.Allowed, ev.Denied
}

// Eval evaluates every statement against r.
func (p *Policy) Eval(r PolicyRequest) Evaluation {
	var ev Evaluation
	for _, s := range p.Statement {
		if !s.matches(r) {
			continue
		}
		if s.Effect == "Deny" {
			ev.Denied = true
			continue
		}
		direct := s.principalNamesDirectly(r)
		if !r.NoIAMDelegation || direct {
			ev.Allowed = true
			ev.Direct = ev.Direct || direct
		}
	}
	return ev
}

// Matching returns the statements with effect ("Allow" or "Deny") that
// match r.
func (p *Policy) Matching(r PolicyRequest, effect string) []Statement {
	var out []Statement
	for _, s := range p.Statement {
		if s.Effect == effect && s.matches(r) {
			out = append(out, s)
		}
	}
	return out
}

func (s Statement) matches(r PolicyRequest) bool {
	if s.Principal != nil && !s.principalMatches(r) {
		return false
	}
	if !matchesAny(s.Action, s.NotAction, r.Action, ActionMatches) {
		return false
	}
	resource := r.Resource
	if resource == "" {
		resource = "*"
	}
	if (len(s.Resource) > 0 || len(s.NotResource) > 0) && !matchesAny(s.Resource, s.NotResource, resource, resourceMatches) {
		return false
	}
	return s.conditionsMatch(r)
}

// matchesAny is the Action/NotAction (Resource/NotResource) rule: the value
// matches a pattern of the list, or, with the Not form, none of them.
func matchesAny(list, notList StringList, v string, match func(pattern, v string) bool) bool {
	if len(list) > 0 {
		return slices.ContainsFunc(list, func(p string) bool { return match(p, v) })
	}
	return !slices.ContainsFunc(notList, func(p string) bool { return match(p, v) })
}

// resourceMatches matches an ARN against a Resource pattern with * and ?.
func resourceMatches(pattern, arn string) bool {
	return pattern == "*" || GlobMatch(pattern, arn)
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
// not merely its account. An identity policy statement names its owner.
func (s Statement) principalNamesDirectly(r PolicyRequest) bool {
	if s.Principal == nil || s.Principal.Any {
		return true
	}
	for _, v := range s.Principal.AWS {
		if v == r.PrincipalIAM || v == r.Principal {
			return true
		}
	}
	return false
}

// values returns the request's values of a condition key (case-insensitive
// names, as IAM reads them).
func (r PolicyRequest) values(key string) ([]string, bool) {
	switch k := strings.ToLower(key); k {
	case "kms:calleraccount", "aws:principalaccount":
		return []string{r.Account}, true
	case "kms:viaservice":
		if r.ViaService == "" {
			return nil, false
		}
		return []string{r.ViaService}, true
	case "aws:principalarn":
		return []string{r.PrincipalIAM}, true
	default:
		v, ok := r.Context[k]
		return v, ok
	}
}

func (s Statement) conditionsMatch(r PolicyRequest) bool {
	for op, kv := range s.Condition {
		for key, want := range kv {
			got, present := r.values(key)
			resolved, ok := r.resolveVariables(want)
			if !ok || !conditionHolds(op, got, present, resolved) {
				return false
			}
		}
	}
	return true
}

var policyVariable = regexp.MustCompile(`\$\{([^}]+)\}`)

// resolveVariables replaces policy variables such as
// ${ec2:SourceInstanceARN} in condition values with the request's value; a
// variable the request lacks makes the condition fail (IAM user guide,
// "IAM policy elements: Variables and tags").
func (r PolicyRequest) resolveVariables(want []string) ([]string, bool) {
	out := make([]string, len(want))
	ok := true
	for i, w := range want {
		out[i] = policyVariable.ReplaceAllStringFunc(w, func(v string) string {
			name := v[2 : len(v)-1]
			vals, present := r.values(name)
			if !present || len(vals) != 1 {
				ok = false
				return v
			}
			return vals[0]
		})
	}
	return out, ok
}

// conditionOperator splits an operator into its set qualifier
// (ForAnyValue/ForAllValues), its base and IfExists.
func conditionOperator(op string) (set, base string, ok bool) {
	base = op
	if q, rest, found := strings.Cut(op, ":"); found {
		if q != "ForAnyValue" && q != "ForAllValues" {
			return "", "", false
		}
		set, base = q, rest
	}
	base = strings.TrimSuffix(base, "IfExists")
	switch base {
	case "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
		"StringLike", "StringNotLike", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Bool":
		return set, base, true
	}
	return "", "", false
}

// conditionHolds applies one operator to the request's values of a key.
// A key absent from the request fails a positive operator and passes a
// negated one; IfExists makes an absent key pass.
func conditionHolds(op string, got []string, present bool, want []string) bool {
	set, base, ok := conditionOperator(op)
	if !ok {
		return false
	}
	negated := strings.Contains(base, "Not")
	if !present {
		return strings.HasSuffix(op, "IfExists") || negated || set == "ForAllValues"
	}
	one := func(v string) bool {
		matched := slices.ContainsFunc(want, func(w string) bool { return valueMatches(base, v, w) })
		if negated {
			return !matched
		}
		return matched
	}
	switch set {
	case "ForAllValues":
		return !slices.ContainsFunc(got, func(v string) bool { return !one(v) })
	default: // single-valued keys and ForAnyValue
		return slices.ContainsFunc(got, one)
	}
}

func valueMatches(base, got, want string) bool {
	switch base {
	case "StringEquals", "StringNotEquals", "ArnEquals", "ArnNotEquals":
		return got == want
	case "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase":
		return strings.EqualFold(got, want)
	case "StringLike", "StringNotLike", "ArnLike", "ArnNotLike":
		return GlobMatch(want, got)
	case "Bool":
		return strings.EqualFold(got, want)
	}
	return false
}
