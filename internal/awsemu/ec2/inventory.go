package ec2

import (
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// Inventory is every EC2 resource as the invariant checker and tests see
// it: copies, sorted by ID, with pending states moved on to now.
type Inventory struct {
	Images          []ImageView
	Snapshots       []SnapshotView
	Instances       []InstanceView
	KeyPairs        []KeyPairView
	SecurityGroups  []SecurityGroupView
	LaunchTemplates []LaunchTemplateView
	Fleets          []FleetView
	SpotRequests    []SpotRequestView
	// Registrations is every AMI ever made, kept after deregistration.
	Registrations []Registration
}

// ImageView is an AMI.
type ImageView struct {
	ID, Owner, Region string
	Public            bool
	LaunchUsers       []string
	SnapshotIDs       []string
}

// SnapshotView is a snapshot.
type SnapshotView struct {
	ID, Owner, Region, State string
	Encrypted                bool
	KmsKeyARN                string
	Public                   bool
	CreateVolumeUsers        []string
	Copy                     bool   // made by CopySnapshot or CopyImage
	ImageCopy                string // the AMI a CopyImage made it for
	Principal                string
	Started                  time.Time
	Seeded                   bool
}

// InstanceView is an instance. Terminating is true once it is on its way
// to terminated. RoleARN is its instance profile's role.
type InstanceView struct {
	ID, Owner, Region, State, Principal, RoleARN string
	Terminating                                  bool
	Launched                                     time.Time
}

// KeyPairView is a key pair.
type KeyPairView struct {
	ID, Owner, Region, Name, Principal string
	Created                            time.Time
}

// SecurityGroupView is a security group.
type SecurityGroupView struct {
	ID, Owner, Region, Name, Principal string
	Default, Seeded                    bool
}

// LaunchTemplateView is a launch template.
type LaunchTemplateView struct {
	ID, Owner, Region, Name, Principal string
	Created                            time.Time
}

// FleetView is an EC2 Fleet. LiveInstances are its instances not on
// their way to terminated.
type FleetView struct {
	ID, Owner, Region, Type, Principal string
	Deleted                            bool
	LiveInstances                      []string
	Created                            time.Time
}

// SpotRequestView is a spot instance request; State is as
// DescribeSpotInstanceRequests shows it (active, closed, cancelled).
type SpotRequestView struct {
	ID, Owner, Region, State, InstanceID, Principal string
	Created                                         time.Time
}

// Inventory returns every resource. It locks every store, in order.
func (e *Service) Inventory() Inventory {
	want := map[core.Scope]bool{}
	for _, sc := range e.scopes() {
		want[sc] = true
	}
	v := e.lock(want)
	defer v.unlock()
	var inv Inventory
	for _, sc := range e.scopes() {
		st := v.store(sc)
		for _, id := range sortedKeys(st.Images) {
			img := st.Images[id]
			iv := ImageView{ID: img.ID, Owner: img.Owner, Region: img.Region, Public: img.Public, LaunchUsers: append([]string(nil), img.LaunchUsers...)}
			for _, m := range img.Mappings {
				iv.SnapshotIDs = append(iv.SnapshotIDs, m.SnapshotID)
			}
			inv.Images = append(inv.Images, iv)
		}
		for _, id := range sortedKeys(st.Snapshots) {
			s := st.Snapshots[id]
			v.refreshSnapshot(s)
			inv.Snapshots = append(inv.Snapshots, SnapshotView{
				ID: s.ID, Owner: s.Owner, Region: s.Region, State: s.State, Encrypted: s.Encrypted, KmsKeyARN: s.KmsKeyARN,
				Public: s.Public, CreateVolumeUsers: append([]string(nil), s.CreateVolumeUsers...), Copy: s.Copy, ImageCopy: s.ImageCopy,
				Principal: s.Principal, Started: s.Started, Seeded: s.Seeded,
			})
		}
		for _, id := range sortedKeys(st.Instances) {
			inst := st.Instances[id]
			v.refreshInstance(inst)
			inv.Instances = append(inv.Instances, InstanceView{ID: inst.ID, Owner: inst.Owner, Region: inst.Region, State: inst.State, RoleARN: inst.RoleARN,
				Principal: inst.Principal, Terminating: inst.State == "terminated" || inst.Next == "terminated", Launched: inst.Launched})
		}
		for _, id := range sortedKeys(st.KeyPairs) {
			k := st.KeyPairs[id]
			inv.KeyPairs = append(inv.KeyPairs, KeyPairView{ID: k.ID, Owner: k.Owner, Region: k.Region, Name: k.Name, Principal: k.Principal, Created: k.Created})
		}
		for _, id := range sortedKeys(st.SecurityGroups) {
			sg := st.SecurityGroups[id]
			inv.SecurityGroups = append(inv.SecurityGroups, SecurityGroupView{ID: sg.ID, Owner: sg.Owner, Region: sg.Region, Name: sg.Name,
				Principal: sg.Principal, Default: sg.Default, Seeded: sg.Seeded})
		}
		for _, id := range sortedKeys(st.LaunchTemplates) {
			lt := st.LaunchTemplates[id]
			inv.LaunchTemplates = append(inv.LaunchTemplates, LaunchTemplateView{ID: lt.ID, Owner: lt.Owner, Region: lt.Region, Name: lt.Name,
				Principal: lt.Principal, Created: lt.Created})
		}
		for _, id := range sortedKeys(st.Fleets) {
			f := st.Fleets[id]
			fv := FleetView{ID: f.ID, Owner: f.Owner, Region: f.Region, Type: f.Type, Principal: f.Principal, Deleted: f.Deleted, Created: f.Created}
			for _, iid := range f.Instances {
				if inst, ok := get(v, instancesOf, iid); ok {
					v.refreshInstance(inst)
					if inst.State != "terminated" && inst.Next != "terminated" {
						fv.LiveInstances = append(fv.LiveInstances, iid)
					}
				}
			}
			inv.Fleets = append(inv.Fleets, fv)
		}
		for _, id := range sortedKeys(st.SpotRequests) {
			r := st.SpotRequests[id]
			inv.SpotRequests = append(inv.SpotRequests, SpotRequestView{ID: r.ID, Owner: r.Owner, Region: r.Region, InstanceID: r.InstanceID,
				State: v.spotRequestXML(r, r.Owner).State, Principal: r.Principal, Created: r.Created})
		}
		inv.Registrations = append(inv.Registrations, st.Registrations...)
	}
	sort.SliceStable(inv.Registrations, func(i, j int) bool { return inv.Registrations[i].Time.Before(inv.Registrations[j].Time) })
	return inv
}

// persisted is the JSON form of the EC2 state in the state file: every
// store with its scope, and the ID counter.
type persisted struct {
	Seq    uint64           `json:"seq"`
	Stores []persistedStore `json:"stores"`
}

type persistedStore struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	State   *store `json:"state"`
}

// MarshalJSON encodes the EC2 state for the state file.
func (e *Service) MarshalJSON() ([]byte, error) {
	want := map[core.Scope]bool{}
	for _, sc := range e.scopes() {
		want[sc] = true
	}
	v := e.lock(want)
	defer v.unlock()
	out := persisted{Seq: e.seq.Load()}
	for _, sc := range e.scopes() {
		out.Stores = append(out.Stores, persistedStore{Account: sc.Account, Region: sc.Region, State: v.store(sc)})
	}
	return json.Marshal(out)
}

// UnmarshalJSON replaces the EC2 state with the state file's.
func (e *Service) UnmarshalJSON(data []byte) error {
	var in persisted
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	e.mu.Lock()
	e.stores, e.byRegion = map[core.Scope]*store{}, nil
	e.mu.Unlock()
	e.index.Clear()
	e.seq.Store(in.Seq)
	for _, ps := range in.Stores {
		if ps.State == nil {
			continue
		}
		ps.State.ensure()
		e.mu.Lock()
		e.addStoreLocked(core.Scope{Account: ps.Account, Region: ps.Region}, ps.State)
		e.mu.Unlock()
	}
	// Images last: their index entries name their snapshots' stores.
	for _, images := range []bool{false, true} {
		for _, ps := range in.Stores {
			if ps.State != nil {
				reindex(&e.index, core.Scope{Account: ps.Account, Region: ps.Region}, ps.State, images)
			}
		}
	}
	return nil
}

// reindex adds a loaded store's resources to the index: its images, or
// everything else.
func reindex(index *sync.Map, sc core.Scope, st *store, images bool) {
	add := func(id string) { index.Store(id, indexed{home: sc}) }
	if !images {
		for _, ids := range [][]string{sortedKeys(st.Snapshots), sortedKeys(st.Volumes), sortedKeys(st.Instances), sortedKeys(st.Reservations),
			sortedKeys(st.KeyPairs), sortedKeys(st.SecurityGroups), sortedKeys(st.VPCs), sortedKeys(st.Subnets)} {
			for _, id := range ids {
				add(id)
			}
		}
		return
	}
	for id, img := range st.Images {
		ix := indexed{home: sc}
		for _, m := range img.Mappings {
			if dep, ok := index.Load(m.SnapshotID); ok && dep.(indexed).home != sc {
				ix.deps = append(ix.deps, dep.(indexed).home)
			}
		}
		index.Store(id, ix)
	}
}

// EC2Time is how EC2 writes timestamps.
func EC2Time(t time.Time) string { return ec2Time(t) }
