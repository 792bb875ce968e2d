package agent_test

import (
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent"
)

const goodToken = `{"type":"amicrypt-kms","keyslots":["0"],"amicrypt_version":1,` +
	`"kms_key_arn":"arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab","ciphertext":"QUtFMQ==",` +
	`"encryption_context":{"amicrypt:instance-arn":"arn:aws:ec2:us-east-1:111111111111:instance/i-1","amicrypt:luks-uuid":"u"},"volume":"amicrypt"}`

func TestParseToken(t *testing.T) {
	tok, err := agent.ParseToken([]byte(goodToken))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Keyslot() != 0 || string(tok.Blob()) != "AKE1" || tok.InstanceARN() != "arn:aws:ec2:us-east-1:111111111111:instance/i-1" {
		t.Errorf("token %+v", tok)
	}
	again, err := agent.ParseToken(tok.Marshal())
	if err != nil || !again.Equal(tok) {
		t.Errorf("round trip: %v %+v", err, again)
	}
	tests := []struct{ name, from, to, want string }{
		{"type", `"amicrypt-kms"`, `"luks2-keyring"`, "type"},
		{"version", `"amicrypt_version":1`, `"amicrypt_version":2`, "amicrypt_version 2"},
		{"two keyslots", `["0"]`, `["0","1"]`, "exactly one keyslot"},
		{"keyslot", `["0"]`, `["x"]`, "not a keyslot number"},
		{"key arn", `key/1234abcd`, `alias/1234abcd`, "not a KMS key ARN"},
		{"ciphertext", `"QUtFMQ=="`, `"!!"`, "ciphertext"},
		{"empty ciphertext", `"QUtFMQ=="`, `""`, "ciphertext"},
		{"context", `"amicrypt:luks-uuid":"u"`, `"x":"u"`, "lacks amicrypt:luks-uuid"},
		{"volume", `"volume":"amicrypt"`, `"volume":"-bad name"`, "not a device-mapper name"},
		{"not json", `{"type"`, `["type"`, "amicrypt-kms token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := agent.ParseToken([]byte(strings.Replace(goodToken, tt.from, tt.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseToken error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// FuzzParseToken: no input panics, and a token that parses survives a
// round trip unchanged.
func FuzzParseToken(f *testing.F) {
	f.Add([]byte(goodToken))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := agent.ParseToken(data)
		if err != nil {
			return
		}
		again, err := agent.ParseToken(tok.Marshal())
		if err != nil {
			t.Fatalf("a parsed token does not parse again: %v", err)
		}
		if !again.Equal(tok) {
			t.Fatalf("round trip changed the token: %+v -> %+v", tok, again)
		}
		_ = tok.Blob()
		_ = tok.Keyslot()
	})
}
