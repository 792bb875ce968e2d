package copy

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestAccCopy runs amicrypt-copy against real AWS, through the same code as
// every other test. It is skipped unless PACKER_ACC=1, and needs:
//
//	AMICRYPT_ACC_SOURCE      region:ami-… of an AMI the default credentials own,
//	                         encrypted under a customer-managed key
//	AMICRYPT_ACC_TARGET      the target account ID
//	AMICRYPT_ACC_ROLE_ARN    a role in it the default credentials may assume
//	AMICRYPT_ACC_KMS_KEY_ID  the target key (alias/NAME resolves in the target)
//
// The copies it makes are destroyed at the end.
func TestAccCopy(t *testing.T) {
	if os.Getenv("PACKER_ACC") != "1" {
		t.Skip("acceptance test against real AWS; set PACKER_ACC=1")
	}
	env := map[string]string{}
	for _, k := range []string{"AMICRYPT_ACC_SOURCE", "AMICRYPT_ACC_TARGET", "AMICRYPT_ACC_ROLE_ARN", "AMICRYPT_ACC_KMS_KEY_ID"} {
		if env[k] = os.Getenv(k); env[k] == "" {
			t.Fatalf("PACKER_ACC=1 needs %s", k)
		}
	}
	region, _, _ := strings.Cut(env["AMICRYPT_ACC_SOURCE"], ":")
	p := newPP(t, map[string]interface{}{
		"region":   region,
		"ami_name": "{{ .SourceAMIName }}-{{ .Account }}-acc-{{ timestamp }}",
		"target": []map[string]interface{}{{
			"account_id": env["AMICRYPT_ACC_TARGET"], "role_arn": env["AMICRYPT_ACC_ROLE_ARN"], "kms_key_id": env["AMICRYPT_ACC_KMS_KEY_ID"],
		}},
	})
	ui := newUI()
	art, _, _, err := p.PostProcess(context.Background(), ui, fakeArtifact{"amicrypt.ebs", env["AMICRYPT_ACC_SOURCE"]})
	if art != nil {
		t.Cleanup(func() {
			if err := art.Destroy(); err != nil {
				t.Errorf("destroying the copies: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("PostProcess: %v\n%s", err, ui.buf)
	}
	if !strings.HasPrefix(art.Id(), env["AMICRYPT_ACC_TARGET"]+":"+region+":ami-") {
		t.Errorf("artifact %q", art.Id())
	}
}
