package kms

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// handler serves one KMS action.
type handler func(s *Service, c *core.Call, req *request) (any, *core.APIError)

// request is the union of the request fields of the KMS actions served.
type request struct {
	KeyID                        string            `json:"KeyId"`
	Description                  string            `json:"Description"`
	KeyUsage                     string            `json:"KeyUsage"`
	KeySpec                      string            `json:"KeySpec"`
	CustomerMasterKeySpec        string            `json:"CustomerMasterKeySpec"`
	Policy                       *string           `json:"Policy"`
	PolicyName                   string            `json:"PolicyName"`
	MultiRegion                  bool              `json:"MultiRegion"`
	AliasName                    string            `json:"AliasName"`
	TargetKeyID                  string            `json:"TargetKeyId"`
	Limit                        int               `json:"Limit"`
	Marker                       string            `json:"Marker"`
	PendingWindowInDays          int               `json:"PendingWindowInDays"`
	GranteePrincipal             string            `json:"GranteePrincipal"`
	RetiringPrincipal            string            `json:"RetiringPrincipal"`
	Operations                   []string          `json:"Operations"`
	Constraints                  *grantConstraints `json:"Constraints"`
	GrantTokens                  []string          `json:"GrantTokens"`
	GrantToken                   string            `json:"GrantToken"`
	GrantID                      string            `json:"GrantId"`
	Name                         string            `json:"Name"`
	DryRun                       bool              `json:"DryRun"`
	Plaintext                    []byte            `json:"Plaintext"`
	CiphertextBlob               []byte            `json:"CiphertextBlob"`
	EncryptionContext            map[string]string `json:"EncryptionContext"`
	NumberOfBytes                int               `json:"NumberOfBytes"`
	SourceKeyID                  string            `json:"SourceKeyId"`
	SourceEncryptionContext      map[string]string `json:"SourceEncryptionContext"`
	DestinationKeyID             string            `json:"DestinationKeyId"`
	DestinationEncryptionContext map[string]string `json:"DestinationEncryptionContext"`
	EncryptionAlgorithm          string            `json:"EncryptionAlgorithm"`
}

// actions maps KMS actions to their handlers. It is a function, not a
// package-level map, so there is no package-level mutable state.
func actions() map[string]handler {
	return map[string]handler{
		"CreateKey":                       (*Service).createKey,
		"DescribeKey":                     (*Service).describeKey,
		"ListKeys":                        (*Service).listKeys,
		"CreateAlias":                     (*Service).createAlias,
		"ListAliases":                     (*Service).listAliases,
		"GetKeyPolicy":                    (*Service).getKeyPolicy,
		"PutKeyPolicy":                    (*Service).putKeyPolicy,
		"EnableKey":                       (*Service).enableKey,
		"DisableKey":                      (*Service).disableKey,
		"ScheduleKeyDeletion":             (*Service).scheduleKeyDeletion,
		"CancelKeyDeletion":               (*Service).cancelKeyDeletion,
		"CreateGrant":                     (*Service).createGrant,
		"ListGrants":                      (*Service).listGrants,
		"RetireGrant":                     (*Service).retireGrant,
		"RevokeGrant":                     (*Service).revokeGrant,
		"Encrypt":                         (*Service).encrypt,
		"Decrypt":                         (*Service).decrypt,
		"GenerateDataKey":                 (*Service).generateDataKey,
		"GenerateDataKeyWithoutPlaintext": (*Service).generateDataKey,
		"ReEncrypt":                       (*Service).reEncrypt,
	}
}

// Handle serves one KMS JSON 1.1 call.
func (s *Service) Handle(c *core.Call) (any, *core.APIError) {
	h, ok := actions()[c.Action]
	if !ok {
		return nil, UnknownOperation("TrentService." + c.Action)
	}
	var req request
	if len(bytes.TrimSpace(c.Body)) > 0 {
		if err := json.Unmarshal(c.Body, &req); err != nil {
			return nil, core.Errf("SerializationException", "Start of structure or map found where not expected: %v", err)
		}
	}
	return h(s, c, &req)
}

// keyFor resolves ref for the caller and checks that it may perform
// action; it returns the key with its store locked (the caller unlocks).
func (s *Service) keyFor(c *core.Call, ref, action string, grantTokens []string) (*store, *key, *core.APIError) {
	return s.keyForContext(c, ref, action, grantTokens, nil)
}

// keyForContext is keyFor for a cryptographic operation with an encryption
// context, which grant constraints are checked against.
func (s *Service) keyForContext(c *core.Call, ref, action string, grantTokens []string, context map[string]string) (*store, *key, *core.APIError) {
	return s.keyForAccess(c, ref, access{
		Account: c.Account, Principal: c.Principal, PrincipalIAM: c.PrincipalIAM, Action: action, GrantTokens: grantTokens,
		Context: context, SourceInstanceARN: c.SourceInstanceARN,
	})
}

// keyForAccess is keyFor with the whole request described.
func (s *Service) keyForAccess(c *core.Call, ref string, a access) (*store, *key, *core.APIError) {
	st, k, err := s.lockKey(ref, c.Account, c.Region)
	if err != nil {
		return nil, nil, err
	}
	if err := s.allowed(st, k, a); err != nil {
		st.mu.Unlock()
		return nil, nil, err
	}
	c.Note("KeyArn", k.ARN)
	return st, k, nil
}

// iamOnly checks an action that no key policy governs (CreateKey, ListKeys…).
func (s *Service) iamOnly(c *core.Call, action string) *core.APIError {
	if s.iam.Allowed(c.PrincipalIAM, "kms:"+action) {
		return nil
	}
	return accessDenied(c.Principal, "kms:"+action, "*", "with an explicit deny in an identity-based policy")
}

type keyMetadata struct {
	AWSAccountID          string   `json:"AWSAccountId"`
	KeyID                 string   `json:"KeyId"`
	Arn                   string   `json:"Arn"`
	CreationDate          float64  `json:"CreationDate"`
	Enabled               bool     `json:"Enabled"`
	Description           string   `json:"Description"`
	KeyUsage              string   `json:"KeyUsage"`
	KeyState              string   `json:"KeyState"`
	DeletionDate          *float64 `json:"DeletionDate,omitempty"`
	Origin                string   `json:"Origin"`
	KeyManager            string   `json:"KeyManager"`
	CustomerMasterKeySpec string   `json:"CustomerMasterKeySpec"`
	KeySpec               string   `json:"KeySpec"`
	EncryptionAlgorithms  []string `json:"EncryptionAlgorithms"`
	MultiRegion           bool     `json:"MultiRegion"`
}

func epochSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func (k *key) metadata() keyMetadata {
	m := keyMetadata{
		AWSAccountID: k.Account, KeyID: k.KeyID, Arn: k.ARN, CreationDate: epochSeconds(k.Created),
		Enabled: k.State == "Enabled", Description: k.Description, KeyUsage: k.KeyUsage, KeyState: k.State,
		Origin: "AWS_KMS", KeyManager: k.Manager, CustomerMasterKeySpec: k.KeySpec, KeySpec: k.KeySpec,
		EncryptionAlgorithms: []string{"SYMMETRIC_DEFAULT"}, MultiRegion: k.MultiRegion,
	}
	if !k.DeletionDate.IsZero() {
		d := epochSeconds(k.DeletionDate)
		m.DeletionDate = &d
	}
	return m
}

type keyMetadataOutput struct {
	KeyMetadata keyMetadata `json:"KeyMetadata"`
}

func (s *Service) createKey(c *core.Call, req *request) (any, *core.APIError) {
	if err := s.iamOnly(c, "CreateKey"); err != nil {
		return nil, err
	}
	spec := req.KeySpec
	if spec == "" {
		spec = req.CustomerMasterKeySpec
	}
	if spec != "" && spec != "SYMMETRIC_DEFAULT" {
		return nil, core.Errf("UnsupportedOperationException", "KeySpec %s is not supported by this emulator; use SYMMETRIC_DEFAULT.", spec)
	}
	if req.KeyUsage != "" && req.KeyUsage != "ENCRYPT_DECRYPT" {
		return nil, core.Errf("ValidationException", "KeyUsage %s is not valid for a SYMMETRIC_DEFAULT key; use ENCRYPT_DECRYPT.", req.KeyUsage)
	}
	policy := defaultKeyPolicy(c.Account)
	if req.Policy != nil {
		if _, err := core.ParsePolicy(*req.Policy); err != nil {
			return nil, core.Errf("MalformedPolicyDocumentException", "%v", err)
		}
		policy = *req.Policy
	}
	id := core.RandomUUID()
	if req.MultiRegion {
		id = "mrk-" + hex.EncodeToString(core.RandomBytes(16))
	}
	k := &key{
		ARN: core.KeyARN(c.Region, c.Account, id), KeyID: id, Account: c.Account, Region: c.Region,
		Manager: "CUSTOMER", State: "Enabled", KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT",
		Description: req.Description, Policy: policy, MultiRegion: req.MultiRegion,
		Material: core.RandomBytes(32), Created: s.clock.Now(),
	}
	st := s.store(core.Scope{Account: c.Account, Region: c.Region})
	st.mu.Lock()
	st.keys[k.ARN] = k
	st.mu.Unlock()
	c.Note("KeyArn", k.ARN)
	return keyMetadataOutput{k.metadata()}, nil
}

func (s *Service) describeKey(c *core.Call, req *request) (any, *core.APIError) {
	st, k, err := s.keyFor(c, req.KeyID, "DescribeKey", req.GrantTokens)
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	return keyMetadataOutput{k.metadata()}, nil
}

// page applies Limit (1..1000, default 100) and Marker (an index) to n items.
func page(limit int, marker string, n int) (from, to int, next string, err *core.APIError) {
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > 1000 {
		return 0, 0, "", core.Errf("ValidationException", "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and 1000", limit)
	}
	if marker != "" {
		i, convErr := strconv.Atoi(marker)
		if convErr != nil || i < 0 || i > n {
			return 0, 0, "", core.Errf("InvalidMarkerException", "The marker %q is not valid.", marker)
		}
		from = i
	}
	to = min(from+limit, n)
	if to < n {
		next = strconv.Itoa(to)
	}
	return from, to, next, nil
}

func (s *Service) listKeys(c *core.Call, req *request) (any, *core.APIError) {
	if err := s.iamOnly(c, "ListKeys"); err != nil {
		return nil, err
	}
	type entry struct {
		KeyID  string `json:"KeyId"`
		KeyArn string `json:"KeyArn"`
	}
	var all []entry
	st := s.store(core.Scope{Account: c.Account, Region: c.Region})
	st.mu.Lock()
	for _, k := range st.keys {
		all = append(all, entry{k.KeyID, k.ARN})
	}
	st.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].KeyID < all[j].KeyID })
	from, to, next, err := page(req.Limit, req.Marker, len(all))
	if err != nil {
		return nil, err
	}
	out := struct {
		Keys       []entry `json:"Keys"`
		NextMarker string  `json:"NextMarker,omitempty"`
		Truncated  bool    `json:"Truncated"`
	}{Keys: append([]entry{}, all[from:to]...), NextMarker: next, Truncated: next != ""}
	return out, nil
}

var aliasNameRe = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]+$`)

func (s *Service) createAlias(c *core.Call, req *request) (any, *core.APIError) {
	if req.AliasName == "" {
		return nil, nullField("aliasName")
	}
	if req.TargetKeyID == "" {
		return nil, nullField("targetKeyId")
	}
	if !aliasNameRe.MatchString(req.AliasName) || len(req.AliasName) > 256 {
		return nil, core.Errf("ValidationException", "1 validation error detected: Value '%s' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^alias/[a-zA-Z0-9/_-]+$", req.AliasName)
	}
	aARN := core.AliasARN(c.Region, c.Account, req.AliasName)
	if strings.HasPrefix(req.AliasName, "alias/aws/") {
		return nil, core.Errf("NotAuthorizedException", "User: %s is not authorized to perform: kms:CreateAlias on resource: %s", c.Principal, aARN)
	}
	if err := s.iamOnly(c, "CreateAlias"); err != nil {
		return nil, err
	}
	if strings.HasPrefix(req.TargetKeyID, "alias/") || strings.Contains(req.TargetKeyID, ":alias/") {
		return nil, core.Errf("ValidationException", "TargetKeyId must be a key ID or key ARN, not an alias: %s", req.TargetKeyID)
	}
	st, k, err := s.keyFor(c, req.TargetKeyID, "CreateAlias", nil)
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	if err := ownKeyOnly(c, k, "CreateAlias"); err != nil {
		return nil, err
	}
	if k.Manager == "AWS" {
		return nil, core.Errf("NotAuthorizedException", "User: %s is not authorized to perform: kms:CreateAlias on resource: %s", c.Principal, k.ARN)
	}
	// The key is the caller's own (ownKeyOnly), so its store holds the
	// caller's aliases of this region.
	if _, dup := st.aliases[aARN]; dup {
		return nil, core.Errf("AlreadyExistsException", "An alias with the name %s already exists", aARN)
	}
	st.aliases[aARN] = &alias{Name: req.AliasName, ARN: aARN, Account: c.Account, Region: c.Region, KeyARN: k.ARN, Created: s.clock.Now()}
	c.Note("AliasArn", aARN)
	return nil, nil
}

func (s *Service) listAliases(c *core.Call, req *request) (any, *core.APIError) {
	if err := s.iamOnly(c, "ListAliases"); err != nil {
		return nil, err
	}
	var target string
	if req.KeyID != "" {
		st, k, err := s.keyFor(c, req.KeyID, "ListAliases", nil)
		if err != nil {
			return nil, err
		}
		target = k.ARN
		st.mu.Unlock()
	}
	type entry struct {
		AliasName    string  `json:"AliasName"`
		AliasArn     string  `json:"AliasArn"`
		TargetKeyID  string  `json:"TargetKeyId"`
		CreationDate float64 `json:"CreationDate"`
	}
	var all []entry
	st := s.store(core.Scope{Account: c.Account, Region: c.Region})
	st.mu.Lock()
	ensureAWSManagedEBSKey(st, c.Account, c.Region, s.clock.Now())
	for _, al := range st.aliases {
		if target != "" && al.KeyARN != target {
			continue
		}
		keyID := al.KeyARN[strings.LastIndexByte(al.KeyARN, '/')+1:]
		all = append(all, entry{al.Name, al.ARN, keyID, epochSeconds(al.Created)})
	}
	st.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].AliasName < all[j].AliasName })
	from, to, next, err := page(req.Limit, req.Marker, len(all))
	if err != nil {
		return nil, err
	}
	return struct {
		Aliases    []entry `json:"Aliases"`
		NextMarker string  `json:"NextMarker,omitempty"`
		Truncated  bool    `json:"Truncated"`
	}{append([]entry{}, all[from:to]...), next, next != ""}, nil
}

func (s *Service) getKeyPolicy(c *core.Call, req *request) (any, *core.APIError) {
	if req.PolicyName != "" && req.PolicyName != "default" {
		return nil, core.Errf("NotFoundException", "Policy %s does not exist", req.PolicyName)
	}
	st, k, err := s.keyFor(c, req.KeyID, "GetKeyPolicy", nil)
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	if err := ownKeyOnly(c, k, "GetKeyPolicy"); err != nil {
		return nil, err
	}
	return map[string]string{"Policy": k.Policy, "PolicyName": "default"}, nil
}

// adminKey resolves a key for a key-administration action: no AWS-managed
// key, only the caller's own account, then the key policy. It returns the
// key with its store locked.
func (s *Service) adminKey(c *core.Call, ref, action string) (*store, *key, *core.APIError) {
	st, k, err := s.lockKey(ref, c.Account, c.Region)
	if err != nil {
		return nil, nil, err
	}
	if err := managedKeyDenied(c, k, action); err != nil {
		st.mu.Unlock()
		return nil, nil, err
	}
	if err := ownKeyOnly(c, k, action); err != nil {
		st.mu.Unlock()
		return nil, nil, err
	}
	if err := s.allowed(st, k, access{Account: c.Account, Principal: c.Principal, PrincipalIAM: c.PrincipalIAM, Action: action}); err != nil {
		st.mu.Unlock()
		return nil, nil, err
	}
	c.Note("KeyArn", k.ARN)
	return st, k, nil
}

func (s *Service) putKeyPolicy(c *core.Call, req *request) (any, *core.APIError) {
	if req.Policy == nil {
		return nil, nullField("policy")
	}
	st, k, err := s.adminKey(c, req.KeyID, "PutKeyPolicy")
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	p, perr := core.ParsePolicy(*req.Policy)
	if perr != nil {
		return nil, core.Errf("MalformedPolicyDocumentException", "%v", perr)
	}
	k.Policy, k.policy = *req.Policy, p
	return nil, nil
}

func (s *Service) enableKey(c *core.Call, req *request) (any, *core.APIError) {
	return s.setKeyState(c, req, "EnableKey", "Enabled")
}

func (s *Service) disableKey(c *core.Call, req *request) (any, *core.APIError) {
	return s.setKeyState(c, req, "DisableKey", "Disabled")
}

func (s *Service) setKeyState(c *core.Call, req *request, action, state string) (any, *core.APIError) {
	st, k, err := s.adminKey(c, req.KeyID, action)
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	if k.State == "PendingDeletion" {
		return nil, core.Errf("KMSInvalidStateException", "%s is pending deletion.", k.ARN)
	}
	k.State = state
	return nil, nil
}

func (s *Service) scheduleKeyDeletion(c *core.Call, req *request) (any, *core.APIError) {
	st, k, err := s.adminKey(c, req.KeyID, "ScheduleKeyDeletion")
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	days := req.PendingWindowInDays
	if days == 0 {
		days = 30
	}
	if days < 7 || days > 30 {
		return nil, core.Errf("ValidationException", "1 validation error detected: Value '%d' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30", days)
	}
	if k.State == "PendingDeletion" {
		return nil, core.Errf("KMSInvalidStateException", "%s is pending deletion.", k.ARN)
	}
	k.State = "PendingDeletion"
	k.DeletionDate = s.clock.Now().Add(time.Duration(days) * 24 * time.Hour)
	return map[string]any{
		"KeyId": k.ARN, "DeletionDate": epochSeconds(k.DeletionDate), "KeyState": k.State, "PendingWindowInDays": days,
	}, nil
}

func (s *Service) cancelKeyDeletion(c *core.Call, req *request) (any, *core.APIError) {
	st, k, err := s.keyFor(c, req.KeyID, "CancelKeyDeletion", nil)
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	if err := ownKeyOnly(c, k, "CancelKeyDeletion"); err != nil {
		return nil, err
	}
	if k.State != "PendingDeletion" {
		return nil, core.Errf("KMSInvalidStateException", "%s is not pending deletion.", k.ARN)
	}
	k.State, k.DeletionDate = "Disabled", time.Time{}
	return map[string]string{"KeyId": k.ARN}, nil
}

// grantOperations are the operations a grant may allow.
func validGrantOperation(op string) bool {
	switch op {
	case "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo",
		"Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey", "GenerateDataKeyPair",
		"GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac", "DeriveSharedSecret":
		return true
	}
	return false
}

func validPrincipal(p string) bool {
	return core.IsAccountID(p) || strings.HasPrefix(p, "arn:aws:iam::") || strings.HasPrefix(p, "arn:aws:sts::") ||
		strings.HasSuffix(p, ".amazonaws.com")
}

// normalizePrincipal turns an account ID into its root ARN, as KMS does.
func normalizePrincipal(p string) string {
	if core.IsAccountID(p) {
		return core.RootARN(p)
	}
	return p
}

func (s *Service) createGrant(c *core.Call, req *request) (any, *core.APIError) {
	if req.KeyID == "" {
		return nil, nullField("keyId")
	}
	if req.GranteePrincipal == "" {
		return nil, nullField("granteePrincipal")
	}
	if len(req.Operations) == 0 {
		return nil, nullField("operations")
	}
	for _, op := range req.Operations {
		if !validGrantOperation(op) {
			return nil, core.Errf("ValidationException", "1 validation error detected: Value '[%s]' at 'operations' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [Decrypt, Encrypt, GenerateDataKey, GenerateDataKeyWithoutPlaintext, ReEncryptFrom, ReEncryptTo, CreateGrant, RetireGrant, DescribeKey, GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext, Sign, Verify, GetPublicKey, GenerateMac, VerifyMac, DeriveSharedSecret]]", strings.Join(req.Operations, ", "))
		}
	}
	if !validPrincipal(req.GranteePrincipal) {
		return nil, core.Errf("ValidationException", "Invalid GranteePrincipal %s: use an account ID or an IAM ARN.", req.GranteePrincipal)
	}
	if req.RetiringPrincipal != "" && !validPrincipal(req.RetiringPrincipal) {
		return nil, core.Errf("ValidationException", "Invalid RetiringPrincipal %s: use an account ID or an IAM ARN.", req.RetiringPrincipal)
	}
	st, k, err := s.keyForAccess(c, req.KeyID, access{
		Account: c.Account, Principal: c.Principal, PrincipalIAM: c.PrincipalIAM, Action: "CreateGrant", GrantTokens: req.GrantTokens,
		Grant: &grantRequest{Operations: req.Operations, Grantee: normalizePrincipal(req.GranteePrincipal), Retiring: normalizePrincipal(req.RetiringPrincipal)},
	})
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	if err := keyStateError(k); err != nil {
		return nil, err
	}
	if limit := s.regrantLimit(st, k, access{Account: c.Account, Principal: c.Principal, PrincipalIAM: c.PrincipalIAM, Action: "CreateGrant", GrantTokens: req.GrantTokens}); limit != nil {
		for _, op := range req.Operations {
			if !slices.Contains(limit, op) {
				return nil, core.Errf("AccessDeniedException", "User: %s is not authorized to perform: kms:CreateGrant on resource: %s: a grant can only give operations the caller's own grant includes (%s is not among %s)", c.Principal, k.ARN, op, strings.Join(limit, ", "))
			}
		}
	}
	if req.DryRun {
		return nil, &core.APIError{HTTPStatus: 412, Code: "DryRunOperationException", Message: "The request would have succeeded, but the DryRun option is set."}
	}
	grantee := normalizePrincipal(req.GranteePrincipal)
	retiring := normalizePrincipal(req.RetiringPrincipal)
	ops := append([]string(nil), req.Operations...)
	sort.Strings(ops)
	// A grant with the same name and parameters is the same grant (KMS
	// treats CreateGrant with a Name as idempotent).
	if req.Name != "" {
		for _, g := range st.grantsByKey[k.ARN] {
			if g.Name == req.Name && g.GranteePrincipal == grantee && g.RetiringPrincipal == retiring && strings.Join(g.Operations, ",") == strings.Join(ops, ",") {
				return map[string]string{"GrantId": g.GrantID, "GrantToken": g.Token}, nil
			}
		}
	}
	now := s.clock.Now()
	delay := s.clock.Latency(core.LatencyGrant, 0, false)
	if s.faults.Fires(core.FaultSlowGrant, c, c.Action) {
		delay = s.clock.Scaled(s.opts.SlowGrantDelay)
	}
	g := &grant{
		GrantID:           hex.EncodeToString(core.RandomBytes(32)),
		KeyARN:            k.ARN,
		Name:              req.Name,
		GranteePrincipal:  grantee,
		RetiringPrincipal: retiring,
		IssuingAccount:    core.RootARN(c.Account),
		IssuedBy:          c.Principal,
		Operations:        ops,
		Constraints:       req.Constraints,
		Created:           now,
		EffectiveAt:       now.Add(delay),
	}
	g.Token = base64.RawURLEncoding.EncodeToString(append([]byte("grant:"), core.RandomBytes(48)...))
	s.addGrant(st, g)
	c.Note("GrantId", g.GrantID)
	c.Note("KeyArn", k.ARN)
	c.Note("GranteePrincipal", grantee)
	return map[string]string{"GrantId": g.GrantID, "GrantToken": g.Token}, nil
}

type grantListEntry struct {
	KeyID             string            `json:"KeyId"`
	GrantID           string            `json:"GrantId"`
	Name              string            `json:"Name,omitempty"`
	CreationDate      float64           `json:"CreationDate"`
	GranteePrincipal  string            `json:"GranteePrincipal"`
	RetiringPrincipal string            `json:"RetiringPrincipal,omitempty"`
	IssuingAccount    string            `json:"IssuingAccount"`
	Operations        []string          `json:"Operations"`
	Constraints       *grantConstraints `json:"Constraints,omitempty"`
}

func (s *Service) listGrants(c *core.Call, req *request) (any, *core.APIError) {
	st, k, err := s.keyFor(c, req.KeyID, "ListGrants", nil)
	if err != nil {
		return nil, err
	}
	var all []grantListEntry
	for _, g := range st.grantsByKey[k.ARN] {
		if req.GrantID != "" && g.GrantID != req.GrantID {
			continue
		}
		if req.GranteePrincipal != "" && g.GranteePrincipal != normalizePrincipal(req.GranteePrincipal) {
			continue
		}
		all = append(all, grantListEntry{
			KeyID: k.ARN, GrantID: g.GrantID, Name: g.Name, CreationDate: epochSeconds(g.Created),
			GranteePrincipal: g.GranteePrincipal, RetiringPrincipal: g.RetiringPrincipal,
			IssuingAccount: g.IssuingAccount, Operations: g.Operations, Constraints: g.Constraints,
		})
	}
	st.mu.Unlock()
	sort.Slice(all, func(i, j int) bool {
		if all[i].CreationDate != all[j].CreationDate {
			return all[i].CreationDate < all[j].CreationDate
		}
		return all[i].GrantID < all[j].GrantID
	})
	from, to, next, perr := page(req.Limit, req.Marker, len(all))
	if perr != nil {
		return nil, perr
	}
	return struct {
		Grants     []grantListEntry `json:"Grants"`
		NextMarker string           `json:"NextMarker,omitempty"`
		Truncated  bool             `json:"Truncated"`
	}{append([]grantListEntry{}, all[from:to]...), next, next != ""}, nil
}

// retireGrant: by grant token, or by key ARN and grant ID. The retiring
// principal, the issuing account, or the grantee when the grant allows
// RetireGrant may retire a grant (docs/aws-behaviour.md, KMS grants).
func (s *Service) retireGrant(c *core.Call, req *request) (any, *core.APIError) {
	var keyARN string
	switch {
	case req.GrantToken != "":
		v, ok := s.tokens.Load(req.GrantToken)
		if !ok {
			return nil, core.Errf("InvalidGrantTokenException", "Grant token is not valid.")
		}
		keyARN = v.(string)
	case req.GrantID != "" && req.KeyID != "":
		if !strings.HasPrefix(req.KeyID, "arn:") {
			return nil, core.Errf("ValidationException", "KeyId must be a key ARN when retiring a grant by GrantId: %s", req.KeyID)
		}
		keyARN = req.KeyID
	default:
		return nil, core.Errf("ValidationException", "Either GrantToken, or KeyId and GrantId, must be specified.")
	}
	st := s.store(scopeOfARN(keyARN))
	st.mu.Lock()
	defer st.mu.Unlock()
	var g *grant
	if req.GrantToken != "" {
		for _, cand := range st.grantsByKey[keyARN] {
			if cand.Token == req.GrantToken {
				g = cand
				break
			}
		}
		if g == nil {
			return nil, core.Errf("InvalidGrantTokenException", "Grant token is not valid.")
		}
	} else {
		cand, ok := st.grants[req.GrantID]
		if !ok || cand.KeyARN != keyARN {
			return nil, core.Errf("NotFoundException", "Grant ID %s not found", req.GrantID)
		}
		g = cand
	}
	if !s.iam.Allowed(c.PrincipalIAM, "kms:RetireGrant") {
		return nil, accessDenied(c.Principal, "kms:RetireGrant", g.KeyARN, "with an explicit deny in an identity-based policy")
	}
	// The grantee may retire only a grant that allows RetireGrant (KMS
	// RetireGrant reference, "Retiring and revoking grants").
	granteeMay := principalNames(g.GranteePrincipal, c) && slices.Contains(g.Operations, "RetireGrant")
	if !granteeMay && !principalNames(g.RetiringPrincipal, c) && g.IssuingAccount != core.RootARN(c.Account) {
		return nil, core.Errf("AccessDeniedException", "User: %s is not authorized to perform: kms:RetireGrant on resource: %s", c.Principal, g.KeyARN)
	}
	s.deleteGrant(st, g)
	c.Note("GrantId", g.GrantID)
	c.Note("KeyArn", g.KeyARN)
	return nil, nil
}

// principalNames reports whether a grant principal names the caller.
func principalNames(p string, c *core.Call) bool {
	return p != "" && (p == c.PrincipalIAM || p == c.Principal || p == core.RootARN(c.Account))
}

func (s *Service) revokeGrant(c *core.Call, req *request) (any, *core.APIError) {
	if req.GrantID == "" {
		return nil, nullField("grantId")
	}
	st, k, err := s.keyFor(c, req.KeyID, "RevokeGrant", nil)
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	g, ok := st.grants[req.GrantID]
	if !ok || g.KeyARN != k.ARN {
		return nil, core.Errf("NotFoundException", "Grant ID %s not found", req.GrantID)
	}
	s.deleteGrant(st, g)
	c.Note("GrantId", g.GrantID)
	return nil, nil
}

// usableKey resolves and authorizes a key for a cryptographic operation,
// and returns it with its store locked.
func (s *Service) usableKey(c *core.Call, ref, action string, grantTokens []string, context map[string]string) (*store, *key, *core.APIError) {
	if context == nil {
		context = map[string]string{} // a cryptographic operation: constraints apply
	}
	st, k, err := s.keyForContext(c, ref, action, grantTokens, context)
	if err != nil {
		return nil, nil, err
	}
	if err := keyStateError(k); err != nil {
		st.mu.Unlock()
		return nil, nil, err
	}
	return st, k, nil
}

// sealWith encrypts plaintext under the key ref names, for action.
func (s *Service) sealWith(c *core.Call, ref, action string, grantTokens []string, context map[string]string, plaintext []byte) ([]byte, string, *core.APIError) {
	st, k, err := s.usableKey(c, ref, action, grantTokens, context)
	if err != nil {
		return nil, "", err
	}
	defer st.mu.Unlock()
	blob, serr := sealBlob(k, plaintext, context)
	if serr != nil {
		return nil, "", internalError(serr)
	}
	return blob, k.ARN, nil
}

func (s *Service) encrypt(c *core.Call, req *request) (any, *core.APIError) {
	if req.Plaintext == nil {
		return nil, nullField("plaintext")
	}
	if len(req.Plaintext) == 0 || len(req.Plaintext) > 4096 {
		return nil, core.Errf("ValidationException", "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and 4096")
	}
	blob, keyARN, err := s.sealWith(c, req.KeyID, "Encrypt", req.GrantTokens, req.EncryptionContext, req.Plaintext)
	if err != nil {
		return nil, err
	}
	return map[string]any{"CiphertextBlob": blob, "KeyId": keyARN, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}, nil
}

// decryptBlob authorizes action on the blob's key and opens it; it returns
// the plaintext and the key's ARN.
func (s *Service) decryptBlob(c *core.Call, blob []byte, keyRef string, context map[string]string, action string, grantTokens []string) ([]byte, string, *core.APIError) {
	if blob == nil {
		return nil, "", nullField("ciphertextBlob")
	}
	arn, rest, ok := blobKeyARN(blob)
	if !ok {
		return nil, "", core.Errf("InvalidCiphertextException", "")
	}
	// A multi-region key's replica decrypts what any of its related keys
	// encrypted: they share the key ID and the key material.
	if f := strings.SplitN(arn, ":", 6); len(f) == 6 && strings.HasPrefix(f[5], "key/mrk-") && f[3] != c.Region {
		arn = core.KeyARN(c.Region, f[4], strings.TrimPrefix(f[5], "key/"))
	}
	st, k, err := s.usableKey(c, arn, action, grantTokens, context)
	if err != nil {
		return nil, "", err
	}
	used := *k // key material never changes: open the blob after unlocking
	st.mu.Unlock()
	if keyRef != "" {
		wst, want, rerr := s.lockKey(keyRef, c.Account, c.Region)
		if rerr != nil {
			return nil, "", rerr
		}
		wantARN := want.ARN
		wst.mu.Unlock()
		if wantARN != used.ARN {
			return nil, "", core.Errf("IncorrectKeyException", "The key ID in the request does not identify a KMS key that can perform this operation.")
		}
	}
	pt, ok := openBlob(&used, rest, context)
	if !ok {
		return nil, "", core.Errf("InvalidCiphertextException", "")
	}
	return pt, used.ARN, nil
}

func (s *Service) decrypt(c *core.Call, req *request) (any, *core.APIError) {
	pt, keyARN, err := s.decryptBlob(c, req.CiphertextBlob, req.KeyID, req.EncryptionContext, "Decrypt", req.GrantTokens)
	if err != nil {
		return nil, err
	}
	return map[string]any{"KeyId": keyARN, "Plaintext": pt, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}, nil
}

func (s *Service) generateDataKey(c *core.Call, req *request) (any, *core.APIError) {
	n := req.NumberOfBytes
	switch {
	case req.KeySpec != "" && n != 0:
		return nil, core.Errf("ValidationException", "Please specify either number of bytes or key spec.")
	case req.KeySpec == "AES_256":
		n = 32
	case req.KeySpec == "AES_128":
		n = 16
	case req.KeySpec != "":
		return nil, core.Errf("ValidationException", "1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]", req.KeySpec)
	case n == 0:
		return nil, core.Errf("ValidationException", "Please specify either number of bytes or key spec.")
	case n < 1 || n > 1024:
		return nil, core.Errf("ValidationException", "1 validation error detected: Value '%d' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024", n)
	}
	dataKey := core.RandomBytes(n)
	blob, keyARN, err := s.sealWith(c, req.KeyID, c.Action, req.GrantTokens, req.EncryptionContext, dataKey)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"CiphertextBlob": blob, "KeyId": keyARN}
	if c.Action == "GenerateDataKey" {
		out["Plaintext"] = dataKey
	}
	return out, nil
}

func (s *Service) reEncrypt(c *core.Call, req *request) (any, *core.APIError) {
	if req.DestinationKeyID == "" {
		return nil, nullField("destinationKeyId")
	}
	pt, srcARN, err := s.decryptBlob(c, req.CiphertextBlob, req.SourceKeyID, req.SourceEncryptionContext, "ReEncryptFrom", req.GrantTokens)
	if err != nil {
		return nil, err
	}
	blob, dstARN, err := s.sealWith(c, req.DestinationKeyID, "ReEncryptTo", req.GrantTokens, req.DestinationEncryptionContext, pt)
	if err != nil {
		return nil, err
	}
	c.Note("SourceKeyArn", srcARN)
	c.Note("KeyArn", dstARN)
	return map[string]any{
		"CiphertextBlob": blob, "SourceKeyId": srcARN, "KeyId": dstARN,
		"SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT", "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
	}, nil
}
