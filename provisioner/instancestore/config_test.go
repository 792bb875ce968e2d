package instancestore

import (
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/agentconfig"
)

const testKey = "alias/amicrypt-instance-store"

func TestPrepareFields(t *testing.T) {
	tests := []struct {
		name string
		raw  map[string]interface{} // over {kms_key_id = testKey}
		// want are substrings of the error, all of them; none means valid.
		want  []string
		check func(t *testing.T, c *Config)
	}{
		// kms_key_id
		{name: "key alias name", raw: map[string]interface{}{"kms_key_id": "alias/amicrypt-instance-store"}},
		{name: "key ID", raw: map[string]interface{}{"kms_key_id": "1234abcd-12ab-34cd-56ef-1234567890ab"}},
		{name: "multi-region key ID", raw: map[string]interface{}{"kms_key_id": "mrk-1234abcd12ab34cd56ef1234567890ab"}},
		{name: "key ARN", raw: map[string]interface{}{"kms_key_id": "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"}},
		{name: "alias ARN", raw: map[string]interface{}{"kms_key_id": "arn:aws:kms:eu-west-1:111111111111:alias/amicrypt-instance-store"}},
		{name: "key missing", raw: map[string]interface{}{"kms_key_id": ""},
			want: []string{"kms_key_id: not set", `kms_key_id = "alias/NAME"`}},
		{name: "key malformed", raw: map[string]interface{}{"kms_key_id": "amicrypt-instance-store"},
			want: []string{`kms_key_id: "amicrypt-instance-store" is not a KMS key reference`, "alias name (alias/NAME)", "key ARN"}},
		{name: "key ARN of a bad account", raw: map[string]interface{}{"kms_key_id": "arn:aws:kms:us-east-1:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
			want: []string{"kms_key_id:", "is not a KMS key reference"}},
		{name: "AWS-managed alias", raw: map[string]interface{}{"kms_key_id": "alias/aws/ebs"},
			want: []string{`kms_key_id: "alias/aws/ebs" is an AWS-managed key`, "key policy can't be changed", "no other account", "create a customer-managed key"}},
		{name: "AWS-managed alias ARN", raw: map[string]interface{}{"kms_key_id": "arn:aws:kms:us-east-1:111111111111:alias/aws/ebs"},
			want: []string{"is an AWS-managed key"}},

		// devices and layout
		{name: "defaults", check: func(t *testing.T, c *Config) {
			if c.Layout != LayoutSingle || c.MountPoint != "/mnt/instance-store" || c.Filesystem != "ext4" || c.KMSTimeout != "60s" ||
				c.kmsTimeout != time.Minute || c.MapperName != "amicrypt" || !c.useSudo() || len(c.Devices) != 0 || c.Architecture != "" {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "one device", raw: map[string]interface{}{"devices": []string{"/dev/nvme1n1"}}},
		{name: "device by id", raw: map[string]interface{}{"devices": []string{"/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1"}}},
		{name: "raid0 of two", raw: map[string]interface{}{"layout": "raid0", "devices": []string{"/dev/nvme1n1", "/dev/nvme2n1"}},
			check: func(t *testing.T, c *Config) {
				if c.Layout != LayoutRAID0 || len(c.Devices) != 2 {
					t.Errorf("got %+v", c)
				}
			}},
		{name: "each", raw: map[string]interface{}{"layout": "each"}},
		{name: "device not under /dev", raw: map[string]interface{}{"devices": []string{"nvme1n1"}},
			want: []string{`devices[0]: "nvme1n1" is not a device path`, `"/dev/nvme1n1"`}},
		{name: "device not clean", raw: map[string]interface{}{"devices": []string{"/dev/../dev/nvme1n1"}},
			want: []string{`devices[0]: "/dev/../dev/nvme1n1" is not a device path`}},
		{name: "device twice", raw: map[string]interface{}{"layout": "each", "devices": []string{"/dev/nvme1n1", "/dev/nvme1n1"}},
			want: []string{`devices[1]: "/dev/nvme1n1" is listed twice`}},
		{name: "single with two devices", raw: map[string]interface{}{"devices": []string{"/dev/nvme1n1", "/dev/nvme2n1"}},
			want: []string{`devices: layout "single" takes one disk, but 2 are listed (/dev/nvme1n1, /dev/nvme2n1)`, `layout = "each" or "raid0"`}},
		{name: "raid0 of one", raw: map[string]interface{}{"layout": "raid0", "devices": []string{"/dev/nvme1n1"}},
			want: []string{`devices: layout "raid0" stripes several disks, but only "/dev/nvme1n1" is listed`, `layout = "single"`}},
		{name: "unknown layout", raw: map[string]interface{}{"layout": "raid1"},
			want: []string{`layout: "raid1" is not a layout`, `"single"`, `"each"`, `"raid0"`}},

		// mount_point and filesystem
		{name: "mount point", raw: map[string]interface{}{"mount_point": "/data"}},
		{name: "mount point under /srv", raw: map[string]interface{}{"mount_point": "/srv/scratch"}},
		{name: "mount point relative", raw: map[string]interface{}{"mount_point": "data"},
			want: []string{`mount_point: "data" is not a clean absolute path`, `"/mnt/instance-store"`}},
		{name: "mount point not clean", raw: map[string]interface{}{"mount_point": "/mnt/x/"},
			want: []string{`mount_point: "/mnt/x/" is not a clean absolute path`}},
		{name: "mount point root", raw: map[string]interface{}{"mount_point": "/"},
			want: []string{`mount_point: "/" would hide a system directory`}},
		{name: "mount point /usr", raw: map[string]interface{}{"mount_point": "/usr"},
			want: []string{`mount_point: "/usr" would hide a system directory`}},
		{name: "mount point under /proc", raw: map[string]interface{}{"mount_point": "/proc/x"},
			want: []string{`mount_point: "/proc/x" is under /proc`}},
		{name: "mount point /sys", raw: map[string]interface{}{"mount_point": "/sys"},
			want: []string{`mount_point: "/sys" is under /sys`}},
		{name: "mount point under /dev", raw: map[string]interface{}{"mount_point": "/dev/shm/x"},
			want: []string{`mount_point: "/dev/shm/x" is under /dev`}},
		{name: "mount point under /run", raw: map[string]interface{}{"mount_point": "/run/data"},
			want: []string{`mount_point: "/run/data" is under /run`}},
		{name: "mount point under /boot", raw: map[string]interface{}{"mount_point": "/boot/efi/x"},
			want: []string{`mount_point: "/boot/efi/x" is under /boot`}},
		{name: "mount point /runner is not under /run", raw: map[string]interface{}{"mount_point": "/runner"}},
		{name: "mount point with a space", raw: map[string]interface{}{"mount_point": "/mnt/my data"},
			want: []string{`mount_point: "/mnt/my data" contains whitespace`}},
		{name: "xfs", raw: map[string]interface{}{"filesystem": "xfs"}},
		{name: "unknown filesystem", raw: map[string]interface{}{"filesystem": "btrfs"},
			want: []string{`filesystem: "btrfs" is not supported; use "ext4" (the default) or "xfs"`}},

		// encryption_context
		{name: "context", raw: map[string]interface{}{"encryption_context": map[string]string{"team": "payments", "app:tier": "db"}},
			check: func(t *testing.T, c *Config) {
				if c.EncryptionContext["team"] != "payments" || c.EncryptionContext["app:tier"] != "db" {
					t.Errorf("context %v", c.EncryptionContext)
				}
			}},
		{name: "reserved context key", raw: map[string]interface{}{"encryption_context": map[string]string{"amicrypt:instance-arn": "x"}},
			want: []string{`encryption_context: key "amicrypt:instance-arn" starts with "amicrypt:"`, "rename the key"}},
		{name: "reserved context key in capitals", raw: map[string]interface{}{"encryption_context": map[string]string{"AMICRYPT:team": "x"}},
			want: []string{`key "AMICRYPT:team" starts with "amicrypt:"`}},
		{name: "empty context key", raw: map[string]interface{}{"encryption_context": map[string]string{"": "x"}},
			want: []string{"encryption_context: a key is empty"}},
		{name: "empty context value", raw: map[string]interface{}{"encryption_context": map[string]string{"team": ""}},
			want: []string{`encryption_context: the value of "team" is empty`}},
		{name: "context key starting with a space", raw: map[string]interface{}{"encryption_context": map[string]string{" team": "x"}},
			want: []string{`encryption_context: key " team" is not 1-256 printable ASCII characters`}},
		{name: "context value too long", raw: map[string]interface{}{"encryption_context": map[string]string{"team": strings.Repeat("x", 1025)}},
			want: []string{`encryption_context: the value of "team" is 1025 characters; shorten it to 1024`}},

		// kms_timeout, wipe_foreign, name, required_by
		{name: "timeout", raw: map[string]interface{}{"kms_timeout": "2m30s"}, check: func(t *testing.T, c *Config) {
			if c.kmsTimeout != 150*time.Second {
				t.Errorf("kmsTimeout %s", c.kmsTimeout)
			}
		}},
		{name: "timeout not a duration", raw: map[string]interface{}{"kms_timeout": "90"},
			want: []string{`kms_timeout: "90" is not a duration; write it like "60s" or "2m"`}},
		{name: "timeout too short", raw: map[string]interface{}{"kms_timeout": "500ms"},
			want: []string{`kms_timeout: "500ms" is out of range; use between 1s and 1h0m0s`}},
		{name: "timeout too long", raw: map[string]interface{}{"kms_timeout": "2h"},
			want: []string{`kms_timeout: "2h" is out of range`}},
		{name: "wipe foreign", raw: map[string]interface{}{"wipe_foreign": true}, check: func(t *testing.T, c *Config) {
			if !c.WipeForeign {
				t.Error("wipe_foreign not set")
			}
		}},
		{name: "mapper_name", raw: map[string]interface{}{"mapper_name": "scratch_1"}},
		{name: "bad mapper_name", raw: map[string]interface{}{"mapper_name": "-scratch/1"},
			want: []string{`name: "-scratch/1" is not a device-mapper name`}},
		{name: "required by", raw: map[string]interface{}{"required_by": []string{"postgresql.service", "data@1.mount"}}},
		{name: "required by without a type", raw: map[string]interface{}{"required_by": []string{"postgresql"}},
			want: []string{`required_by[0]: "postgresql" is not a systemd unit name`, `"postgresql.service"`}},
		{name: "required by itself", raw: map[string]interface{}{"required_by": []string{UnitName}},
			want: []string{`required_by[0]: "amicrypt-instance-store.service" is the agent's own unit`}},
		{name: "required by twice", raw: map[string]interface{}{"required_by": []string{"a.service", "a.service"}},
			want: []string{`required_by[1]: "a.service" is listed twice`}},

		// architecture, skip_self_test, use_sudo
		{name: "amd64", raw: map[string]interface{}{"architecture": "amd64"}},
		{name: "arm64", raw: map[string]interface{}{"architecture": "arm64"}},
		{name: "kernel's name", raw: map[string]interface{}{"architecture": "aarch64"},
			want: []string{`architecture: "aarch64" is the kernel's name; use the Go name "arm64"`}},
		{name: "unknown architecture", raw: map[string]interface{}{"architecture": "riscv64"},
			want: []string{`architecture: "riscv64" is not supported; use "amd64" or "arm64"`}},
		{name: "skip self-test", raw: map[string]interface{}{"skip_self_test": true}, check: func(t *testing.T, c *Config) {
			if !c.SkipSelfTest {
				t.Error("skip_self_test not set")
			}
		}},
		{name: "no sudo", raw: map[string]interface{}{"use_sudo": false}, check: func(t *testing.T, c *Config) {
			if c.useSudo() {
				t.Error("use_sudo = false ignored")
			}
		}},
		{name: "unknown field", raw: map[string]interface{}{"kms_key": "alias/x"}, want: []string{"kms_key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := map[string]interface{}{"kms_key_id": testKey}
			maps.Copy(raw, tc.raw)
			p, err := newProvisioner(t, fakeAgents(t), raw)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				// The file it uploads is one amicrypt-agent reads back as is.
				data, err := p.config.AgentConfig().Marshal()
				if err != nil {
					t.Fatal(err)
				}
				parsed, err := agentconfig.Parse(data)
				if err != nil {
					t.Fatalf("amicrypt-agent refuses the config file:\n%s\n%v", data, err)
				}
				if want := p.config.AgentConfig(); !reflect.DeepEqual(*parsed, want) {
					t.Errorf("amicrypt-agent reads %+v, the provisioner meant %+v", *parsed, want)
				}
				if tc.check != nil {
					tc.check(t, &p.config)
				}
				return
			}
			if err == nil {
				t.Fatalf("want an error with %q, got none", tc.want)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
		})
	}
}

// TestPrepareReportsEveryProblem: one validate shows every mistake.
func TestPrepareReportsEveryProblem(t *testing.T) {
	_, err := newProvisioner(t, fakeAgents(t), map[string]interface{}{
		"kms_key_id":  "alias/aws/ebs",
		"layout":      "mirror",
		"mount_point": "/",
		"filesystem":  "zfs",
		"kms_timeout": "forever",
	})
	if err == nil {
		t.Fatal("want errors")
	}
	for _, field := range []string{"kms_key_id:", "layout:", "mount_point:", "filesystem:", "kms_timeout:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error lacks %s:\n%v", field, err)
		}
	}
}

func TestPrepareNeedsTheEmbeddedAgent(t *testing.T) {
	onlyAMD64 := fakeAgents(t)
	delete(onlyAMD64, AgentDir+"/"+AgentFileName(ArchARM64))
	tests := []struct {
		name    string
		agents  fstest.MapFS
		arch    string
		missing []string // architectures named by *MissingAgentError
	}{
		{name: "none embedded", agents: fstest.MapFS{AgentDir + "/README.md": {Data: []byte("placeholder")}}, missing: []string{"amd64", "arm64"}},
		{name: "none embedded, arm64 configured", agents: fstest.MapFS{}, arch: "arm64", missing: []string{"arm64"}},
		{name: "amd64 only, architecture unknown", agents: onlyAMD64, missing: []string{"arm64"}},
		{name: "amd64 only, amd64 configured", agents: onlyAMD64, arch: "amd64"},
		{name: "both", agents: fakeAgents(t)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := map[string]interface{}{"kms_key_id": testKey}
			if tc.arch != "" {
				raw["architecture"] = tc.arch
			}
			_, err := newProvisioner(t, tc.agents, raw)
			if len(tc.missing) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var missing *MissingAgentError
			if !errors.As(err, &missing) {
				t.Fatalf("want a *MissingAgentError, got %v", err)
			}
			for _, arch := range tc.missing {
				if !strings.Contains(err.Error(), "built without amicrypt-agent for linux/"+arch) {
					t.Errorf("error does not name linux/%s:\n%v", arch, err)
				}
			}
			for _, want := range []string{"`make build`", "./cmd/amicrypt-agent", "provisioner/instancestore/agent/"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks the fix %q:\n%v", want, err)
				}
			}
		})
	}
}

// TestDefaultsAreTheAgents: the provisioner's defaults are the agent's.
func TestDefaultsAreTheAgents(t *testing.T) {
	if d, err := time.ParseDuration(DefaultKMSTimeout); err != nil || d != agentconfig.DefaultKMSTimeout {
		t.Errorf("DefaultKMSTimeout %q, the agent's %s", DefaultKMSTimeout, agentconfig.DefaultKMSTimeout)
	}
	p, err := newProvisioner(t, fakeAgents(t), map[string]interface{}{"kms_key_id": testKey})
	if err != nil {
		t.Fatal(err)
	}
	got := p.config.AgentConfig()
	want := agentconfig.Config{KMSKeyID: testKey}
	want.ApplyDefaults()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the provisioner's defaults %+v, the agent's %+v", got, want)
	}
}

func TestAgentConfigJSON(t *testing.T) {
	p, err := newProvisioner(t, fakeAgents(t), map[string]interface{}{
		"kms_key_id":         testKey,
		"devices":            []string{"/dev/nvme1n1", "/dev/nvme2n1"},
		"layout":             "raid0",
		"mount_point":        "/data",
		"filesystem":         "xfs",
		"encryption_context": map[string]string{"team": "payments"},
		"kms_timeout":        "90s",
		"wipe_foreign":       true,
		"mapper_name":        "scratch",
		"architecture":       "arm64",
		"required_by":        []string{"postgresql.service"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.config.AgentConfig().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "kms_key_id": "alias/amicrypt-instance-store",
  "devices": [
    "/dev/nvme1n1",
    "/dev/nvme2n1"
  ],
  "layout": "raid0",
  "mount_point": "/data",
  "filesystem": "xfs",
  "encryption_context": {
    "team": "payments"
  },
  "kms_timeout": "90s",
  "wipe_foreign": true,
  "name": "scratch"
}
`
	if string(got) != want {
		t.Errorf("config file:\n%s\nwant:\n%s", got, want)
	}
}
