package copy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// plan is everything a run will do, checked before anything changes.
type plan struct {
	sess    *session
	sources []*source // by region
	targets []*target
	jobs    []*job

	mu       sync.Mutex
	problems []Problem
}

func (p *plan) problem(target, check, problem, fix string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, Problem{Target: target, Check: check, Problem: problem, Fix: fix})
}

func (p *plan) sourceFor(region string) *source {
	for _, s := range p.sources {
		if s.Region == region {
			return s
		}
	}
	return p.sources[0]
}

// preflight plans every copy and checks everything that can be checked
// without changing anything. Problems go into the plan; an error means a
// check itself could not run.
func (c *Config) preflight(ctx context.Context, sess *session, amis []sourceAMI) (*plan, error) {
	p := &plan{sess: sess}
	for _, a := range amis {
		p.sources = append(p.sources, &source{Region: a.Region, ImageID: a.ImageID})
	}
	// The source region named in the access config goes first: it is what
	// other regions copy from.
	sort.SliceStable(p.sources, func(i, j int) bool { return p.sources[i].Region == c.RawRegion && p.sources[j].Region != c.RawRegion })

	for _, src := range p.sources {
		c.checkSource(ctx, p, src)
	}
	c.resolveTargets(p)

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, t := range p.targets {
		g.Go(func() error { return c.checkTarget(gctx, p, t) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return p, nil
}

// checkSource describes a source AMI, its snapshots and keys in the source
// account.
func (c *Config) checkSource(ctx context.Context, p *plan, src *source) {
	where := "source " + src.Region
	sc := p.sess.Source(src.Region)
	img, err := ebs.FindImageByID(ctx, sc.EC2, src.ImageID)
	if err != nil {
		p.problem(where, "source AMI", fmt.Sprintf("%s can't be described by account %s: %v", src.ImageID, p.sess.SourceAccount, err),
			"give amicrypt-copy the credentials of the AMI's owner (region, profile, assume_role) and check the AMI still exists")
		return
	}
	src.Name = aws.ToString(img.Name)
	src.Description = aws.ToString(img.Description)
	src.Tags = ebs.TagMap(img.Tags)
	src.Shared = src.ImageID
	if owner := aws.ToString(img.OwnerId); owner != p.sess.SourceAccount {
		p.problem(where, "source AMI", fmt.Sprintf("%s belongs to account %s, not to the source account %s", src.ImageID, owner, p.sess.SourceAccount),
			"run amicrypt-copy with the owner's credentials: only the owner can share the AMI and grant use of its keys")
	}
	if img.State != ec2types.ImageStateAvailable {
		p.problem(where, "source AMI", fmt.Sprintf("%s is %s, not available", src.ImageID, img.State), "wait for the AMI to become available, or rebuild it")
	}
	keys := map[string]bool{}
	for _, snapID := range ebs.ImageSnapshotIDs(img) {
		src.SnapshotIDs = append(src.SnapshotIDs, snapID)
		snap, err := ebs.FindSnapshotByID(ctx, sc.EC2, snapID)
		if err != nil {
			p.problem(where, "source snapshot", fmt.Sprintf("snapshot %s of %s: %v", snapID, src.ImageID, err), "check the AMI's snapshots exist and the source principal may describe them")
			continue
		}
		if !aws.ToBool(snap.Encrypted) {
			src.Unencrypted = true
			continue
		}
		keys[aws.ToString(snap.KmsKeyId)] = true
	}
	for keyARN := range keys {
		k, err := ebs.DescribeKey(ctx, sc.KMS, src.Region, keyARN)
		if err != nil {
			p.problem(where, "source key", err.Error(), "allow kms:DescribeKey on the source key to the source principal "+p.sess.SourcePrincipal)
			continue
		}
		if k.AWSManaged() {
			src.AWSManagedKey = k.ARN
			continue
		}
		src.KeyARNs = append(src.KeyARNs, k.ARN)
	}
	sort.Strings(src.KeyARNs)
	src.SharedKeys = src.KeyARNs
	src.SharedSnaps = src.SnapshotIDs
	if src.AWSManagedKey == "" {
		return
	}
	if c.TransitKmsKeyID == "" {
		p.problem(where, "source key", fmt.Sprintf("%s is encrypted under the AWS-managed key %s; AWS refuses to share it: %q", src.ImageID, src.AWSManagedKey, ebs.AWSManagedShareError+". Specify another snapshot."),
			fmt.Sprintf("set transit_kms_key_id to a customer-managed key of account %s in %s: amicrypt-copy re-encrypts the AMI under it first and deletes that transit copy afterwards", p.sess.SourceAccount, src.Region))
		return
	}
	tk, err := ebs.CheckKey(ctx, sc.KMS, c.TransitKmsKeyID, ebs.KeyRequirements{Region: src.Region, Account: p.sess.SourceAccount})
	if err != nil {
		fix := "give transit_kms_key_id a customer-managed, enabled, symmetric key of the source account in " + src.Region
		var ke *ebs.KeyError
		if errors.As(err, &ke) && ke.Detail != "" {
			fix = ke.Detail
		}
		p.problem(where, "transit key", err.Error(), fix)
		return
	}
	src.TransitKey = tk.ARN
	src.SharedKeys = []string{tk.ARN}
	src.SharedSnaps = nil
}

// resolveTargets applies the top-level defaults and lays out the jobs.
func (c *Config) resolveTargets(p *plan) {
	for i := range c.Targets {
		tc := &c.Targets[i]
		t := &target{
			Account:    tc.AccountID,
			RoleARN:    tc.RoleARN,
			ExternalID: firstNonEmpty(tc.ExternalID, c.ExternalID),
			Regions:    firstNonEmptySlice(tc.Regions, c.Regions),
			KeyRefs:    map[string]string{},
			Sharing: ebs.Sharing{
				Users:   firstNonEmptySlice(tc.AMIUsers, c.AMIUsers),
				OrgARNs: firstNonEmptySlice(tc.AMIOrgArns, c.AMIOrgArns),
				OUARNs:  firstNonEmptySlice(tc.AMIOuArns, c.AMIOuArns),
			},
			IsSource: tc.AccountID == p.sess.SourceAccount,
		}
		if t.RoleARN == "" {
			t.RoleARN = fmt.Sprintf("arn:aws:iam::%s:role/%s", t.Account, c.RoleName)
		}
		if len(t.Regions) == 0 {
			for _, s := range p.sources {
				t.Regions = append(t.Regions, s.Region)
			}
		}
		keyRef, regionKeys := tc.effectiveKeys(c)
		for _, r := range t.Regions {
			ref := regionKeys[r]
			if ref == "" {
				ref = keyRef
			}
			t.KeyRefs[r] = ref
			src := p.sourceFor(r)
			j := &job{Target: t, Region: r, Source: src, KeyRef: ref, State: "planned"}
			data := nameData{SourceAMIName: src.Name, SourceAMI: src.ImageID, Account: t.Account, Region: r}
			name, err := c.render(c.AMIName, data)
			switch {
			case err != nil:
				p.problem(j.Dest(), "AMI name", fmt.Sprintf("ami_name %q: %v", c.AMIName, err), "fix the ami_name template")
			case !amiNamePattern.MatchString(name):
				p.problem(j.Dest(), "AMI name", fmt.Sprintf("ami_name renders to %q, not a valid AMI name (3-128 letters, digits and ()[] ./-'@_)", name),
					"change ami_name, e.g. wrap it in clean_resource_name or shorten it")
			}
			j.Name = name
			j.Description = src.Description
			if c.AMIDescription != "" {
				j.Description, _ = c.render(c.AMIDescription, data)
			}
			if ref == "" {
				p.problem(j.Dest(), "target key", "no kms_key_id for this region", "set kms_key_id or region_kms_key_ids for "+r)
			} else if kr := keyARNRegion(ref); kr != "" && kr != r {
				p.problem(j.Dest(), "target key", fmt.Sprintf("%s lives in %s, not %s; a key works only in its own region", ref, kr, r),
					fmt.Sprintf("use region_kms_key_ids[%q] or an alias name that resolves in each region", r))
			}
			p.jobs = append(p.jobs, j)
		}
		p.targets = append(p.targets, t)
	}
}

// checkTarget runs every check of one target account: role, regions,
// keys, names, grants on the source keys.
func (c *Config) checkTarget(ctx context.Context, p *plan, t *target) error {
	home := p.sources[0].Region
	tc := p.sess.Target(t.Account, t.RoleARN, t.ExternalID, home)
	if _, err := awsauth.CallerIdentity(ctx, tc.cfg); err != nil {
		p.problem(t.Account, "assume role", fmt.Sprintf("%s can't assume %s: %v", p.sess.SourcePrincipal, t.RoleARN, err),
			fmt.Sprintf("trust %s (or account %s) in the trust policy of %s and allow it sts:AssumeRole; set external_id if the role requires one", p.sess.SourcePrincipal, p.sess.SourceAccount, t.RoleARN))
		return nil // nothing else can be checked as this role
	}
	regions, err := tc.EC2.DescribeRegions(ctx, &ec2.DescribeRegionsInput{AllRegions: aws.Bool(true)})
	if err != nil {
		p.problem(t.Account, "regions", fmt.Sprintf("ec2:DescribeRegions as %s: %v", t.RoleARN, err), "allow ec2:DescribeRegions to "+t.RoleARN)
		return nil
	}
	optIn := map[string]string{}
	for _, r := range regions.Regions {
		optIn[aws.ToString(r.RegionName)] = aws.ToString(r.OptInStatus)
	}
	for _, j := range p.jobs {
		if j.Target != t {
			continue
		}
		status, known := optIn[j.Region]
		switch {
		case !known:
			p.problem(j.Dest(), "region", fmt.Sprintf("%s is not a region account %s knows", j.Region, t.Account), "remove it from regions or fix its name")
			continue
		case status == "not-opted-in":
			p.problem(j.Dest(), "region", fmt.Sprintf("%s is not enabled in account %s (opt-in status %q)", j.Region, t.Account, status),
				fmt.Sprintf("enable %s in account %s (Account settings, AWS Regions) or remove it from regions", j.Region, t.Account))
			continue
		}
		c.checkJob(ctx, p, j)
	}
	if !t.IsSource {
		c.checkGrants(ctx, p, t)
	}
	return nil
}

// checkJob checks the target key, name and earlier copies of one job.
func (c *Config) checkJob(ctx context.Context, p *plan, j *job) {
	if j.KeyRef == "" {
		return
	}
	tc := p.sess.Target(j.Target.Account, j.Target.RoleARN, j.Target.ExternalID, j.Region)
	key, err := ebs.CheckKey(ctx, tc.KMS, j.KeyRef, ebs.KeyRequirements{Region: j.Region, Account: j.Target.Account})
	var ke *ebs.KeyError
	switch {
	case err == nil:
		j.KeyARN = key.ARN
	case errors.As(err, &ke) && ke.Problem == ebs.KeyNotFound && c.CreateMissingKeys:
		j.CreateKey = true
	case errors.As(err, &ke):
		fix := ke.Detail
		switch ke.Problem {
		case ebs.KeyWrongAccount:
			fix = fmt.Sprintf("use a key account %s owns (an alias name such as alias/NAME resolves in that account); never the source account's key", j.Target.Account)
		case ebs.KeyNotFound:
			fix = fmt.Sprintf("create a customer-managed key with alias %s in account %s, %s, or set create_missing_keys = true", j.KeyRef, j.Target.Account, j.Region)
		case ebs.KeyAccessDenied:
			fix = fmt.Sprintf("allow kms:DescribeKey, kms:CreateGrant, kms:Encrypt, kms:ReEncrypt*, kms:GenerateDataKey* on the key to %s in its key policy", j.Target.RoleARN)
		}
		p.problem(j.Dest(), "target key", err.Error(), fix)
		return
	default:
		p.problem(j.Dest(), "target key", err.Error(), "check the role may call kms:DescribeKey in "+j.Region)
		return
	}

	if j.KeyARN != "" {
		prior, err := ebs.FindImagesByFilter(ctx, tc.EC2, []string{"self"}, map[string]string{
			"tag:" + TagSourceAMI: j.Source.ImageID, "tag:" + TagKMSKeyARN: j.KeyARN,
		})
		if err != nil {
			p.problem(j.Dest(), "earlier copies", err.Error(), "allow ec2:DescribeImages to "+j.Target.RoleARN)
			return
		}
		for _, img := range prior {
			switch img.State {
			case ec2types.ImageStateAvailable, ec2types.ImageStatePending:
				if j.Existing == "" {
					j.Existing = aws.ToString(img.ImageId)
				}
			case ec2types.ImageStateFailed, ec2types.ImageStateError, ec2types.ImageStateInvalid:
				if aws.ToString(img.Name) == j.Name && j.Failed == "" {
					j.Failed = aws.ToString(img.ImageId)
				}
			}
		}
		if j.Existing != "" {
			j.Failed = "" // a usable copy is reused; the failed one is left alone
		}
	}
	same, err := ebs.FindImagesByName(ctx, tc.EC2, "self", j.Name)
	if err != nil {
		p.problem(j.Dest(), "AMI name", err.Error(), "allow ec2:DescribeImages to "+j.Target.RoleARN)
		return
	}
	for _, img := range same {
		id := aws.ToString(img.ImageId)
		if id == j.Existing || id == j.Failed || img.State == ec2types.ImageStateDeregistered {
			continue
		}
		p.problem(j.Dest(), "AMI name", fmt.Sprintf("the name %q is already in use by %s in account %s", j.Name, id, j.Target.Account),
			"change ami_name (e.g. add {{ timestamp }}) or deregister "+id)
	}
}

// checkGrants asks KMS, with DryRun, whether the source principal may grant
// the target role use of each source key.
func (c *Config) checkGrants(ctx context.Context, p *plan, t *target) {
	for _, src := range p.sources {
		if !sourceUsedBy(p, src, t) {
			continue
		}
		sc := p.sess.Source(src.Region)
		for _, keyARN := range src.SharedKeys {
			_, err := ebs.CreateGrant(ctx, sc.KMS, ebs.GrantSpec{
				KeyARN: keyARN, GranteePrincipal: t.RoleARN, RetiringPrincipal: p.sess.SourcePrincipal,
				Operations: ebs.CrossAccountCopyOps, Name: grantName(src.ImageID, t.Account, shared{launch: true, volume: true}),
				DryRun: true,
			})
			if err == nil {
				continue
			}
			p.problem(t.Account, "source key grant", fmt.Sprintf("%s may not create a grant on %s for %s: %v", p.sess.SourcePrincipal, keyARN, t.RoleARN, err),
				fmt.Sprintf("allow kms:CreateGrant, kms:RetireGrant and kms:DescribeKey on %s to %s in the key policy", keyARN, p.sess.SourcePrincipal))
		}
	}
}

func sourceUsedBy(p *plan, src *source, t *target) bool {
	for _, j := range p.jobs {
		if j.Target == t && j.Source == src {
			return true
		}
	}
	return false
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstNonEmptySlice(vals ...[]string) []string {
	for _, v := range vals {
		if len(v) > 0 {
			return v
		}
	}
	return nil
}
