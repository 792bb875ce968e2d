package copy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// TestFinishingTouches covers what follows a copy (launch permissions,
// deprecation, deregistration protection, the Auto Scaling grant), a key
// created where missing, and grants that take a while to work.
func TestFinishingTouches(t *testing.T) {
	srv := emu(t, awsemu.Options{GrantDelay: 90 * time.Second})
	srcAMI := makeSourceAMI(t, srv, "us-east-1", publicAMI, "alias/amicrypt-build")
	deprecateAt := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second)
	raw := baseConfig(t)
	raw["regions"] = []string{"us-east-1"}
	raw["deprecate_at"] = deprecateAt.Format(time.RFC3339)
	raw["deregistration_protection"] = map[string]interface{}{"enabled": true}
	raw["grant_autoscaling_role"] = true
	raw["create_missing_keys"] = true
	raw["target"] = []map[string]interface{}{
		{"account_id": "222222222222", "ami_users": []string{"333333333333"}},
		{"account_id": "333333333333", "kms_key_id": "alias/amicrypt-new"},
	}
	ui := newUI()
	art, _, _, err := newPP(t, raw).PostProcess(context.Background(), ui, fakeArtifact{"amicrypt.ebs", "us-east-1:" + srcAMI})
	if err != nil {
		t.Fatalf("PostProcess: %v\n%s", err, ui.buf)
	}
	ctx := context.Background()
	for _, id := range strings.Split(art.Id(), ",") {
		p := strings.Split(id, ":")
		acct, region, ami := p[0], p[1], p[2]
		assertCopy(t, srv, acct, region, ami, srcAMI)
		cfg := srv.Config(ctx, acct, region)
		client := ec2.NewFromConfig(cfg)
		img, err := ebs.FindImageByID(ctx, client, ami)
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(img.DeprecationTime); got == "" || !strings.HasPrefix(got, deprecateAt.Format("2006-01-02T15:04")) {
			t.Errorf("%s: deprecation time %q, want %s", id, got, deprecateAt.Format(time.RFC3339))
		}
		if got := aws.ToString(img.DeregistrationProtection); !strings.HasPrefix(got, "enabled") {
			t.Errorf("%s: deregistration protection %q", id, got)
		}
		keyARN := ebs.TagMap(img.Tags)[TagKMSKeyARN]
		grants, err := kms.NewFromConfig(cfg).ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(keyARN)})
		if err != nil {
			t.Fatal(err)
		}
		asg := 0
		for _, g := range grants.Grants {
			if aws.ToString(g.Name) == autoscalingGrantName && strings.HasSuffix(aws.ToString(g.GranteePrincipal), "/AWSServiceRoleForAutoScaling") {
				asg++
			}
		}
		if asg != 1 {
			t.Errorf("%s: %d Auto Scaling grants on %s, want 1", id, asg, keyARN)
		}
		if acct == "222222222222" {
			attr, err := client.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(ami), Attribute: ec2types.ImageAttributeNameLaunchPermission})
			if err != nil {
				t.Fatal(err)
			}
			if len(attr.LaunchPermissions) != 1 || aws.ToString(attr.LaunchPermissions[0].UserId) != "333333333333" {
				t.Errorf("%s: launch permissions %+v, want 333333333333", id, attr.LaunchPermissions)
			}
		}
		if acct == "333333333333" {
			alias, err := kms.NewFromConfig(cfg).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-new")})
			if err != nil || aws.ToString(alias.KeyMetadata.Arn) != keyARN {
				t.Errorf("%s: the created key alias/amicrypt-new (%v) is not the copy's key %s", id, err, keyARN)
			}
		}
	}
	assertNothingLeftInSource(t, srv, "us-east-1", srcAMI)
	// The grant took a while: the copy waited for it instead of failing.
	early := srv.Emulator().Audit(awsemu.AuditFilter{Action: "DescribeKey", Account: "222222222222", Outcome: "error"})
	if len(early) == 0 {
		t.Error("no DescribeKey probe met the grant before it took effect; the delay was not exercised")
	}
	if n := callsSince(srv, 0, "CopyImage"); n != 3 { // the source AMI and two copies
		t.Errorf("%d CopyImage calls, want 3: a copy was started before its grant worked", n)
	}
}
