package ebs

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// strayKey is a key EC2 did not get asked for: an AMI under it must never
// be reported as encrypted under the build key.
const strayKey = "arn:aws:kms:us-east-1:111111111111:key/99999999-9999-9999-9999-999999999999"

// TestStepRegisterVerifiesTheAMI: after RegisterImage the AMI is read back;
// a snapshot under another key fails the build, naming the snapshot, the
// key found and the key expected, and the abandoned AMI is removed.
func TestStepRegisterVerifiesTheAMI(t *testing.T) {
	for _, mismatch := range []bool{false, true} {
		t.Run(map[bool]string{false: "verified", true: "wrong key fails"}[mismatch], func(t *testing.T) {
			clients, state, b := launchedState(t, validRaw())
			f := clients.ec2s["us-east-1"]
			if mismatch {
				f.wrongKey = strayKey
			}
			create, encrypt := runSnapshotSteps(t, state)
			if encrypt.Run(context.Background(), state) != multistep.ActionContinue {
				t.Fatal(state.Get("error"))
			}
			reg := &stepRegisterImage{}
			action := reg.Run(context.Background(), state)
			if !mismatch {
				if action != multistep.ActionContinue {
					t.Fatal(state.Get("error"))
				}
				if f.count("DescribeSnapshots") == 0 {
					t.Error("the AMI was not read back with DescribeSnapshots")
				}
				return
			}
			if action != multistep.ActionHalt {
				t.Fatal("an AMI under the wrong key passed")
			}
			built := reg.imageID
			snap := b.encrypted["/dev/xvda"]
			err := state.Get("error").(error).Error()
			want := "snapshot " + snap + " (/dev/xvda) of " + built + " is encrypted under " + strayKey + ", not under the expected " + b.keyARN
			if !strings.Contains(err, want) {
				t.Errorf("error = %s\nwant it to contain %s", err, want)
			}
			state.Put(multistep.StateHalted, true)
			reg.Cleanup(state)
			encrypt.Cleanup(state)
			create.Cleanup(state)
			if _, ok := f.images[built]; ok || len(f.snapshots) != 0 {
				t.Errorf("left after the failed verification: AMI %s kept %v, %d snapshots", built, ok, len(f.snapshots))
			}
		})
	}
}

// TestStepCopyRegionsVerifiesEachCopy: a region copy under another key
// than that region's fails the build, named, and the copies are removed.
func TestStepCopyRegionsVerifiesEachCopy(t *testing.T) {
	clients, state, b := launchedState(t, with("ami_regions", []string{"us-west-2", "eu-west-1"},
		"region_kms_key_ids", map[string]string{"us-west-2": "alias/amicrypt-build", "eu-west-1": "alias/amicrypt-build"}))
	b.setAMI("us-east-1", "ami-build")
	clients.ec2s["eu-west-1"].wrongKey = strayKey
	step := &stepCopyRegions{}
	if step.Run(context.Background(), state) != multistep.ActionHalt {
		t.Fatal("a copy under the wrong key passed")
	}
	err := state.Get("error").(error).Error()
	for _, w := range []string{"eu-west-1:", "is encrypted under " + strayKey, "not under the expected " + b.regionKeys["eu-west-1"]} {
		if !strings.Contains(err, w) {
			t.Errorf("error lacks %q: %s", w, err)
		}
	}
	state.Put(multistep.StateHalted, true)
	step.Cleanup(state)
	for _, r := range []string{"us-west-2", "eu-west-1"} {
		if len(clients.ec2s[r].images) != 0 || len(clients.ec2s[r].snapshots) != 0 {
			t.Errorf("%s left %d images, %d snapshots", r, len(clients.ec2s[r].images), len(clients.ec2s[r].snapshots))
		}
	}
}

// TestArtifactKeptForAPostProcessor: once a post-processor asked through
// State(KeepState), Destroy (which Packer calls after a failed
// post-processor) deregisters nothing and deletes nothing.
func TestArtifactKeptForAPostProcessor(t *testing.T) {
	clients := newFakeClients("us-east-1")
	f := clients.ec2s["us-east-1"]
	f.images["ami-1"] = &types.Image{ImageId: aws.String("ami-1"), State: types.ImageStateAvailable,
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-1")}}}}
	f.snapshots["snap-1"] = &types.Snapshot{SnapshotId: aws.String("snap-1")}
	a := &Artifact{Amis: map[string]string{"us-east-1": "ami-1"}, KmsKeyARN: "arn:k1", clients: clients}
	if got := a.State(KeepState); got != "us-east-1:ami-1" {
		t.Fatalf("State(%q) = %v, want the AMIs it keeps", KeepState, got)
	}
	if err := a.Destroy(); err != nil {
		t.Fatal(err)
	}
	if f.count("DeregisterImage")+f.count("DeleteSnapshot") != 0 || len(f.images) != 1 || len(f.snapshots) != 1 {
		t.Errorf("Destroy of a kept artifact made %v", f.calls)
	}
}
