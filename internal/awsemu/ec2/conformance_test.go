package ec2_test

// conformance_test.go: the EC2 part of the conformance matrix of
// docs/aws-behaviour.md (its index is internal/awsemu/conformance_test.go).

import (
	"errors"
	"strings"
	"testing"
	"time"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// TestRulesMatrix runs this package's cases of the conformance matrix.
func TestRulesMatrix(t *testing.T) {
	emutest.RunCases(t, append(append(conformance(), dropInConformance()...), launchConformance()...))
}

func conformance() []emutest.Case {
	return []emutest.Case{
		// Section 2: resources as AWS describes them.
		{Rule: "2", Name: "DescribeImages has no KmsKeyId, DescribeSnapshots has the key ARN", Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			key := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
			amiID, snapID := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, "alias/amicrypt-build", "no-kmskeyid-in-images")
			img := x.Image(c, amiID)
			ebs := img.BlockDeviceMappings[0].Ebs
			if ebs == nil || !aws.ToBool(ebs.Encrypted) || ebs.KmsKeyId != nil {
				t.Fatalf("DescribeImages mapping %+v: want Encrypted and no KmsKeyId", ebs)
			}
			attr := emutest.Must[*ec2.DescribeImageAttributeOutput](t, "DescribeImageAttribute")(c.DescribeImageAttribute(x.Ctx, &ec2.DescribeImageAttributeInput{
				ImageId: aws.String(amiID), Attribute: types.ImageAttributeNameBlockDeviceMapping}))
			if len(attr.BlockDeviceMappings) != 1 || attr.BlockDeviceMappings[0].Ebs.KmsKeyId != nil {
				t.Fatalf("DescribeImageAttribute blockDeviceMapping %+v: want no KmsKeyId", attr.BlockDeviceMappings)
			}
			if got := aws.ToString(x.Snapshot(c, snapID).KmsKeyId); got != key {
				t.Fatalf("DescribeSnapshots KmsKeyId %q, want the key ARN %s", got, key)
			}
		}},
		{Rule: "2", Name: "CreateVolume answers creating, then available", Opts: awsemu.Options{TimeScale: 0.01}, Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			vol := emutest.Must[*ec2.CreateVolumeOutput](t, "CreateVolume")(c.CreateVolume(x.Ctx, &ec2.CreateVolumeInput{
				AvailabilityZone: aws.String(emutest.East + "a"), Size: aws.Int32(8), VolumeType: types.VolumeTypeGp3}))
			if vol.State != types.VolumeStateCreating {
				t.Fatalf("CreateVolume answered %s, want creating", vol.State)
			}
			emutest.Poll(t, "volume available", func() (types.VolumeState, bool) {
				out := emutest.Must[*ec2.DescribeVolumesOutput](t, "DescribeVolumes")(c.DescribeVolumes(x.Ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{aws.ToString(vol.VolumeId)}}))
				st := out.Volumes[0].State
				if st != types.VolumeStateCreating && st != types.VolumeStateAvailable {
					t.Fatalf("volume state %s", st)
				}
				return st, st == types.VolumeStateAvailable
			})
		}},
		{Rule: "2", Name: "public AMIs show gp3 baseline Iops and Throughput", Run: func(t *testing.T, x *emutest.Env) {
			img := x.Image(x.EC2(emutest.AcctBuild, emutest.East), emutest.SeedAMI)
			ebs := img.BlockDeviceMappings[0].Ebs
			if ebs.VolumeType != types.VolumeTypeGp3 || aws.ToInt32(ebs.Iops) != 3000 || aws.ToInt32(ebs.Throughput) != 125 {
				t.Fatalf("public AMI root: %s iops %d throughput %d, want gp3 3000 125", ebs.VolumeType, aws.ToInt32(ebs.Iops), aws.ToInt32(ebs.Throughput))
			}
		}},
		{Rule: "5", Name: "RunInstances with an instance profile", Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			in := func(p *types.IamInstanceProfileSpecification) *ec2.RunInstancesInput {
				return &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
					InstanceType: types.InstanceTypeT3Micro, IamInstanceProfile: p}
			}
			_, err := c.RunInstances(x.Ctx, in(&types.IamInstanceProfileSpecification{Name: aws.String("nope")}))
			if emutest.APICode(err) != "InvalidParameterValue" || emutest.APIMessage(err) != "Value (nope) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name" {
				t.Fatalf("unknown profile: %v", err)
			}
			_, err = c.RunInstances(x.Ctx, in(&types.IamInstanceProfileSpecification{Arn: aws.String("arn:aws:iam::111111111111:instance-profile/nope")}))
			if emutest.APICode(err) != "InvalidParameterValue" {
				t.Fatalf("unknown profile ARN: %v", err)
			}
			run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(x.Ctx, in(&types.IamInstanceProfileSpecification{Name: aws.String("amicrypt-instance-store")})))
			inst := x.Instance(c, aws.ToString(run.Instances[0].InstanceId))
			if inst.IamInstanceProfile == nil || aws.ToString(inst.IamInstanceProfile.Arn) != "arn:aws:iam::111111111111:instance-profile/amicrypt-instance-store" {
				t.Fatalf("instance profile %+v", inst.IamInstanceProfile)
			}
			emutest.Must[*ec2.TerminateInstancesOutput](t, "TerminateInstances")(c.TerminateInstances(x.Ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(inst.InstanceId)}}))
		}},
		// Section 3: rules.
		{Rule: "3.1", Name: "copy without Encrypted stays encrypted", Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
			amiID, snapID := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, buildKey, "r31-src")
			// Still encrypted, and (docs/aws-behaviour.md 3.2) under the caller's default key.
			defaultKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/aws/ebs")
			img := x.CopyOf(c, amiID, emutest.East, "r31-copy", nil, "")
			if ebs := img.BlockDeviceMappings[0].Ebs; img.State != types.ImageStateAvailable || !aws.ToBool(ebs.Encrypted) || x.ImageKey(c, img) != defaultKey {
				t.Fatalf("CopyImage without Encrypted: %s encrypted=%v key=%s, want %s", img.State, aws.ToBool(ebs.Encrypted), x.ImageKey(c, img), defaultKey)
			}
			out := emutest.Must[*ec2.CopySnapshotOutput](t, "CopySnapshot")(c.CopySnapshot(x.Ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(snapID), SourceRegion: aws.String(emutest.East)}))
			if s := x.WaitSnapshot(c, aws.ToString(out.SnapshotId)); s.State != types.SnapshotStateCompleted || !aws.ToBool(s.Encrypted) || aws.ToString(s.KmsKeyId) != defaultKey {
				t.Fatalf("CopySnapshot without Encrypted: %s encrypted=%v key=%q, want %s", s.State, aws.ToBool(s.Encrypted), aws.ToString(s.KmsKeyId), defaultKey)
			}
		}},
		{Rule: "3.2", Name: "CopyImage KmsKeyId without Encrypted", Run: func(t *testing.T, x *emutest.Env) {
			_, err := x.EC2(emutest.AcctBuild, emutest.East).CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("r32-a"),
				KmsKeyId: aws.String("alias/amicrypt-build")})
			if emutest.APICode(err) != "InvalidParameterDependency" || emutest.APIMessage(err) != "The parameter KmsKeyId requires the parameter Encrypted to be set." {
				t.Fatalf("got %v", err)
			}
		}},
		{Rule: "3.2", Name: "default key fallback for CopyImage", Run: func(t *testing.T, x *emutest.Env) {
			for _, region := range []string{emutest.East, emutest.West} { // same region, and a copy into another region
				want := x.KeyARN(emutest.AcctT2, region, "alias/aws/ebs")
				c := x.EC2(emutest.AcctT2, region)
				img := x.CopyOf(c, emutest.SeedAMI, emutest.East, "r32-default-"+region, aws.Bool(true), "")
				ebs := img.BlockDeviceMappings[0].Ebs
				if img.State != types.ImageStateAvailable || !aws.ToBool(ebs.Encrypted) || x.ImageKey(c, img) != want {
					t.Fatalf("%s: %s encrypted=%v key=%s, want %s", region, img.State, aws.ToBool(ebs.Encrypted), x.ImageKey(c, img), want)
				}
			}
		}},
		{Rule: "3.3", Name: "managed key share through the other parameter forms", Run: func(t *testing.T, x *emutest.Env) {
			amiID, snapID := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, "alias/aws/ebs", "r33-managed")
			c := x.EC2(emutest.AcctBuild, emutest.East)
			_, err := c.ModifyImageAttribute(x.Ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID), Attribute: aws.String("launchPermission"),
				OperationType: types.OperationTypeAdd, UserIds: []string{emutest.AcctT2}})
			if emutest.APICode(err) != "InvalidParameter" || emutest.APIMessage(err) != "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify another snapshot." {
				t.Fatalf("ModifyImageAttribute (UserId.N form): %v", err)
			}
			_, err = c.ModifySnapshotAttribute(x.Ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snapID), Attribute: types.SnapshotAttributeNameCreateVolumePermission,
				CreateVolumePermission: &types.CreateVolumePermissionModifications{Add: []types.CreateVolumePermission{{UserId: aws.String(emutest.AcctT2)}}}})
			if emutest.APICode(err) != "OperationNotPermitted" || emutest.APIMessage(err) != "Encrypted snapshots with EBS default key cannot be shared" {
				t.Fatalf("ModifySnapshotAttribute (CreateVolumePermission.Add form): %v", err)
			}
			if _, err := x.EC2(emutest.AcctT2, emutest.East).DescribeImages(x.Ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}}); emutest.APICode(err) != "InvalidAMIID.NotFound" {
				t.Fatalf("the refused share still shared: %v", err)
			}
		}},
		{Rule: "3.3", Name: "encrypted never public through the other parameter forms", Run: func(t *testing.T, x *emutest.Env) {
			amiID, snapID := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, "alias/amicrypt-build", "r33-public")
			c := x.EC2(emutest.AcctBuild, emutest.East)
			_, err := c.ModifyImageAttribute(x.Ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID), Attribute: aws.String("launchPermission"),
				OperationType: types.OperationTypeAdd, UserGroups: []string{"all"}})
			if emutest.APICode(err) != "InvalidParameter" {
				t.Fatalf("ModifyImageAttribute UserGroup.1=all: %v", err)
			}
			_, err = c.ModifySnapshotAttribute(x.Ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snapID), Attribute: types.SnapshotAttributeNameCreateVolumePermission,
				CreateVolumePermission: &types.CreateVolumePermissionModifications{Add: []types.CreateVolumePermission{{Group: types.PermissionGroupAll}}}})
			if emutest.APICode(err) != "OperationNotPermitted" {
				t.Fatalf("ModifySnapshotAttribute CreateVolumePermission.Add group all: %v", err)
			}
			if img := x.Image(c, amiID); aws.ToBool(img.Public) {
				t.Fatal("the encrypted AMI became public")
			}
		}},
		{Rule: "3.4", Name: "unshared snapshot can't be copied or restored", Run: func(t *testing.T, x *emutest.Env) {
			_, snapID := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, "alias/amicrypt-build", "r34-unshared-snap")
			c := x.EC2(emutest.AcctT2, emutest.East)
			want := "The snapshot '" + snapID + "' does not exist."
			_, err := c.CopySnapshot(x.Ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(snapID), SourceRegion: aws.String(emutest.East), Encrypted: aws.Bool(true)})
			if emutest.APICode(err) != "InvalidSnapshot.NotFound" || emutest.APIMessage(err) != want {
				t.Fatalf("CopySnapshot: %v", err)
			}
			_, err = c.CreateVolume(x.Ctx, &ec2.CreateVolumeInput{SnapshotId: aws.String(snapID), AvailabilityZone: aws.String("us-east-1a")})
			if emutest.APICode(err) != "InvalidSnapshot.NotFound" {
				t.Fatalf("CreateVolume: %v", err)
			}
		}},
		{Rule: "3.3", Name: "unencrypted AMI may be public", Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			img := x.CopyOf(c, emutest.SeedAMI, emutest.East, "r33-plain", nil, "")
			emutest.Must[*ec2.ModifyImageAttributeOutput](t, "public")(c.ModifyImageAttribute(x.Ctx, &ec2.ModifyImageAttributeInput{ImageId: img.ImageId,
				LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{Group: types.PermissionGroupAll}}}}))
			if got := x.Image(x.EC2(emutest.AcctT3, emutest.East), aws.ToString(img.ImageId)); !aws.ToBool(got.Public) {
				t.Fatalf("public AMI seen by another account: %+v", got)
			}
		}},
		{Rule: "3.4", Name: "key policy statement is enough", Run: func(t *testing.T, x *emutest.Env) {
			k := x.KMS(emutest.AcctBuild, emutest.East)
			policy := `{"Version":"2012-10-17","Statement":[
			 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"},
			 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::333333333333:root"},"Action":["kms:DescribeKey","kms:Decrypt","kms:CreateGrant","kms:ReEncryptFrom","kms:GenerateDataKeyWithoutPlaintext"],"Resource":"*"}]}`
			key := emutest.Must[*kms.CreateKeyOutput](t, "CreateKey")(k.CreateKey(x.Ctx, &kms.CreateKeyInput{Policy: aws.String(policy)}))
			keyARN := aws.ToString(key.KeyMetadata.Arn)
			amiID, snapID := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, keyARN, "r34-policy")
			x.Share(emutest.AcctBuild, emutest.East, amiID, snapID, emutest.AcctT3)
			x.Share(emutest.AcctBuild, emutest.East, amiID, snapID, emutest.AcctT2)
			if img := x.CopyOf(x.EC2(emutest.AcctT3, emutest.East), amiID, emutest.East, "r34-policy-copy", aws.Bool(true), "alias/amicrypt-target"); img.State != types.ImageStateAvailable {
				t.Fatalf("copy by the account the key policy allows: %s %+v", img.State, img.StateReason)
			}
			emutest.WantFailedOnKey(t, x.CopyOf(x.EC2(emutest.AcctT2, emutest.East), amiID, emutest.East, "r34-policy-copy", aws.Bool(true), "alias/amicrypt-target"), keyARN, emutest.AcctT2)
		}},
		{Rule: "3.4", Name: "using account's IAM deny",
			World: func(w *awsemu.World) {
				emutest.AddUser(w, emutest.AcctT2, awsemu.WorldUser{Name: "nodecrypt", AccessKey: "AKIA2222NODECRYPT000", SecretKey: "s", Deny: []string{"kms:Decrypt", "kms:ReEncrypt*"}})
			},
			Run: func(t *testing.T, x *emutest.Env) {
				buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
				amiID, snapID := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, buildKey, "r34-iam")
				x.Share(emutest.AcctBuild, emutest.East, amiID, snapID, emutest.AcctT2)
				emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant")(x.KMS(emutest.AcctBuild, emutest.East).CreateGrant(x.Ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
					GranteePrincipal: aws.String(emutest.AcctT2), Operations: emutest.SourceKeyGrantOps()}))
				limited := ec2.NewFromConfig(x.UserCfg(emutest.AcctT2, emutest.East, "AKIA2222NODECRYPT000", "s"))
				emutest.WantFailedOnKey(t, x.CopyOf(limited, amiID, emutest.East, "r34-iam-denied", aws.Bool(true), "alias/amicrypt-target"), buildKey, emutest.AcctT2)
				if img := x.CopyOf(x.EC2(emutest.AcctT2, emutest.East), amiID, emutest.East, "r34-iam-ok", aws.Bool(true), "alias/amicrypt-target"); img.State != types.ImageStateAvailable {
					t.Fatalf("same grant, user whose IAM allows: %s %+v", img.State, img.StateReason)
				}
			}},
		{Rule: "3.4", Name: "grant not yet effective", Opts: awsemu.Options{GrantDelay: 10 * time.Minute}, Run: func(t *testing.T, x *emutest.Env) {
			buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
			amiID, snapID := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, buildKey, "r34-delay")
			x.Share(emutest.AcctBuild, emutest.East, amiID, snapID, emutest.AcctT2)
			emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant")(x.KMS(emutest.AcctBuild, emutest.East).CreateGrant(x.Ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
				GranteePrincipal: aws.String(emutest.AcctT2), Operations: emutest.SourceKeyGrantOps()}))
			emutest.WantFailedOnKey(t, x.CopyOf(x.EC2(emutest.AcctT2, emutest.East), amiID, emutest.East, "r34-delay-early", aws.Bool(true), "alias/amicrypt-target"), buildKey, emutest.AcctT2)
			x.Srv.Emulator().Advance(11 * time.Minute)
			if img := x.CopyOf(x.EC2(emutest.AcctT2, emutest.East), amiID, emutest.East, "r34-delay-late", aws.Bool(true), "alias/amicrypt-target"); img.State != types.ImageStateAvailable {
				t.Fatalf("copy after the grant took effect: %s %+v", img.State, img.StateReason)
			}
		}},
		{Rule: "3.4", Name: "snapshot not shared", Run: func(t *testing.T, x *emutest.Env) {
			buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
			amiID, snapID := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, buildKey, "r34-nosnap")
			emutest.Must[*ec2.ModifyImageAttributeOutput](t, "launch permission only")(x.EC2(emutest.AcctBuild, emutest.East).ModifyImageAttribute(x.Ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID),
				LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String(emutest.AcctT2)}}}}))
			emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant")(x.KMS(emutest.AcctBuild, emutest.East).CreateGrant(x.Ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
				GranteePrincipal: aws.String(emutest.AcctT2), Operations: emutest.SourceKeyGrantOps()}))
			c := x.EC2(emutest.AcctT2, emutest.East)
			if _, err := c.DescribeSnapshots(x.Ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}}); emutest.APICode(err) != "InvalidSnapshot.NotFound" {
				t.Fatalf("DescribeSnapshots of the unshared snapshot: %v", err)
			}
			out, err := c.CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(amiID), SourceRegion: aws.String(emutest.East), Name: aws.String("r34-nosnap-copy"),
				Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/amicrypt-target")})
			if err == nil {
				if img := x.WaitImage(c, aws.ToString(out.ImageId)); img.State == types.ImageStateAvailable {
					t.Fatalf("copied an AMI whose snapshot was not shared (no createVolumePermission): %+v", img)
				}
			}
		}},
		{Rule: "3.4", Name: "every source-key operation is needed", Own: true, Run: func(t *testing.T, x *emutest.Env) {
			buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
			amiID, snapID := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, buildKey, "r34-ops")
			for i, missing := range emutest.SourceKeyGrantOps() {
				t.Run(string(missing), func(t *testing.T) {
					// Each case uses an account of its own: grants can't be narrowed.
					account := []string{emutest.AcctT2, emutest.AcctT3, emutest.AcctT4, emutest.AcctT2, emutest.AcctT3}[i]
					region := []string{emutest.East, emutest.East, emutest.East, emutest.West, emutest.West}[i]
					var ops []kmstypes.GrantOperation
					for _, op := range emutest.SourceKeyGrantOps() {
						if op != missing {
							ops = append(ops, op)
						}
					}
					grant := emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant")(x.KMS(emutest.AcctBuild, emutest.East).CreateGrant(x.Ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
						GranteePrincipal: aws.String(account), Operations: ops}))
					defer func() {
						emutest.Must[*kms.RevokeGrantOutput](t, "RevokeGrant")(x.KMS(emutest.AcctBuild, emutest.East).RevokeGrant(x.Ctx, &kms.RevokeGrantInput{KeyId: aws.String(buildKey), GrantId: grant.GrantId}))
					}()
					x.Share(emutest.AcctBuild, emutest.East, amiID, snapID, account)
					img := x.CopyOf(x.EC2(account, region), amiID, emutest.East, "r34-ops-"+string(missing), aws.Bool(true), "alias/amicrypt-target")
					emutest.WantFailedOnKey(t, img, buildKey, account)
				})
			}
		}},
		{Rule: "3.4", Name: "destination key of another region", Run: func(t *testing.T, x *emutest.Env) {
			eastKey := x.KeyARN(emutest.AcctT3, emutest.East, "alias/amicrypt-target")
			emutest.WantFailedOnKey(t, x.CopyOf(x.EC2(emutest.AcctT3, emutest.West), emutest.SeedAMI, emutest.East, "r34-region-key", aws.Bool(true), eastKey), eastKey, emutest.AcctT3)
		}},
		{Rule: "3.5", Name: "launch with an unusable volume key", Run: func(t *testing.T, x *emutest.Env) {
			k := x.KMS(emutest.AcctT4, emutest.East)
			key := emutest.Must[*kms.CreateKeyOutput](t, "CreateKey")(k.CreateKey(x.Ctx, &kms.CreateKeyInput{}))
			emutest.Must[*kms.DisableKeyOutput](t, "DisableKey")(k.DisableKey(x.Ctx, &kms.DisableKeyInput{KeyId: key.KeyMetadata.KeyId}))
			c := x.EC2(emutest.AcctT4, emutest.East)
			run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(x.Ctx, &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
				BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{Encrypted: aws.Bool(true), KmsKeyId: key.KeyMetadata.Arn}}}}))
			if run.Instances[0].State.Name != types.InstanceStateNamePending {
				t.Fatalf("launch state %s, want pending", run.Instances[0].State.Name)
			}
			inst := x.WaitInstance(c, aws.ToString(run.Instances[0].InstanceId))
			if inst.State.Name != types.InstanceStateNameTerminated || inst.StateReason == nil || aws.ToString(inst.StateReason.Code) != "Client.InternalError" ||
				aws.ToString(inst.StateReason.Message) != "Client.InternalError: Client error on launch" {
				t.Fatalf("instance %s %+v", inst.State.Name, inst.StateReason)
			}
		}},
		{Rule: "3.5", Name: "Auto Scaling service-linked role", Run: func(t *testing.T, x *emutest.Env) {
			emu := x.Srv.Emulator()
			buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
			// Same account: the default key policy names the account root,
			// which does not reach the service-linked role.
			ownAMI, _ := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, buildKey, "r35-own")
			if err := emu.CheckLaunch(emutest.AcctBuild, emutest.East, awsemu.AutoScalingRoleARN(emutest.AcctBuild), ownAMI); emuCode(err) != "Client.InvalidKMSKey.InvalidState" {
				t.Fatalf("same-account launch by the service-linked role with only the root in the key policy: %v", err)
			}
			// A key policy statement naming the role is enough in its account.
			slrKeyPolicy := `{"Version":"2012-10-17","Statement":[
			 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"},
			 {"Effect":"Allow","Principal":{"AWS":"` + awsemu.AutoScalingRoleARN(emutest.AcctBuild) + `"},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey","kms:CreateGrant"],"Resource":"*"}]}`
			slrKey := emutest.Must[*kms.CreateKeyOutput](t, "CreateKey")(x.KMS(emutest.AcctBuild, emutest.East).CreateKey(x.Ctx, &kms.CreateKeyInput{Policy: aws.String(slrKeyPolicy)}))
			slrAMI, _ := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, aws.ToString(slrKey.KeyMetadata.Arn), "r35-slr-policy")
			if err := emu.CheckLaunch(emutest.AcctBuild, emutest.East, awsemu.AutoScalingRoleARN(emutest.AcctBuild), slrAMI); err != nil {
				t.Fatalf("key policy naming the service-linked role: %v", err)
			}
			// The AWS managed key needs no extra authorization.
			managedAMI, _ := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, "", "r35-managed")
			if err := emu.CheckLaunch(emutest.AcctBuild, emutest.East, awsemu.AutoScalingRoleARN(emutest.AcctBuild), managedAMI); err != nil {
				t.Fatalf("AMI under alias/aws/ebs: %v", err)
			}
			// Cross account: T2 holds a grant (to its root) on S's key; that
			// does not reach T2's service-linked role, a grant T2 creates
			// for the role does.
			x.Share(emutest.AcctBuild, emutest.East, ownAMI, aws.ToString(x.Image(x.EC2(emutest.AcctBuild, emutest.East), ownAMI).BlockDeviceMappings[0].Ebs.SnapshotId), emutest.AcctT2)
			emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant to T2")(x.KMS(emutest.AcctBuild, emutest.East).CreateGrant(x.Ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
				GranteePrincipal: aws.String(emutest.AcctT2), Operations: emutest.SourceKeyGrantOps()}))
			slr := awsemu.AutoScalingRoleARN(emutest.AcctT2)
			if err := emu.CheckLaunch(emutest.AcctT2, emutest.East, slr, ownAMI); emuCode(err) != "Client.InvalidKMSKey.InvalidState" {
				t.Fatalf("service-linked role covered by a grant to its account root: %v", err)
			}
			// T2's own grant caps what it can grant onwards.
			_, err := x.KMS(emutest.AcctT2, emutest.East).CreateGrant(x.Ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
				GranteePrincipal: aws.String(slr), Operations: append([]kmstypes.GrantOperation{"Encrypt"}, emutest.SourceKeyGrantOps()...)})
			if emutest.APICode(err) != "AccessDeniedException" {
				t.Fatalf("T2 granting an operation its own grant lacks: %v", err)
			}
			emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant by T2 for its role")(x.KMS(emutest.AcctT2, emutest.East).CreateGrant(x.Ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
				GranteePrincipal: aws.String(slr), Operations: emutest.SourceKeyGrantOps()}))
			if err := emu.CheckLaunch(emutest.AcctT2, emutest.East, slr, ownAMI); err != nil {
				t.Fatalf("with the grant T2 created for its service-linked role: %v", err)
			}
		}},
		{Rule: "3.10", Name: "RunInstances ClientToken", Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctT3, emutest.West)
			in := &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedImageIn(emutest.West)), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
				InstanceType: types.InstanceTypeT3Micro, ClientToken: aws.String("r310-run")}
			first := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(x.Ctx, in))
			again := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances again")(c.RunInstances(x.Ctx, in))
			if aws.ToString(first.Instances[0].InstanceId) != aws.ToString(again.Instances[0].InstanceId) {
				t.Fatalf("same ClientToken launched %s then %s", aws.ToString(first.Instances[0].InstanceId), aws.ToString(again.Instances[0].InstanceId))
			}
			changed := *in
			changed.InstanceType = types.InstanceTypeT3Small
			if _, err := c.RunInstances(x.Ctx, &changed); emutest.APICode(err) != "IdempotentParameterMismatch" {
				t.Fatalf("same ClientToken, other parameters: %v", err)
			}
			out := emutest.Must[*ec2.DescribeInstancesOutput](t, "DescribeInstances")(c.DescribeInstances(x.Ctx, &ec2.DescribeInstancesInput{}))
			n := 0
			for _, r := range out.Reservations {
				n += len(r.Instances)
			}
			if n != 1 {
				t.Fatalf("%d instances after three calls with one token", n)
			}
		}},
		{Rule: "3.10", Name: "ClientToken longer than 64", Run: func(t *testing.T, x *emutest.Env) {
			_, err := x.EC2(emutest.AcctT3, emutest.East).CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East),
				Name: aws.String("r310-long"), ClientToken: aws.String(strings.Repeat("t", 65))})
			if err == nil {
				t.Fatal("CopyImage accepted a 65-character ClientToken (the limit is 64 ASCII characters)")
			}
		}},
		{Rule: "3.11", Name: "AMI name boundaries and scope", Run: func(t *testing.T, x *emutest.Env) {
			base := "a()[] ./-'@_Z9"
			long := base + strings.Repeat("x", 128-len(base))
			tests := []struct {
				account, region, name, code string
			}{
				{emutest.AcctT4, emutest.East, "abc", ""},
				{emutest.AcctT4, emutest.East, long, ""},
				{emutest.AcctT4, emutest.East, long + "y", "InvalidAMIName.Malformed"},
				{emutest.AcctT4, emutest.East, "ab", "InvalidAMIName.Malformed"},
				{emutest.AcctT4, emutest.East, "name:colon", "InvalidAMIName.Malformed"},
				{emutest.AcctT4, emutest.East, "abc", "InvalidAMIName.Duplicate"},
				{emutest.AcctT4, emutest.West, "abc", ""}, // another region
				{emutest.AcctT3, emutest.East, "abc", ""}, // another account
			}
			first := map[string]string{}
			for _, tc := range tests {
				out, err := x.EC2(tc.account, tc.region).CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String(tc.name)})
				if emutest.APICode(err) != tc.code {
					t.Errorf("%s/%s name %q (%d chars): %v, want %q", tc.account, tc.region, tc.name, len(tc.name), err, tc.code)
					continue
				}
				if err == nil {
					first[tc.account+tc.region+tc.name] = aws.ToString(out.ImageId)
				}
				if tc.code == "InvalidAMIName.Duplicate" && emutest.APIMessage(err) != "AMI name "+tc.name+" is already in use by AMI "+first[tc.account+tc.region+tc.name] {
					t.Errorf("duplicate message %q", emutest.APIMessage(err))
				}
			}
		}},
		{Rule: "3.13", Name: "quotas per account-region", Opts: awsemu.Options{TimeScale: 1, Limits: awsemu.Limits{ConcurrentImageCopies: 1, ConcurrentSnapshotCopies: 1}}, Run: func(t *testing.T, x *emutest.Env) {
			copyImage := func(account, region, name string) error {
				_, err := x.EC2(account, region).CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String(name)})
				return err
			}
			// Each account's own snapshot to copy, made before the quotas matter.
			srcSnap := map[string]string{}
			for _, account := range []string{emutest.AcctBuild, emutest.AcctT3} {
				out := emutest.Must[*ec2.CopyImageOutput](t, "CopyImage")(x.EC2(account, emutest.East).CopyImage(x.Ctx, &ec2.CopyImageInput{SourceImageId: aws.String(emutest.SeedAMI), SourceRegion: aws.String(emutest.East), Name: aws.String("q-src")}))
				x.Srv.Emulator().Advance(2 * time.Hour)
				srcSnap[account] = aws.ToString(x.Image(x.EC2(account, emutest.East), aws.ToString(out.ImageId)).BlockDeviceMappings[0].Ebs.SnapshotId)
			}
			copySnap := func(account, region string) error {
				_, err := x.EC2(account, region).CopySnapshot(x.Ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(srcSnap[account]), SourceRegion: aws.String(emutest.East)})
				return err
			}
			tests := []struct {
				name string
				call func() error
				code string
			}{
				{"first image copy in 111/us-east-1", func() error { return copyImage(emutest.AcctBuild, emutest.East, "q-1") }, ""},
				{"second image copy in 111/us-east-1", func() error { return copyImage(emutest.AcctBuild, emutest.East, "q-2") }, "ResourceLimitExceeded"},
				{"image copy in 111/us-west-2", func() error { return copyImage(emutest.AcctBuild, emutest.West, "q-3") }, ""},
				{"image copy in 222/us-east-1", func() error { return copyImage(emutest.AcctT2, emutest.East, "q-4") }, ""},
				{"first snapshot copy in 111/us-east-1", func() error { return copySnap(emutest.AcctBuild, emutest.East) }, ""},
				{"second snapshot copy in 111/us-east-1", func() error { return copySnap(emutest.AcctBuild, emutest.East) }, "ResourceLimitExceeded"},
				{"snapshot copy in 333/us-east-1", func() error { return copySnap(emutest.AcctT3, emutest.East) }, ""},
			}
			for _, tc := range tests {
				if err := tc.call(); emutest.APICode(err) != tc.code {
					t.Errorf("%s: %v, want %q", tc.name, err, tc.code)
				}
			}
		}},
	}
}

// TestRulesCrossAccountSequence drives section 4's cross-account copy with
// every step the sequence names, into a target whose role needs an
// ExternalId and in another region than the source.
func TestRulesCrossAccountSequence(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	ctx := x.Ctx
	s := x.EC2(emutest.AcctBuild, emutest.East)
	sKMS := x.KMS(emutest.AcctBuild, emutest.East)
	buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
	amiID, snapID := x.OwnEncryptedAMI(emutest.AcctBuild, emutest.East, buildKey, "seq2-golden")
	emutest.Must[*ec2.CreateTagsOutput](t, "CreateTags")(s.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{amiID},
		Tags: []types.Tag{{Key: aws.String("Team"), Value: aws.String("pci")}}}))
	mark := x.Srv.Emulator().CheckMark()

	// Step 1 in S: the image, its snapshots and their keys.
	img := x.Image(s, amiID)
	snaps := emutest.Must[*ec2.DescribeSnapshotsOutput](t, "DescribeSnapshots")(s.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}}))
	if len(snaps.Snapshots) != 1 || aws.ToString(snaps.Snapshots[0].KmsKeyId) != buildKey || img.BlockDeviceMappings[0].Ebs.KmsKeyId != nil {
		t.Fatalf("source snapshot %+v, image %+v", snaps.Snapshots, img.BlockDeviceMappings)
	}
	src := emutest.Must[*kms.DescribeKeyOutput](t, "DescribeKey source")(sKMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(buildKey)}))
	if src.KeyMetadata.KeyManager != kmstypes.KeyManagerTypeCustomer || src.KeyMetadata.KeyState != kmstypes.KeyStateEnabled {
		t.Fatalf("source key %+v", src.KeyMetadata)
	}

	// Step 2 in S: launch and createVolume permissions, a grant for T's role.
	const target, region = emutest.AcctT4, emutest.West
	role := "arn:aws:iam::" + target + ":role/amicrypt-copy"
	x.Share(emutest.AcctBuild, emutest.East, amiID, snapID, target)
	grant := emutest.Must[*kms.CreateGrantOutput](t, "CreateGrant")(sKMS.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(buildKey),
		GranteePrincipal: aws.String(role), RetiringPrincipal: aws.String("arn:aws:iam::" + emutest.AcctBuild + ":root"), Name: aws.String("amicrypt-seq2"),
		Operations: emutest.SourceKeyGrantOps()}))

	// Step 3 in T, as the assumed role (ExternalId), in R.
	roleCfg := x.Srv.RoleConfig(ctx, emutest.AcctBuild, role, "amicrypt-demo", region)
	tKMS := kms.NewFromConfig(roleCfg)
	tEC2 := ec2.NewFromConfig(roleCfg, func(o *ec2.Options) { o.RetryMaxAttempts = emutest.SDKAttempts })
	tk := emutest.Must[*kms.DescribeKeyOutput](t, "DescribeKey target")(tKMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-target")}))
	targetKey := aws.ToString(tk.KeyMetadata.Arn)
	if tk.KeyMetadata.KeyState != kmstypes.KeyStateEnabled || tk.KeyMetadata.KeyManager != kmstypes.KeyManagerTypeCustomer ||
		tk.KeyMetadata.KeySpec != kmstypes.KeySpecSymmetricDefault || !strings.HasPrefix(targetKey, "arn:aws:kms:"+region+":"+target+":key/") {
		t.Fatalf("target key %+v", tk.KeyMetadata)
	}
	// The shared image shows in T without S's tags.
	roleEast := x.Srv.RoleConfig(ctx, emutest.AcctBuild, role, "amicrypt-demo", emutest.East)
	if shared := x.Image(ec2.NewFromConfig(roleEast), amiID); len(shared.Tags) != 0 {
		t.Fatalf("T sees S's tags: %+v", shared.Tags)
	}

	// Step 4 in T, R.
	tags := []types.Tag{{Key: aws.String("Team"), Value: aws.String("pci")}, {Key: aws.String("amicrypt:source"), Value: aws.String(emutest.East + ":" + amiID)}}
	out := emutest.Must[*ec2.CopyImageOutput](t, "CopyImage")(tEC2.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(amiID), SourceRegion: aws.String(emutest.East),
		Name: aws.String("seq2-golden"), Encrypted: aws.Bool(true), KmsKeyId: aws.String(targetKey), ClientToken: aws.String("seq2-" + target + "-" + region),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: tags}, {ResourceType: types.ResourceTypeSnapshot, Tags: tags}}}))

	// Step 5 in T, R.
	cp := x.WaitImage(tEC2, aws.ToString(out.ImageId))
	if cp.State != types.ImageStateAvailable || aws.ToString(cp.OwnerId) != target || len(cp.Tags) != 2 ||
		!aws.ToBool(cp.BlockDeviceMappings[0].Ebs.Encrypted) || x.ImageKey(tEC2, cp) != targetKey {
		t.Fatalf("copy: %s %+v", cp.State, cp)
	}
	cpSnap := x.Snapshot(tEC2, aws.ToString(cp.BlockDeviceMappings[0].Ebs.SnapshotId))
	if aws.ToString(cpSnap.KmsKeyId) != targetKey || aws.ToString(cpSnap.OwnerId) != target || len(cpSnap.Tags) != 2 {
		t.Fatalf("copy's snapshot: %+v", cpSnap)
	}

	// Step 6 in S: remove the permissions, retire the grant.
	emutest.Must[*ec2.ModifyImageAttributeOutput](t, "unshare")(s.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID),
		LaunchPermission: &types.LaunchPermissionModifications{Remove: []types.LaunchPermission{{UserId: aws.String(target)}}}}))
	emutest.Must[*ec2.ModifySnapshotAttributeOutput](t, "unshare snapshot")(s.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snapID),
		Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeRemove, UserIds: []string{target}}))
	emutest.Must[*kms.RetireGrantOutput](t, "RetireGrant")(sKMS.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(buildKey), GrantId: grant.GrantId}))
	if _, err := kms.NewFromConfig(roleEast).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(buildKey)}); emutest.APICode(err) != "AccessDeniedException" {
		t.Fatalf("T's role still reaches the source key after the grant was retired: %v", err)
	}
	if _, err := tEC2.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(amiID), SourceRegion: aws.String(emutest.East), Name: aws.String("seq2-again")}); emutest.APICode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("copy after unsharing: %v", err)
	}
	if r := x.Srv.Emulator().Check(awsemu.CheckOptions{SinceSeq: mark}); !r.Pass {
		t.Fatalf("checker after the sequence: %s", r)
	}
}

// emuCode is the code of an *APIError the emulator's Go API returned.
func emuCode(err error) string {
	var ae *awsemu.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	if err != nil {
		return "not-an-APIError: " + err.Error()
	}
	return ""
}
