package copy

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/hashicorp/packer-plugin-sdk/packer"
	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/fanout"
)

// The default world (see the team notes): source account and its key, three
// target accounts with role amicrypt-copy and alias/amicrypt-target keys.
const (
	srcAccount = "111111111111"
	publicAMI  = "ami-0a1b2c3d4e5f60001" // us-east-1
)

// emu starts the emulator and points the SDK (and so the plugin) at it.
func emu(t *testing.T, opts awsemu.Options) *emutest.Server {
	t.Helper()
	srv := emutest.Start(t, opts)
	srv.PointEnv(t, "")
	t.Setenv(awsauth.EnvPollDelay, "0.005")
	return srv
}

// sourceAMI makes an AMI in the source account: a copy of the public AMI,
// encrypted under keyRef ("" for the AWS-managed aws/ebs), tagged as a
// build would tag it.
func makeSourceAMI(t *testing.T, srv *emutest.Server, region, publicID, keyRef string) string {
	t.Helper()
	ctx := context.Background()
	client := ec2.NewFromConfig(srv.Config(ctx, srcAccount, region))
	in := &ec2.CopyImageInput{
		SourceImageId: aws.String(publicID), SourceRegion: aws.String(region),
		Name: aws.String(freeName(t, client, "golden-"+amiNameCleaner.Replace(t.Name()))), Encrypted: aws.Bool(true),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeImage, Tags: ebs.Tags(map[string]string{"Team": "platform", "Release": "2026.11"})}},
	}
	if keyRef != "" {
		in.KmsKeyId = aws.String(keyRef)
	}
	out, err := client.CopyImage(ctx, in)
	if err != nil {
		t.Fatalf("making the source AMI: %v", err)
	}
	id := aws.ToString(out.ImageId)
	if _, err := ebs.WaitImageAvailable(ctx, client, awsauth.NewPolling(5*time.Millisecond, 2000), id, nil); err != nil {
		t.Fatalf("source AMI %s: %v", id, err)
	}
	return id
}

// amiNameCleaner turns a test name into AMI name characters.
var amiNameCleaner = strings.NewReplacer(":", "-", ",", "-", "=", "-", "+", "-", "*", "-")

// freeName is name, or name-2, name-3… when an AMI of the account has it:
// a test may make several source AMIs (a rebuild).
func freeName(t *testing.T, client *ec2.Client, name string) string {
	t.Helper()
	for i := 2; ; i++ {
		imgs, err := ebs.FindImagesByName(context.Background(), client, "self", name)
		if err != nil {
			t.Fatal(err)
		}
		if len(imgs) == 0 {
			return name
		}
		name = strings.TrimSuffix(name, fmt.Sprintf("-%d", i-1)) + fmt.Sprintf("-%d", i)
	}
}

type fakeArtifact struct{ builderID, id string }

func (a fakeArtifact) BuilderId() string        { return a.builderID }
func (a fakeArtifact) Files() []string          { return nil }
func (a fakeArtifact) Id() string               { return a.id }
func (a fakeArtifact) String() string           { return a.id }
func (a fakeArtifact) State(string) interface{} { return nil }
func (a fakeArtifact) Destroy() error           { return nil }

// baseConfig is the demo shape: three target accounts and the source
// account itself, in us-east-1 and eu-west-1.
func baseConfig(t *testing.T) map[string]interface{} {
	return map[string]interface{}{
		"region":          "us-east-1",
		"access_key":      "AKIA1111111111111111",
		"secret_key":      "emu-secret-111111111111",
		"role_name":       "amicrypt-copy",
		"kms_key_id":      "alias/amicrypt-target",
		"regions":         []string{"us-east-1", "eu-west-1"},
		"tags":            map[string]string{"Owner": "amicrypt-tests"},
		"snapshot_tags":   map[string]string{"Backup": "none"},
		"manifest_output": filepath.Join(t.TempDir(), "copies.json"),
		"target": []map[string]interface{}{
			{"account_id": "222222222222"},
			{"account_id": "333333333333"},
			{"account_id": "444444444444", "external_id": "amicrypt-demo"},
			{"account_id": srcAccount, "role_arn": "arn:aws:iam::111111111111:role/amicrypt-build", "kms_key_id": "alias/amicrypt-build"},
		},
	}
}

func newPP(t *testing.T, raw map[string]interface{}) *PostProcessor {
	t.Helper()
	p := &PostProcessor{retry: fanout.Backoff{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, Attempts: 40}}
	if err := p.Configure(raw); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return p
}

type testUI struct {
	packer.Ui
	buf *bytes.Buffer
}

func newUI() *testUI {
	var buf bytes.Buffer
	return &testUI{Ui: &packer.BasicUi{Reader: strings.NewReader(""), Writer: &buf, ErrorWriter: &buf}, buf: &buf}
}

// assertNothingLeftInSource checks the source AMI and its snapshots are
// shared with nobody and its key carries no grant.
func assertNothingLeftInSource(t *testing.T, srv *emutest.Server, region, amiID string) {
	t.Helper()
	ctx := context.Background()
	cfg := srv.Config(ctx, srcAccount, region)
	client := ec2.NewFromConfig(cfg)
	attr, err := client.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(amiID), Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil {
		t.Fatal(err)
	}
	if len(attr.LaunchPermissions) != 0 {
		t.Errorf("source %s still has launch permissions %+v", amiID, attr.LaunchPermissions)
	}
	img, err := ebs.FindImageByID(ctx, client, amiID)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, snap := range ebs.ImageSnapshotIDs(img) {
		sa, err := client.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(snap), Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission})
		if err != nil {
			t.Fatal(err)
		}
		if len(sa.CreateVolumePermissions) != 0 {
			t.Errorf("source snapshot %s still has createVolume permissions %+v", snap, sa.CreateVolumePermissions)
		}
		s, err := ebs.FindSnapshotByID(ctx, client, snap)
		if err != nil {
			t.Fatal(err)
		}
		if k := aws.ToString(s.KmsKeyId); k != "" {
			keys[k] = true
		}
	}
	kc := kms.NewFromConfig(cfg)
	for k := range keys {
		grants, err := kc.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		if len(grants.Grants) != 0 {
			t.Errorf("source key %s still has %d grant(s): %+v", k, len(grants.Grants), grants.Grants)
		}
	}
}

// check runs the emulator's invariant checker over everything since mark.
func check(t *testing.T, srv *emutest.Server, mark int) awsemu.CheckReport {
	t.Helper()
	rep := srv.Emulator().Check(awsemu.CheckOptions{SinceSeq: mark})
	if !rep.Pass {
		t.Errorf("invariant checker: %s", rep)
	}
	return rep
}

// callsSince counts the calls of action since mark that were meant to do
// something: DryRun probes (answered DryRunOperation) don't count.
func callsSince(srv *emutest.Server, mark int, action string) int {
	n := 0
	for _, e := range srv.Emulator().Audit(awsemu.AuditFilter{Action: action, SinceSeq: mark}) {
		if !dryRun(e) {
			n++
		}
	}
	return n
}

// callsIn is callsSince in one account.
func callsIn(srv *emutest.Server, mark int, action, account string) int {
	n := 0
	for _, e := range srv.Emulator().Audit(awsemu.AuditFilter{Action: action, Account: account, SinceSeq: mark}) {
		if !dryRun(e) {
			n++
		}
	}
	return n
}

// dryRun reports whether an audit entry is a DryRun probe.
func dryRun(e awsemu.AuditEntry) bool {
	return e.Params["DryRun"] == "true" || e.Outcome == "DryRunOperation" || e.Outcome == "DryRunOperationException"
}

func TestCopyToThreeAccountsAndSourceTwoRegions(t *testing.T) {
	srv := emu(t, awsemu.Options{})
	srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
	raw := baseConfig(t)
	manifestPath := raw["manifest_output"].(string)

	mark := srv.Emulator().CheckMark()
	ui := newUI()
	art, keep, force, err := newPP(t, raw).PostProcess(context.Background(), ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI})
	if err != nil {
		t.Fatalf("PostProcess: %v\n%s", err, ui.buf)
	}
	runEnd := srv.Emulator().CheckMark()
	if !keep || !force {
		t.Errorf("keep, force = %v, %v; the input AMI must be kept", keep, force)
	}
	if art.BuilderId() != BuilderId {
		t.Errorf("BuilderId = %q", art.BuilderId())
	}
	ids := strings.Split(art.Id(), ",")
	if len(ids) != 8 || !sort.StringsAreSorted(ids) {
		t.Fatalf("artifact Id %q: want 8 sorted account:region:ami entries", art.Id())
	}
	for _, id := range ids {
		parts := strings.Split(id, ":")
		if len(parts) != 3 {
			t.Fatalf("artifact Id entry %q", id)
		}
		assertCopy(t, srv, parts[0], parts[1], parts[2], srcAMI)
	}
	assertNothingLeftInSource(t, srv, "us-east-1", srcAMI)
	rep := check(t, srv, mark)
	t.Logf("first run: %d API calls", rep.TotalCalls)
	if n := callsSince(srv, mark, "CopyImage"); n != 8 {
		t.Errorf("%d CopyImage calls, want one per (account, region): 8", n)
	}
	// Waiting is the batched poll alone: no copy is described on its own by
	// the roles that copy (the source user describes the source AMI).
	for _, e := range srv.Emulator().Audit(awsemu.AuditFilter{Action: "DescribeImages", SinceSeq: mark}) {
		if _, byID := e.Params["ImageId.1"]; byID && strings.Contains(e.Principal, ":assumed-role/") && e.Seq <= runEnd {
			t.Errorf("DescribeImages of %s in %s/%s by ID: a per-copy describe, not the batched poll", e.Params["ImageId.1"], e.Account, e.Region)
		}
	}
	// kms:DescribeKey: once per key and principal, except a role's reads of
	// a lent source key, once before the grant (its own IAM policy) and
	// once after (the grant works).
	described := map[string]int{}
	for _, e := range srv.Emulator().Audit(awsemu.AuditFilter{Action: "DescribeKey", SinceSeq: mark}) {
		if e.Seq <= runEnd {
			described[e.PrincipalIAM+" "+cmp.Or(e.Notes["KeyArn"], e.Params["KeyId"])]++
		}
	}
	if len(described) < 8 {
		t.Errorf("kms:DescribeKey: %d (principal, key) pairs in the audit, want at least the 8 target keys: %v", len(described), described)
	}
	for who, n := range described {
		lent := strings.Contains(who, ":key/") && strings.Contains(who, ":"+srcAccount+":key/") && !strings.Contains(who, ":"+srcAccount+":user/")
		if n > 1 && (!lent || n != 2) {
			t.Errorf("kms:DescribeKey by %s: %d calls, want one", who, n)
		}
	}
	out := ui.buf.String()
	for _, want := range []string{"ACCOUNT", "REGION", "AMI", "KEY", "STATE", "READ BACK", "DURATION", "444444444444", " read back: snap-", "; available after "} {
		if !strings.Contains(out, want) {
			t.Errorf("UI output lacks %q:\n%s", want, out)
		}
	}
	// A line per copy as it progresses: each copy takes many polls here.
	for _, id := range ids {
		p := strings.Split(id, ":")
		if want := p[0] + "/" + p[1] + ": " + p[2] + " pending after"; !strings.Contains(out, want) {
			t.Errorf("UI output lacks the progress line %q:\n%s", want, out)
		}
	}

	var m Manifest
	b, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Succeeded != 8 || m.Failed != 0 || len(m.Copies) != 8 || m.SourceAccount != srcAccount {
		t.Errorf("manifest: %d ok, %d failed, %d copies, source %s", m.Succeeded, m.Failed, len(m.Copies), m.SourceAccount)
	}
	for _, c := range m.Copies {
		if !c.Verified {
			t.Errorf("manifest: %s/%s %s not recorded as read back", c.Account, c.Region, c.ImageID)
		}
		// The read-back asked DescribeSnapshots as the copy's owner.
		if n := len(srv.Emulator().Audit(awsemu.AuditFilter{Action: "DescribeSnapshots", Account: c.Account, Region: c.Region, SinceSeq: mark})); n == 0 {
			t.Errorf("%s/%s: no DescribeSnapshots as the owner: the copy was not read back", c.Account, c.Region)
		}
	}

	// HCP Packer metadata: one image per copy with account and key labels.
	imgs, _ := art.State("par.artifact.metadata").([]*registryimage.Image)
	if len(imgs) != 8 || imgs[0].Labels["account_id"] == "" || !strings.HasPrefix(imgs[0].Labels["kms_key_arn"], "arn:aws:kms:") {
		t.Errorf("registry metadata: %+v", imgs)
	}

	// A rerun finds every copy and makes none.
	mark2 := srv.Emulator().CheckMark()
	ui2 := newUI()
	art2, _, _, err := newPP(t, baseConfig(t)).PostProcess(context.Background(), ui2, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI})
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, ui2.buf)
	}
	if art2.Id() != art.Id() {
		t.Errorf("rerun artifact %q, want the same copies %q", art2.Id(), art.Id())
	}
	if n := callsSince(srv, mark2, "CopyImage"); n != 0 {
		t.Errorf("rerun made %d CopyImage calls, want 0", n)
	}
	if !strings.Contains(ui2.buf.String(), "reused") {
		t.Errorf("rerun summary does not say the copies were reused:\n%s", ui2.buf)
	}
	check(t, srv, mark2)

	// Destroy removes the copies.
	if err := art2.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	for _, id := range ids {
		parts := strings.Split(id, ":")
		client := ec2.NewFromConfig(srv.Config(context.Background(), parts[0], parts[1]))
		if img, err := ebs.FindImageByID(context.Background(), client, parts[2]); err == nil && img.State != ec2types.ImageStateDeregistered {
			t.Errorf("%s still %s after Destroy", id, img.State)
		}
	}
}

// assertCopy checks one copy as its own account sees it: encrypted under
// a key of that account, with every tag on image and snapshots.
func assertCopy(t *testing.T, srv *emutest.Server, account, region, amiID, srcAMI string) {
	t.Helper()
	assertCopyFrom(t, srv, account, region, amiID, srcAMI, "us-east-1")
}

// assertCopyFrom is assertCopy for a source AMI in srcRegion.
func assertCopyFrom(t *testing.T, srv *emutest.Server, account, region, amiID, srcAMI, srcRegion string) {
	t.Helper()
	ctx := context.Background()
	client := ec2.NewFromConfig(srv.Config(ctx, account, region))
	img, err := ebs.FindImageByID(ctx, client, amiID)
	if err != nil {
		t.Fatalf("%s/%s: %v", account, region, err)
	}
	if img.State != ec2types.ImageStateAvailable || aws.ToString(img.OwnerId) != account {
		t.Errorf("%s/%s %s: state %s owner %s", account, region, amiID, img.State, aws.ToString(img.OwnerId))
	}
	wantTags := map[string]string{
		"Team": "platform", "Release": "2026.11", "Owner": "amicrypt-tests",
		TagSourceAMI: srcAMI, TagSourceAccount: srcAccount, TagSourceRegion: srcRegion,
		TagEncrypted: "true", TagCopiedFromAMI: srcAMI,
	}
	got := ebs.TagMap(img.Tags)
	for k, v := range wantTags {
		if got[k] != v {
			t.Errorf("%s/%s %s: tag %s = %q, want %q (tags seen by the account: %v)", account, region, amiID, k, got[k], v, got)
		}
	}
	keyARN := got[TagKMSKeyARN]
	if !strings.HasPrefix(keyARN, "arn:aws:kms:"+region+":"+account+":key/") {
		t.Errorf("%s/%s: provenance key %q is not a key of the account in the region", account, region, keyARN)
	}
	for _, snapID := range ebs.ImageSnapshotIDs(img) {
		snap, err := ebs.FindSnapshotByID(ctx, client, snapID)
		if err != nil {
			t.Fatalf("%s/%s snapshot %s: %v", account, region, snapID, err)
		}
		if !aws.ToBool(snap.Encrypted) || aws.ToString(snap.KmsKeyId) != keyARN {
			t.Errorf("%s/%s snapshot %s: encrypted %v under %s, want %s", account, region, snapID, aws.ToBool(snap.Encrypted), aws.ToString(snap.KmsKeyId), keyARN)
		}
		st := ebs.TagMap(snap.Tags)
		for k, v := range map[string]string{
			"Team": "platform", "Release": "2026.11", "Backup": "none",
			TagSourceAMI: srcAMI, TagSourceAccount: srcAccount, TagSourceRegion: srcRegion,
			TagKMSKeyARN: keyARN, TagEncrypted: "true", TagCopiedFromAMI: srcAMI,
		} {
			if st[k] != v {
				t.Errorf("%s/%s snapshot %s: tag %s = %q, want %q", account, region, snapID, k, st[k], v)
			}
		}
	}
}
