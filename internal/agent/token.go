package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/agentconfig"
)

// TokenType is the LUKS2 token type that holds a disk's KMS-wrapped key.
const TokenType = "amicrypt-kms"

// TokenVersion is the token format this agent writes and reads.
const TokenVersion = 1

// The encryption context keys the agent sets.
const (
	ContextInstanceARN = "amicrypt:instance-arn"
	ContextLUKSUUID    = "amicrypt:luks-uuid"
)

// maxCiphertext bounds a wrapped key (KMS ciphertext blobs are at most 6144
// bytes).
const maxCiphertext = 6144

// Token is the JSON of an amicrypt-kms LUKS2 token. Nothing in it is secret:
// the data key is wrapped by KMS, and the encryption context is what
// CloudTrail records anyway.
type Token struct {
	Type     string   `json:"type"`
	Keyslots []string `json:"keyslots"`
	Version  int      `json:"amicrypt_version"`
	// KMSKeyARN is the key ARN KMS returned when it wrapped the key.
	KMSKeyARN string `json:"kms_key_arn"`
	// Ciphertext is the KMS ciphertext blob, base64.
	Ciphertext string `json:"ciphertext"`
	// EncryptionContext is the context the blob was made with.
	EncryptionContext map[string]string `json:"encryption_context"`
	// Volume is the device-mapper name the volume opens as, so a volume keeps
	// its name (and mount point) across reboots whatever order the disks
	// enumerate in.
	Volume string `json:"volume,omitempty"`
}

var tokenKeyARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z]{2}(?:-[a-z]+)+-\d{1,2}:\d{12}:key/` + agentconfig.KeyIDPattern + `$`)

// ParseToken parses and checks an amicrypt-kms token.
func ParseToken(b []byte) (*Token, error) {
	var t Token
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("amicrypt-kms token: %w", err)
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("amicrypt-kms token: %w", err)
	}
	return &t, nil
}

func (t *Token) validate() error {
	if t.Type != TokenType {
		return fmt.Errorf("type %q, want %q", t.Type, TokenType)
	}
	if t.Version != TokenVersion {
		return fmt.Errorf("amicrypt_version %d: this agent reads version %d; use the agent that wrote it", t.Version, TokenVersion)
	}
	if len(t.Keyslots) != 1 {
		return fmt.Errorf("keyslots %v: want exactly one keyslot", t.Keyslots)
	}
	if n, err := strconv.Atoi(t.Keyslots[0]); err != nil || n < 0 || n > 31 || strconv.Itoa(n) != t.Keyslots[0] {
		return fmt.Errorf("keyslots %v: %q is not a keyslot number 0-31", t.Keyslots, t.Keyslots[0])
	}
	if !tokenKeyARNPattern.MatchString(t.KMSKeyARN) {
		return fmt.Errorf("kms_key_arn %q is not a KMS key ARN", t.KMSKeyARN)
	}
	blob, err := base64.StdEncoding.DecodeString(t.Ciphertext)
	if err != nil || len(blob) == 0 || len(blob) > maxCiphertext {
		return fmt.Errorf("ciphertext: want 1-%d bytes of base64", maxCiphertext)
	}
	for _, k := range []string{ContextInstanceARN, ContextLUKSUUID} {
		if t.EncryptionContext[k] == "" {
			return fmt.Errorf("encryption_context lacks %s", k)
		}
	}
	if t.Volume != "" && !agentconfig.ValidName(t.Volume) {
		return fmt.Errorf("volume %q is not a device-mapper name", t.Volume)
	}
	return nil
}

// Keyslot is the keyslot the wrapped key opens.
func (t *Token) Keyslot() int {
	n, _ := strconv.Atoi(t.Keyslots[0])
	return n
}

// Blob is the KMS ciphertext blob.
func (t *Token) Blob() []byte {
	b, _ := base64.StdEncoding.DecodeString(t.Ciphertext)
	return b
}

// InstanceARN is the instance the key was wrapped for.
func (t *Token) InstanceARN() string { return t.EncryptionContext[ContextInstanceARN] }

// Marshal returns the token's JSON.
func (t *Token) Marshal() []byte {
	b, err := json.Marshal(t)
	if err != nil {
		panic(err) // strings and a map of strings always marshal
	}
	return b
}

// Equal reports whether two tokens say the same thing.
func (t *Token) Equal(o *Token) bool {
	return t.Type == o.Type && slices.Equal(t.Keyslots, o.Keyslots) && t.Version == o.Version &&
		t.KMSKeyARN == o.KMSKeyARN && t.Ciphertext == o.Ciphertext && t.Volume == o.Volume &&
		maps.Equal(t.EncryptionContext, o.EncryptionContext)
}

func newToken(slot int, keyARN string, blob []byte, ec map[string]string, volume string) *Token {
	return &Token{Type: TokenType, Keyslots: []string{strconv.Itoa(slot)}, Version: TokenVersion,
		KMSKeyARN: keyARN, Ciphertext: base64.StdEncoding.EncodeToString(blob), EncryptionContext: maps.Clone(ec), Volume: volume}
}

// errTokenMismatch means the token read back differs from the one written.
var errTokenMismatch = errors.New("the token read back differs from the one written")
