package ebs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// Every resource a build makes is tagged at creation with the run, the
// template and a lease; the run renews the lease while it lives. A later
// run that finds a resource whose lease expired knows its build died (a
// SIGKILL, a lost CI runner) and removes it (step_reap.go). A build that
// succeeds removes the lease tag from what it keeps: the AMIs and their
// snapshots.
const (
	// tagRun is the build run's identity.
	tagRun = "amicrypt:run"
	// tagTemplate identifies the template (build name, region, source).
	tagTemplate = "amicrypt:template"
	// tagLease is when the run's lease expires (RFC 3339).
	tagLease = "amicrypt:lease"

	// defaultLease is how long a run's resources outlive a dead run; the
	// run renews every third of it.
	defaultLease = 30 * time.Minute
	// EnvLease overrides the lease (a Go duration such as "10m").
	EnvLease = "AMICRYPT_BUILD_LEASE"
)

// reservedTagKey reports whether a tag key is one of the builder's own.
func reservedTagKey(k string) bool {
	return k == tagRun || k == tagTemplate || k == tagLease
}

// leaseDuration is the lease, from AMICRYPT_BUILD_LEASE or the default.
func leaseDuration() (time.Duration, error) {
	v := os.Getenv(EnvLease)
	if v == "" {
		return defaultLease, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second {
		return 0, fmt.Errorf("%s: %q is not a lease; use a duration of at least 1s, such as \"30m\"", EnvLease, v)
	}
	return d, nil
}

// templateID identifies a template across runs: its build name, region and
// source, hashed.
func (c *Config) templateID() string {
	sum := sha256.Sum256([]byte(c.PackerBuildName + "|" + c.RawRegion + "|" + c.SourceAMI + "|" + fmt.Sprint(c.SourceAMIFilter.Filters, c.SourceAMIFilter.Owners)))
	return hex.EncodeToString(sum[:])[:16]
}

// lease is a run's lease and the resources it covers, per region.
type lease struct {
	run, template string
	duration      time.Duration
	now           func() time.Time

	mu        sync.Mutex
	resources map[string]map[string]bool // region → IDs
}

func newLease(run, template string, d time.Duration) *lease {
	return &lease{run: run, template: template, duration: d, now: time.Now, resources: map[string]map[string]bool{}}
}

// tags are the tags of a resource made now.
func (l *lease) tags() map[string]string {
	return map[string]string{tagRun: l.run, tagTemplate: l.template, tagLease: l.expiry()}
}

func (l *lease) expiry() string { return l.now().Add(l.duration).UTC().Format(time.RFC3339) }

// track adds resources to renew in a region.
func (l *lease) track(region string, ids ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resources[region] == nil {
		l.resources[region] = map[string]bool{}
	}
	for _, id := range ids {
		if id != "" {
			l.resources[region][id] = true
		}
	}
}

// untrack stops renewing resources (deleted, or kept for good).
func (l *lease) untrack(region string, ids ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		delete(l.resources[region], id)
	}
}

func (l *lease) snapshot() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for r, ids := range l.resources {
		for id := range ids {
			out[r] = append(out[r], id)
		}
		sort.Strings(out[r])
	}
	return out
}

// renew pushes the expiry of every tracked resource forward. A resource
// gone meanwhile is dropped; other failures are returned, and the next
// renewal tries again.
func (l *lease) renew(ctx context.Context, clients Clients) error {
	exp := map[string]string{tagLease: l.expiry()}
	var firstErr error
	for region, ids := range l.snapshot() {
		client := clients.EC2(region)
		for _, id := range ids {
			err := ebs.CreateTags(ctx, client, []string{id}, exp)
			switch {
			case err == nil:
			case strings.HasSuffix(ebs.ErrorCode(err), ".NotFound"):
				l.untrack(region, id)
			case firstErr == nil:
				firstErr = err
			}
		}
	}
	return firstErr
}

// keepRenewing renews every third of the lease until ctx ends.
func (l *lease) keepRenewing(ctx context.Context, clients Clients, report func(error)) {
	t := time.NewTicker(l.duration / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.renew(ctx, clients); err != nil && ctx.Err() == nil {
				report(err)
			}
		}
	}
}
