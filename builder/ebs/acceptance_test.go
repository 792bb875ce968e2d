package ebs

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// TestAccBuild runs a real build against AWS, through the same code as the
// emulator tests. It needs PACKER_ACC=1, credentials in the environment and
// AMICRYPT_ACC_KMS_KEY_ID (a customer-managed key in AMICRYPT_ACC_REGION,
// default us-east-1). It skip-launches (no instance cost) an Amazon Linux
// 2023 image and destroys the artifact afterwards.
func TestAccBuild(t *testing.T) {
	if os.Getenv("PACKER_ACC") != "1" {
		t.Skip("acceptance test against real AWS: set PACKER_ACC=1")
	}
	key := os.Getenv("AMICRYPT_ACC_KMS_KEY_ID")
	if key == "" {
		t.Fatal("AMICRYPT_ACC_KMS_KEY_ID: not set; name a customer-managed key in the test region")
	}
	region := os.Getenv("AMICRYPT_ACC_REGION")
	if region == "" {
		region = "us-east-1"
	}
	raw := map[string]interface{}{
		"region":      region,
		"skip_launch": true,
		"source_ami_filter": map[string]interface{}{
			"filters": map[string]string{"name": "al2023-ami-2023.*-x86_64"}, "owners": []string{"amazon"}, "most_recent": true,
		},
		"kms_key_id": key,
		"ami_name":   "amicrypt-acc-" + time.Now().UTC().Format("20060102150405"),
	}
	var b Builder
	if _, _, err := b.Prepare(raw); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	art, err := b.Run(context.Background(), &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: out, ErrorWriter: out}, &packersdk.MockHook{})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if err := art.Destroy(); err != nil {
			t.Errorf("destroying %s: %v", art.Id(), err)
		}
	})
	if !strings.HasPrefix(art.Id(), region+":ami-") {
		t.Errorf("artifact id = %s", art.Id())
	}
}
