package ec2

// imds.go: the instance metadata service of each instance, as an instance
// sees it at http://169.254.169.254 (docs/aws-behaviour.md 5.2): IMDSv2
// session tokens, the paths amicrypt's agent and the SDKs read, and the
// credentials of the instance profile's role, a session named after the
// instance. The emulator serves it on a loopback port per instance.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// Sessions is what EC2 asks of STS for instances: credentials of a role,
// in a session named after the instance.
type Sessions interface {
	IssueForInstance(role core.Role, instanceID, instanceARN string) core.Credentials
	// EncodeAuthorizationMessage seals the authorization message of a
	// denied call of account, as sts:DecodeAuthorizationMessage opens it.
	EncodeAuthorizationMessage(account string, m core.AuthorizationMessage) string
}

// imdsState is the metadata service's own state: session tokens and the
// credentials it handed out, per instance.
type imdsState struct {
	mu     sync.Mutex
	tokens map[string]imdsToken        // token -> its instance and expiry
	creds  map[string]core.Credentials // instance ID -> current credentials
}

type imdsToken struct {
	instance string
	expires  time.Time
}

// instanceMeta is what the metadata service reads of an instance.
type instanceMeta struct {
	ID, Owner, Region, AZ, ImageID, InstanceType, Architecture, PrivateIP string
	State, HTTPTokens, RoleARN, ProfileARN                                string
	Launched                                                              time.Time
	Devices                                                               []string          // block-device-mapping/ names
	Disabled                                                              bool              // HttpEndpoint disabled
	Tags                                                                  map[string]string // nil unless InstanceMetadataTags is enabled
}

// instanceMeta reads an instance for its metadata service.
func (e *Service) instanceMeta(id string) (instanceMeta, bool) {
	ix, ok := e.index.Load(id)
	if !ok {
		return instanceMeta{}, false
	}
	v := e.lock(map[core.Scope]bool{ix.(indexed).home: true})
	defer v.unlock()
	inst, ok := get(v, instancesOf, id)
	if !ok {
		return instanceMeta{}, false
	}
	v.refreshInstance(inst)
	m := instanceMeta{ID: inst.ID, Owner: inst.Owner, Region: inst.Region, AZ: inst.AZ, ImageID: inst.ImageID,
		InstanceType: inst.InstanceType, Architecture: inst.Architecture, PrivateIP: inst.PrivateIP, State: inst.State,
		HTTPTokens: inst.HTTPTokens, RoleARN: inst.RoleARN, ProfileARN: inst.IAMProfileARN, Launched: inst.Launched}
	for _, a := range inst.Attachments {
		m.Devices = append(m.Devices, a.DeviceName)
	}
	m.Disabled = inst.HTTPEndpoint == "disabled"
	if inst.MetadataTags == "enabled" {
		m.Tags = map[string]string{}
		for k, val := range v.tagsOf(inst.ID, inst.Region, inst.Owner) {
			m.Tags[k] = val
		}
	}
	return m, true
}

// IMDS is the metadata service of one instance, to serve on its own
// address (the emulator gives each instance a loopback port).
func (e *Service) IMDS(instanceID string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.serveIMDS(w, r, instanceID) })
}

// serveIMDS answers one metadata request, as AWS's IMDS does.
func (e *Service) serveIMDS(w http.ResponseWriter, r *http.Request, instanceID string) {
	meta, ok := e.instanceMeta(instanceID)
	if !ok || meta.State != "running" {
		// Only a running instance has a metadata service to answer.
		http.Error(w, "instance "+instanceID+" is not running", http.StatusServiceUnavailable)
		return
	}
	if meta.Disabled {
		// HttpEndpoint disabled: on AWS the metadata address does not
		// answer at all. The closest an HTTP server comes is to drop the
		// connection without a response, so a client sees a connection
		// error, never an HTTP status (emulator convention).
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // net/http drops the connection without a response
	}
	if r.URL.Path == "/latest/api/token" {
		e.imdsToken(w, r, instanceID)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	token := r.Header.Get("X-aws-ec2-metadata-token")
	switch {
	case token != "":
		if !e.imds.valid(token, instanceID, e.clock.Now()) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	case meta.HTTPTokens == "required":
		// IMDSv2 only: a request without a session token is refused.
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	body, ctype, found := e.metadataPath(meta, strings.TrimPrefix(r.URL.Path, "/latest"))
	if !found {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	_, _ = w.Write([]byte(body))
}

// imdsToken answers PUT /latest/api/token: a session token valid for the
// TTL asked for (1–21600 s), with that TTL echoed in the response header.
func (e *Service) imdsToken(w http.ResponseWriter, r *http.Request, instanceID string) {
	if r.Method != http.MethodPut {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		// A token request that went through a proxy is refused.
		w.WriteHeader(http.StatusForbidden)
		return
	}
	ttlHeader := r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds")
	ttl, err := strconv.Atoi(ttlHeader)
	if err != nil || ttl < 1 || ttl > 21600 {
		http.Error(w, "X-aws-ec2-metadata-token-ttl-seconds must be an integer from 1 to 21600", http.StatusBadRequest)
		return
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	e.imds.mu.Lock()
	if e.imds.tokens == nil {
		e.imds.tokens = map[string]imdsToken{}
	}
	now := e.clock.Now()
	for t, it := range e.imds.tokens {
		if !now.Before(it.expires) {
			delete(e.imds.tokens, t)
		}
	}
	e.imds.tokens[token] = imdsToken{instance: instanceID, expires: now.Add(time.Duration(ttl) * time.Second)}
	e.imds.mu.Unlock()
	w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", ttlHeader)
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(token))
}

func (s *imdsState) valid(token, instanceID string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.tokens[token]
	return ok && it.instance == instanceID && now.Before(it.expires)
}

// metadataPath answers a path under /latest: its body, content type, and
// whether it exists.
func (e *Service) metadataPath(m instanceMeta, path string) (string, string, bool) {
	const text, js = "text/plain", "application/json"
	roleName := ""
	if m.RoleARN != "" {
		roleName = m.RoleARN[strings.LastIndexByte(m.RoleARN, '/')+1:]
	}
	md := map[string]string{
		"ami-id":                      m.ImageID,
		"instance-id":                 m.ID,
		"instance-type":               m.InstanceType,
		"local-ipv4":                  m.PrivateIP,
		"placement/region":            m.Region,
		"placement/availability-zone": m.AZ,
	}
	for i, dev := range m.Devices {
		name := "ebs" + strconv.Itoa(i+1)
		if i == 0 {
			name = "root"
		}
		md["block-device-mapping/"+name] = dev
	}
	switch path = strings.TrimSuffix(path, "/"); path {
	case "/dynamic/instance-identity/document":
		doc, _ := json.MarshalIndent(map[string]any{
			"accountId": m.Owner, "region": m.Region, "availabilityZone": m.AZ, "instanceId": m.ID,
			"imageId": m.ImageID, "instanceType": m.InstanceType, "architecture": m.Architecture,
			"privateIp": m.PrivateIP, "pendingTime": m.Launched.UTC().Format(time.RFC3339), "version": "2017-09-30",
		}, "", "  ")
		return string(doc), js, true
	case "/meta-data":
		keys := []string{"ami-id", "block-device-mapping/", "instance-id", "instance-type", "local-ipv4", "placement/"}
		if roleName != "" {
			keys = append(keys, "iam/")
		}
		if m.Tags != nil {
			keys = append(keys, "tags/")
		}
		return strings.Join(keys, "\n"), text, true
	case "/meta-data/tags", "/meta-data/tags/instance":
		// Instance tags, only with InstanceMetadataTags enabled: tags/
		// lists instance, tags/instance lists the keys.
		if m.Tags == nil {
			return "", "", false
		}
		if path == "/meta-data/tags" {
			return "instance", text, true
		}
		return strings.Join(sortedKeys(m.Tags), "\n"), text, true
	case "/meta-data/block-device-mapping", "/meta-data/placement":
		prefix := strings.TrimPrefix(path, "/meta-data/") + "/"
		var names []string
		for k := range md {
			if rest, ok := strings.CutPrefix(k, prefix); ok {
				names = append(names, rest)
			}
		}
		sort.Strings(names)
		return strings.Join(names, "\n"), text, true
	case "/meta-data/iam", "/meta-data/iam/info", "/meta-data/iam/security-credentials":
		if roleName == "" {
			return "", "", false // no instance profile: no iam/ tree
		}
		switch path {
		case "/meta-data/iam":
			return "info\nsecurity-credentials/", text, true
		case "/meta-data/iam/info":
			info, _ := json.MarshalIndent(map[string]string{"Code": "Success", "LastUpdated": e.clock.Now().UTC().Format(time.RFC3339),
				"InstanceProfileArn": m.ProfileARN, "InstanceProfileId": core.UniqueID("AIPA", m.ProfileARN)}, "", "  ")
			return string(info), js, true
		default:
			return roleName, text, true
		}
	}
	if role, ok := strings.CutPrefix(path, "/meta-data/iam/security-credentials/"); ok {
		if roleName == "" || role != roleName {
			return "", "", false
		}
		creds, err := e.instanceCredentials(m)
		if err != nil {
			return "", "", false
		}
		doc, _ := json.MarshalIndent(map[string]string{
			"Code": "Success", "LastUpdated": e.clock.Now().UTC().Format(time.RFC3339), "Type": "AWS-HMAC",
			"AccessKeyId": creds.AccessKeyID, "SecretAccessKey": creds.SecretAccessKey, "Token": creds.SessionToken,
			"Expiration": creds.Expiration.UTC().Format(time.RFC3339),
		}, "", "  ")
		return string(doc), js, true
	}
	if key, ok := strings.CutPrefix(path, "/meta-data/tags/instance/"); ok {
		v, found := m.Tags[key] // a nil map when tags are not enabled
		return v, text, found
	}
	if v, ok := md[strings.TrimPrefix(path, "/meta-data/")]; ok && strings.HasPrefix(path, "/meta-data/") {
		return v, text, true
	}
	return "", "", false
}

// instanceCredentials are the instance's current role credentials: the
// same until an hour before they expire, then fresh ones.
func (e *Service) instanceCredentials(m instanceMeta) (core.Credentials, error) {
	role, ok := e.iam.Role(m.RoleARN)
	if !ok {
		return core.Credentials{}, fmt.Errorf("role %s of instance %s is not in the world", m.RoleARN, m.ID)
	}
	e.imds.mu.Lock()
	defer e.imds.mu.Unlock()
	if c, ok := e.imds.creds[m.ID]; ok && e.clock.Now().Before(c.Expiration.Add(-time.Hour)) {
		return c, nil
	}
	c := e.sessions.IssueForInstance(role, m.ID, "arn:aws:ec2:"+m.Region+":"+m.Owner+":instance/"+m.ID)
	if e.imds.creds == nil {
		e.imds.creds = map[string]core.Credentials{}
	}
	e.imds.creds[m.ID] = c
	return c, nil
}

// InstanceExists reports whether an instance exists (in any state).
func (e *Service) InstanceExists(id string) bool {
	_, ok := e.instanceMeta(id)
	return ok
}
