//go:build e2e

package e2e

// The corpus of invalid templates (e2e/testdata/invalid/*.pkr.hcl), one bad
// input each, for amicrypt-ebs, amicrypt-copy and amicrypt-instance-store,
// run through the real Packer against one emulator. Each file starts with
// header comments:
//
//	# want: a substring of the message (several lines: all must appear)
//	# stage: validate | build
//
// A `validate` case must fail `packer validate` with every want and no API
// call at all. A `build` case is what only a run can find (a key alias that
// doesn't exist, a role that can't be assumed, a region not enabled, an AMI
// not found, a name taken): `packer validate` accepts it, `packer build`
// fails with every want, and nothing was changed in the meantime: the audit
// shows no mutating call (only Describe*/Get*/List*, DryRun calls, STS
// sign-ins and KMS cryptographic operations, which create nothing).
//
// The emulator serves the default world plus what the build cases need
// (corpusWorld): a source AMI the build account owns and AMI names taken.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/world"
)

// invalidCase is one file of the corpus.
type invalidCase struct {
	name  string
	path  string
	stage string   // "validate" or "build"
	want  []string // each must appear in Packer's output
}

const (
	stageValidate = "validate"
	stageBuild    = "build"
	// minCorpus is the size the corpus must keep: a glob gone wrong would
	// otherwise pass with nothing to run.
	minCorpus = 70
)

// readInvalidCase reads a corpus file's header comments.
func readInvalidCase(path string) (invalidCase, error) {
	c := invalidCase{name: strings.TrimSuffix(filepath.Base(path), ".pkr.hcl"), path: path}
	f, err := os.Open(path)
	if err != nil {
		return c, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "#") {
			break
		}
		key, value, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "#")), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.TrimSpace(key) {
		case "want":
			c.want = append(c.want, value)
		case "stage":
			c.stage = value
		}
	}
	if err := sc.Err(); err != nil {
		return c, err
	}
	switch {
	case len(c.want) == 0:
		return c, fmt.Errorf("%s: no \"# want:\" header line", path)
	case c.stage != stageValidate && c.stage != stageBuild:
		return c, fmt.Errorf("%s: stage %q; want a \"# stage: validate\" or \"# stage: build\" header line", path, c.stage)
	}
	return c, nil
}

// flatten collapses whitespace: Packer wraps long lines of its output.
func flatten(s string) string { return strings.Join(strings.Fields(s), " ") }

// What the corpus world adds to the default world: a source AMI the build
// account owns, encrypted under its own key (amicrypt-copy's build cases copy
// it), and AMIs whose names are taken.
const (
	corpusKeyID     = "c0c0c0c0-0000-4000-8000-00000000c0de"
	corpusSourceAMI = "ami-0c0c0c0c0c0c00001"
	// corpusTakenName is an AMI name the build account uses already in
	// us-east-1; account 222222222222 uses "corpus-taken-222222222222".
	corpusTakenName = "corpus-taken-name"
)

// corpusWorld writes the default world plus the corpus's images, and returns
// its path.
func corpusWorld(t *testing.T) string {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal(world.DefaultJSON(), &w); err != nil {
		t.Fatal(err)
	}
	keyed := false
	for _, a := range w["accounts"].([]any) {
		account := a.(map[string]any)
		if account["id"] != BuildAccount {
			continue
		}
		account["keys"] = append(account["keys"].([]any), map[string]any{
			"id": corpusKeyID, "region": BuildRegion, "aliases": []any{"alias/amicrypt-corpus-source"},
		})
		keyed = true
	}
	if !keyed {
		t.Fatalf("the default world has no account %s", BuildAccount)
	}
	image := func(id, owner, name, snapshot string, encrypted bool) map[string]any {
		volume := map[string]any{"device_name": "/dev/xvda", "snapshot_id": snapshot, "size_gib": 8, "volume_type": "gp3"}
		if encrypted {
			volume["encrypted"] = true
			volume["kms_key"] = "arn:aws:kms:us-east-1:111111111111:key/" + corpusKeyID
		}
		return map[string]any{
			"id": id, "owner": owner, "region": BuildRegion, "name": name,
			"architecture": "x86_64", "virtualization_type": "hvm", "root_device_name": "/dev/xvda", "ena_support": true,
			"volumes": []any{volume},
		}
	}
	w["images"] = append(w["images"].([]any),
		image(corpusSourceAMI, BuildAccount, "corpus-source", "snap-0c0c0c0c0c0c00001", true),
		image("ami-0c0c0c0c0c0c00002", BuildAccount, corpusTakenName, "snap-0c0c0c0c0c0c00002", true),
		// The name amicrypt-copy gives a copy in 222222222222 with ami_name = "corpus-taken-{{ .Account }}".
		image("ami-0c0c0c0c0c0c00003", "222222222222", "corpus-taken-222222222222", "snap-0c0c0c0c0c0c00003", false),
	)
	data, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return WriteFile(t, t.TempDir(), "corpus-world.json", string(data))
}

// kmsCryptoActions are KMS's cryptographic operations: they make no
// resource and change no key (CloudTrail records them as read-only). A
// preflight may generate a data key to prove a role can use a key.
var kmsCryptoActions = []string{"Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext"}

// mutating reports whether an audited call changed (or tried to change)
// anything: every call but reads, dry runs and STS sign-ins.
func mutating(e awsemu.AuditEntry) bool {
	switch {
	case strings.HasPrefix(e.Action, "Describe"), strings.HasPrefix(e.Action, "Get"), strings.HasPrefix(e.Action, "List"):
		return false
	case e.Params["DryRun"] == "true", strings.HasPrefix(e.Outcome, "DryRunOperation"):
		return false
	case e.Service == "kms" && slices.Contains(kmsCryptoActions, e.Action):
		return false
	case e.Service == "sts" && (e.Action == "AssumeRole" || e.Action == "DecodeAuthorizationMessage"):
		return false
	}
	return true
}

func TestInvalidTemplatesCorpus(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.pkr.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	byStage := map[string][]invalidCase{}
	for _, p := range paths {
		c, err := readInvalidCase(p)
		if err != nil {
			t.Fatal(err)
		}
		byStage[c.stage] = append(byStage[c.stage], c)
	}
	if len(paths) < minCorpus {
		t.Fatalf("the corpus has %d templates; it must keep at least %d", len(paths), minCorpus)
	}
	t.Logf("%d invalid templates: %d refused at validate, %d at build", len(paths), len(byStage[stageValidate]), len(byStage[stageBuild]))

	// The plugin with stand-in agents: the plain build has none, and
	// amicrypt-instance-store's validate would then fail on that alone.
	env := newInstanceStoreEnv(t)
	emu := env.StartEmulator(t, EmulatorOptions{World: corpusWorld(t)})
	env.Vars["AWS_POLL_DELAY_SECONDS"] = "0.02"

	// Validate cases run in parallel with each other only: no API call at
	// all may happen while they run, so any call fails the case it
	// overlaps (and the group).
	t.Run(stageValidate, func(t *testing.T) {
		for _, c := range byStage[stageValidate] {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				dir := corpusDir(t, c)
				mark := emu.Mark(t)
				res := env.Packer(t, dir, "validate", ".")
				assertRefused(t, c, res)
				for _, e := range emu.Audit(t, url.Values{"since": {strconv.Itoa(mark)}}) {
					t.Errorf("an AWS call during packer validate: %s:%s (%s)", e.Service, e.Action, e.Outcome)
				}
			})
		}
	})
	// Build cases run one at a time, so the audit since a case started is
	// that case's.
	t.Run(stageBuild, func(t *testing.T) {
		for _, c := range byStage[stageBuild] {
			t.Run(c.name, func(t *testing.T) {
				dir := corpusDir(t, c)
				mark := emu.Mark(t)
				// Only a run can find it: validate passes, with no call.
				if v := env.Packer(t, dir, "validate", "."); v.ExitCode != 0 {
					t.Fatalf("stage build, yet packer validate refuses it (make it a validate case):\n%s", v.Output)
				}
				if calls := emu.Audit(t, url.Values{"since": {strconv.Itoa(mark)}}); len(calls) > 0 {
					t.Errorf("packer validate made %d AWS calls, the first %s:%s", len(calls), calls[0].Service, calls[0].Action)
				}
				res := env.Packer(t, dir, "build", "-color=false", ".")
				assertRefused(t, c, res)
				calls := emu.Audit(t, url.Values{"since": {strconv.Itoa(mark)}})
				for _, e := range calls {
					if mutating(e) {
						t.Errorf("packer build changed something before refusing: %s:%s in %s/%s (%s)", e.Service, e.Action, e.Account, e.Region, e.Outcome)
					}
				}
				if len(calls) == 0 {
					t.Errorf("packer build made no AWS call: what it refused, validate could have")
				}
				t.Logf("packer build refused it after %d read-only calls", len(calls))
			})
		}
	})
}

// corpusDir copies a case's template into a directory of its own: Packer
// reads every template in the directory, and a build writes its manifest
// there.
func corpusDir(t *testing.T, c invalidCase) string {
	t.Helper()
	data, err := os.ReadFile(c.path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	WriteFile(t, dir, filepath.Base(c.path), string(data))
	return dir
}

// assertRefused checks that Packer failed with every want of the case.
func assertRefused(t *testing.T, c invalidCase, res *Result) {
	t.Helper()
	if res.ExitCode == 0 {
		t.Fatalf("packer %s accepted it:\n%s", c.stage, res.Output)
	}
	out := flatten(res.Output)
	for _, w := range c.want {
		if !strings.Contains(out, flatten(w)) {
			t.Errorf("packer %s output lacks %q:\n%s", c.stage, w, res.Output)
		}
	}
}
