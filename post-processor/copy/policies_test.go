package copy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

// policyActions reads the actions of every statement of a policy file
// under docs/policies.
func policyActions(t *testing.T, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "policies", name))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Statement []struct {
			Action json.RawMessage
		}
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out []string
	for _, st := range doc.Statement {
		var one string
		var many []string
		switch {
		case json.Unmarshal(st.Action, &one) == nil:
			many = []string{one}
		case json.Unmarshal(st.Action, &many) != nil:
			t.Fatalf("%s: Action %s", name, st.Action)
		}
		for _, a := range many {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s lists no action", name)
	}
	return out
}

// TestEveryPermissionOfTheMinimalPolicies runs a copy whose source
// principal and target role are limited to the actions of
// docs/policies/copy-source.json and copy-target-role.json, then takes each
// action away in turn (the world's deny lists): the run stops before any
// copy is made, with a message that names the missing permission and the
// IAM policy to fix, and leaves nothing behind.
//
// The emulator applies deny lists, not IAM policy documents: until it
// evaluates policies (and their conditions, kms:ViaService and
// kms:GrantIsForAWSResource), the run is allowed everything else.
func TestEveryPermissionOfTheMinimalPolicies(t *testing.T) {
	type denial struct {
		who, action string
	}
	var cases []denial
	for _, a := range policyActions(t, "copy-source.json") {
		cases = append(cases, denial{"source", a})
	}
	for _, a := range policyActions(t, "copy-target-role.json") {
		cases = append(cases, denial{"target", a})
	}
	// Either of these takes back this run's own grants (RetireGrant as the
	// retiring principal, RevokeGrant as key administrator); both are in
	// the policy for the grants of dead runs of other principals. A run
	// denied one of them succeeds through the other and leaves nothing.
	// Preflight asks RetireGrant with DryRun; the emulator does not answer
	// DryRun for it yet.
	fallback := map[string]bool{"kms:RetireGrant": true, "kms:RevokeGrant": true}

	run := func(t *testing.T, deny denial) (*emutest.Server, int, string, error) {
		w := defaultWorld(t)
		if deny.action != "" {
			switch deny.who {
			case "source":
				// The run's source principal is the role amicrypt-build;
				// the user packer makes the source AMI.
				src := account(w, srcAccount)
				for i := range src.Roles {
					if src.Roles[i].Name == "amicrypt-build" {
						src.Roles[i].Deny = append(src.Roles[i].Deny, deny.action)
					}
				}
			case "target":
				tgt := account(w, "222222222222")
				tgt.Roles[0].Deny = append(tgt.Roles[0].Deny, deny.action)
			}
		}
		srv := emu(t, awsemu.Options{World: w})
		srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
		raw := baseConfig(t)
		raw["target"] = []map[string]interface{}{{"account_id": "222222222222"}}
		raw["assume_role"] = map[string]interface{}{"role_arn": "arn:aws:iam::111111111111:role/amicrypt-build"}
		mark := srv.Emulator().CheckMark()
		ui := newUI()
		_, _, _, err := newPP(t, raw).PostProcess(context.Background(), ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI})
		return srv, mark, ui.buf.String(), err
	}

	t.Run("nothing denied", func(t *testing.T) {
		srv, mark, out, err := run(t, denial{})
		if err != nil {
			t.Fatalf("the run fails with every action of the policies allowed: %v\n%s", err, out)
		}
		check(t, srv, mark)
	})
	for _, c := range cases {
		t.Run(c.who+" "+c.action, func(t *testing.T) {
			srv, mark, out, err := run(t, c)
			if fallback[c.action] {
				if err != nil {
					t.Fatalf("denied only %s, the run fails: %v\n%s", c.action, err, out)
				}
				check(t, srv, mark)
				return
			}
			if err == nil {
				t.Fatalf("denied %s, the run succeeded: the policy lists an action the run does not need, or preflight misses it\n%s", c.action, out)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.action) {
				t.Errorf("the failure does not name %s:\n%s", c.action, msg)
			}
			if !strings.Contains(msg, "in the IAM policy of") && !strings.Contains(msg, "in its own IAM policy") {
				t.Errorf("the failure does not point at the IAM policy that denies %s:\n%s", c.action, msg)
			}
			if strings.Contains(msg, "in the key policy of") {
				t.Errorf("an IAM deny of %s is blamed on a key policy:\n%s", c.action, msg)
			}
			if !strings.Contains(msg, "preflight found") && !strings.Contains(msg, "before any copy") {
				t.Errorf("denied %s, the run failed midway, not at preflight:\n%s", c.action, msg)
			}
			if n := callsSince(srv, mark, "CopyImage"); n != 0 {
				t.Errorf("denied %s, the run made %d copies before failing", c.action, n)
			}
			check(t, srv, mark)
		})
	}
}

// TestFixNamesTheRightPolicy: a target role whose IAM policy denies kms:*
// is told to fix that IAM policy; a target key whose key policy doesn't
// let the account use it is told to fix the key policy.
func TestFixNamesTheRightPolicy(t *testing.T) {
	tests := []struct {
		name     string
		world    func(*awsemu.World)
		want     []string
		wantNone string
	}{
		{"the role's IAM policy denies kms:*", func(w *awsemu.World) {
			a := account(w, "222222222222")
			a.Roles[0].Deny = []string{"kms:*"}
		}, []string{"222222222222/us-east-1", "in the IAM policy of arn:aws:iam::222222222222:role/amicrypt-copy", "the key policy is not the problem"}, "in the key policy of"},
		{"the target key's policy lets nobody use it", func(w *awsemu.World) {
			a := account(w, "222222222222")
			for i := range a.Keys {
				if a.Keys[i].Region == "us-east-1" {
					a.Keys[i].Policy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:user/admin"},"Action":"kms:*","Resource":"*"}]}`
				}
			}
		}, []string{"222222222222/us-east-1", "in the key policy of alias/amicrypt-target"}, "in the IAM policy of arn:aws:iam::222222222222:role/amicrypt-copy"},
		{"a region with a typo", func(w *awsemu.World) {}, []string{"222222222222/us-east-7", "not a region AWS lists for account 222222222222", "check the spelling"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := defaultWorld(t)
			tt.world(w)
			srv := emu(t, awsemu.Options{World: w})
			srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
			raw := baseConfig(t)
			raw["regions"] = []string{"us-east-1"}
			if strings.Contains(tt.name, "typo") {
				raw["regions"] = []string{"us-east-1", "us-east-7"}
			}
			raw["target"] = []map[string]interface{}{{"account_id": "222222222222"}}
			ui := newUI()
			_, _, _, err := newPP(t, raw).PostProcess(context.Background(), ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI})
			if err == nil {
				t.Fatalf("the run succeeded:\n%s", ui.buf)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the problem lacks %q:\n%s", want, err)
				}
			}
			if tt.wantNone != "" && strings.Contains(err.Error(), tt.wantNone) {
				t.Errorf("the problem blames the wrong policy (%q):\n%s", tt.wantNone, err)
			}
		})
	}
}
