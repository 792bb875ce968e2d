// Package ebs is the amicrypt-ebs builder: it launches and provisions like
// amazon-ebs, then registers an AMI only from snapshots encrypted under a customer-managed KMS key.
package ebs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/uuid"
)

// BuilderId identifies artifacts made by this builder.
const BuilderId = "amicrypt.ebs"

// Builder is the amicrypt-ebs builder.
type Builder struct {
	config Config
	// clients replaces the AWS clients in tests; nil means real ones.
	clients Clients
}

func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	return b.config.Prepare(raws...)
}

func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	clients := b.clients
	if clients == nil {
		access := &b.config.AccessConfig
		cfg, err := access.Config(ctx)
		if err != nil {
			return nil, err
		}
		clients = newAWSClients(cfg, access.EC2Options())
	}
	leaseFor, err := leaseDuration()
	if err != nil {
		return nil, err
	}
	build := &buildState{config: &b.config, clients: clients, runID: uuid.TimeOrderedUUID()}
	build.lease = newLease(build.runID, b.config.templateID(), leaseFor)
	// The lease is renewed while the build runs; what a dead build made is
	// removed by a later run (step_reap.go).
	renewCtx, stopRenewing := context.WithCancel(context.Background())
	defer stopRenewing()
	go build.lease.keepRenewing(renewCtx, clients, func(err error) {
		ui.Error(fmt.Sprintf("renewing the build's lease: %v (will try again)", err))
	})
	state := new(multistep.BasicStateBag)
	state.Put("build", build)
	state.Put("config", &b.config)
	state.Put("hook", hook)
	state.Put("ui", ui)

	runner := commonsteps.NewRunner(b.steps(), b.config.PackerConfig, ui)
	runner.Run(ctx, state)

	var failure error
	if err, ok := state.GetOk("error"); ok {
		failure = err.(error)
	} else if _, ok := state.GetOk(multistep.StateCancelled); ok {
		failure = errors.New("build was cancelled")
	} else if _, ok := state.GetOk(multistep.StateHalted); ok {
		failure = errors.New("build was halted")
	}
	if failure != nil {
		if len(build.leftovers) > 0 {
			failure = fmt.Errorf("%w; cleanup incomplete, still there: %s (remove them by hand; a later build removes them once their lease expires)",
				failure, strings.Join(build.leftovers, ", "))
		}
		return nil, failure
	}
	amis := build.amiSnapshot()
	if len(amis) == 0 {
		if b.config.SkipCreateAMI {
			// As amazon-ebs: no AMI, no artifact.
			ui.Say("skip_create_ami: no AMI was made")
			return nil, nil
		}
		return nil, fmt.Errorf("build finished without an AMI")
	}
	return &Artifact{
		Amis:      amis,
		KmsKeyARN: build.keyARN,
		RegionKMS: build.regionKeys,
		SourceAMI: *build.source.ImageId,
		clients:   clients,
		StateData: map[string]interface{}{"generated_data": state.Get("generated_data")},
	}, nil
}

// steps is the build flow; see docs/builders/ebs.mdx.
func (b *Builder) steps() []multistep.Step {
	c := &b.config
	steps := []multistep.Step{&stepPreflight{}, &stepReap{}, &stepSweep{}, &stepSourceAMIInfo{}}
	if c.SkipLaunch {
		// No instance: provisioners that need none (shell-local, …) still run.
		steps = append(steps, &commonsteps.StepProvision{})
	} else {
		var run multistep.Step = &stepRunInstance{}
		if c.spot() {
			run = &stepRunSpotInstance{}
		}
		steps = append(steps,
			&stepNetwork{},
			&stepKeyPair{},
			&stepSecurityGroup{},
			run,
			&stepGetPassword{},
			&stepSSMTunnel{},
			&communicator.StepConnect{
				Config:    &c.Comm,
				Host:      instanceHost,
				SSHPort:   instancePort,
				WinRMPort: instancePort,
				SSHConfig: c.Comm.SSHConfigFunc(),
			},
			&commonsteps.StepProvision{},
			// ssh_clear_authorized_keys: the SDK's step removes the
			// temporary key by its name.
			&commonsteps.StepCleanupTempKeys{Comm: &c.Comm},
			&stepStopInstance{},
		)
	}
	if c.SkipCreateAMI {
		return steps
	}
	return append(steps,
		&stepCreateSnapshots{},
		&stepEncryptSnapshots{},
		&stepDeregister{},
		&stepRegisterImage{},
		&stepCopyRegions{},
		&stepSkipSaveBuildRegion{},
		&stepShare{},
		&stepRelease{},
	)
}
