package awsemu

import (
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// stsState holds the session credentials AssumeRole issued.
type stsState struct {
	Sessions map[string]*stsSession `json:"sessions"` // by access key ID
}

type stsSession struct {
	AccessKeyID     string    `json:"access_key_id"`
	SecretAccessKey string    `json:"secret_access_key"`
	SessionToken    string    `json:"session_token"`
	Expiration      time.Time `json:"expiration"`
	Account         string    `json:"account"`
	RoleARN         string    `json:"role_arn"`
	SessionName     string    `json:"session_name"`
	ARN             string    `json:"arn"` // arn:aws:sts::ACCT:assumed-role/ROLE/SESSION
	SourceIdentity  string    `json:"source_principal"`
}

func newSTSState() *stsState { return &stsState{Sessions: map[string]*stsSession{}} }

var sessionNameRe = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

func (e *Emulator) handleSTS(c *Call) (any, *APIError) {
	switch c.Action {
	case "GetCallerIdentity":
		return e.stsGetCallerIdentity(c), nil
	case "AssumeRole":
		return e.stsAssumeRole(c)
	}
	return nil, Errf("InvalidAction", "Could not find operation %s for version %s", c.Action, c.Params.Get("Version"))
}

type stsCallerIdentity struct {
	Arn     string `xml:"Arn"`
	UserID  string `xml:"UserId"`
	Account string `xml:"Account"`
}

func (e *Emulator) stsGetCallerIdentity(c *Call) stsCallerIdentity {
	userID := UniqueID("AIDA", c.PrincipalIAM)
	if strings.Contains(c.Principal, ":assumed-role/") {
		session := c.Principal[strings.LastIndexByte(c.Principal, '/')+1:]
		userID = UniqueID("AROA", c.PrincipalIAM) + ":" + session
	}
	return stsCallerIdentity{Arn: c.Principal, UserID: userID, Account: c.Account}
}

type stsAssumeRoleResult struct {
	Credentials struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		SessionToken    string `xml:"SessionToken"`
		Expiration      string `xml:"Expiration"`
	} `xml:"Credentials"`
	AssumedRoleUser struct {
		AssumedRoleID string `xml:"AssumedRoleId"`
		Arn           string `xml:"Arn"`
	} `xml:"AssumedRoleUser"`
	PackedPolicySize int `xml:"PackedPolicySize,omitempty"`
}

func (e *Emulator) stsAssumeRole(c *Call) (any, *APIError) {
	p := c.Params
	arn := p.Get("RoleArn")
	name := p.Get("RoleSessionName")
	if arn == "" {
		return nil, Errf("ValidationError", "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
	}
	if name == "" {
		return nil, Errf("ValidationError", "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
	}
	if !sessionNameRe.MatchString(name) {
		return nil, Errf("ValidationError", "1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", name)
	}
	duration := 3600
	if d := p.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil {
			return nil, Errf("ValidationError", "Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must be a number", d)
		}
		if n < 900 {
			return nil, Errf("ValidationError", "1 validation error detected: Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900", n)
		}
		// Role chaining is limited to one hour; roles here have the default
		// maximum session duration of one hour.
		if n > 3600 {
			return nil, Errf("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
		}
		duration = n
	}
	denied := Errf("AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on resource: %s", c.Principal, arn)
	denied.HTTPStatus = 403
	role, ok := e.iam.roles[arn]
	if !ok || !e.iamAllowed(c, "sts:AssumeRole") || !e.roleTrusts(role, c) {
		return nil, denied
	}
	if role.ExternalID != "" && p.Get("ExternalId") != role.ExternalID {
		return nil, denied
	}
	now := e.now()
	s := &stsSession{
		AccessKeyID:     "ASIA" + UniqueID("", hex.EncodeToString(RandomBytes(16)))[:16],
		SecretAccessKey: base64.RawStdEncoding.EncodeToString(RandomBytes(30)),
		SessionToken:    "IQoJb3JpZ2luX2VjE" + base64.RawStdEncoding.EncodeToString(RandomBytes(96)),
		Expiration:      now.Add(time.Duration(duration) * time.Second),
		Account:         role.Account,
		RoleARN:         role.ARN,
		SessionName:     name,
		ARN:             "arn:aws:sts::" + role.Account + ":assumed-role/" + role.Name + "/" + name,
		SourceIdentity:  c.Principal,
	}
	e.sts.Sessions[s.AccessKeyID] = s
	e.expireSessions(now)
	c.Note("RoleArn", arn)
	c.Note("AssumedRoleArn", s.ARN)
	c.Note("AccessKeyId", s.AccessKeyID)

	var out stsAssumeRoleResult
	out.Credentials.AccessKeyID = s.AccessKeyID
	out.Credentials.SecretAccessKey = s.SecretAccessKey
	out.Credentials.SessionToken = s.SessionToken
	out.Credentials.Expiration = s.Expiration.UTC().Format(time.RFC3339)
	out.AssumedRoleUser.AssumedRoleID = UniqueID("AROA", role.ARN) + ":" + name
	out.AssumedRoleUser.Arn = s.ARN
	return out, nil
}

// roleTrusts reports whether role's trust policy names the caller: its
// account ID (any principal of the account whose IAM allows it) or its ARN.
func (e *Emulator) roleTrusts(role iamRole, c *Call) bool {
	for _, t := range role.Trusted {
		switch t {
		case c.Account, RootARN(c.Account), c.PrincipalIAM, c.Principal:
			return true
		}
	}
	return false
}

// expireSessions forgets sessions that expired more than a day ago, so the
// table does not grow without bound; recently expired ones still answer
// ExpiredToken.
func (e *Emulator) expireSessions(now time.Time) {
	if len(e.sts.Sessions)%64 != 0 {
		return
	}
	for id, s := range e.sts.Sessions {
		if now.Sub(s.Expiration) > 24*time.Hour {
			delete(e.sts.Sessions, id)
		}
	}
}
