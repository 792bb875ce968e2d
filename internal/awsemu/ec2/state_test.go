package ec2_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestEC2StateSurvivesRestart: the EC2 state goes through the platform's
// state file (encoding/json) and comes back whole.
func TestEC2StateSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	first, err := awsemu.Listen("127.0.0.1:0", awsemu.Options{TimeScale: 0.001, StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	x := &emutest.Env{T: t, Ctx: ctx, Srv: &emutest.Server{Server: first}}
	amiID, snapID := x.EncryptedAMI(emutest.AcctBuild, emutest.East, "alias/amicrypt-build", "persisted")
	x.Share(emutest.AcctBuild, emutest.East, amiID, snapID, emutest.AcctT2)
	c := x.EC2(emutest.AcctBuild, emutest.East)
	emutest.Must[*ec2.CreateTagsOutput](t, "CreateTags")(c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{amiID}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}))
	before := x.Image(c, amiID)
	beforeKey := x.ImageKey(c, before)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second, err := awsemu.Listen("127.0.0.1:0", awsemu.Options{TimeScale: 0.001, StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	x.Srv = &emutest.Server{Server: second}
	after := x.Image(x.EC2(emutest.AcctBuild, emutest.East), amiID)
	if after.State != before.State || x.ImageKey(x.EC2(emutest.AcctBuild, emutest.East), after) != beforeKey || len(after.Tags) != 1 {
		t.Fatalf("after restart: %+v\nbefore: %+v", after, before)
	}
	if got := x.Image(x.EC2(emutest.AcctT2, emutest.East), amiID); aws.ToString(got.ImageId) != amiID {
		t.Fatalf("launch permission lost: %+v", got)
	}
	// New IDs don't collide with old ones.
	cp := emutest.Must[*ec2.CopyImageOutput](t, "CopyImage")(x.EC2(emutest.AcctBuild, emutest.East).CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(amiID), SourceRegion: aws.String(emutest.East), Name: aws.String("after-restart")}))
	if aws.ToString(cp.ImageId) == amiID {
		t.Fatal("ID reused after restart")
	}
	if _, err := x.EC2(emutest.AcctBuild, emutest.East).RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("persisted"), RootDeviceName: aws.String("/dev/xvda"),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(snapID)}}}}); emutest.APICode(err) != "InvalidAMIName.Duplicate" {
		t.Fatalf("AMI names after restart: %v", err)
	}
}
