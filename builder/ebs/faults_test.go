package ebs

// The fault suite: a whole amicrypt-ebs build against the emulator under
// its fault profiles and under changes made while the build runs (the key
// disabled, Ctrl-C…), each with its expected outcome. After every scenario
// the invariant checker passes (no leftover instance, key pair, security
// group or orphan snapshot; never an unencrypted AMI), nothing in any region
// still carries the build's lease, and a failed build leaves no AMI of its
// name anywhere.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// faultRegions are the regions a scenario looks into for leftovers.
var faultRegions = []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1"}

// buildFaultWant is a scenario's expected outcome.
type buildFaultWant struct {
	ok bool
	// regions: the regions of the AMIs a successful build makes (default:
	// the build region).
	regions []string
	// errHas: what the error of a failed build must say.
	errHas []string
	// says: lines the build's output must contain.
	says []string
	// calls: the build account's audited calls since the build began,
	// "Action" (all outcomes) or "Action:outcome" ("CopySnapshot:ok"; "*"
	// any action, "a|b" either outcome).
	calls map[string]int
	// atLeast: as calls, a lower bound (that the fault fired at all).
	atLeast map[string]int
	// preflight: the build was refused before it changed anything (only
	// Describe*, Get* and GetCallerIdentity calls).
	preflight bool
	// findings: invariant checker findings the build itself reports as
	// left behind (each resource named in its error).
	findings map[string]int
}

type buildFaultScenario struct {
	name  string
	rules []awsemu.FaultRule
	opts  func(*awsemu.Options)
	world func(*awsemu.World)
	// raw: with(...)'s key-value pairs over the suite's template.
	raw []interface{}
	// hookAt is a line of output at which act runs, once, as the build
	// account's administrator.
	hookAt string
	act    func(t *testing.T, srv *emutest.Server)
	// cancelAt is a line of output at which the build is interrupted
	// (Ctrl-C: the context Packer hands Run is cancelled).
	cancelAt string
	// holdAndCancel: the build is interrupted while its call of this action
	// is in flight (held by the emulator); the call then goes through, as
	// AWS serves a request whose client has gone.
	holdAndCancel string
	want          buildFaultWant
}

func TestBuildFaultScenarios(t *testing.T) {
	threeRegions := []interface{}{"ami_regions", []string{"us-west-2", "eu-west-1", "eu-central-1"}}
	oneRegion := []interface{}{"ami_regions", []string{"us-west-2"}}
	spot := []interface{}{"instance_type", nil, "spot_price", "auto", "spot_instance_types", []string{"t3.micro"}}
	scenarios := []buildFaultScenario{
		{name: "no fault", want: buildFaultWant{ok: true, calls: map[string]int{"RunInstances": 1, "CopySnapshot": 1, "RegisterImage": 1}}},

		// Throttling and transient errors: the SDK's retryer rides them out.
		// (Every 8th call of every service throttled: the adaptive retryer
		// slows its clients down, so this one takes seconds.)
		{name: "throttling on every action", rules: []awsemu.FaultRule{{Kind: awsemu.FaultThrottle, Every: 8}},
			want: buildFaultWant{ok: true, atLeast: map[string]int{"*:RequestLimitExceeded|ThrottlingException|Throttling": 3}}},
		{name: "InternalError burst on RunInstances", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultInternalError, Action: "RunInstances", Nth: []int{1, 2, 3}}},
			// One instance: the retries carry the same ClientToken.
			want: buildFaultWant{ok: true, calls: map[string]int{"RunInstances": 4, "RunInstances:ok": 1, "TerminateInstances:ok": 1}}},
		{name: "InternalError burst on CreateSnapshot", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultInternalError, Action: "CreateSnapshot", Nth: []int{1, 2}}},
			want: buildFaultWant{ok: true, calls: map[string]int{"CreateSnapshot": 3, "CreateSnapshot:ok": 1}}},
		{name: "InternalError burst on CopySnapshot", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultInternalError, Action: "CopySnapshot", Nth: []int{1, 2}}},
			want: buildFaultWant{ok: true, calls: map[string]int{"CopySnapshot": 3, "CopySnapshot:ok": 1}}},
		{name: "InternalError burst on RegisterImage", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultInternalError, Action: "RegisterImage", Nth: []int{1, 2}}},
			want: buildFaultWant{ok: true, calls: map[string]int{"RegisterImage": 3, "RegisterImage:ok": 1}}},
		{name: "InternalError on every other DescribeSnapshots", rules: []awsemu.FaultRule{{Kind: awsemu.FaultInternalError, Action: "DescribeSnapshots", Every: 2}},
			want: buildFaultWant{ok: true, atLeast: map[string]int{"DescribeSnapshots:InternalError": 2}}},
		{name: "InternalError bursts on StopInstances and TerminateInstances", rules: []awsemu.FaultRule{
			{SkipDryRun: true, Kind: awsemu.FaultInternalError, Action: "StopInstances", Nth: []int{1, 2}},
			{SkipDryRun: true, Kind: awsemu.FaultInternalError, Action: "TerminateInstances", Nth: []int{1, 2}}},
			want: buildFaultWant{ok: true, calls: map[string]int{"StopInstances:ok": 1, "TerminateInstances:ok": 1}}},
		{name: "throttled KMS at preflight", rules: []awsemu.FaultRule{{Kind: awsemu.FaultThrottle, Service: "kms", Nth: []int{1}}},
			raw:  oneRegion,
			want: buildFaultWant{ok: true, regions: []string{"us-east-1", "us-west-2"}, atLeast: map[string]int{"DescribeKey:ThrottlingException": 1}}},
		{name: "CreateSnapshot answers InternalError every time", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultInternalError, Action: "CreateSnapshot"}},
			raw:  []interface{}{"max_retries", 2},
			want: buildFaultWant{errHas: []string{"InternalError"}, calls: map[string]int{"CreateSnapshot": 3, "CreateSnapshot:ok": 0, "TerminateInstances:ok": 1}}},

		// Eventual consistency: what was just made is not found for a moment.
		{name: "new resources invisible for a moment", rules: []awsemu.FaultRule{{Kind: awsemu.FaultNotFoundAfterNew}},
			raw:  threeRegions,
			want: buildFaultWant{ok: true, regions: []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1"}}},

		// Asynchronous copy failures and the copy quota.
		{name: "CopySnapshot fails asynchronously once", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultCopyFails, Action: "CopySnapshot", Max: 1}},
			want: buildFaultWant{ok: true, says: []string{"Internal error on copy", "starting a fresh copy (attempt 2 of 3)"}, calls: map[string]int{"CopySnapshot:ok": 2}}},
		{name: "CopySnapshot fails asynchronously every time", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultCopyFails, Action: "CopySnapshot"}},
			want: buildFaultWant{errHas: []string{"failed 3 times", "is error: Internal error on copy"}, calls: map[string]int{"CopySnapshot:ok": 3, "RegisterImage": 0}}},
		{name: "copies fail and so does every DeleteSnapshot: the error names what is left",
			rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultCopyFails, Action: "CopySnapshot"}, {SkipDryRun: true, Kind: awsemu.FaultInternalError, Action: "DeleteSnapshot", Nth: []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}}},
			raw:   []interface{}{"max_retries", 1},
			want: buildFaultWant{errHas: []string{"failed 3 times", "cleanup incomplete, still there: snapshot snap-", "remove them by hand"},
				// The last failed copy and the intermediate snapshot (the
				// first two DeleteSnapshot calls, of failed copies, pass).
				findings: map[string]int{awsemu.CheckOrphanSnapshot: 2}}},
		{name: "snapshot copy quota reached, then free", opts: func(o *awsemu.Options) { o.Limits.ConcurrentSnapshotCopies = 1 },
			raw: []interface{}{"launch_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/xvdb", "volume_size": 2, "delete_on_termination": true}}},
			want: buildFaultWant{ok: true, says: []string{"(ResourceLimitExceeded); asking again"},
				atLeast: map[string]int{"CopySnapshot:ResourceLimitExceeded": 1}, calls: map[string]int{"CopySnapshot:ok": 2}}},
		{name: "one region's copy fails once, tried afresh", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultCopyFails, Action: "CopyImage", Region: "eu-west-1", Max: 1}},
			raw: threeRegions,
			want: buildFaultWant{ok: true, regions: []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1"},
				says: []string{"eu-west-1: image ami-", "Internal error on copy; removing it and starting a fresh copy (attempt 2 of 3)"}, calls: map[string]int{"CopyImage:ok": 4}}},
		{name: "one region's copy keeps failing, every region rolled back", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultCopyFails, Action: "CopyImage", Region: "eu-west-1"}},
			raw: threeRegions,
			want: buildFaultWant{errHas: []string{"eu-west-1", "the copy failed 3 times", "is failed", "Internal error on copy"},
				says: []string{"Deregistered AMI", "Removed copy"}, calls: map[string]int{"CopyImage:ok": 5}}},
		{name: "CopyImage InternalError burst in one region", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultInternalError, Action: "CopyImage", Region: "eu-central-1", Nth: []int{1, 2}}},
			raw:  threeRegions,
			want: buildFaultWant{ok: true, regions: []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1"}, calls: map[string]int{"CopyImage:ok": 3}}},

		// The instance.
		{name: "instance fails to launch (its volume's key disabled)",
			raw:    []interface{}{"launch_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/xvda", "encrypted": true, "kms_key_id": "alias/amicrypt-build", "volume_size": 8}}},
			hookAt: "Launching a ", act: func(t *testing.T, srv *emutest.Server) { buildKeyAdmin(t, srv, "disable") },
			want: buildFaultWant{errHas: []string{"is terminated: ", "Client error on launch"}, calls: map[string]int{"CreateSnapshot": 0}}},
		{name: "instance never running within the wait",
			opts: func(o *awsemu.Options) {
				o.Latency = map[string]awsemu.LatencySpec{awsemu.LatencyInstanceStart: {Base: 24 * time.Hour}}
			},
			raw:  []interface{}{"aws_polling", map[string]interface{}{"max_attempts": 5}},
			want: buildFaultWant{errHas: []string{"gave up after", "to be running", "max_attempts"}, calls: map[string]int{"TerminateInstances:ok": 1, "CreateSnapshot": 0}}},

		// The key.
		{name: "key disabled mid-build", hookAt: "Snapshotting ", act: func(t *testing.T, srv *emutest.Server) { buildKeyAdmin(t, srv, "disable") },
			want: buildFaultWant{errHas: []string{keyARNOf("us-east-1"), "not usable", "not retried: the key is the cause", "disabled", "enable the key"},
				calls: map[string]int{"RegisterImage": 0, "CopySnapshot": 1}}},
		{name: "key scheduled for deletion mid-build", hookAt: ": copying snapshot ", act: func(t *testing.T, srv *emutest.Server) { buildKeyAdmin(t, srv, "delete") },
			want: buildFaultWant{errHas: []string{keyARNOf("us-east-1"), "not retried: the key is the cause", "pending deletion"},
				calls: map[string]int{"RegisterImage": 0, "CopySnapshot": 1}}},
		{name: "a region's key disabled mid-build", raw: threeRegions, hookAt: "Registering AMI",
			act: func(t *testing.T, srv *emutest.Server) { keyAdmin(t, srv, "eu-central-1", "disable") },
			want: buildFaultWant{errHas: []string{"eu-central-1", keyARNOf("eu-central-1"), "DisabledException", "not retried: the key is the cause"},
				says: []string{"Deregistered AMI"}, calls: map[string]int{"CopyImage:ok": 3}}},
		{name: "key pending deletion at start", world: func(w *awsemu.World) {
			setBuildKey(w, "us-east-1", func(k *awsemu.WorldKey) { k.State = "PendingDeletion" })
		},
			want: buildFaultWant{preflight: true, errHas: []string{"kms_key_id:", "pending deletion", "cancel the key's deletion"}}},
		{name: "build key alias missing", world: func(w *awsemu.World) { setBuildKey(w, "us-east-1", func(k *awsemu.WorldKey) { k.Aliases = nil }) },
			want: buildFaultWant{preflight: true, errHas: []string{`KMS key "alias/amicrypt-build" in us-east-1: not found`}}},
		{name: "region key alias missing", world: func(w *awsemu.World) { setBuildKey(w, "eu-west-1", func(k *awsemu.WorldKey) { k.Aliases = nil }) },
			raw:  threeRegions,
			want: buildFaultWant{preflight: true, errHas: []string{"eu-west-1", "not found"}}},

		// skip_launch: the source's snapshots copied, or the whole AMI.
		{name: "skip_launch: CopyImage of the source fails asynchronously", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultCopyFails, Action: "CopyImage"}},
			raw:  []interface{}{"skip_launch", true, "instance_type", nil},
			want: buildFaultWant{errHas: []string{"is failed", "Internal error on copy"}, calls: map[string]int{"CopyImage:ok": 1, "RunInstances": 0}}},
		{name: "skip_launch: throttled and invisible new copies", rules: []awsemu.FaultRule{
			{SkipDryRun: true, Kind: awsemu.FaultInternalError, Action: "CopyImage", Nth: []int{1}},
			{SkipDryRun: true, Kind: awsemu.FaultNotFoundAfterNew, Action: "CopyImage"},
			{Kind: awsemu.FaultThrottle, Action: "DescribeImages", Nth: []int{3, 4, 6}}},
			raw:  []interface{}{"skip_launch", true, "instance_type", nil, "ami_regions", []string{"eu-west-1"}},
			want: buildFaultWant{ok: true, regions: []string{"us-east-1", "eu-west-1"}, calls: map[string]int{"CopyImage:ok": 2}}},

		// Spot and sharing.
		{name: "spot: CreateFleet InternalError burst", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultInternalError, Action: "CreateFleet", Nth: []int{1, 2}}},
			raw:  spot,
			want: buildFaultWant{ok: true, calls: map[string]int{"CreateFleet:ok": 1, "DeleteLaunchTemplate:ok": 1}}},
		{name: "spot: fleet refused every time", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultInternalError, Action: "CreateFleet"}},
			raw:  append([]interface{}{"max_retries", 1}, spot...),
			want: buildFaultWant{errHas: []string{"InternalError"}, calls: map[string]int{"CreateFleet:ok": 0, "DeleteLaunchTemplate:ok": 1}}},
		{name: "sharing: ModifyImageAttribute fails every time", rules: []awsemu.FaultRule{{SkipDryRun: true, Kind: awsemu.FaultInternalError, Action: "ModifyImageAttribute"}},
			raw:  []interface{}{"ami_users", []string{"222222222222"}, "max_retries", 1},
			want: buildFaultWant{errHas: []string{"InternalError"}, calls: map[string]int{"DeregisterImage:ok": 1}}},

		// The account and the template.
		{name: "AMI name taken", world: func(w *awsemu.World) { addOwnImage(w, "amicrypt-faults", "eu-west-1") },
			raw:  threeRegions,
			want: buildFaultWant{preflight: true, errHas: []string{`ami_name: "amicrypt-faults" is already used by`, "in eu-west-1", "force_deregister"}}},
		{name: "region not enabled", raw: []interface{}{"ami_regions", []string{"us-west-2", "ap-southeast-3"}},
			want: buildFaultWant{preflight: true, errHas: []string{"ap-southeast-3 is an opt-in region", "hasn't enabled"}}},
		{name: "build identity denied ec2:CreateSnapshot: refused at preflight", world: func(w *awsemu.World) { denyBuildUser(w, "ec2:CreateSnapshot") },
			want: buildFaultWant{preflight: true, errHas: []string{"may not call ec2:CreateSnapshot", "in the IAM policy of arn:aws:iam::" + buildAccount + ":user/packer"}, calls: map[string]int{"RunInstances": 0}}},
		{name: "build role denied ec2:CreateSnapshot: refused at preflight", world: func(w *awsemu.World) { denyBuildRole(w, "ec2:CreateSnapshot") },
			raw:  []interface{}{"assume_role", map[string]interface{}{"role_arn": "arn:aws:iam::" + buildAccount + ":role/amicrypt-build"}},
			want: buildFaultWant{preflight: true, errHas: []string{"may not call ec2:CreateSnapshot", "in the IAM policy of arn:aws:sts::" + buildAccount + ":assumed-role/amicrypt-build/"}, calls: map[string]int{"AssumeRole:ok": 1, "RunInstances": 0}}},
		{name: "build identity denied ec2:RegisterImage: refused at preflight", world: func(w *awsemu.World) { denyBuildUser(w, "ec2:RegisterImage") },
			want: buildFaultWant{preflight: true, errHas: []string{"may not call ec2:RegisterImage", "in the IAM policy of"}, calls: map[string]int{"RunInstances": 0}}},
	}
	// Ctrl-C at each step boundary leaves nothing behind.
	for _, at := range []struct {
		line  string
		calls map[string]int
	}{
		{"Launching a ", map[string]int{"RunInstances": 0}},
		{"is running", map[string]int{"CreateSnapshot": 0, "TerminateInstances:ok": 1}},
		{"Snapshotting ", map[string]int{"CreateSnapshot": 0, "TerminateInstances:ok": 1}},
		{": copying snapshot ", map[string]int{"RegisterImage": 0, "TerminateInstances:ok": 1}},
		{"Registering AMI", map[string]int{"RegisterImage": 0, "DeleteSnapshot:ok": 2}},
		{"Copying ami-", map[string]int{"CopyImage": 0, "DeregisterImage:ok": 1, "DeleteSnapshot:ok": 2}},
	} {
		scenarios = append(scenarios, buildFaultScenario{name: "interrupted at " + strings.TrimSpace(at.line), cancelAt: at.line, raw: oneRegion,
			want: buildFaultWant{errHas: []string{"cancel"}, calls: at.calls}})
	}
	// Ctrl-C while a call that creates something is in flight: AWS makes
	// it, the build never learns its ID.
	for _, h := range []struct {
		action string
		raw    []interface{}
	}{
		{"RunInstances", nil}, {"CreateSnapshot", nil}, {"CopySnapshot", nil}, {"RegisterImage", nil}, {"CopyImage", oneRegion},
		{"CreateKeyPair", []interface{}{"communicator", "ssh", "ssh_username", "ec2-user", "ssh_interface", "private_ip"}},
		{"CreateSecurityGroup", []interface{}{"communicator", "ssh", "ssh_username", "ec2-user", "ssh_interface", "private_ip"}},
		{"RunInstances", []interface{}{"communicator", "ssh", "ssh_username", "ec2-user", "ssh_interface", "private_ip"}},
		{"CreateLaunchTemplate", spot}, {"CreateFleet", spot},
		{"CopyImage", []interface{}{"skip_launch", true, "instance_type", nil}},
	} {
		name := "interrupted during " + h.action
		switch {
		case h.raw == nil:
		case h.action == "RunInstances":
			name += " (temporary key pair and security group)"
		case h.raw[0] == "skip_launch":
			name += " (skip_launch)"
		}
		// The held call is served as the build cleans up: before or after
		// what it needs is removed, so its outcome is not checked.
		scenarios = append(scenarios, buildFaultScenario{name: name, holdAndCancel: h.action, raw: h.raw,
			want: buildFaultWant{errHas: []string{"cancel"}, atLeast: map[string]int{h.action: 1}}})
	}
	if len(scenarios) < 15 {
		t.Fatalf("%d scenarios; the suite promises at least 15", len(scenarios))
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { runBuildFaultScenario(t, sc) })
	}
}

func runBuildFaultScenario(t *testing.T, sc buildFaultScenario) {
	opts := awsemu.Options{}
	if sc.world != nil {
		w, err := awsemu.DefaultWorld()
		if err != nil {
			t.Fatal(err)
		}
		sc.world(w)
		opts.World = w
	}
	if sc.opts != nil {
		sc.opts(&opts)
	}
	if len(sc.rules) > 0 {
		opts.Faults = &awsemu.FaultProfile{Seed: 7, Rules: sc.rules}
	}
	srv := startEmulator(t, opts)
	raw := with(append([]interface{}{"ami_name", "amicrypt-faults"}, sc.raw...)...)
	if rs, ok := raw["ami_regions"].([]string); ok {
		keys := map[string]string{}
		for _, r := range rs {
			keys[r] = "alias/amicrypt-build"
		}
		raw["region_kms_key_ids"] = keys
		if slices.Contains(rs, "ap-southeast-3") {
			delete(raw, "region_kms_key_ids")
		}
	}

	var b Builder
	if _, _, err := b.Prepare(raw); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, err := b.config.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The SDK's retryer as the build uses it (same retries, same errors
	// retried), with its backoff cut to milliseconds, as the emulator's time
	// scale cuts AWS's latencies.
	maxRetries := b.config.MaxRetries
	cfg.Retryer = func() aws.Retryer {
		return retry.AddWithMaxBackoffDelay(awsauth.NewRetryer(maxRetries), 5*time.Millisecond)
	}
	b.clients = newAWSClients(cfg, b.config.EC2Options())

	var once sync.Once
	out := &hookWriter{hook: func(s string) {
		if sc.hookAt != "" && strings.Contains(s, sc.hookAt) {
			once.Do(func() { sc.act(t, srv) })
		}
		if sc.cancelAt != "" && strings.Contains(s, sc.cancelAt) {
			cancel()
		}
	}}
	released := func() {}
	if sc.holdAndCancel != "" {
		released = holdThenCancel(t, srv, sc.holdAndCancel, cancel)
	}
	ui := &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: out, ErrorWriter: out}
	existing := map[string]bool{}
	for _, r := range faultRegions {
		for _, img := range liveImagesNamed(t, checkConfig(srv, r), b.config.AMIName) {
			existing[aws.ToString(img.ImageId)] = true
		}
	}
	mark := srv.Emulator().CheckMark()
	start := time.Now()
	art, err := b.Run(ctx, ui, &packersdk.MockHook{})
	output := out.String()
	released()
	t.Logf("build: %s", time.Since(start).Round(time.Millisecond))
	defer func() {
		if t.Failed() {
			t.Logf("build output:\n%s", output)
		}
	}()

	w := sc.want
	switch {
	case w.ok && err != nil:
		t.Fatalf("want success, got %v", err)
	case !w.ok && err == nil:
		t.Fatalf("want a failure saying %q, got success: %v", w.errHas, art)
	}
	if (sc.cancelAt != "" || sc.holdAndCancel != "") && ctx.Err() == nil {
		t.Fatalf("the build never said %q: the interrupt was not delivered", sc.cancelAt)
	}
	for _, s := range w.errHas {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q: %v", s, err)
		}
	}
	for _, s := range w.says {
		if !strings.Contains(output, s) {
			t.Errorf("output lacks %q", s)
		}
	}
	// The calls made, preflight's DryRun probes aside (they make nothing).
	entries := audited(srv, awsemu.AuditFilter{Account: buildAccount, SinceSeq: mark})
	count := func(key string) int {
		action, outcome, _ := strings.Cut(key, ":")
		n := 0
		for _, e := range entries {
			if (action == "*" || e.Action == action) && (outcome == "" || slices.Contains(strings.Split(outcome, "|"), e.Outcome)) {
				n++
			}
		}
		return n
	}
	for key, n := range w.calls {
		if got := count(key); got != n {
			t.Errorf("%s calls = %d, want %d", key, got, n)
		}
	}
	for key, n := range w.atLeast {
		if got := count(key); got < n {
			t.Errorf("%s calls = %d, want at least %d (the fault did not fire: the scenario proves nothing)", key, got, n)
		}
	}
	if w.preflight {
		for _, e := range entries {
			// GenerateDataKeyWithoutPlaintext (preflight's key check) and
			// AssumeRole (assume_role's credentials) make nothing either.
			if !strings.HasPrefix(e.Action, "Describe") && !strings.HasPrefix(e.Action, "Get") && !strings.HasPrefix(e.Action, "List") &&
				e.Action != "GenerateDataKeyWithoutPlaintext" && e.Action != "AssumeRole" {
				t.Errorf("refused at preflight, yet made a %s call (%s)", e.Action, e.Outcome)
			}
		}
	}

	// What the build made and kept.
	if w.ok {
		regions := w.regions
		if regions == nil {
			regions = []string{"us-east-1"}
		}
		got := map[string]string{}
		if art != nil {
			got = art.(*Artifact).Amis
		}
		if len(got) != len(regions) {
			t.Errorf("artifact AMIs = %v, want one in each of %v", got, regions)
		}
		for _, r := range regions {
			if got[r] == "" {
				t.Errorf("no AMI in %s: %v", r, got)
				continue
			}
			assertAMIEncrypted(t, checkConfig(srv, r), got[r])
		}
	} else {
		if art != nil {
			t.Errorf("a failed build returned an artifact: %v", art)
		}
		for _, r := range faultRegions {
			for _, img := range liveImagesNamed(t, checkConfig(srv, r), b.config.AMIName) {
				if existing[aws.ToString(img.ImageId)] {
					continue
				}
				t.Errorf("the failed build left AMI %s (%s) in %s", aws.ToString(img.ImageId), img.State, r)
			}
		}
	}
	// The invariants, and nothing of the build's still under its lease
	// but what the build says it left.
	rep := srv.Emulator().Check(awsemu.CheckOptions{Account: buildAccount, SinceSeq: mark})
	got := map[string]int{}
	for _, f := range rep.Findings {
		got[f.Check]++
		if err == nil || !strings.Contains(err.Error(), f.Resource) {
			t.Errorf("the checker finds %s left, and the build does not say so: %s", f.Resource, f.Message)
		}
	}
	checks := maps.Clone(got)
	maps.Copy(checks, w.findings)
	for _, check := range slices.Sorted(maps.Keys(checks)) {
		if got[check] != w.findings[check] {
			t.Errorf("invariant checker: %d %s finding(s), want %d:\n%s", got[check], check, w.findings[check], rep)
		}
	}
	for _, r := range faultRegions {
		leased, lerr := ebs.FindLeased(context.Background(), ec2.NewFromConfig(checkConfig(srv, r)), tagLease)
		if lerr != nil {
			t.Fatalf("%s: %v", r, lerr)
		}
		for _, l := range leased {
			if len(w.findings) == 0 || err == nil || !strings.Contains(err.Error(), l.ID) {
				t.Errorf("%s: %s %s still carries the build's lease: left behind", r, l.Kind, l.ID)
			}
		}
	}
}

// holdThenCancel holds the build account's calls of action; once one is
// waiting it interrupts the build (cancel) and lets the call through. The
// function it returns waits until the held call has been served.
func holdThenCancel(t *testing.T, srv *emutest.Server, action string, cancel context.CancelFunc) (served func()) {
	t.Helper()
	var hold struct{ ID string }
	admin(t, srv, http.MethodPost, "/_emu/hold?skip_dry_run=1&account="+buildAccount+"&action="+action, &hold)
	mark := srv.Emulator().CheckMark()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer admin(t, srv, http.MethodPost, "/_emu/release?id="+hold.ID, nil)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			var held []struct {
				ID      string
				Waiting int
			}
			admin(t, srv, http.MethodGet, "/_emu/held", &held)
			for _, h := range held {
				if h.ID == hold.ID && h.Waiting > 0 {
					cancel()
					return
				}
			}
		}
	}()
	return func() {
		<-done
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			// The held call itself, not preflight's DryRun probe of it.
			if len(audited(srv, awsemu.AuditFilter{Account: buildAccount, Action: action, SinceSeq: mark})) > 0 {
				return
			}
		}
		t.Errorf("the held %s was never served", action)
	}
}

// admin calls the emulator's admin endpoint and decodes its answer into out.
func admin(t *testing.T, srv *emutest.Server, method, path string, out any) {
	req, err := http.NewRequest(method, srv.URL()+path, nil)
	if err != nil {
		t.Error(err)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s %s: %s", method, path, resp.Status)
		return
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Errorf("%s %s: %v", method, path, err)
		}
	}
}

// hookWriter is the build's output, calling hook with every write.
type hookWriter struct {
	syncBuffer
	hook func(string)
}

func (h *hookWriter) Write(p []byte) (int, error) {
	n, err := h.syncBuffer.Write(p)
	h.hook(string(p))
	return n, err
}

func keyARNOf(region string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/", region, buildAccount)
}

// buildKeyAdmin disables ("disable") or schedules the deletion ("delete")
// of the build key in us-east-1, as the build account.
func buildKeyAdmin(t *testing.T, srv *emutest.Server, what string) {
	keyAdmin(t, srv, "us-east-1", what)
}

// keyAdmin does the same to the build account's alias/amicrypt-build in
// region.
func keyAdmin(t *testing.T, srv *emutest.Server, region, what string) {
	ctx := context.Background()
	kc := kms.NewFromConfig(srv.Config(ctx, buildAccount, region))
	var err error
	switch what {
	case "disable":
		_, err = kc.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String("alias/amicrypt-build")})
	case "delete":
		_, err = kc.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String("alias/amicrypt-build"), PendingWindowInDays: aws.Int32(7)})
	}
	if err != nil {
		t.Errorf("%s alias/amicrypt-build: %v", what, err)
	}
}

func buildAccountOf(w *awsemu.World) *awsemu.WorldAccount {
	for i := range w.Accounts {
		if w.Accounts[i].ID == buildAccount {
			return &w.Accounts[i]
		}
	}
	panic("no build account in the default world")
}

// setBuildKey changes the build account's alias/amicrypt-build in region.
func setBuildKey(w *awsemu.World, region string, change func(*awsemu.WorldKey)) {
	a := buildAccountOf(w)
	for i := range a.Keys {
		if a.Keys[i].Region == region && slices.Contains(a.Keys[i].Aliases, "alias/amicrypt-build") {
			change(&a.Keys[i])
		}
	}
}

// denyBuildUser denies the build's user some actions.
func denyBuildUser(w *awsemu.World, actions ...string) {
	a := buildAccountOf(w)
	for i := range a.Users {
		a.Users[i].Deny = append(a.Users[i].Deny, actions...)
	}
}

// denyBuildRole denies the build account's role amicrypt-build some actions.
func denyBuildRole(w *awsemu.World, actions ...string) {
	a := buildAccountOf(w)
	for i := range a.Roles {
		if a.Roles[i].Name == "amicrypt-build" {
			a.Roles[i].Deny = append(a.Roles[i].Deny, actions...)
		}
	}
}

// addOwnImage gives the build account an AMI named name in region.
func addOwnImage(w *awsemu.World, name, region string) {
	for _, img := range w.Images {
		if img.Region == region && img.Public {
			own := img
			own.ID, own.Name, own.Owner, own.Public = "ami-0f0f0f0f0f0f00001", name, buildAccount, false
			own.Volumes = append([]awsemu.WorldVolume(nil), img.Volumes...)
			own.Volumes[0].SnapshotID = "snap-0f0f0f0f0f0f00001"
			w.Images = append(w.Images, own)
			return
		}
	}
	panic("no public image in " + region)
}

// checkConfig is the build account's SDK configuration in region for the
// suite's own checks, which the scenario's faults hit too: a patient
// retryer with millisecond pauses.
func checkConfig(srv *emutest.Server, region string) aws.Config {
	cfg := srv.Config(context.Background(), buildAccount, region)
	cfg.Retryer = func() aws.Retryer {
		return retry.AddWithMaxBackoffDelay(retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 100
			o.RateLimiter = ratelimit.None
		}), 2*time.Millisecond)
	}
	return cfg
}

// assertAMIEncrypted reads the AMI back as its owner and checks every EBS
// snapshot behind it is complete and encrypted under the region's
// alias/amicrypt-build.
func assertAMIEncrypted(t *testing.T, cfg aws.Config, imageID string) {
	t.Helper()
	ctx := context.Background()
	key, err := kms.NewFromConfig(cfg).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-build")})
	if err != nil {
		t.Fatalf("%s: DescribeKey: %v", cfg.Region, err)
	}
	want := aws.ToString(key.KeyMetadata.Arn)
	client := ec2.NewFromConfig(cfg)
	imgs, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{imageID}})
	if err != nil || len(imgs.Images) != 1 {
		t.Fatalf("%s: DescribeImages %s: %v", cfg.Region, imageID, err)
	}
	img := imgs.Images[0]
	if img.State != types.ImageStateAvailable {
		t.Errorf("%s: AMI %s is %s", cfg.Region, imageID, img.State)
	}
	var snaps []string
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs == nil {
			continue
		}
		snaps = append(snaps, aws.ToString(m.Ebs.SnapshotId))
		if !aws.ToBool(m.Ebs.Encrypted) {
			t.Errorf("%s: AMI %s device %s is not encrypted", cfg.Region, imageID, aws.ToString(m.DeviceName))
		}
	}
	if len(snaps) == 0 {
		t.Fatalf("%s: AMI %s has no EBS snapshot", cfg.Region, imageID)
	}
	out, err := client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: snaps})
	if err != nil || len(out.Snapshots) != len(snaps) {
		t.Fatalf("%s: DescribeSnapshots %v: %v", cfg.Region, snaps, err)
	}
	for _, s := range out.Snapshots {
		if !aws.ToBool(s.Encrypted) || aws.ToString(s.KmsKeyId) != want || s.State != types.SnapshotStateCompleted {
			t.Errorf("%s: snapshot %s of %s: encrypted=%v key=%s state=%s, want completed under %s",
				cfg.Region, aws.ToString(s.SnapshotId), imageID, aws.ToBool(s.Encrypted), aws.ToString(s.KmsKeyId), s.State, want)
		}
	}
}

// liveImagesNamed are the build account's AMIs named name in the region
// that are not deregistered.
func liveImagesNamed(t *testing.T, cfg aws.Config, name string) []types.Image {
	t.Helper()
	imgs, err := ebs.FindImagesByName(context.Background(), ec2.NewFromConfig(cfg), "self", name)
	if err != nil {
		t.Fatalf("%s: %v", cfg.Region, err)
	}
	var live []types.Image
	for _, img := range imgs {
		if img.State != types.ImageStateDeregistered {
			live = append(live, img)
		}
	}
	return live
}
