package core

// authz.go: how AWS tells a caller it was denied: the access-denied text
// and the authorization message some EC2 calls encode in their
// UnauthorizedOperation errors, which sts:DecodeAuthorizationMessage
// decodes (docs/aws-behaviour.md 8.4, 8.5).

import (
	"sort"
	"strings"
)

// AccessDeniedMessage is AWS's text of an access denied by identity
// policies: "User: P is not authorized to perform: A on resource: R
// because no identity-based policy allows the A action", or "… with an
// explicit deny in an identity-based policy". An empty resource leaves
// "on resource: R" out, as AWS does for actions without one.
func AccessDeniedMessage(principal, action, resource string, explicitDeny bool) string {
	var b strings.Builder
	b.WriteString("User: " + principal + " is not authorized to perform: " + action)
	if resource != "" {
		b.WriteString(" on resource: " + resource)
	}
	if explicitDeny {
		b.WriteString(" with an explicit deny in an identity-based policy")
	} else {
		b.WriteString(" because no identity-based policy allows the " + action + " action")
	}
	return b.String()
}

// Items is the {"items": [...]} list of a decoded authorization message.
type Items[T any] struct {
	Items []T `json:"items"`
}

// ValueItem is one {"value": ...} of a list.
type ValueItem struct {
	Value string `json:"value"`
}

// ConditionItem is a condition key and its values.
type ConditionItem struct {
	Key    string           `json:"key"`
	Values Items[ValueItem] `json:"values"`
}

// MatchedStatement is a policy statement that decided the request.
type MatchedStatement struct {
	StatementID     string               `json:"statementId"`
	Effect          string               `json:"effect"` // DENY or ALLOW
	Principals      Items[ValueItem]     `json:"principals"`
	PrincipalGroups Items[ValueItem]     `json:"principalGroups"`
	Actions         Items[ValueItem]     `json:"actions"`
	Resources       Items[ValueItem]     `json:"resources"`
	Conditions      Items[ConditionItem] `json:"conditions"`
}

// MessagePrincipal is the caller in a decoded authorization message.
type MessagePrincipal struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	Arn  string `json:"arn"`
}

// MessageContext is the request a decoded authorization message is about.
type MessageContext struct {
	Principal  MessagePrincipal     `json:"principal"`
	Action     string               `json:"action"`
	Resource   string               `json:"resource"`
	Conditions Items[ConditionItem] `json:"conditions"`
}

// AuthorizationMessage is the document sts:DecodeAuthorizationMessage
// returns: whether the request was allowed, whether an explicit deny
// decided it, the statements that matched, and the request's context.
type AuthorizationMessage struct {
	Allowed           bool                    `json:"allowed"`
	ExplicitDeny      bool                    `json:"explicitDeny"`
	MatchedStatements Items[MatchedStatement] `json:"matchedStatements"`
	Failures          Items[ValueItem]        `json:"failures"`
	Context           MessageContext          `json:"context"`
}

// NewAuthorizationMessage describes the decision d on the call c for
// action on resource.
func NewAuthorizationMessage(c *Call, action, resource string, d IdentityDecision) AuthorizationMessage {
	m := AuthorizationMessage{
		Allowed: d.Allowed, ExplicitDeny: d.ExplicitDeny,
		MatchedStatements: Items[MatchedStatement]{Items: []MatchedStatement{}},
		Failures:          Items[ValueItem]{Items: []ValueItem{}},
		Context: MessageContext{Principal: messagePrincipal(c), Action: action, Resource: resource,
			Conditions: Items[ConditionItem]{Items: requestConditions(c)}},
	}
	for _, s := range d.Denies {
		m.MatchedStatements.Items = append(m.MatchedStatements.Items, matchedStatement(s, m.Context.Principal.ID))
	}
	return m
}

// messagePrincipal is the caller as a decoded message names it: the
// unique ID (AIDA… for a user, AROA…:SESSION for a role session), the
// user's name, the ARN.
func messagePrincipal(c *Call) MessagePrincipal {
	p := MessagePrincipal{ID: UniqueID("AIDA", c.PrincipalIAM), Arn: c.Principal}
	switch {
	case strings.Contains(c.Principal, ":assumed-role/"):
		p.ID = UniqueID("AROA", c.PrincipalIAM) + ":" + c.Principal[strings.LastIndexByte(c.Principal, '/')+1:]
	case strings.Contains(c.Principal, ":user/"):
		p.Name = c.Principal[strings.LastIndexByte(c.Principal, '/')+1:]
	}
	return p
}

// requestConditions are the condition keys of the request the message
// shows.
func requestConditions(c *Call) []ConditionItem {
	one := func(k, v string) ConditionItem {
		return ConditionItem{Key: k, Values: Items[ValueItem]{Items: []ValueItem{{Value: v}}}}
	}
	out := []ConditionItem{one("aws:Region", c.Region), one("aws:Account", c.Account), one("aws:PrincipalArn", c.PrincipalIAM)}
	if c.SourceInstanceARN != "" {
		out = append(out, one("ec2:SourceInstanceARN", c.SourceInstanceARN))
	}
	return out
}

func matchedStatement(s Statement, principalID string) MatchedStatement {
	values := func(list []string) Items[ValueItem] {
		out := Items[ValueItem]{Items: []ValueItem{}}
		for _, v := range list {
			out.Items = append(out.Items, ValueItem{Value: v})
		}
		return out
	}
	ms := MatchedStatement{StatementID: s.Sid, Effect: strings.ToUpper(s.Effect), Principals: values([]string{principalID}),
		PrincipalGroups: values(nil), Actions: values(s.Action), Resources: values(s.Resource),
		Conditions: Items[ConditionItem]{Items: []ConditionItem{}}}
	if len(ms.Resources.Items) == 0 && len(s.NotResource) == 0 {
		ms.Resources = values([]string{"*"})
	}
	var keys []string
	byKey := map[string][]string{}
	for _, kv := range s.Condition {
		for k, vs := range kv {
			if _, seen := byKey[k]; !seen {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], vs...)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		ms.Conditions.Items = append(ms.Conditions.Items, ConditionItem{Key: k, Values: values(byKey[k])})
	}
	return ms
}
