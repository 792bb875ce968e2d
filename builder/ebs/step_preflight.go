package ebs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepPreflight checks, before anything is created, everything that can be
// checked: credentials, the source AMI, every key, and AMI name collisions.
type stepPreflight struct{}

func (s *stepPreflight) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	ui(state).Say("Preflight: checking credentials, source AMI, KMS keys and AMI name…")

	if !c.SkipCredsValidation {
		id, err := b.clients.Identity(ctx)
		if err != nil {
			return halt(state, err)
		}
		b.account = id.Account
		detail(ui(state), fmt.Sprintf("Credentials: %s (account %s)", id.ARN, id.Account))
	}

	src, err := findSourceAMI(ctx, b.clients.EC2(c.RawRegion), c)
	if err != nil {
		return halt(state, err)
	}
	b.source = src

	keys, err := s.checkKeys(ctx, b)
	if err != nil {
		return halt(state, err)
	}
	detail(ui(state), keys)
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
		arn, err := check(fmt.Sprintf("region_kms_key_ids[%q]", r), c.RegionKMSKeyIDs[r], r)
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
			return err
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
