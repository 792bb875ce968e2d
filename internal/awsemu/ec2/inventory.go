package ec2

import (
	"encoding/json"
	"sort"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// Inventory is every EC2 resource as the invariant checker and tests see
// it: copies, sorted by ID, with pending states moved on to now.
type Inventory struct {
	Images         []ImageView
	Snapshots      []SnapshotView
	Instances      []InstanceView
	KeyPairs       []KeyPairView
	SecurityGroups []SecurityGroupView
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
// to terminated.
type InstanceView struct {
	ID, Owner, Region, State, Principal string
	Terminating                         bool
	Launched                            time.Time
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

// Inventory returns every resource.
func (e *Service) Inventory() Inventory {
	e.mu.Lock()
	defer e.mu.Unlock()
	var inv Inventory
	for _, id := range sortedKeys(e.st.Images) {
		img := e.st.Images[id]
		v := ImageView{ID: img.ID, Owner: img.Owner, Region: img.Region, Public: img.Public, LaunchUsers: append([]string(nil), img.LaunchUsers...)}
		for _, m := range img.Mappings {
			v.SnapshotIDs = append(v.SnapshotIDs, m.SnapshotID)
		}
		inv.Images = append(inv.Images, v)
	}
	for _, id := range sortedKeys(e.st.Snapshots) {
		s := e.st.Snapshots[id]
		e.refreshSnapshot(s)
		inv.Snapshots = append(inv.Snapshots, SnapshotView{
			ID: s.ID, Owner: s.Owner, Region: s.Region, State: s.State, Encrypted: s.Encrypted, KmsKeyARN: s.KmsKeyARN,
			Public: s.Public, CreateVolumeUsers: append([]string(nil), s.CreateVolumeUsers...), Copy: s.Copy, ImageCopy: s.ImageCopy,
			Principal: s.Principal, Started: s.Started, Seeded: s.Seeded,
		})
	}
	for _, id := range sortedKeys(e.st.Instances) {
		inst := e.st.Instances[id]
		e.refreshInstance(inst)
		inv.Instances = append(inv.Instances, InstanceView{ID: inst.ID, Owner: inst.Owner, Region: inst.Region, State: inst.State,
			Principal: inst.Principal, Terminating: inst.State == "terminated" || inst.Next == "terminated", Launched: inst.Launched})
	}
	for _, id := range sortedKeys(e.st.KeyPairs) {
		k := e.st.KeyPairs[id]
		inv.KeyPairs = append(inv.KeyPairs, KeyPairView{ID: k.ID, Owner: k.Owner, Region: k.Region, Name: k.Name, Principal: k.Principal, Created: k.Created})
	}
	for _, id := range sortedKeys(e.st.SecurityGroups) {
		sg := e.st.SecurityGroups[id]
		inv.SecurityGroups = append(inv.SecurityGroups, SecurityGroupView{ID: sg.ID, Owner: sg.Owner, Region: sg.Region, Name: sg.Name,
			Principal: sg.Principal, Default: sg.Default, Seeded: sg.Seeded})
	}
	inv.Registrations = append(inv.Registrations, e.st.Registrations...)
	sort.SliceStable(inv.Registrations, func(i, j int) bool { return inv.Registrations[i].Time.Before(inv.Registrations[j].Time) })
	return inv
}

// Handle serves one EC2 Query call.
func (e *Service) Handle(c *core.Call) (any, *core.APIError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cur = c
	defer func() { e.cur = nil }()
	return e.handleEC2(c)
}

// MarshalJSON encodes the EC2 state for the state file.
func (e *Service) MarshalJSON() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return json.Marshal(e.st)
}

// UnmarshalJSON restores the EC2 state from the state file.
func (e *Service) UnmarshalJSON(data []byte) error {
	st := newEC2State()
	if err := json.Unmarshal(data, st); err != nil {
		return err
	}
	st.ensure()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st = st
	return nil
}

// EC2Time is how EC2 writes timestamps.
func EC2Time(t time.Time) string { return ec2Time(t) }
