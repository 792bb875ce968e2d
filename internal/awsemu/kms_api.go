package awsemu

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// kmsHandler serves one KMS action.
type kmsHandler func(e *Emulator, c *Call, req *kmsRequest) (any, *APIError)

// kmsRequest is the union of the request fields of the KMS actions served.
type kmsRequest struct {
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

func kmsActions() map[string]kmsHandler {
	return map[string]kmsHandler{
		"CreateKey":                       (*Emulator).kmsCreateKey,
		"DescribeKey":                     (*Emulator).kmsDescribeKey,
		"ListKeys":                        (*Emulator).kmsListKeys,
		"CreateAlias":                     (*Emulator).kmsCreateAlias,
		"ListAliases":                     (*Emulator).kmsListAliases,
		"GetKeyPolicy":                    (*Emulator).kmsGetKeyPolicy,
		"PutKeyPolicy":                    (*Emulator).kmsPutKeyPolicy,
		"EnableKey":                       (*Emulator).kmsEnableKey,
		"DisableKey":                      (*Emulator).kmsDisableKey,
		"ScheduleKeyDeletion":             (*Emulator).kmsScheduleKeyDeletion,
		"CancelKeyDeletion":               (*Emulator).kmsCancelKeyDeletion,
		"CreateGrant":                     (*Emulator).kmsCreateGrant,
		"ListGrants":                      (*Emulator).kmsListGrants,
		"RetireGrant":                     (*Emulator).kmsRetireGrant,
		"RevokeGrant":                     (*Emulator).kmsRevokeGrant,
		"Encrypt":                         (*Emulator).kmsEncrypt,
		"Decrypt":                         (*Emulator).kmsDecrypt,
		"GenerateDataKey":                 (*Emulator).kmsGenerateDataKey,
		"GenerateDataKeyWithoutPlaintext": (*Emulator).kmsGenerateDataKey,
		"ReEncrypt":                       (*Emulator).kmsReEncrypt,
	}
}

// handleKMS serves one KMS JSON 1.1 call; the emulator lock is held.
func (e *Emulator) handleKMS(c *Call) (any, *APIError) {
	h, ok := kmsActions()[c.Action]
	if !ok {
		return nil, &APIError{HTTPStatus: 400, Code: "UnknownOperationException", Message: ""}
	}
	var req kmsRequest
	if len(bytes.TrimSpace(c.Body)) > 0 {
		if err := json.Unmarshal(c.Body, &req); err != nil {
			return nil, Errf("SerializationException", "Start of structure or map found where not expected: %v", err)
		}
	}
	return h(e, c, &req)
}

func kmsNull(field string) *APIError {
	return Errf("ValidationException", "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", field)
}

// keyFor resolves ref for the caller and checks that it may perform action.
func (e *Emulator) keyFor(c *Call, ref, action string, grantTokens []string) (*kmsKey, *APIError) {
	return e.keyForContext(c, ref, action, grantTokens, nil)
}

// keyForContext is keyFor for a cryptographic operation with an encryption
// context, which grant constraints are checked against.
func (e *Emulator) keyForContext(c *Call, ref, action string, grantTokens []string, context map[string]string) (*kmsKey, *APIError) {
	k, err := e.resolveKey(ref, c.Account, c.Region)
	if err != nil {
		return nil, err
	}
	if err := e.keyAllowed(k, keyAccess{
		Account: c.Account, Principal: c.Principal, PrincipalIAM: c.PrincipalIAM, Action: action, GrantTokens: grantTokens,
		Context: context,
	}); err != nil {
		return nil, err
	}
	c.Note("KeyArn", k.ARN)
	return k, nil
}

// iamOnly checks an action that no key policy governs (CreateKey, ListKeys…).
func (e *Emulator) iamOnly(c *Call, action string) *APIError {
	if e.iamAllowed(c, "kms:"+action) {
		return nil
	}
	return Errf("AccessDeniedException", "User: %s is not authorized to perform: kms:%s on resource: * with an explicit deny in an identity-based policy", c.Principal, action)
}

type kmsKeyMetadata struct {
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

func (k *kmsKey) metadata() kmsKeyMetadata {
	m := kmsKeyMetadata{
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

type kmsKeyMetadataOutput struct {
	KeyMetadata kmsKeyMetadata `json:"KeyMetadata"`
}

func (e *Emulator) kmsCreateKey(c *Call, req *kmsRequest) (any, *APIError) {
	if err := e.iamOnly(c, "CreateKey"); err != nil {
		return nil, err
	}
	spec := req.KeySpec
	if spec == "" {
		spec = req.CustomerMasterKeySpec
	}
	if spec != "" && spec != "SYMMETRIC_DEFAULT" {
		return nil, Errf("UnsupportedOperationException", "KeySpec %s is not supported by this emulator; use SYMMETRIC_DEFAULT.", spec)
	}
	if req.KeyUsage != "" && req.KeyUsage != "ENCRYPT_DECRYPT" {
		return nil, Errf("ValidationException", "KeyUsage %s is not valid for a SYMMETRIC_DEFAULT key; use ENCRYPT_DECRYPT.", req.KeyUsage)
	}
	policy := defaultKeyPolicy(c.Account)
	if req.Policy != nil {
		if _, err := ParsePolicy(*req.Policy); err != nil {
			return nil, Errf("MalformedPolicyDocumentException", "%v", err)
		}
		policy = *req.Policy
	}
	id := RandomUUID()
	if req.MultiRegion {
		id = "mrk-" + hex.EncodeToString(RandomBytes(16))
	}
	k := &kmsKey{
		ARN: KeyARN(c.Region, c.Account, id), KeyID: id, Account: c.Account, Region: c.Region,
		Manager: "CUSTOMER", State: "Enabled", KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT",
		Description: req.Description, Policy: policy, MultiRegion: req.MultiRegion,
		Material: RandomBytes(32), Created: e.now(),
	}
	e.kms.Keys[k.ARN] = k
	c.Note("KeyArn", k.ARN)
	return kmsKeyMetadataOutput{k.metadata()}, nil
}

func (e *Emulator) kmsDescribeKey(c *Call, req *kmsRequest) (any, *APIError) {
	k, err := e.keyFor(c, req.KeyID, "DescribeKey", req.GrantTokens)
	if err != nil {
		return nil, err
	}
	return kmsKeyMetadataOutput{k.metadata()}, nil
}

// page applies Limit (1..1000, default 100) and Marker (an index) to n items.
func page(limit int, marker string, n int) (from, to int, next string, err *APIError) {
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > 1000 {
		return 0, 0, "", Errf("ValidationException", "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and 1000", limit)
	}
	if marker != "" {
		i, convErr := strconv.Atoi(marker)
		if convErr != nil || i < 0 || i > n {
			return 0, 0, "", Errf("InvalidMarkerException", "The marker %q is not valid.", marker)
		}
		from = i
	}
	to = min(from+limit, n)
	if to < n {
		next = strconv.Itoa(to)
	}
	return from, to, next, nil
}

func (e *Emulator) kmsListKeys(c *Call, req *kmsRequest) (any, *APIError) {
	if err := e.iamOnly(c, "ListKeys"); err != nil {
		return nil, err
	}
	type entry struct {
		KeyID  string `json:"KeyId"`
		KeyArn string `json:"KeyArn"`
	}
	var all []entry
	for _, k := range e.kms.Keys {
		if k.Account == c.Account && k.Region == c.Region {
			all = append(all, entry{k.KeyID, k.ARN})
		}
	}
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

func (e *Emulator) kmsCreateAlias(c *Call, req *kmsRequest) (any, *APIError) {
	if req.AliasName == "" {
		return nil, kmsNull("aliasName")
	}
	if req.TargetKeyID == "" {
		return nil, kmsNull("targetKeyId")
	}
	if !aliasNameRe.MatchString(req.AliasName) || len(req.AliasName) > 256 {
		return nil, Errf("ValidationException", "1 validation error detected: Value '%s' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^alias/[a-zA-Z0-9/_-]+$", req.AliasName)
	}
	aARN := AliasARN(c.Region, c.Account, req.AliasName)
	if strings.HasPrefix(req.AliasName, "alias/aws/") {
		return nil, Errf("NotAuthorizedException", "User: %s is not authorized to perform: kms:CreateAlias on resource: %s", c.Principal, aARN)
	}
	if err := e.iamOnly(c, "CreateAlias"); err != nil {
		return nil, err
	}
	if strings.HasPrefix(req.TargetKeyID, "alias/") || strings.Contains(req.TargetKeyID, ":alias/") {
		return nil, Errf("ValidationException", "TargetKeyId must be a key ID or key ARN, not an alias: %s", req.TargetKeyID)
	}
	k, err := e.keyFor(c, req.TargetKeyID, "CreateAlias", nil)
	if err != nil {
		return nil, err
	}
	if err := ownKeyOnly(c, k, "CreateAlias"); err != nil {
		return nil, err
	}
	if k.Manager == "AWS" {
		return nil, Errf("NotAuthorizedException", "User: %s is not authorized to perform: kms:CreateAlias on resource: %s", c.Principal, k.ARN)
	}
	if _, dup := e.kms.Aliases[aARN]; dup {
		return nil, Errf("AlreadyExistsException", "An alias with the name %s already exists", aARN)
	}
	e.kms.Aliases[aARN] = &kmsAlias{Name: req.AliasName, ARN: aARN, Account: c.Account, Region: c.Region, KeyARN: k.ARN, Created: e.now()}
	c.Note("AliasArn", aARN)
	return nil, nil
}

func (e *Emulator) kmsListAliases(c *Call, req *kmsRequest) (any, *APIError) {
	if err := e.iamOnly(c, "ListAliases"); err != nil {
		return nil, err
	}
	e.ensureAWSManagedEBSKey(c.Account, c.Region, e.now())
	var target string
	if req.KeyID != "" {
		k, err := e.keyFor(c, req.KeyID, "ListAliases", nil)
		if err != nil {
			return nil, err
		}
		target = k.ARN
	}
	type entry struct {
		AliasName    string  `json:"AliasName"`
		AliasArn     string  `json:"AliasArn"`
		TargetKeyID  string  `json:"TargetKeyId"`
		CreationDate float64 `json:"CreationDate"`
	}
	var all []entry
	for _, al := range e.kms.Aliases {
		if al.Account != c.Account || al.Region != c.Region || (target != "" && al.KeyARN != target) {
			continue
		}
		keyID := al.KeyARN[strings.LastIndexByte(al.KeyARN, '/')+1:]
		all = append(all, entry{al.Name, al.ARN, keyID, epochSeconds(al.Created)})
	}
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

func (e *Emulator) kmsGetKeyPolicy(c *Call, req *kmsRequest) (any, *APIError) {
	if req.PolicyName != "" && req.PolicyName != "default" {
		return nil, Errf("NotFoundException", "Policy %s does not exist", req.PolicyName)
	}
	k, err := e.keyFor(c, req.KeyID, "GetKeyPolicy", nil)
	if err != nil {
		return nil, err
	}
	if err := ownKeyOnly(c, k, "GetKeyPolicy"); err != nil {
		return nil, err
	}
	return map[string]string{"Policy": k.Policy, "PolicyName": "default"}, nil
}

// ownKeyOnly refuses key-administration operations KMS does not allow
// across accounts (GetKeyPolicy, PutKeyPolicy, EnableKey, DisableKey,
// ScheduleKeyDeletion, CancelKeyDeletion, CreateAlias: "Cross-account use:
// No" in the KMS API reference), whatever the key policy says.
func ownKeyOnly(c *Call, k *kmsKey, action string) *APIError {
	if k.Account == c.Account {
		return nil
	}
	return Errf("AccessDeniedException", "User: %s is not authorized to perform: kms:%s on resource: %s because kms:%s can't be performed on a KMS key in another account", c.Principal, action, k.ARN, action)
}

// managedKeyDenied is rule 7: nobody may administer an AWS-managed key.
func managedKeyDenied(c *Call, k *kmsKey, action string) *APIError {
	if k.Manager != "AWS" {
		return nil
	}
	return Errf("AccessDeniedException", "User: %s is not authorized to perform: kms:%s on resource: %s because %s is an AWS managed key", c.Principal, action, k.ARN, k.ARN)
}

func (e *Emulator) kmsPutKeyPolicy(c *Call, req *kmsRequest) (any, *APIError) {
	if req.Policy == nil {
		return nil, kmsNull("policy")
	}
	k, err := e.resolveKey(req.KeyID, c.Account, c.Region)
	if err != nil {
		return nil, err
	}
	if err := managedKeyDenied(c, k, "PutKeyPolicy"); err != nil {
		return nil, err
	}
	if err := ownKeyOnly(c, k, "PutKeyPolicy"); err != nil {
		return nil, err
	}
	if _, err := e.keyFor(c, req.KeyID, "PutKeyPolicy", nil); err != nil {
		return nil, err
	}
	p, perr := ParsePolicy(*req.Policy)
	if perr != nil {
		return nil, Errf("MalformedPolicyDocumentException", "%v", perr)
	}
	k.Policy, k.policy = *req.Policy, p
	return nil, nil
}

func (e *Emulator) kmsEnableKey(c *Call, req *kmsRequest) (any, *APIError) {
	return e.setKeyState(c, req, "EnableKey", "Enabled")
}

func (e *Emulator) kmsDisableKey(c *Call, req *kmsRequest) (any, *APIError) {
	return e.setKeyState(c, req, "DisableKey", "Disabled")
}

func (e *Emulator) setKeyState(c *Call, req *kmsRequest, action, state string) (any, *APIError) {
	k, err := e.resolveKey(req.KeyID, c.Account, c.Region)
	if err != nil {
		return nil, err
	}
	if err := managedKeyDenied(c, k, action); err != nil {
		return nil, err
	}
	if err := ownKeyOnly(c, k, action); err != nil {
		return nil, err
	}
	if _, err := e.keyFor(c, req.KeyID, action, nil); err != nil {
		return nil, err
	}
	if k.State == "PendingDeletion" {
		return nil, Errf("KMSInvalidStateException", "%s is pending deletion.", k.ARN)
	}
	k.State = state
	return nil, nil
}

func (e *Emulator) kmsScheduleKeyDeletion(c *Call, req *kmsRequest) (any, *APIError) {
	k, err := e.resolveKey(req.KeyID, c.Account, c.Region)
	if err != nil {
		return nil, err
	}
	if err := managedKeyDenied(c, k, "ScheduleKeyDeletion"); err != nil {
		return nil, err
	}
	if err := ownKeyOnly(c, k, "ScheduleKeyDeletion"); err != nil {
		return nil, err
	}
	if _, err := e.keyFor(c, req.KeyID, "ScheduleKeyDeletion", nil); err != nil {
		return nil, err
	}
	days := req.PendingWindowInDays
	if days == 0 {
		days = 30
	}
	if days < 7 || days > 30 {
		return nil, Errf("ValidationException", "1 validation error detected: Value '%d' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30", days)
	}
	if k.State == "PendingDeletion" {
		return nil, Errf("KMSInvalidStateException", "%s is pending deletion.", k.ARN)
	}
	k.State = "PendingDeletion"
	k.DeletionDate = e.now().Add(time.Duration(days) * 24 * time.Hour)
	return map[string]any{
		"KeyId": k.ARN, "DeletionDate": epochSeconds(k.DeletionDate), "KeyState": k.State, "PendingWindowInDays": days,
	}, nil
}

func (e *Emulator) kmsCancelKeyDeletion(c *Call, req *kmsRequest) (any, *APIError) {
	k, err := e.keyFor(c, req.KeyID, "CancelKeyDeletion", nil)
	if err != nil {
		return nil, err
	}
	if err := ownKeyOnly(c, k, "CancelKeyDeletion"); err != nil {
		return nil, err
	}
	if k.State != "PendingDeletion" {
		return nil, Errf("KMSInvalidStateException", "%s is not pending deletion.", k.ARN)
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
		return RootARN(p)
	}
	return p
}

func (e *Emulator) kmsCreateGrant(c *Call, req *kmsRequest) (any, *APIError) {
	if req.KeyID == "" {
		return nil, kmsNull("keyId")
	}
	if req.GranteePrincipal == "" {
		return nil, kmsNull("granteePrincipal")
	}
	if len(req.Operations) == 0 {
		return nil, kmsNull("operations")
	}
	for _, op := range req.Operations {
		if !validGrantOperation(op) {
			return nil, Errf("ValidationException", "1 validation error detected: Value '[%s]' at 'operations' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [Decrypt, Encrypt, GenerateDataKey, GenerateDataKeyWithoutPlaintext, ReEncryptFrom, ReEncryptTo, CreateGrant, RetireGrant, DescribeKey, GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext, Sign, Verify, GetPublicKey, GenerateMac, VerifyMac, DeriveSharedSecret]]", strings.Join(req.Operations, ", "))
		}
	}
	if !validPrincipal(req.GranteePrincipal) {
		return nil, Errf("ValidationException", "Invalid GranteePrincipal %s: use an account ID or an IAM ARN.", req.GranteePrincipal)
	}
	if req.RetiringPrincipal != "" && !validPrincipal(req.RetiringPrincipal) {
		return nil, Errf("ValidationException", "Invalid RetiringPrincipal %s: use an account ID or an IAM ARN.", req.RetiringPrincipal)
	}
	k, err := e.keyFor(c, req.KeyID, "CreateGrant", req.GrantTokens)
	if err != nil {
		return nil, err
	}
	if err := keyStateError(k); err != nil {
		return nil, err
	}
	if limit := e.regrantLimit(k, keyAccess{Account: c.Account, Principal: c.Principal, PrincipalIAM: c.PrincipalIAM, Action: "CreateGrant", GrantTokens: req.GrantTokens}); limit != nil {
		for _, op := range req.Operations {
			if !contains(limit, op) {
				return nil, Errf("AccessDeniedException", "User: %s is not authorized to perform: kms:CreateGrant on resource: %s: a grant can only give operations the caller's own grant includes (%s is not among %s)", c.Principal, k.ARN, op, strings.Join(limit, ", "))
			}
		}
	}
	if req.DryRun {
		return nil, &APIError{HTTPStatus: 412, Code: "DryRunOperationException", Message: "The request would have succeeded, but the DryRun option is set."}
	}
	grantee := normalizePrincipal(req.GranteePrincipal)
	retiring := normalizePrincipal(req.RetiringPrincipal)
	ops := append([]string(nil), req.Operations...)
	sort.Strings(ops)
	// A grant with the same name and parameters is the same grant (KMS
	// treats CreateGrant with a Name as idempotent).
	if req.Name != "" {
		for _, g := range e.kms.grantsByKey[k.ARN] {
			if g.Name == req.Name && g.GranteePrincipal == grantee && g.RetiringPrincipal == retiring && strings.Join(g.Operations, ",") == strings.Join(ops, ",") {
				return map[string]string{"GrantId": g.GrantID, "GrantToken": g.Token}, nil
			}
		}
	}
	now := e.now()
	delay := e.latency(LatencyGrant, 0, false)
	if e.faultFires(FaultSlowGrant, c.Action) {
		delay = e.scaled(e.opts.SlowGrantDelay)
	}
	g := &kmsGrant{
		GrantID:           hex.EncodeToString(RandomBytes(32)),
		KeyARN:            k.ARN,
		Name:              req.Name,
		GranteePrincipal:  grantee,
		RetiringPrincipal: retiring,
		IssuingAccount:    RootARN(c.Account),
		IssuedBy:          c.Principal,
		Operations:        ops,
		Constraints:       req.Constraints,
		Created:           now,
		EffectiveAt:       now.Add(delay),
	}
	g.Token = base64.RawURLEncoding.EncodeToString(append([]byte("grant:"), RandomBytes(48)...))
	e.kms.Grants[g.GrantID] = g
	e.kms.indexGrant(g)
	c.Note("GrantId", g.GrantID)
	c.Note("KeyArn", k.ARN)
	c.Note("GranteePrincipal", grantee)
	return map[string]string{"GrantId": g.GrantID, "GrantToken": g.Token}, nil
}

type kmsGrantListEntry struct {
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

func (e *Emulator) kmsListGrants(c *Call, req *kmsRequest) (any, *APIError) {
	k, err := e.keyFor(c, req.KeyID, "ListGrants", nil)
	if err != nil {
		return nil, err
	}
	var all []kmsGrantListEntry
	for _, g := range e.kms.grantsByKey[k.ARN] {
		if req.GrantID != "" && g.GrantID != req.GrantID {
			continue
		}
		if req.GranteePrincipal != "" && g.GranteePrincipal != normalizePrincipal(req.GranteePrincipal) {
			continue
		}
		all = append(all, kmsGrantListEntry{
			KeyID: k.ARN, GrantID: g.GrantID, Name: g.Name, CreationDate: epochSeconds(g.Created),
			GranteePrincipal: g.GranteePrincipal, RetiringPrincipal: g.RetiringPrincipal,
			IssuingAccount: g.IssuingAccount, Operations: g.Operations, Constraints: g.Constraints,
		})
	}
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
		Grants     []kmsGrantListEntry `json:"Grants"`
		NextMarker string              `json:"NextMarker,omitempty"`
		Truncated  bool                `json:"Truncated"`
	}{append([]kmsGrantListEntry{}, all[from:to]...), next, next != ""}, nil
}

// RetireGrant: by grant token, or by key ARN and grant ID. The retiring
// principal, the issuing account, or the grantee when the grant allows
// RetireGrant may retire a grant (aws-behaviour.md 3.9).
func (e *Emulator) kmsRetireGrant(c *Call, req *kmsRequest) (any, *APIError) {
	var g *kmsGrant
	switch {
	case req.GrantToken != "":
		for _, cand := range e.kms.Grants {
			if cand.Token == req.GrantToken {
				g = cand
				break
			}
		}
		if g == nil {
			return nil, Errf("InvalidGrantTokenException", "Grant token is not valid.")
		}
	case req.GrantID != "" && req.KeyID != "":
		if !strings.HasPrefix(req.KeyID, "arn:") {
			return nil, Errf("ValidationException", "KeyId must be a key ARN when retiring a grant by GrantId: %s", req.KeyID)
		}
		cand, ok := e.kms.Grants[req.GrantID]
		if !ok || cand.KeyARN != req.KeyID {
			return nil, Errf("NotFoundException", "Grant ID %s not found", req.GrantID)
		}
		g = cand
	default:
		return nil, Errf("ValidationException", "Either GrantToken, or KeyId and GrantId, must be specified.")
	}
	if !e.principalAllowed(c.PrincipalIAM, "kms:RetireGrant") {
		return nil, Errf("AccessDeniedException", "User: %s is not authorized to perform: kms:RetireGrant on resource: %s with an explicit deny in an identity-based policy", c.Principal, g.KeyARN)
	}
	// The grantee may retire only a grant that allows RetireGrant (KMS
	// RetireGrant reference, "Retiring and revoking grants").
	granteeMay := principalNames(g.GranteePrincipal, c) && contains(g.Operations, "RetireGrant")
	if !granteeMay && !principalNames(g.RetiringPrincipal, c) && g.IssuingAccount != RootARN(c.Account) {
		return nil, Errf("AccessDeniedException", "User: %s is not authorized to perform: kms:RetireGrant on resource: %s", c.Principal, g.KeyARN)
	}
	e.kms.deleteGrant(g)
	c.Note("GrantId", g.GrantID)
	c.Note("KeyArn", g.KeyARN)
	return nil, nil
}

// principalNames reports whether a grant principal names the caller.
func principalNames(p string, c *Call) bool {
	return p != "" && (p == c.PrincipalIAM || p == c.Principal || p == RootARN(c.Account))
}

func (e *Emulator) kmsRevokeGrant(c *Call, req *kmsRequest) (any, *APIError) {
	if req.GrantID == "" {
		return nil, kmsNull("grantId")
	}
	k, err := e.keyFor(c, req.KeyID, "RevokeGrant", nil)
	if err != nil {
		return nil, err
	}
	g, ok := e.kms.Grants[req.GrantID]
	if !ok || g.KeyARN != k.ARN {
		return nil, Errf("NotFoundException", "Grant ID %s not found", req.GrantID)
	}
	e.kms.deleteGrant(g)
	c.Note("GrantId", g.GrantID)
	return nil, nil
}

// Ciphertext blobs are envelope-shaped: a magic, the key ARN, a nonce and
// the AES-256-GCM sealed data; the encryption context is the additional
// authenticated data.
const ciphertextMagic = "AKE1"

func sealBlob(k *kmsKey, plaintext []byte, context map[string]string) ([]byte, error) {
	block, err := aes.NewCipher(k.Material)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	nonce := RandomBytes(gcm.NonceSize())
	var b bytes.Buffer
	b.WriteString(ciphertextMagic)
	_ = binary.Write(&b, binary.BigEndian, uint16(len(k.ARN)))
	b.WriteString(k.ARN)
	b.Write(nonce)
	b.Write(gcm.Seal(nil, nonce, plaintext, contextAAD(context)))
	return b.Bytes(), nil
}

// blobKeyARN reads the key ARN out of a ciphertext blob.
func blobKeyARN(blob []byte) (arn string, rest []byte, ok bool) {
	if len(blob) < 6 || string(blob[:4]) != ciphertextMagic {
		return "", nil, false
	}
	n := int(binary.BigEndian.Uint16(blob[4:6]))
	if len(blob) < 6+n {
		return "", nil, false
	}
	return string(blob[6 : 6+n]), blob[6+n:], true
}

func openBlob(k *kmsKey, rest []byte, context map[string]string) ([]byte, bool) {
	block, err := aes.NewCipher(k.Material)
	if err != nil {
		return nil, false
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil || len(rest) < gcm.NonceSize() {
		return nil, false
	}
	pt, err := gcm.Open(nil, rest[:gcm.NonceSize()], rest[gcm.NonceSize():], contextAAD(context))
	return pt, err == nil
}

func contextAAD(context map[string]string) []byte {
	if len(context) == 0 {
		return nil
	}
	b, _ := json.Marshal(context) // map keys are sorted
	return b
}

// usableKey resolves and authorizes a key for a cryptographic operation.
func (e *Emulator) usableKey(c *Call, ref, action string, grantTokens []string, context map[string]string) (*kmsKey, *APIError) {
	if context == nil {
		context = map[string]string{} // a cryptographic operation: constraints apply
	}
	k, err := e.keyForContext(c, ref, action, grantTokens, context)
	if err != nil {
		return nil, err
	}
	if err := keyStateError(k); err != nil {
		return nil, err
	}
	return k, nil
}

func (e *Emulator) kmsEncrypt(c *Call, req *kmsRequest) (any, *APIError) {
	if req.Plaintext == nil {
		return nil, kmsNull("plaintext")
	}
	if len(req.Plaintext) == 0 || len(req.Plaintext) > 4096 {
		return nil, Errf("ValidationException", "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and 4096")
	}
	k, err := e.usableKey(c, req.KeyID, "Encrypt", req.GrantTokens, req.EncryptionContext)
	if err != nil {
		return nil, err
	}
	blob, serr := sealBlob(k, req.Plaintext, req.EncryptionContext)
	if serr != nil {
		return nil, &APIError{HTTPStatus: 500, Code: "KMSInternalException", Message: serr.Error()}
	}
	return map[string]any{"CiphertextBlob": blob, "KeyId": k.ARN, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}, nil
}

// decryptBlob authorizes action on the blob's key and opens it.
func (e *Emulator) decryptBlob(c *Call, blob []byte, keyRef string, context map[string]string, action string, grantTokens []string) ([]byte, *kmsKey, *APIError) {
	if blob == nil {
		return nil, nil, kmsNull("ciphertextBlob")
	}
	arn, rest, ok := blobKeyARN(blob)
	if !ok {
		return nil, nil, Errf("InvalidCiphertextException", "")
	}
	// A multi-region key's replica decrypts what any of its related keys
	// encrypted: they share the key ID and the key material.
	if f := strings.SplitN(arn, ":", 6); len(f) == 6 && strings.HasPrefix(f[5], "key/mrk-") && f[3] != c.Region {
		arn = KeyARN(c.Region, f[4], strings.TrimPrefix(f[5], "key/"))
	}
	k, err := e.usableKey(c, arn, action, grantTokens, context)
	if err != nil {
		return nil, nil, err
	}
	if keyRef != "" {
		want, rerr := e.resolveKey(keyRef, c.Account, c.Region)
		if rerr != nil {
			return nil, nil, rerr
		}
		if want.ARN != k.ARN {
			return nil, nil, Errf("IncorrectKeyException", "The key ID in the request does not identify a KMS key that can perform this operation.")
		}
	}
	pt, ok := openBlob(k, rest, context)
	if !ok {
		return nil, nil, Errf("InvalidCiphertextException", "")
	}
	return pt, k, nil
}

func (e *Emulator) kmsDecrypt(c *Call, req *kmsRequest) (any, *APIError) {
	pt, k, err := e.decryptBlob(c, req.CiphertextBlob, req.KeyID, req.EncryptionContext, "Decrypt", req.GrantTokens)
	if err != nil {
		return nil, err
	}
	return map[string]any{"KeyId": k.ARN, "Plaintext": pt, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}, nil
}

func (e *Emulator) kmsGenerateDataKey(c *Call, req *kmsRequest) (any, *APIError) {
	n := req.NumberOfBytes
	switch {
	case req.KeySpec != "" && n != 0:
		return nil, Errf("ValidationException", "Please specify either number of bytes or key spec.")
	case req.KeySpec == "AES_256":
		n = 32
	case req.KeySpec == "AES_128":
		n = 16
	case req.KeySpec != "":
		return nil, Errf("ValidationException", "1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]", req.KeySpec)
	case n == 0:
		return nil, Errf("ValidationException", "Please specify either number of bytes or key spec.")
	case n < 1 || n > 1024:
		return nil, Errf("ValidationException", "1 validation error detected: Value '%d' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024", n)
	}
	k, err := e.usableKey(c, req.KeyID, c.Action, req.GrantTokens, req.EncryptionContext)
	if err != nil {
		return nil, err
	}
	dataKey := RandomBytes(n)
	blob, serr := sealBlob(k, dataKey, req.EncryptionContext)
	if serr != nil {
		return nil, &APIError{HTTPStatus: 500, Code: "KMSInternalException", Message: serr.Error()}
	}
	out := map[string]any{"CiphertextBlob": blob, "KeyId": k.ARN}
	if c.Action == "GenerateDataKey" {
		out["Plaintext"] = dataKey
	}
	return out, nil
}

func (e *Emulator) kmsReEncrypt(c *Call, req *kmsRequest) (any, *APIError) {
	if req.DestinationKeyID == "" {
		return nil, kmsNull("destinationKeyId")
	}
	pt, src, err := e.decryptBlob(c, req.CiphertextBlob, req.SourceKeyID, req.SourceEncryptionContext, "ReEncryptFrom", req.GrantTokens)
	if err != nil {
		return nil, err
	}
	dst, err := e.usableKey(c, req.DestinationKeyID, "ReEncryptTo", req.GrantTokens, req.DestinationEncryptionContext)
	if err != nil {
		return nil, err
	}
	blob, serr := sealBlob(dst, pt, req.DestinationEncryptionContext)
	if serr != nil {
		return nil, &APIError{HTTPStatus: 500, Code: "KMSInternalException", Message: serr.Error()}
	}
	c.Note("SourceKeyArn", src.ARN)
	c.Note("KeyArn", dst.ARN)
	return map[string]any{
		"CiphertextBlob": blob, "SourceKeyId": src.ARN, "KeyId": dst.ARN,
		"SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT", "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
	}, nil
}
