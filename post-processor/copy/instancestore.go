package copy

import (
	"context"
	"errors"
	"fmt"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// prepareInstanceStoreKey validates instance_store_kms_key_id: an alias
// name of a customer-managed key, since the check (and the agent at boot)
// resolves it in each target account and region.
func (c *Config) prepareInstanceStoreKey() []error {
	if c.InstanceStoreKmsKeyID == "" {
		return nil
	}
	ref, err := ebs.ParseKeyRef(c.InstanceStoreKmsKeyID)
	if err != nil {
		return []error{fmt.Errorf("instance_store_kms_key_id: %w", err)}
	}
	switch {
	case ref.Kind != ebs.KeyRefAlias:
		return []error{fmt.Errorf("instance_store_kms_key_id: %q is a %s; give an alias name such as \"alias/amicrypt-instance-store\": "+
			"it is checked in every target account and region, where a %s names no key", c.InstanceStoreKmsKeyID, ref.Kind, ref.Kind)}
	case ref.AWSManagedAlias():
		return []error{fmt.Errorf("instance_store_kms_key_id: %q is an AWS-managed key's alias; amicrypt-instance-store needs a customer-managed key: "+
			"give the alias of the key its kms_key_id names, e.g. \"alias/amicrypt-instance-store\"", c.InstanceStoreKmsKeyID)}
	}
	return nil
}

// checkInstanceStoreKey checks, as the target's role, that the alias the
// image's amicrypt-agent resolves at boot names an Enabled, symmetric,
// customer-managed key of the job's account and region
// (docs/aws-behaviour.md 3.7, 3.8: aliases live in one account and
// region; DescribeKey tells KeyManager and KeyState).
func (c *Config) checkInstanceStoreKey(ctx context.Context, p *plan, j *job) {
	alias := c.InstanceStoreKmsKeyID
	if alias == "" {
		return
	}
	role := j.Target.RoleARN
	tc := p.sess.Target(j.Target.Account, role, j.Target.ExternalID, j.Region)
	_, err := ebs.CheckKey(ctx, tc.KMS, alias, ebs.KeyRequirements{Region: j.Region, Account: j.Target.Account})
	if err == nil {
		return
	}
	const check = "instance-store key"
	var ke *ebs.KeyError
	if !errors.As(err, &ke) {
		p.problem(j.Dest(), check, err.Error(), fixOr(err, role, "kms:DescribeKey", alias, "check the role may call kms:DescribeKey in "+j.Region))
		return
	}
	consequence := "instances launched from this copy would fail closed at boot, their instance-store disks left unmounted"
	var fix string
	switch ke.Problem {
	case ebs.KeyNotFound:
		fix = fmt.Sprintf("create a customer-managed symmetric key with alias %s in account %s, %s, whose key policy lets the instances' role call kms:GenerateDataKey and kms:Decrypt "+
			"(docs/policies/instance-store-instance-role.json shows the role's side)", alias, j.Target.Account, j.Region)
	case ebs.KeyAccessDenied:
		fix = fixOr(ke.Err, role, "kms:DescribeKey", alias, "allow kms:DescribeKey on the key to "+role)
	case ebs.KeyAWSManaged:
		fix = fmt.Sprintf("point %s in account %s, %s at a customer-managed key", alias, j.Target.Account, j.Region)
	case ebs.KeyWrongAccount, ebs.KeyWrongRegion:
		fix = fmt.Sprintf("point %s at a key of account %s in %s: the agent uses the key its alias names there", alias, j.Target.Account, j.Region)
	default:
		fix = ke.Detail
	}
	p.problem(j.Dest(), check, fmt.Sprintf("%s (%s)", err, consequence), fix)
}
