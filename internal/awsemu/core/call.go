package core

import (
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

// Call is one authenticated API request, after SigV4 verification.
type Call struct {
	RequestID string
	Time      time.Time // emulator clock at arrival
	Service   string    // "ec2", "kms", "sts", "iam" (from the credential scope)
	Region    string    // from the credential scope
	Account   string    // 12-digit account of the caller
	// Principal is the caller's ARN: arn:aws:iam::ACCT:user/NAME,
	// arn:aws:iam::ACCT:root, or arn:aws:sts::ACCT:assumed-role/ROLE/SESSION.
	Principal string
	// PrincipalIAM is the IAM identity behind Principal, as key policies and
	// grants name it: the user ARN, the root ARN or arn:aws:iam::ACCT:role/ROLE.
	PrincipalIAM string
	AccessKeyID  string // the access key the call was signed with (not a secret)
	// SourceInstanceARN is the instance whose role credentials signed the
	// call (the global condition key ec2:SourceInstanceARN); "" otherwise.
	SourceInstanceARN string
	Action            string     // "DescribeImages", "CreateGrant", …
	Params            url.Values // Query protocols (EC2, STS): the form
	Body              []byte     // JSON protocol (KMS): the raw body
	// Notes are key parameters and outcomes a handler wants in the audit
	// (resource IDs created, key ARNs used). The platform records them.
	Notes map[string]string
}

// DryRun reports whether the call asks only whether it would succeed:
// DryRun=true in a Query form, "DryRun": true in a JSON body (KMS).
func (c *Call) DryRun() bool {
	if c.Params.Get("DryRun") == "true" {
		return true
	}
	if len(c.Body) == 0 {
		return false
	}
	var in struct{ DryRun bool }
	return json.Unmarshal(c.Body, &in) == nil && in.DryRun
}

// Note records a key fact about this call in the audit entry.
func (c *Call) Note(key, value string) {
	if c.Notes == nil {
		c.Notes = map[string]string{}
	}
	c.Notes[key] = value
}

// APIError is an AWS error as the wire protocol reports it.
type APIError struct {
	HTTPStatus int    // 400 unless set
	Code       string // e.g. "InvalidAMIID.NotFound"
	Message    string
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// Errf builds a 400 APIError.
func Errf(code, format string, args ...any) *APIError {
	return &APIError{HTTPStatus: 400, Code: code, Message: fmt.Sprintf(format, args...)}
}
