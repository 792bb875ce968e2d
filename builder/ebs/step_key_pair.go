package ebs

import (
	"context"
	"fmt"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/uuid"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepKeyPair creates a temporary key pair when the SSH communicator has no
// other way to log in.
type stepKeyPair struct{}

func needsTempKeyPair(c *Config) bool {
	cc := c.Comm
	return cc.Type == "ssh" && cc.SSHPrivateKeyFile == "" && cc.SSHKeyPairName == "" && cc.SSHPassword == "" && !cc.SSHAgentAuth
}

func (s *stepKeyPair) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	if !needsTempKeyPair(c) {
		return multistep.ActionContinue
	}
	name := c.Comm.SSHTemporaryKeyPairName
	if name == "" {
		name = "packer_amicrypt_" + uuid.TimeOrderedUUID()
	}
	privateKey, err := ebs.CreateKeyPair(ctx, b.clients.EC2(c.RawRegion), name)
	if err != nil {
		return halt(state, err)
	}
	b.keyPairName = name
	c.Comm.SSHKeyPairName = name
	c.Comm.SSHPrivateKey = []byte(privateKey)
	detail(ui(state), "Created temporary key pair "+name)
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
	b.keyPairName = ""
}
