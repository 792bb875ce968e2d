package copy

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/packer"
)

// Builder IDs of artifacts known to hold AMIs as region:ami-… pairs.
var knownBuilderIDs = []string{
	"amicrypt.ebs",
	"mitchellh.amazonebs",
	"mitchellh.amazon.ebssurrogate",
	"mitchellh.amazon.chroot",
	"mitchellh.amazon.instance",
}

// amiPairPattern is region:ami-ID; an AMI ID has 8 or 17 hex digits
// (ebs.ValidAMIID).
var amiPairPattern = regexp.MustCompile(`^([a-z]{2}(?:-[a-z]+)+-\d{1,2}):(ami-(?:[0-9a-f]{8}|[0-9a-f]{17}))$`)

// sourceAMI is one AMI of the input artifact.
type sourceAMI struct {
	Region  string
	ImageID string
}

// parseArtifact reads the AMIs of an input artifact: any artifact whose Id()
// is comma-separated region:ami-… pairs, one per region.
func parseArtifact(a packer.Artifact) ([]sourceAMI, error) {
	builderID := a.BuilderId()
	id := a.Id()
	known := ""
	for _, k := range knownBuilderIDs {
		if k == builderID {
			known = " (a known AMI builder)"
		}
	}
	if strings.TrimSpace(id) == "" {
		return nil, fmt.Errorf("amicrypt-copy: the artifact of builder %q%s has no ID, so there is no AMI to copy; feed amicrypt-copy the artifact of amicrypt-ebs or an Amazon builder (%s)", builderID, known, strings.Join(knownBuilderIDs, ", "))
	}
	var out []sourceAMI
	seen := map[string]string{}
	for _, pair := range strings.Split(id, ",") {
		m := amiPairPattern.FindStringSubmatch(strings.TrimSpace(pair))
		if m == nil {
			return nil, fmt.Errorf("amicrypt-copy: the artifact of builder %q%s has ID %q, which is not region:ami-… pairs; amicrypt-copy takes AMIs from amicrypt-ebs or an Amazon builder (%s)", builderID, known, id, strings.Join(knownBuilderIDs, ", "))
		}
		if prev, dup := seen[m[1]]; dup {
			return nil, fmt.Errorf("amicrypt-copy: the artifact of builder %q lists two AMIs in %s (%s and %s); amicrypt-copy copies one AMI per region", builderID, m[1], prev, m[2])
		}
		seen[m[1]] = m[2]
		out = append(out, sourceAMI{Region: m[1], ImageID: m[2]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Region < out[j].Region })
	return out, nil
}
