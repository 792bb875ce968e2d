package copy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"golang.org/x/sync/errgroup"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// plan is everything a run will do, checked before anything changes.
type plan struct {
	sess    *session
	sources []*source // by region
	targets []*target
	jobs    []*job

	// run and template identify this run and its template (lease.go).
	run, template string
	// survey is what earlier runs left in the source account.
	survey *survey

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

// lends reports whether any job copies from src into another account, so
// that src is shared and its keys lent.
func (p *plan) lends(src *source) bool {
	for _, j := range p.jobs {
		if j.Source == src && !j.Target.IsSource && j.Existing == "" {
			return true
		}
	}
	return false
}

// preflightConcurrency bounds how many target accounts (and, in the key
// check, target-source pairs) are checked at once. Each check is a handful
// of calls in a row, mostly in the target's own account-regions, each with
// its own request-rate buckets; the SDK's adaptive retryer paces them under
// each one's rate.
const preflightConcurrency = 64

// reportConcurrency bounds how many account-regions are marked reported
// at once: one DeleteTags each, each in its own account-region.
const reportConcurrency = 128

// regionConcurrency bounds how many regions of one target are checked at
// once.
const regionConcurrency = 8

// preflight plans every copy and checks everything that can be checked
// without changing anything, including that every principal may make every
// call the run will make (DryRun where AWS offers it). It also surveys what
// earlier runs left in the source account. Problems go into the plan; an
// error means a check itself could not run.
func (c *Config) preflight(ctx context.Context, sess *session, amis []sourceAMI, say func(string, ...any)) (*plan, error) {
	p := &plan{sess: sess, run: newRunID()}
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
	var regions []string
	for _, s := range p.sources {
		regions = append(regions, s.Region)
	}
	p.template = templateID(sess.SourceAccount, regions, p.targets, c.AMIName)

	// The source principal's own calls are asked about while the survey
	// looks for what earlier runs left: neither needs the other.
	var access errgroup.Group
	access.Go(func() error {
		c.checkSourceAccess(ctx, p)
		return nil
	})
	p.survey = c.surveySource(ctx, p, say)
	_ = access.Wait()

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(preflightConcurrency)
	for _, t := range p.targets {
		g.Go(func() error { return c.checkTarget(gctx, p, t) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Checks run at once: their findings are put in one order, whatever
	// order they came in.
	slices.SortStableFunc(p.problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Target, b.Target), cmp.Compare(a.Check, b.Check), cmp.Compare(a.Problem, b.Problem))
	})
	return p, nil
}

// checkSource describes a source AMI, its snapshots and keys in the source
// account.
func (c *Config) checkSource(ctx context.Context, p *plan, src *source) {
	where := "source " + src.Region
	sc := p.sess.Source(src.Region)
	principal := p.sess.SourcePrincipal
	img, err := ebs.FindImageByID(ctx, sc.EC2, src.ImageID)
	switch {
	case ebs.IsNotFound(err):
		p.problem(where, "source AMI", fmt.Sprintf("%s does not exist in %s as account %s sees it", src.ImageID, src.Region, p.sess.SourceAccount),
			fmt.Sprintf("an AMI lives in one region: check that %s is in %s (set region to the AMI's region) and that it was not deregistered", src.ImageID, src.Region))
		return
	case err != nil:
		p.problem(where, "source AMI", fmt.Sprintf("%s can't be described by %s: %v", src.ImageID, principal, err),
			fixOr(err, principal, "ec2:DescribeImages", "*", "give amicrypt-copy the credentials of the AMI's owner (region, profile, assume_role)"))
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
	prov := provenance(src, p.sess.SourceAccount, "key", "template")
	for field, configured := range map[string]map[string]string{"tags": c.Tags, "snapshot_tags": c.SnapshotTags} {
		if n := len(copyTags(src.Tags, configured, prov)) + 1; n > maxTags {
			p.problem(where, "tags", fmt.Sprintf("each copy of %s would carry %d tags: the source's %d, %s and amicrypt's %d; AWS allows %d", src.ImageID, n, len(src.Tags), field, len(prov)+1, maxTags),
				"remove tags from the source AMI or from "+field)
		}
	}
	keys := map[string]bool{}
	for _, snapID := range ebs.ImageSnapshotIDs(img) {
		src.SnapshotIDs = append(src.SnapshotIDs, snapID)
		snap, err := ebs.FindSnapshotByID(ctx, sc.EC2, snapID)
		if err != nil {
			p.problem(where, "source snapshot", fmt.Sprintf("snapshot %s of %s: %v", snapID, src.ImageID, err),
				fixOr(err, principal, "ec2:DescribeSnapshots", "*", "check the AMI's snapshots exist"))
			continue
		}
		src.SizeGiB = max(src.SizeGiB, aws.ToInt32(snap.VolumeSize))
		if !aws.ToBool(snap.Encrypted) {
			src.Unencrypted = true
			continue
		}
		keys[aws.ToString(snap.KmsKeyId)] = true
	}
	for _, keyARN := range slices.Sorted(maps.Keys(keys)) {
		k, err := ebs.DescribeKey(ctx, sc.KMS, src.Region, keyARN)
		if err != nil {
			var ke *ebs.KeyError
			fix := "check the source key"
			if errors.As(err, &ke) {
				fix = fixOr(ke.Err, principal, "kms:DescribeKey", keyARN, ke.Detail)
			}
			p.problem(where, "source key", err.Error(), fix)
			continue
		}
		if k.AWSManaged() {
			src.AWSManagedKey = k.ARN
			continue
		}
		src.KeyARNs = append(src.KeyARNs, k.ARN)
	}
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
			fix = fixOr(ke.Err, principal, "kms:DescribeKey", c.TransitKmsKeyID, ke.Detail)
		}
		p.problem(where, "transit key", err.Error(), fix)
		return
	}
	src.TransitKey = tk.ARN
	src.SharedKeys = []string{tk.ARN}
	src.SharedSnaps = nil
}

// maxTags is AWS's limit of tags on one resource.
const maxTags = ebs.MaxTags

// probe is one call preflight makes to learn whether a principal may make
// it: most with DryRun, which AWS answers with DryRunOperation when the call
// would be allowed.
type probe struct {
	principal, action, resource string
	call                        func(context.Context) error
}

// check reports the probe's problem, if any, under target and check. An
// answer that names a missing resource rather than a refusal says nothing
// about the permission: AWS checks some resources before permissions. With
// viaService, the call stands for one AWS makes on the principal's behalf
// (EC2 using a key): only an explicit deny of the direct call proves that
// one refused (ebs.ExplicitDeny).
func (pr probe) check(ctx context.Context, p *plan, target, check string, viaService bool) {
	err := pr.call(ctx)
	switch {
	case err == nil, ebs.IsCode(err, "DryRunOperation", "DryRunOperationException"),
		strings.HasSuffix(ebs.ErrorCode(err), ".NotFound"), ebs.IsCode(err, "NotFoundException", "InvalidGrantIdException"):
		return
	case viaService && !ebs.ExplicitDeny(err):
		if _, denied := ebs.AccessDenied(err); denied {
			return // allowed, if at all, only through EC2: not decidable here
		}
	}
	if fix := accessFix(err, pr.principal, pr.action, pr.resource); fix != "" {
		p.problem(target, check, fmt.Sprintf("%s may not call %s: %v", pr.principal, pr.action, err), fix)
		return
	}
	p.problem(target, check, fmt.Sprintf("checking that %s may call %s: %v", pr.principal, pr.action, err),
		"check "+pr.action+" works for "+pr.principal)
}

// runProbes runs probes, each asking its own question; their problems are
// sorted once preflight ends. viaService is check's. A job's key probes
// run in a row on the job's goroutine (see checkJob); a role's access
// probes, one set per account, at once.
func runProbes(ctx context.Context, p *plan, target, check string, probes []probe, viaService bool) {
	if viaService {
		for _, pr := range probes {
			pr.check(ctx, p, target, check, viaService)
		}
		return
	}
	var g errgroup.Group
	for _, pr := range probes {
		g.Go(func() error {
			pr.check(ctx, p, target, check, viaService)
			return nil
		})
	}
	_ = g.Wait() // problems go to p
}

// probeImage and probeSnapshot are well-formed IDs of nothing, for the
// DryRun probes of calls a role makes on its own images.
const (
	probeImage    = "ami-00000000000000000"
	probeSnapshot = "snap-00000000000000000"
)

// dryRunGrantID is a well-formed grant ID no grant has, for RetireGrant's
// DryRun.
const dryRunGrantID = "0000000000000000000000000000000000000000000000000000000000000000"

// checkSourceAccess checks that the source principal may make every call
// the run makes in the source account: the lease (CreateTags, DeleteTags),
// the shares and their removal, the grants and their retirement, the transit
// copy. Reads the run makes later are made here too.
func (c *Config) checkSourceAccess(ctx context.Context, p *plan) {
	principal := p.sess.SourcePrincipal
	for _, src := range p.sources {
		if src.Name == "" && len(src.SnapshotIDs) == 0 {
			continue // checkSource reported why
		}
		where := "source " + src.Region
		sc := p.sess.Source(src.Region)
		leased := append([]string{src.ImageID}, src.SnapshotIDs...)
		leaseTag := []ec2types.Tag{{Key: aws.String(leaseTagKey(p.run)), Value: aws.String("probe")}}
		probes := []probe{
			{principal, "ec2:CreateTags", src.ImageID, func(ctx context.Context) error {
				_, err := sc.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: leased, Tags: leaseTag, DryRun: aws.Bool(true)})
				return err
			}},
			{principal, "ec2:DeleteTags", src.ImageID, func(ctx context.Context) error {
				_, err := sc.EC2.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: leased, Tags: leaseTag, DryRun: aws.Bool(true)})
				return err
			}},
		}
		if p.lends(src) {
			account := ""
			for _, t := range p.targets {
				if !t.IsSource {
					account = t.Account
					break
				}
			}
			probes = append(probes,
				probe{principal, "ec2:DescribeImageAttribute", src.ImageID, func(ctx context.Context) error {
					_, err := sc.EC2.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(src.ImageID), Attribute: ec2types.ImageAttributeNameLaunchPermission})
					return err
				}},
				probe{principal, "ec2:ModifyImageAttribute", src.ImageID, func(ctx context.Context) error {
					_, err := sc.EC2.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(src.ImageID), DryRun: aws.Bool(true),
						LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{{UserId: aws.String(account)}}}})
					return err
				}},
			)
			for _, keyARN := range src.SharedKeys {
				probes = append(probes,
					probe{principal, "kms:ListGrants", keyARN, func(ctx context.Context) error {
						_, err := sc.KMS.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(keyARN), Limit: aws.Int32(1)})
						return err
					}},
					probe{principal, "kms:RetireGrant", keyARN, func(ctx context.Context) error {
						_, err := sc.KMS.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(keyARN), GrantId: aws.String(dryRunGrantID), DryRun: aws.Bool(true)})
						return err
					}},
				)
			}
			if len(src.SharedSnaps) > 0 {
				snap := src.SharedSnaps[0]
				probes = append(probes,
					probe{principal, "ec2:DescribeSnapshotAttribute", snap, func(ctx context.Context) error {
						_, err := sc.EC2.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(snap), Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission})
						return err
					}},
					probe{principal, "ec2:ModifySnapshotAttribute", snap, func(ctx context.Context) error {
						_, err := sc.EC2.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snap), DryRun: aws.Bool(true),
							CreateVolumePermission: &ec2types.CreateVolumePermissionModifications{Add: []ec2types.CreateVolumePermission{{UserId: aws.String(account)}}}})
						return err
					}},
				)
			}
		}
		if src.TransitKey != "" {
			probes = append(probes,
				probe{principal, "ec2:CopyImage", src.ImageID, func(ctx context.Context) error {
					_, err := sc.EC2.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String(src.ImageID), SourceRegion: aws.String(src.Region),
						Name: aws.String("amicrypt-transit-" + src.ImageID), Encrypted: aws.Bool(true), KmsKeyId: aws.String(src.TransitKey), DryRun: aws.Bool(true)})
					return err
				}},
				probe{principal, "ec2:DeregisterImage", "*", func(ctx context.Context) error {
					_, err := sc.EC2.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(probeImage), DryRun: aws.Bool(true)})
					return err
				}},
			)
			probes = append(probes, probe{principal, "ec2:DeleteSnapshot", "*", func(ctx context.Context) error {
				_, err := sc.EC2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(probeSnapshot), DryRun: aws.Bool(true)})
				return err
			}})
		}
		runProbes(ctx, p, where, "source access", probes, false)
	}
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
			if len(j.Description) > maxDescription {
				p.problem(j.Dest(), "AMI description", fmt.Sprintf("the description renders to %d characters; AWS allows %d", len(j.Description), maxDescription),
					"shorten ami_description (or the source AMI's description, which is the default)")
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

// maxDescription is AWS's limit on an AMI description.
const maxDescription = ebs.MaxDescription

// checkTarget runs every check of one target account: role, regions,
// keys, names, earlier copies, the calls the run will make as the role, and
// the grants on the source keys.
func (c *Config) checkTarget(ctx context.Context, p *plan, t *target) error {
	home := p.sources[0].Region
	tc := p.sess.Target(t.Account, t.RoleARN, t.ExternalID, home)
	// The role's credentials prove it can be assumed: sts:AssumeRole is
	// the check, with no call of its own.
	if _, err := tc.cfg.Credentials.Retrieve(ctx); err != nil {
		p.problem(t.Account, "assume role", fmt.Sprintf("%s can't assume %s: %v", p.sess.SourcePrincipal, t.RoleARN, err),
			fmt.Sprintf("trust %s (or account %s) in the trust policy of %s and allow it sts:AssumeRole in its own IAM policy; set external_id if the role requires one", p.sess.SourcePrincipal, p.sess.SourceAccount, t.RoleARN))
		return nil // nothing else can be checked as this role
	}
	regions, err := tc.EC2.DescribeRegions(ctx, &ec2.DescribeRegionsInput{AllRegions: aws.Bool(true)})
	if err != nil {
		p.problem(t.Account, "regions", fmt.Sprintf("ec2:DescribeRegions as %s: %v", t.RoleARN, err),
			fixOr(err, t.RoleARN, "ec2:DescribeRegions", "*", "check the role may call ec2:DescribeRegions"))
		return nil
	}
	optIn := map[string]string{}
	for _, r := range regions.Regions {
		optIn[aws.ToString(r.RegionName)] = aws.ToString(r.OptInStatus)
	}
	// The grants on the source keys are asked about while the regions are
	// checked; the role's own calls after, as they name a job's key.
	var grants errgroup.Group
	if !t.IsSource {
		grants.Go(func() error {
			c.checkGrants(ctx, p, t)
			return nil
		})
	}
	// The regions of a target are checked at once: each check is its own
	// job's (its key, name and earlier copies).
	var g errgroup.Group
	g.SetLimit(regionConcurrency)
	for _, j := range p.jobs {
		if j.Target != t {
			continue
		}
		g.Go(func() error {
			c.checkRegion(ctx, p, t, j, optIn)
			return nil
		})
	}
	_ = g.Wait() // checks report through p.problem
	c.checkTargetAccess(ctx, p, t)
	_ = grants.Wait()
	return nil
}

// checkRegion checks that a job's region is one the target account has
// enabled, then the job itself.
func (c *Config) checkRegion(ctx context.Context, p *plan, t *target, j *job, optIn map[string]string) {
	{
		status, known := optIn[j.Region]
		switch {
		case !known:
			p.problem(j.Dest(), "region", fmt.Sprintf("%s is not a region AWS lists for account %s (DescribeRegions, all regions)", j.Region, t.Account),
				fmt.Sprintf("check the spelling of %q in regions; regions AWS lists: %s", j.Region, strings.Join(slices.Sorted(maps.Keys(optIn)), ", ")))
			j.regionRefused = true
			return
		case status == "not-opted-in":
			p.problem(j.Dest(), "region", fmt.Sprintf("%s is an opt-in region not enabled in account %s (opt-in status %q), so it can receive no copy", j.Region, t.Account, status),
				fmt.Sprintf("enable %s in account %s (Account settings, AWS Regions) or remove it from regions", j.Region, t.Account))
			j.regionRefused = true
			return
		}
		if status, ok := optIn[j.Source.Region]; ok && status == "not-opted-in" {
			p.problem(j.Dest(), "region", fmt.Sprintf("the source region %s is not enabled in account %s, which must copy from it", j.Source.Region, t.Account),
				fmt.Sprintf("enable %s in account %s", j.Source.Region, t.Account))
			j.regionRefused = true
			return
		}
	}
	c.checkJob(ctx, p, j)
	c.checkInstanceStoreKey(ctx, p, j)
}

// checkJob checks the target key, name and earlier copies of one job, one
// call after another: the regions of a target, and 64 targets, are checked
// at once, which keeps hundreds of calls in flight. A goroutine per call
// instead made each grow its stack anew through the SDK's deep call chain:
// at 100 accounts x 5 regions, a quarter of the plugin's CPU in the first
// half-second of preflight; the first copy began 2 s later (bench/README.md,
// B2).
func (c *Config) checkJob(ctx context.Context, p *plan, j *job) {
	if j.KeyRef == "" {
		return
	}
	tc := p.sess.Target(j.Target.Account, j.Target.RoleARN, j.Target.ExternalID, j.Region)
	var unreported, same []ec2types.Image
	var unreportedErr, sameErr error
	unreported, unreportedErr = ebs.FindImagesByFilter(ctx, tc.EC2, []string{"self"}, map[string]string{
		"tag:" + TagTemplate: p.template, "tag:" + TagUnreported: "true",
	})
	same, sameErr = ebs.FindImagesByName(ctx, tc.EC2, "self", j.Name)
	// The lookups' errors are reported below, in the order the checks
	// depend on.
	keyOK := c.checkTargetKey(ctx, p, j, tc)
	if !keyOK || !c.checkDeadCopies(p, j, unreported, unreportedErr) {
		return
	}
	c.checkName(p, j, same, sameErr)
}

// checkTargetKey checks the job's target key as the role and, once it is
// known, the key's use and the copies earlier runs made under it. It
// returns false when it reported a problem that ends the job's checks.
func (c *Config) checkTargetKey(ctx context.Context, p *plan, j *job, tc *clients) bool {
	role := j.Target.RoleARN
	key, err := ebs.CheckKey(ctx, tc.KMS, j.KeyRef, ebs.KeyRequirements{Region: j.Region, Account: j.Target.Account})
	var ke *ebs.KeyError
	switch {
	case err == nil:
		j.KeyARN = key.ARN
	case errors.As(err, &ke) && ke.Problem == ebs.KeyNotFound && c.CreateMissingKeys:
		j.CreateKey = true
		return true
	case errors.As(err, &ke):
		fix := ke.Detail
		switch ke.Problem {
		case ebs.KeyWrongAccount:
			fix = fmt.Sprintf("use a key account %s owns (an alias name such as alias/NAME resolves in that account); never the source account's key", j.Target.Account)
		case ebs.KeyNotFound:
			fix = fmt.Sprintf("create a customer-managed key with alias %s in account %s, %s, or set create_missing_keys = true", j.KeyRef, j.Target.Account, j.Region)
		case ebs.KeyAccessDenied:
			fix = fixOr(ke.Err, role, "kms:DescribeKey", j.KeyRef, "allow kms:DescribeKey on the key to "+role)
		}
		p.problem(j.Dest(), "target key", err.Error(), fix)
		return false
	default:
		p.problem(j.Dest(), "target key", err.Error(), fixOr(err, role, "kms:DescribeKey", j.KeyRef, "check the role may call kms:DescribeKey in "+j.Region))
		return false
	}

	var prior []ec2types.Image
	var priorErr error
	prior, priorErr = ebs.FindImagesByFilter(ctx, tc.EC2, []string{"self"}, map[string]string{
		"tag:" + TagSourceAMI: j.Source.ImageID, "tag:" + TagKMSKeyARN: j.KeyARN,
	})
	c.checkTargetKeyUse(ctx, p, j, tc)
	if priorErr != nil {
		p.problem(j.Dest(), "earlier copies", priorErr.Error(), fixOr(priorErr, role, "ec2:DescribeImages", "*", "check the role may call ec2:DescribeImages"))
		return false
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
	return true
}

// checkName reports the images of the target account, other than the ones
// the job reuses, replaces or removes, that hold the job's AMI name.
func (c *Config) checkName(p *plan, j *job, same []ec2types.Image, err error) {
	if err != nil {
		p.problem(j.Dest(), "AMI name", err.Error(), fixOr(err, j.Target.RoleARN, "ec2:DescribeImages", "*", "check the role may call ec2:DescribeImages"))
		return
	}
	for _, img := range same {
		id := aws.ToString(img.ImageId)
		if id == j.Existing || id == j.Failed || img.State == ec2types.ImageStateDeregistered {
			continue
		}
		if i := slices.IndexFunc(j.DeadCopies, func(d deadCopy) bool { return d.ImageID == id }); i >= 0 {
			j.DeadCopies[i].HoldsName = true
			if c.OnFailure == OnFailureRollback {
				continue // removed before the copy is made
			}
			d := j.DeadCopies[i]
			p.problem(j.Dest(), "AMI name", fmt.Sprintf("the name %q is held by %s, a copy of %s that a killed run of this template made and never reported", j.Name, id, d.SourceAMI),
				fmt.Sprintf("deregister %s in account %s (on_failure = %q keeps such copies; with %q amicrypt-copy removes them), or change ami_name", id, j.Target.Account, OnFailureKeep, OnFailureRollback))
			continue
		}
		p.problem(j.Dest(), "AMI name", fmt.Sprintf("the name %q is already in use by %s in account %s", j.Name, id, j.Target.Account),
			"change ami_name (e.g. add {{ timestamp }}) or deregister "+id)
	}
}

// checkDeadCopies sorts the copies runs of this template made and never
// reported (tagged amicrypt:unreported), other than the ones this job
// reuses or replaces. When no run of this template is alive they are dead
// runs' copies (j.DeadCopies); a live run's are left alone. It returns
// false when it reported a problem.
func (c *Config) checkDeadCopies(p *plan, j *job, unreported []ec2types.Image, err error) bool {
	if err != nil {
		p.problem(j.Dest(), "earlier copies", err.Error(), fixOr(err, j.Target.RoleARN, "ec2:DescribeImages", "*", "check the role may call ec2:DescribeImages"))
		return false
	}
	live := p.survey.templateAlive(p.template)
	for _, img := range unreported {
		id := aws.ToString(img.ImageId)
		if id == j.Existing || id == j.Failed || img.State == ec2types.ImageStateDeregistered {
			continue
		}
		tags := ebs.TagMap(img.Tags)
		if live != "" {
			if aws.ToString(img.Name) == j.Name {
				p.problem(j.Dest(), "AMI name", fmt.Sprintf("the name %q is held by %s, a copy that run %s of this template is making now", j.Name, id, live),
					"wait for that run to finish, or change ami_name")
			}
			continue
		}
		j.DeadCopies = append(j.DeadCopies, deadCopy{ImageID: id, SourceAMI: tags[TagSourceAMI], Name: aws.ToString(img.Name), State: string(img.State)})
	}
	return true
}

// checkTargetKeyUse checks, as the role, the key operations EC2 performs
// on its behalf with the target key: DescribeKey (CheckKey did it),
// GenerateDataKeyWithoutPlaintext and CreateGrant (DryRun).
func (c *Config) checkTargetKeyUse(ctx context.Context, p *plan, j *job, tc *clients) {
	role := j.Target.RoleARN
	probes := []probe{
		{role, "kms:GenerateDataKeyWithoutPlaintext", j.KeyARN, func(ctx context.Context) error {
			_, err := tc.KMS.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{
				KeyId: aws.String(j.KeyARN), KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: map[string]string{"amicrypt:check": p.run},
			})
			return err
		}},
		{role, "kms:CreateGrant", j.KeyARN, func(ctx context.Context) error {
			_, err := ebs.CreateGrant(ctx, tc.KMS, ebs.GrantSpec{KeyARN: j.KeyARN, GranteePrincipal: role,
				Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt}, DryRun: true})
			return err
		}},
	}
	runProbes(ctx, p, j.Dest(), "target key", probes, true)
}

// checkTargetAccess checks that the role may make the EC2 calls the run
// makes as it: the copy and its tags, the read-back, the report (removing
// amicrypt:unreported), the rollback, and what follows a copy.
func (c *Config) checkTargetAccess(ctx context.Context, p *plan, t *target) {
	var j *job
	for _, cand := range p.jobs {
		if cand.Target == t && cand.Source.Name != "" && !cand.regionRefused {
			j = cand
			break
		}
	}
	if j == nil {
		return
	}
	role := t.RoleARN
	tc := p.sess.Target(t.Account, role, t.ExternalID, j.Region)
	src := j.Source
	tag := []ec2types.Tag{{Key: aws.String(TagUnreported)}}
	// Calls the role makes on its own copies are asked with DryRun about an
	// image and a snapshot that exist nowhere: a trail showing a target role
	// "deregistering" the source AMI would alarm its readers. Where AWS
	// looks for the resource before the permission, the answer is
	// not-found, which proves nothing and passes.
	probes := []probe{
		{role, "ec2:CopyImage", src.ImageID, func(ctx context.Context) error {
			in := &ec2.CopyImageInput{SourceImageId: aws.String(src.ImageID), SourceRegion: aws.String(src.Region), Name: aws.String(j.Name),
				Encrypted: aws.Bool(true), DryRun: aws.Bool(true)}
			if j.KeyARN != "" {
				in.KmsKeyId = aws.String(j.KeyARN)
			}
			_, err := tc.EC2.CopyImage(ctx, in)
			return err
		}},
		{role, "ec2:CreateTags", "*", func(ctx context.Context) error {
			_, err := tc.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{probeImage}, Tags: []ec2types.Tag{{Key: aws.String(TagUnreported), Value: aws.String("true")}}, DryRun: aws.Bool(true)})
			return err
		}},
		{role, "ec2:DeleteTags", "*", func(ctx context.Context) error {
			_, err := tc.EC2.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{probeImage}, Tags: tag, DryRun: aws.Bool(true)})
			return err
		}},
		{role, "ec2:DescribeSnapshots", "*", func(ctx context.Context) error {
			_, err := tc.EC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"},
				Filters: []ec2types.Filter{{Name: aws.String("tag:" + TagTemplate), Values: []string{p.template}}}, MaxResults: aws.Int32(5)})
			return err
		}},
		{role, "ec2:DeregisterImage", "*", func(ctx context.Context) error {
			_, err := tc.EC2.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(probeImage), DryRun: aws.Bool(true)})
			return err
		}},
		{role, "ec2:DeleteSnapshot", "*", func(ctx context.Context) error {
			_, err := tc.EC2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(probeSnapshot), DryRun: aws.Bool(true)})
			return err
		}},
	}
	if !t.Sharing.Empty() {
		probes = append(probes, probe{role, "ec2:ModifyImageAttribute", "*", func(ctx context.Context) error {
			_, err := tc.EC2.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(probeImage), DryRun: aws.Bool(true),
				LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{{UserId: aws.String(t.Account)}}}})
			return err
		}})
	}
	if c.DeprecateAt != "" {
		at, _ := time.Parse(time.RFC3339, c.DeprecateAt)
		probes = append(probes, probe{role, "ec2:EnableImageDeprecation", "*", func(ctx context.Context) error {
			_, err := tc.EC2.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{ImageId: aws.String(probeImage), DeprecateAt: aws.Time(at), DryRun: aws.Bool(true)})
			return err
		}})
	}
	if c.DeregistrationProtection.Enabled {
		probes = append(probes, probe{role, "ec2:EnableImageDeregistrationProtection", "*", func(ctx context.Context) error {
			_, err := tc.EC2.EnableImageDeregistrationProtection(ctx, &ec2.EnableImageDeregistrationProtectionInput{ImageId: aws.String(probeImage), DryRun: aws.Bool(true)})
			return err
		}})
	}
	if c.GrantAutoscalingRole && j.KeyARN != "" {
		probes = append(probes, probe{role, "kms:ListGrants", j.KeyARN, func(ctx context.Context) error {
			_, err := tc.KMS.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(j.KeyARN), Limit: aws.Int32(1)})
			return err
		}})
	}
	runProbes(ctx, p, t.Account, "role access", probes, false)
}

// checkGrants asks KMS, with DryRun, whether the source principal may grant
// the target role use of each source key, and whether the role's own IAM
// policy refuses the source key (the grant only helps where it doesn't).
func (c *Config) checkGrants(ctx context.Context, p *plan, t *target) {
	for _, src := range p.sources {
		if !sourceUsedBy(p, src, t) {
			continue
		}
		sc := p.sess.Source(src.Region)
		tc := p.sess.Target(t.Account, t.RoleARN, t.ExternalID, src.Region)
		for _, keyARN := range src.SharedKeys {
			_, err := ebs.CreateGrant(ctx, sc.KMS, ebs.GrantSpec{
				KeyARN: keyARN, GranteePrincipal: t.RoleARN, RetiringPrincipal: p.sess.SourcePrincipal,
				Operations: ebs.CrossAccountCopyOps, Name: grantName(p.run, p.template, t.Account, src.Shared, shared{launch: true, volume: true}),
				DryRun: true,
			})
			if err != nil {
				p.problem(t.Account, "source key grant", fmt.Sprintf("%s may not create a grant on %s for %s: %v", p.sess.SourcePrincipal, keyARN, t.RoleARN, err),
					fixOr(err, p.sess.SourcePrincipal, "kms:CreateGrant", keyARN, fmt.Sprintf("allow kms:CreateGrant, kms:RetireGrant and kms:DescribeKey on %s to %s", keyARN, p.sess.SourcePrincipal)))
			}
			// Before the grant, the key policy refuses the role: expected. Its
			// own IAM policy must not.
			_, err = tc.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyARN)})
			if by, denied := ebs.AccessDenied(err); denied && by == ebs.DeniedByIdentityPolicy {
				p.problem(t.Account, "source key grant", fmt.Sprintf("%s may not use the source key %s: %v", t.RoleARN, keyARN, err),
					accessFix(err, t.RoleARN, "kms:DescribeKey, kms:Decrypt, kms:CreateGrant, kms:ReEncryptFrom and kms:GenerateDataKeyWithoutPlaintext", keyARN))
			}
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
