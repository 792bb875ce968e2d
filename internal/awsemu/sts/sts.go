// Package sts is the emulator's STS: GetCallerIdentity, AssumeRole and the
// role sessions it issues, also to instances through their instance profile.
package sts

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// Identity is what STS needs of IAM.
type Identity interface {
	Role(arn string) (core.Role, bool)
	Authorize(r core.PolicyRequest) core.IdentityDecision
}

// Service serves STS and keeps the sessions it issued. Safe for concurrent
// use.
type Service struct {
	clock *core.Clock
	iam   Identity

	mu       sync.RWMutex
	sessions map[string]*Session // by access key ID
	// msgKey seals the authorization messages of denied calls (AES-256);
	// kept in the state file, so a restarted emulator still decodes them.
	msgKey []byte
}

// Session is a role session's credentials and identity.
type Session struct {
	AccessKeyID     string    `json:"access_key_id"`
	SecretAccessKey string    `json:"secret_access_key"`
	SessionToken    string    `json:"session_token"`
	Expiration      time.Time `json:"expiration"`
	Account         string    `json:"account"`
	RoleARN         string    `json:"role_arn"`
	SessionName     string    `json:"session_name"`
	ARN             string    `json:"arn"` // arn:aws:sts::ACCT:assumed-role/ROLE/SESSION
	SourceIdentity  string    `json:"source_principal"`
	// InstanceARN is set for the credentials of an instance's role, which
	// EC2 issues: requests signed with them carry ec2:SourceInstanceARN.
	InstanceARN string `json:"instance_arn,omitempty"`
}

// New makes the STS service.
func New(clock *core.Clock, iam Identity) *Service {
	return &Service{clock: clock, iam: iam, sessions: map[string]*Session{}, msgKey: core.RandomBytes(32)}
}

// Session finds the session an access key belongs to.
func (s *Service) Session(accessKeyID string) (Session, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ss, ok := s.sessions[accessKeyID]
	if !ok {
		return Session{}, false
	}
	return *ss, true
}

// state is the JSON form of the sessions in the state file.
type state struct {
	Sessions   map[string]*Session `json:"sessions"`
	MessageKey []byte              `json:"message_key,omitempty"`
}

// MarshalJSON encodes the sessions for the state file.
func (s *Service) MarshalJSON() ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return json.Marshal(state{Sessions: s.sessions, MessageKey: s.msgKey})
}

// UnmarshalJSON restores sessions from the state file.
func (s *Service) UnmarshalJSON(data []byte) error {
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions = st.Sessions
	if s.sessions == nil {
		s.sessions = map[string]*Session{}
	}
	if len(st.MessageKey) == 32 {
		s.msgKey = st.MessageKey
	}
	return nil
}

var sessionNameRe = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

// Handle serves one STS Query call.
func (s *Service) Handle(c *core.Call) (any, *core.APIError) {
	switch c.Action {
	case "GetCallerIdentity":
		return getCallerIdentity(c), nil
	case "AssumeRole":
		return s.assumeRole(c)
	case "DecodeAuthorizationMessage":
		return s.decodeAuthorizationMessage(c)
	}
	return nil, core.Errf("InvalidAction", "Could not find operation %s for version %s", c.Action, c.Params.Get("Version"))
}

type callerIdentity struct {
	Arn     string `xml:"Arn"`
	UserID  string `xml:"UserId"`
	Account string `xml:"Account"`
}

func getCallerIdentity(c *core.Call) callerIdentity {
	userID := core.UniqueID("AIDA", c.PrincipalIAM)
	if strings.Contains(c.Principal, ":assumed-role/") {
		session := c.Principal[strings.LastIndexByte(c.Principal, '/')+1:]
		userID = core.UniqueID("AROA", c.PrincipalIAM) + ":" + session
	}
	return callerIdentity{Arn: c.Principal, UserID: userID, Account: c.Account}
}

type assumeRoleResult struct {
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

func (s *Service) assumeRole(c *core.Call) (any, *core.APIError) {
	p := c.Params
	arn := p.Get("RoleArn")
	name := p.Get("RoleSessionName")
	if arn == "" {
		return nil, core.Errf("ValidationError", "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
	}
	if name == "" {
		return nil, core.Errf("ValidationError", "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
	}
	if !sessionNameRe.MatchString(name) {
		return nil, core.Errf("ValidationError", "1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", name)
	}
	duration := 3600
	if d := p.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil {
			return nil, core.Errf("ValidationError", "Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must be a number", d)
		}
		if n < 900 {
			return nil, core.Errf("ValidationError", "1 validation error detected: Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900", n)
		}
		// Role chaining is limited to one hour; roles here have the default
		// maximum session duration of one hour.
		if n > 3600 {
			return nil, core.Errf("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
		}
		duration = n
	}
	denied := core.Errf("AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on resource: %s", c.Principal, arn)
	denied.HTTPStatus = 403
	role, ok := s.iam.Role(arn)
	mayAssume := s.iam.Authorize(core.PolicyRequest{Account: c.Account, Principal: c.Principal, PrincipalIAM: c.PrincipalIAM,
		Action: "sts:AssumeRole", Resource: arn}).Allowed
	if !ok || !mayAssume || !roleTrusts(role, c) {
		return nil, denied
	}
	if role.ExternalID != "" && p.Get("ExternalId") != role.ExternalID {
		return nil, denied
	}
	ss := s.Issue(role, name, time.Duration(duration)*time.Second, c.Principal)
	c.Note("RoleArn", arn)
	c.Note("AssumedRoleArn", ss.ARN)
	c.Note("AccessKeyId", ss.AccessKeyID)

	var out assumeRoleResult
	out.Credentials.AccessKeyID = ss.AccessKeyID
	out.Credentials.SecretAccessKey = ss.SecretAccessKey
	out.Credentials.SessionToken = ss.SessionToken
	out.Credentials.Expiration = ss.Expiration.UTC().Format(time.RFC3339)
	out.AssumedRoleUser.AssumedRoleID = core.UniqueID("AROA", role.ARN) + ":" + name
	out.AssumedRoleUser.Arn = ss.ARN
	return out, nil
}

// Issue makes a session of role named sessionName, valid for duration, on
// behalf of source (the caller of AssumeRole, or EC2 for an instance).
func (s *Service) Issue(role core.Role, sessionName string, duration time.Duration, source string) Session {
	return s.issue(role, sessionName, duration, source, "")
}

func (s *Service) issue(role core.Role, sessionName string, duration time.Duration, source, instanceARN string) Session {
	now := s.clock.Now()
	ss := &Session{
		AccessKeyID:     "ASIA" + core.UniqueID("", hex.EncodeToString(core.RandomBytes(16)))[:16],
		SecretAccessKey: base64.RawStdEncoding.EncodeToString(core.RandomBytes(30)),
		SessionToken:    "IQoJb3JpZ2luX2VjE" + base64.RawStdEncoding.EncodeToString(core.RandomBytes(96)),
		Expiration:      now.Add(duration),
		Account:         role.Account,
		RoleARN:         role.ARN,
		SessionName:     sessionName,
		ARN:             "arn:aws:sts::" + role.Account + ":assumed-role/" + role.Name + "/" + sessionName,
		SourceIdentity:  source,
		InstanceARN:     instanceARN,
	}
	s.mu.Lock()
	s.sessions[ss.AccessKeyID] = ss
	s.expireLocked(now)
	s.mu.Unlock()
	return *ss
}

// roleTrusts reports whether role's trust policy names the caller: its
// account ID (any principal of the account whose IAM allows it) or its ARN.
func roleTrusts(role core.Role, c *core.Call) bool {
	for _, t := range role.Trusted {
		switch t {
		case c.Account, core.RootARN(c.Account), c.PrincipalIAM, c.Principal:
			return true
		}
	}
	return false
}

// expireLocked forgets sessions that expired more than a day ago, so the
// table does not grow without bound; recently expired ones still answer
// ExpiredToken.
func (s *Service) expireLocked(now time.Time) {
	if len(s.sessions)%64 != 0 {
		return
	}
	for id, ss := range s.sessions {
		if now.Sub(ss.Expiration) > 24*time.Hour {
			delete(s.sessions, id)
		}
	}
}

// instanceSessionDuration is how long instance profile credentials last;
// IMDS hands out fresh ones well before (AWS: about six hours, rotated
// hourly; docs/aws-behaviour.md 5.1).
const instanceSessionDuration = 6 * time.Hour

// IssueForInstance makes the credentials an instance's metadata service
// gives it: a session of its profile's role named after the instance,
// issued by EC2.
func (s *Service) IssueForInstance(role core.Role, instanceID, instanceARN string) core.Credentials {
	ss := s.issue(role, instanceID, instanceSessionDuration, "ec2.amazonaws.com", instanceARN)
	return core.Credentials{AccessKeyID: ss.AccessKeyID, SecretAccessKey: ss.SecretAccessKey, SessionToken: ss.SessionToken,
		Expiration: ss.Expiration, ARN: ss.ARN}
}
