package core_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/iam"
)

const hclWorld = `
regions          = ["us-east-1", "eu-west-1"]
disabled_regions = ["ap-southeast-3"]

account "137112412989" {
  alias = "amazon"
}

account "111111111111" {
  ebs_encryption_by_default = ["eu-west-1"]
  user "packer" {
    access_key = "AKIA1111111111111111"
    secret_key = "emu-secret-111111111111"
    deny       = ["ec2:CopyImage"]
  }
  role "amicrypt-build" {
    trusted = ["111111111111"]
  }
  key {
    region  = "us-east-1"
    aliases = ["alias/amicrypt-build"]
    policy = jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::111111111111:root" }
        Action    = "kms:*"
        Resource  = "*"
      }]
    })
  }
}

account "222222222222" {
  user "admin" {
    access_key = "AKIA2222222222222222"
    secret_key = "emu-secret-222222222222"
  }
  role "amicrypt-copy" {
    trusted     = ["111111111111"]
    external_id = "x"
  }
}

image "ami-0a1b2c3d4e5f60001" {
  owner               = "137112412989"
  region              = "us-east-1"
  name                = "al2023-ami-2023.6.20241212.0-kernel-6.1-x86_64"
  public              = true
  architecture        = "x86_64"
  virtualization_type = "hvm"
  root_device_name    = "/dev/xvda"
  ena_support         = true
  boot_mode           = "uefi-preferred"
  tags = { Name = "al2023" }
  volume "/dev/xvda" {
    snapshot_id = "snap-0a1b2c3d4e5f60001"
    size_gib    = 8
    volume_type = "gp3"
  }
}
`

func TestParseWorldHCL(t *testing.T) {
	w, err := core.ParseWorld("world.hcl", []byte(hclWorld))
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Accounts) != 3 || w.Accounts[1].Users[0].Deny[0] != "ec2:CopyImage" || w.Accounts[2].Roles[0].ExternalID != "x" {
		t.Fatalf("accounts: %+v", w.Accounts)
	}
	if !strings.Contains(w.Accounts[1].Keys[0].Policy, `"kms:*"`) {
		t.Fatalf("jsonencode policy: %q", w.Accounts[1].Keys[0].Policy)
	}
	im := w.Images[0]
	if im.Volumes[0].DeviceName != "/dev/xvda" || im.Volumes[0].SizeGiB != 8 || im.Tags["Name"] != "al2023" || !im.Public || !im.EnaSupport {
		t.Fatalf("image: %+v", im)
	}
	ids := iam.New(w)
	if !ids.EBSEncryptionByDefault("111111111111", "eu-west-1") || ids.EBSEncryptionByDefault("111111111111", "us-east-1") {
		t.Fatal("ebs_encryption_by_default not applied per region")
	}
	if ids.Allowed("arn:aws:iam::111111111111:user/packer", "ec2:CopyImage") {
		t.Fatal("deny list ignored")
	}
	if !ids.Allowed("arn:aws:iam::111111111111:user/packer", "ec2:CopySnapshot") {
		t.Fatal("deny list too broad")
	}
}

func TestDefaultWorld(t *testing.T) {
	w, err := core.DefaultWorld()
	if err != nil {
		t.Fatal(err)
	}
	e, err := awsemu.New(awsemu.Options{World: w})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ids := iam.New(w)
	if got := strings.Join(w.Regions, ","); got != "us-east-1,us-west-2,eu-west-1,eu-central-1" {
		t.Fatalf("regions %s", got)
	}
	if w.RegionEnabled("ap-southeast-3") || !w.RegionKnown("ap-southeast-3") {
		t.Fatal("ap-southeast-3 must be known but not enabled")
	}
	if id, ok := ids.AccountByAlias("amazon"); !ok || id != "137112412989" {
		t.Fatalf("amazon account %q", id)
	}
	wantKeys := map[string]string{"111111111111": "alias/amicrypt-build", "222222222222": "alias/amicrypt-target", "333333333333": "alias/amicrypt-target", "444444444444": "alias/amicrypt-target"}
	for acct, alias := range wantKeys {
		for _, region := range w.Regions {
			k, err := e.KMS().AuthorizeKeyUse(core.KeyUse{Account: acct, Region: region, KeyRef: alias, Ops: []string{core.OpDescribeKey}})
			if err != nil || k.Manager != "CUSTOMER" || k.Region != region || k.Account != acct {
				t.Fatalf("%s %s %s: %v %+v", acct, region, alias, err, k)
			}
			if ebs := e.KMS().DefaultEBSKey(acct, region); ebs.Manager != "AWS" || ebs.Region != region {
				t.Fatalf("alias/aws/ebs %s %s: %+v", acct, region, ebs)
			}
		}
	}
	for i, region := range w.Regions {
		im := w.Images[i]
		suffix := string(rune('1' + i))
		if im.Region != region || im.ID != "ami-0a1b2c3d4e5f6000"+suffix || im.Volumes[0].SnapshotID != "snap-0a1b2c3d4e5f6000"+suffix ||
			im.Owner != "137112412989" || im.Volumes[0].SizeGiB != 8 || im.BootMode != "uefi-preferred" || im.ImdsSupport != "v2.0" || !im.Public {
			t.Fatalf("image %d: %+v", i, im)
		}
	}
	role, _ := ids.Role("arn:aws:iam::444444444444:role/amicrypt-copy")
	if role.ExternalID != "amicrypt-demo" || role.Trusted[0] != "111111111111" {
		t.Fatalf("444's role: %+v", role)
	}
}

func TestWorldValidation(t *testing.T) {
	tests := []struct {
		name, file, src, want string
	}{
		{"no regions", "w.json", `{"regions":[],"accounts":[],"images":[]}`, "regions: at least one"},
		{"bad account ID", "w.json", `{"regions":["us-east-1"],"accounts":[{"id":"123","users":[],"roles":[],"keys":[]}],"images":[]}`, `accounts[0].id: "123"`},
		{"bad access key", "w.json", `{"regions":["us-east-1"],"accounts":[{"id":"111111111111","users":[{"name":"u","access_key":"XYZ","secret_key":"s"}],"roles":[],"keys":[]}],"images":[]}`, `accounts[0].users[0].access_key: "XYZ"`},
		{"key in a disabled region", "w.json", `{"regions":["us-east-1"],"accounts":[{"id":"111111111111","users":[],"roles":[],"keys":[{"region":"eu-west-1","aliases":[]}]}],"images":[]}`, `accounts[0].keys[0].region: "eu-west-1"`},
		{"alias/aws/ reserved", "w.json", `{"regions":["us-east-1"],"accounts":[{"id":"111111111111","users":[],"roles":[],"keys":[{"region":"us-east-1","aliases":["alias/aws/x"]}]}],"images":[]}`, `aliases: "alias/aws/x"`},
		{"bad policy", "w.json", `{"regions":["us-east-1"],"accounts":[{"id":"111111111111","users":[],"roles":[],"keys":[{"region":"us-east-1","aliases":[],"policy":"{}"}]}],"images":[]}`, "keys[0].policy"},
		{"image owner unknown", "w.json", `{"regions":["us-east-1"],"accounts":[],"images":[{"id":"ami-1","owner":"999999999999","region":"us-east-1","name":"n","volumes":[{"device_name":"/dev/xvda","snapshot_id":"snap-1","size_gib":8}]}]}`, `images[0].owner: "999999999999"`},
		{"image platform", "w.json", `{"regions":["us-east-1"],"accounts":[{"id":"111111111111","users":[],"roles":[],"keys":[]}],"images":[{"id":"ami-1","owner":"111111111111","region":"us-east-1","name":"n","platform":"linux","volumes":[{"device_name":"/dev/xvda","snapshot_id":"snap-1","size_gib":8}]}]}`, `images[0].platform: "linux" must be "windows" or empty`},
		{"unknown JSON field", "w.json", `{"regions":["us-east-1"],"acounts":[]}`, `unknown field "acounts"`},
		{"HCL syntax", "w.hcl", `regions = [`, "w.hcl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := core.ParseWorld(tc.file, []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestDocsWorldExample keeps the HCL example of docs/emulator.md valid.
func TestDocsWorldExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "emulator.md"))
	if err != nil {
		t.Skipf("docs/emulator.md not found: %v", err)
	}
	_, rest, ok := strings.Cut(string(doc), "```hcl\n")
	if !ok {
		t.Fatal("docs/emulator.md has no HCL example")
	}
	example, _, _ := strings.Cut(rest, "```")
	w, err := core.ParseWorld("emulator.md.hcl", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Accounts) != 2 || len(w.Images) != 1 || w.Accounts[1].Keys[0].Policy == "" {
		t.Fatalf("example world: %+v", w)
	}
}
