// Package checker is the emulator's invariant checker: after a run, tests,
// e2e runs and benchmarks ask it (or GET /_emu/check) to prove nothing
// unencrypted was registered, nothing leaked and no copy depends on another
// account's key.
package checker

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/ec2"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/kms"
)

// Check names, as they appear in Finding.Check and Options.Ignore.
const (
	UnencryptedAMI        = "unencrypted-ami"
	LeftoverInstance      = "leftover-instance"
	LeftoverKeyPair       = "leftover-key-pair"
	LeftoverSecurityGroup = "leftover-security-group"
	LeftoverLaunchTmpl    = "leftover-launch-template"
	LeftoverFleet         = "leftover-fleet"
	OpenSpotRequest       = "open-spot-request"
	OrphanSnapshot        = "orphan-snapshot"
	LeftoverGrant         = "leftover-grant"
	LeftoverLaunchPerm    = "leftover-launch-permission"
	LeftoverVolumePerm    = "leftover-create-volume-permission"
	ForeignKeyCopy        = "foreign-key-copy"
	// InstanceContext: a KMS call whose encryption context names an
	// instance came from someone else than that instance's role.
	InstanceContext = "instance-context"
)

// Options select what a check looks at.
type Options struct {
	// Principal limits the check to what one principal did: a user ARN, a
	// role ARN (matches its sessions), an assumed-role session ARN, or a
	// 12-digit account ID. Empty means everybody.
	Principal string `json:"principal,omitempty"`
	// Account limits the check to resources of one account.
	Account string `json:"account,omitempty"`
	// SinceSeq is the baseline: only what happened after audit entry
	// SinceSeq counts (take it with CheckMark before the run).
	SinceSeq int `json:"since_seq,omitempty"`
	// Since is a baseline by emulator time; the later of the two applies.
	Since time.Time `json:"since,omitempty"`
	// Ignore lists check names not to report (e.g. a run that shares its
	// AMI on purpose ignores LeftoverLaunchPerm).
	Ignore []string `json:"ignore,omitempty"`
}

// Finding is one broken invariant.
type Finding struct {
	Check     string `json:"check"`
	Account   string `json:"account,omitempty"`
	Region    string `json:"region,omitempty"`
	Resource  string `json:"resource"`
	Principal string `json:"principal,omitempty"`
	Message   string `json:"message"`
}

// Report is the checker's answer: Pass is true when there are no
// findings. CallCounts are the API calls since the baseline, by action,
// account and region (not a pass/fail criterion).
type Report struct {
	Pass       bool             `json:"pass"`
	Findings   []Finding        `json:"findings"`
	CallCounts []core.CallCount `json:"call_counts"`
	TotalCalls int              `json:"total_calls"`
	Options    Options          `json:"options"`
	CheckedAt  time.Time        `json:"checked_at"`
}

// String is the report for humans: PASS or FAIL and one line per finding.
func (r Report) String() string {
	var b strings.Builder
	if r.Pass {
		fmt.Fprintf(&b, "PASS: no findings (%d API calls checked)\n", r.TotalCalls)
	} else {
		fmt.Fprintf(&b, "FAIL: %d finding(s) (%d API calls checked)\n", len(r.Findings), r.TotalCalls)
	}
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "  [%s] %s\n", f.Check, f.Message)
	}
	return b.String()
}

// Source is what the checker reads: the audit, the EC2 resources and the
// KMS grants.
type Source struct {
	Audit     *core.Audit
	Inventory func() ec2.Inventory
	Grants    func() []kms.GrantInfo
	Now       func() time.Time
}

// OptionsFromQuery reads check options from GET /_emu/check's query:
// principal, account, since_seq, since, ignore (comma-separated).
func OptionsFromQuery(q url.Values) (Options, error) {
	opts := Options{Principal: q.Get("principal"), Account: q.Get("account")}
	if s := q.Get("since_seq"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return opts, fmt.Errorf("since_seq=%q: want a non-negative audit sequence number", s)
		}
		opts.SinceSeq = n
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return opts, fmt.Errorf("since=%q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", s)
		}
		opts.Since = t
	}
	if s := q.Get("ignore"); s != "" {
		opts.Ignore = strings.Split(s, ",")
	}
	return opts, nil
}

// Check runs every invariant over the state and the audit.
func Check(src Source, opts Options) Report {
	since := opts.Since
	if at, ok := src.Audit.At(opts.SinceSeq); ok && at.Time.After(since) {
		since = at.Time
	}
	ck := checker{src: src, inv: src.Inventory(), opts: opts, since: since}
	ck.unencryptedAMIs()
	ck.leftoverInstances()
	ck.leftoverKeyPairs()
	ck.leftoverSecurityGroups()
	ck.leftoverLaunchTemplates()
	ck.leftoverFleets()
	ck.openSpotRequests()
	ck.orphanSnapshots()
	ck.leftoverGrants()
	ck.leftoverPermissions()
	ck.foreignKeyCopies()
	ck.instanceContexts()

	report := Report{Findings: []Finding{}, Options: opts, CheckedAt: src.Now()}
	for _, f := range ck.findings {
		if !slices.Contains(opts.Ignore, f.Check) {
			report.Findings = append(report.Findings, f)
		}
	}
	sort.SliceStable(report.Findings, func(i, j int) bool {
		a, b := report.Findings[i], report.Findings[j]
		if a.Check != b.Check {
			return a.Check < b.Check
		}
		return a.Resource < b.Resource
	})
	report.Pass = len(report.Findings) == 0
	report.CallCounts, report.TotalCalls = principalCallCounts(src.Audit, opts)
	if report.CallCounts == nil {
		report.CallCounts = []core.CallCount{}
	}
	return report
}

// principalCallCounts counts calls made by a principal (or its role's
// sessions) after the baseline.
func principalCallCounts(audit *core.Audit, opts Options) ([]core.CallCount, int) {
	var made []core.AuditEntry
	for _, a := range audit.Entries(core.AuditFilter{SinceSeq: opts.SinceSeq, Account: opts.Account}) {
		if principalMatches(a.Principal, opts.Principal) || principalMatches(a.PrincipalIAM, opts.Principal) {
			made = append(made, a)
		}
	}
	return core.CountCalls(made), len(made)
}

var assumedRolePattern = regexp.MustCompile(`^arn:aws:sts::([0-9]{12}):assumed-role/([^/]+)/`)

// principalMatches reports whether the principal that made something
// (got) is the one asked about (want).
func principalMatches(got, want string) bool {
	switch {
	case want == "" || got == want:
		return true
	case got == "":
		return false
	case core.IsAccountID(want):
		return core.ARNAccount(got) == want
	}
	if m := assumedRolePattern.FindStringSubmatch(got); m != nil {
		return want == core.RoleARN(m[1], m[2])
	}
	return false
}

type checker struct {
	src      Source
	inv      ec2.Inventory
	opts     Options
	since    time.Time
	findings []Finding
}

func (ck *checker) add(f Finding) { ck.findings = append(ck.findings, f) }

// stillGranted reports whether a permission once added for grantee ("all"
// meaning public) is still on a resource with these public flag and users.
func stillGranted(grantee string, public bool, users []string) bool {
	return grantee == "all" && public || slices.Contains(users, grantee)
}

// selected reports whether a resource of account made by principal at t
// is in scope.
func (ck *checker) selected(account, principal string, t time.Time) bool {
	if ck.opts.Account != "" && account != ck.opts.Account {
		return false
	}
	if !principalMatches(principal, ck.opts.Principal) {
		return false
	}
	return ck.since.IsZero() || t.After(ck.since)
}

// (1) AMIs registered with an unencrypted EBS snapshot, from the history
// kept at registration time (a deregistered AMI still counts).
func (ck *checker) unencryptedAMIs() {
	for _, r := range ck.inv.Registrations {
		if len(r.Unencrypted) == 0 || !ck.selected(r.Account, r.Principal, r.Time) {
			continue
		}
		ck.add(Finding{Check: UnencryptedAMI, Account: r.Account, Region: r.Region, Resource: r.ImageID, Principal: r.Principal,
			Message: fmt.Sprintf("%s made AMI %s in %s/%s with %s from unencrypted snapshot(s) %s at %s",
				r.Principal, r.ImageID, r.Account, r.Region, r.Action, strings.Join(r.Unencrypted, ", "), ec2.EC2Time(r.Time))})
	}
}

// (2) leftovers.
func (ck *checker) leftoverInstances() {
	for _, inst := range ck.inv.Instances {
		if !ck.selected(inst.Owner, inst.Principal, inst.Launched) || inst.Terminating {
			continue
		}
		ck.add(Finding{Check: LeftoverInstance, Account: inst.Owner, Region: inst.Region, Resource: inst.ID, Principal: inst.Principal,
			Message: fmt.Sprintf("instance %s in %s/%s launched by %s is %s, not terminated", inst.ID, inst.Owner, inst.Region, inst.Principal, inst.State)})
	}
}

func (ck *checker) leftoverKeyPairs() {
	for _, k := range ck.inv.KeyPairs {
		if !ck.selected(k.Owner, k.Principal, k.Created) {
			continue
		}
		ck.add(Finding{Check: LeftoverKeyPair, Account: k.Owner, Region: k.Region, Resource: k.ID, Principal: k.Principal,
			Message: fmt.Sprintf("key pair %q (%s) in %s/%s created by %s still exists", k.Name, k.ID, k.Owner, k.Region, k.Principal)})
	}
}

func (ck *checker) leftoverSecurityGroups() {
	for _, sg := range ck.inv.SecurityGroups {
		if sg.Default || sg.Seeded || sg.Principal == "" {
			continue
		}
		created := ck.createdAt(sg.ID)
		if !ck.selected(sg.Owner, sg.Principal, created) {
			continue
		}
		ck.add(Finding{Check: LeftoverSecurityGroup, Account: sg.Owner, Region: sg.Region, Resource: sg.ID, Principal: sg.Principal,
			Message: fmt.Sprintf("security group %q (%s) in %s/%s created by %s still exists", sg.Name, sg.ID, sg.Owner, sg.Region, sg.Principal)})
	}
}

func (ck *checker) leftoverLaunchTemplates() {
	for _, lt := range ck.inv.LaunchTemplates {
		if !ck.selected(lt.Owner, lt.Principal, lt.Created) {
			continue
		}
		ck.add(Finding{Check: LeftoverLaunchTmpl, Account: lt.Owner, Region: lt.Region, Resource: lt.ID, Principal: lt.Principal,
			Message: fmt.Sprintf("launch template %q (%s) in %s/%s created by %s still exists", lt.Name, lt.ID, lt.Owner, lt.Region, lt.Principal)})
	}
}

// leftoverFleets finds EC2 Fleets not deleted that still hold live
// instances. A fleet of type instant is a one-time request: once its
// instances are terminated nothing of it runs, so (checker convention) it
// is no leak even undeleted, as amazon-ebs leaves its spot fleets.
func (ck *checker) leftoverFleets() {
	for _, f := range ck.inv.Fleets {
		if f.Deleted || len(f.LiveInstances) == 0 || !ck.selected(f.Owner, f.Principal, f.Created) {
			continue
		}
		ck.add(Finding{Check: LeftoverFleet, Account: f.Owner, Region: f.Region, Resource: f.ID, Principal: f.Principal,
			Message: fmt.Sprintf("EC2 Fleet %s (%s) in %s/%s created by %s is not deleted and still has instance(s) %s",
				f.ID, f.Type, f.Owner, f.Region, f.Principal, strings.Join(f.LiveInstances, ", "))})
	}
}

// openSpotRequests finds spot instance requests still open or active: not
// cancelled, and their instance not terminated.
func (ck *checker) openSpotRequests() {
	for _, r := range ck.inv.SpotRequests {
		if (r.State != "open" && r.State != "active") || !ck.selected(r.Owner, r.Principal, r.Created) {
			continue
		}
		ck.add(Finding{Check: OpenSpotRequest, Account: r.Owner, Region: r.Region, Resource: r.ID, Principal: r.Principal,
			Message: fmt.Sprintf("spot instance request %s in %s/%s made by %s is %s (instance %s), not cancelled or closed", r.ID, r.Owner, r.Region, r.Principal, r.State, r.InstanceID)})
	}
}

// createdAt finds the audit time of the call that created a resource (its
// ID is in the call's notes); zero when unknown.
func (ck *checker) createdAt(id string) time.Time {
	if a, ok := ck.src.Audit.LastNoting(id); ok {
		return a.Time
	}
	return time.Time{}
}

func (ck *checker) orphanSnapshots() {
	used := map[string]bool{}
	for _, img := range ck.inv.Images {
		for _, id := range img.SnapshotIDs {
			used[id] = true
		}
	}
	for _, s := range ck.inv.Snapshots {
		if s.Seeded || used[s.ID] || !ck.selected(s.Owner, s.Principal, s.Started) {
			continue
		}
		ck.add(Finding{Check: OrphanSnapshot, Account: s.Owner, Region: s.Region, Resource: s.ID, Principal: s.Principal,
			Message: fmt.Sprintf("snapshot %s in %s/%s (%s, encrypted=%t) made by %s is behind no AMI", s.ID, s.Owner, s.Region, s.State, s.Encrypted, s.Principal)})
	}
}

func (ck *checker) leftoverGrants() {
	for _, g := range ck.src.Grants() {
		if ck.opts.Account != "" && g.KeyAccount != ck.opts.Account && core.ARNAccount(g.GranteePrincipal) != ck.opts.Account {
			continue
		}
		if !principalMatches(g.IssuedBy, ck.opts.Principal) || (!ck.since.IsZero() && !g.Created.After(ck.since)) {
			continue
		}
		ck.add(Finding{Check: LeftoverGrant, Account: g.KeyAccount, Region: g.Region, Resource: g.GrantID, Principal: g.IssuedBy,
			Message: fmt.Sprintf("KMS grant %s on %s for %s (%s) created by %s was never retired or revoked",
				g.GrantID, g.KeyARN, g.GranteePrincipal, strings.Join(g.Operations, ","), g.IssuedBy)})
	}
}

// leftoverPermissions finds launch and createVolume permissions added
// after the baseline that are still in place.
func (ck *checker) leftoverPermissions() {
	seen := map[string]bool{}
	for _, a := range ck.src.Audit.Entries(core.AuditFilter{Service: "ec2", SinceSeq: ck.opts.SinceSeq, Outcome: "ok"}) {
		if a.Action != "ModifyImageAttribute" && a.Action != "ModifySnapshotAttribute" {
			continue
		}
		if !ck.selected(a.Account, a.Principal, a.Time) && !ck.selected(a.Account, a.PrincipalIAM, a.Time) {
			continue
		}
		for note, id := range a.Notes {
			var grantee string
			var isImage bool
			switch {
			case strings.HasPrefix(note, "launchPermission.add."):
				grantee, isImage = strings.TrimPrefix(note, "launchPermission.add."), true
			case strings.HasPrefix(note, "createVolumePermission.add."):
				grantee = strings.TrimPrefix(note, "createVolumePermission.add.")
			default:
				continue
			}
			key := id + "|" + grantee
			if seen[key] {
				continue
			}
			seen[key] = true
			if isImage {
				img, ok := ck.image(id)
				if !ok || !stillGranted(grantee, img.Public, img.LaunchUsers) {
					continue
				}
				ck.add(Finding{Check: LeftoverLaunchPerm, Account: img.Owner, Region: img.Region, Resource: id, Principal: a.Principal,
					Message: fmt.Sprintf("AMI %s in %s/%s still has the launch permission for %s that %s added", id, img.Owner, img.Region, grantee, a.Principal)})
				continue
			}
			s, ok := ck.snapshot(id)
			if !ok || !stillGranted(grantee, s.Public, s.CreateVolumeUsers) {
				continue
			}
			ck.add(Finding{Check: LeftoverVolumePerm, Account: s.Owner, Region: s.Region, Resource: id, Principal: a.Principal,
				Message: fmt.Sprintf("snapshot %s in %s/%s still has the createVolumePermission for %s that %s added", id, s.Owner, s.Region, grantee, a.Principal)})
		}
	}
}

// (3) copies encrypted under a key another account owns.
func (ck *checker) foreignKeyCopies() {
	reported := map[string]bool{}
	for _, r := range ck.inv.Registrations {
		if len(r.ForeignKeys) == 0 || r.Action != "CopyImage" || !ck.selected(r.Account, r.Principal, r.Time) {
			continue
		}
		reported[r.ImageID] = true
		ck.add(Finding{Check: ForeignKeyCopy, Account: r.Account, Region: r.Region, Resource: r.ImageID, Principal: r.Principal,
			Message: fmt.Sprintf("AMI copy %s in account %s (%s) is encrypted under key(s) of another account: %s",
				r.ImageID, r.Account, r.Region, strings.Join(r.ForeignKeys, ", "))})
	}
	for _, s := range ck.inv.Snapshots {
		if !s.Copy || !s.Encrypted || reported[s.ImageCopy] || !ck.selected(s.Owner, s.Principal, s.Started) {
			continue
		}
		if a := core.ARNAccount(s.KmsKeyARN); a != "" && a != s.Owner {
			ck.add(Finding{Check: ForeignKeyCopy, Account: s.Owner, Region: s.Region, Resource: s.ID, Principal: s.Principal,
				Message: fmt.Sprintf("snapshot copy %s in account %s (%s) is encrypted under %s, a key of account %s", s.ID, s.Owner, s.Region, s.KmsKeyARN, a)})
		}
	}
}

func (ck *checker) image(id string) (ec2.ImageView, bool) {
	for _, img := range ck.inv.Images {
		if img.ID == id {
			return img, true
		}
	}
	return ec2.ImageView{}, false
}

func (ck *checker) snapshot(id string) (ec2.SnapshotView, bool) {
	for _, s := range ck.inv.Snapshots {
		if s.ID == id {
			return s, true
		}
	}
	return ec2.SnapshotView{}, false
}

// instanceARNPattern finds instance ARNs in an encryption context.
var instanceARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:ec2:[a-z0-9-]+:([0-9]{12}):instance/(i-[0-9a-f]+)$`)

// (4) KMS calls whose encryption context names an instance must come from
// that instance's role session, named after it: a data key bound to an
// instance is unwrapped by that instance only.
func (ck *checker) instanceContexts() {
	roles := map[string]string{}
	for _, inst := range ck.inv.Instances {
		roles[inst.ID] = inst.RoleARN
	}
	for _, a := range ck.src.Audit.Entries(core.AuditFilter{Service: "kms", SinceSeq: ck.opts.SinceSeq}) {
		if !ck.selected(a.Account, a.Principal, a.Time) {
			continue
		}
		for _, param := range []string{"EncryptionContext", "SourceEncryptionContext", "DestinationEncryptionContext"} {
			var ctx map[string]string
			if json.Unmarshal([]byte(a.Params[param]), &ctx) != nil {
				continue
			}
			for _, v := range ctx {
				m := instanceARNPattern.FindStringSubmatch(v)
				if m == nil {
					continue
				}
				role, ok := roles[m[2]]
				want := ""
				if ok && role != "" {
					want = "arn:aws:sts::" + core.ARNAccount(role) + ":assumed-role/" + role[strings.LastIndexByte(role, '/')+1:] + "/" + m[2]
				}
				if want != "" && a.Principal == want {
					continue
				}
				ck.add(Finding{Check: InstanceContext, Account: a.Account, Region: a.Region, Resource: m[2], Principal: a.Principal,
					Message: fmt.Sprintf("kms:%s (%s) with an encryption context naming instance %s was called by %s, not that instance's role session %s",
						a.Action, a.Outcome, m[2], a.Principal, cmp.Or(want, "(the instance has no instance profile)"))})
			}
		}
	}
}
