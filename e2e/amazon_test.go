//go:build e2e

package e2e

// HashiCorp's amazon-ebs builder (packer-plugin-amazon v1.8.0, built from the
// module proxy by scripts/amazon-plugin.sh) against cmd/awsemu: on its own,
// and chained into amicrypt-copy. These runs prove the emulator serves an
// unmodified third-party client and show, through the invariant checker,
// what amazon-ebs does that amicrypt-ebs must not: it registers an
// unencrypted intermediate AMI before copying it encrypted.

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

// HashiCorp's Amazon plugin as users name it, and the version the script builds.
const (
	AmazonPluginSource  = "github.com/hashicorp/amazon"
	AmazonPluginVersion = "1.8.0"
)

// The first target account of the default world.
const (
	amzTargetAccount   = "222222222222"
	amzTargetAccessKey = "AKIA2222222222222222"
	amzTargetSecretKey = "emu-secret-222222222222"
)

// amazonPluginOnce memoises scripts/amazon-plugin.sh for the test process;
// the script itself reuses the binary cached in .cache/.
var amazonPluginOnce = sync.OnceValues(func() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out, err := runIn(root, nil, "bash", "scripts/amazon-plugin.sh")
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
})

// amazonEnv is an Env with HashiCorp's Amazon plugin installed next to
// amicrypt, and a started emulator.
func amazonEnv(t *testing.T) (*Env, *Emulator) {
	t.Helper()
	bin, err := amazonPluginOnce()
	if err != nil {
		t.Fatalf("scripts/amazon-plugin.sh: %v", err)
	}
	env := New(t)
	env.InstallPlugin(t, bin, AmazonPluginSource)
	emu := env.StartEmulator(t, EmulatorOptions{})
	// Instance waiters poll every second instead of 15 s. (amazon-ebs's AMI
	// waiter ignores this and polls every 15 s: its WaitUntilAMIAvailable
	// passes the delay only when none is configured.)
	env.Vars["AWS_POLL_DELAY_SECONDS"] = "1"
	return env, emu
}

// amzAWS is an aws.Config for one account's default user, pointed at the
// emulator.
func amzAWS(emu *Emulator, accessKey, secretKey, region string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		BaseEndpoint: aws.String(emu.URL),
	}
}

// amzKeyARN resolves an alias to its key ARN with KMS DescribeKey.
func amzKeyARN(t *testing.T, cfg aws.Config, alias string) string {
	t.Helper()
	out, err := kms.NewFromConfig(cfg).DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(alias)})
	if err != nil {
		t.Fatalf("kms DescribeKey %s: %v", alias, err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// amzTemplateDir copies a template from testdata/amazon/NAME into a fresh
// directory, so Packer's outputs (manifests) stay out of the tree.
func amzTemplateDir(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("testdata", "amazon", name)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		WriteFile(t, dir, e.Name(), string(data))
	}
	return dir
}

// amzAuditEntry is the part of an audit entry these tests read.
type amzAuditEntry struct {
	Seq       int               `json:"seq"`
	Service   string            `json:"service"`
	Region    string            `json:"region"`
	Account   string            `json:"account"`
	Principal string            `json:"principal"`
	Action    string            `json:"action"`
	Params    map[string]string `json:"params"`
	Notes     map[string]string `json:"notes"`
	Outcome   string            `json:"outcome"`
	Message   string            `json:"message"`
}

// amzAudit returns the audit entries after seq since.
func amzAudit(t *testing.T, emu *Emulator, since int) []amzAuditEntry {
	t.Helper()
	var entries []amzAuditEntry
	emu.AdminJSON(t, "audit", url.Values{"since": {strconv.Itoa(since)}}, &entries)
	return entries
}

// amzMark is the last audit sequence number, a baseline for amzAudit.
func amzMark(t *testing.T, emu *Emulator) int {
	t.Helper()
	entries := amzAudit(t, emu, 0)
	if len(entries) == 0 {
		return 0
	}
	return entries[len(entries)-1].Seq
}

// amzFinding is one invariant checker finding.
type amzFinding struct {
	Check     string `json:"check"`
	Account   string `json:"account"`
	Region    string `json:"region"`
	Resource  string `json:"resource"`
	Principal string `json:"principal"`
	Message   string `json:"message"`
}

// amzCheck runs the invariant checker over the whole run (every principal).
func amzCheck(t *testing.T, emu *Emulator, sinceSeq int) (pass bool, findings []amzFinding) {
	t.Helper()
	var report struct {
		Pass     bool         `json:"pass"`
		Findings []amzFinding `json:"findings"`
	}
	emu.AdminJSON(t, "check", url.Values{"since_seq": {strconv.Itoa(sinceSeq)}}, &report)
	return report.Pass, report.Findings
}

// amzOwnImage describes the one image the account owns in the region under
// that name ("" for any name); it fails unless there is exactly one.
func amzOwnImage(t *testing.T, cfg aws.Config, name string) ec2types.Image {
	t.Helper()
	in := &ec2.DescribeImagesInput{Owners: []string{"self"}}
	if name != "" {
		in.Filters = []ec2types.Filter{{Name: aws.String("name"), Values: []string{name}}}
	}
	out, err := ec2.NewFromConfig(cfg).DescribeImages(context.Background(), in)
	if err != nil {
		t.Fatalf("DescribeImages (owner self, name %q) in %s: %v", name, cfg.Region, err)
	}
	if len(out.Images) != 1 {
		var ids []string
		for _, im := range out.Images {
			ids = append(ids, aws.ToString(im.ImageId)+" "+aws.ToString(im.Name))
		}
		t.Fatalf("owner self, name %q in %s: want exactly one image, got %d: %v", name, cfg.Region, len(out.Images), ids)
	}
	return out.Images[0]
}

// amzAssertEncryptedUnder checks that an image is available and every EBS
// mapping, and the snapshot behind it, is encrypted under keyARN.
func amzAssertEncryptedUnder(t *testing.T, cfg aws.Config, im ec2types.Image, keyARN string) {
	t.Helper()
	id := aws.ToString(im.ImageId)
	if im.State != ec2types.ImageStateAvailable {
		t.Errorf("%s: state %q, want available", id, im.State)
	}
	var snaps []string
	for _, m := range im.BlockDeviceMappings {
		if m.Ebs == nil {
			continue
		}
		// DescribeImages gives Encrypted, not the key: that comes from
		// DescribeSnapshots below.
		if !aws.ToBool(m.Ebs.Encrypted) {
			t.Errorf("%s %s: not encrypted, want encrypted under %s", id, aws.ToString(m.DeviceName), keyARN)
		}
		snaps = append(snaps, aws.ToString(m.Ebs.SnapshotId))
	}
	if len(snaps) == 0 {
		t.Fatalf("%s has no EBS mapping", id)
	}
	out, err := ec2.NewFromConfig(cfg).DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: snaps})
	if err != nil {
		t.Fatalf("DescribeSnapshots %v: %v", snaps, err)
	}
	if len(out.Snapshots) != len(snaps) {
		t.Fatalf("DescribeSnapshots %v: got %d snapshots", snaps, len(out.Snapshots))
	}
	for _, s := range out.Snapshots {
		if !aws.ToBool(s.Encrypted) || aws.ToString(s.KmsKeyId) != keyARN || s.State != ec2types.SnapshotStateCompleted {
			t.Errorf("snapshot %s of %s: encrypted=%v key %q state %q, want completed and encrypted under %s",
				aws.ToString(s.SnapshotId), id, aws.ToBool(s.Encrypted), aws.ToString(s.KmsKeyId), s.State, keyARN)
		}
	}
}

func amzTags(tags []ec2types.Tag) map[string]string {
	m := map[string]string{}
	for _, tag := range tags {
		m[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	return m
}

// amzIntermediate returns the image amazon-ebs made with CreateImage: the
// unencrypted intermediate of encrypt_boot.
func amzIntermediate(t *testing.T, entries []amzAuditEntry) string {
	t.Helper()
	var ids []string
	for _, e := range entries {
		if e.Action == "CreateImage" && e.Outcome == "ok" && e.Principal == BuildPrincipal {
			ids = append(ids, e.Notes["imageId"])
		}
	}
	if len(ids) != 1 || ids[0] == "" {
		t.Fatalf("want one CreateImage by %s in the audit, got image IDs %q", BuildPrincipal, ids)
	}
	return ids[0]
}

// amzAssertOnlyIntermediateFinding checks the invariant checker's report: the
// single finding is amazon-ebs's unencrypted intermediate AMI (which
// encrypt_boot always registers), and nothing leaked.
func amzAssertOnlyIntermediateFinding(t *testing.T, emu *Emulator, mark int, intermediate string) {
	t.Helper()
	pass, findings := amzCheck(t, emu, mark)
	if pass {
		t.Errorf("checker passed; it must report amazon-ebs's unencrypted intermediate AMI %s", intermediate)
	}
	var other []amzFinding
	found := false
	for _, f := range findings {
		if f.Check == "unencrypted-ami" && f.Resource == intermediate && f.Principal == BuildPrincipal {
			found = true
			continue
		}
		other = append(other, f)
	}
	if !found {
		t.Errorf("checker findings lack unencrypted-ami %s by %s: %+v", intermediate, BuildPrincipal, findings)
	}
	for _, f := range other {
		t.Errorf("unexpected checker finding: %s %s/%s %s by %s: %s", f.Check, f.Account, f.Region, f.Resource, f.Principal, f.Message)
	}
}

// amzAssertGone checks that an image no longer exists: DescribeImages by ID
// answers InvalidAMIID.NotFound or nothing.
func amzAssertGone(t *testing.T, cfg aws.Config, imageID string) {
	t.Helper()
	out, err := ec2.NewFromConfig(cfg).DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{imageID}})
	var apiErr smithy.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidAMIID.NotFound":
	case err != nil:
		t.Fatalf("DescribeImages %s: %v", imageID, err)
	case len(out.Images) != 0:
		t.Errorf("intermediate image %s still exists (state %s)", imageID, out.Images[0].State)
	}
}

// TestAmazonEBSEncryptBoot runs amazon-ebs alone and pins down, call by call,
// what it asks of AWS with communicator none and encrypt_boot: every call is
// served without error, the AMI ends encrypted under the customer key, and
// the checker sees the unencrypted intermediate AMI and no leftovers.
func TestAmazonEBSEncryptBoot(t *testing.T) {
	env, emu := amazonEnv(t)
	build := amzAWS(emu, BuildAccessKey, BuildSecretKey, BuildRegion)
	buildKey := amzKeyARN(t, build, "alias/amicrypt-build")
	dir := amzTemplateDir(t, "build-only")

	if res := env.Packer(t, dir, "init", "."); res.ExitCode != 0 {
		t.Fatalf("packer init with the locally installed amazon plugin %s: exit %d\n%s", AmazonPluginVersion, res.ExitCode, res.Output)
	}
	mark := amzMark(t, emu)
	res := env.Packer(t, dir, "build", "-var", "kms_key_id="+buildKey, ".")
	if res.ExitCode != 0 {
		t.Fatalf("packer build: exit %d\n%s", res.ExitCode, res.Output)
	}
	entries := amzAudit(t, emu, mark)

	// Every call amazon-ebs made was served.
	counts := map[string]int{}
	for _, e := range entries {
		if e.Outcome != "ok" {
			t.Errorf("%s %s answered %s: %s (params %v)", e.Service, e.Action, e.Outcome, e.Message, e.Params)
		}
		counts[e.Service+":"+e.Action]++
	}
	// The calls of /tmp/amazon-ebs-calls.md (bench/README.md): exact counts
	// for mutating calls, minimums for polled ones.
	for _, c := range []struct {
		call  string
		exact int
		min   int
	}{
		{call: "sts:GetCallerIdentity", exact: 1},
		{call: "ec2:DescribeRegions", exact: 1},
		{call: "ec2:DescribeImages", min: 5},
		{call: "ec2:CreateKeyPair", exact: 1},
		{call: "ec2:CreateSecurityGroup", exact: 1},
		{call: "ec2:DescribeSecurityGroups", min: 1},
		{call: "ec2:AuthorizeSecurityGroupIngress", exact: 1},
		{call: "ec2:RunInstances", exact: 1},
		{call: "ec2:DescribeInstances", min: 4},
		{call: "ec2:StopInstances", exact: 1},
		{call: "ec2:CreateImage", exact: 1},
		{call: "ec2:CopyImage", exact: 1},
		{call: "ec2:CreateTags", exact: 1},
		{call: "ec2:DeregisterImage", exact: 1},
		{call: "ec2:DeleteSnapshot", exact: 1},
		{call: "ec2:TerminateInstances", exact: 1},
		{call: "ec2:DescribeVolumes", exact: 1},
		{call: "ec2:DeleteSecurityGroup", exact: 1},
		{call: "ec2:DeleteKeyPair", exact: 1},
	} {
		got := counts[c.call]
		switch {
		case c.exact > 0 && got != c.exact:
			t.Errorf("%s: %d calls, want %d", c.call, got, c.exact)
		case c.min > 0 && got < c.min:
			t.Errorf("%s: %d calls, want at least %d", c.call, got, c.min)
		}
		delete(counts, c.call)
	}
	if len(counts) > 0 {
		t.Errorf("calls not in the documented list: %v", counts)
	}

	// encrypt_boot: one CopyImage of the intermediate, encrypted under the key as written.
	intermediate := amzIntermediate(t, entries)
	for _, e := range entries {
		if e.Action != "CopyImage" {
			continue
		}
		want := map[string]string{"SourceImageId": intermediate, "SourceRegion": BuildRegion, "Encrypted": "true", "KmsKeyId": buildKey, "CopyImageTags": "true", "Name": "amazon-ebs-e2e"}
		for k, v := range want {
			if e.Params[k] != v {
				t.Errorf("CopyImage %s=%q, want %q", k, e.Params[k], v)
			}
		}
	}

	final := amzOwnImage(t, build, "amazon-ebs-e2e")
	amzAssertEncryptedUnder(t, build, final, buildKey)
	if got := amzTags(final.Tags)["Team"]; got != "platform" {
		t.Errorf("%s tag Team=%q, want platform", aws.ToString(final.ImageId), got)
	}
	if !strings.Contains(res.Output, BuildRegion+": "+aws.ToString(final.ImageId)) {
		t.Errorf("packer output does not name the artifact %s:\n%s", aws.ToString(final.ImageId), tail(res.Output, 2048))
	}
	amzAssertGone(t, build, intermediate)
	amzAssertOnlyIntermediateFinding(t, emu, mark, intermediate)
}

// TestAmazonEBSIntoAmicryptCopy chains amazon-ebs (encrypt_boot with the
// build account's customer key) into amicrypt-copy: account 222222222222 gets
// its own copy, encrypted under its own alias/amicrypt-target key, with the
// source's tags and amicrypt's provenance tags, and the run leaves nothing
// shared, granted or half-made behind.
func TestAmazonEBSIntoAmicryptCopy(t *testing.T) {
	env, emu := amazonEnv(t)
	build := amzAWS(emu, BuildAccessKey, BuildSecretKey, BuildRegion)
	target := amzAWS(emu, amzTargetAccessKey, amzTargetSecretKey, BuildRegion)
	buildKey := amzKeyARN(t, build, "alias/amicrypt-build")
	targetKey := amzKeyARN(t, target, "alias/amicrypt-target")
	dir := amzTemplateDir(t, "chain")

	if res := env.Packer(t, dir, "validate", "-var", "kms_key_id="+buildKey, "."); res.ExitCode != 0 {
		t.Fatalf("packer validate: exit %d\n%s", res.ExitCode, res.Output)
	}
	mark := amzMark(t, emu)
	res := env.Packer(t, dir, "build", "-var", "kms_key_id="+buildKey, ".")
	if res.ExitCode != 0 {
		t.Fatalf("packer build: exit %d\n%s", res.ExitCode, res.Output)
	}
	entries := amzAudit(t, emu, mark)

	source := amzOwnImage(t, build, "amazon-ebs-chain-e2e")
	sourceID := aws.ToString(source.ImageId)
	amzAssertEncryptedUnder(t, build, source, buildKey)

	cp := amzOwnImage(t, target, "")
	cpID := aws.ToString(cp.ImageId)
	amzAssertEncryptedUnder(t, target, cp, targetKey)
	if aws.ToString(cp.OwnerId) != amzTargetAccount {
		t.Errorf("copy %s owner %s, want %s", cpID, aws.ToString(cp.OwnerId), amzTargetAccount)
	}
	tags := amzTags(cp.Tags)
	for k, v := range map[string]string{"Team": "platform", "amicrypt:source-ami": sourceID, "amicrypt:source-account": BuildAccount, "amicrypt:source-region": BuildRegion} {
		if tags[k] != v {
			t.Errorf("copy %s tag %s=%q, want %q (all tags %v)", cpID, k, tags[k], v, tags)
		}
	}
	if line := amzTargetAccount + " " + BuildRegion + ": " + cpID; !strings.Contains(res.Output, line) {
		t.Errorf("packer output does not list the copy %q:\n%s", line, tail(res.Output, 3072))
	}

	// The manifest (manifest_output) lists the one copy, available.
	var manifest struct {
		SourceAccount string `json:"source_account"`
		Succeeded     int    `json:"succeeded"`
		Failed        int    `json:"failed"`
		Copies        []struct {
			Account   string `json:"account"`
			Region    string `json:"region"`
			ImageID   string `json:"ami_id"`
			SourceAMI string `json:"source_ami"`
			State     string `json:"state"`
		} `json:"copies"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "copies.json"))
	if err != nil {
		t.Fatalf("manifest_output: %v", err)
	}
	if err := json.Unmarshal(data, &manifest); err != nil {
		t.Fatalf("copies.json: %v\n%s", err, data)
	}
	if manifest.SourceAccount != BuildAccount || manifest.Succeeded != 1 || manifest.Failed != 0 || len(manifest.Copies) != 1 {
		t.Fatalf("copies.json: want 1 succeeded copy from %s, got %s", BuildAccount, data)
	}
	if c := manifest.Copies[0]; c.Account != amzTargetAccount || c.Region != BuildRegion || c.ImageID != cpID || c.SourceAMI != sourceID || c.State != "available" {
		t.Errorf("copies.json copy %+v, want %s/%s %s from %s, available", c, amzTargetAccount, BuildRegion, cpID, sourceID)
	}

	// The copy in 222222222222 was made there, encrypted, under its own key.
	var copies []amzAuditEntry
	for _, e := range entries {
		if e.Action == "CopyImage" && e.Account == amzTargetAccount && e.Outcome == "ok" {
			copies = append(copies, e)
		}
	}
	if len(copies) != 1 {
		t.Fatalf("want one successful CopyImage in %s, got %d", amzTargetAccount, len(copies))
	}
	if p := copies[0].Params; p["SourceImageId"] != sourceID || p["Encrypted"] != "true" || !slices.Contains([]string{targetKey, "alias/amicrypt-target"}, p["KmsKeyId"]) {
		t.Errorf("CopyImage in %s: params %v, want SourceImageId %s, Encrypted true, KmsKeyId of %s", amzTargetAccount, p, sourceID, targetKey)
	}

	// Nothing left shared with or granted to the target.
	attr, err := ec2.NewFromConfig(build).DescribeImageAttribute(context.Background(), &ec2.DescribeImageAttributeInput{
		ImageId: source.ImageId, Attribute: ec2types.ImageAttributeNameLaunchPermission,
	})
	if err != nil {
		t.Fatalf("DescribeImageAttribute %s launchPermission: %v", sourceID, err)
	}
	if len(attr.LaunchPermissions) != 0 {
		t.Errorf("source %s still has launch permissions %+v", sourceID, attr.LaunchPermissions)
	}

	amzAssertGone(t, build, amzIntermediate(t, entries))
	amzAssertOnlyIntermediateFinding(t, emu, mark, amzIntermediate(t, entries))
}
