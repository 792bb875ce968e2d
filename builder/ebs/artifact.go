package ebs

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sort"
	"strings"
	"sync"

	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// KeepState is the State name through which a post-processor asks the
// artifact to keep its AMIs. Packer destroys the builder's artifact when a
// post-processor fails, whatever the post-processors said about keeping
// their input (docs/aws-behaviour.md); amicrypt-copy never owns its input,
// so it asks, before it does anything, that the AMIs outlive that Destroy.
// The builder's artifact and amicrypt-copy run in two plugin processes, and
// State is the one artifact call that carries a word from the caller:
// Packer relays it to this very artifact, whose Destroy then keeps the AMIs.
// The answer is the artifact's ID (region:ami-… pairs), the AMIs it keeps.
const KeepState = "amicrypt.keep"

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

	mu sync.Mutex
	// kept is set when a post-processor asked, through State(KeepState),
	// that the AMIs outlive Destroy.
	kept bool
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
		fmt.Fprintf(&b, "%s: %s (read back: every snapshot encrypted under %s)\n", r, a.Amis[r], a.keyFor(r))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func (a *Artifact) State(name string) interface{} {
	switch name {
	case KeepState:
		a.mu.Lock()
		a.kept = true
		a.mu.Unlock()
		return a.Id()
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
				Labels: map[string]string{"kms_key_arn": a.keyFor(region), "encrypted": "true", "verified": "true"},
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

// Destroy deregisters every AMI and deletes its snapshots, unless a
// post-processor asked to keep them (KeepState): then it changes nothing.
func (a *Artifact) Destroy() error {
	a.mu.Lock()
	kept := a.kept
	a.mu.Unlock()
	if kept {
		// Destroy has no UI; the post-processor that asked says it, and
		// Packer's log (PACKER_LOG=1) gets this line.
		log.Printf("amicrypt-ebs: keeping %s with its snapshots: a post-processor asked to keep it", a.Id())
		return nil
	}
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
