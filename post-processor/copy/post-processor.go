// Package copy is the amicrypt-copy post-processor: it copies an AMI into
// many accounts and regions, each copy re-encrypted under that account's key.
package copy

import (
	"context"
	"errors"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/packer"
)

// BuilderId identifies artifacts made by this post-processor.
const BuilderId = "amicrypt.copy"

// PostProcessor is the amicrypt-copy post-processor.
type PostProcessor struct {
	config Config
}

func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

func (p *PostProcessor) Configure(raws ...interface{}) error { return p.config.Prepare(raws...) }

func (p *PostProcessor) PostProcess(ctx context.Context, ui packer.Ui, a packer.Artifact) (packer.Artifact, bool, bool, error) {
	return nil, false, false, errors.New("amicrypt-copy: not implemented yet")
}
