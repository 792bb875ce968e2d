// packer-sdc struct-markdown documents the structs of one file ($GOFILE),
// through the packer-plugin-* symlink config.go explains.
//go:generate sh -c "ln -sfn \"$(dirname $(go env GOMOD))\" \"${TMPDIR:-/tmp}/packer-plugin-amicrypt\" && cd \"${TMPDIR:-/tmp}/packer-plugin-amicrypt/builder/ebs\" && go tool packer-sdc struct-markdown"

package ebs

import (
	"github.com/hashicorp/packer-plugin-sdk/template/config"
)

// The blocks of amazon-ebs that amicrypt-ebs shares, with amazon-ebs's names
// and shapes so templates carry over (packer-plugin-amazon v1.8.0,
// builder/common/run_config.go and builder/ebs/fast_launch_setup.go).

// SubnetFilter picks the subnet to launch in by filters.
type SubnetFilter struct {
	// DescribeSubnets filters, e.g. `"tag:Name" = "build"`.
	Filters map[string]string `mapstructure:"filters" required:"false"`
	// The same filters as repeatable `filter { name = … value = … }` blocks.
	Filter config.NameValues `mapstructure:"filter" required:"false"`
	// Of several matches, take the one with the most free IP addresses.
	MostFree bool `mapstructure:"most_free" required:"false"`
	// Of several matches, take one at random.
	Random bool `mapstructure:"random" required:"false"`
}

// ResourceFilter finds one resource (VPC, security groups) by filters.
type ResourceFilter struct {
	// Describe filters, e.g. `"tag:Class" = "build"`.
	Filters map[string]string `mapstructure:"filters" required:"false"`
	// The same filters as repeatable `filter { name = … value = … }` blocks.
	Filter config.NameValues `mapstructure:"filter" required:"false"`
}

// Empty reports whether no filter is set.
func (f ResourceFilter) Empty() bool { return len(f.Filters) == 0 && len(f.Filter) == 0 }

// MetadataOptions are the instance metadata service settings of the build
// instance (RunInstances MetadataOptions).
type MetadataOptions struct {
	// `enabled` (default) or `disabled`: whether the instance can reach IMDS.
	HttpEndpoint string `mapstructure:"http_endpoint" required:"false"`
	// `optional` (default, as amazon-ebs) or `required` (IMDSv2 only: every
	// request needs a session token). Use `required` unless the image's
	// software still uses IMDSv1.
	HttpTokens string `mapstructure:"http_tokens" required:"false"`
	// How many network hops a metadata response may travel, 1–64 (default 1).
	// Containers on the instance need 2.
	HttpPutResponseHopLimit int64 `mapstructure:"http_put_response_hop_limit" required:"false"`
	// `enabled` or `disabled` (default): the instance's tags in IMDS.
	InstanceMetadataTags string `mapstructure:"instance_metadata_tags" required:"false"`
}

// Placement places the build instance on a host or with a tenancy.
type Placement struct {
	// The ARN of a host resource group to launch into (tenancy `host`).
	HostResourceGroupArn string `mapstructure:"host_resource_group_arn" required:"false"`
	// The ID of a dedicated host to launch on (tenancy `host`).
	HostId string `mapstructure:"host_id" required:"false"`
	// `default`, `dedicated` or `host`.
	Tenancy string `mapstructure:"tenancy" required:"false"`
}

// LicenseConfigurationRequest names a License Manager license configuration.
type LicenseConfigurationRequest struct {
	// The ARN of the license configuration.
	LicenseConfigurationArn string `mapstructure:"license_configuration_arn" required:"false"`
}

// LicenseSpecification attaches a license configuration to the build instance.
type LicenseSpecification struct {
	// The license configuration.
	LicenseConfigurationRequest LicenseConfigurationRequest `mapstructure:"license_configuration_request" required:"false"`
}

// Statement is one statement of PolicyDocument.
type Statement struct {
	Effect   string   `mapstructure:"Effect" required:"false"`
	Action   []string `mapstructure:"Action" required:"false"`
	Resource []string `mapstructure:"Resource" required:"false"`
}

// PolicyDocument is amazon-ebs's temporary instance profile policy. It is
// decoded only to be refused with a reason (see RefusedFields).
type PolicyDocument struct {
	Version   string      `mapstructure:"Version" required:"false"`
	Statement []Statement `mapstructure:"Statement" required:"false"`
}

// FastLaunchTemplateConfig is amazon-ebs's per-region fast-launch template.
type FastLaunchTemplateConfig struct {
	EnableFastLaunch      bool   `mapstructure:"enable_fast_launch" required:"false"`
	Region                string `mapstructure:"region" required:"false"`
	LaunchTemplateID      string `mapstructure:"template_id" required:"false"`
	LaunchTemplateName    string `mapstructure:"template_name" required:"false"`
	LaunchTemplateVersion int    `mapstructure:"template_version" required:"false"`
}

// FastLaunchConfig is amazon-ebs's Windows fast-launch block. It is decoded
// only to be refused with a reason (see RefusedFields).
type FastLaunchConfig struct {
	UseFastLaunch         bool                       `mapstructure:"enable_fast_launch" required:"false"`
	LaunchTemplateID      string                     `mapstructure:"template_id" required:"false"`
	LaunchTemplateName    string                     `mapstructure:"template_name" required:"false"`
	LaunchTemplateVersion int                        `mapstructure:"template_version" required:"false"`
	RegionLaunchTemplates []FastLaunchTemplateConfig `mapstructure:"region_launch_templates" required:"false"`
	MaxParallelLaunches   int                        `mapstructure:"max_parallel_launches" required:"false"`
	TargetResourceCount   int                        `mapstructure:"target_resource_count" required:"false"`
}
