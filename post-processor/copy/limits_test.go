package copy

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// TestBacksOffWhileCopyQuotaIsFull fills the concurrent-copy quota of one
// destination with another copy: the run waits for room instead of failing.
func TestBacksOffWhileCopyQuotaIsFull(t *testing.T) {
	srv := emu(t, awsemu.Options{Limits: awsemu.Limits{ConcurrentImageCopies: 1}})
	srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
	// Someone else's cross-region copy holds 222222222222/eu-west-1's only slot.
	other := ec2.NewFromConfig(srv.Config(context.Background(), "222222222222", "eu-west-1"))
	if _, err := other.CopyImage(context.Background(), &ec2.CopyImageInput{
		SourceImageId: aws.String(publicAMI), SourceRegion: aws.String("us-east-1"), Name: aws.String("unrelated-copy"), Encrypted: aws.Bool(true),
	}); err != nil {
		t.Fatal(err)
	}
	raw := baseConfig(t)
	raw["regions"] = []string{"eu-west-1"}
	raw["target"] = []map[string]interface{}{{"account_id": "222222222222"}}
	mark := srv.Emulator().CheckMark()
	ui := newUI()
	art, _, _, err := newPP(t, raw).PostProcess(context.Background(), ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI})
	if err != nil {
		t.Fatalf("PostProcess: %v\n%s", err, ui.buf)
	}
	if !strings.Contains(ui.buf.String(), "concurrent copy quota is full (ResourceLimitExceeded)") {
		t.Errorf("the run did not report backing off:\n%s", ui.buf)
	}
	refused := srv.Emulator().Audit(awsemu.AuditFilter{Action: "CopyImage", Outcome: "ResourceLimitExceeded", SinceSeq: mark})
	if len(refused) == 0 {
		t.Error("the quota was never hit; the test did not exercise the backoff")
	}
	if got := len(strings.Split(art.Id(), ",")); got != 1 {
		t.Errorf("artifact %q", art.Id())
	}
	check(t, srv, mark)
}

// TestRidesOutThrottling throttles a third of the target accounts' EC2
// Describe calls: the adaptive retryer absorbs it.
func TestRidesOutThrottling(t *testing.T) {
	faults := &awsemu.FaultProfile{Seed: 7, Rules: []awsemu.FaultRule{
		{Kind: awsemu.FaultThrottle, Service: "ec2", Action: "Describe*", Account: "222222222222", Probability: 0.3},
		{Kind: awsemu.FaultThrottle, Service: "ec2", Action: "Describe*", Account: "333333333333", Probability: 0.3},
	}}
	srv := emu(t, awsemu.Options{Faults: faults})
	srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
	raw := baseConfig(t)
	raw["regions"] = []string{"us-east-1"}
	raw["target"] = []map[string]interface{}{{"account_id": "222222222222"}, {"account_id": "333333333333"}}
	mark := srv.Emulator().CheckMark()
	ui := newUI()
	if _, _, _, err := newPP(t, raw).PostProcess(context.Background(), ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI}); err != nil {
		t.Fatalf("PostProcess under throttling: %v\n%s", err, ui.buf)
	}
	if n := len(srv.Emulator().Audit(awsemu.AuditFilter{Outcome: "RequestLimitExceeded", SinceSeq: mark})); n == 0 {
		t.Error("nothing was throttled; the test did not exercise the retries")
	}
	assertNothingLeftInSource(t, srv, "us-east-1", srcAMI)
	check(t, srv, mark)
}

// assertSharedOnlyWith checks the AMI's launch permissions and the
// snapshot's createVolume permissions name account alone.
func assertSharedOnlyWith(t *testing.T, client *ec2.Client, amiID, snapID, account string) {
	t.Helper()
	ctx := context.Background()
	attr, err := client.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(amiID), Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil {
		t.Fatal(err)
	}
	var launch []string
	for _, p := range attr.LaunchPermissions {
		launch = append(launch, aws.ToString(p.UserId)+aws.ToString(p.OrganizationArn)+aws.ToString(p.OrganizationalUnitArn)+string(p.Group))
	}
	if len(launch) != 1 || launch[0] != account {
		t.Errorf("launch permissions of %s after the run %v, want only %s", amiID, launch, account)
	}
	sattr, err := client.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(snapID), Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil {
		t.Fatal(err)
	}
	var volume []string
	for _, p := range sattr.CreateVolumePermissions {
		volume = append(volume, aws.ToString(p.UserId)+string(p.Group))
	}
	if len(volume) != 1 || volume[0] != account {
		t.Errorf("createVolume permissions of %s after the run %v, want only %s", snapID, volume, account)
	}
}

// TestLeavesEarlierSharesAlone: a launch and createVolume permission that
// existed before the run is not the run's to remove.
func TestLeavesEarlierSharesAlone(t *testing.T) {
	srv := emu(t, awsemu.Options{})
	srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
	ctx := context.Background()
	client := ec2.NewFromConfig(srv.Config(ctx, srcAccount, "us-east-1"))
	img, err := ebs.FindImageByID(ctx, client, srcAMI)
	if err != nil {
		t.Fatal(err)
	}
	snap := ebs.ImageSnapshotIDs(img)[0]
	if err := ebs.ShareImage(ctx, client, srcAMI, ebs.Sharing{Users: []string{"222222222222"}}); err != nil {
		t.Fatal(err)
	}
	if err := ebs.ShareSnapshot(ctx, client, snap, []string{"222222222222"}); err != nil {
		t.Fatal(err)
	}
	raw := baseConfig(t)
	raw["regions"] = []string{"us-east-1"}
	raw["target"] = []map[string]interface{}{{"account_id": "222222222222"}, {"account_id": "333333333333"}}
	ui := newUI()
	if _, _, _, err := newPP(t, raw).PostProcess(ctx, ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI}); err != nil {
		t.Fatalf("PostProcess: %v\n%s", err, ui.buf)
	}
	assertSharedOnlyWith(t, client, srcAMI, snap, "222222222222")
}

// TestMultiRegionSource: an artifact with an AMI in each of two regions
// (amicrypt-ebs with ami_regions). By default each target gets both regions,
// and each copy is made from the source AMI of its own region.
func TestMultiRegionSource(t *testing.T) {
	srv := emu(t, awsemu.Options{})
	east := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
	west := makeSourceAMI(t, srv, "eu-west-1", "ami-0a1b2c3d4e5f60003", "alias/amicrypt-build")
	raw := baseConfig(t)
	delete(raw, "regions")
	delete(raw, "region")
	raw["target"] = []map[string]interface{}{{"account_id": "222222222222"}, {"account_id": "444444444444", "external_id": "amicrypt-demo"}}
	mark := srv.Emulator().CheckMark()
	ui := newUI()
	art, _, _, err := newPP(t, raw).PostProcess(context.Background(), ui, fakeArtifact{"amicrypt.ebs", "eu-west-1:" + west + ",us-east-1:" + east})
	if err != nil {
		t.Fatalf("PostProcess: %v\n%s", err, ui.buf)
	}
	ids := strings.Split(art.Id(), ",")
	if len(ids) != 4 {
		t.Fatalf("artifact %q, want 2 accounts x 2 regions", art.Id())
	}
	for _, id := range ids {
		p := strings.Split(id, ":")
		src := map[string]string{"us-east-1": east, "eu-west-1": west}[p[1]]
		assertCopyFrom(t, srv, p[0], p[1], p[2], src, p[1])
	}
	assertNothingLeftInSource(t, srv, "us-east-1", east)
	assertNothingLeftInSource(t, srv, "eu-west-1", west)
	check(t, srv, mark)
}
