package ec2

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// store is the EC2 state of one account in one region, as moto and
// LocalStack scope theirs: the resources the account owns there, the tags
// it wrote there, its client tokens, EBS defaults and AMI history. Its lock
// is taken only through a view.
type store struct {
	mu sync.Mutex

	Images         map[string]*ec2Image         `json:"images"`
	Snapshots      map[string]*ec2Snapshot      `json:"snapshots"`
	Volumes        map[string]*ec2Volume        `json:"volumes"`
	Instances      map[string]*ec2Instance      `json:"instances"`
	Reservations   map[string]*ec2Reservation   `json:"reservations"`
	KeyPairs       map[string]*ec2KeyPair       `json:"key_pairs"` // by key-pair ID
	SecurityGroups map[string]*ec2SecurityGroup `json:"security_groups"`
	VPCs           map[string]*ec2VPC           `json:"vpcs"`
	Subnets        map[string]*ec2Subnet        `json:"subnets"`
	// Launch templates, EC2 Fleets and spot instance requests (fleet.go).
	LaunchTemplates map[string]*ec2LaunchTemplate `json:"launch_templates"`
	Fleets          map[string]*ec2Fleet          `json:"fleets"`
	SpotRequests    map[string]*ec2SpotRequest    `json:"spot_requests"`

	// Tags this account wrote in this region, by resource ID: tags belong
	// to the account that wrote them (docs/aws-behaviour.md, tags).
	Tags map[string]map[string]string `json:"tags"`

	// ClientTokens: "action|token" -> first call.
	ClientTokens map[string]*ec2ClientToken `json:"client_tokens"`

	// EBSDefault is what API calls changed of the EBS encryption settings;
	// nil means the world's setting and alias/aws/ebs.
	EBSDefault *ec2EBSDefault `json:"ebs_default,omitempty"`

	// FullCopies remembers (lineage, key) combinations already copied here
	// once, so later copies are incremental.
	FullCopies map[string]bool `json:"full_copies"`

	// Registrations is the history of every AMI made here, kept after
	// deregistration for the invariant checker.
	Registrations []Registration `json:"registrations"`
}

func newStore() *store {
	s := &store{}
	s.ensure()
	return s
}

// ensure makes every map usable, also after a state file load.
func (s *store) ensure() {
	ensureMap(&s.Images)
	ensureMap(&s.Snapshots)
	ensureMap(&s.Volumes)
	ensureMap(&s.Instances)
	ensureMap(&s.Reservations)
	ensureMap(&s.KeyPairs)
	ensureMap(&s.SecurityGroups)
	ensureMap(&s.VPCs)
	ensureMap(&s.Subnets)
	ensureMap(&s.LaunchTemplates)
	ensureMap(&s.Fleets)
	ensureMap(&s.SpotRequests)
	ensureMap(&s.Tags)
	ensureMap(&s.ClientTokens)
	ensureMap(&s.FullCopies)
}

func ensureMap[V any](m *map[string]V) {
	if *m == nil {
		*m = map[string]V{}
	}
}

// resource is what every kind of EC2 resource has: an ID, an owner and a
// region, which name its store.
type resource interface {
	resourceID() string
	scope() core.Scope
}

// kind picks the map of one resource kind out of a store, so that one set
// of generic functions finds, adds and removes every kind.
type kind[T resource] func(*store) map[string]T

func imagesOf(s *store) map[string]*ec2Image                 { return s.Images }
func snapshotsOf(s *store) map[string]*ec2Snapshot           { return s.Snapshots }
func volumesOf(s *store) map[string]*ec2Volume               { return s.Volumes }
func instancesOf(s *store) map[string]*ec2Instance           { return s.Instances }
func reservationsOf(s *store) map[string]*ec2Reservation     { return s.Reservations }
func keyPairsOf(s *store) map[string]*ec2KeyPair             { return s.KeyPairs }
func securityGroupsOf(s *store) map[string]*ec2SecurityGroup { return s.SecurityGroups }
func vpcsOf(s *store) map[string]*ec2VPC                     { return s.VPCs }
func subnetsOf(s *store) map[string]*ec2Subnet               { return s.Subnets }

func (x *ec2Image) resourceID() string         { return x.ID }
func (x *ec2Image) scope() core.Scope          { return core.Scope{Account: x.Owner, Region: x.Region} }
func (x *ec2Snapshot) resourceID() string      { return x.ID }
func (x *ec2Snapshot) scope() core.Scope       { return core.Scope{Account: x.Owner, Region: x.Region} }
func (x *ec2Volume) resourceID() string        { return x.ID }
func (x *ec2Volume) scope() core.Scope         { return core.Scope{Account: x.Owner, Region: x.Region} }
func (x *ec2Instance) resourceID() string      { return x.ID }
func (x *ec2Instance) scope() core.Scope       { return core.Scope{Account: x.Owner, Region: x.Region} }
func (x *ec2Reservation) resourceID() string   { return x.ID }
func (x *ec2Reservation) scope() core.Scope    { return core.Scope{Account: x.Owner, Region: x.Region} }
func (x *ec2KeyPair) resourceID() string       { return x.ID }
func (x *ec2KeyPair) scope() core.Scope        { return core.Scope{Account: x.Owner, Region: x.Region} }
func (x *ec2SecurityGroup) resourceID() string { return x.ID }
func (x *ec2SecurityGroup) scope() core.Scope  { return core.Scope{Account: x.Owner, Region: x.Region} }
func (x *ec2VPC) resourceID() string           { return x.ID }
func (x *ec2VPC) scope() core.Scope            { return core.Scope{Account: x.Owner, Region: x.Region} }
func (x *ec2Subnet) resourceID() string        { return x.ID }
func (x *ec2Subnet) scope() core.Scope         { return core.Scope{Account: x.Owner, Region: x.Region} }

// storeFor returns the store of a scope, made on first use.
func (e *Service) storeFor(sc core.Scope) *store {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.stores[sc]
	if !ok {
		st = newStore()
		e.addStoreLocked(sc, st)
	}
	return st
}

// addStoreLocked adds the store of a scope and files the scope under its
// region, in order. e.mu is held.
func (e *Service) addStoreLocked(sc core.Scope, st *store) {
	if _, ok := e.stores[sc]; !ok {
		if e.byRegion == nil {
			e.byRegion = map[string][]core.Scope{}
		}
		list := e.byRegion[sc.Region]
		i, _ := slices.BinarySearchFunc(list, sc, core.Scope.Compare)
		e.byRegion[sc.Region] = slices.Insert(list, i, sc)
	}
	e.stores[sc] = st
}

// regionScopes lists the scopes of region that have a store, sorted: a
// region-wide call's locks, without going through every region's.
func (e *Service) regionScopes(region string) []core.Scope {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.byRegion[region])
}

// scopes lists the scopes with a store, sorted: the order locks are taken.
func (e *Service) scopes() []core.Scope {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]core.Scope, 0, len(e.stores))
	for sc := range e.stores {
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// newID returns a fresh AWS-shaped ID with prefix ("ami", "snap", "i"…):
// 17 hex digits derived from a counter, so runs are reproducible.
func (e *Service) newID(prefix string) string {
	for {
		sum := sha256.Sum256([]byte(prefix + strconv.FormatUint(e.seq.Add(1), 10)))
		id := prefix + "-0" + hex.EncodeToString(sum[:])[:16]
		if _, taken := e.index.Load(id); !taken {
			return id
		}
	}
}

// indexed is where a resource lives and the other scopes reading it needs
// (the stores of an image's snapshots when another account owns them).
type indexed struct {
	home core.Scope
	deps []core.Scope
}

// view is one call's access to the stores it has locked. Every EC2 call
// takes the locks of the stores it may touch, in scope order, before it
// starts, and holds no other EC2 lock: two calls never wait on each other
// in a cycle, and calls on different account-regions never wait at all.
type view struct {
	*Service
	locked map[core.Scope]*store
}

// lockFor plans and takes the locks a call needs.
func (e *Service) lockFor(c *core.Call, p ec2Params) *view {
	want := map[core.Scope]bool{{Account: c.Account, Region: c.Region}: true}
	if regionWide(c, p) {
		for _, sc := range e.regionScopes(c.Region) {
			want[sc] = true
		}
	}
	if r := p.str("SourceRegion"); r != "" {
		// CopyImageTags copies the tags the caller wrote in the source region.
		want[core.Scope{Account: c.Account, Region: r}] = true
	}
	for _, vs := range p.v {
		for _, v := range vs {
			if !resourceIDPattern.MatchString(v) {
				continue
			}
			if ix, ok := e.index.Load(v); ok {
				want[ix.(indexed).home] = true
				for _, d := range ix.(indexed).deps {
					want[d] = true
				}
			}
		}
	}
	return e.lock(want)
}

// lock takes the locks of the wanted scopes in scope order.
func (e *Service) lock(want map[core.Scope]bool) *view {
	order := make([]core.Scope, 0, len(want))
	for sc := range want {
		order = append(order, sc)
	}
	sort.Slice(order, func(i, j int) bool { return order[i].Less(order[j]) })
	v := &view{Service: e, locked: make(map[core.Scope]*store, len(order))}
	for _, sc := range order {
		st := e.storeFor(sc)
		st.mu.Lock()
		v.locked[sc] = st
	}
	return v
}

// unlock releases the view's locks.
func (v *view) unlock() {
	for _, st := range v.locked {
		st.mu.Unlock()
	}
}

var resourceIDPattern = regexp.MustCompile(`^(ami|snap|vol|i|r|sg|subnet|vpc|key|lt|fleet|sir)-[0-9a-f]{8,17}$`)

// regionWide reports whether a call may read any account's resources in its
// region: listing images or snapshots without IDs (public and shared ones
// included), the in-use checks of deleting a snapshot or an image, and
// listing the caller's tags (on resources of any account).
func regionWide(c *core.Call, p ec2Params) bool {
	switch c.Action {
	case "DescribeImages":
		return len(p.list("ImageId")) == 0 && !ownOnly(c, p.list("Owner"))
	case "DescribeSnapshots":
		return len(p.list("SnapshotId")) == 0 && !ownOnly(c, p.list("Owner"))
	case "DeleteSnapshot", "DeregisterImage", "DescribeTags":
		return true
	case "CreateFleet":
		// The image to launch is named in a launch template, not in the call.
		return true
	}
	return false
}

// ownOnly reports whether an Owner list names only the caller.
func ownOnly(c *core.Call, owners []string) bool {
	if len(owners) == 0 {
		return false
	}
	for _, o := range owners {
		if o != "self" && o != c.Account {
			return false
		}
	}
	return true
}

// store returns a locked store. Asking for one the call did not lock is a
// bug in lockFor, reported loudly rather than hidden as "not found".
func (v *view) store(sc core.Scope) *store {
	st, ok := v.locked[sc]
	if !ok {
		panic(fmt.Sprintf("ec2: store %s is not locked for this call", sc))
	}
	return st
}

// own is the store of the calling account in the call's region.
func (v *view) own(c *core.Call) *store {
	return v.store(core.Scope{Account: c.Account, Region: c.Region})
}

// get finds a resource of kind k by ID in whichever locked store holds it.
func get[T resource](v *view, k kind[T], id string) (T, bool) {
	var zero T
	ix, ok := v.index.Load(id)
	if !ok {
		return zero, false
	}
	st, ok := v.locked[ix.(indexed).home]
	if !ok {
		panic(fmt.Sprintf("ec2: %s is in store %s, which is not locked for this call", id, ix.(indexed).home))
	}
	x, ok := k(st)[id]
	return x, ok
}

// put adds a resource to its store (locked) and to the index.
func put[T resource](v *view, k kind[T], x T, deps ...core.Scope) {
	sc := x.scope()
	k(v.store(sc))[x.resourceID()] = x
	var extra []core.Scope
	for _, d := range deps {
		if d != sc && !slices.Contains(extra, d) {
			extra = append(extra, d)
		}
	}
	v.index.Store(x.resourceID(), indexed{home: sc, deps: extra})
}

// putImage adds an image; the stores of its snapshots become what reading
// it needs too.
func putImage(v *view, img *ec2Image) {
	var deps []core.Scope
	for _, m := range img.Mappings {
		if ix, ok := v.index.Load(m.SnapshotID); ok {
			deps = append(deps, ix.(indexed).home)
		}
	}
	put(v, imagesOf, img, deps...)
}

// del removes a resource and the tags every account wrote on it there.
func del[T resource](v *view, k kind[T], x T) {
	st := v.store(x.scope())
	delete(k(st), x.resourceID())
	v.index.Delete(x.resourceID())
	for sc, other := range v.locked {
		if sc.Region == x.scope().Region {
			delete(other.Tags, x.resourceID())
		}
	}
}

// allIn lists the resources of kind k in every locked store of region.
func allIn[T resource](v *view, k kind[T], region string) []T {
	var out []T
	for sc, st := range v.locked {
		if sc.Region != region {
			continue
		}
		for _, x := range k(st) {
			out = append(out, x)
		}
	}
	return out
}

// mine lists the resources of kind k the caller owns in its region.
func mine[T resource](v *view, k kind[T], c *core.Call) []T {
	m := k(v.own(c))
	out := make([]T, 0, len(m))
	for _, x := range m {
		out = append(out, x)
	}
	return out
}
