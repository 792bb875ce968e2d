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

	// Outcome.
	ImageID string
	State   string // available, failed, pending, rolled back, …
	Reason  string
	Made    bool // made by this run
	// Verified is set once the copy was read back as its owner, every
	// snapshot encrypted under KeyARN.
	Verified bool
	// rolledBack is set when the rollback removed this run's copy.
	rolledBack bool
	Started    time.Time
	Finished   time.Time
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
// account on the source AMI: the launch permission, createVolume
// permissions on its snapshots.
type shared struct{ launch, volume bool }

// grantPrefix starts the names of every grant amicrypt-copy makes on the keys
// of sourceAMI.
func grantPrefix(sourceAMI string) string { return "amicrypt-copy-" + sourceAMI + "-" }

// grantName names the grant on a source key for a target account, so a
// later run or an operator can find it again. Its suffix records the
// permissions the run holds for that account: a run killed before its
// cleanup leaves the grant, and a rerun reads from its name what to remove.
// The grant is made before the permissions and retired after them, so a
// permission a run added never outlives its grant.
func grantName(sourceAMI, account string, s shared) string {
	name := grantPrefix(sourceAMI) + account
	if s.launch {
		name += "-launch"
	}
	if s.volume {
		name += "-volume"
	}
	return name
}

// parseGrantName reads a grantName of sourceAMI; ok is false for any other name.
func parseGrantName(sourceAMI, name string) (account string, s shared, ok bool) {
	rest, found := strings.CutPrefix(name, grantPrefix(sourceAMI))
	if !found {
		return "", shared{}, false
	}
	account, flags, _ := strings.Cut(rest, "-")
	if !ebs.ValidAccountID(account) {
		return "", shared{}, false
	}
	for _, f := range strings.Split(flags, "-") {
		switch f {
		case "launch":
			s.launch = true
		case "volume":
			s.volume = true
		}
	}
	return account, s, true
}

// provenance are the tags that say where a copy comes from.
func provenance(src *source, sourceAccount, keyARN string) map[string]string {
	return map[string]string{
		TagSourceAMI:     src.ImageID,
		TagSourceAccount: sourceAccount,
		TagSourceRegion:  src.Region,
		TagKMSKeyARN:     keyARN,
		TagEncrypted:     "true",
		TagCopiedFromAMI: src.ImageID,
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

// PreflightError lists every problem preflight found. Nothing was changed.
type PreflightError struct {
	Problems []Problem
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "amicrypt-copy: preflight found %d problem(s); nothing was changed:\n", len(e.Problems))
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
