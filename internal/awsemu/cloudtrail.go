package awsemu

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// CloudTrailEvent is a KMS call as CloudTrail records it
// (docs/aws-behaviour.md 5.4): who (userIdentity, for an instance role the
// session named after the instance), what (eventName, requestParameters
// with the encryption context, never plaintext or ciphertext), on which key
// (resources) and how it ended (errorCode).
type CloudTrailEvent struct {
	EventVersion       string               `json:"eventVersion"`
	UserIdentity       CloudTrailIdentity   `json:"userIdentity"`
	EventTime          time.Time            `json:"eventTime"`
	EventSource        string               `json:"eventSource"`
	EventName          string               `json:"eventName"`
	AWSRegion          string               `json:"awsRegion"`
	RequestParameters  map[string]any       `json:"requestParameters"`
	RequestID          string               `json:"requestID"`
	EventID            string               `json:"eventID"`
	ReadOnly           bool                 `json:"readOnly"`
	Resources          []CloudTrailResource `json:"resources,omitempty"`
	EventType          string               `json:"eventType"`
	RecipientAccountID string               `json:"recipientAccountId"`
	ErrorCode          string               `json:"errorCode,omitempty"`
	ErrorMessage       string               `json:"errorMessage,omitempty"`
}

// CloudTrailIdentity is an event's userIdentity.
type CloudTrailIdentity struct {
	Type           string                 `json:"type"` // IAMUser, AssumedRole, Root
	PrincipalID    string                 `json:"principalId"`
	ARN            string                 `json:"arn"`
	AccountID      string                 `json:"accountId"`
	AccessKeyID    string                 `json:"accessKeyId,omitempty"`
	SessionContext *CloudTrailSessionInfo `json:"sessionContext,omitempty"`
}

// CloudTrailSessionInfo names the role behind a session.
type CloudTrailSessionInfo struct {
	SessionIssuer struct {
		Type      string `json:"type"`
		ARN       string `json:"arn"`
		AccountID string `json:"accountId"`
		UserName  string `json:"userName"`
	} `json:"sessionIssuer"`
}

// CloudTrailResource is a resource an event acted on.
type CloudTrailResource struct {
	AccountID string `json:"accountId"`
	Type      string `json:"type"`
	ARN       string `json:"ARN"`
}

// CloudTrail returns the KMS calls that match f as CloudTrail events,
// oldest first.
func (e *Emulator) CloudTrail(f AuditFilter) []CloudTrailEvent {
	f.Service = "kms"
	out := []CloudTrailEvent{}
	for _, a := range e.audit.Entries(f) {
		out = append(out, cloudTrailEvent(a))
	}
	return out
}

func cloudTrailEvent(a core.AuditEntry) CloudTrailEvent {
	ev := CloudTrailEvent{
		EventVersion: "1.08", EventTime: a.Time, EventSource: "kms.amazonaws.com", EventName: a.Action,
		AWSRegion: a.Region, RequestParameters: map[string]any{}, RequestID: a.RequestID, EventID: a.RequestID,
		ReadOnly: core.IsDescribe(a.Action), EventType: "AwsApiCall", RecipientAccountID: a.Account,
	}
	if a.Outcome != "ok" {
		ev.ErrorCode, ev.ErrorMessage = a.Outcome, a.Message
	}
	ev.UserIdentity = CloudTrailIdentity{Type: "IAMUser", ARN: a.Principal, AccountID: a.Account, AccessKeyID: a.AccessKeyID,
		PrincipalID: core.UniqueID("AIDA", a.PrincipalIAM)}
	switch {
	case strings.Contains(a.Principal, ":assumed-role/"):
		session := a.Principal[strings.LastIndexByte(a.Principal, '/')+1:]
		ev.UserIdentity.Type = "AssumedRole"
		ev.UserIdentity.PrincipalID = core.UniqueID("AROA", a.PrincipalIAM) + ":" + session
		ctx := &CloudTrailSessionInfo{}
		ctx.SessionIssuer.Type, ctx.SessionIssuer.ARN, ctx.SessionIssuer.AccountID = "Role", a.PrincipalIAM, a.Account
		ctx.SessionIssuer.UserName = a.PrincipalIAM[strings.LastIndexByte(a.PrincipalIAM, '/')+1:]
		ev.UserIdentity.SessionContext = ctx
	case strings.HasSuffix(a.Principal, ":root"):
		ev.UserIdentity.Type = "Root"
	}
	for k, v := range a.Params {
		name := strings.ToLower(k[:1]) + k[1:]
		var structured any
		if strings.HasPrefix(v, "{") && json.Unmarshal([]byte(v), &structured) == nil {
			ev.RequestParameters[name] = structured
		} else {
			ev.RequestParameters[name] = v
		}
	}
	if arn := a.Notes["KeyArn"]; arn != "" {
		ev.Resources = []CloudTrailResource{{AccountID: core.ARNAccount(arn), Type: "AWS::KMS::Key", ARN: arn}}
	}
	return ev
}
