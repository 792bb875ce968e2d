package ebs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepPreflight checks, before anything is created, everything that can be
// checked: credentials, the source AMI, every key, and AMI name collisions.
type stepPreflight struct{}

func (s *stepPreflight) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	ui(state).Say("Preflight: checking credentials, permissions, source AMI, KMS keys and AMI name…")

	if !c.SkipCredsValidation {
		id, err := b.clients.Identity(ctx)
		if err != nil {
			if role := c.AssumeRole.RoleARN; role != "" && assumeRoleFailed(err) {
				return halt(state, fmt.Errorf("assume_role.role_arn: the build's credentials can't assume %s: %w; trust them (their user or role, or their account) in the trust policy of %s and allow them sts:AssumeRole on it in their own IAM policy; set assume_role.external_id if the trust policy requires one", role, err, role))
			}
			return halt(state, b.regionError(ctx, c.RawRegion, err))
		}
		b.account, b.principal = id.Account, id.ARN
		detail(ui(state), fmt.Sprintf("Credentials: %s (account %s)", id.ARN, id.Account))
	}
	// Every EC2 call the build will make, asked before any is made
	// (step_preflight_probe.go).
	if err := b.runProbes(ctx, b.ec2Probes()); err != nil {
		return halt(state, err)
	}
	if err := s.checkRegions(ctx, b); err != nil {
		return halt(state, err)
	}

	src, err := findSourceAMI(ctx, b.clients.EC2(c.RawRegion), c)
	if err != nil {
		return halt(state, b.regionError(ctx, c.RawRegion, err))
	}
	b.source = src
	if err := checkSourceFits(c, src); err != nil {
		return halt(state, err)
	}
	if err := s.checkLaunch(ctx, b); err != nil {
		return halt(state, err)
	}

	keys, err := s.checkKeys(ctx, b)
	if err != nil {
		return halt(state, err)
	}
	detail(ui(state), keys)
	if err := b.runProbes(ctx, b.keyProbes()); err != nil {
		return halt(state, err)
	}
	if err := s.checkNames(ctx, b); err != nil {
		return halt(state, err)
	}
	return multistep.ActionContinue
}

func (s *stepPreflight) Cleanup(multistep.StateBag) {}

// findSourceAMI finds source_ami or source_ami_filter's image and checks it
// is available and EBS-backed.
func findSourceAMI(ctx context.Context, client ebs.EC2API, c *Config) (*types.Image, error) {
	var img *types.Image
	var err error
	if c.SourceAMI != "" {
		img, err = ebs.FindImageByID(ctx, client, c.SourceAMI)
		if ebs.IsNotFound(err) {
			return nil, fmt.Errorf("source_ami: %q not found in %s (or not shared with this account); check the ID and region: %w", c.SourceAMI, c.RawRegion, err)
		}
	} else {
		if img, err = ebs.FindImageByFilter(ctx, client, c.SourceAMIFilter); err != nil {
			err = fmt.Errorf("source_ami_filter: %w", err)
		}
	}
	if err != nil {
		return nil, err
	}
	id := aws.ToString(img.ImageId)
	if img.RootDeviceType != types.DeviceTypeEbs {
		return nil, fmt.Errorf("source AMI %s is %s-backed; amicrypt-ebs needs an EBS-backed AMI", id, img.RootDeviceType)
	}
	if img.State != types.ImageStateAvailable {
		return nil, fmt.Errorf("source AMI %s is %s, not available", id, img.State)
	}
	return img, nil
}

func (s *stepPreflight) checkKeys(ctx context.Context, b *buildState) (string, error) {
	c := b.config
	sharing := c.sharingConfigured()
	check := func(field, ref, region string) (string, error) {
		k, err := ebs.CheckKey(ctx, b.clients.KMS(region), ref, ebs.KeyRequirements{Region: region, Account: b.account})
		if err != nil && !errors.As(err, new(*ebs.KeyError)) {
			err = b.regionError(ctx, region, err)
		}
		var ke *ebs.KeyError
		if errors.As(err, &ke) && ke.Problem == ebs.KeyAWSManaged && sharing {
			return "", fmt.Errorf("%s: %w; sharing is configured (ami_users, ami_org_arns, ami_ou_arns or snapshot_users), so the build would fail at the share", field, err)
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		return k.ARN, nil
	}
	var err error
	if b.keyARN, err = check("kms_key_id", c.KmsKeyID, c.RawRegion); err != nil {
		return "", err
	}
	summary := fmt.Sprintf("Key %s → %s", c.KmsKeyID, b.keyARN)
	b.regionKeys = map[string]string{}
	for _, r := range c.AMIRegions {
		field := fmt.Sprintf("region_kms_key_ids[%q]", r)
		if _, ok := c.RegionKMSKeyIDs[r]; !ok {
			field = fmt.Sprintf("kms_key_id (%s in %s, which region_kms_key_ids doesn't name)", c.copyKeys[r], r)
		}
		arn, err := check(field, c.copyKeys[r], r)
		if err != nil {
			return "", err
		}
		b.regionKeys[r] = arn
		summary += fmt.Sprintf("; %s: %s", r, arn)
	}
	// Launch volume keys only have to exist and work: their data is
	// re-encrypted under kms_key_id unless they are that very key.
	for i, bd := range c.LaunchMappings {
		if bd.KmsKeyID == "" {
			continue
		}
		if _, err := ebs.CheckKey(ctx, b.clients.KMS(c.RawRegion), bd.KmsKeyID, ebs.KeyRequirements{Region: c.RawRegion, AllowAWSManaged: true}); err != nil {
			return "", fmt.Errorf("launch_block_device_mappings[%d].kms_key_id: %w", i, err)
		}
	}
	return summary, nil
}

func (s *stepPreflight) checkNames(ctx context.Context, b *buildState) error {
	c := b.config
	if c.ForceDeregister {
		return nil
	}
	regions := append([]string{c.RawRegion}, c.AMIRegions...)
	var clashes []string
	for _, r := range regions {
		imgs, err := ebs.FindImagesByName(ctx, b.clients.EC2(r), "self", c.AMIName)
		if err != nil {
			return b.regionError(ctx, r, err)
		}
		for _, img := range imgs {
			clashes = append(clashes, fmt.Sprintf("%s in %s", aws.ToString(img.ImageId), r))
		}
	}
	if len(clashes) > 0 {
		sort.Strings(clashes)
		return fmt.Errorf("ami_name: %q is already used by %s; choose another name (e.g. add {{timestamp}}) or set force_deregister = true", c.AMIName, strings.Join(clashes, ", "))
	}
	return nil
}

// checkSourceFits checks the AMI settings that depend on the source:
// ami_virtualization_type must be the source's (the AMI keeps it), and
// enhanced networking needs hvm.
func checkSourceFits(c *Config, src *types.Image) error {
	virt := string(src.VirtualizationType)
	if c.AMIVirtType != "" && c.AMIVirtType != virt {
		return fmt.Errorf("ami_virtualization_type: %q, but the source AMI %s is %s, and the AMI keeps the source's type; use a %s source or remove ami_virtualization_type",
			c.AMIVirtType, aws.ToString(src.ImageId), virt, c.AMIVirtType)
	}
	if (c.AMIENASupport.True() || c.AMISriovNetSupport) && virt != "hvm" {
		return fmt.Errorf("ena_support, sriov_support: the source AMI %s is %s; enhanced networking needs hvm", aws.ToString(src.ImageId), virt)
	}
	return nil
}

// checkLaunch checks what a launch needs before anything is made: the
// instance profile (unless skip_profile_validation) and, for a
// session_manager tunnel, the local session-manager-plugin.
func (s *stepPreflight) checkLaunch(ctx context.Context, b *buildState) error {
	c := b.config
	if c.SkipLaunch {
		return nil
	}
	if c.SSHInterface == "session_manager" {
		if _, err := findSessionManagerPlugin(); err != nil {
			return err
		}
	}
	if c.IAMInstanceProfile != "" && !c.SkipProfileValidation {
		if _, err := b.clients.IAM().GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(c.IAMInstanceProfile)}); err != nil {
			if ebs.IsCode(err, "NoSuchEntity") {
				return fmt.Errorf("iam_instance_profile: %q does not exist in this account: create it or fix the name (%w)", c.IAMInstanceProfile, err)
			}
			if _, denied := ebs.AccessDenied(err); denied {
				return fmt.Errorf("iam_instance_profile: checking %q: %s may not call iam:GetInstanceProfile: %w; allow iam:GetInstanceProfile in the IAM policy of %s, or set skip_profile_validation = true", c.IAMInstanceProfile, b.principalOr(), err, b.principalOr())
			}
			return fmt.Errorf("iam_instance_profile: checking %q with iam:GetInstanceProfile: %w; allow that call, or set skip_profile_validation = true", c.IAMInstanceProfile, err)
		}
	}
	return nil
}

// checkRegions checks, unless skip_region_validation, that every region of
// ami_regions is one the account has and has enabled (ec2:DescribeRegions).
func (s *stepPreflight) checkRegions(ctx context.Context, b *buildState) error {
	c := b.config
	if c.SkipRegionValidation || len(c.AMIRegions) == 0 {
		return nil
	}
	regions, err := ebs.Regions(ctx, b.clients.EC2(c.RawRegion))
	if err != nil {
		return fmt.Errorf("ami_regions: checking the regions with ec2:DescribeRegions: %w; allow that call, or set skip_region_validation = true", err)
	}
	for _, r := range c.AMIRegions {
		if err := regionProblem(r, regions, b.account); err != nil {
			return fmt.Errorf("ami_regions: %w; remove it from ami_regions (or set skip_region_validation = true)", err)
		}
	}
	return nil
}

// regionProblem says why a region can't be used, or nil.
func regionProblem(region string, regions map[string]string, account string) error {
	status, ok := regions[region]
	switch {
	case !ok:
		return fmt.Errorf("%s is not a region of this account's partition (ec2:DescribeRegions doesn't list it)", region)
	case status == "not-opted-in":
		acct := "this account"
		if account != "" {
			acct = "account " + account
		}
		return fmt.Errorf("%s is an opt-in region that %s hasn't enabled; enable it in the account's settings (Regions)", region, acct)
	}
	return nil
}

// regionError explains an error from a region: an authentication failure
// there usually means the region is not enabled (AWS answers calls to a
// region the account hasn't opted in to with AuthFailure or "The security
// token included in the request is invalid", which look like bad
// credentials). It says which region and why; other errors are returned
// naming the region.
func (b *buildState) regionError(ctx context.Context, region string, err error) error {
	if !ebs.IsCode(err, "AuthFailure", "UnrecognizedClientException", "InvalidClientTokenId", "OptInRequired") {
		return fmt.Errorf("in %s: %w", region, err)
	}
	// Ask another region which regions exist and are enabled: the build
	// region, or for the build region itself us-east-1, which every
	// account of the standard partition has enabled (docs/aws-behaviour.md
	// 9.8; in another partition that call is refused too, and the generic
	// message stays).
	asked, field := b.config.RawRegion, "ami_regions"
	if region == b.config.RawRegion {
		asked, field = "us-east-1", "region"
	}
	var regions map[string]string
	rerr := errors.New("the region asked is the one refused")
	if region != asked {
		regions, rerr = ebs.Regions(ctx, b.clients.EC2(asked))
	}
	if rerr != nil {
		return fmt.Errorf("in %s: %w (the credentials were refused there; if they work in other regions, %s may be an opt-in region this account hasn't enabled)", region, err, region)
	}
	if p := regionProblem(region, regions, b.account); p != nil {
		if _, listed := regions[region]; !listed {
			return fmt.Errorf("%s: %w; check the spelling (regions AWS lists: %s); AWS refused the credentials there: %w", field, p, strings.Join(slices.Sorted(maps.Keys(regions)), ", "), err)
		}
		return fmt.Errorf("%s: %w; AWS refused the credentials there: %w", field, p, err)
	}
	return fmt.Errorf("in %s: the credentials were refused: %w", region, err)
}

// assumeRoleFailed reports whether err is the failure of the
// sts:AssumeRole call behind the credentials of assume_role.
func assumeRoleFailed(err error) bool {
	var op *smithy.OperationError
	for errors.As(err, &op) {
		if op.Service() == "STS" && op.Operation() == "AssumeRole" {
			return true
		}
		err = op.Unwrap()
	}
	return false
}
