package awsemu

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestEC2StateSurvivesRestart: the EC2 state goes through the platform's
// state file (encoding/json) and comes back whole.
func TestEC2StateSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	first, err := Listen("127.0.0.1:0", Options{TimeScale: 0.001, StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	x := &ec2Env{t: t, ctx: ctx, srv: first}
	amiID, snapID := x.encryptedAMI(acctBuild, east, "alias/amicrypt-build", "persisted")
	x.share(acctBuild, east, amiID, snapID, acctT2)
	c := x.ec2(acctBuild, east)
	must[*ec2.CreateTagsOutput](t, "CreateTags")(c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{amiID}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}))
	before := x.image(c, amiID)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second, err := Listen("127.0.0.1:0", Options{TimeScale: 0.001, StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	x.srv = second
	after := x.image(x.ec2(acctBuild, east), amiID)
	if after.State != before.State || aws.ToString(after.BlockDeviceMappings[0].Ebs.KmsKeyId) != aws.ToString(before.BlockDeviceMappings[0].Ebs.KmsKeyId) || len(after.Tags) != 1 {
		t.Fatalf("after restart: %+v\nbefore: %+v", after, before)
	}
	if got := x.image(x.ec2(acctT2, east), amiID); aws.ToString(got.ImageId) != amiID {
		t.Fatalf("launch permission lost: %+v", got)
	}
	// New IDs don't collide with old ones.
	cp := must[*ec2.CopyImageOutput](t, "CopyImage")(x.ec2(acctBuild, east).CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(amiID), SourceRegion: aws.String(east), Name: aws.String("after-restart")}))
	if aws.ToString(cp.ImageId) == amiID {
		t.Fatal("ID reused after restart")
	}
	if _, err := x.ec2(acctBuild, east).RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("persisted"), RootDeviceName: aws.String("/dev/xvda"),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(snapID)}}}}); apiCode(err) != "InvalidAMIName.Duplicate" {
		t.Fatalf("AMI names after restart: %v", err)
	}
}
