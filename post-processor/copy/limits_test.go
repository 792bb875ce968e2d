package copy

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

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

// TestRetiresGrantsLeftByAKilledRun: a run killed before its cleanup left a
// grant on the source key; the next run finds it by name and retires it.
// TestRetiresGrantsLeftByAKilledRun: runs killed before their cleanup left
// grants and the permissions the grants' names record (for 222222222222,
// a target again, and 444444444444, no longer one). The rerun removes them
// all, and leaves alone a share of 333333333333 that no grant claims.
func TestRetiresGrantsLeftByAKilledRun(t *testing.T) {
	srv := emu(t, awsemu.Options{})
	srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
	ctx := context.Background()
	cfg := srv.Config(ctx, srcAccount, "us-east-1")
	client := ec2.NewFromConfig(cfg)
	kc := kms.NewFromConfig(cfg)
	key, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-build")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := ebs.FindImageByID(ctx, client, srcAMI)
	if err != nil {
		t.Fatal(err)
	}
	snap := ebs.ImageSnapshotIDs(img)[0]
	killed := map[string]shared{"222222222222": {launch: true, volume: true}, "444444444444": {launch: true}}
	for acct, held := range killed {
		if _, err := kc.CreateGrant(ctx, &kms.CreateGrantInput{
			KeyId: key.KeyMetadata.Arn, GranteePrincipal: aws.String("arn:aws:iam::" + acct + ":role/amicrypt-copy"),
			Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt}, Name: aws.String(grantName(srcAMI, acct, held)),
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ebs.ShareImage(ctx, client, srcAMI, ebs.Sharing{Users: []string{"222222222222", "333333333333", "444444444444"}}); err != nil {
		t.Fatal(err)
	}
	if err := ebs.ShareSnapshot(ctx, client, snap, []string{"222222222222", "333333333333"}); err != nil {
		t.Fatal(err)
	}

	raw := baseConfig(t)
	raw["regions"] = []string{"us-east-1"}
	raw["target"] = []map[string]interface{}{{"account_id": "222222222222"}}
	ui := newUI()
	if _, _, _, err := newPP(t, raw).PostProcess(ctx, ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI}); err != nil {
		t.Fatalf("PostProcess: %v\n%s", err, ui.buf)
	}
	if n := strings.Count(ui.buf.String(), "left by an earlier run"); n < 2 {
		t.Errorf("%d stale grants reported, want both:\n%s", n, ui.buf)
	}
	assertSharedOnlyWith(t, client, srcAMI, snap, "333333333333")
	assertNoGrants := func(when string) {
		t.Helper()
		grants, err := kc.ListGrants(ctx, &kms.ListGrantsInput{KeyId: key.KeyMetadata.Arn})
		if err != nil {
			t.Fatal(err)
		}
		if len(grants.Grants) != 0 {
			t.Errorf("%s: %d grants left on the source key: %+v", when, len(grants.Grants), grants.Grants)
		}
	}
	assertNoGrants("after the rerun")

	// Killed again after its copy was made: the next run reuses the copy,
	// shares nothing, and still takes back what the killed run lent.
	if _, err := kc.CreateGrant(ctx, &kms.CreateGrantInput{
		KeyId: key.KeyMetadata.Arn, GranteePrincipal: aws.String("arn:aws:iam::222222222222:role/amicrypt-copy"),
		Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt}, Name: aws.String(grantName(srcAMI, "222222222222", shared{launch: true, volume: true})),
	}); err != nil {
		t.Fatal(err)
	}
	if err := ebs.ShareImage(ctx, client, srcAMI, ebs.Sharing{Users: []string{"222222222222"}}); err != nil {
		t.Fatal(err)
	}
	if err := ebs.ShareSnapshot(ctx, client, snap, []string{"222222222222"}); err != nil {
		t.Fatal(err)
	}
	ui = newUI()
	if _, _, _, err := newPP(t, raw).PostProcess(ctx, ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI}); err != nil {
		t.Fatalf("PostProcess with the copy made: %v\n%s", err, ui.buf)
	}
	if !strings.Contains(ui.buf.String(), "reused") {
		t.Errorf("the copy was not reused:\n%s", ui.buf)
	}
	assertSharedOnlyWith(t, client, srcAMI, snap, "333333333333")
	assertNoGrants("after the run that reused the copy")
}

func TestGrantNameRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		account string
		held    shared
		ok      bool
	}{
		{grantName("ami-0abc", "222222222222", shared{}), "222222222222", shared{}, true},
		{grantName("ami-0abc", "222222222222", shared{launch: true}), "222222222222", shared{launch: true}, true},
		{grantName("ami-0abc", "333333333333", shared{volume: true}), "333333333333", shared{volume: true}, true},
		{grantName("ami-0abc", "444444444444", shared{launch: true, volume: true}), "444444444444", shared{launch: true, volume: true}, true},
		{grantName("ami-0def", "222222222222", shared{launch: true}), "", shared{}, false}, // another AMI
		{"amicrypt-copy-ami-0abc-autoscaling", "", shared{}, false},
		{"amicrypt-autoscaling", "", shared{}, false},
	}
	for _, tt := range tests {
		acct, held, ok := parseGrantName("ami-0abc", tt.name)
		if acct != tt.account || held != tt.held || ok != tt.ok {
			t.Errorf("parseGrantName(%q) = %q, %+v, %v; want %q, %+v, %v", tt.name, acct, held, ok, tt.account, tt.held, tt.ok)
		}
	}
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
