package copy

import (
	"reflect"
	"testing"
)

// TestResolveTargetsAppliesDefaults: the top-level settings apply to every
// target that does not set its own; role_name becomes the role ARN in the
// target's account; regions default to the source AMIs' regions.
func TestResolveTargetsAppliesDefaults(t *testing.T) {
	type want struct {
		role, externalID string
		regions          []string
		keys             map[string]string
		users            []string
	}
	tests := []struct {
		name    string
		raw     map[string]interface{}
		targets map[string]want
	}{
		{
			name: "top-level defaults and per-target overrides",
			raw: map[string]interface{}{
				"role_name": "amicrypt-copy", "external_id": "ext", "kms_key_id": "alias/amicrypt-target",
				"region_kms_key_ids": map[string]string{"eu-west-1": "alias/eu"},
				"regions":            []string{"us-east-1", "eu-west-1"}, "ami_users": []string{"555555555555"},
				"target": []map[string]interface{}{
					{"account_id": "222222222222"},
					{"account_id": "333333333333", "role_arn": "arn:aws:iam::333333333333:role/other", "external_id": "own",
						"regions": []string{"us-west-2"}, "kms_key_id": "alias/own", "ami_users": []string{"666666666666"}},
					{"account_id": "444444444444", "region_kms_key_ids": map[string]string{"us-east-1": "alias/x"}},
				},
			},
			targets: map[string]want{
				"222222222222": {"arn:aws:iam::222222222222:role/amicrypt-copy", "ext", []string{"us-east-1", "eu-west-1"},
					map[string]string{"us-east-1": "alias/amicrypt-target", "eu-west-1": "alias/eu"}, []string{"555555555555"}},
				"333333333333": {"arn:aws:iam::333333333333:role/other", "own", []string{"us-west-2"},
					map[string]string{"us-west-2": "alias/own"}, []string{"666666666666"}},
				"444444444444": {"arn:aws:iam::444444444444:role/amicrypt-copy", "ext", []string{"us-east-1", "eu-west-1"},
					map[string]string{"us-east-1": "alias/x", "eu-west-1": "alias/eu"}, []string{"555555555555"}},
			},
		},
		{
			name: "regions default to the source AMIs'",
			raw: map[string]interface{}{
				"role_name": "amicrypt-copy", "kms_key_id": "alias/amicrypt-target",
				"target": []map[string]interface{}{{"account_id": "222222222222"}},
			},
			targets: map[string]want{
				"222222222222": {"arn:aws:iam::222222222222:role/amicrypt-copy", "", []string{"eu-west-1", "us-east-1"},
					map[string]string{"eu-west-1": "alias/amicrypt-target", "us-east-1": "alias/amicrypt-target"}, nil},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			if err := c.Prepare(tt.raw); err != nil {
				t.Fatal(err)
			}
			p := &plan{sess: &session{SourceAccount: "111111111111"}, sources: []*source{
				{Region: "eu-west-1", ImageID: "ami-0eu", Name: "golden"}, {Region: "us-east-1", ImageID: "ami-0us", Name: "golden"},
			}}
			c.resolveTargets(p)
			if len(p.problems) != 0 {
				t.Fatalf("problems: %+v", p.problems)
			}
			if len(p.targets) != len(tt.targets) {
				t.Fatalf("%d targets, want %d", len(p.targets), len(tt.targets))
			}
			for _, got := range p.targets {
				w := tt.targets[got.Account]
				if got.RoleARN != w.role || got.ExternalID != w.externalID || !reflect.DeepEqual(got.Regions, w.regions) ||
					!reflect.DeepEqual(got.KeyRefs, w.keys) || !reflect.DeepEqual(got.Sharing.Users, w.users) {
					t.Errorf("%s: role %q ext %q regions %v keys %v users %v; want %+v", got.Account, got.RoleARN, got.ExternalID, got.Regions, got.KeyRefs, got.Sharing.Users, w)
				}
			}
			for _, j := range p.jobs {
				if j.Source.Region != j.Region && (j.Region == "us-east-1" || j.Region == "eu-west-1") {
					t.Errorf("%s copies from the source in %s, want the one of its own region", j.Dest(), j.Source.Region)
				}
				if want := "golden-" + j.Target.Account; j.Name != want {
					t.Errorf("%s: name %q, want %q", j.Dest(), j.Name, want)
				}
			}
		})
	}
}
