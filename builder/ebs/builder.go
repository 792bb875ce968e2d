// Package ebs is the amicrypt-ebs builder: it launches and provisions like
// amazon-ebs, then registers an AMI only from snapshots encrypted under a
// customer-managed KMS key.
package ebs

import (
	"context"
	"errors"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/packer"
)

// BuilderId identifies artifacts made by this builder.
const BuilderId = "amicrypt.ebs"

// Builder is the amicrypt-ebs builder.
type Builder struct {
	config Config
}

func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	return nil, nil, b.config.Prepare(raws...)
}

func (b *Builder) Run(ctx context.Context, ui packer.Ui, hook packer.Hook) (packer.Artifact, error) {
	return nil, errors.New("amicrypt-ebs: not implemented yet")
}
