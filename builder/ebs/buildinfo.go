package ebs

import (
	"fmt"
	"sort"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// BuildInfo is the data tags, run tags and ami_description are rendered
// with when the build runs: amazon-ebs's build template data, so
// `{{ .SourceAMIName }}` means the same in both.
type BuildInfo struct {
	BuildRegion           string
	SourceAMI             string
	SourceAMICreationDate string
	SourceAMIName         string
	SourceAMIOwner        string
	SourceAMIOwnerName    string
	SourceAMITags         map[string]string
}

func newBuildInfo(region string, src *types.Image) *BuildInfo {
	return &BuildInfo{
		BuildRegion: region, SourceAMI: aws.ToString(src.ImageId), SourceAMICreationDate: aws.ToString(src.CreationDate),
		SourceAMIName: aws.ToString(src.Name), SourceAMIOwner: aws.ToString(src.OwnerId), SourceAMIOwnerName: aws.ToString(src.ImageOwnerAlias),
		SourceAMITags: ebs.TagMap(src.Tags),
	}
}

// renderedTags are the tag maps and the description after rendering.
type renderedTags struct {
	ami, snapshot, run, volume, spot, fleet map[string]string
	description                             string
}

// render renders the template fields excluded from Prepare's interpolation
// with the build's data (legacy JSON's {{user}} and the other template
// functions included) and checks the tags again, now that they are known.
func (c *Config) render(info *BuildInfo) (renderedTags, error) {
	ictx := c.ctx
	ictx.Data = info
	var out renderedTags
	var err error
	renderMap := func(field string, m map[string]string) map[string]string {
		if err != nil {
			return nil
		}
		r := make(map[string]string, len(m))
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			rk, kerr := interpolate.Render(k, &ictx)
			rv, verr := interpolate.Render(m[k], &ictx)
			if kerr != nil || verr != nil {
				err = fmt.Errorf("%s: rendering tag %q = %q: %w", field, k, m[k], firstNonNil(kerr, verr))
				return nil
			}
			r[rk] = rv
		}
		if errs := checkTags(field, r); len(errs) > 0 {
			err = fmt.Errorf("%w (after rendering the template)", errs[0])
		}
		return r
	}
	out.ami = renderMap("tags", c.AMITags)
	out.snapshot = renderMap("snapshot_tags", c.SnapshotTags)
	out.run = renderMap("run_tags", c.RunTags)
	out.volume = renderMap("run_volume_tags", c.RunVolumeTags)
	out.spot = renderMap("spot_tags", c.SpotTags)
	out.fleet = renderMap("fleet_tags", c.FleetTags)
	if err != nil {
		return out, err
	}
	if out.description, err = interpolate.Render(c.AMIDescription, &ictx); err != nil {
		return out, fmt.Errorf("ami_description: rendering %q: %w", c.AMIDescription, err)
	}
	if n := utf8.RuneCountInString(out.description); n > maxDescription {
		return out, fmt.Errorf("ami_description: renders to %d characters; AWS takes an AMI description of at most %d: shorten it", n, maxDescription)
	}
	return out, nil
}

func firstNonNil(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// merged returns the union of maps, later ones winning.
func merged(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
