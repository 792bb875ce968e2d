package sts

// authz.go: the encoded authorization messages of denied EC2 calls and
// DecodeAuthorizationMessage (docs/aws-behaviour.md 8.4, 8.5). The message
// is sealed (AES-256-GCM under a key of the emulator's), as AWS's is
// opaque: "the details of the authorization status can contain privileged
// information that the user who requested the operation should not see".

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// sealedMessage is what an encoded message carries: the account of the
// denied call and the decoded document.
type sealedMessage struct {
	Account string          `json:"account"`
	Message json.RawMessage `json:"message"`
}

func (s *Service) aead() cipher.AEAD {
	s.mu.RLock()
	key := s.msgKey
	s.mu.RUnlock()
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("sts: message key: %v", err)) // the key is always 32 bytes
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("sts: message key: %v", err))
	}
	return gcm
}

// EncodeAuthorizationMessage seals the authorization message of a call of
// account that was denied, for its error text: URL-safe base64, as AWS's
// encoded messages are.
func (s *Service) EncodeAuthorizationMessage(account string, m core.AuthorizationMessage) string {
	doc, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("sts: encoding an authorization message: %v", err)) // plain structs always encode
	}
	payload, err := json.Marshal(sealedMessage{Account: account, Message: doc})
	if err != nil {
		panic(fmt.Sprintf("sts: encoding an authorization message: %v", err))
	}
	gcm := s.aead()
	nonce := core.RandomBytes(gcm.NonceSize())
	return base64.RawURLEncoding.EncodeToString(gcm.Seal(nonce, nonce, payload, nil))
}

// openMessage unseals an encoded message.
func (s *Service) openMessage(encoded string) (sealedMessage, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(encoded)
	gcm := s.aead()
	if err != nil || len(raw) < gcm.NonceSize() {
		return sealedMessage{}, false
	}
	payload, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], nil)
	if err != nil {
		return sealedMessage{}, false
	}
	var m sealedMessage
	if json.Unmarshal(payload, &m) != nil {
		return sealedMessage{}, false
	}
	return m, true
}

type decodeAuthorizationMessageResult struct {
	DecodedMessage string `xml:"DecodedMessage"`
}

// decodeAuthorizationMessage needs sts:DecodeAuthorizationMessage; a
// message that is not one the emulator encoded, or one of another
// account's call, is InvalidAuthorizationMessageException (emulator
// convention for the text and for the account rule).
func (s *Service) decodeAuthorizationMessage(c *core.Call) (any, *core.APIError) {
	encoded := c.Params.Get("EncodedMessage")
	if encoded == "" {
		return nil, core.Errf("ValidationError", "1 validation error detected: Value null at 'encodedMessage' failed to satisfy constraint: Member must not be null")
	}
	const action = "sts:DecodeAuthorizationMessage"
	d := s.iam.Authorize(core.PolicyRequest{Account: c.Account, Principal: c.Principal, PrincipalIAM: c.PrincipalIAM, Action: action})
	if !d.Allowed {
		return nil, &core.APIError{HTTPStatus: 403, Code: "AccessDenied", Message: core.AccessDeniedMessage(c.Principal, action, "", d.ExplicitDeny)}
	}
	m, ok := s.openMessage(encoded)
	if !ok || m.Account != c.Account {
		return nil, core.Errf("InvalidAuthorizationMessageException", "The encoded message is not a valid authorization message of this account.")
	}
	return decodeAuthorizationMessageResult{DecodedMessage: string(m.Message)}, nil
}
