package ebs

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/uuid"
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
	out, err := b.clients.EC2(c.RawRegion).CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String(name)})
	if err != nil {
		return halt(state, fmt.Errorf("creating temporary key pair %s: %w", name, err))
	}
	b.keyPairName = name
	c.Comm.SSHKeyPairName = name
	c.Comm.SSHPrivateKey = []byte(aws.ToString(out.KeyMaterial))
	ui(state).Message("Created temporary key pair " + name)
	return multistep.ActionContinue
}

func (s *stepKeyPair) Cleanup(state multistep.StateBag) {
	b := getBuild(state)
	if b.keyPairName == "" {
		return
	}
	ctx, cancel := cleanupContext()
	defer cancel()
	if _, err := b.clients.EC2(b.config.RawRegion).DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String(b.keyPairName)}); err != nil {
		ui(state).Error(fmt.Sprintf("deleting temporary key pair %s: %v (delete it by hand)", b.keyPairName, err))
		return
	}
	ui(state).Message("Deleted temporary key pair " + b.keyPairName)
	b.keyPairName = ""
}
