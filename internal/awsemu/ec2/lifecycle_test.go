package ec2_test

import (
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// realTime is an emulator on the real latency model (TimeScale 1) whose
// clock the test moves with Advance.
func realTime(t *testing.T, opts awsemu.Options) *emutest.Env {
	opts.TimeScale = 1
	return emutest.NewEnv(t, opts)
}

// runningInstance launches from the seed AMI and advances until running.
func runningInstance(x *emutest.Env, account string, in *ec2.RunInstancesInput) (string, string) {
	x.T.Helper()
	c := x.EC2(account, emutest.East)
	if in == nil {
		in = &ec2.RunInstancesInput{}
	}
	in.ImageId, in.MinCount, in.MaxCount = aws.String(emutest.SeedAMI), aws.Int32(1), aws.Int32(1)
	run := emutest.Must[*ec2.RunInstancesOutput](x.T, "RunInstances")(c.RunInstances(x.Ctx, in))
	id := aws.ToString(run.Instances[0].InstanceId)
	x.Srv.Emulator().Advance(time.Minute)
	inst := x.Instance(c, id)
	if inst.State.Name != types.InstanceStateNameRunning {
		x.T.Fatalf("instance %s after a minute: %s", id, inst.State.Name)
	}
	return id, aws.ToString(inst.BlockDeviceMappings[0].Ebs.VolumeId)
}

// ownSnapshot makes a completed unencrypted 8 GiB snapshot in account/us-east-1.
func ownSnapshot(x *emutest.Env, account string) string {
	x.T.Helper()
	_, vol := runningInstance(x, account, nil)
	out := emutest.Must[*ec2.CreateSnapshotOutput](x.T, "CreateSnapshot")(x.EC2(account, emutest.East).CreateSnapshot(x.Ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)}))
	x.Srv.Emulator().Advance(time.Hour)
	return aws.ToString(out.SnapshotId)
}

func TestEC2InstanceLifecycle(t *testing.T) {
	x := realTime(t, awsemu.Options{})
	c := x.EC2(emutest.AcctBuild, emutest.East)
	emu := x.Srv.Emulator()
	run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(x.Ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ClientToken: aws.String("tok-1")}))
	id := aws.ToString(run.Instances[0].InstanceId)
	steps := []struct {
		name    string
		act     func() error
		advance time.Duration
		before  types.InstanceStateName
		after   types.InstanceStateName
	}{
		{"launch", func() error { return nil }, time.Minute, types.InstanceStateNamePending, types.InstanceStateNameRunning},
		{"stop", func() error {
			_, err := c.StopInstances(x.Ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
			return err
		}, time.Minute, types.InstanceStateNameStopping, types.InstanceStateNameStopped},
		{"start", func() error {
			_, err := c.StartInstances(x.Ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
			return err
		}, time.Minute, types.InstanceStateNamePending, types.InstanceStateNameRunning},
		{"terminate", func() error {
			_, err := c.TerminateInstances(x.Ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
			return err
		}, time.Minute, types.InstanceStateNameShuttingDown, types.InstanceStateNameTerminated},
	}
	for _, s := range steps {
		if err := s.act(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := x.Instance(c, id).State.Name; got != s.before {
			t.Fatalf("%s: state %s, want %s", s.name, got, s.before)
		}
		emu.Advance(s.advance)
		if got := x.Instance(c, id).State.Name; got != s.after {
			t.Fatalf("%s: after %s state %s, want %s", s.name, s.advance, got, s.after)
		}
	}
	if _, err := c.StopInstances(x.Ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); emutest.APICode(err) != "IncorrectInstanceState" {
		t.Fatalf("stopping a terminated instance: %v", err)
	}
	// docs/aws-behaviour.md 3.10: the same token returns the first reservation, other
	// parameters are a mismatch.
	again := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances again")(c.RunInstances(x.Ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ClientToken: aws.String("tok-1")}))
	if aws.ToString(again.Instances[0].InstanceId) != id || aws.ToString(again.ReservationId) != aws.ToString(run.ReservationId) {
		t.Fatalf("idempotent RunInstances gave %s", aws.ToString(again.Instances[0].InstanceId))
	}
	_, err := c.RunInstances(x.Ctx, &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		ClientToken: aws.String("tok-1"), InstanceType: types.InstanceTypeM5Large})
	if emutest.APICode(err) != "IdempotentParameterMismatch" {
		t.Fatalf("RunInstances token reuse: %v", err)
	}
	st := emutest.Must[*ec2.DescribeInstanceStatusOutput](t, "DescribeInstanceStatus")(c.DescribeInstanceStatus(x.Ctx, &ec2.DescribeInstanceStatusInput{
		InstanceIds: []string{id}, IncludeAllInstances: aws.Bool(true)}))
	if len(st.InstanceStatuses) != 1 || st.InstanceStatuses[0].InstanceState.Name != types.InstanceStateNameTerminated {
		t.Fatalf("DescribeInstanceStatus: %+v", st.InstanceStatuses)
	}
}

// TestEC2SnapshotProgressAndImageState: a snapshot reports 0%…99% while
// pending, and an AMI is available only when every snapshot completes.
func TestEC2SnapshotProgressAndImageState(t *testing.T) {
	x := realTime(t, awsemu.Options{})
	emu := x.Srv.Emulator()
	c := x.EC2(emutest.AcctBuild, emutest.East)
	id, _ := runningInstance(x, emutest.AcctBuild, nil)
	ci := emutest.Must[*ec2.CreateImageOutput](t, "CreateImage")(c.CreateImage(x.Ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("progress-1")}))
	img := x.Image(c, aws.ToString(ci.ImageId))
	snapID := aws.ToString(img.BlockDeviceMappings[0].Ebs.SnapshotId)
	pct := regexp.MustCompile(`^[0-9]{1,2}%$`)
	var seen []string
	for i := 0; i < 4; i++ {
		s := x.Snapshot(c, snapID)
		if s.State != types.SnapshotStatePending || !pct.MatchString(aws.ToString(s.Progress)) {
			t.Fatalf("step %d: snapshot %s progress %q", i, s.State, aws.ToString(s.Progress))
		}
		if st := x.Image(c, aws.ToString(ci.ImageId)).State; st != types.ImageStatePending {
			t.Fatalf("image %s while its snapshot is pending", st)
		}
		seen = append(seen, aws.ToString(s.Progress))
		emu.Advance(30 * time.Second)
	}
	if seen[0] == seen[len(seen)-1] {
		t.Fatalf("progress did not move: %v", seen)
	}
	emu.Advance(time.Hour)
	if s := x.Snapshot(c, snapID); s.State != types.SnapshotStateCompleted || aws.ToString(s.Progress) != "100%" {
		t.Fatalf("snapshot after an hour: %s %s", s.State, aws.ToString(s.Progress))
	}
	if st := x.Image(c, aws.ToString(ci.ImageId)).State; st != types.ImageStateAvailable {
		t.Fatalf("image after its snapshot completed: %s", st)
	}
}

// TestEC2CopyTimes: copy time grows with size and across regions, and the
// first copy under a key is full while the next one is incremental.
func TestEC2CopyTimes(t *testing.T) {
	x := realTime(t, awsemu.Options{})
	emu := x.Srv.Emulator()
	c := x.EC2(emutest.AcctBuild, emutest.East)
	cw := x.EC2(emutest.AcctBuild, emutest.West)
	src := ownSnapshot(x, emutest.AcctBuild)
	copyDuration := func(cl *ec2.Client, region string) time.Duration {
		t.Helper()
		out := emutest.Must[*ec2.CopySnapshotOutput](t, "CopySnapshot")(cl.CopySnapshot(x.Ctx, &ec2.CopySnapshotInput{
			SourceSnapshotId: aws.String(src), SourceRegion: aws.String(emutest.East), Encrypted: aws.Bool(true)}))
		var d time.Duration
		for x.Snapshot(cl, aws.ToString(out.SnapshotId)).State == types.SnapshotStatePending {
			emu.Advance(10 * time.Second)
			d += 10 * time.Second
		}
		return d
	}
	first := copyDuration(c, emutest.East)
	second := copyDuration(c, emutest.East)
	cross := copyDuration(cw, emutest.West)
	if second >= first || cross <= first {
		t.Fatalf("copy durations: first %s, incremental %s, cross-region %s", first, second, cross)
	}
}

// TestEC2Quotas: concurrent copies over the quota fail with
// ResourceLimitExceeded until copies finish (docs/aws-behaviour.md 3.13).
func TestEC2Quotas(t *testing.T) {
	x := realTime(t, awsemu.Options{Limits: awsemu.Limits{ConcurrentImageCopies: 2, ConcurrentSnapshotCopies: 2}})
	c := x.EC2(emutest.AcctBuild, emutest.East)
	src := ownSnapshot(x, emutest.AcctBuild)
	tests := []struct {
		name string
		copy func(i int) error
	}{
		{"image copies", func(i int) error {
			_, err := c.CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East),
				Name: aws.String("quota-" + string(rune('a'+i))), Encrypted: aws.Bool(true)})
			return err
		}},
		{"snapshot copies", func(int) error {
			_, err := c.CopySnapshot(x.Ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(src), SourceRegion: aws.String(emutest.East), Encrypted: aws.Bool(true)})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 2; i++ {
				if err := tc.copy(i); err != nil {
					t.Fatalf("copy %d: %v", i, err)
				}
			}
			if err := tc.copy(2); emutest.APICode(err) != "ResourceLimitExceeded" {
				t.Fatalf("third concurrent copy: %v", err)
			}
			// Another account-region has its own quota.
			x.Srv.Emulator().Advance(2 * time.Hour)
			if err := tc.copy(3); err != nil {
				t.Fatalf("copy after the others finished: %v", err)
			}
		})
	}
}

// TestEC2Faults: NotFound right after create (docs/aws-behaviour.md 3.14) and copies that fail.
func TestEC2Faults(t *testing.T) {
	x := realTime(t, awsemu.Options{Faults: &awsemu.FaultProfile{Rules: []awsemu.FaultRule{
		{Kind: awsemu.FaultNotFoundAfterNew, Action: "CopyImage", Max: 1},
		{Kind: awsemu.FaultCopyFails, Action: "CopySnapshot", Max: 1},
		{Kind: awsemu.FaultCopyFails, Action: "CopyImage", Nth: []int{2}},
	}}})
	emu := x.Srv.Emulator()
	c := x.EC2(emutest.AcctBuild, emutest.East)
	src := ownSnapshot(x, emutest.AcctBuild)
	first := emutest.Must[*ec2.CopyImageOutput](t, "CopyImage")(c.CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("fault-1")}))
	if _, err := c.DescribeImages(x.Ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(first.ImageId)}}); emutest.APICode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("DescribeImages right after CopyImage with the fault: %v", err)
	}
	if _, err := c.CreateTags(x.Ctx, &ec2.CreateTagsInput{Resources: []string{aws.ToString(first.ImageId)}, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}}); emutest.APICode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("CreateTags right after CopyImage with the fault: %v", err)
	}
	second := emutest.Must[*ec2.CopyImageOutput](t, "CopyImage")(c.CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("fault-2")}))
	snap := emutest.Must[*ec2.CopySnapshotOutput](t, "CopySnapshot")(c.CopySnapshot(x.Ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(src), SourceRegion: aws.String(emutest.East)}))
	emu.Advance(2 * time.Hour)
	if img := x.Image(c, aws.ToString(first.ImageId)); img.State != types.ImageStateAvailable {
		t.Fatalf("first copy: %s", img.State)
	}
	if img := x.Image(c, aws.ToString(second.ImageId)); img.State != types.ImageStateFailed || img.StateReason == nil {
		t.Fatalf("second copy with copy-fails: %s %+v", img.State, img.StateReason)
	}
	if s := x.Snapshot(c, aws.ToString(snap.SnapshotId)); s.State != types.SnapshotStateError || aws.ToString(s.StateMessage) == "" {
		t.Fatalf("snapshot copy with copy-fails: %s %q", s.State, aws.ToString(s.StateMessage))
	}
}

// TestEC2EncryptionDefaults: the default EBS key and encryption by default.
func TestEC2EncryptionDefaults(t *testing.T) {
	x := realTime(t, awsemu.Options{})
	c := x.EC2(emutest.AcctT2, emutest.East)
	managed := x.KeyARN(emutest.AcctT2, emutest.East, "alias/aws/ebs")
	target := x.KeyARN(emutest.AcctT2, emutest.East, "alias/amicrypt-target")
	src := ownSnapshot(x, emutest.AcctT2)

	// Encrypted without KmsKeyId: the account's default key, as an ARN.
	cp := emutest.Must[*ec2.CopySnapshotOutput](t, "CopySnapshot")(c.CopySnapshot(x.Ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(src), SourceRegion: aws.String(emutest.East), Encrypted: aws.Bool(true)}))
	if s := x.Snapshot(c, aws.ToString(cp.SnapshotId)); !aws.ToBool(s.Encrypted) || aws.ToString(s.KmsKeyId) != managed {
		t.Fatalf("default-key copy: %v %s, want %s", aws.ToBool(s.Encrypted), aws.ToString(s.KmsKeyId), managed)
	}
	// A key alias is reported as the key ARN.
	cp2 := emutest.Must[*ec2.CopySnapshotOutput](t, "CopySnapshot")(c.CopySnapshot(x.Ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(src), SourceRegion: aws.String(emutest.East),
		Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/amicrypt-target")}))
	if s := x.Snapshot(c, aws.ToString(cp2.SnapshotId)); aws.ToString(s.KmsKeyId) != target {
		t.Fatalf("alias copy key %s, want %s", aws.ToString(s.KmsKeyId), target)
	}

	get := emutest.Must[*ec2.GetEbsEncryptionByDefaultOutput](t, "GetEbsEncryptionByDefault")(c.GetEbsEncryptionByDefault(x.Ctx, &ec2.GetEbsEncryptionByDefaultInput{}))
	if aws.ToBool(get.EbsEncryptionByDefault) {
		t.Fatal("encryption by default is on in the default world")
	}
	emutest.Must[*ec2.EnableEbsEncryptionByDefaultOutput](t, "Enable")(c.EnableEbsEncryptionByDefault(x.Ctx, &ec2.EnableEbsEncryptionByDefaultInput{}))
	key := emutest.Must[*ec2.GetEbsDefaultKmsKeyIdOutput](t, "GetEbsDefaultKmsKeyId")(c.GetEbsDefaultKmsKeyId(x.Ctx, &ec2.GetEbsDefaultKmsKeyIdInput{}))
	if aws.ToString(key.KmsKeyId) != "arn:aws:kms:us-east-1:222222222222:alias/aws/ebs" {
		t.Fatalf("GetEbsDefaultKmsKeyId: %s", aws.ToString(key.KmsKeyId))
	}
	_, vol := runningInstance(x, emutest.AcctT2, nil)
	v := emutest.Must[*ec2.DescribeVolumesOutput](t, "DescribeVolumes")(c.DescribeVolumes(x.Ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{vol}}))
	if !aws.ToBool(v.Volumes[0].Encrypted) || aws.ToString(v.Volumes[0].KmsKeyId) != managed {
		t.Fatalf("volume with encryption by default: %+v", v.Volumes[0])
	}
	emutest.Must[*ec2.ModifyEbsDefaultKmsKeyIdOutput](t, "ModifyEbsDefaultKmsKeyId")(c.ModifyEbsDefaultKmsKeyId(x.Ctx, &ec2.ModifyEbsDefaultKmsKeyIdInput{KmsKeyId: aws.String("alias/amicrypt-target")}))
	_, vol = runningInstance(x, emutest.AcctT2, nil)
	v = emutest.Must[*ec2.DescribeVolumesOutput](t, "DescribeVolumes")(c.DescribeVolumes(x.Ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{vol}}))
	if aws.ToString(v.Volumes[0].KmsKeyId) != target {
		t.Fatalf("volume under the modified default key: %s, want %s", aws.ToString(v.Volumes[0].KmsKeyId), target)
	}
	// Another region of the same account is unaffected.
	w := emutest.Must[*ec2.GetEbsEncryptionByDefaultOutput](t, "Get west")(x.EC2(emutest.AcctT2, emutest.West).GetEbsEncryptionByDefault(x.Ctx, &ec2.GetEbsEncryptionByDefaultInput{}))
	if aws.ToBool(w.EbsEncryptionByDefault) {
		t.Fatal("encryption by default leaked to another region")
	}
}

// TestEC2TagsPerAccount: docs/aws-behaviour.md 3.6.
func TestEC2TagsPerAccount(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	f := newRuleFixture(x)
	b, t2 := x.EC2(emutest.AcctBuild, emutest.East), x.EC2(emutest.AcctT2, emutest.East)
	emutest.Must[*ec2.CreateTagsOutput](t, "owner tags")(b.CreateTags(x.Ctx, &ec2.CreateTagsInput{Resources: []string{f.custAMI},
		Tags: []types.Tag{{Key: aws.String("Owner"), Value: aws.String("platform")}}}))
	x.Share(emutest.AcctBuild, emutest.East, f.custAMI, f.custSnap, emutest.AcctT2)
	emutest.Must[*ec2.CreateTagsOutput](t, "target tags")(t2.CreateTags(x.Ctx, &ec2.CreateTagsInput{Resources: []string{f.custAMI},
		Tags: []types.Tag{{Key: aws.String("Seen"), Value: aws.String("yes")}}}))
	tagKeys := func(tags []types.Tag) []string {
		var out []string
		for _, tg := range tags {
			out = append(out, aws.ToString(tg.Key))
		}
		sort.Strings(out)
		return out
	}
	if got := tagKeys(x.Image(b, f.custAMI).Tags); len(got) != 1 || got[0] != "Owner" {
		t.Fatalf("owner sees %v", got)
	}
	if got := tagKeys(x.Image(t2, f.custAMI).Tags); len(got) != 1 || got[0] != "Seen" {
		t.Fatalf("target sees %v", got)
	}
	filtered := emutest.Must[*ec2.DescribeImagesOutput](t, "by tag")(t2.DescribeImages(x.Ctx, &ec2.DescribeImagesInput{
		Filters: []types.Filter{{Name: aws.String("tag:Owner"), Values: []string{"platform"}}}}))
	if len(filtered.Images) != 0 {
		t.Fatalf("target filtered by the owner's tag: %d images", len(filtered.Images))
	}
	// CopyImageTags in the target copies only the target's own tags.
	out := emutest.Must[*ec2.CopyImageOutput](t, "CopyImage")(t2.CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(f.custAMI), SourceRegion: aws.String(emutest.East),
		Name: aws.String("tagged-copy"), CopyImageTags: aws.Bool(true), Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/amicrypt-target")}))
	if got := tagKeys(x.Image(t2, aws.ToString(out.ImageId)).Tags); len(got) != 1 || got[0] != "Seen" {
		t.Fatalf("copy carries %v", got)
	}
	desc := emutest.Must[*ec2.DescribeTagsOutput](t, "DescribeTags")(t2.DescribeTags(x.Ctx, &ec2.DescribeTagsInput{
		Filters: []types.Filter{{Name: aws.String("resource-id"), Values: []string{f.custAMI}}}}))
	if len(desc.Tags) != 1 || aws.ToString(desc.Tags[0].Key) != "Seen" || desc.Tags[0].ResourceType != types.ResourceTypeImage {
		t.Fatalf("DescribeTags in the target: %+v", desc.Tags)
	}
	emutest.Must[*ec2.DeleteTagsOutput](t, "DeleteTags")(t2.DeleteTags(x.Ctx, &ec2.DeleteTagsInput{Resources: []string{f.custAMI}, Tags: []types.Tag{{Key: aws.String("Seen")}}}))
	if got := tagKeys(x.Image(t2, f.custAMI).Tags); len(got) != 0 {
		t.Fatalf("after DeleteTags the target sees %v", got)
	}
	if got := tagKeys(x.Image(b, f.custAMI).Tags); len(got) != 1 {
		t.Fatalf("the target's DeleteTags touched the owner's tags: %v", got)
	}
}
