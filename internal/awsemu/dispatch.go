package awsemu

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/iam"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/kms"
)

const (
	ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"
	stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"
	maxBodyBytes = 8 << 20
	adminPrefix  = "/_emu/"
)

// authError is a credential problem, reported with each service's own code.
type authError int

const (
	authMissing authError = iota
	authUnknownKey
	authBadSignature
	authBadToken
	authExpired
	authRegion
)

func (k authError) apiError(service string) *APIError {
	switch service {
	case "kms":
		switch k {
		case authMissing:
			return &APIError{HTTPStatus: 400, Code: "MissingAuthenticationTokenException", Message: "Missing Authentication Token"}
		case authExpired:
			return &APIError{HTTPStatus: 400, Code: "ExpiredTokenException", Message: "The security token included in the request is expired"}
		default:
			return &APIError{HTTPStatus: 400, Code: "UnrecognizedClientException", Message: "The security token included in the request is invalid."}
		}
	case "sts", "iam":
		switch k {
		case authMissing:
			return &APIError{HTTPStatus: 403, Code: "MissingAuthenticationToken", Message: "Request is missing Authentication Token"}
		case authExpired:
			return &APIError{HTTPStatus: 400, Code: "ExpiredToken", Message: "The security token included in the request is expired"}
		case authBadSignature:
			return &APIError{HTTPStatus: 403, Code: "SignatureDoesNotMatch", Message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}
		default:
			return &APIError{HTTPStatus: 403, Code: "InvalidClientTokenId", Message: "The security token included in the request is invalid."}
		}
	default: // ec2
		switch k {
		case authMissing:
			return &APIError{HTTPStatus: 401, Code: "MissingAuthenticationToken", Message: "Request is missing Authentication Token"}
		case authExpired:
			return &APIError{HTTPStatus: 400, Code: "RequestExpired", Message: "Request has expired."}
		default:
			return &APIError{HTTPStatus: 401, Code: "AuthFailure", Message: "AWS was not able to validate the provided access credentials"}
		}
	}
}

// readBody reads a request body of at most maxBodyBytes.
func readBody(r *http.Request) ([]byte, *APIError) {
	if r.ContentLength > maxBodyBytes {
		return nil, bodyTooLarge()
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, &APIError{HTTPStatus: http.StatusBadRequest, Code: "RequestTimeout",
			Message: "The request body was not read whole before the timeout: " + err.Error()}
	}
	if len(body) > maxBodyBytes {
		return nil, bodyTooLarge()
	}
	return body, nil
}

func bodyTooLarge() *APIError {
	return &APIError{HTTPStatus: http.StatusRequestEntityTooLarge, Code: "RequestEntityTooLarge",
		Message: fmt.Sprintf("The request body is larger than %d bytes.", maxBodyBytes)}
}

// authHeaderError is the error of a request without a usable Authorization
// header: missing, or malformed (IncompleteSignature, with AWS's text
// naming what is missing).
func authHeaderError(service string, err error) *APIError {
	var malformed *core.MalformedAuthError
	if !errors.As(err, &malformed) {
		return authMissing.apiError(service)
	}
	code := "IncompleteSignature"
	if service == "kms" {
		code = "IncompleteSignatureException"
	}
	return &APIError{HTTPStatus: 400, Code: code, Message: malformed.Message}
}

// serveHTTP is the one endpoint of every service and region.
func (e *Emulator) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, adminPrefix) {
		e.serveAdmin(w, r)
		return
	}
	auth, authErr := core.ParseSigV4(r.Header.Get("Authorization"))
	body, err := readBody(r)
	service := auth.Service
	if authErr != nil {
		service = guessService(r, body)
	}
	if err != nil {
		// Bodies over the limit are refused whole, never cut; a body shorter
		// than its Content-Length ends with the server's read timeout.
		e.writeError(w, service, e.nextRequestID(), err)
		return
	}
	action, params, aerr := parseAction(service, r, body)
	if aerr != nil {
		e.writeError(w, service, e.nextRequestID(), aerr)
		return
	}
	if _, ok := e.services()[service]; !ok {
		http.Error(w, "awsemu serves ec2, kms, sts and iam; got signing service "+service, http.StatusBadRequest)
		return
	}

	// No lock is held here: each service locks the stores a call touches,
	// and the audit, faults and limits have locks of their own. The answer
	// is encoded whole before it is written, so a slow client holds up
	// nobody.
	if !e.callLatency(r) {
		return // the client went away, or the emulator is closing
	}
	rec := &bufferedResponse{header: http.Header{}}
	e.serve(rec, r, body, auth, authErr, service, action, params)
	rec.writeTo(w)
}

// callLatency holds a call for the latency model's api-call time before it
// is served, and reports whether to serve it.
func (e *Emulator) callLatency(r *http.Request) bool {
	d := e.clock.Latency(LatencyAPICall, 0, false)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
	case <-e.stopped:
	}
	return false
}

// serve authenticates, admits and handles one call.
func (e *Emulator) serve(w http.ResponseWriter, r *http.Request, body []byte, auth core.SigV4Auth, authErr error, service, action string, params url.Values) {
	c := &core.Call{
		RequestID: e.nextRequestID(),
		Time:      e.now(),
		Service:   service,
		Region:    auth.Region,
		Action:    action,
		Params:    params,
		Body:      body,
	}
	if authErr != nil {
		e.finish(w, c, nil, authHeaderError(service, authErr))
		return
	}
	if kind, ok := e.authenticate(c, r, body, auth); !ok {
		e.finish(w, c, nil, kind.apiError(service))
		return
	}
	if apiErr := e.admit(c); apiErr != nil {
		e.finish(w, c, nil, apiErr)
		return
	}
	e.holds.wait(c, e.stopped)
	out, apiErr := e.services()[service].Handle(c)
	e.finish(w, c, out, apiErr)
}

// authenticate resolves the caller from the access key, checks the
// signature and, for session credentials, the token and its expiry.
func (e *Emulator) authenticate(c *core.Call, r *http.Request, body []byte, auth core.SigV4Auth) (authError, bool) {
	var secret string
	var expires time.Time
	token := r.Header.Get("X-Amz-Security-Token")
	if u, ok := e.iam.UserByAccessKey(auth.AccessKey); ok {
		if token != "" {
			return authBadToken, false
		}
		secret = u.Secret
		c.Account, c.Principal, c.PrincipalIAM, c.AccessKeyID = u.Account, u.ARN, u.ARN, auth.AccessKey
	} else if s, ok := e.sts.Session(auth.AccessKey); ok {
		if token != s.SessionToken {
			return authBadToken, false
		}
		secret, expires = s.SecretAccessKey, s.Expiration
		c.Account, c.Principal, c.PrincipalIAM, c.AccessKeyID = s.Account, s.ARN, s.RoleARN, auth.AccessKey
		c.SourceInstanceARN = s.InstanceARN
	} else {
		return authUnknownKey, false
	}
	if !core.VerifySigV4(r, body, auth, secret) {
		return authBadSignature, false
	}
	if !expires.IsZero() && !e.now().Before(expires) {
		return authExpired, false
	}
	// Calls to a region that is not enabled (opt-in) fail authentication,
	// as on AWS; STS is served from every known region, and so is IAM:
	// clients pointed at a custom endpoint sign IAM calls with their own
	// region, not us-east-1 (docs/aws-behaviour.md 8.1).
	global := (c.Service == "sts" || c.Service == "iam") && e.regionKnown(c.Region)
	if !e.regionEnabled(c.Region) && !global {
		return authRegion, false
	}
	return 0, true
}

// guessService names the service of an unsigned request from its Host
// (iam.amazonaws.com, sts.amazonaws.com) or its shape.
func guessService(r *http.Request, body []byte) string {
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "TrentService.") {
		return "kms"
	}
	switch host := strings.ToLower(r.Host); {
	case strings.HasPrefix(host, "iam."):
		return "iam"
	case strings.HasPrefix(host, "sts."):
		return "sts"
	}
	form, _ := url.ParseQuery(string(body))
	switch form.Get("Action") {
	case "AssumeRole", "GetCallerIdentity", "GetSessionToken", "DecodeAuthorizationMessage":
		return "sts"
	case "GetInstanceProfile", "GetRole", "ListInstanceProfilesForRole":
		return "iam"
	}
	return "ec2"
}

// parseAction extracts the action and, for Query protocols, the form.
func parseAction(service string, r *http.Request, body []byte) (string, url.Values, *APIError) {
	if service == "kms" {
		target := r.Header.Get("X-Amz-Target")
		op, ok := strings.CutPrefix(target, "TrentService.")
		if !ok || op == "" {
			return "", nil, kms.UnknownOperation(target)
		}
		return op, nil, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return "", nil, core.Errf("MalformedQueryString", "the request body is not a valid form: %v", err)
	}
	for k, v := range r.URL.Query() {
		form[k] = append(form[k], v...)
	}
	action := form.Get("Action")
	if action == "" {
		if service == "sts" || service == "iam" {
			return "", form, &APIError{HTTPStatus: 400, Code: "InvalidAction", Message: "Could not find operation  for version NO_VERSION_SPECIFIED"}
		}
		return "", form, &APIError{HTTPStatus: 400, Code: "MissingAction", Message: "The request must contain the parameter Action"}
	}
	return action, form, nil
}

// finish records the call and writes the response.
func (e *Emulator) finish(w http.ResponseWriter, c *core.Call, out any, apiErr *APIError) {
	status := http.StatusOK
	if apiErr != nil {
		if apiErr.HTTPStatus == 0 {
			apiErr.HTTPStatus = 400
		}
		status = apiErr.HTTPStatus
	}
	e.audit.Record(c, apiErr, status)
	if apiErr != nil {
		e.writeError(w, c.Service, c.RequestID, apiErr)
		return
	}
	var buf bytes.Buffer
	switch c.Service {
	case "kms":
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if out == nil {
			out = struct{}{}
		}
		if err := json.NewEncoder(&buf).Encode(out); err != nil {
			e.writeError(w, c.Service, c.RequestID, &APIError{HTTPStatus: 500, Code: "KMSInternalException", Message: err.Error()})
			return
		}
	case "sts", "iam":
		w.Header().Set("Content-Type", "text/xml")
		if err := writeQueryEnvelope(&buf, queryNamespace(c.Service), c.Action, c.RequestID, out); err != nil {
			e.writeError(w, c.Service, c.RequestID, &APIError{HTTPStatus: 500, Code: "InternalFailure", Message: err.Error()})
			return
		}
	default:
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		if err := writeEC2Envelope(&buf, c.Action, c.RequestID, out); err != nil {
			e.writeError(w, c.Service, c.RequestID, &APIError{HTTPStatus: 500, Code: "InternalError", Message: err.Error()})
			return
		}
	}
	w.Header().Set("X-Amzn-RequestId", c.RequestID)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeError writes an error body in the service's wire format.
func (e *Emulator) writeError(w http.ResponseWriter, service, requestID string, apiErr *APIError) {
	status := apiErr.HTTPStatus
	if status == 0 {
		status = 400
	}
	w.Header().Set("X-Amzn-RequestId", requestID)
	switch service {
	case "kms":
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", apiErr.Code)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": apiErr.Code, "message": apiErr.Message})
	case "sts", "iam":
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		errType := "Sender"
		if status >= 500 {
			errType = "Receiver"
		}
		_ = xml.NewEncoder(w).Encode(stsErrorResponse{
			Xmlns:     queryNamespace(service),
			Error:     stsError{Type: errType, Code: apiErr.Code, Message: apiErr.Message},
			RequestID: requestID,
		})
	default:
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, xml.Header)
		_ = xml.NewEncoder(w).Encode(ec2ErrorResponse{
			Errors:    []ec2Error{{Code: apiErr.Code, Message: apiErr.Message}},
			RequestID: requestID,
		})
	}
}

type ec2ErrorResponse struct {
	XMLName   xml.Name   `xml:"Response"`
	Errors    []ec2Error `xml:"Errors>Error"`
	RequestID string     `xml:"RequestID"`
}

type ec2Error struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

type stsErrorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Error     stsError `xml:"Error"`
	RequestID string   `xml:"RequestId"`
}

type stsError struct {
	Type    string `xml:"Type"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// RawXML is a handler result written verbatim inside the response element.
type RawXML string

// writeEC2Envelope writes <ActionResponse xmlns=…><requestId/>children</ActionResponse>.
func writeEC2Envelope(buf *bytes.Buffer, action, requestID string, out any) error {
	buf.WriteString(xml.Header)
	buf.WriteString("<" + action + "Response xmlns=\"" + ec2Namespace + "\">")
	buf.WriteString("<requestId>" + requestID + "</requestId>")
	if err := writeChildren(buf, out); err != nil {
		return err
	}
	buf.WriteString("</" + action + "Response>")
	return nil
}

// queryNamespace is the XML namespace of STS's or IAM's responses.
func queryNamespace(service string) string {
	if service == "iam" {
		return iam.Namespace
	}
	return stsNamespace
}

// writeQueryEnvelope writes STS's and IAM's
// <ActionResponse><ActionResult>…</ActionResult><ResponseMetadata/></ActionResponse>.
func writeQueryEnvelope(buf *bytes.Buffer, namespace, action, requestID string, out any) error {
	buf.WriteString("<" + action + "Response xmlns=\"" + namespace + "\">")
	buf.WriteString("<" + action + "Result>")
	if err := writeChildren(buf, out); err != nil {
		return err
	}
	buf.WriteString("</" + action + "Result>")
	buf.WriteString("<ResponseMetadata><RequestId>" + requestID + "</RequestId></ResponseMetadata>")
	buf.WriteString("</" + action + "Response>")
	return nil
}

// writeChildren marshals out and writes only its children: the value is
// encoded under a placeholder element whose tags are then cut off.
func writeChildren(buf *bytes.Buffer, out any) error {
	switch v := out.(type) {
	case nil:
		return nil
	case RawXML:
		buf.WriteString(string(v))
		return nil
	}
	var tmp bytes.Buffer
	if err := xml.NewEncoder(&tmp).EncodeElement(out, xml.StartElement{Name: xml.Name{Local: "x"}}); err != nil {
		return err
	}
	s := tmp.String()
	start := strings.IndexByte(s, '>')
	if start < 0 {
		return errors.New("marshalling response: no element")
	}
	if strings.HasSuffix(s, "/>") && start == len(s)-1 {
		return nil // <x/>: no children
	}
	inner, ok := strings.CutSuffix(s[start+1:], "</x>")
	if !ok {
		return errors.New("marshalling response: unexpected shape")
	}
	buf.WriteString(inner)
	return nil
}

// bufferedResponse is an http.ResponseWriter kept in memory.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) writeTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}
