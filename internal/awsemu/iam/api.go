package iam

// api.go: the IAM API, Query protocol at the global endpoint
// (iam.amazonaws.com): the read calls amazon-ebs and amicrypt-ebs make
// about instance profiles and roles, over the world's fixed identities
// (docs/aws-behaviour.md 8.1–8.3).

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// Version is the IAM API version of the Query protocol.
const Version = "2010-05-08"

// Namespace is the XML namespace of IAM's responses.
const Namespace = "https://iam.amazonaws.com/doc/2010-05-08/"

// API serves the IAM Query API over an IAM. Safe for concurrent use: the
// identities are fixed by the world.
type API struct {
	ids     *IAM
	created time.Time // CreateDate of every world identity
}

// NewAPI serves ids; created is the CreateDate its roles and instance
// profiles show (the world does not date them).
func NewAPI(ids *IAM, created time.Time) *API {
	return &API{ids: ids, created: created.UTC().Truncate(time.Second)}
}

// Handle serves one IAM Query call.
func (a *API) Handle(c *core.Call) (any, *core.APIError) {
	switch c.Action {
	case "GetInstanceProfile":
		return a.getInstanceProfile(c)
	case "GetRole":
		return a.getRole(c)
	case "ListInstanceProfilesForRole":
		return a.listInstanceProfilesForRole(c)
	}
	return nil, core.Errf("InvalidAction", "Could not find operation %s for version %s", c.Action, Version)
}

// xmlRole is IAM's Role shape.
type xmlRole struct {
	Path                     string `xml:"Path"`
	RoleName                 string `xml:"RoleName"`
	RoleID                   string `xml:"RoleId"`
	Arn                      string `xml:"Arn"`
	CreateDate               string `xml:"CreateDate"`
	AssumeRolePolicyDocument string `xml:"AssumeRolePolicyDocument"`
	MaxSessionDuration       int    `xml:"MaxSessionDuration,omitempty"`
}

// xmlInstanceProfile is IAM's InstanceProfile shape.
type xmlInstanceProfile struct {
	Path                string    `xml:"Path"`
	InstanceProfileName string    `xml:"InstanceProfileName"`
	InstanceProfileID   string    `xml:"InstanceProfileId"`
	Arn                 string    `xml:"Arn"`
	CreateDate          string    `xml:"CreateDate"`
	Roles               []xmlRole `xml:"Roles>member"`
}

// iamTime is how IAM writes dates.
func iamTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func (a *API) roleXML(r core.Role) xmlRole {
	return xmlRole{Path: "/", RoleName: r.Name, RoleID: core.UniqueID("AROA", r.ARN), Arn: r.ARN,
		CreateDate: iamTime(a.created), AssumeRolePolicyDocument: policyURLEncode(trustPolicy(r))}
}

func (a *API) profileXML(p core.InstanceProfile) xmlInstanceProfile {
	x := xmlInstanceProfile{Path: "/", InstanceProfileName: p.Name, InstanceProfileID: core.UniqueID("AIPA", p.ARN), Arn: p.ARN,
		CreateDate: iamTime(a.created), Roles: []xmlRole{}}
	if p.Role.ARN != "" {
		x.Roles = append(x.Roles, a.roleXML(p.Role))
	}
	return x
}

// trustPolicy is a role's trust policy document as the world declares it:
// account IDs and principal ARNs as AWS principals (an account as its
// root), service principals as Service, the ExternalId as a condition.
func trustPolicy(r core.Role) string {
	var aws, services []string
	for _, t := range r.Trusted {
		switch {
		case core.IsAccountID(t):
			aws = append(aws, core.RootARN(t))
		case strings.HasSuffix(t, ".amazonaws.com"):
			services = append(services, t)
		default:
			aws = append(aws, t)
		}
	}
	principal := map[string]any{}
	if len(aws) > 0 {
		principal["AWS"] = oneOrMany(aws)
	}
	if len(services) > 0 {
		principal["Service"] = oneOrMany(services)
	}
	stmt := map[string]any{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
	if r.ExternalID != "" {
		stmt["Condition"] = map[string]any{"StringEquals": map[string]string{"sts:ExternalId": r.ExternalID}}
	}
	doc, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{stmt}})
	if err != nil {
		panic(fmt.Sprintf("iam: encoding a trust policy: %v", err)) // maps of strings always encode
	}
	return string(doc)
}

func oneOrMany(v []string) any {
	if len(v) == 1 {
		return v[0]
	}
	return v
}

// policyURLEncode encodes a policy document as IAM returns it: "Policies
// returned by this operation are URL-encoded compliant with RFC 3986"
// (spaces as %20, not +).
func policyURLEncode(doc string) string {
	return strings.ReplaceAll(url.QueryEscape(doc), "+", "%20")
}

var entityNameRe = regexp.MustCompile(`^[\w+=,.@-]+$`)

// name reads a required entity name parameter (InstanceProfileName,
// RoleName), with IAM's validation errors.
func name(c *core.Call, param string, maxLen int) (string, *core.APIError) {
	member := strings.ToLower(param[:1]) + param[1:]
	v, given := c.Params[param]
	if !given || len(v) == 0 {
		return "", core.Errf("ValidationError", "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", member)
	}
	n := v[0]
	switch {
	case len(n) < 1 || len(n) > maxLen:
		return "", core.Errf("ValidationError", "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must have length less than or equal to %d", n, member, maxLen)
	case !entityNameRe.MatchString(n):
		return "", core.Errf("ValidationError", "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+", n, member)
	}
	return n, nil
}

// authorize checks the caller's identity policies for action on resource
// (its ARN; what names it in the message, e.g. "role NAME").
func (a *API) authorize(c *core.Call, action, resourceARN, resourceName string) *core.APIError {
	d := a.ids.Authorize(core.PolicyRequest{Account: c.Account, Principal: c.Principal, PrincipalIAM: c.PrincipalIAM,
		Action: action, Resource: resourceARN})
	if d.Allowed {
		return nil
	}
	return &core.APIError{HTTPStatus: 403, Code: "AccessDenied",
		Message: core.AccessDeniedMessage(c.Principal, action, resourceName, d.ExplicitDeny)}
}

type getInstanceProfileResult struct {
	InstanceProfile xmlInstanceProfile `xml:"InstanceProfile"`
}

func (a *API) getInstanceProfile(c *core.Call) (any, *core.APIError) {
	n, err := name(c, "InstanceProfileName", 128)
	if err != nil {
		return nil, err
	}
	arn := ProfileARN(c.Account, n)
	if err := a.authorize(c, "iam:GetInstanceProfile", arn, "instance profile "+n); err != nil {
		return nil, err
	}
	p, ok := a.ids.InstanceProfile(c.Account, n)
	if !ok {
		return nil, noSuchEntity("Instance Profile %s cannot be found.", n)
	}
	c.Note("instanceProfileArn", p.ARN)
	return getInstanceProfileResult{InstanceProfile: a.profileXML(p)}, nil
}

type getRoleResult struct {
	Role xmlRole `xml:"Role"`
}

func (a *API) getRole(c *core.Call) (any, *core.APIError) {
	n, err := name(c, "RoleName", 64)
	if err != nil {
		return nil, err
	}
	arn := core.RoleARN(c.Account, n)
	if err := a.authorize(c, "iam:GetRole", arn, "role "+n); err != nil {
		return nil, err
	}
	r, ok := a.ids.Role(arn)
	if !ok {
		return nil, noSuchEntity("The role with name %s cannot be found.", n)
	}
	x := a.roleXML(r)
	x.MaxSessionDuration = 3600 // the world's roles have the default maximum session of one hour
	return getRoleResult{Role: x}, nil
}

type listInstanceProfilesForRoleResult struct {
	InstanceProfiles []xmlInstanceProfile `xml:"InstanceProfiles>member"`
	IsTruncated      bool                 `xml:"IsTruncated"`
	Marker           string               `xml:"Marker,omitempty"`
}

func (a *API) listInstanceProfilesForRole(c *core.Call) (any, *core.APIError) {
	n, err := name(c, "RoleName", 64)
	if err != nil {
		return nil, err
	}
	maxItems := 100
	if v := c.Params.Get("MaxItems"); v != "" {
		m, perr := strconv.Atoi(v)
		if perr != nil || m < 1 || m > 1000 {
			return nil, core.Errf("ValidationError", "1 validation error detected: Value '%s' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000", v)
		}
		maxItems = m
	}
	start := 0
	if v := c.Params.Get("Marker"); v != "" {
		m, perr := strconv.Atoi(v)
		if perr != nil || m < 0 {
			return nil, core.Errf("ValidationError", "Invalid Marker %q: pass the Marker of the previous page.", v)
		}
		start = m
	}
	arn := core.RoleARN(c.Account, n)
	if err := a.authorize(c, "iam:ListInstanceProfilesForRole", arn, "role "+n); err != nil {
		return nil, err
	}
	if _, ok := a.ids.Role(arn); !ok {
		return nil, noSuchEntity("The role with name %s cannot be found.", n)
	}
	profiles := a.ids.ProfilesForRole(arn)
	sort.Slice(profiles, func(i, j int) bool { return profiles[i].Name < profiles[j].Name })
	out := listInstanceProfilesForRoleResult{InstanceProfiles: []xmlInstanceProfile{}}
	for i := start; i < len(profiles); i++ {
		if len(out.InstanceProfiles) == maxItems {
			out.IsTruncated, out.Marker = true, strconv.Itoa(i)
			break
		}
		out.InstanceProfiles = append(out.InstanceProfiles, a.profileXML(profiles[i]))
	}
	return out, nil
}

// noSuchEntity is IAM's NotFound: HTTP 404.
func noSuchEntity(format string, args ...any) *core.APIError {
	return &core.APIError{HTTPStatus: 404, Code: "NoSuchEntity", Message: fmt.Sprintf(format, args...)}
}
