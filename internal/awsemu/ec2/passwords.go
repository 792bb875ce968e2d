package ec2

// passwords.go: the Windows administrator password of an instance, as
// GetPasswordData returns it: generated at first boot, encrypted (RSA
// PKCS #1 v1.5) with the public key of the key pair the instance was
// launched with, base64-encoded; an empty string until it is ready (AWS:
// "may take a few minutes"; the emulator takes four emulated minutes) and
// for instances that are not Windows.

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// passwordDelay is how long after launch the password is available.
const passwordDelay = 4 * time.Minute

// windowsImage reports whether an image is a Windows image: its platform,
// from the world file, the instance it was made from, its source or its
// root snapshot (docs/aws-behaviour.md 8.7).
func windowsImage(img *ec2Image) bool { return img.Platform == "windows" }

// setWindowsPassword marks a new instance as Windows and, when it was
// launched with an RSA key pair, prepares its encrypted password.
func (e *view) setWindowsPassword(c *core.Call, inst *ec2Instance) {
	inst.Platform = "windows"
	if inst.KeyName == "" {
		return
	}
	kp := e.keyPairByName(c.Account, c.Region, inst.KeyName)
	if kp == nil || kp.PublicKey == "" {
		return
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(kp.PublicKey))
	if err != nil {
		return
	}
	ck, ok := pub.(ssh.CryptoPublicKey)
	if !ok {
		return
	}
	rsaKey, ok := ck.CryptoPublicKey().(*rsa.PublicKey)
	if !ok {
		return // ED25519 key pairs can't carry a Windows password
	}
	password := randomPassword()
	//nolint:staticcheck // SA1019: PKCS #1 v1.5 is what AWS uses for Windows passwords (GetPasswordData)
	enc, err := rsa.EncryptPKCS1v15(rand.Reader, rsaKey, []byte(password))
	if err != nil {
		return
	}
	inst.PasswordData = base64.StdEncoding.EncodeToString(enc)
	inst.PasswordAt = e.clock.Now().Add(e.clock.Scaled(passwordDelay))
}

// randomPassword is a password like EC2Launch's: 32 characters of letters,
// digits and symbols.
func randomPassword() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!@#$%&*()-=+"
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

type getPasswordDataOutput struct {
	InstanceID   string `xml:"instanceId"`
	Timestamp    string `xml:"timestamp"`
	PasswordData string `xml:"passwordData"`
}

func (e *view) ec2GetPasswordData(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("InstanceId")
	if err != nil {
		return nil, err
	}
	if !instanceIDPattern.MatchString(id) {
		return nil, malformedID(id, "i")
	}
	inst, ok := get(e, instancesOf, id)
	if !ok || inst.Owner != c.Account || inst.Region != c.Region {
		return nil, instanceNotFound(id)
	}
	e.refreshInstance(inst)
	out := getPasswordDataOutput{InstanceID: inst.ID, Timestamp: ec2Time(e.clock.Now())}
	if inst.PasswordData != "" && !e.clock.Now().Before(inst.PasswordAt) {
		out.PasswordData = inst.PasswordData
		out.Timestamp = ec2Time(inst.PasswordAt)
		c.Note("passwordData", "available")
	}
	return out, nil
}
