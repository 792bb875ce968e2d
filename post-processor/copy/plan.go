package copy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// source is one input AMI as the source account sees it.
type source struct {
	Region      string
	ImageID     string
	Name        string
	Description string
	Tags        map[string]string
	SnapshotIDs []string
	// SizeGiB is the size of its largest snapshot: what a copy's first
	// poll is timed by.
	SizeGiB int32
	// KeyARNs are the distinct keys of its snapshots; empty when unencrypted.
	KeyARNs     []string
	Unencrypted bool
	// AWSManagedKey is set when a snapshot is under an AWS-managed key,
	// which AWS refuses to share.
	AWSManagedKey string

	// Shared is what targets copy from: the AMI itself, or its transit copy.
	Shared      string
	SharedKeys  []string
	SharedSnaps []string
	TransitKey  string // resolved transit key ARN, when a transit copy is needed
}

// target is one target block, resolved.
type target struct {
	Account    string
	RoleARN    string
	ExternalID string
	Regions    []string
	KeyRefs    map[string]string // region → key reference as configured
	Sharing    ebs.Sharing
	// IsSource is set when the target is the source account: no share and
	// no grant are needed.
	IsSource bool
}

// job is one copy: a source AMI into one (account, region).
type job struct {
	// regionRefused: preflight found the job's region unusable (unknown,
	// or not enabled in the account), so nothing else is checked there.
	regionRefused bool

	Target      *target
	Region      string
	Source      *source
	KeyRef      string
	KeyARN      string // resolved in preflight
	CreateKey   bool   // create_missing_keys: the alias is missing
	Name        string
	Description string
	// Existing is a copy an earlier run made (found by name and provenance
	// tags); this run reuses it.
	Existing string
	// Failed is a failed copy an earlier run kept (on_failure = "keep"); this
	// run removes it before copying again.
	Failed string
	// DeadCopies are copies of other source AMIs that runs of this
	// template made and never reported, their runs dead: removed under
	// on_failure = "rollback", reported under "keep".
	DeadCopies []deadCopy

	// Outcome.
	ImageID string
	State   string // available, failed, pending, rolled back, …
	Reason  string
	Made    bool // made by this run
	// Verified is set once the copy was read back as its owner, every
	// snapshot encrypted under KeyARN.
	Verified bool
	// seen is set once a describe has shown the copy: before, a not-found
	// answer may be EC2's eventual consistency.
	seen bool
	// removal is what the rollback did to this run's copy.
	removal  *ebs.Removed
	Started  time.Time
	Finished time.Time
}

func (j *job) Dest() string { return j.Target.Account + "/" + j.Region }

// clientToken is CopyImage's idempotency token: the same source, account,
// region and key always give the same token, so a rerun after an
// interruption gets the first copy back instead of a duplicate.
func clientToken(sourceAMI, account, region, keyARN string, attempt int) string {
	h := sha256.Sum256([]byte(strings.Join([]string{sourceAMI, account, region, keyARN}, "|")))
	token := "amicrypt-" + hex.EncodeToString(h[:20])
	if attempt > 0 {
		token += fmt.Sprintf("-r%d", attempt)
	}
	return token // ≤ 64 ASCII characters
}

// shared says which temporary permissions a run holds for one target
// account on the AMI it lends: the launch permission, createVolume
// permissions on its snapshots.
type shared struct{ launch, volume bool }

// deadCopy is a copy a dead run of this template made of another source
// AMI and never reported.
type deadCopy struct {
	ImageID   string
	SourceAMI string
	Name      string
	State     string
	// HoldsName: it has the name this run's copy needs.
	HoldsName bool
}

// provenance are the tags that say where a copy comes from, and which
// template made it.
func provenance(src *source, sourceAccount, keyARN, template string) map[string]string {
	return map[string]string{
		TagSourceAMI:     src.ImageID,
		TagSourceAccount: sourceAccount,
		TagSourceRegion:  src.Region,
		TagKMSKeyARN:     keyARN,
		TagEncrypted:     "true",
		TagCopiedFromAMI: src.ImageID,
		TagTemplate:      template,
	}
}

// copyTags are the tags of a copy (or of its snapshots): the source's own
// tags, which the target account can't see, then the configured ones, then
// provenance. aws: tags are AWS's and can't be written.
func copyTags(srcTags, configured, prov map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range srcTags {
		if !strings.HasPrefix(strings.ToLower(k), "aws:") {
			out[k] = v
		}
	}
	maps.Copy(out, configured)
	maps.Copy(out, prov)
	return out
}

// Problem is one reason preflight refuses to start.
type Problem struct {
	Target  string // account/region, account, or "source"
	Check   string
	Problem string
	Fix     string
}

// PreflightError lists every problem preflight found. Nothing was lent and
// no copy was started (what dead earlier runs lent may have been taken
// back: that is reported apart).
type PreflightError struct {
	Problems []Problem
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "amicrypt-copy: preflight found %d problem(s); nothing was lent and no copy was started:\n", len(e.Problems))
	b.WriteString(problemTable(e.Problems))
	return b.String()
}

func problemTable(problems []Problem) string {
	sorted := append([]Problem(nil), problems...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Target != sorted[j].Target {
			return sorted[i].Target < sorted[j].Target
		}
		return sorted[i].Check < sorted[j].Check
	})
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "TARGET\tCHECK\tPROBLEM\tFIX")
	for _, p := range sorted {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.Target, p.Check, oneLine(p.Problem), oneLine(p.Fix))
	}
	w.Flush()
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
