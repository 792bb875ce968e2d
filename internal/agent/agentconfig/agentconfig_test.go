package agentconfig_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/agentconfig"
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := agentconfig.Parse([]byte(`{"kms_key_id":"alias/amicrypt-instance-store"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Layout != "single" || c.MountPoint != "/mnt/instance-store" || c.Filesystem != "ext4" || time.Duration(c.KMSTimeout) != time.Minute || c.Name != "amicrypt" || c.WipeForeign {
		t.Errorf("defaults: %+v", c)
	}
	full := `{"kms_key_id":"arn:aws:kms:eu-west-1:222222222222:alias/x","devices":["/dev/nvme1n1","/dev/nvme2n1"],"layout":"raid0",
		"mount_point":"/data","filesystem":"xfs","encryption_context":{"team":"payments"},"kms_timeout":"90s","wipe_foreign":true,"name":"scratch"}`
	c, err = agentconfig.Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if c.Layout != "raid0" || len(c.Devices) != 2 || c.Filesystem != "xfs" || time.Duration(c.KMSTimeout) != 90*time.Second || !c.WipeForeign || c.Name != "scratch" {
		t.Errorf("full config: %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, json string
		want       []string // field, value and fix
	}{
		{"no key", `{}`, []string{"kms_key_id", "missing", "alias/"}},
		{"bad key", `{"kms_key_id":"my-key"}`, []string{"kms_key_id", `"my-key"`, "key ARN"}},
		{"aws managed", `{"kms_key_id":"alias/aws/ebs"}`, []string{"kms_key_id", "alias/aws/ebs", "customer managed key"}},
		{"key material", `{"kms_key_id":"alias/k","passphrase":"hunter2"}`, []string{`unknown field "passphrase"`, "fields: kms_key_id"}},
		{"layout", `{"kms_key_id":"alias/k","layout":"raid5"}`, []string{"layout", `"raid5"`, "single", "each", "raid0"}},
		{"single with two", `{"kms_key_id":"alias/k","devices":["/dev/a","/dev/b"]}`, []string{"devices", "/dev/a, /dev/b", "each or raid0"}},
		{"raid0 with one", `{"kms_key_id":"alias/k","layout":"raid0","devices":["/dev/a"]}`, []string{"devices", "/dev/a", "layout single"}},
		{"relative device", `{"kms_key_id":"alias/k","devices":["nvme1n1"]}`, []string{"devices[0]", `"nvme1n1"`, "/dev/nvme1n1"}},
		{"duplicate device", `{"kms_key_id":"alias/k","layout":"each","devices":["/dev/a","/dev/a"]}`, []string{"devices[1]", "twice"}},
		{"mount point root", `{"kms_key_id":"alias/k","mount_point":"/"}`, []string{"mount_point", `"/"`, "/mnt/instance-store"}},
		{"mount point usr", `{"kms_key_id":"alias/k","mount_point":"/usr"}`, []string{"mount_point", "system directory"}},
		{"mount point under /run", `{"kms_key_id":"alias/k","mount_point":"/run/data"}`, []string{"mount_point", `"/run/data"`, "under /run"}},
		{"mount point relative", `{"kms_key_id":"alias/k","mount_point":"data"}`, []string{"mount_point", `"data"`, "absolute"}},
		{"filesystem", `{"kms_key_id":"alias/k","filesystem":"btrfs"}`, []string{"filesystem", `"btrfs"`, "ext4 or xfs"}},
		{"reserved context", `{"kms_key_id":"alias/k","encryption_context":{"amicrypt:instance-arn":"x"}}`, []string{"encryption_context", "amicrypt:instance-arn", "reserves", "rename"}},
		{"reserved context any case", `{"kms_key_id":"alias/k","encryption_context":{"AmiCrypt:x":"y"}}`, []string{"encryption_context", "AmiCrypt:x"}},
		{"empty context value", `{"kms_key_id":"alias/k","encryption_context":{"team":""}}`, []string{"encryption_context", "team", "1-1024"}},
		{"timeout syntax", `{"kms_key_id":"alias/k","kms_timeout":"soon"}`, []string{"kms_timeout", `"soon"`, `"60s"`}},
		{"timeout number", `{"kms_key_id":"alias/k","kms_timeout":60}`, []string{"kms_timeout", "60", `"60s"`}},
		{"timeout range", `{"kms_key_id":"alias/k","kms_timeout":"100ms"}`, []string{"kms_timeout", "100ms", "between 1s and 1h"}},
		{"name", `{"kms_key_id":"alias/k","name":"my volume"}`, []string{"name", `"my volume"`, "device-mapper name"}},
		{"two objects", `{"kms_key_id":"alias/k"}{}`, []string{"one object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := agentconfig.Parse([]byte(tt.json))
			if err == nil {
				t.Fatal("ParseConfig accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "instance-store.json")
	if _, err := agentconfig.Load(p); err == nil || !strings.Contains(err.Error(), "amicrypt-instance-store provisioner writes it") {
		t.Errorf("LoadConfig(missing): %v", err)
	}
	if err := os.WriteFile(p, []byte(`{"kms_key_id":"alias/k","layout":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := agentconfig.Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "layout") {
		t.Errorf("LoadConfig(bad): %v", err)
	}
}

// TestValidateReportsEveryProblem: one run names every bad field, so a user
// fixes the file in one go.
func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := agentconfig.Parse([]byte(`{"kms_key_id":"my-key","layout":"raid5","filesystem":"btrfs","kms_timeout":"1ms","name":"a b"}`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, field := range []string{"kms_key_id:", "layout:", "filesystem:", "kms_timeout:", "name:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error lacks %s: %v", field, err)
		}
	}
}

// TestMarshalRoundTrip: what the provisioner writes is what the agent reads,
// and a duration keeps the spelling users give it in whole seconds.
func TestMarshalRoundTrip(t *testing.T) {
	tests := []struct {
		timeout time.Duration
		want    string
	}{{time.Minute, `"60s"`}, {90 * time.Second, `"90s"`}, {1500 * time.Millisecond, `"1.5s"`}}
	for _, tt := range tests {
		c := agentconfig.Config{KMSKeyID: "alias/amicrypt-instance-store", Devices: []string{"/dev/nvme1n1"},
			EncryptionContext: map[string]string{"team": "payments"}, KMSTimeout: agentconfig.Duration(tt.timeout)}
		c.ApplyDefaults()
		data, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), `"kms_timeout": `+tt.want) || !strings.HasSuffix(string(data), "}\n") {
			t.Errorf("%s: %s", tt.timeout, data)
		}
		back, err := agentconfig.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*back, c) {
			t.Errorf("round trip: %+v, want %+v", *back, c)
		}
	}
}

// TestStandardLibraryOnly keeps the shared schema free of the AWS SDK and
// any other module: the agent's static binary and the plugin both import it.
func TestStandardLibraryOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != "github.com/amicrypt/packer-plugin-amicrypt/internal/agent/agentconfig" {
			t.Errorf("agentconfig depends on %s", dep)
		}
	}
}
