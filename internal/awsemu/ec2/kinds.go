package ec2

import (
	"regexp"
	"slices"
	"sort"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// kindInfo describes a resource kind for the generic look-ups: its map in
// a store, its ID syntax, its errors, who may use one and how it moves on.
type kindInfo[T resource] struct {
	of       kind[T]
	noun     string         // "image": "Not authorized for image:ID"
	prefix   string         // "ami": "expecting \"ami-...\""
	pattern  *regexp.Regexp // well-formed IDs
	notFound func(ids ...string) *core.APIError
	// usable reports whether account may use a resource it does not own
	// (a shared image or snapshot); nil: only the owner sees it.
	usable  func(x T, account string) bool
	refresh func(v *view, x T) // moves pending states on; nil: none
}

func images() kindInfo[*ec2Image] {
	return kindInfo[*ec2Image]{of: imagesOf, noun: "image", prefix: "ami", pattern: amiIDPattern, notFound: imageNotFound,
		usable: (*ec2Image).canLaunch, refresh: (*view).refreshImage}
}

func snapshots() kindInfo[*ec2Snapshot] {
	return kindInfo[*ec2Snapshot]{of: snapshotsOf, noun: "snapshot", prefix: "snap", pattern: snapIDPattern, notFound: snapshotNotFound,
		usable: (*ec2Snapshot).canRestore, refresh: (*view).refreshSnapshot}
}

func instances() kindInfo[*ec2Instance] {
	return kindInfo[*ec2Instance]{of: instancesOf, noun: "instance", prefix: "i", pattern: instanceIDPattern, notFound: instanceNotFound,
		refresh: (*view).refreshInstance}
}

func volumes() kindInfo[*ec2Volume] {
	return kindInfo[*ec2Volume]{of: volumesOf, noun: "volume", prefix: "vol", pattern: volIDPattern, notFound: volumeNotFound,
		refresh: (*view).refreshVolume}
}

var (
	amiIDPattern      = regexp.MustCompile(`^ami-[0-9a-f]{8}([0-9a-f]{9})?$`)
	snapIDPattern     = regexp.MustCompile(`^snap-[0-9a-f]{8}([0-9a-f]{9})?$`)
	instanceIDPattern = regexp.MustCompile(`^i-[0-9a-f]{8}([0-9a-f]{9})?$`)
	volIDPattern      = regexp.MustCompile(`^vol-[0-9a-f]{8}([0-9a-f]{9})?$`)
)

// find returns a resource of kind k the caller may use in region: its own,
// or one shared with it; NotFound otherwise, as AWS hides what it can't use.
func find[T resource](v *view, k kindInfo[T], c *core.Call, id, region string) (T, *core.APIError) {
	var zero T
	if !k.pattern.MatchString(id) {
		return zero, malformedID(id, k.prefix)
	}
	x, ok := get(v, k.of, id)
	if !ok || x.scope().Region != region || (x.scope().Account != c.Account && (k.usable == nil || !k.usable(x, c.Account))) {
		return zero, k.notFound(id)
	}
	if k.refresh != nil {
		k.refresh(v, x)
		if _, still := get(v, k.of, id); !still { // a refresh may end it (a volume deleted with its instance)
			return zero, k.notFound(id)
		}
	}
	return x, nil
}

// own returns a resource of kind k the caller owns in its region; one it
// can only see (shared with it) gives AuthFailure.
func own[T resource](v *view, k kindInfo[T], c *core.Call, id string) (T, *core.APIError) {
	x, err := find(v, k, c, id, c.Region)
	if err != nil {
		return x, err
	}
	if x.scope().Account != c.Account {
		var zero T
		return zero, core.Errf("AuthFailure", "Not authorized for %s:%s", k.noun, id)
	}
	return x, nil
}

// describe is what every Describe* call of a kind shares: the IDs asked for
// must be well formed and visible (else one NotFound naming the missing
// ones); the candidates are those IDs or every resource of the region; a
// resource is listed when the caller sees it, keep accepts it (byID: the
// call named IDs) and it matches the filters; the list is sorted by ID and
// paginated.
func describe[T resource](v *view, k kindInfo[T], c *core.Call, p ec2Params, idParam string,
	visible func(T) bool, keep func(x T, byID bool) bool, values func(x T, filter string) ([]string, bool)) (page []T, next string, apiErr *core.APIError) {
	ids := p.list(idParam)
	var missing []string
	var candidates []T
	for _, id := range ids {
		if !k.pattern.MatchString(id) {
			return nil, "", malformedID(id, k.prefix)
		}
		x, ok := get(v, k.of, id)
		if !ok || !visible(x) {
			missing = append(missing, id)
		} else if !slices.ContainsFunc(candidates, func(y T) bool { return y.resourceID() == id }) {
			candidates = append(candidates, x)
		}
	}
	if len(missing) > 0 {
		return nil, "", k.notFound(missing...)
	}
	if len(ids) == 0 {
		candidates = allIn(v, k.of, c.Region)
	}
	filters := p.filters()
	var found []T
	for _, x := range candidates {
		if !visible(x) || (keep != nil && !keep(x, len(ids) > 0)) {
			continue
		}
		if k.refresh != nil {
			k.refresh(v, x)
		}
		ok, err := matchFilters(filters, func(name string) ([]string, bool) { return values(x, name) })
		if err != nil {
			return nil, "", err
		}
		if ok {
			found = append(found, x)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].resourceID() < found[j].resourceID() })
	from, to, next, err := paginate(p, len(found))
	if err != nil {
		return nil, "", err
	}
	return found[from:to], next, nil
}

// permitted answers the ExecutableBy / RestorableBy parameters: "all" for a
// public resource, "self" for the caller's own or one shared with it, an
// account ID for one that account owns or may use.
func permitted(list []string, owner string, public bool, users []string, caller string) bool {
	for _, x := range list {
		switch x {
		case "all":
			if public {
				return true
			}
		case "self":
			if owner == caller || slices.Contains(users, caller) {
				return true
			}
		default:
			if owner == x || slices.Contains(users, x) {
				return true
			}
		}
	}
	return false
}
