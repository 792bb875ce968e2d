package copy

// lease.go: what a run writes so that a later run can find what it lent or
// made, and can tell whether it is still alive.
//
//   - The run's identity: a random run ID, and the template's identity (a
//     hash of the configuration that decides which copies a run makes).
//   - A lease: the tag amicrypt:lease:RUN = "template=TPL expires=T" on every
//     resource of the source account the run lends (source AMIs and their
//     snapshots, transit copies and theirs), written before anything is lent
//     and renewed every fifth of lease_duration while the run works. A run
//     whose lease expired is dead.
//   - Grant names: amicrypt-copy:RUN:TPL:ACCOUNT:AMI[:launch][:volume], the
//     suffixes naming the permissions on AMI (and its snapshots) the run
//     added for ACCOUNT and must remove. A grant is made before those
//     permissions and retired after them, and the lease outlives both.
//   - Copy tags: amicrypt:template = TPL on every copy and its snapshots, and
//     amicrypt:unreported = true on the copy until the run has reported it.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// Tags and names that make a run's work findable.
const (
	// TagLeasePrefix + run ID is the lease tag on the source resources a
	// run lends.
	TagLeasePrefix = "amicrypt:lease:"
	// TagTemplate is the template identity on every copy and its snapshots.
	TagTemplate = "amicrypt:template"
	// TagUnreported marks a copy its run has not reported yet; it is
	// removed once the run has listed the copy in its artifact and manifest.
	TagUnreported = "amicrypt:unreported"

	grantNamePrefix = "amicrypt-copy:"
	// legacyGrantPrefix starts the grant names of amicrypt-copy before
	// leases: amicrypt-copy-ami-…-ACCOUNT[-launch][-volume].
	legacyGrantPrefix = "amicrypt-copy-ami-"
)

// Lease durations.
const (
	DefaultLeaseDuration = 5 * time.Minute
	MinLeaseDuration     = 5 * time.Second
	MaxLeaseDuration     = time.Hour
	// leaseRenewals is how many renewals fit in one lease: a run may miss
	// all but one before its lease is at risk.
	leaseRenewals = 5
)

// newRunID is a random run identity: 10 characters of [0-9a-z].
func newRunID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 10)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// templateTarget is one target as the template identity sees it.
type templateTarget struct {
	Account string            `json:"account"`
	Role    string            `json:"role"`
	Keys    map[string]string `json:"keys"` // region → key reference as configured
}

// templateID is a stable hash of what decides which copies a run makes:
// the source account and regions, every target's account, role, regions and
// keys, and the name template. Runs of the same template make the same
// copies; a later run adopts or replaces what a dead one left.
func templateID(sourceAccount string, sourceRegions []string, targets []*target, amiName string) string {
	regions := slices.Clone(sourceRegions)
	sort.Strings(regions)
	var ts []templateTarget
	for _, t := range targets {
		ts = append(ts, templateTarget{Account: t.Account, Role: t.RoleARN, Keys: t.KeyRefs})
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Account < ts[j].Account })
	b, _ := json.Marshal(struct { // maps marshal with sorted keys
		SourceAccount string           `json:"source_account"`
		SourceRegions []string         `json:"source_regions"`
		Targets       []templateTarget `json:"targets"`
		AMIName       string           `json:"ami_name"`
	}{sourceAccount, regions, ts, amiName})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:6])
}

// leaseTimeFormat is RFC 3339 with milliseconds: a lease may be seconds long.
const leaseTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// lease is one run's claim on what it lent.
type lease struct {
	Run      string
	Template string
	Expires  time.Time
}

func leaseTagKey(run string) string { return TagLeasePrefix + run }

func (l lease) tagValue() string {
	return "template=" + l.Template + " expires=" + l.Expires.UTC().Format(leaseTimeFormat)
}

// parseLease reads a lease tag; ok is false for any other tag.
func parseLease(key, value string) (l lease, ok bool) {
	run, found := strings.CutPrefix(key, TagLeasePrefix)
	if !found || !validRunID(run) {
		return lease{}, false
	}
	l.Run = run
	for _, f := range strings.Fields(value) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "template":
			l.Template = v
		case "expires":
			t, err := time.Parse(time.RFC3339, v)
			if y := t.UTC().Year(); err != nil || y < 2000 || y > 9999 {
				return lease{}, false // not a time a run wrote
			}
			l.Expires = t
		}
	}
	if l.Template == "" || l.Expires.IsZero() {
		return lease{}, false
	}
	return l, true
}

func validRunID(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'z') {
			return false
		}
	}
	return true
}

// grantRef is what a grant's name says about the run that made it.
type grantRef struct {
	Run      string // "" for a legacy grant
	Template string
	Account  string // the target account it lends to
	Image    string // the AMI it was lent for (source or transit copy)
	Held     shared // the permissions on Image the run added for Account
}

// grantName names the grant on a source key for a target account; see the
// file comment.
func grantName(run, tpl, account, image string, s shared) string {
	name := grantNamePrefix + run + ":" + tpl + ":" + account + ":" + image
	if s.launch {
		name += ":launch"
	}
	if s.volume {
		name += ":volume"
	}
	return name
}

// parseGrantName reads a grant name amicrypt-copy made, this version's or
// a legacy one; ok is false for any other name.
func parseGrantName(name string) (g grantRef, ok bool) {
	var flags []string
	switch {
	case strings.HasPrefix(name, grantNamePrefix):
		f := strings.Split(strings.TrimPrefix(name, grantNamePrefix), ":")
		if len(f) < 4 || !validRunID(f[0]) || f[1] == "" {
			return grantRef{}, false
		}
		g = grantRef{Run: f[0], Template: f[1], Account: f[2], Image: f[3]}
		flags = f[4:]
	case strings.HasPrefix(name, legacyGrantPrefix):
		f := strings.Split(strings.TrimPrefix(name, "amicrypt-copy-"), "-")
		if len(f) < 3 {
			return grantRef{}, false
		}
		g = grantRef{Image: f[0] + "-" + f[1], Account: f[2]}
		flags = f[3:]
	default:
		return grantRef{}, false
	}
	if !ebs.ValidAccountID(g.Account) || !ebs.ValidAMIID(g.Image) {
		return grantRef{}, false
	}
	for _, f := range flags {
		switch f {
		case "launch":
			g.Held.launch = true
		case "volume":
			g.Held.volume = true
		default:
			return grantRef{}, false
		}
	}
	return g, true
}

// awsClock is AWS's clock as the responses' Date headers show it: leases
// written by runs on different machines are compared on one clock. The
// skew is taken only when it exceeds the header's one-second resolution.
type awsClock struct {
	mu   sync.Mutex
	skew time.Duration
}

// Now is the local clock corrected by the skew seen last.
func (c *awsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.skew)
}

func (c *awsClock) observe(md middleware.Metadata) {
	server, ok := awsmiddleware.GetServerTime(md)
	if !ok {
		return
	}
	at, ok := awsmiddleware.GetResponseAt(md)
	if !ok {
		return
	}
	skew := server.Sub(at)
	c.mu.Lock()
	defer c.mu.Unlock()
	if skew > 2*time.Second || skew < -2*time.Second {
		c.skew = skew
	} else {
		c.skew = 0
	}
}

// middleware records the skew of every response of the clients it is added
// to.
func (c *awsClock) middleware(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("amicryptAWSClock",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			c.observe(md)
			return out, md, err
		}), middleware.Before)
}

// leaseHolder holds this run's lease: it writes the lease tag on what the
// run lends, renews it while the run works, and removes it at the end.
type leaseHolder struct {
	lease    lease
	duration time.Duration
	clock    *awsClock
	say      func(format string, args ...any)

	mu        sync.Mutex
	clients   map[string]leaseEC2 // source clients by region
	resources map[string][]string // leased IDs by region
	until     time.Time           // the earliest expiry written on anything
	stop      chan struct{}
	done      chan struct{}
}

// leaseEC2 is what the lease needs of the source account's EC2.
type leaseEC2 interface {
	ebs.EC2API
	ebs.TagDeleter
}

func newLeaseHolder(run, tpl string, duration time.Duration, clock *awsClock, say func(string, ...any)) *leaseHolder {
	return &leaseHolder{
		lease: lease{Run: run, Template: tpl}, duration: duration, clock: clock, say: say,
		clients: map[string]leaseEC2{}, resources: map[string][]string{},
	}
}

// take writes the lease on ids (resources of the source account in region)
// before anything is lent through them.
func (h *leaseHolder) take(ctx context.Context, region string, client leaseEC2, ids ...string) error {
	h.mu.Lock()
	h.clients[region] = client
	for _, id := range ids {
		if !slices.Contains(h.resources[region], id) {
			h.resources[region] = append(h.resources[region], id)
		}
	}
	h.mu.Unlock()
	return h.write(ctx, region, ids)
}

// write tags ids with a fresh expiry.
func (h *leaseHolder) write(ctx context.Context, region string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	h.mu.Lock()
	client := h.clients[region]
	l := h.lease
	h.mu.Unlock()
	l.Expires = h.clock.Now().Add(h.duration)
	err := ebs.CreateTags(ctx, client, ids, map[string]string{leaseTagKey(l.Run): l.tagValue()})
	if err != nil {
		return fmt.Errorf("writing the lease of run %s on %s: %w", l.Run, strings.Join(ids, ", "), err)
	}
	h.mu.Lock()
	if h.until.IsZero() || l.Expires.Before(h.until) {
		h.until = l.Expires
	}
	h.mu.Unlock()
	return nil
}

// renew writes a fresh expiry on everything leased, region by region.
func (h *leaseHolder) renew(ctx context.Context) error {
	h.mu.Lock()
	regions := make(map[string][]string, len(h.resources))
	for r, ids := range h.resources {
		regions[r] = slices.Clone(ids)
	}
	h.until = time.Time{}
	h.mu.Unlock()
	var errs []error
	for _, r := range slices.Sorted(maps.Keys(regions)) {
		errs = append(errs, h.write(ctx, r, regions[r]))
	}
	return errors.Join(errs...)
}

// start renews the lease every fifth of its duration until stopRenewing.
// When renewals fail until the lease is about to expire, lost is called:
// another run may take back what this run lent, so it must stop.
func (h *leaseHolder) start(lost func(error)) {
	h.stop, h.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(h.done)
		every := h.duration / leaseRenewals
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
			h.mu.Lock()
			until := h.until
			h.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := h.renew(ctx)
			cancel()
			if err == nil {
				continue
			}
			if h.clock.Now().Add(every).Before(until) {
				h.say("could not renew the lease of run %s (it holds until %s): %v; trying again in %s", h.lease.Run, until.Format(time.RFC3339), err, every)
				continue
			}
			lost(fmt.Errorf("the lease of run %s expires at %s and could not be renewed (%w); another run may take back what this run lent, so this run stops", h.lease.Run, until.Format(time.RFC3339), err))
			return
		}
	}()
}

// stopRenewing stops the renewals and waits for one in progress.
func (h *leaseHolder) stopRenewing() {
	if h.stop == nil {
		return
	}
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}

// release removes the lease tag from everything leased: the run is over and
// took back what it lent. Resources already gone count as released. One
// record per region says what AWS answered.
func (h *leaseHolder) release(ctx context.Context, account string) []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var recs []Record
	for _, r := range slices.Sorted(maps.Keys(h.resources)) {
		ids := slices.Sorted(slices.Values(h.resources[r]))
		rec := Record{Action: actionLease, Account: account, Region: r, Resource: strings.Join(ids, ","), Run: h.lease.Run}
		gone, err := ebs.DeleteTags(ctx, h.clients[r], ids, []string{leaseTagKey(h.lease.Run)})
		rec.settle(len(gone) == len(ids), err)
		recs = append(recs, rec)
	}
	return recs
}

// held reports whether the run has leased anything.
func (h *leaseHolder) held() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.resources) > 0
}
