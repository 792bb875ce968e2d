package copy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// Copy is one copy the run made or found.
type Copy struct {
	Account   string `json:"account"`
	Region    string `json:"region"`
	ImageID   string `json:"ami_id,omitempty"`
	Name      string `json:"name,omitempty"`
	KeyARN    string `json:"kms_key_arn,omitempty"`
	SourceAMI string `json:"source_ami"`
	// SourceRegion is the region of the source AMI.
	SourceRegion string `json:"source_region"`
	State        string `json:"state"`
	Reason       string `json:"reason,omitempty"`
	Reused       bool   `json:"reused,omitempty"`
	// Verified says the copy was read back as its owner (DescribeImages,
	// then DescribeSnapshots) with every snapshot encrypted under KeyARN.
	Verified bool    `json:"verified"`
	Seconds  float64 `json:"duration_seconds"`
}

// Artifact lists the copies of one amicrypt-copy run.
type Artifact struct {
	Copies []Copy
	// SourceAccount owns the source AMI.
	SourceAccount string
	// destroy removes one copy; nil when the artifact was not made by a run.
	destroy func(ctx context.Context, c Copy) error
}

// BuilderId identifies amicrypt-copy artifacts.
func (a *Artifact) BuilderId() string { return BuilderId }

// Files is empty: the copies live in AWS.
func (a *Artifact) Files() []string { return nil }

// Id is account:region:ami-… for every copy that exists, sorted and
// comma-joined.
func (a *Artifact) Id() string {
	var ids []string
	for _, c := range a.existing() {
		ids = append(ids, c.Account+":"+c.Region+":"+c.ImageID)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

func (a *Artifact) existing() []Copy {
	var out []Copy
	for _, c := range a.Copies {
		if c.ImageID != "" && c.State != "rolled back" && c.State != "deleted" {
			out = append(out, c)
		}
	}
	return out
}

func (a *Artifact) String() string {
	var b strings.Builder
	b.WriteString("Encrypted AMI copies:\n")
	for _, c := range a.existing() {
		readBack := "not read back"
		if c.Verified {
			readBack = "read back"
		}
		fmt.Fprintf(&b, "%s %s: %s (%s, key %s, %s)\n", c.Account, c.Region, c.ImageID, c.State, c.KeyARN, readBack)
	}
	return b.String()
}

// State answers HCP Packer's registry with one image per copy, labelled
// with its account and key.
func (a *Artifact) State(name string) interface{} {
	if name != registryimage.ArtifactStateURI {
		return nil
	}
	var images []*registryimage.Image
	for _, c := range a.existing() {
		images = append(images, &registryimage.Image{
			ImageID: c.ImageID, ProviderName: "aws", ProviderRegion: c.Region, SourceImageID: c.SourceAMI,
			Labels: map[string]string{
				"account_id": c.Account, "kms_key_arn": c.KeyARN, "source_ami": c.SourceAMI,
				"source_account": a.SourceAccount, "source_region": c.SourceRegion, "verified": strconv.FormatBool(c.Verified),
			},
		})
	}
	return images
}

// Destroy deregisters every copy and deletes its snapshots.
func (a *Artifact) Destroy() error {
	if a.destroy == nil {
		return errors.New("amicrypt-copy: this artifact carries no credentials to destroy its copies")
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	var errs []error
	for i, c := range a.Copies {
		if c.ImageID == "" || c.State == "rolled back" || c.State == "deleted" {
			continue
		}
		if err := a.destroy(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("%s/%s %s: %w", c.Account, c.Region, c.ImageID, err))
			continue
		}
		a.Copies[i].State = "deleted"
	}
	return errors.Join(errs...)
}

// artifactOf turns the jobs of a run into its artifact.
func (r *runner) artifact() *Artifact {
	a := &Artifact{SourceAccount: r.plan.sess.SourceAccount}
	for _, j := range r.plan.jobs {
		a.Copies = append(a.Copies, j.copy())
	}
	sess := r.plan.sess
	targets := map[string]*target{}
	for _, t := range r.plan.targets {
		targets[t.Account] = t
	}
	poll := r.poll
	a.destroy = func(ctx context.Context, c Copy) error {
		t := targets[c.Account]
		if t == nil {
			return fmt.Errorf("no target for account %s", c.Account)
		}
		tc := sess.Target(t.Account, t.RoleARN, t.ExternalID, c.Region)
		return ebs.DeleteImageWhenSettled(ctx, tc.EC2, poll, c.ImageID)
	}
	return a
}

func (j *job) copy() Copy {
	c := Copy{
		Account: j.Target.Account, Region: j.Region, ImageID: j.ImageID, Name: j.Name, KeyARN: j.KeyARN,
		SourceAMI: j.Source.ImageID, SourceRegion: j.Source.Region,
		State: j.State, Reason: j.Reason, Reused: j.Existing != "" && j.Existing == j.ImageID, Verified: j.Verified,
	}
	if !j.Started.IsZero() && !j.Finished.IsZero() {
		c.Seconds = j.Finished.Sub(j.Started).Round(time.Millisecond).Seconds()
	}
	return c
}
