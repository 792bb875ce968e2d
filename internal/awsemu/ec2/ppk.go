package ec2

// ppk.go: private keys in PuTTY's format, as CreateKeyPair returns them
// with KeyFormat ppk. Hand-written: no maintained Go library writes PPK
// files (golang.org/x/crypto/ssh reads and writes OpenSSH's formats only).

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // PPK version 2 authenticates the file with HMAC-SHA-1
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/crypto/ssh"
)

// ppkV2 writes an unencrypted PuTTY-User-Key-File-2 of an RSA or ED25519
// private key, with comment as its comment.
func ppkV2(priv any, comment string) (string, error) {
	var algo string
	var public, private []byte
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		algo = ssh.KeyAlgoRSA
		pub, err := ssh.NewPublicKey(&k.PublicKey)
		if err != nil {
			return "", err
		}
		public = pub.Marshal()
		iqmp := new(big.Int).ModInverse(k.Primes[1], k.Primes[0])
		private = ssh.Marshal(struct{ D, P, Q, Iqmp *big.Int }{k.D, k.Primes[0], k.Primes[1], iqmp})
	case ed25519.PrivateKey:
		algo = ssh.KeyAlgoED25519
		pub, err := ssh.NewPublicKey(k.Public())
		if err != nil {
			return "", err
		}
		public = pub.Marshal()
		// The 32-byte seed, as a string (PuTTY reads it as a
		// little-endian integer, which is the same bytes).
		private = ssh.Marshal(struct{ Seed []byte }{k.Seed()})
	default:
		return "", fmt.Errorf("no PPK form for a %T", priv)
	}
	const encryption = "none"
	mac := hmac.New(sha1.New, ppkMACKey(""))
	mac.Write(ssh.Marshal(struct {
		Algo, Encryption, Comment string
		Public, Private           []byte
	}{algo, encryption, comment, public, private}))
	var b strings.Builder
	fmt.Fprintf(&b, "PuTTY-User-Key-File-2: %s\nEncryption: %s\nComment: %s\n", algo, encryption, comment)
	writeLines := func(label string, data []byte) {
		enc := base64.StdEncoding.EncodeToString(data)
		var lines []string
		for len(enc) > 64 {
			lines, enc = append(lines, enc[:64]), enc[64:]
		}
		lines = append(lines, enc)
		fmt.Fprintf(&b, "%s-Lines: %d\n%s\n", label, len(lines), strings.Join(lines, "\n"))
	}
	writeLines("Public", public)
	writeLines("Private", private)
	fmt.Fprintf(&b, "Private-MAC: %s\n", hex.EncodeToString(mac.Sum(nil)))
	return b.String(), nil
}

// ppkMACKey is the MAC key of a version 2 PPK file under passphrase.
func ppkMACKey(passphrase string) []byte {
	sum := sha1.Sum([]byte("putty-private-key-file-mac-key" + passphrase)) //nolint:gosec // the format's own key derivation
	return sum[:]
}
