package ebs

import (
	"context"
	"encoding/base64"
	"fmt"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"
)

func TestStepPreflight(t *testing.T) {
	awsManaged := customerKey("us-east-1")
	awsManaged.KeyManager = kmstypes.KeyManagerTypeAws
	disabled := customerKey("us-east-1")
	disabled.KeyState = kmstypes.KeyStateDisabled

	cases := []struct {
		name  string
		raw   map[string]interface{}
		setup func(*fakeClients)
		want  []string // "" entries: must pass
	}{
		{name: "passes", raw: validRaw()},
		{name: "aws-managed key refused when sharing",
			raw:   with("kms_key_id", buildKeyARN, "ami_users", []string{"222222222222"}),
			setup: func(c *fakeClients) { c.kmss["us-east-1"].keys[buildKeyARN] = awsManaged },
			want:  []string{"kms_key_id:", "AWS-managed", `"Snapshots encrypted with the AWS Managed CMK can't be shared"`, "Create a customer-managed key"}},
		{name: "disabled key", raw: with("kms_key_id", buildKeyARN),
			setup: func(c *fakeClients) { c.kmss["us-east-1"].keys[buildKeyARN] = disabled },
			want:  []string{"kms_key_id:", "disabled", "enable the key"}},
		{name: "region key missing", raw: with("ami_regions", []string{"us-west-2"}, "region_kms_key_ids", map[string]string{"us-west-2": "alias/nope"}),
			want: []string{`region_kms_key_ids["us-west-2"]`, "not found"}},
		{name: "instance-store source",
			setup: func(c *fakeClients) {
				c.ec2s["us-east-1"].images[sourceAMI].RootDeviceType = types.DeviceTypeInstanceStore
			},
			raw: validRaw(), want: []string{"instance-store-backed", "EBS-backed"}},
		{name: "name taken", raw: validRaw(),
			setup: func(c *fakeClients) {
				c.ec2s["us-east-1"].images["ami-taken"] = &types.Image{ImageId: aws.String("ami-taken"), Name: aws.String("amicrypt-test"), State: types.ImageStateAvailable}
			},
			want: []string{`ami_name: "amicrypt-test" is already used by ami-taken in us-east-1`, "force_deregister"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clients := newFakeClients("us-east-1", "us-west-2")
			clients.ec2s["us-east-1"].images[sourceAMI] = sourceImage()
			if tc.setup != nil {
				tc.setup(clients)
			}
			state, b := stepState(t, clients, tc.raw)
			action := (&stepPreflight{}).Run(context.Background(), state)
			if len(tc.want) == 0 {
				if action != multistep.ActionContinue {
					t.Fatalf("halted: %v", state.Get("error"))
				}
				if b.keyARN != *customerKey("us-east-1").Arn || aws.ToString(b.source.ImageId) != sourceAMI {
					t.Errorf("key %s source %v", b.keyARN, b.source)
				}
				return
			}
			if action != multistep.ActionHalt {
				t.Fatal("preflight passed")
			}
			err := state.Get("error").(error).Error()
			for _, w := range tc.want {
				if !strings.Contains(err, w) {
					t.Errorf("error lacks %q: %s", w, err)
				}
			}
			for _, f := range clients.ec2s {
				for _, c := range f.calls {
					if !strings.HasPrefix(c, "Describe") {
						t.Errorf("preflight made %s", c)
					}
				}
			}
		})
	}
}

func launchedState(t *testing.T, raw map[string]interface{}) (*fakeClients, multistep.StateBag, *buildState) {
	clients := newFakeClients("us-east-1", "us-west-2", "eu-west-1")
	clients.ec2s["us-east-1"].images[sourceAMI] = sourceImage()
	state, b := stepState(t, clients, raw)
	for _, s := range []multistep.Step{&stepPreflight{}, &stepSourceAMIInfo{}} {
		if s.Run(context.Background(), state) != multistep.ActionContinue {
			t.Fatalf("%T: %v", s, state.Get("error"))
		}
	}
	// The fake has no network to look up: the subnet is taken as given.
	b.subnetID = b.config.SubnetID
	run := &stepRunInstance{}
	if run.Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatalf("run: %v", state.Get("error"))
	}
	return clients, state, b
}

func TestStepRunInstanceInput(t *testing.T) {
	clients, _, _ := launchedState(t, with("user_data", "#!/bin/sh\necho hi", "iam_instance_profile", "builder",
		"associate_public_ip_address", true, "subnet_id", "subnet-1", "run_tags", map[string]string{"Owner": "me"}, "run_volume_tags", map[string]string{"v": "1"},
		"launch_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/xvda", "encrypted": true, "kms_key_id": "alias/amicrypt-build", "volume_size": 20}}))
	in := clients.ec2s["us-east-1"].runInput
	if !strings.HasPrefix(aws.ToString(in.ClientToken), "amicrypt-") || len(aws.ToString(in.ClientToken)) > 64 {
		t.Errorf("ClientToken = %q", aws.ToString(in.ClientToken))
	}
	if ud, _ := base64.StdEncoding.DecodeString(aws.ToString(in.UserData)); string(ud) != "#!/bin/sh\necho hi" {
		t.Errorf("user data = %q", ud)
	}
	if aws.ToString(in.IamInstanceProfile.Name) != "builder" || len(in.NetworkInterfaces) != 1 ||
		!aws.ToBool(in.NetworkInterfaces[0].AssociatePublicIpAddress) || aws.ToString(in.NetworkInterfaces[0].SubnetId) != "subnet-1" {
		t.Errorf("network/profile = %+v %+v", in.IamInstanceProfile, in.NetworkInterfaces)
	}
	specs := map[types.ResourceType]map[string]string{}
	for _, s := range in.TagSpecifications {
		specs[s.ResourceType] = ebs.TagMap(s.Tags)
	}
	if specs[types.ResourceTypeInstance]["Owner"] != "me" || specs[types.ResourceTypeNetworkInterface]["Owner"] != "me" || specs[types.ResourceTypeVolume]["v"] != "1" {
		t.Errorf("tag specs = %+v", specs)
	}
	bd := in.BlockDeviceMappings[0].Ebs
	// delete_on_termination unset is false, as in amazon-ebs.
	if !aws.ToBool(bd.Encrypted) || aws.ToString(bd.KmsKeyId) != "alias/amicrypt-build" || aws.ToInt32(bd.VolumeSize) != 20 || aws.ToBool(bd.DeleteOnTermination) {
		t.Errorf("launch mapping = %+v", bd)
	}
}

func runSnapshotSteps(t *testing.T, state multistep.StateBag) (*stepCreateSnapshots, *stepEncryptSnapshots) {
	t.Helper()
	create, encrypt := &stepCreateSnapshots{}, &stepEncryptSnapshots{}
	if (&stepStopInstance{}).Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatalf("stop: %v", state.Get("error"))
	}
	if create.Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatalf("create: %v", state.Get("error"))
	}
	return create, encrypt
}

func TestStepEncryptSnapshotsCopiesUnderKey(t *testing.T) {
	clients, state, b := launchedState(t, validRaw())
	create, encrypt := runSnapshotSteps(t, state)
	if encrypt.Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatalf("encrypt: %v", state.Get("error"))
	}
	f := clients.ec2s["us-east-1"]
	if len(f.copyInputs) != 1 {
		t.Fatalf("CopySnapshot calls = %d", len(f.copyInputs))
	}
	in := f.copyInputs[0]
	if !aws.ToBool(in.Encrypted) || aws.ToString(in.KmsKeyId) != b.keyARN || len(in.TagSpecifications) != 1 {
		t.Errorf("copy input = %+v", in)
	}
	// Success: the copy stays, the intermediate goes.
	encrypt.Cleanup(state)
	create.Cleanup(state)
	copyID := b.encrypted["/dev/xvda"]
	if _, ok := f.snapshots[copyID]; !ok {
		t.Errorf("encrypted copy %s deleted on success", copyID)
	}
	if len(f.snapshots) != 1 {
		t.Errorf("snapshots left = %d, want only the encrypted copy", len(f.snapshots))
	}
}

func TestStepEncryptSnapshotsSkipsAlreadyEncrypted(t *testing.T) {
	clients, state, b := launchedState(t, with("launch_block_device_mappings",
		[]map[string]interface{}{{"device_name": "/dev/xvda", "encrypted": true, "kms_key_id": customerKey("us-east-1").Arn}}))
	create, encrypt := runSnapshotSteps(t, state)
	if encrypt.Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatalf("encrypt: %v", state.Get("error"))
	}
	f := clients.ec2s["us-east-1"]
	if n := f.count("CopySnapshot"); n != 0 {
		t.Errorf("CopySnapshot calls = %d, want 0", n)
	}
	if b.encrypted["/dev/xvda"] != b.sourceSnapshots[0].SnapshotID {
		t.Errorf("encrypted = %v", b.encrypted)
	}
	reg := &stepRegisterImage{}
	if reg.Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatalf("register: %v", state.Get("error"))
	}
	create.Cleanup(state) // must keep the snapshot behind the AMI
	if _, ok := f.snapshots[b.sourceSnapshots[0].SnapshotID]; !ok {
		t.Error("the snapshot behind the AMI was deleted as an intermediate")
	}
}

func TestStepEncryptSnapshotsFailureCleansUp(t *testing.T) {
	clients, state, _ := launchedState(t, validRaw())
	f := clients.ec2s["us-east-1"]
	f.failCopies = true
	create, encrypt := runSnapshotSteps(t, state)
	if encrypt.Run(context.Background(), state) != multistep.ActionHalt {
		t.Fatal("encrypt passed despite the failed copy")
	}
	if err := state.Get("error").(error).Error(); !strings.Contains(err, "is error: Given key ID is not accessible") {
		t.Errorf("error = %s", err)
	}
	state.Put(multistep.StateHalted, true)
	encrypt.Cleanup(state)
	create.Cleanup(state)
	if len(f.snapshots) != 0 {
		t.Errorf("snapshots left after failure: %d", len(f.snapshots))
	}
}

func TestRegisterInputLayout(t *testing.T) {
	clients, state, b := launchedState(t, with("ami_description", "d", "tags", map[string]string{"a": "b"},
		"ami_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/sdc", "virtual_name": "ephemeral1"}, {"device_name": "/dev/xvda", "volume_size": 30}}))
	_, encrypt := runSnapshotSteps(t, state)
	if encrypt.Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatal(state.Get("error"))
	}
	reg := &stepRegisterImage{}
	if reg.Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatal(state.Get("error"))
	}
	in := clients.ec2s["us-east-1"].regInput
	src := sourceImage()
	if aws.ToString(in.RootDeviceName) != "/dev/xvda" || in.Architecture != src.Architecture || aws.ToString(in.VirtualizationType) != "hvm" ||
		!aws.ToBool(in.EnaSupport) || aws.ToString(in.SriovNetSupport) != "simple" || string(in.BootMode) != string(src.BootMode) ||
		in.TpmSupport != src.TpmSupport || in.ImdsSupport != src.ImdsSupport || aws.ToString(in.Description) != "d" {
		t.Errorf("register input = %+v", in)
	}
	var layout []string
	for _, m := range in.BlockDeviceMappings {
		switch {
		case m.Ebs != nil:
			layout = append(layout, aws.ToString(m.DeviceName)+"=ebs:"+aws.ToString(m.Ebs.SnapshotId))
			if aws.ToInt32(m.Ebs.VolumeSize) != 30 {
				t.Errorf("root size = %d, want 30", aws.ToInt32(m.Ebs.VolumeSize))
			}
		default:
			layout = append(layout, aws.ToString(m.DeviceName)+"="+aws.ToString(m.VirtualName))
		}
	}
	want := "/dev/sdb=ephemeral0,/dev/xvda=ebs:" + b.encrypted["/dev/xvda"] + ",/dev/sdc=ephemeral1"
	if strings.Join(layout, ",") != want {
		t.Errorf("layout = %v, want %s", layout, want)
	}
	if len(in.TagSpecifications) != 1 || in.TagSpecifications[0].ResourceType != types.ResourceTypeImage {
		t.Errorf("tags = %+v", in.TagSpecifications)
	}

	// Refuse to register a device without an encrypted snapshot.
	delete(b.encrypted, "/dev/xvda")
	if _, err := registerInput(b); err == nil || !strings.Contains(err.Error(), "refusing to register an AMI with unencrypted data") {
		t.Errorf("err = %v", err)
	}
}

// skip_launch registers the source's own layout: ephemeral, no-device and
// empty-volume entries stay (the empty volume marked encrypted), and every
// device with data points at its encrypted copy.
func TestRegisterInputKeepsSourceLayout(t *testing.T) {
	_, b := stepState(t, newFakeClients("us-east-1"), with("skip_launch", true, "instance_type", nil))
	src := sourceImage()
	src.BlockDeviceMappings = append(src.BlockDeviceMappings,
		types.BlockDeviceMapping{DeviceName: aws.String("/dev/sdc"), NoDevice: aws.String("")},
		types.BlockDeviceMapping{DeviceName: aws.String("/dev/sdd"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(20), VolumeType: types.VolumeTypeGp3, Encrypted: aws.Bool(false)}},
	)
	b.source = src
	b.sourceSnapshots = sourceAMISnapshots(src)
	b.encrypted = map[string]string{"/dev/xvda": "snap-encrypted"}
	in, err := registerInput(b)
	if err != nil {
		t.Fatal(err)
	}
	var layout []string
	for _, m := range in.BlockDeviceMappings {
		dev := aws.ToString(m.DeviceName)
		switch {
		case m.NoDevice != nil:
			layout = append(layout, dev+"=no-device")
		case m.VirtualName != nil:
			layout = append(layout, dev+"="+aws.ToString(m.VirtualName))
		case m.Ebs.SnapshotId != nil:
			layout = append(layout, dev+"=ebs:"+aws.ToString(m.Ebs.SnapshotId))
		default:
			layout = append(layout, fmt.Sprintf("%s=empty:%dGiB:encrypted=%v", dev, aws.ToInt32(m.Ebs.VolumeSize), aws.ToBool(m.Ebs.Encrypted)))
		}
	}
	want := "/dev/sdb=ephemeral0,/dev/sdc=no-device,/dev/sdd=empty:20GiB:encrypted=true,/dev/xvda=ebs:snap-encrypted"
	if strings.Join(layout, ",") != want {
		t.Errorf("layout = %s\nwant     %s", strings.Join(layout, ","), want)
	}
	if string(in.BootMode) != string(src.BootMode) || in.TpmSupport != src.TpmSupport || in.ImdsSupport != src.ImdsSupport ||
		aws.ToString(in.SriovNetSupport) != "simple" || !aws.ToBool(in.EnaSupport) {
		t.Errorf("register input lost the source's settings: %+v", in)
	}
}

func TestStepRegisterCleanupOnFailure(t *testing.T) {
	clients, state, b := launchedState(t, validRaw())
	create, encrypt := runSnapshotSteps(t, state)
	encrypt.Run(context.Background(), state)
	reg := &stepRegisterImage{}
	if reg.Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatal(state.Get("error"))
	}
	state.Put(multistep.StateCancelled, true)
	reg.Cleanup(state)
	encrypt.Cleanup(state)
	create.Cleanup(state)
	f := clients.ec2s["us-east-1"]
	if len(f.images) != 1 || len(f.snapshots) != 0 || len(b.amiSnapshot()) != 0 {
		t.Errorf("left after interrupt: images %d (want only the source), snapshots %d, amis %v", len(f.images), len(f.snapshots), b.amiSnapshot())
	}
}

// registerSkipLaunch runs a skip_launch build up to a registered AMI. The
// function it returns abandons the build (how: StateCancelled or
// StateHalted) and runs the steps' cleanups in reverse, as multistep does.
func registerSkipLaunch(t *testing.T, state multistep.StateBag) (abandon func(how string)) {
	t.Helper()
	steps := []multistep.Step{&stepPreflight{}, &stepCreateSnapshots{}, &stepEncryptSnapshots{}, &stepRegisterImage{}}
	for _, step := range steps {
		if step.Run(context.Background(), state) != multistep.ActionContinue {
			t.Fatalf("%T: %v", step, state.Get("error"))
		}
	}
	return func(how string) {
		state.Put(how, true)
		for i := len(steps) - 1; i >= 0; i-- {
			steps[i].Cleanup(state)
		}
	}
}

// skip_launch of an AMI of our own already under the build key registers
// the new AMI on the source's very snapshot. Abandoning the build must
// deregister the new AMI and leave that snapshot, which no step made.
func TestStepRegisterCleanupLeavesSnapshotsItDidNotMake(t *testing.T) {
	clients := newFakeClients("us-east-1")
	f := clients.ec2s["us-east-1"]
	key := aws.ToString(customerKey("us-east-1").Arn)
	src := sourceImage()
	src.OwnerId = aws.String("111111111111")
	src.BlockDeviceMappings[0].Ebs.Encrypted, src.BlockDeviceMappings[0].Ebs.KmsKeyId = aws.Bool(true), aws.String(key)
	f.images[sourceAMI] = src
	f.snapshots[sourceSnap] = &types.Snapshot{SnapshotId: aws.String(sourceSnap), State: types.SnapshotStateCompleted, Encrypted: aws.Bool(true), KmsKeyId: aws.String(key)}
	state, b := stepState(t, clients, with("skip_launch", true, "instance_type", nil))
	abandon := registerSkipLaunch(t, state)
	if b.encrypted["/dev/xvda"] != sourceSnap || b.copySourceImage {
		t.Fatalf("expected the source snapshot used as is, got %v (copySourceImage %v)", b.encrypted, b.copySourceImage)
	}
	built := b.ami("us-east-1")

	abandon(multistep.StateCancelled)
	if _, ok := f.images[built]; ok {
		t.Errorf("AMI %s left after the interrupt", built)
	}
	if _, ok := f.snapshots[sourceSnap]; !ok || f.count("DeleteSnapshot") != 0 {
		t.Errorf("cleanup deleted snapshots it did not make (DeleteSnapshot calls %d, source snapshot kept %v)", f.count("DeleteSnapshot"), ok)
	}
}

// skip_launch of a public AMI goes through an encrypted CopyImage, whose
// snapshots are the register step's own: abandoning removes them too.
func TestStepRegisterCleanupRemovesItsCopyImage(t *testing.T) {
	clients := newFakeClients("us-east-1")
	f := clients.ec2s["us-east-1"]
	f.images[sourceAMI] = sourceImage() // its snapshot is not readable: absent from f.snapshots
	state, b := stepState(t, clients, with("skip_launch", true, "instance_type", nil))
	abandon := registerSkipLaunch(t, state)
	if !b.copySourceImage || f.count("CopyImage") != 1 || len(f.snapshots) != 1 {
		t.Fatalf("expected one encrypted CopyImage (copySourceImage %v, CopyImage calls %d, snapshots %d)", b.copySourceImage, f.count("CopyImage"), len(f.snapshots))
	}
	abandon(multistep.StateHalted)
	if len(f.images) != 1 || len(f.snapshots) != 0 {
		t.Errorf("left after failure: %d images (want only the source), %d snapshots", len(f.images), len(f.snapshots))
	}
}

func TestStepCopyRegions(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(map[bool]string{false: "success", true: "failure cleans up"}[fail], func(t *testing.T) {
			clients, state, b := launchedState(t, with("ami_regions", []string{"us-west-2", "eu-west-1"},
				"region_kms_key_ids", map[string]string{"us-west-2": "alias/amicrypt-build", "eu-west-1": "alias/amicrypt-build"}))
			b.setAMI("us-east-1", "ami-build")
			clients.ec2s["eu-west-1"].failCopies = fail
			step := &stepCopyRegions{}
			action := step.Run(context.Background(), state)
			if fail != (action == multistep.ActionHalt) {
				t.Fatalf("action = %v, error %v", action, state.Get("error"))
			}
			for _, r := range []string{"us-west-2", "eu-west-1"} {
				want := 1
				if fail && r == "eu-west-1" {
					want = regionCopyAttempts // a failed copy is tried afresh
				}
				if n := clients.ec2s[r].count("CopyImage"); n != want {
					t.Errorf("%s CopyImage calls = %d, want %d", r, n, want)
				}
			}
			if !fail {
				if len(b.amiSnapshot()) != 3 {
					t.Errorf("amis = %v", b.amiSnapshot())
				}
				return
			}
			if err := state.Get("error").(error).Error(); !strings.Contains(err, "Client.InvalidKMSKey.InvalidState: The KMS key may not be used") {
				t.Errorf("error = %s", err)
			}
			state.Put(multistep.StateHalted, true)
			step.Cleanup(state)
			for _, r := range []string{"us-west-2", "eu-west-1"} {
				if len(clients.ec2s[r].images) != 0 || len(clients.ec2s[r].snapshots) != 0 {
					t.Errorf("%s left %d images, %d snapshots", r, len(clients.ec2s[r].images), len(clients.ec2s[r].snapshots))
				}
			}
		})
	}
	token, again := copyToken("ami-1", "us-west-2", "k"), copyToken("ami-1", "us-west-2", "k")
	if token != again || token == copyToken("ami-2", "us-west-2", "k") || len(token) > 64 {
		t.Error("copy tokens must be stable per (AMI, region, key), distinct otherwise, ≤ 64 characters")
	}
}

func TestStepShare(t *testing.T) {
	clients, state, _ := launchedState(t, with("ami_users", []string{"222222222222"}, "snapshot_users", []string{"222222222222"}))
	_, encrypt := runSnapshotSteps(t, state)
	encrypt.Run(context.Background(), state)
	if (&stepRegisterImage{}).Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatal(state.Get("error"))
	}
	if (&stepShare{}).Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatal(state.Get("error"))
	}
	f := clients.ec2s["us-east-1"]
	if f.count("ModifyImageAttribute") != 1 || f.count("ModifySnapshotAttribute") != 1 {
		t.Errorf("calls = %v", f.calls)
	}
}

func TestArtifact(t *testing.T) {
	clients := newFakeClients("us-east-1", "eu-west-1")
	for r, id := range map[string]string{"us-east-1": "ami-1", "eu-west-1": "ami-2"} {
		clients.ec2s[r].images[id] = &types.Image{ImageId: aws.String(id), State: types.ImageStateAvailable,
			BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-" + id)}}}}
		clients.ec2s[r].snapshots["snap-"+id] = &types.Snapshot{SnapshotId: aws.String("snap-" + id)}
	}
	a := &Artifact{Amis: map[string]string{"us-east-1": "ami-1", "eu-west-1": "ami-2"}, KmsKeyARN: "arn:k1",
		RegionKMS: map[string]string{"eu-west-1": "arn:k2"}, SourceAMI: sourceAMI, clients: clients}
	if a.BuilderId() != "amicrypt.ebs" || a.Id() != "eu-west-1:ami-2,us-east-1:ami-1" {
		t.Errorf("id = %s", a.Id())
	}
	if s := a.String(); !strings.Contains(s, "eu-west-1: ami-2 (read back: every snapshot encrypted under arn:k2)") || !strings.Contains(s, "us-east-1: ami-1 (read back: every snapshot encrypted under arn:k1)") {
		t.Errorf("String() = %s", s)
	}
	if md := a.State("atlas.artifact.metadata").(map[string]string); md["region.us-east-1"] != "ami-1" {
		t.Errorf("atlas = %v", md)
	}
	imgs := a.State(registryimage.ArtifactStateURI).([]*registryimage.Image)
	if len(imgs) != 2 {
		t.Fatalf("hcp = %v", imgs)
	}
	for _, img := range imgs {
		if img.ProviderName != "aws" || img.SourceImageID != sourceAMI || img.Labels["encrypted"] != "true" || img.Labels["verified"] != "true" || img.Labels["kms_key_arn"] != a.keyFor(img.ProviderRegion) {
			t.Errorf("hcp image %+v", img)
		}
	}
	if err := a.Destroy(); err != nil {
		t.Fatal(err)
	}
	for r, f := range clients.ec2s {
		if len(f.images)+len(f.snapshots) != 0 {
			t.Errorf("%s: Destroy left %d images, %d snapshots", r, len(f.images), len(f.snapshots))
		}
	}
}
