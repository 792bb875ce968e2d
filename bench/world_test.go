package bench

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

// TestFanoutWorld writes the world of a 3-account fan-out, loads it as
// cmd/awsemu does, and uses it: the post-processor's user assumes the last
// target's role in the last region and finds that account's own key there.
func TestFanoutWorld(t *testing.T) {
	w, err := FanoutWorld(3)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "world.json")
	if err := WriteWorld(w, path); err != nil {
		t.Fatal(err)
	}
	loaded, err := awsemu.LoadWorld(path)
	if err != nil {
		t.Fatalf("cmd/awsemu would refuse the world: %v", err)
	}
	regions, _ := FanoutRegions(5)
	for _, r := range regions {
		if !loaded.RegionEnabled(r) {
			t.Errorf("region %s is not enabled", r)
		}
	}

	srv := emutest.Start(t, awsemu.Options{World: loaded})
	ctx := context.Background()
	last, region := TargetAccount(2), regions[4]
	base := aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(srv.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider(CopyAccessKey, CopySecretKey, ""),
	}
	id, err := sts.NewFromConfig(base).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(id.Arn); got != CopyUserARN {
		t.Errorf("the copy user is %s, want %s", got, CopyUserARN)
	}
	role := base.Copy()
	role.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(base), "arn:aws:iam::"+last+":role/"+FanoutRole))
	key, err := kms.NewFromConfig(role).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(FanoutKeyAlias)})
	if err != nil {
		t.Fatalf("target %s in %s: %v", last, region, err)
	}
	if arn := aws.ToString(key.KeyMetadata.Arn); !strings.Contains(arn, ":"+region+":"+last+":") {
		t.Errorf("%s resolves to %s, not a key of %s in %s", FanoutKeyAlias, arn, last, region)
	}
}

func TestFanoutWorldLimits(t *testing.T) {
	for _, n := range []int{0, 10000} {
		if _, err := FanoutWorld(n); err == nil {
			t.Errorf("FanoutWorld(%d) = nil error", n)
		}
	}
	for _, n := range []int{0, 6} {
		if _, err := FanoutRegions(n); err == nil {
			t.Errorf("FanoutRegions(%d) = nil error", n)
		}
	}
	if got, _ := FanoutRegions(2); !slices.Equal(got, []string{"us-east-1", "eu-west-1"}) {
		t.Errorf("FanoutRegions(2) = %v", got)
	}
	if got := TargetAccount(99); got != "200000000100" {
		t.Errorf("TargetAccount(99) = %s", got)
	}
}
