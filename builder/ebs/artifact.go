package ebs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// Artifact is the encrypted AMI in the build region and its copies.
type Artifact struct {
	// Amis maps region → AMI ID.
	Amis map[string]string
	// KmsKeyARN is the key of the build region's AMI.
	KmsKeyARN string
	// RegionKMS maps each copy's region → key ARN.
	RegionKMS map[string]string
	SourceAMI string
	StateData map[string]interface{}

	clients Clients
}

func (a *Artifact) BuilderId() string { return BuilderId }

func (a *Artifact) Files() []string { return nil }

func (a *Artifact) regions() []string {
	regions := make([]string, 0, len(a.Amis))
	for r := range a.Amis {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	return regions
}

// Id is "region:ami-…" pairs, sorted, comma-joined.
func (a *Artifact) Id() string {
	parts := make([]string, 0, len(a.Amis))
	for _, r := range a.regions() {
		parts = append(parts, r+":"+a.Amis[r])
	}
	return strings.Join(parts, ",")
}

func (a *Artifact) keyFor(region string) string {
	if k, ok := a.RegionKMS[region]; ok {
		return k
	}
	return a.KmsKeyARN
}

func (a *Artifact) String() string {
	var b strings.Builder
	b.WriteString("Encrypted AMIs were created:\n")
	for _, r := range a.regions() {
		fmt.Fprintf(&b, "%s: %s (encrypted under %s)\n", r, a.Amis[r], a.keyFor(r))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func (a *Artifact) State(name string) interface{} {
	switch name {
	case "atlas.artifact.metadata":
		md := map[string]string{}
		for r, id := range a.Amis {
			md[fmt.Sprintf("region.%s", r)] = id
		}
		return md
	case registryimage.ArtifactStateURI:
		imgs, err := registryimage.FromMappedData(a.Amis, func(k, v interface{}) (*registryimage.Image, error) {
			region, id := k.(string), v.(string)
			return &registryimage.Image{
				ImageID: id, ProviderName: "aws", ProviderRegion: region, SourceImageID: a.SourceAMI,
				Labels: map[string]string{"kms_key_arn": a.keyFor(region), "encrypted": "true"},
			}, nil
		})
		if err != nil {
			return nil
		}
		return imgs
	}
	if a.StateData == nil {
		return nil
	}
	return a.StateData[name]
}

// Destroy deregisters every AMI and deletes its snapshots.
func (a *Artifact) Destroy() error {
	if a.clients == nil {
		return errors.New("artifact has no AWS clients (was it restored from JSON?)")
	}
	var errs []error
	for _, r := range a.regions() {
		if err := ebs.DeleteImageAndSnapshots(context.Background(), a.clients.EC2(r), a.Amis[r]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r, err))
		}
	}
	return errors.Join(errs...)
}
