//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config

package copy

import (
	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// Config is the amicrypt-copy configuration.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`
	// The AWS region of the source AMI.
	Region string `mapstructure:"region"`
	ctx    interpolate.Context
}

// Prepare decodes and validates the configuration.
func (c *Config) Prepare(raws ...interface{}) error {
	return config.Decode(c, &config.DecodeOpts{PluginType: BuilderId, Interpolate: true, InterpolateContext: &c.ctx}, raws...)
}
