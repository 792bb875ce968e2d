package copy

// survey.go: finding, in the source account, what earlier runs lent (by
// their leases and grant names), and taking back what dead runs lent.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// survey is what earlier runs left in the source account, as preflight
// found it.
type survey struct {
	now     time.Time
	lease   time.Duration // this run's lease_duration, the measure for runs without a lease
	regions []string      // scanned
	traces  map[string]*trace
}

// trace is what one earlier run left: the resources carrying its lease and
// the grants named after it. A legacy grant (named before leases) is a
// trace of its own.
type trace struct {
	Run       string // "" for a legacy grant
	Template  string
	Expires   time.Time // the latest expiry written; zero when no lease was found
	Images    map[string][]ec2types.Image
	Snapshots map[string][]ec2types.Snapshot
	Grants    []foundGrant
}

// foundGrant is a grant amicrypt-copy made, found on a key.
type foundGrant struct {
	Region string
	ebs.ListedGrant
	Ref grantRef
}

func (s *survey) trace(id string) *trace {
	t, ok := s.traces[id]
	if !ok {
		t = &trace{Run: id, Images: map[string][]ec2types.Image{}, Snapshots: map[string][]ec2types.Snapshot{}}
		s.traces[id] = t
	}
	return t
}

// alive reports whether the run behind t may still be working: its lease
// has not expired or, when no lease of it is left (its resources were
// deleted), one of its grants is younger than a lease. A run writes its
// lease before its first grant, so a live run's grant without a lease is
// at most that young.
func (s *survey) alive(t *trace) bool {
	if !t.Expires.IsZero() {
		return s.now.Before(t.Expires)
	}
	for _, g := range t.Grants {
		if s.now.Sub(g.Created) < s.lease {
			return true
		}
	}
	return false
}

// why says why t counts as dead.
func (s *survey) why(t *trace) string {
	switch {
	case t.Run == "":
		return "a grant named by an earlier version of amicrypt-copy, older than lease_duration"
	case !t.Expires.IsZero():
		return "its lease expired at " + t.Expires.UTC().Format(time.RFC3339)
	default:
		return "no lease of it is left and its grants are older than lease_duration"
	}
}

// templateAlive returns the ID of a live run of the template, "" when none.
func (s *survey) templateAlive(template string) string {
	if s == nil {
		return ""
	}
	for _, id := range slices.Sorted(maps.Keys(s.traces)) {
		if t := s.traces[id]; t.Template == template && t.Run != "" && s.alive(t) {
			return t.Run
		}
	}
	return ""
}

// dead lists the traces of dead runs, by run ID.
func (s *survey) dead() []*trace {
	var out []*trace
	for _, id := range slices.Sorted(maps.Keys(s.traces)) {
		if t := s.traces[id]; !s.alive(t) {
			out = append(out, t)
		}
	}
	return out
}

// leasedByOther returns the live run, other than except, that holds a
// lease on resource id in region: what it lent must stay for it.
func (s *survey) leasedByOther(region, id string, except *trace) string {
	for _, rid := range slices.Sorted(maps.Keys(s.traces)) {
		t := s.traces[rid]
		if t == except || !s.alive(t) {
			continue
		}
		for _, img := range t.Images[region] {
			if aws.ToString(img.ImageId) == id {
				return t.Run
			}
		}
		for _, snap := range t.Snapshots[region] {
			if aws.ToString(snap.SnapshotId) == id {
				return t.Run
			}
		}
	}
	return ""
}

// surveySource looks, in the source account, in every region the run
// touches, for the leases of earlier runs (DescribeImages and
// DescribeSnapshots by tag key) and for the grants amicrypt-copy made on
// this run's source keys and on the keys of leased snapshots (ListGrants).
// A problem is reported when the search can't be made: what a dead run
// lent must not stay lent because nobody could look.
func (c *Config) surveySource(ctx context.Context, p *plan, say func(string, ...any)) *survey {
	s := &survey{now: p.sess.clock.Now(), lease: c.leaseDuration, traces: map[string]*trace{}}
	seen := map[string]bool{}
	for _, src := range p.sources {
		if !seen[src.Region] {
			seen[src.Region] = true
			s.regions = append(s.regions, src.Region)
		}
	}
	sourceRegions := len(s.regions)
	for _, j := range p.jobs {
		if !seen[j.Region] {
			seen[j.Region] = true
			s.regions = append(s.regions, j.Region)
		}
	}
	principal := p.sess.SourcePrincipal
	// The regions are looked at all at once; what was found is then read
	// in their order.
	finds := make([]regionFinds, len(s.regions))
	var g errgroup.Group
	for i, region := range s.regions {
		g.Go(func() error {
			finds[i] = c.findInRegion(ctx, p, region)
			return nil
		})
	}
	_ = g.Wait() // errors are in finds
	for i, region := range s.regions {
		where := "source " + region
		f := finds[i]
		if f.imgErr != nil && i >= sourceRegions {
			// Leases are on source AMIs; another region is looked at for
			// other templates' dead runs, when the source account can.
			say("could not look for earlier runs' leases in %s (%v); a run whose source AMI is there takes them back", region, f.imgErr)
			continue
		}
		if f.imgErr != nil {
			p.problem(where, "earlier runs", fmt.Sprintf("looking for the leases of earlier runs: %v", f.imgErr),
				fixOr(f.imgErr, principal, "ec2:DescribeImages", "*", "check the source principal may call ec2:DescribeImages"))
			continue
		}
		if f.snapErr != nil {
			p.problem(where, "earlier runs", fmt.Sprintf("looking for the leases of earlier runs: %v", f.snapErr),
				fixOr(f.snapErr, principal, "ec2:DescribeSnapshots", "*", "check the source principal may call ec2:DescribeSnapshots"))
			continue
		}
		for _, img := range f.imgs {
			for _, tg := range img.Tags {
				if l, ok := parseLease(aws.ToString(tg.Key), aws.ToString(tg.Value)); ok {
					t := s.trace(l.Run)
					t.Template = l.Template
					if l.Expires.After(t.Expires) {
						t.Expires = l.Expires
					}
					t.Images[region] = append(t.Images[region], img)
				}
			}
		}
		for _, snap := range f.snaps {
			for _, tg := range snap.Tags {
				if l, ok := parseLease(aws.ToString(tg.Key), aws.ToString(tg.Value)); ok {
					t := s.trace(l.Run)
					t.Template = l.Template
					if l.Expires.After(t.Expires) {
						t.Expires = l.Expires
					}
					t.Snapshots[region] = append(t.Snapshots[region], snap)
				}
			}
		}
		for _, keyARN := range f.keys {
			if err := f.grantErr[keyARN]; err != nil {
				p.problem(where, "earlier runs", fmt.Sprintf("looking for grants earlier runs left on %s: %v", keyARN, err),
					fixOr(err, principal, "kms:ListGrants", keyARN, "check the source principal may call kms:ListGrants on "+keyARN))
				continue
			}
			for _, g := range f.grants[keyARN] {
				ref, ok := parseGrantName(g.Name)
				if !ok {
					continue
				}
				id := ref.Run
				if id == "" {
					id = "legacy:" + g.ID
				}
				t := s.trace(id)
				t.Run = ref.Run
				if t.Template == "" {
					t.Template = ref.Template
				}
				t.Grants = append(t.Grants, foundGrant{Region: region, ListedGrant: g, Ref: ref})
			}
		}
	}
	return s
}

// regionFinds is what the survey found in one region of the source
// account: the images and snapshots carrying leases, and the grants on the
// keys of this run's sources there and of the leased snapshots.
type regionFinds struct {
	imgs     []ec2types.Image
	imgErr   error
	snaps    []ec2types.Snapshot
	snapErr  error
	keys     []string // listed, sorted
	grants   map[string][]ebs.ListedGrant
	grantErr map[string]error
}

// findInRegion makes the survey's calls in one region: the leased images
// and snapshots at once, then the grants of every key concerned at once.
func (c *Config) findInRegion(ctx context.Context, p *plan, region string) regionFinds {
	var f regionFinds
	sc := p.sess.Source(region)
	var g errgroup.Group
	g.Go(func() error {
		f.imgs, f.imgErr = ebs.FindOwnImagesWithTagKey(ctx, sc.EC2, TagLeasePrefix+"*")
		return nil
	})
	f.snaps, f.snapErr = ebs.FindOwnSnapshotsWithTagKey(ctx, sc.EC2, TagLeasePrefix+"*")
	_ = g.Wait()
	if f.imgErr != nil || f.snapErr != nil {
		return f
	}
	keys := map[string]bool{}
	for _, snap := range f.snaps {
		for _, tg := range snap.Tags {
			if _, ok := parseLease(aws.ToString(tg.Key), aws.ToString(tg.Value)); ok && aws.ToString(snap.KmsKeyId) != "" {
				keys[aws.ToString(snap.KmsKeyId)] = true
			}
		}
	}
	managed := map[string]bool{}
	for _, src := range p.sources {
		if src.Region != region {
			continue
		}
		for _, k := range append(slices.Clone(src.KeyARNs), src.SharedKeys...) {
			keys[k] = true
		}
		if src.AWSManagedKey != "" {
			managed[src.AWSManagedKey] = true
		}
	}
	for k := range managed {
		delete(keys, k) // an AWS-managed key can't be lent: no grant of ours on it
	}
	f.keys = slices.Sorted(maps.Keys(keys))
	f.grants, f.grantErr = map[string][]ebs.ListedGrant{}, map[string]error{}
	var mu sync.Mutex
	var kg errgroup.Group
	for _, keyARN := range f.keys {
		kg.Go(func() error {
			grants, err := ebs.ListGrants(ctx, sc.KMS, keyARN)
			mu.Lock()
			defer mu.Unlock()
			f.grants[keyARN], f.grantErr[keyARN] = grants, err
			return nil
		})
	}
	_ = kg.Wait()
	return f
}

// reclaim takes back what dead runs lent, whatever this run does next:
// their launch and createVolume permissions (as their grant names record
// them), their transit copies, their grants, and then their leases. What a
// live run also leases is left for a later run. Every step is a Record; a
// step that fails is a preflight problem, so the run stops and says what
// is still lent.
func (c *Config) reclaim(ctx context.Context, p *plan, say func(string, ...any)) []Record {
	if p.survey == nil {
		return nil
	}
	var records []Record
	for _, t := range p.survey.dead() {
		run := t.Run
		label := "run " + run
		if run == "" {
			label = "an earlier version's run"
		}
		say("taking back what %s lent from account %s (%s)", label, p.sess.SourceAccount, p.survey.why(t))
		var recs []Record
		done := map[string]bool{}
		add := func(r Record) {
			r.Run, r.Account = run, p.sess.SourceAccount
			recs = append(recs, r)
			say("  %s", r)
		}
		// Permissions first: each grant outlived them, and names them.
		for _, g := range t.Grants {
			sc := p.sess.Source(g.Region)
			if g.Ref.Held.launch && !done["launch/"+g.Ref.Image+"/"+g.Ref.Account] {
				done["launch/"+g.Ref.Image+"/"+g.Ref.Account] = true
				r := Record{Action: actionLaunch, Region: g.Region, Resource: g.Ref.Image, For: []string{g.Ref.Account}}
				if live := p.survey.leasedByOther(g.Region, g.Ref.Image, t); live != "" {
					r.Outcome, r.Error = outcomeLeft, "run "+live+" is working with it; a later run takes it back"
				} else {
					gone, err := ebs.RemoveLaunchPermissions(ctx, sc.EC2, g.Ref.Image, ebs.Sharing{Users: []string{g.Ref.Account}})
					r.settle(gone, err)
				}
				add(r)
			}
			if g.Ref.Held.volume {
				for _, snap := range c.leasedSnapshots(ctx, p, t, g) {
					if done["volume/"+snap+"/"+g.Ref.Account] {
						continue
					}
					done["volume/"+snap+"/"+g.Ref.Account] = true
					r := Record{Action: actionVolume, Region: g.Region, Resource: snap, For: []string{g.Ref.Account}}
					if live := p.survey.leasedByOther(g.Region, snap, t); live != "" {
						r.Outcome, r.Error = outcomeLeft, "run "+live+" is working with it; a later run takes it back"
					} else {
						gone, err := ebs.RemoveCreateVolumePermissions(ctx, sc.EC2, snap, []string{g.Ref.Account})
						r.settle(gone, err)
					}
					add(r)
				}
			}
		}
		removed := map[string]bool{}
		for _, region := range slices.Sorted(maps.Keys(t.Images)) {
			for _, img := range t.Images[region] {
				if ebs.TagMap(img.Tags)[TagTransitFor] == "" {
					continue
				}
				id := aws.ToString(img.ImageId)
				r := Record{Action: actionTransit, Region: region, Resource: id}
				rm, err := ebs.RemoveImage(ctx, p.sess.Source(region).EC2, c.PollingConfig, id, true)
				r.Snapshots = rm.Snapshots
				r.settle(rm.Gone, err)
				if err == nil {
					removed[id] = true
					for _, s := range rm.Snapshots {
						removed[s] = true
					}
				}
				add(r)
			}
		}
		for _, g := range t.Grants {
			r := Record{Action: actionGrant, Region: g.Region, Resource: g.ID, Key: g.KeyARN, For: []string{g.GranteePrincipal}}
			gone, err := ebs.TakeBackGrant(ctx, p.sess.Source(g.Region).KMS, g.Grant)
			r.settle(gone, err)
			add(r)
		}
		failed := slices.ContainsFunc(recs, func(r Record) bool { return r.Outcome == outcomeFailed })
		if !failed && run != "" {
			for _, region := range p.survey.regions {
				var ids []string
				for _, img := range t.Images[region] {
					if id := aws.ToString(img.ImageId); !removed[id] {
						ids = append(ids, id)
					}
				}
				for _, snap := range t.Snapshots[region] {
					if id := aws.ToString(snap.SnapshotId); !removed[id] {
						ids = append(ids, id)
					}
				}
				if len(ids) == 0 {
					continue
				}
				sort.Strings(ids)
				r := Record{Action: actionLease, Region: region, Resource: strings.Join(ids, ",")}
				_, err := ebs.DeleteTags(ctx, p.sess.Source(region).EC2, ids, []string{leaseTagKey(run)})
				r.settle(false, err)
				add(r)
			}
		}
		for _, r := range recs {
			if r.Outcome == outcomeFailed {
				p.problem("source "+r.Region, "dead run "+orDash(run), fmt.Sprintf("could not %s: %s", r.Action, r.Error),
					"fix the permission the error names (see the IAM section of the amicrypt-copy docs) and run again; until then, "+r.describe()+" stays")
			}
		}
		records = append(records, recs...)
	}
	return records
}

// leasedSnapshots are the snapshots under g's key that the dead run t lent
// through g: those carrying its lease in g's region, and those behind the
// AMI g names when it still exists (a legacy grant has no lease).
func (c *Config) leasedSnapshots(ctx context.Context, p *plan, t *trace, g foundGrant) []string {
	var out []string
	for _, s := range t.Snapshots[g.Region] {
		if aws.ToString(s.KmsKeyId) == g.KeyARN {
			out = append(out, aws.ToString(s.SnapshotId))
		}
	}
	var img *ec2types.Image
	for i := range t.Images[g.Region] {
		if aws.ToString(t.Images[g.Region][i].ImageId) == g.Ref.Image {
			img = &t.Images[g.Region][i]
		}
	}
	if img == nil {
		img, _ = ebs.FindImageByID(ctx, p.sess.Source(g.Region).EC2, g.Ref.Image)
	}
	if img != nil {
		for _, id := range ebs.ImageSnapshotIDs(img) {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	sort.Strings(out)
	return out
}
