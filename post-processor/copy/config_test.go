package copy

import (
	"fmt"
	"strings"
	"testing"

	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"
)

func validRaw() map[string]interface{} {
	return map[string]interface{}{
		"region":     "us-east-1",
		"role_name":  "amicrypt-copy",
		"kms_key_id": "alias/amicrypt-target",
		"target":     []map[string]interface{}{{"account_id": "222222222222"}},
	}
}

// TestPrepareAcceptsUnsetFields: an HCL2 template hands every attribute it
// does not set as nil; those take their defaults, and are not taken for a 0.
func TestPrepareAcceptsUnsetFields(t *testing.T) {
	raw := validRaw()
	for _, f := range []string{"copy_concurrency", "destination_copy_limit", "max_retries", "lease_duration", "external_id"} {
		raw[f] = nil
	}
	raw["aws_polling"] = map[string]interface{}{"max_attempts": nil, "delay_seconds": nil}
	raw["external_id"] = "amicrypt-demo:ext/1=2,3.4@5+6_7-8"
	var c Config
	if err := c.Prepare(raw); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if c.CopyConcurrency != 0 || c.leaseDuration != DefaultLeaseDuration {
		t.Errorf("defaults not applied: copy_concurrency %d (want 0: no cap), lease %s", c.CopyConcurrency, c.leaseDuration)
	}
}

func TestPrepareDefaults(t *testing.T) {
	var c Config
	if err := c.Prepare(validRaw()); err != nil {
		t.Fatal(err)
	}
	if c.AMIName != DefaultAMIName || c.CopyConcurrency != 0 || c.DestinationCopyLimit != DefaultDestinationCopyLimit ||
		c.OnFailure != OnFailureRollback || c.grantPropagation != DefaultGrantPropagationTimeout {
		t.Errorf("defaults not applied: %+v", c)
	}
	var noRegion Config
	raw := validRaw()
	delete(raw, "region")
	if err := noRegion.Prepare(raw); err != nil || noRegion.RawRegion != "" {
		t.Errorf("region must be optional (defaults to the source AMI's): %v, %q", err, noRegion.RawRegion)
	}
}

// TestPrepareRejects checks every bad input fails at Configure with the
// field, the value and a fix in the message.
func TestPrepareRejects(t *testing.T) {
	tests := []struct {
		name string
		mut  func(map[string]interface{})
		want []string // substrings of the error
	}{
		{"no target", func(r map[string]interface{}) { delete(r, "target") }, []string{"target", "add one"}},
		{"account id not 12 digits", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "2222"}}
		}, []string{"target[0].account_id", `"2222"`, "12-digit"}},
		{"duplicate account", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "222222222222"}, {"account_id": "222222222222"}}
		}, []string{"222222222222", "merge"}},
		{"no role", func(r map[string]interface{}) { delete(r, "role_name") }, []string{"role_arn", "role_name"}},
		{"role of another account", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "222222222222", "role_arn": "arn:aws:iam::333333333333:role/x"}}
		}, []string{"role_arn", "333333333333", "arn:aws:iam::222222222222:role/NAME"}},
		{"bad role name", func(r map[string]interface{}) { r["role_name"] = "arn:aws:iam::1:role/x" }, []string{"role_name", "name only"}},
		{"no key", func(r map[string]interface{}) { delete(r, "kms_key_id") }, []string{"kms_key_id", "alias/NAME"}},
		{"AWS-managed key", func(r map[string]interface{}) { r["kms_key_id"] = "alias/aws/ebs" }, []string{"kms_key_id", "alias/aws/ebs", "AWS-managed"}},
		{"garbage key", func(r map[string]interface{}) { r["kms_key_id"] = "my-key" }, []string{"kms_key_id", `"my-key"`, "alias name"}},
		{"top-level key ARN of another account", func(r map[string]interface{}) {
			r["kms_key_id"] = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
		}, []string{"kms_key_id", "111111111111", "its own account"}},
		{"target key of the source account", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "222222222222", "kms_key_id": "arn:aws:kms:us-east-1:111111111111:alias/amicrypt-build"}}
		}, []string{"target[0] (account 222222222222).kms_key_id", "belongs to account 111111111111"}},
		{"region key in the wrong region", func(r map[string]interface{}) {
			r["region_kms_key_ids"] = map[string]string{"eu-west-1": "arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"}
		}, []string{"region_kms_key_ids", "eu-west-1", "us-east-1"}},
		{"bad region", func(r map[string]interface{}) { r["regions"] = []string{"useast1"} }, []string{"regions", `"useast1"`, "us-east-1"}},
		{"duplicate region", func(r map[string]interface{}) { r["regions"] = []string{"us-east-1", "us-east-1"} }, []string{"regions", "twice"}},
		{"bad ami user", func(r map[string]interface{}) { r["ami_users"] = []string{"abc"} }, []string{"ami_users", `"abc"`}},
		{"bad org arn", func(r map[string]interface{}) { r["ami_org_arns"] = []string{"o-123"} }, []string{"ami_org_arns", "organization ARN"}},
		{"bad ou arn", func(r map[string]interface{}) { r["ami_ou_arns"] = []string{"ou-1"} }, []string{"ami_ou_arns", "organizational unit"}},
		{"bad name template", func(r map[string]interface{}) { r["ami_name"] = "{{ .Nope" }, []string{"ami_name", "template"}},
		{"unknown template variable", func(r map[string]interface{}) { r["ami_name"] = "{{ .Acount }}-copy" },
			[]string{`ami_name: "{{ .Acount }}-copy" is not a valid template ({{ .Acount }} is not a variable of this template; the variables are .SourceAMIName, .SourceAMI, .Account and .Region)`}},
		{"bad name chars", func(r map[string]interface{}) { r["ami_name"] = "x*{{ .Account }}" }, []string{"ami_name", "renders to", "clean_resource_name"}},
		{"provenance tag", func(r map[string]interface{}) { r["tags"] = map[string]string{"CopiedFromAMI": "x"} }, []string{"tags", "CopiedFromAMI", "provenance"}},
		{"aws tag", func(r map[string]interface{}) { r["snapshot_tags"] = map[string]string{"aws:x": "y"} }, []string{"snapshot_tags", "aws:"}},
		{"deprecate_at format", func(r map[string]interface{}) { r["deprecate_at"] = "tomorrow" }, []string{"deprecate_at", `"tomorrow"`, "RFC 3339"}},
		{"deprecate_at past", func(r map[string]interface{}) { r["deprecate_at"] = "2001-01-01T00:00:00Z" }, []string{"deprecate_at", "past"}},
		{"negative concurrency", func(r map[string]interface{}) { r["copy_concurrency"] = -1 }, []string{"copy_concurrency", "-1"}},
		{"negative destination limit", func(r map[string]interface{}) { r["destination_copy_limit"] = -2 }, []string{"destination_copy_limit", "-2"}},
		{"on_failure", func(r map[string]interface{}) { r["on_failure"] = "ignore" }, []string{"on_failure", `"ignore"`, "rollback", "keep"}},
		{"grant timeout", func(r map[string]interface{}) { r["grant_propagation_timeout"] = "soon" }, []string{"grant_propagation_timeout", `"soon"`}},
		{"transit key", func(r map[string]interface{}) { r["transit_kms_key_id"] = "alias/aws/ebs" }, []string{"transit_kms_key_id", "AWS-managed"}},
		{"create_missing_keys needs alias", func(r map[string]interface{}) {
			r["create_missing_keys"] = true
			r["kms_key_id"] = "arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"
		}, []string{"create_missing_keys", "alias"}},
		{"access config", func(r map[string]interface{}) { r["access_key"] = "AKIA" }, []string{"secret_key"}},
		{"source_ami and source_ami_filter", func(r map[string]interface{}) {
			r["source_ami"] = "ami-0a1b2c3d4e5f60001"
			r["source_ami_filter"] = map[string]interface{}{"filters": map[string]string{"name": "app-*"}, "owners": []string{"self"}}
		}, []string{"source_ami, source_ami_filter: both set", "not both"}},
		{"malformed source_ami", func(r map[string]interface{}) { r["source_ami"] = "ami123" }, []string{`source_ami: "ami123" is not an AMI ID`, "source_ami_filter"}},
		{"source_ami without region", func(r map[string]interface{}) {
			r["source_ami"] = "ami-0a1b2c3d4e5f60001"
			delete(r, "region")
		}, []string{"region: not set", "source_ami needs it", `region = "us-east-1"`}},
		{"source_ami_filter without owners", func(r map[string]interface{}) {
			r["source_ami_filter"] = map[string]interface{}{"filters": map[string]string{"name": "app-*"}}
		}, []string{"source_ami_filter.owners: not set", `["self"]`}},
		{"source_ami behind a builder that makes AMIs", func(r map[string]interface{}) {
			r["source_ami"] = "ami-0a1b2c3d4e5f60001"
			r["packer_builder_type"] = "amicrypt-ebs"
		}, []string{"source_ami: set, yet this amicrypt-copy follows a \"amicrypt-ebs\" source", "remove source_ami", "null builder"}},
		// Accepted but wrong before: refused now, naming the field, the value
		// and the fix.
		{"external_id one character", func(r map[string]interface{}) { r["external_id"] = "x" }, []string{"external_id", `"x"`, "2 to 1224"}},
		{"external_id too long", func(r map[string]interface{}) { r["external_id"] = strings.Repeat("a", 1225) }, []string{"external_id", "1225 characters", "2 to 1224"}},
		{"external_id with a space", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "222222222222", "external_id": "my id!"}}
		}, []string{"target[0] (account 222222222222).external_id", `"my id!"`, `contains " !"`, "+=,.@:/-_"}},
		{"assume_role external_id", func(r map[string]interface{}) {
			r["assume_role"] = map[string]interface{}{"role_arn": "arn:aws:iam::111111111111:role/b", "external_id": "a#b"}
		}, []string{"assume_role.external_id", `"a#b"`}},
		{"copy_concurrency 0", func(r map[string]interface{}) { r["copy_concurrency"] = 0 }, []string{"copy_concurrency: 0 is not a setting", "remove the field for no cap"}},
		{"destination_copy_limit 0", func(r map[string]interface{}) { r["destination_copy_limit"] = 0.0 }, []string{"destination_copy_limit: 0 is not a setting", "remove the field"}},
		{"max_retries 0", func(r map[string]interface{}) { r["max_retries"] = 0 }, []string{"max_retries: 0 is not a setting", `not "no retries"`, "remove the field"}},
		{"aws_polling max_attempts 0", func(r map[string]interface{}) {
			r["aws_polling"] = map[string]interface{}{"max_attempts": 0, "delay_seconds": nil}
		}, []string{"aws_polling.max_attempts: 0 is not a setting", "remove the field"}},
		{"aws_polling delay_seconds 0 (JSON)", func(r map[string]interface{}) {
			r["aws_polling"] = map[string]interface{}{"delay_seconds": "0"}
		}, []string{"aws_polling.delay_seconds: 0 is not a setting"}},
		{"lease_duration too short", func(r map[string]interface{}) { r["lease_duration"] = "1s" }, []string{"lease_duration", `"1s"`, "5s to 1h0m0s"}},
		{"lease_duration not a duration", func(r map[string]interface{}) { r["lease_duration"] = "five" }, []string{"lease_duration", `"five"`, "5m"}},
		{"deprecate_at beyond ten years", func(r map[string]interface{}) { r["deprecate_at"] = "2099-01-01T00:00:00Z" }, []string{"deprecate_at", "10 years"}},
		{"key ID at the top level for many accounts", func(r map[string]interface{}) {
			r["kms_key_id"] = "1234abcd-12ab-34cd-56ef-1234567890ab"
			r["target"] = []map[string]interface{}{{"account_id": "222222222222"}, {"account_id": "333333333333"}}
		}, []string{"kms_key_id", "key ID", "alias name"}},
		{"key ID for several regions", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "222222222222", "kms_key_id": "1234abcd-12ab-34cd-56ef-1234567890ab", "regions": []string{"us-east-1", "eu-west-1"}}}
		}, []string{"target[0] (account 222222222222).kms_key_id", "names a key of one region", "us-east-1, eu-west-1"}},
		{"region key for a region the target doesn't copy to", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "222222222222", "regions": []string{"us-east-1"},
				"region_kms_key_ids": map[string]string{"eu-west-1": "alias/eu"}}}
		}, []string{`region_kms_key_ids["eu-west-1"]`, "not among this target's regions", "never be used"}},
		{"transit key of another region", func(r map[string]interface{}) {
			r["transit_kms_key_id"] = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
		}, []string{"transit_kms_key_id", "eu-west-1, not us-east-1", "only in its own region"}},
		{"role_name with a bad path", func(r map[string]interface{}) { r["role_name"] = "/team//copy" }, []string{"role_name", `"/team//copy"`}},
		{"too many tags", func(r map[string]interface{}) {
			tags := map[string]string{}
			for i := range 43 {
				tags[fmt.Sprintf("k%d", i)] = "v"
			}
			r["tags"] = tags
		}, []string{"tags", "43", "50"}},
		{"description too long", func(r map[string]interface{}) { r["ami_description"] = strings.Repeat("d", 256) }, []string{"ami_description", "256 characters", "255"}},
		{"lease tag in tags", func(r map[string]interface{}) { r["tags"] = map[string]string{"amicrypt:lease:x": "y"} }, []string{"tags", "amicrypt:lease:x", "amicrypt sets itself"}},
		{"source_ami_filter behind amazon-ebs", func(r map[string]interface{}) {
			r["source_ami_filter"] = map[string]interface{}{"filters": map[string]string{"name": "app-*"}, "owners": []string{"self"}}
			r["packer_builder_type"] = "amazon-ebs"
		}, []string{"source_ami_filter: set, yet this amicrypt-copy follows a \"amazon-ebs\" source"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := validRaw()
			tt.mut(raw)
			var c Config
			err := c.Prepare(raw)
			if err == nil {
				t.Fatal("Prepare accepted bad input")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestPrepareSourceAMIBehindTheNullBuilder: source_ami and
// source_ami_filter are accepted behind the null builder, with a region.
func TestPrepareSourceAMIBehindTheNullBuilder(t *testing.T) {
	for name, mut := range map[string]func(map[string]interface{}){
		"source_ami": func(r map[string]interface{}) { r["source_ami"] = "ami-0a1b2c3d4e5f60001" },
		"source_ami_filter": func(r map[string]interface{}) {
			r["source_ami_filter"] = map[string]interface{}{"filters": map[string]string{"name": "app-*"}, "owners": []string{"self"}, "most_recent": true}
		},
	} {
		t.Run(name, func(t *testing.T) {
			raw := validRaw()
			raw["packer_builder_type"] = "null"
			mut(raw)
			var c Config
			if err := c.Prepare(raw); err != nil || !c.fromConfig() {
				t.Errorf("Prepare: %v (fromConfig %v)", err, c.fromConfig())
			}
		})
	}
}

func TestPrepareReportsAllProblemsAtOnce(t *testing.T) {
	raw := validRaw()
	raw["on_failure"] = "x"
	raw["copy_concurrency"] = -1
	raw["regions"] = []string{"nowhere"}
	var c Config
	err := c.Prepare(raw)
	for _, f := range []string{"on_failure", "copy_concurrency", "regions"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("error %v lacks %s", err, f)
		}
	}
}

func TestParseArtifact(t *testing.T) {
	tests := []struct {
		builder, id string
		want        []sourceAMI
		wantErr     string
	}{
		{"amicrypt.ebs", "us-west-2:ami-0abc1234,us-east-1:ami-0def6789", []sourceAMI{{"us-east-1", "ami-0def6789"}, {"us-west-2", "ami-0abc1234"}}, ""},
		{"mitchellh.amazon.chroot", "eu-west-1:ami-12345678", []sourceAMI{{"eu-west-1", "ami-12345678"}}, ""},
		{"someone.else", "us-east-1:ami-12345678", []sourceAMI{{"us-east-1", "ami-12345678"}}, ""},
		{"packer.file", "out/file.txt", nil, `builder "packer.file"`},
		{"amicrypt.copy", "222222222222:us-east-1:ami-12345678", nil, `builder "amicrypt.copy"`},
		{"mitchellh.amazonebs", "", nil, "has no ID"},
		{"amicrypt.ebs", "us-east-1:ami-12345678,us-east-1:ami-87654321", nil, "two AMIs in us-east-1"},
	}
	for _, tt := range tests {
		got, err := parseArtifact(fakeArtifact{tt.builder, tt.id})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s %q: error %v, want %q", tt.builder, tt.id, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("%s %q: %v, %v", tt.builder, tt.id, got, err)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s %q: %v, want %v", tt.builder, tt.id, got, tt.want)
			}
		}
	}
}

func TestClientTokenDeterministic(t *testing.T) {
	a := clientToken("ami-1", "222222222222", "us-east-1", "arn:k", 0)
	if a != clientToken("ami-1", "222222222222", "us-east-1", "arn:k", 0) {
		t.Fatal("same inputs, different tokens")
	}
	if len(a) > 64 || len(clientToken("ami-1", "2", "r", "k", 2)) > 64 {
		t.Fatalf("token %q longer than 64", a)
	}
	for _, other := range []string{
		clientToken("ami-2", "222222222222", "us-east-1", "arn:k", 0),
		clientToken("ami-1", "333333333333", "us-east-1", "arn:k", 0),
		clientToken("ami-1", "222222222222", "eu-west-1", "arn:k", 0),
		clientToken("ami-1", "222222222222", "us-east-1", "arn:k2", 0),
		clientToken("ami-1", "222222222222", "us-east-1", "arn:k", 1),
	} {
		if other == a {
			t.Errorf("token does not depend on every input: %s", a)
		}
	}
}

func TestCopyTagsPrecedence(t *testing.T) {
	got := copyTags(
		map[string]string{"Team": "src", "Env": "prod", "aws:cloudformation:stack-name": "x"},
		map[string]string{"Team": "configured"},
		map[string]string{TagSourceAMI: "ami-1", TagEncrypted: "true"},
	)
	want := map[string]string{"Team": "configured", "Env": "prod", TagSourceAMI: "ami-1", TagEncrypted: "true"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestIAMPrincipal(t *testing.T) {
	for in, want := range map[string]string{
		"arn:aws:sts::111111111111:assumed-role/amicrypt-build/session": "arn:aws:iam::111111111111:role/amicrypt-build",
		"arn:aws:iam::111111111111:user/packer":                         "arn:aws:iam::111111111111:user/packer",
	} {
		if got := iamPrincipal(in); got != want {
			t.Errorf("iamPrincipal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestArtifact(t *testing.T) {
	a := &Artifact{SourceAccount: "111111111111", Copies: []Copy{
		{Account: "333333333333", Region: "us-east-1", ImageID: "ami-3", KeyARN: "arn:k3", SourceAMI: "ami-s", State: "available"},
		{Account: "222222222222", Region: "eu-west-1", ImageID: "ami-2", KeyARN: "arn:k2", SourceAMI: "ami-s", State: "available"},
		{Account: "222222222222", Region: "us-east-1", ImageID: "ami-1", State: "rolled back"},
		{Account: "444444444444", Region: "us-east-1", State: "failed", Reason: "x"},
	}}
	if got, want := a.Id(), "222222222222:eu-west-1:ami-2,333333333333:us-east-1:ami-3"; got != want {
		t.Errorf("Id = %q, want %q", got, want)
	}
	imgs, ok := a.State(registryimage.ArtifactStateURI).([]*registryimage.Image)
	if !ok || len(imgs) != 2 {
		t.Fatalf("registry images %v", imgs)
	}
	for _, img := range imgs {
		if img.Validate() != nil || img.Labels["account_id"] == "" || img.Labels["kms_key_arn"] == "" || img.SourceImageID != "ami-s" {
			t.Errorf("registry image %+v", img)
		}
	}
	if a.State("other") != nil {
		t.Error("unknown state must be nil")
	}
	if err := a.Destroy(); err == nil {
		t.Error("Destroy without credentials must fail loudly")
	}
}

func TestProblemTable(t *testing.T) {
	out := problemTable([]Problem{
		{Target: "b", Check: "x", Problem: "second\nline", Fix: "fix b"},
		{Target: "a", Check: "y", Problem: "first", Fix: "fix a"},
	})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TARGET") || !strings.HasPrefix(lines[1], "a ") || !strings.Contains(lines[2], "second line") {
		t.Errorf("table:\n%s", out)
	}
}
