// Package copy is the amicrypt-copy post-processor: it copies an AMI into
// many accounts and regions, each copy re-encrypted under that account's key.
package copy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/packer"

	builderebs "github.com/amicrypt/packer-plugin-amicrypt/builder/ebs"
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
// and cleans up. The input artifact is kept: amicrypt-copy never owns it,
// and it asks the builder's artifact to outlive even a failed run.
func (p *PostProcessor) PostProcess(ctx context.Context, ui packer.Ui, artifact packer.Artifact) (packer.Artifact, bool, bool, error) {
	in, err := p.input(artifact)
	if err != nil {
		return nil, true, true, err
	}
	art, sess, err := p.run(ctx, ui, in)
	if err != nil {
		p.reportInput(ctx, ui, in, sess)
	}
	if art == nil || art.Id() == "" {
		return nil, true, true, err
	}
	return art, true, true, err
}

// input is what a run copies from.
type input struct {
	amis []sourceAMI // empty until source_ami_filter is resolved
	// builderID is the input artifact's builder; "" when the AMI comes from
	// source_ami or source_ami_filter.
	builderID string
	// kept is the input artifact's answer to State(builderebs.KeepState): the
	// region:ami-… pairs its builder keeps whatever Packer does next, ""
	// when it did not answer (a builder other than amicrypt-ebs).
	kept string
}

// input reads the AMIs to copy from the artifact, or from source_ami. An
// artifact of amicrypt-ebs is asked at once to keep its AMIs: Packer
// destroys a builder's artifact after a failed post-processor, and
// amicrypt-copy promises its input survives (docs/aws-behaviour.md).
func (p *PostProcessor) input(artifact packer.Artifact) (input, error) {
	if p.config.fromConfig() {
		if amis, err := parseArtifact(artifact); err == nil {
			// Refused, but the build's AMI must not pay for the mistake.
			artifact.State(builderebs.KeepState)
			var pairs []string
			for _, a := range amis {
				pairs = append(pairs, a.Region+":"+a.ImageID)
			}
			return input{}, fmt.Errorf("amicrypt-copy: source_ami or source_ami_filter is set, yet the input artifact of builder %q carries AMIs (%s); "+
				"amicrypt-copy copies one or the other: remove source_ami and source_ami_filter to copy the build's AMIs, or run amicrypt-copy behind the null builder",
				artifact.BuilderId(), strings.Join(pairs, ", "))
		}
		in := input{}
		if p.config.SourceAMI != "" {
			in.amis = []sourceAMI{{Region: p.config.RawRegion, ImageID: p.config.SourceAMI}}
		}
		return in, nil
	}
	amis, err := parseArtifact(artifact)
	if err != nil {
		return input{}, err
	}
	in := input{amis: amis, builderID: artifact.BuilderId()}
	if kept, ok := artifact.State(builderebs.KeepState).(string); ok {
		in.kept = kept
	}
	return in, nil
}

// run is one amicrypt-copy run; it returns the session it made (nil if none),
// for the report on the input that follows a failure.
func (p *PostProcessor) run(ctx context.Context, ui packer.Ui, in input) (*Artifact, *session, error) {
	started := time.Now()
	region := p.config.RawRegion
	if region == "" {
		region = in.amis[0].Region
	}
	sess, err := newSession(ctx, &p.config.AccessConfig, p.config.PollingConfig, region)
	if err != nil {
		return nil, nil, fmt.Errorf("amicrypt-copy: %w", err)
	}
	if p.config.RawRegion == "" {
		p.config.RawRegion = region
	}
	amis := in.amis
	what := ""
	switch {
	case !p.config.SourceAMIFilter.Empty():
		img, err := ebs.FindImageByFilter(ctx, sess.Source(region).EC2, p.config.SourceAMIFilter)
		if err != nil {
			return nil, sess, fmt.Errorf("amicrypt-copy: source_ami_filter in %s: %w", region, err)
		}
		amis = []sourceAMI{{Region: region, ImageID: *img.ImageId}}
		what = fmt.Sprintf("%s:%s (source_ami_filter found %q)", region, *img.ImageId, derefName(img.Name))
	case p.config.SourceAMI != "":
		what = region + ":" + p.config.SourceAMI + " (source_ami)"
	default:
		var pairs []string
		for _, a := range amis {
			pairs = append(pairs, a.Region+":"+a.ImageID)
		}
		what = strings.Join(pairs, ",")
	}

	ui.Say(fmt.Sprintf("amicrypt-copy: planning copies of %s for %d target account(s), as %s", what, len(p.config.Targets), sess.SourcePrincipal))
	say := func(format string, args ...any) { ui.Say("amicrypt-copy: " + fmt.Sprintf(format, args...)) }
	pl, err := p.config.preflight(ctx, sess, amis, say)
	if err != nil {
		return nil, sess, fmt.Errorf("amicrypt-copy: preflight: %w", err)
	}
	// What dead earlier runs lent is taken back whatever this run does.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	reclaimed := p.config.reclaim(rctx, pl, say)
	cancel()
	if len(pl.problems) > 0 {
		perr := &PreflightError{Problems: pl.problems}
		if p.config.ManifestOutput != "" {
			m := Manifest{SourceAccount: sess.SourceAccount, Run: pl.run, Template: pl.template, OnFailure: p.config.OnFailure,
				Started: started, Finished: time.Now(), Copies: []Copy{}, Reclaimed: reclaimed, Error: perr.Error()}
			for _, a := range amis {
				m.SourceAMIs = append(m.SourceAMIs, a.Region+":"+a.ImageID)
			}
			if err := writeManifest(p.config.ManifestOutput, m); err != nil {
				return nil, sess, errors.Join(perr, err)
			}
		}
		return nil, sess, perr
	}
	ui.Say(fmt.Sprintf("amicrypt-copy: preflight passed: %d copies planned (run %s, template %s)", len(pl.jobs), pl.run, pl.template))

	r := newRunner(&p.config, ui, pl, p.retry)
	runErr := r.execute(ctx)

	art := r.artifact()
	ui.Say("amicrypt-copy: summary\n" + summaryTable(art.Copies))
	if p.config.ManifestOutput != "" {
		m := Manifest{SourceAccount: sess.SourceAccount, Run: pl.run, Template: pl.template, OnFailure: p.config.OnFailure,
			Started: started, Finished: time.Now(), Copies: art.Copies, Reclaimed: reclaimed, Cleanup: r.records}
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
		return art, sess, fmt.Errorf("amicrypt-copy: %w", runErr)
	}
	return art, sess, nil
}

func derefName(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// reportTimeout bounds the read-back of the input after a failure; it runs
// after Ctrl-C too, so with a context of its own.
const reportTimeout = time.Minute

// reportInput says, after a failed run, what becomes of the input AMIs: kept
// (read back where possible) when their builder confirmed it keeps them,
// otherwise that Packer may now destroy them.
func (p *PostProcessor) reportInput(ctx context.Context, ui packer.Ui, in input, sess *session) {
	if in.builderID == "" {
		return // source_ami: an AMI amicrypt-copy only read; nothing destroys it
	}
	var pairs []string
	for _, a := range in.amis {
		pairs = append(pairs, a.Region+":"+a.ImageID)
	}
	if in.kept == "" {
		ui.Say(fmt.Sprintf("amicrypt-copy: builder %q did not confirm it keeps %s; after a failed post-processor Packer destroys the builder's artifact "+
			"unless another post-processor block kept it, so check that the AMI still exists before a rerun", in.builderID, strings.Join(pairs, ", ")))
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	for _, a := range in.amis {
		state := "amicrypt-ebs keeps it"
		if sess != nil {
			img, err := ebs.FindImageByID(rctx, sess.Source(a.Region).EC2, a.ImageID)
			if err != nil {
				state += fmt.Sprintf(", but reading it back failed: %v", err)
			} else {
				state = fmt.Sprintf("read back just now: %s, snapshots %s; amicrypt-ebs keeps it", img.State, strings.Join(ebs.ImageSnapshotIDs(img), ", "))
			}
		}
		ui.Say(fmt.Sprintf("amicrypt-copy: the build's AMI %s in %s is kept (%s). To finish only the copies, run amicrypt-copy behind the null builder "+
			"with source_ami = %q and region = %q: copies already made are reused", a.ImageID, a.Region, state, a.ImageID, a.Region))
	}
}
