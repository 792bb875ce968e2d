package ebs

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/hashicorp/packer-plugin-sdk/communicator/sshkey"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/uuid"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepKeyPair makes a temporary key pair when the communicator has no other
// way in (as amazon-ebs): of temporary_key_pair_type (rsa or ed25519, made
// by EC2), or, when temporary_key_pair_bits asks for another RSA size than
// EC2's 2048, generated here (the SDK's sshkey) and imported. With
// ssh_private_key_file, the key is read for the communicator (and for a
// Windows password).
type stepKeyPair struct{}

func needsTempKeyPair(c *Config) bool {
	cc := c.Comm
	switch cc.Type {
	case "ssh":
		return cc.SSHPrivateKeyFile == "" && cc.SSHKeyPairName == "" && cc.SSHPassword == "" && !cc.SSHAgentAuth
	case "winrm":
		// The key pair encrypts the Windows password AWS generates.
		return cc.WinRMPassword == "" && cc.SSHKeyPairName == ""
	}
	return false
}

func (s *stepKeyPair) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	if c.Comm.SSHPrivateKeyFile != "" {
		key, err := c.Comm.ReadSSHPrivateKeyFile()
		if err != nil {
			return halt(state, fmt.Errorf("ssh_private_key_file: %w", err))
		}
		c.Comm.SSHPrivateKey = key
	}
	if !needsTempKeyPair(c) {
		return multistep.ActionContinue
	}
	name := c.Comm.SSHTemporaryKeyPairName
	if name == "" {
		name = "packer_amicrypt_" + uuid.TimeOrderedUUID()
	}
	region := c.RawRegion
	client := b.clients.EC2(region)
	tags := b.leaseTags(b.tags.run)
	keyType, bits := c.Comm.SSHTemporaryKeyPairType, c.Comm.SSHTemporaryKeyPairBits
	var kp ebs.KeyPair
	if keyType == "rsa" && bits != 0 && bits != 2048 {
		pair, err := sshkey.GeneratePair(sshkey.RSA, rand.Reader, bits)
		if err != nil {
			return halt(state, fmt.Errorf("temporary_key_pair_bits: generating a %d-bit RSA key: %w", bits, err))
		}
		id, err := ebs.ImportKeyPair(ctx, client, name, pair.Public, tags)
		if err != nil {
			return halt(state, err)
		}
		kp = ebs.KeyPair{Name: name, ID: id, PrivateKey: pair.Private}
	} else {
		var err error
		if kp, err = ebs.CreateKeyPairOfType(ctx, client, name, keyType, tags); err != nil {
			return halt(state, err)
		}
	}
	b.keyPairName, b.keyPairID = name, kp.ID
	b.track(region, kp.ID)
	// The SDK's ssh_clear_authorized_keys removes the key by this name, the
	// comment EC2 gives it in authorized_keys.
	c.Comm.SSHTemporaryKeyPairName = name
	c.Comm.SSHKeyPairName = name
	c.Comm.SSHPrivateKey = kp.PrivateKey
	size := ""
	if keyType == "rsa" {
		size = fmt.Sprintf(" (%d bits)", max(bits, 2048))
	}
	detail(ui(state), fmt.Sprintf("Created temporary %s key pair %s%s", keyType, name, size))
	return multistep.ActionContinue
}

func (s *stepKeyPair) Cleanup(state multistep.StateBag) {
	b := getBuild(state)
	if b.keyPairName == "" {
		return
	}
	ctx, cancel := cleanupContext()
	defer cancel()
	if err := ebs.DeleteKeyPair(ctx, b.clients.EC2(b.config.RawRegion), b.keyPairName); err != nil {
		ui(state).Error(fmt.Sprintf("%v (delete it by hand)", err))
		return
	}
	detail(ui(state), "Deleted temporary key pair "+b.keyPairName)
	b.untrack(b.config.RawRegion, b.keyPairID)
	b.keyPairName, b.keyPairID = "", ""
}
