package kms

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/json"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// Ciphertext blobs are envelope-shaped: a magic, the key ARN, a nonce and
// the AES-256-GCM sealed data; the encryption context is the additional
// authenticated data.
const ciphertextMagic = "AKE1"

func sealBlob(k *key, plaintext []byte, context map[string]string) ([]byte, error) {
	block, err := aes.NewCipher(k.Material)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	nonce := core.RandomBytes(gcm.NonceSize())
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

func openBlob(k *key, rest []byte, context map[string]string) ([]byte, bool) {
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
