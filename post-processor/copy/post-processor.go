// Package copy is the amicrypt-copy post-processor: it copies an AMI into
// many accounts and regions, each copy re-encrypted under that account's key.
package copy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/fanout"
)

// BuilderId identifies artifacts made by this post-processor.
const BuilderId = "amicrypt.copy"

// PostProcessor is the amicrypt-copy post-processor.
type PostProcessor struct {
	config Config
	// retry is the backoff for quotas and grant propagation; tests shorten it.
	retry fanout.Backoff
}

func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Configure validates the template, without any API call.
func (p *PostProcessor) Configure(raws ...interface{}) error { return p.config.Prepare(raws...) }

// PostProcess plans and checks every copy, then shares, copies, finishes
// and cleans up. The input artifact is kept: amicrypt-copy never owns it.
func (p *PostProcessor) PostProcess(ctx context.Context, ui packer.Ui, in packer.Artifact) (packer.Artifact, bool, bool, error) {
	started := time.Now()
	amis, err := parseArtifact(in)
	if err != nil {
		return nil, true, true, err
	}
	region := p.config.RawRegion
	if region == "" {
		region = amis[0].Region
	}
	sess, err := newSession(ctx, &p.config.AccessConfig, region)
	if err != nil {
		return nil, true, true, fmt.Errorf("amicrypt-copy: %w", err)
	}
	if p.config.RawRegion == "" {
		p.config.RawRegion = region
	}

	ui.Say(fmt.Sprintf("amicrypt-copy: planning copies of %s for %d target account(s), as %s", in.Id(), len(p.config.Targets), sess.SourcePrincipal))
	pl, err := p.config.preflight(ctx, sess, amis)
	if err != nil {
		return nil, true, true, fmt.Errorf("amicrypt-copy: preflight: %w", err)
	}
	if len(pl.problems) > 0 {
		return nil, true, true, &PreflightError{Problems: pl.problems}
	}
	ui.Say(fmt.Sprintf("amicrypt-copy: preflight passed: %d copies planned", len(pl.jobs)))

	r := &runner{cfg: &p.config, ui: ui, plan: pl, poll: p.config.PollingConfig, retry: p.retry, runID: strconv.FormatInt(started.UnixNano(), 36), waiters: map[string]*ebs.ImageWaiter{}}
	runErr := r.execute(ctx)

	art := r.artifact()
	ui.Say("amicrypt-copy: summary\n" + summaryTable(art.Copies))
	if p.config.ManifestOutput != "" {
		m := Manifest{SourceAccount: sess.SourceAccount, OnFailure: p.config.OnFailure, Started: started, Finished: time.Now(), Copies: art.Copies}
		for _, a := range amis {
			m.SourceAMIs = append(m.SourceAMIs, a.Region+":"+a.ImageID)
		}
		for _, c := range art.Copies {
			if c.State == "available" {
				m.Succeeded++
			} else {
				m.Failed++
			}
		}
		if runErr != nil {
			m.Error = runErr.Error()
		}
		if err := writeManifest(p.config.ManifestOutput, m); err != nil {
			runErr = errors.Join(runErr, err)
		} else {
			ui.Say("amicrypt-copy: manifest written to " + p.config.ManifestOutput)
		}
	}
	if runErr != nil {
		if art.Id() == "" {
			return nil, true, true, fmt.Errorf("amicrypt-copy: %w", runErr)
		}
		return art, true, true, fmt.Errorf("amicrypt-copy: %w", runErr)
	}
	return art, true, true, nil
}
