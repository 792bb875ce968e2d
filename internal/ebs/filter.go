//go:generate go tool packer-sdc mapstructure-to-hcl2 -type AMIFilter
// packer-sdc struct-markdown finds the project root by a parent directory
// named packer-plugin-* and loops forever without one, so it runs through a
// symlink with that name.
//go:generate sh -c "ln -sfn \"$(dirname $(go env GOMOD))\" \"${TMPDIR:-/tmp}/packer-plugin-amicrypt\" && cd \"${TMPDIR:-/tmp}/packer-plugin-amicrypt/internal/ebs\" && go tool packer-sdc struct-markdown"

package ebs

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// AMIFilter finds an AMI by filters, like the Amazon plugin's
// `source_ami_filter`.
//
// ```hcl
//
//	source_ami_filter {
//	  filters     = { name = "al2023-ami-2023.*-x86_64" }
//	  owners      = ["amazon"]
//	  most_recent = true
//	}
//
// ```
type AMIFilter struct {
	// DescribeImages filters, e.g. `name = "al2023-ami-2023.*-x86_64"`.
	Filters map[string]string `mapstructure:"filters" required:"false"`
	// Owners of the image: account IDs, `self` or `amazon`. Required with filters.
	Owners []string `mapstructure:"owners" required:"false"`
	// Take the newest of several matches. Without it, several matches are an error.
	MostRecent bool `mapstructure:"most_recent" required:"false"`
	// Match deprecated images too (DescribeImages IncludeDeprecated), as
	// amazon-ebs's include_deprecated. Without it a deprecated image is not
	// found.
	IncludeDeprecated bool `mapstructure:"include_deprecated" required:"false"`
}

// Empty reports whether no filter is set.
func (f AMIFilter) Empty() bool { return len(f.Filters) == 0 && len(f.Owners) == 0 }

// Validate checks a filter given as field, without any API call.
func (f AMIFilter) Validate(field string) error {
	if !f.Empty() && len(f.Owners) == 0 {
		return fmt.Errorf(`%s.owners: not set; name the image owners, e.g. owners = ["amazon"] or ["self"], so no stranger's image matches`, field)
	}
	return nil
}

// FindImageByFilter returns the one image the filter matches (the newest
// with MostRecent). The errors say which filters matched nothing or too
// much, for the caller to prefix with its field name.
func FindImageByFilter(ctx context.Context, client EC2API, f AMIFilter) (*types.Image, error) {
	if f.Empty() {
		return nil, errors.New("no filters given")
	}
	imgs, err := findImages(ctx, client, f.Owners, f.Filters, f.IncludeDeprecated)
	if err != nil {
		return nil, err
	}
	switch {
	case len(imgs) == 0:
		return nil, fmt.Errorf("no image matches filters %v owned by %v; loosen the filters or fix the owners", f.Filters, f.Owners)
	case len(imgs) > 1 && !f.MostRecent:
		var ids []string
		for _, img := range imgs {
			ids = append(ids, aws.ToString(img.ImageId))
		}
		return nil, fmt.Errorf("%d images match filters %v (%v); narrow the filters or set most_recent = true", len(imgs), f.Filters, ids)
	}
	return &imgs[0], nil
}
