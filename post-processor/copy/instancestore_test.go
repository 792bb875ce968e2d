package copy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

func TestInstanceStoreKeyValidation(t *testing.T) {
	tests := []struct {
		name, ref, want string // want: "" for accepted
	}{
		{"alias", "alias/amicrypt-instance-store", ""},
		{"unset", "", ""},
		{"key ID", "1234abcd-12ab-34cd-56ef-1234567890ab", `is a key ID; give an alias name`},
		{"key ARN", "arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab", `is a key ARN; give an alias name`},
		{"alias ARN", "arn:aws:kms:us-east-1:222222222222:alias/amicrypt-instance-store", `is a alias ARN; give an alias name`},
		{"AWS-managed alias", "alias/aws/ebs", "AWS-managed key's alias"},
		{"not a key reference", "amicrypt-instance-store", "is not a KMS key reference"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := baseConfig(t)
			raw["instance_store_kms_key_id"] = tc.ref
			var c Config
			err := c.Prepare(raw)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "instance_store_kms_key_id: ") || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want instance_store_kms_key_id and %q", err, tc.want)
			}
		})
	}
}

// The check runs as each target's role in each of its regions, before any
// change: a missing alias, a disabled key and an alias of another
// region's key are each reported with the account and region; with every
// key in place, the run copies.
func TestInstanceStoreKeyPreflight(t *testing.T) {
	const alias = "alias/amicrypt-instance-store"
	w := defaultWorld(t)
	// 222222222222: both regions good. 333333333333: us-east-1 good,
	// eu-west-1 disabled. 444444444444: none at all. The source account
	// (a target too): us-east-1 good, eu-west-1 missing.
	add := func(acct, region, state string) { setInstanceStoreKey(w, acct, region, alias, state) }
	add("222222222222", "us-east-1", "")
	add("222222222222", "eu-west-1", "")
	add("333333333333", "us-east-1", "")
	add("333333333333", "eu-west-1", "Disabled")
	add(srcAccount, "us-east-1", "")
	add("444444444444", "us-east-1", "missing")
	add("444444444444", "eu-west-1", "missing")
	add(srcAccount, "eu-west-1", "missing")
	srv := emu(t, awsemu.Options{World: w})
	ami := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")

	raw := baseConfig(t)
	raw["instance_store_kms_key_id"] = alias
	mark := srv.Emulator().CheckMark()
	ui := newUI()
	_, _, _, err := newPP(t, raw).PostProcess(context.Background(), ui, fakeArtifact{"mitchellh.amazonebs", "us-east-1:" + ami})
	var perr *PreflightError
	if !errors.As(err, &perr) {
		t.Fatalf("PostProcess error %v, want a *PreflightError\n%s", err, ui.buf)
	}
	want := []struct{ target, problem, fix string }{
		{"333333333333/eu-west-1", "disabled", "enable the key"},
		{"444444444444/us-east-1", "not found", "create a customer-managed symmetric key with alias " + alias + " in account 444444444444, us-east-1"},
		{"444444444444/eu-west-1", "not found", "in account 444444444444, eu-west-1"},
		{srcAccount + "/eu-west-1", "not found", "in account " + srcAccount + ", eu-west-1"},
	}
	var got []Problem
	for _, p := range perr.Problems {
		if p.Check == "instance-store key" {
			got = append(got, p)
		}
	}
	for _, w := range want {
		found := false
		for _, p := range got {
			if p.Target == w.target && strings.Contains(p.Problem, w.problem) && strings.Contains(p.Problem, "fail closed at boot") && strings.Contains(p.Fix, w.fix) {
				found = true
			}
		}
		if !found {
			t.Errorf("no instance-store key problem %+v in:\n%s", w, problemTable(perr.Problems))
		}
	}
	if len(got) != len(want) || len(perr.Problems) != len(want) {
		t.Errorf("%d instance-store key problems of %d, want %d:\n%s", len(got), len(perr.Problems), len(want), problemTable(perr.Problems))
	}
	if n := mutatingCalls(srv, mark); n != 0 {
		t.Errorf("preflight made %d changing calls; it must change nothing", n)
	}
	// Each account-region's alias was described by that account's role.
	described := map[string]bool{}
	for _, e := range srv.Emulator().Audit(awsemu.AuditFilter{Action: "DescribeKey", SinceSeq: mark}) {
		if e.Params["KeyId"] == alias {
			described[e.Account+"/"+e.Region] = strings.Contains(e.Principal, ":assumed-role/")
		}
	}
	for _, acct := range []string{"222222222222", "333333333333", "444444444444", srcAccount} {
		for _, region := range []string{"us-east-1", "eu-west-1"} {
			if asRole, ok := described[acct+"/"+region]; !ok || !asRole {
				t.Errorf("%s/%s: the alias was not described as the target's role (seen: %v)", acct, region, described)
			}
		}
	}
	check(t, srv, mark)

	// With every key in place the same run copies.
	srv2w := defaultWorld(t)
	for _, acct := range []string{"222222222222", "333333333333", "444444444444", srcAccount} {
		for _, region := range []string{"us-east-1", "eu-west-1"} {
			setInstanceStoreKey(srv2w, acct, region, alias, "")
		}
	}
	srv2 := emu(t, awsemu.Options{World: srv2w})
	ami2 := makeSourceAMI(t, srv2, "us-east-1", publicAMI, "alias/amicrypt-build")
	mark2 := srv2.Emulator().CheckMark()
	ui2 := newUI()
	if _, _, _, err := newPP(t, baseConfigWith(t, "instance_store_kms_key_id", alias)).PostProcess(context.Background(), ui2, fakeArtifact{"mitchellh.amazonebs", "us-east-1:" + ami2}); err != nil {
		t.Fatalf("with every instance-store key in place: %v\n%s", err, ui2.buf)
	}
	if n := callsSince(srv2, mark2, "CopyImage"); n == 0 {
		t.Errorf("no copy made")
	}
	check(t, srv2, mark2)
}

func baseConfigWith(t *testing.T, key string, value any) map[string]interface{} {
	raw := baseConfig(t)
	raw[key] = value
	return raw
}

// setInstanceStoreKey gives the account one key of alias in region, in
// state ("" for Enabled), or none when state is "missing".
func setInstanceStoreKey(w *awsemu.World, acct, region, alias, state string) {
	a := account(w, acct)
	keys := a.Keys[:0]
	for _, k := range a.Keys {
		if k.Region != region || !slices.Contains(k.Aliases, alias) {
			keys = append(keys, k)
		}
	}
	a.Keys = keys
	if state != "missing" {
		a.Keys = append(a.Keys, awsemu.WorldKey{Region: region, Aliases: []string{alias}, State: state})
	}
}

// A target whose only region is not enabled gets that one problem: the
// role's calls are not probed in a region that refuses every call (they
// would each come back AuthFailure and read as a credentials problem).
func TestPreflightRegionNotEnabledIsTheOnlyProblem(t *testing.T) {
	srv := emu(t, awsemu.Options{World: defaultWorld(t)})
	ami := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
	raw := baseConfig(t)
	raw["target"] = []map[string]interface{}{{"account_id": "222222222222", "regions": []string{"ap-southeast-3"}}}
	ui := newUI()
	_, _, _, err := newPP(t, raw).PostProcess(context.Background(), ui, fakeArtifact{"mitchellh.amazonebs", "us-east-1:" + ami})
	var perr *PreflightError
	if !errors.As(err, &perr) {
		t.Fatalf("PostProcess error %v, want a *PreflightError\n%s", err, ui.buf)
	}
	if len(perr.Problems) != 1 || perr.Problems[0].Check != "region" || !strings.Contains(perr.Problems[0].Problem, "ap-southeast-3 is an opt-in region not enabled") {
		t.Errorf("want only the region problem:\n%s", problemTable(perr.Problems))
	}
}
