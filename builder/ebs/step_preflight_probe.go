package ebs

// step_preflight_probe.go: preflight asks AWS, before anything is made,
// whether the build's principal may make every call the build will make
// (docs/policies/build.json lists them). Most are asked with DryRun, which
// EC2 answers DryRunOperation when the call would be allowed and
// UnauthorizedOperation when not; calls on resources that don't exist yet
// name an ID of nothing (AWS checks the permission first). A refused call
// stops the build here, naming the permission and the IAM policy to fix,
// rather than midway with an instance running or snapshots half made.
//
// Not asked (they can't be asked without making something): iam:PassRole,
// the ssm: calls of a session_manager tunnel,
// and the key operations EC2 performs with the build key on the principal's
// behalf other than GenerateDataKeyWithoutPlaintext and CreateGrant
// (kms:Decrypt, kms:ReEncryptFrom, kms:ReEncryptTo need ciphertext of the
// key). Those asked directly may be allowed only through EC2
// (kms:ViaService, kms:GrantIsForAWSResource): only an explicit deny of the
// direct call proves EC2's call will be refused too.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// IDs of nothing, well-formed, for DryRun probes of calls on resources the
// build makes later.
const (
	probeInstance = "i-00000000000000000"
	probeVolume   = "vol-00000000000000000"
	probeSnapshot = "snap-00000000000000000"
	probeImage    = "ami-00000000000000000"
	probeGroup    = "sg-00000000000000000"
	probeKeyPair  = "packer_amicrypt_preflight_probe"
)

// accessProbe is one call preflight makes to learn whether the principal
// may make it.
type accessProbe struct {
	action string // "ec2:RunInstances"
	region string
	// via: the call stands for one EC2 makes with a key on the principal's
	// behalf; only an explicit deny of the direct call proves a refusal.
	via  bool
	call func(context.Context) error
}

// probeRefusal returns the problem a probe's answer shows, or nil. An
// answer that names a missing resource says nothing about the permission.
func (b *buildState) probeRefusal(ctx context.Context, pr accessProbe) error {
	err := pr.call(ctx)
	switch {
	case err == nil, ebs.IsCode(err, "DryRunOperation", "DryRunOperationException"),
		strings.HasSuffix(ebs.ErrorCode(err), ".NotFound"), ebs.IsCode(err, "NotFoundException"):
		return nil
	}
	by, denied := ebs.AccessDenied(err)
	if !denied {
		// Not a refusal (a throttle, a malformed probe): the call itself
		// will tell later; preflight only reports refusals.
		return nil
	}
	if pr.via && !ebs.ExplicitDeny(err) {
		return nil // allowed, if at all, only through EC2: not decidable here
	}
	who := b.principalOr()
	switch by {
	case ebs.DeniedByResourcePolicy:
		return fmt.Errorf("%s may not call %s in %s: %w; allow it to %s in the key policy", who, pr.action, pr.region, err, who)
	case ebs.DeniedByOrganization:
		return fmt.Errorf("%s may not call %s in %s: %w; a service control policy of the organization refuses it: ask its administrators to allow %s", who, pr.action, pr.region, err, pr.action)
	}
	return fmt.Errorf("%s may not call %s in %s: %w; allow %s in the IAM policy of %s (docs/policies/build.json lists what a build needs)", who, pr.action, pr.region, err, pr.action, who)
}

// runProbes runs probes in order and joins the refusals.
func (b *buildState) runProbes(ctx context.Context, probes []accessProbe) error {
	var errs []error
	for _, pr := range probes {
		if err := b.probeRefusal(ctx, pr); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("preflight found permissions the build needs and lacks, before making anything: %w", errors.Join(errs...))
}

// ec2Probes are the EC2 calls of the build, as configured, in each region
// it works in, and kms:DescribeKey of each key.
func (b *buildState) ec2Probes() []accessProbe {
	c := b.config
	dry := aws.Bool(true)
	var probes []accessProbe
	add := func(region, action string, call func(context.Context, ebs.BuildAPI) error) {
		client := b.clients.EC2(region)
		probes = append(probes, accessProbe{action: "ec2:" + action, region: region, call: func(ctx context.Context) error { return call(ctx, client) }})
	}
	r := c.RawRegion
	// Reads: the source AMI, what dead builds left (step_reap.go), the
	// instance, its volumes and the snapshots.
	add(r, "DescribeImages", func(ctx context.Context, e ebs.BuildAPI) error {
		_, err := e.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{probeImage}, DryRun: dry})
		return err
	})
	add(r, "DescribeSnapshots", func(ctx context.Context, e ebs.BuildAPI) error {
		_, err := e.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{probeSnapshot}, DryRun: dry})
		return err
	})
	add(r, "DescribeInstances", func(ctx context.Context, e ebs.BuildAPI) error {
		_, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{probeInstance}, DryRun: dry})
		return err
	})
	add(r, "DescribeVolumes", func(ctx context.Context, e ebs.BuildAPI) error {
		_, err := e.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{probeVolume}, DryRun: dry})
		return err
	})
	add(r, "DescribeKeyPairs", func(ctx context.Context, e ebs.BuildAPI) error {
		_, err := e.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{probeKeyPair}, DryRun: dry})
		return err
	})
	add(r, "DescribeLaunchTemplates", func(ctx context.Context, e ebs.BuildAPI) error {
		_, err := e.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{DryRun: dry})
		return err
	})
	// The lease (lease.go): tags on what the build makes, removed at the end.
	tag := []types.Tag{{Key: aws.String(tagLease), Value: aws.String("probe")}}
	add(r, "CreateTags", func(ctx context.Context, e ebs.BuildAPI) error {
		_, err := e.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{probeImage}, Tags: tag, DryRun: dry})
		return err
	})
	add(r, "DeleteTags", func(ctx context.Context, e ebs.BuildAPI) error {
		_, err := e.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{probeImage}, Tags: tag, DryRun: dry})
		return err
	})
	if len(c.AMIRegions) > 0 && !c.SkipRegionValidation {
		add(r, "DescribeRegions", func(ctx context.Context, e ebs.BuildAPI) error {
			_, err := e.DescribeRegions(ctx, &ec2.DescribeRegionsInput{DryRun: dry})
			return err
		})
	}
	// The keys, as CheckKey will resolve them.
	keys := map[string]string{r: c.KmsKeyID}
	for _, region := range c.AMIRegions {
		keys[region] = c.copyKeys[region]
	}
	for _, region := range append([]string{r}, c.AMIRegions...) {
		if keys[region] == "" {
			continue
		}
		client, ref := b.clients.KMS(region), keys[region]
		probes = append(probes, accessProbe{action: "kms:DescribeKey", region: region, call: func(ctx context.Context) error {
			_, err := client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(ref)})
			return err
		}})
	}
	if !c.SkipLaunch {
		b.launchProbes(add)
	}
	if !c.SkipCreateAMI {
		if c.SkipLaunch {
			// A source whose snapshots the account can't read is copied
			// whole (step_create_snapshots.go).
			add(r, "CopyImage", func(ctx context.Context, e ebs.BuildAPI) error {
				_, err := e.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(probeImage), SourceRegion: aws.String(r),
					Name: aws.String(c.AMIName), Encrypted: aws.Bool(true), DryRun: dry})
				return err
			})
		} else {
			add(r, "CreateSnapshot", func(ctx context.Context, e ebs.BuildAPI) error {
				_, err := e.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(probeVolume), DryRun: dry})
				return err
			})
		}
		for _, region := range append([]string{r}, c.AMIRegions...) {
			add(region, "CopySnapshot", func(ctx context.Context, e ebs.BuildAPI) error {
				_, err := e.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(probeSnapshot), SourceRegion: aws.String(r),
					Encrypted: aws.Bool(true), DryRun: dry})
				return err
			})
			add(region, "RegisterImage", func(ctx context.Context, e ebs.BuildAPI) error {
				_, err := e.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String(c.AMIName), RootDeviceName: aws.String("/dev/xvda"),
					BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(probeSnapshot)}}},
					DryRun:              dry})
				return err
			})
			// Sharing (ami_users, ami_org_arns, ami_ou_arns, product
			// codes; snapshot_users), deprecate_at and
			// deregistration_protection (step_share.go).
			if !c.sharing().Empty() || len(c.AMIProductCodes) > 0 {
				add(region, "ModifyImageAttribute", func(ctx context.Context, e ebs.BuildAPI) error {
					_, err := e.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(probeImage), Attribute: aws.String("launchPermission"),
						LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String(b.accountOr())}}}, DryRun: dry})
					return err
				})
			}
			if len(c.SnapshotUsers) > 0 {
				add(region, "ModifySnapshotAttribute", func(ctx context.Context, e ebs.BuildAPI) error {
					_, err := e.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(probeSnapshot),
						Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeAdd, UserIds: c.SnapshotUsers, DryRun: dry})
					return err
				})
			}
			if !c.deprecateAt.IsZero() {
				add(region, "EnableImageDeprecation", func(ctx context.Context, e ebs.BuildAPI) error {
					_, err := e.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{ImageId: aws.String(probeImage), DeprecateAt: aws.Time(c.deprecateAt), DryRun: dry})
					return err
				})
			}
			if c.DeregistrationProtection.Enabled {
				add(region, "EnableImageDeregistrationProtection", func(ctx context.Context, e ebs.BuildAPI) error {
					_, err := e.EnableImageDeregistrationProtection(ctx, &ec2.EnableImageDeregistrationProtectionInput{ImageId: aws.String(probeImage), DryRun: dry})
					return err
				})
			}
			// Intermediate snapshots are deleted; a failed build's AMI
			// and snapshots are rolled back.
			add(region, "DeleteSnapshot", func(ctx context.Context, e ebs.BuildAPI) error {
				_, err := e.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(probeSnapshot), DryRun: dry})
				return err
			})
			add(region, "DeregisterImage", func(ctx context.Context, e ebs.BuildAPI) error {
				_, err := e.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(probeImage), DryRun: dry})
				return err
			})
		}
	}
	return probes
}

// launchProbes are the calls of the build instance and its temporary key
// pair and security group.
func (b *buildState) launchProbes(add func(string, string, func(context.Context, ebs.BuildAPI) error)) {
	c := b.config
	r := c.RawRegion
	dry := aws.Bool(true)
	add(r, "DescribeVpcs", func(ctx context.Context, e ebs.BuildAPI) error {
		_, err := e.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{DryRun: dry})
		return err
	})
	add(r, "DescribeSecurityGroups", func(ctx context.Context, e ebs.BuildAPI) error {
		_, err := e.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{probeGroup}, DryRun: dry})
		return err
	})
	image := c.SourceAMI
	if image == "" {
		image = probeImage
	}
	if c.SubnetID != "" || len(c.SubnetFilter.Filters) > 0 || c.VpcID != "" || !c.VpcFilter.Empty() {
		add(r, "DescribeSubnets", func(ctx context.Context, e ebs.BuildAPI) error {
			_, err := e.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{DryRun: dry})
			return err
		})
	}
	if c.spot() {
		// A spot build launches through a launch template and an instant
		// EC2 Fleet (step_run_spot.go).
		add(r, "CreateLaunchTemplate", func(ctx context.Context, e ebs.BuildAPI) error {
			_, err := e.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("amicrypt-preflight-probe"),
				LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(image)}, DryRun: dry})
			return err
		})
		add(r, "CreateFleet", func(ctx context.Context, e ebs.BuildAPI) error {
			_, err := e.CreateFleet(ctx, &ec2.CreateFleetInput{Type: types.FleetTypeInstant,
				LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{
					LaunchTemplateName: aws.String("amicrypt-preflight-probe"), Version: aws.String("$Latest")}}},
				TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{TotalTargetCapacity: aws.Int32(1), DefaultTargetCapacityType: types.DefaultTargetCapacityTypeSpot},
				DryRun:                      dry})
			return err
		})
		add(r, "DeleteLaunchTemplate", func(ctx context.Context, e ebs.BuildAPI) error {
			_, err := e.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: aws.String("amicrypt-preflight-probe"), DryRun: dry})
			return err
		})
	} else {
		add(r, "RunInstances", func(ctx context.Context, e ebs.BuildAPI) error {
			_, err := e.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceType(c.InstanceType),
				MinCount: aws.Int32(1), MaxCount: aws.Int32(1), DryRun: dry})
			return err
		})
	}
	if c.Comm.Type == "winrm" && c.Comm.WinRMPassword == "" {
		add(r, "GetPasswordData", func(ctx context.Context, e ebs.BuildAPI) error {
			_, err := e.GetPasswordData(ctx, &ec2.GetPasswordDataInput{InstanceId: aws.String(probeInstance), DryRun: dry})
			return err
		})
	}
	if !c.DisableStopInstance {
		add(r, "StopInstances", func(ctx context.Context, e ebs.BuildAPI) error {
			_, err := e.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{probeInstance}, DryRun: dry})
			return err
		})
	}
	add(r, "TerminateInstances", func(ctx context.Context, e ebs.BuildAPI) error {
		_, err := e.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{probeInstance}, DryRun: dry})
		return err
	})
	// Launch volumes that outlive the instance (delete_on_termination
	// unset or false) are deleted after it.
	for _, bd := range c.LaunchMappings {
		if _, store := bd.instanceStoreMapping(); store || bd.DeleteOnTermination != nil && *bd.DeleteOnTermination {
			continue
		}
		add(r, "DeleteVolume", func(ctx context.Context, e ebs.BuildAPI) error {
			_, err := e.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(probeVolume), DryRun: dry})
			return err
		})
		break
	}
	if needsTempKeyPair(c) {
		keyType, bits := c.Comm.SSHTemporaryKeyPairType, c.Comm.SSHTemporaryKeyPairBits
		if keyType == "rsa" && bits != 0 && bits != 2048 {
			add(r, "ImportKeyPair", func(ctx context.Context, e ebs.BuildAPI) error {
				// An ed25519 public key of zeros: DryRun makes nothing.
				pub := []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
				_, err := e.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String(probeKeyPair), PublicKeyMaterial: pub, DryRun: dry})
				return err
			})
		} else {
			add(r, "CreateKeyPair", func(ctx context.Context, e ebs.BuildAPI) error {
				_, err := e.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String(probeKeyPair), DryRun: dry})
				return err
			})
		}
		add(r, "DeleteKeyPair", func(ctx context.Context, e ebs.BuildAPI) error {
			_, err := e.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String(probeKeyPair), DryRun: dry})
			return err
		})
	}
	if needsTempSecurityGroup(c) {
		add(r, "CreateSecurityGroup", func(ctx context.Context, e ebs.BuildAPI) error {
			_, err := e.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("amicrypt-preflight-probe"),
				Description: aws.String("amicrypt preflight probe"), DryRun: dry})
			return err
		})
		add(r, "AuthorizeSecurityGroupIngress", func(ctx context.Context, e ebs.BuildAPI) error {
			_, err := e.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(probeGroup),
				IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), CidrIp: aws.String("192.0.2.1/32"), DryRun: dry})
			return err
		})
		add(r, "DeleteSecurityGroup", func(ctx context.Context, e ebs.BuildAPI) error {
			_, err := e.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(probeGroup), DryRun: dry})
			return err
		})
	}
}

// keyGenerator is the KMS call that stands for EC2's use of a key for new
// data; the SDK's client has it, fakes may not.
type keyGenerator interface {
	GenerateDataKeyWithoutPlaintext(context.Context, *kms.GenerateDataKeyWithoutPlaintextInput, ...func(*kms.Options)) (*kms.GenerateDataKeyWithoutPlaintextOutput, error)
}

// keyProbes are the key operations EC2 performs with each key the AMI is
// encrypted under (kms:DescribeKey was asked with the EC2 calls), asked
// directly: GenerateDataKeyWithoutPlaintext and CreateGrant (DryRun).
func (b *buildState) keyProbes() []accessProbe {
	c := b.config
	if c.SkipCreateAMI {
		return nil
	}
	keys := map[string]string{c.RawRegion: b.keyARN}
	for r, k := range b.regionKeys {
		keys[r] = k
	}
	var probes []accessProbe
	for _, region := range append([]string{c.RawRegion}, c.AMIRegions...) {
		key := keys[region]
		if key == "" {
			continue
		}
		client := b.clients.KMS(region)
		if gen, ok := client.(keyGenerator); ok {
			probes = append(probes, accessProbe{action: "kms:GenerateDataKeyWithoutPlaintext", region: region, via: true, call: func(ctx context.Context) error {
				_, err := gen.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(key), KeySpec: kmstypes.DataKeySpecAes256, DryRun: aws.Bool(true)})
				return err
			}})
		}
		probes = append(probes, accessProbe{action: "kms:CreateGrant", region: region, via: true, call: func(ctx context.Context) error {
			_, err := ebs.CreateGrant(ctx, client, ebs.GrantSpec{KeyARN: key, GranteePrincipal: "arn:aws:iam::" + b.accountOr() + ":root",
				Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt}, DryRun: true})
			return err
		}})
	}
	return probes
}

// accountOr is the build account, or the key's account when credentials
// were not checked.
func (b *buildState) accountOr() string {
	if b.account != "" {
		return b.account
	}
	if a, err := arn.Parse(b.keyARN); err == nil {
		return a.AccountID
	}
	return ""
}

// principalOr is the build's principal, or words for it when credentials
// were not checked (skip_credential_validation).
func (b *buildState) principalOr() string {
	if b.principal != "" {
		return b.principal
	}
	return "the build's principal"
}
