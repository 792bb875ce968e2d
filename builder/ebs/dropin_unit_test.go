package ebs

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// ami_product_codes reach ModifyImageAttribute (the emulator doesn't keep
// product codes, so this runs on the fake).
func TestStepShareProductCodes(t *testing.T) {
	clients, state, _ := launchedState(t, with("ami_product_codes", []string{"1abc2defghijklm3nopqrs4tu"}))
	_, encrypt := runSnapshotSteps(t, state)
	encrypt.Run(context.Background(), state)
	for _, s := range []multistep.Step{&stepRegisterImage{}, &stepShare{}} {
		if s.Run(context.Background(), state) != multistep.ActionContinue {
			t.Fatal(state.Get("error"))
		}
	}
	var codes [][]string
	for _, in := range clients.ec2s["us-east-1"].imageAttrs {
		codes = append(codes, in.ProductCodes)
	}
	if len(codes) != 1 || !slices.Equal(codes[0], []string{"1abc2defghijklm3nopqrs4tu"}) {
		t.Errorf("ModifyImageAttribute product codes = %v", codes)
	}
}

// Legacy JSON templates' {{user}} and the build data render in tags at
// build time; a rendered tag that breaks AWS's limits is refused then.
func TestRenderTags(t *testing.T) {
	var c Config
	raw := with("tags", map[string]string{"Owner": "{{user `owner`}}", "From": "{{ .SourceAMIName }}/{{ .SourceAMITags.Team }}"},
		"run_tags", map[string]string{"Long": "{{ .SourceAMIName }}"}, "ami_description", "{{ .SourceAMIOwnerName }} {{ .BuildRegion }}")
	raw[common.UserVariablesConfigKey] = map[string]string{"owner": "platform"}
	if _, _, err := c.Prepare(raw); err != nil {
		t.Fatal(err)
	}
	src := &types.Image{ImageId: aws.String(sourceAMI), Name: aws.String("al2023"), OwnerId: aws.String("137112412989"),
		ImageOwnerAlias: aws.String("amazon"), Tags: []types.Tag{{Key: aws.String("Team"), Value: aws.String("os")}}}
	got, err := c.render(newBuildInfo("us-east-1", src))
	if err != nil {
		t.Fatal(err)
	}
	if got.ami["Owner"] != "platform" || got.ami["From"] != "al2023/os" || got.description != "amazon us-east-1" {
		t.Errorf("rendered = %+v", got)
	}
	src.Name = aws.String(strings.Repeat("n", 300))
	if _, err := c.render(newBuildInfo("us-east-1", src)); err == nil || !strings.Contains(err.Error(), "characters; AWS allows 256: shorten it (after rendering the template)") {
		t.Errorf("a 300-character rendered tag: %v", err)
	}
}

// The lease moves forward when renewed, and a resource gone since is
// dropped instead of failing the renewal.
func TestLeaseRenewal(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	r := newStepRun(t, ssh())
	r.run((&stepSourceAMIInfo{}).withSource(t, r), &stepKeyPair{})
	defer r.cleanup()
	l := r.b.lease
	clock := time.Now()
	l.now = func() time.Time { return clock }
	client := ec2.NewFromConfig(srv.Config(context.Background(), buildAccount, "us-east-1"))
	expiry := func() string {
		out, err := client.DescribeKeyPairs(context.Background(), &ec2.DescribeKeyPairsInput{KeyNames: []string{r.b.keyPairName}})
		if err != nil {
			t.Fatal(err)
		}
		return tagMap(out.KeyPairs[0].Tags)[tagLease]
	}
	before := expiry()
	clock = clock.Add(2 * time.Hour)
	l.track("us-east-1", "sg-0000000000000dead")
	if err := l.renew(context.Background(), r.b.clients); err != nil {
		t.Fatal(err)
	}
	if after := expiry(); after <= before || after != clock.Add(time.Hour).UTC().Format(time.RFC3339) {
		t.Errorf("lease %s → %s, want it renewed to an hour from now", before, after)
	}
	if ids := l.snapshot()["us-east-1"]; slices.Contains(ids, "sg-0000000000000dead") {
		t.Errorf("a resource that is gone is still renewed: %v", ids)
	}
}

// Credentials refused in the build region are not blamed on the
// credentials alone: the error names the region and the likely cause.
func TestEmulatorBuildRegionNotEnabled(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	res := runBuild(t, srv, with("region", "ap-southeast-3", "kms_key_id", "alias/amicrypt-build"))
	if res.err == nil {
		t.Fatal("build in a disabled region succeeded")
	}
	for _, w := range []string{"region: ap-southeast-3 is an opt-in region that account 111111111111 hasn't enabled", "enable it"} {
		if !strings.Contains(res.err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, res.err)
		}
	}
	// A misspelled build region is named as such, with the regions AWS
	// lists, not blamed on the credentials.
	res = runBuild(t, srv, with("region", "us-est-1", "kms_key_id", "alias/amicrypt-build"))
	if res.err == nil {
		t.Fatal("build in a misspelled region succeeded")
	}
	for _, w := range []string{"region: us-est-1 is not a region of this account's partition", "check the spelling", "us-east-1, us-west-2"} {
		if !strings.Contains(res.err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, res.err)
		}
	}
	mustPass(t, srv, res.mark)
}

// A role the credentials can't assume is named, with the fix in its trust
// policy, before anything is made.
func TestEmulatorAssumeRoleRefused(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	const role = "arn:aws:iam::111111111111:role/no-such-role"
	res := runBuild(t, srv, with("assume_role", map[string]interface{}{"role_arn": role}))
	if res.err == nil {
		t.Fatal("a build with a role that can't be assumed succeeded")
	}
	for _, w := range []string{"assume_role.role_arn: the build's credentials can't assume " + role, "in the trust policy of " + role, "AccessDenied"} {
		if !strings.Contains(res.err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, res.err)
		}
	}
	mustPass(t, srv, res.mark)
}
