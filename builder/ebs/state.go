package ebs

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// buildState is what the steps share, kept in the state bag under "build"
// so each step reads typed fields instead of string keys.
type buildState struct {
	config  *Config
	clients Clients
	runID   string // unique per build, for idempotency tokens

	account     string
	principal   string // the caller's ARN, from preflight
	source      *types.Image
	keyARN      string            // build region key
	regionKeys  map[string]string // ami_regions → key ARN
	keyPairName string
	keyPairID   string
	tempSGID    string
	instance    *types.Instance

	// lease covers what the run makes (lease.go); tags are the rendered
	// tag maps (buildinfo.go).
	lease *lease
	info  *BuildInfo
	tags  renderedTags

	// The build instance's network (step_network.go).
	vpc            *types.Vpc
	subnetID       string
	zone           string
	securityGroups []string
	// publicSubnet: the subnet gives instances a public IP on launch.
	publicSubnet bool
	// sessionPort is the local end of the session_manager tunnel.
	sessionPort int
	// launchVolumes are volumes of the instance that outlive it
	// (delete_on_termination false), deleted after it terminates.
	launchVolumes []string

	sourceSnapshots []sourceSnapshot
	// copySourceImage: skip_launch with source snapshots this account can't
	// read (e.g. Amazon's public AMIs): the only launch-free way is an
	// encrypted CopyImage of the source AMI itself.
	copySourceImage bool
	encrypted       map[string]string // device name → encrypted snapshot ID

	mu   sync.Mutex
	amis map[string]string // region → AMI ID
	// imageSnapshots are the snapshots of the registered AMIs, kept on success.
	imageSnapshots map[string]bool
	// leftovers: what a failed build's last cleanup (stepSweep) found of
	// the run and could not remove.
	leftovers []string
}

// sourceSnapshot is one EBS device of the AMI to be: its snapshot before
// re-encryption and the volume settings to register.
type sourceSnapshot struct {
	Device              string
	SnapshotID          string
	Created             bool // made by this build (an intermediate snapshot)
	Encrypted           bool
	KmsKeyID            string
	VolumeSize          *int32
	VolumeType          types.VolumeType
	Iops                *int32
	Throughput          *int32
	DeleteOnTermination *bool
}

func getBuild(state multistep.StateBag) *buildState { return state.Get("build").(*buildState) }

// leaseTags are the lease's tags merged over tags (nil lease: tags alone).
func (b *buildState) leaseTags(tags map[string]string) map[string]string {
	if b.lease == nil {
		return tags
	}
	return merged(tags, b.lease.tags())
}

func (b *buildState) track(region string, ids ...string) {
	if b.lease != nil {
		b.lease.track(region, ids...)
	}
}

func (b *buildState) untrack(region string, ids ...string) {
	if b.lease != nil {
		b.lease.untrack(region, ids...)
	}
}

func (b *buildState) setAMI(region, id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.amis == nil {
		b.amis = map[string]string{}
	}
	b.amis[region] = id
}

func (b *buildState) ami(region string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.amis[region]
}

func (b *buildState) removeAMI(region string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.amis, region)
}

func (b *buildState) amiSnapshot() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]string, len(b.amis))
	for k, v := range b.amis {
		out[k] = v
	}
	return out
}

// failed reports whether the build is being abandoned (error or interrupt),
// which is when Cleanup must remove what Run made for the final artifact.
func failed(state multistep.StateBag) bool {
	_, cancelled := state.GetOk(multistep.StateCancelled)
	_, halted := state.GetOk(multistep.StateHalted)
	return cancelled || halted
}

// cleanupTimeout bounds each step's cleanup; it runs after ctx is cancelled
// on interrupt, so it uses a context of its own.
const cleanupTimeout = 30 * time.Minute

func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), cleanupTimeout)
}

func halt(state multistep.StateBag, err error) multistep.StepAction {
	state.Put("error", err)
	ui(state).Error(err.Error())
	return multistep.ActionHalt
}

func ui(state multistep.StateBag) packersdk.Ui { return state.Get("ui").(packersdk.Ui) }

// detail prints msg as a detail line under the current step. Packer core
// still indents Message lines under the "==> " of Say lines, so Say would turn
// every detail into a step heading; the SDK's deprecation of Message (use Say)
// would change the output, hence the one exemption here.
func detail(u packersdk.Ui, msg string) {
	u.Message(msg) //nolint:staticcheck // SA1019: see the comment above
}
