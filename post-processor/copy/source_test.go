package copy

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"

	builderebs "github.com/amicrypt/packer-plugin-amicrypt/builder/ebs"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// nullArtifact is what Packer's null builder hands a post-processor.
var nullArtifact = fakeArtifact{"fnoeding.null", "Null"}

func readManifest(t *testing.T, path string) Manifest {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCopyAnExistingAMI copies an AMI named by source_ami behind the null
// builder, then runs again finding it with source_ami_filter: the second
// run reuses every copy. Every copy is read back, and the manifest says so.
func TestCopyAnExistingAMI(t *testing.T) {
	srv := emu(t, awsemu.Options{})
	srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")

	raw := baseConfig(t)
	raw["packer_builder_type"] = "null"
	raw["source_ami"] = srcAMI
	ui := newUI()
	art, _, _, err := newPP(t, raw).PostProcess(context.Background(), ui, nullArtifact)
	if err != nil {
		t.Fatalf("PostProcess with source_ami: %v\n%s", err, ui.buf)
	}
	if !strings.Contains(ui.buf.String(), "planning copies of us-east-1:"+srcAMI+" (source_ami)") {
		t.Errorf("output does not name the source AMI:\n%s", ui.buf)
	}
	ids := strings.Split(art.Id(), ",")
	if len(ids) != 8 {
		t.Fatalf("artifact %q: want 8 copies", art.Id())
	}
	for _, id := range ids {
		p := strings.Split(id, ":")
		assertCopy(t, srv, p[0], p[1], p[2], srcAMI)
	}
	m := readManifest(t, raw["manifest_output"].(string))
	for _, c := range m.Copies {
		if !c.Verified || c.State != "available" {
			t.Errorf("%s/%s: state %s, verified %v; want available and read back", c.Account, c.Region, c.State, c.Verified)
		}
	}

	again := baseConfig(t)
	again["packer_builder_type"] = "null"
	again["source_ami_filter"] = map[string]interface{}{
		"filters": map[string]string{"name": "golden-" + t.Name()}, "owners": []string{"self"}, "most_recent": true,
	}
	mark := srv.Emulator().CheckMark()
	ui2 := newUI()
	art2, _, _, err := newPP(t, again).PostProcess(context.Background(), ui2, nullArtifact)
	if err != nil {
		t.Fatalf("PostProcess with source_ami_filter: %v\n%s", err, ui2.buf)
	}
	if art2.Id() != art.Id() || callsSince(srv, mark, "CopyImage") != 0 {
		t.Errorf("rerun through source_ami_filter: artifact %q (want %q), %d CopyImage calls (want 0)", art2.Id(), art.Id(), callsSince(srv, mark, "CopyImage"))
	}
	if !strings.Contains(ui2.buf.String(), "source_ami_filter found") || !strings.Contains(ui2.buf.String(), srcAMI) {
		t.Errorf("output does not say what source_ami_filter found:\n%s", ui2.buf)
	}
	for _, c := range readManifest(t, again["manifest_output"].(string)).Copies {
		if !c.Reused || !c.Verified {
			t.Errorf("%s/%s: reused %v, verified %v; a reused copy is read back too", c.Account, c.Region, c.Reused, c.Verified)
		}
	}
	assertNothingLeftInSource(t, srv, "us-east-1", srcAMI)
}

// TestSourceAMIRefusesAnArtifactWithAMIs: which AMI to copy would be
// ambiguous, so nothing is called.
func TestSourceAMIRefusesAnArtifactWithAMIs(t *testing.T) {
	raw := validRaw()
	raw["source_ami"] = "ami-0a1b2c3d4e5f60001"
	art := &keepingArtifact{fakeArtifact: fakeArtifact{"amicrypt.ebs", "us-east-1:ami-0123456789abcdef0"}}
	_, _, _, err := newPP(t, raw).PostProcess(context.Background(), newUI(), art)
	for _, w := range []string{"source_ami or source_ami_filter is set", `builder "amicrypt.ebs"`, "us-east-1:ami-0123456789abcdef0", "null builder"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("err = %v, want it to contain %q", err, w)
		}
	}
	// Refused, yet the build's AMI is still asked to outlive Packer's cleanup.
	if len(art.asked) != 1 || art.asked[0] != builderebs.KeepState {
		t.Errorf("State calls %v; want %q", art.asked, builderebs.KeepState)
	}
}

// keepingArtifact stands for amicrypt-ebs's artifact across Packer's RPC:
// it records the State names asked and answers KeepState as the builder does.
type keepingArtifact struct {
	fakeArtifact
	mu    sync.Mutex
	asked []string
}

func (a *keepingArtifact) State(name string) interface{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, name)
	if name == builderebs.KeepState {
		return a.id
	}
	return nil
}

// TestAsksTheBuildersArtifactToKeepIt: amicrypt-copy asks amicrypt-ebs's
// artifact to keep its AMI before anything can fail; after a failure it
// reads the AMI back and says it is kept, with the way to finish the copies.
// A builder that doesn't answer is named as such.
func TestAsksTheBuildersArtifactToKeepIt(t *testing.T) {
	srv := emu(t, awsemu.Options{})
	srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
	refused := func() map[string]interface{} {
		raw := baseConfig(t)
		raw["target"] = []map[string]interface{}{{"account_id": "222222222222", "kms_key_id": "alias/missing"}}
		return raw
	}

	art := &keepingArtifact{fakeArtifact: fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI}}
	ui := newUI()
	_, _, _, err := newPP(t, refused()).PostProcess(context.Background(), ui, art)
	if err == nil {
		t.Fatal("preflight passed with a missing target key")
	}
	if len(art.asked) == 0 || art.asked[0] != builderebs.KeepState {
		t.Errorf("State calls %v; want %q asked first", art.asked, builderebs.KeepState)
	}
	out := ui.buf.String()
	for _, w := range []string{"the build's AMI " + srcAMI + " in us-east-1 is kept (read back just now: available, snapshots snap-",
		"amicrypt-ebs keeps it", `source_ami = "` + srcAMI + `" and region = "us-east-1"`} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}

	ui2 := newUI()
	if _, _, _, err := newPP(t, refused()).PostProcess(context.Background(), ui2, fakeArtifact{"mitchellh.amazonebs", "us-east-1:" + srcAMI}); err == nil {
		t.Fatal("preflight passed with a missing target key")
	}
	if w := `builder "mitchellh.amazonebs" did not confirm it keeps us-east-1:` + srcAMI; !strings.Contains(ui2.buf.String(), w) {
		t.Errorf("output lacks %q:\n%s", w, ui2.buf)
	}
	if strings.Contains(ui2.buf.String(), "is kept") {
		t.Errorf("output claims a keep nobody confirmed:\n%s", ui2.buf)
	}
}
