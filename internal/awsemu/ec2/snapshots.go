package ec2

// ec2_snapshots.go: EBS snapshots and volumes, and the key checks EC2 makes
// when it copies or restores encrypted data for a caller.

import (
	"fmt"
	"sort"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// ec2Snapshot is one EBS snapshot.
type ec2Snapshot struct {
	ID          string `json:"id"`
	Owner       string `json:"owner"`
	Region      string `json:"region"`
	VolumeID    string `json:"volume_id"`
	SizeGiB     int    `json:"size_gib"`
	Description string `json:"description,omitempty"`

	Encrypted  bool   `json:"encrypted,omitempty"`
	KmsKeyARN  string `json:"kms_key_arn,omitempty"`
	KeyManager string `json:"key_manager,omitempty"` // AWS or CUSTOMER
	// Platform is the billing metadata of the data: "windows" for a
	// Windows root volume's, kept through volumes, snapshots and copies.
	Platform string `json:"platform,omitempty"`

	Started time.Time `json:"started"`
	DoneAt  time.Time `json:"done_at"`
	// State is pending, completed or error; pending moves on when read.
	State       string `json:"state"`
	Fails       bool   `json:"fails,omitempty"` // ends in error at DoneAt
	FailMessage string `json:"fail_message,omitempty"`

	Public            bool     `json:"public,omitempty"`
	CreateVolumeUsers []string `json:"create_volume_users,omitempty"`

	// Lineage is the volume (or seeded snapshot) the data comes from: the
	// first copy of a lineage to a region and key is a full copy.
	Lineage          string `json:"lineage,omitempty"`
	SourceSnapshotID string `json:"source_snapshot_id,omitempty"`
	SourceRegion     string `json:"source_region,omitempty"`
	// Copy marks a CopySnapshot result; ImageCopy the AMI a CopyImage made
	// it for.
	Copy      bool      `json:"copy,omitempty"`
	ImageCopy string    `json:"image_copy,omitempty"`
	Principal string    `json:"principal,omitempty"`
	Hidden    time.Time `json:"hidden_until,omitempty"`
	Seeded    bool      `json:"seeded,omitempty"`
}

// refreshSnapshot moves a pending snapshot on (lock held).
func (e *view) refreshSnapshot(s *ec2Snapshot) {
	if s.State != "pending" || e.clock.Now().Before(s.DoneAt) {
		return
	}
	if s.Fails {
		s.State = "error"
		return
	}
	s.State = "completed"
}

// progress is the snapshot's Progress: "0%"…"99%" while pending.
func (e *view) progress(s *ec2Snapshot) string {
	switch s.State {
	case "completed":
		return "100%"
	case "error":
		return "0%"
	}
	total := s.DoneAt.Sub(s.Started)
	if total <= 0 {
		return "99%"
	}
	pct := int(100 * e.clock.Now().Sub(s.Started) / total)
	return fmt.Sprintf("%d%%", max(0, min(pct, 99)))
}

func (s *ec2Snapshot) canRestore(account string) bool {
	return s.Owner == account || s.Public || contains(s.CreateVolumeUsers, account)
}

// snapshotUser returns the AMI a snapshot is registered behind, if any.
func (e *view) snapshotUser(id string) string {
	var users []string
	for _, img := range allIn(e, imagesOf, e.regionOf(id)) {
		for _, m := range img.Mappings {
			if m.SnapshotID == id {
				users = append(users, img.ID)
			}
		}
	}
	sort.Strings(users)
	if len(users) == 0 {
		return ""
	}
	return users[0]
}

// ---- EBS defaults and key checks ----

func (e *view) ebsDefault(account, region string) *ec2EBSDefault {
	return e.store(core.Scope{Account: account, Region: region}).EBSDefault
}

// encryptByDefault reports EBS encryption by default for account-region.
func (e *view) encryptByDefault(account, region string) bool {
	if d := e.ebsDefault(account, region); d != nil && d.Encrypt != nil {
		return *d.Encrypt
	}
	return e.iam.EBSEncryptionByDefault(account, region)
}

// defaultKeyRef is the account's default EBS key reference in region; ""
// lets KMS resolve alias/aws/ebs.
func (e *view) defaultKeyRef(account, region string) string {
	if d := e.ebsDefault(account, region); d != nil {
		return d.KeyARN
	}
	return ""
}

// Key operations EC2 performs on the caller's behalf. On the source key,
// the five docs/aws-behaviour.md 3.4 lists for the using account.
func sourceKeyOps() []string {
	return []string{core.OpDescribeKey, core.OpDecrypt, core.OpCreateGrant, core.OpReEncryptFrom, core.OpGenerateDataKeyWithoutPlaintext}
}

func destinationKeyOps() []string {
	return []string{core.OpGenerateDataKeyWithoutPlaintext, core.OpCreateGrant, core.OpDescribeKey}
}

// useDestinationKey checks the key new data is encrypted under; data that
// moves from another key (srcKeyARN) is re-encrypted, which also needs
// ReEncryptTo on the destination key.
func (e *view) useDestinationKey(c *core.Call, ref, srcKeyARN string) (core.KeyInfo, *core.APIError) {
	info, err := e.useKey(c, c.Region, ref, destinationKeyOps())
	if err != nil || srcKeyARN == "" || info.ARN == srcKeyARN {
		return info, err
	}
	return e.useKey(c, c.Region, info.ARN, []string{core.OpReEncryptTo})
}

// useKey asks KMS whether the caller may use a key for ops in region.
func (e *view) useKey(c *core.Call, region, keyRef string, ops []string) (core.KeyInfo, *core.APIError) {
	return e.keys.AuthorizeKeyUse(core.KeyUse{Account: c.Account, PrincipalIAM: c.PrincipalIAM, Region: region, KeyRef: keyRef, Ops: ops})
}

// keyFailure is the state message of a copy or launch that could not use a
// key (an emulator convention, docs/aws-behaviour.md 3.4).
func keyFailure(c *core.Call, key string, kmsErr *core.APIError) *core.APIError {
	return core.Errf("Client.InvalidKMSKey.InvalidState",
		"The KMS key %s is not usable: account %s may not use it (%s: %s)", key, c.Account, kmsErr.Code, kmsErr.Message)
}

// copyPlan is the encryption of a snapshot copy.
type copyPlan struct {
	encrypted  bool
	keyARN     string
	keyManager string
}

// planCopy decides how a copy of src made by the caller in its region is
// encrypted, and checks the caller may use the source and destination keys.
// With a key error the plan still names the key it meant to use.
func (e *view) planCopy(c *core.Call, src *ec2Snapshot, srcRegion string, encrypted bool, keyRef string) (copyPlan, *core.APIError) {
	plan := copyPlan{encrypted: src.Encrypted || encrypted || e.encryptByDefault(c.Account, c.Region)}
	if src.Encrypted {
		if _, err := e.useKey(c, srcRegion, src.KmsKeyARN, sourceKeyOps()); err != nil {
			plan.keyARN = src.KmsKeyARN
			return plan, keyFailure(c, src.KmsKeyARN, err)
		}
	}
	if !plan.encrypted {
		return plan, nil
	}
	ref := keyRef
	if ref == "" {
		ref = e.defaultKeyRef(c.Account, c.Region)
	}
	srcKey := ""
	if src.Encrypted {
		srcKey = src.KmsKeyARN
	}
	info, err := e.useDestinationKey(c, ref, srcKey)
	plan.keyARN, plan.keyManager = info.ARN, info.Manager
	if err != nil {
		name := info.ARN
		if name == "" {
			name = orDefault(ref, "arn:aws:kms:"+c.Region+":"+c.Account+":alias/aws/ebs")
			plan.keyARN = name
		}
		return plan, keyFailure(c, name, err)
	}
	return plan, nil
}

// newSnapshotCopy starts a copy of src into the caller's account and region
// at now: the time of the call that asks for it, so the snapshots of one
// CopyImage start when its image is created.
func (e *view) newSnapshotCopy(c *core.Call, now time.Time, src *ec2Snapshot, srcRegion string, plan copyPlan, description string) *ec2Snapshot {
	full := src.Lineage + "|" + c.Account + "|" + c.Region + "|" + plan.keyARN
	size := src.SizeGiB
	if e.own(c).FullCopies[full] {
		size /= 10 // incremental: only the changed blocks
	}
	e.own(c).FullCopies[full] = true
	s := &ec2Snapshot{
		ID: e.newID("snap"), Owner: c.Account, Region: c.Region, VolumeID: "vol-ffffffff", SizeGiB: src.SizeGiB,
		Description: description, Encrypted: plan.encrypted, KmsKeyARN: plan.keyARN, KeyManager: plan.keyManager,
		Started: now, DoneAt: now.Add(e.clock.Latency(core.LatencySnapshotCopy, size, srcRegion != c.Region)), State: "pending",
		Lineage: src.Lineage, SourceSnapshotID: src.ID, SourceRegion: srcRegion, Principal: c.Principal, Platform: src.Platform,
	}
	put(e, snapshotsOf, s)
	return s
}

// snapshotVolume starts a snapshot of a volume.
func (e *view) snapshotVolume(c *core.Call, vol *ec2Volume, description string) *ec2Snapshot {
	now := e.clock.Now()
	size := vol.SizeGiB
	full := "snapshot|" + vol.ID
	if e.own(c).FullCopies[full] {
		size /= 10
	}
	e.own(c).FullCopies[full] = true
	s := &ec2Snapshot{
		ID: e.newID("snap"), Owner: c.Account, Region: c.Region, VolumeID: vol.ID, SizeGiB: vol.SizeGiB,
		Description: description, Encrypted: vol.Encrypted, KmsKeyARN: vol.KmsKeyARN, KeyManager: vol.KeyManager,
		Started: now, DoneAt: now.Add(e.clock.Latency(core.LatencySnapshot, size, false)), State: "pending",
		Lineage: vol.ID, Principal: c.Principal, Platform: vol.Platform,
	}
	put(e, snapshotsOf, s)
	return s
}

// ---- XML ----

type xmlSnapshot struct {
	SnapshotID     string   `xml:"snapshotId"`
	VolumeID       string   `xml:"volumeId"`
	Status         string   `xml:"status"`
	StatusMessage  string   `xml:"statusMessage,omitempty"`
	StartTime      string   `xml:"startTime"`
	Progress       string   `xml:"progress"`
	OwnerID        string   `xml:"ownerId"`
	OwnerAlias     string   `xml:"ownerAlias,omitempty"`
	VolumeSize     int      `xml:"volumeSize"`
	Description    string   `xml:"description"`
	Encrypted      bool     `xml:"encrypted"`
	KmsKeyID       string   `xml:"kmsKeyId,omitempty"`
	TagSet         []xmlTag `xml:"tagSet>item,omitempty"`
	StorageTier    string   `xml:"storageTier"`
	CompletionTime string   `xml:"completionTime,omitempty"`
}

func (e *view) snapshotXML(s *ec2Snapshot, account string) xmlSnapshot {
	x := xmlSnapshot{
		SnapshotID: s.ID, VolumeID: s.VolumeID, Status: s.State, StartTime: ec2Time(s.Started), Progress: e.progress(s),
		OwnerID: s.Owner, OwnerAlias: e.aliases[s.Owner], VolumeSize: s.SizeGiB, Description: s.Description,
		Encrypted: s.Encrypted, KmsKeyID: s.KmsKeyARN, TagSet: e.tagSet(s.ID, account), StorageTier: "standard",
	}
	if s.State == "error" {
		x.StatusMessage = s.FailMessage
	}
	if s.State == "completed" {
		x.CompletionTime = ec2Time(s.DoneAt)
	}
	return x
}

// ---- CreateSnapshot ----

func (e *view) ec2CreateSnapshot(c *core.Call, p ec2Params) (any, *core.APIError) {
	volID, err := p.required("VolumeId")
	if err != nil {
		return nil, err
	}
	specs, err := p.tagSpecs("snapshot")
	if err != nil {
		return nil, err
	}
	vol, err := own(e, volumes(), c, volID)
	if err != nil {
		return nil, err
	}
	s := e.snapshotVolume(c, vol, p.str("Description"))
	s.Hidden = e.hideIfFault(c)
	if t := tagsFor(specs, "snapshot"); len(t) > 0 {
		e.setTags(s.ID, c.Account, t)
	}
	c.Note("snapshotId", s.ID)
	return e.snapshotXML(s, c.Account), nil
}

// ---- CopySnapshot ----

type copySnapshotOutput struct {
	SnapshotID string   `xml:"snapshotId"`
	TagSet     []xmlTag `xml:"tagSet>item,omitempty"`
}

func (e *view) ec2CopySnapshot(c *core.Call, p ec2Params) (any, *core.APIError) {
	cp, err := e.copyRequest(p, "SourceSnapshotId")
	if err != nil {
		return nil, err
	}
	srcID, srcRegion, encrypted, encGiven, keyRef := cp.srcID, cp.srcRegion, cp.encrypted, cp.encGiven, cp.keyRef
	specs, err := p.tagSpecs("snapshot")
	if err != nil {
		return nil, err
	}
	src, err := find(e, snapshots(), c, srcID, srcRegion)
	if err != nil {
		return nil, err
	}
	if src.State != "completed" {
		return nil, core.Errf("IncorrectState", "Snapshot '%s' is not 'completed' (it is '%s').", src.ID, src.State)
	}
	if src.Encrypted && encGiven && !encrypted {
		return nil, unencryptedCopy(src.ID)
	}
	if n := e.snapshotCopiesInFlight(c); n >= e.opts.Limits.ConcurrentSnapshotCopies {
		return nil, core.Errf("ResourceLimitExceeded", "You have reached your quota of %d concurrent snapshot copies in %s. Wait for copies in progress to finish.", e.opts.Limits.ConcurrentSnapshotCopies, c.Region)
	}
	plan, kerr := e.planCopy(c, src, srcRegion, encrypted, keyRef)
	desc := p.str("Description")
	if desc == "" {
		desc = fmt.Sprintf("[Copied %s from %s]", src.ID, srcRegion)
	}
	s := e.newSnapshotCopy(c, e.clock.Now(), src, srcRegion, plan, desc)
	s.Copy = true
	switch {
	case kerr != nil:
		// Accepted; the copy ends in error (docs/aws-behaviour.md 3.4).
		s.Fails, s.FailMessage = true, kerr.Message
		s.DoneAt = s.Started.Add(e.clock.Latency(core.LatencySnapshotCopy, 0, srcRegion != c.Region))
		c.Note("failure", kerr.Message)
	case e.faults.Fires(core.FaultCopyFails, c, c.Action):
		s.Fails, s.FailMessage = true, "Internal error on copy"
	}
	s.Hidden = e.hideIfFault(c)
	tags := tagsFor(specs, "snapshot")
	if len(tags) > 0 {
		e.setTags(s.ID, c.Account, tags)
	}
	c.Note("snapshotId", s.ID)
	if s.KmsKeyARN != "" {
		c.Note("kmsKeyArn", s.KmsKeyARN)
	}
	return copySnapshotOutput{SnapshotID: s.ID, TagSet: e.tagSet(s.ID, c.Account)}, nil
}

func (e *view) snapshotCopiesInFlight(c *core.Call) int {
	n := 0
	for _, s := range mine(e, snapshotsOf, c) {
		if s.Copy && s.State == "pending" {
			e.refreshSnapshot(s)
			if s.State == "pending" {
				n++
			}
		}
	}
	return n
}

// ---- DescribeSnapshots ----

type describeSnapshotsOutput struct {
	SnapshotSet []xmlSnapshot `xml:"snapshotSet>item"`
	NextToken   string        `xml:"nextToken,omitempty"`
}

func (e *view) visibleSnapshot(s *ec2Snapshot, c *core.Call) bool {
	return s.Region == c.Region && s.canRestore(c.Account) && !e.clock.Now().Before(s.Hidden)
}

func (e *view) ec2DescribeSnapshots(c *core.Call, p ec2Params) (any, *core.APIError) {
	owners := p.list("Owner")
	restorable := p.list("RestorableBy")
	page, next, err := describe(e, snapshots(), c, p, "SnapshotId",
		func(s *ec2Snapshot) bool { return e.visibleSnapshot(s, c) },
		func(s *ec2Snapshot, _ bool) bool {
			return (len(owners) == 0 || e.ownerMatches(owners, s.Owner, c.Account)) &&
				(len(restorable) == 0 || permitted(restorable, s.Owner, s.Public, s.CreateVolumeUsers, c.Account))
		},
		func(s *ec2Snapshot, name string) ([]string, bool) { return e.snapshotFilterValues(s, c.Account, name) })
	if err != nil {
		return nil, err
	}
	out := describeSnapshotsOutput{NextToken: next, SnapshotSet: []xmlSnapshot{}}
	for _, s := range page {
		out.SnapshotSet = append(out.SnapshotSet, e.snapshotXML(s, c.Account))
	}
	return out, nil
}

func (e *view) snapshotFilterValues(s *ec2Snapshot, account, name string) ([]string, bool) {
	if v, ok, handled := e.tagFilterValues(s.ID, account, name); handled {
		return v, ok
	}
	switch name {
	case "snapshot-id":
		return []string{s.ID}, true
	case "status":
		return []string{s.State}, true
	case "owner-id":
		return []string{s.Owner}, true
	case "owner-alias":
		return []string{e.aliases[s.Owner]}, true
	case "volume-id":
		return []string{s.VolumeID}, true
	case "volume-size":
		return []string{fmt.Sprint(s.SizeGiB)}, true
	case "encrypted":
		return []string{fmt.Sprint(s.Encrypted)}, true
	case "description":
		return []string{s.Description}, true
	case "progress":
		return []string{e.progress(s)}, true
	case "start-time":
		return []string{ec2Time(s.Started)}, true
	case "kms-key-id":
		return []string{s.KmsKeyARN}, true
	case "storage-tier":
		return []string{"standard"}, true
	}
	return nil, false
}

// ---- DeleteSnapshot ----

func (e *view) ec2DeleteSnapshot(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("SnapshotId")
	if err != nil {
		return nil, err
	}
	s, err := own(e, snapshots(), c, id)
	if err != nil {
		return nil, err
	}
	if ami := e.snapshotUser(s.ID); ami != "" {
		return nil, core.Errf("InvalidSnapshot.InUse", "The snapshot %s is currently in use by %s", s.ID, ami)
	}
	del(e, snapshotsOf, s)
	c.Note("snapshotId", s.ID)
	return ec2Return{Return: true}, nil
}

// ---- snapshot attributes ----

type xmlCreateVolumePermission struct {
	Group  string `xml:"group,omitempty"`
	UserID string `xml:"userId,omitempty"`
}

type describeSnapshotAttributeOutput struct {
	SnapshotID             string                       `xml:"snapshotId"`
	CreateVolumePermission *[]xmlCreateVolumePermission `xml:"createVolumePermission>item,omitempty"`
	ProductCodes           *[]struct{}                  `xml:"productCodes>item,omitempty"`
}

func (e *view) ec2DescribeSnapshotAttribute(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("SnapshotId")
	if err != nil {
		return nil, err
	}
	attr, err := p.required("Attribute")
	if err != nil {
		return nil, err
	}
	s, err := own(e, snapshots(), c, id)
	if err != nil {
		return nil, err
	}
	out := describeSnapshotAttributeOutput{SnapshotID: id}
	switch attr {
	case "createVolumePermission":
		perms := []xmlCreateVolumePermission{}
		if s.Public {
			perms = append(perms, xmlCreateVolumePermission{Group: "all"})
		}
		for _, u := range s.CreateVolumeUsers {
			perms = append(perms, xmlCreateVolumePermission{UserID: u})
		}
		out.CreateVolumePermission = &perms
	case "productCodes":
		out.ProductCodes = &[]struct{}{}
	default:
		return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Expected createVolumePermission or productCodes.", attr)
	}
	return out, nil
}

func (e *view) ec2ModifySnapshotAttribute(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("SnapshotId")
	if err != nil {
		return nil, err
	}
	if a := p.str("Attribute"); a != "" && a != "createVolumePermission" {
		return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Only createVolumePermission can be modified.", a)
	}
	s, err := own(e, snapshots(), c, id)
	if err != nil {
		return nil, err
	}
	legacy := permissionChange{Users: p.list("UserId"), Groups: p.list("UserGroup")}
	add, remove, err := readPermissionChange(p, "CreateVolumePermission", legacy, "CreateVolumePermission",
		func(field, v string) *core.APIError {
			want := map[string]string{"userId": "a 12-digit account ID", "group": "'all'"}[field]
			return core.Errf("InvalidParameterValue", "Value (%s) for parameter %s is invalid. Expected %s.", v, field, want)
		})
	if err != nil {
		return nil, err
	}
	if !add.empty() && s.Encrypted {
		if s.KeyManager == "AWS" {
			return nil, core.Errf("OperationNotPermitted", "Encrypted snapshots with EBS default key cannot be shared")
		}
		if len(add.Groups) > 0 {
			return nil, core.Errf("OperationNotPermitted", "Encrypted snapshots can't be made public. Snapshot %s is encrypted.", s.ID)
		}
	}
	applyPermissions(c, "createVolumePermission", s.ID, s.Owner, &s.CreateVolumeUsers, &s.Public, add, remove)
	return nil, nil
}

// ---- volumes ----

// ec2Volume is one EBS volume.
type ec2Volume struct {
	ID         string    `json:"id"`
	Owner      string    `json:"owner"`
	Region     string    `json:"region"`
	AZ         string    `json:"az"`
	SnapshotID string    `json:"snapshot_id,omitempty"`
	SizeGiB    int       `json:"size_gib"`
	VolumeType string    `json:"volume_type"`
	Iops       int       `json:"iops,omitempty"`
	Throughput int       `json:"throughput,omitempty"`
	Encrypted  bool      `json:"encrypted,omitempty"`
	KmsKeyARN  string    `json:"kms_key_arn,omitempty"`
	KeyManager string    `json:"key_manager,omitempty"`
	Platform   string    `json:"platform,omitempty"` // the snapshot's billing metadata
	Created    time.Time `json:"created"`
	Failed     bool      `json:"failed,omitempty"` // could not use its key
	// ReadyAt is when a volume CreateVolume made leaves creating.
	ReadyAt time.Time `json:"ready_at,omitzero"`

	InstanceID          string    `json:"instance_id,omitempty"`
	Device              string    `json:"device,omitempty"`
	DeleteOnTermination bool      `json:"delete_on_termination,omitempty"`
	AttachTime          time.Time `json:"attach_time,omitempty"`
}

// refreshVolume follows its instance: deleted with it on termination when
// DeleteOnTermination, detached otherwise.
func (e *view) refreshVolume(v *ec2Volume) {
	if v.InstanceID == "" {
		return
	}
	inst, ok := get(e, instancesOf, v.InstanceID)
	if ok {
		e.refreshInstance(inst) // may delete or detach v
	}
	if !ok {
		v.InstanceID, v.Device = "", ""
	}
}

// volumeState is creating until a new volume is ready, then available or
// in-use (docs/aws-behaviour.md, volumes).
func (e *view) volumeState(v *ec2Volume) string {
	switch {
	case v.Failed:
		return "error"
	case v.InstanceID != "":
		return "in-use"
	case e.clock.Now().Before(v.ReadyAt):
		return "creating"
	}
	return "available"
}

type xmlVolumeAttachment struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlVolume struct {
	VolumeID           string                `xml:"volumeId"`
	Size               int                   `xml:"size"`
	SnapshotID         string                `xml:"snapshotId"`
	AvailabilityZone   string                `xml:"availabilityZone"`
	Status             string                `xml:"status"`
	CreateTime         string                `xml:"createTime"`
	AttachmentSet      []xmlVolumeAttachment `xml:"attachmentSet>item"`
	TagSet             []xmlTag              `xml:"tagSet>item,omitempty"`
	VolumeType         string                `xml:"volumeType"`
	Iops               int                   `xml:"iops,omitempty"`
	Encrypted          bool                  `xml:"encrypted"`
	KmsKeyID           string                `xml:"kmsKeyId,omitempty"`
	Throughput         int                   `xml:"throughput,omitempty"`
	MultiAttachEnabled bool                  `xml:"multiAttachEnabled"`
}

func (e *view) volumeXML(v *ec2Volume, account string) xmlVolume {
	x := xmlVolume{
		VolumeID: v.ID, Size: v.SizeGiB, SnapshotID: v.SnapshotID, AvailabilityZone: v.AZ, Status: e.volumeState(v),
		CreateTime: ec2Time(v.Created), AttachmentSet: []xmlVolumeAttachment{}, TagSet: e.tagSet(v.ID, account),
		VolumeType: v.VolumeType, Iops: v.Iops, Encrypted: v.Encrypted, KmsKeyID: v.KmsKeyARN, Throughput: v.Throughput,
	}
	if v.InstanceID != "" {
		x.AttachmentSet = append(x.AttachmentSet, xmlVolumeAttachment{VolumeID: v.ID, InstanceID: v.InstanceID,
			Device: v.Device, Status: "attached", AttachTime: ec2Time(v.AttachTime), DeleteOnTermination: v.DeleteOnTermination})
	}
	return x
}

type describeVolumesOutput struct {
	VolumeSet []xmlVolume `xml:"volumeSet>item"`
	NextToken string      `xml:"nextToken,omitempty"`
}

func (e *view) ec2DescribeVolumes(c *core.Call, p ec2Params) (any, *core.APIError) {
	ids := p.list("VolumeId")
	filters := p.filters()
	for _, v := range allIn(e, volumesOf, c.Region) {
		if v.Owner == c.Account && v.Region == c.Region {
			e.refreshVolume(v)
		}
	}
	for _, id := range ids {
		if !volIDPattern.MatchString(id) {
			return nil, malformedID(id, "vol")
		}
		if v, ok := get(e, volumesOf, id); !ok || v.Owner != c.Account || v.Region != c.Region {
			return nil, core.Errf("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
		}
	}
	var found []*ec2Volume
	for _, v := range allIn(e, volumesOf, c.Region) {
		if v.Owner != c.Account || v.Region != c.Region || (len(ids) > 0 && !contains(ids, v.ID)) {
			continue
		}
		ok, ferr := matchFilters(filters, func(name string) ([]string, bool) { return e.volumeFilterValues(v, c.Account, name) })
		if ferr != nil {
			return nil, ferr
		}
		if ok {
			found = append(found, v)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].ID < found[j].ID })
	from, to, next, err := paginate(p, len(found))
	if err != nil {
		return nil, err
	}
	out := describeVolumesOutput{NextToken: next, VolumeSet: []xmlVolume{}}
	for _, v := range found[from:to] {
		out.VolumeSet = append(out.VolumeSet, e.volumeXML(v, c.Account))
	}
	return out, nil
}

func (e *view) volumeFilterValues(v *ec2Volume, account, name string) ([]string, bool) {
	if vals, ok, handled := e.tagFilterValues(v.ID, account, name); handled {
		return vals, ok
	}
	switch name {
	case "volume-id":
		return []string{v.ID}, true
	case "status":
		return []string{e.volumeState(v)}, true
	case "attachment.instance-id":
		return []string{v.InstanceID}, true
	case "attachment.device":
		return []string{v.Device}, true
	case "attachment.status":
		if v.InstanceID != "" {
			return []string{"attached"}, true
		}
		return nil, true
	case "attachment.delete-on-termination":
		return []string{fmt.Sprint(v.DeleteOnTermination)}, true
	case "encrypted":
		return []string{fmt.Sprint(v.Encrypted)}, true
	case "snapshot-id":
		return []string{v.SnapshotID}, true
	case "size":
		return []string{fmt.Sprint(v.SizeGiB)}, true
	case "volume-type":
		return []string{v.VolumeType}, true
	case "availability-zone":
		return []string{v.AZ}, true
	}
	return nil, false
}

// volumeSpec is what a new volume is made from.
type volumeSpec struct {
	snapshot   *ec2Snapshot
	size       int
	volumeType string
	iops       int
	throughput int
	encrypted  *bool
	keyRef     string
}

// newVolume makes a volume for the caller in az, checking its keys. It
// returns the volume and, when a key can't be used, the key error.
func (e *view) newVolume(c *core.Call, az string, spec volumeSpec) (*ec2Volume, *core.APIError) {
	v := &ec2Volume{
		ID: e.newID("vol"), Owner: c.Account, Region: c.Region, AZ: az, SizeGiB: spec.size,
		VolumeType: orDefault(spec.volumeType, "gp2"), Iops: spec.iops, Throughput: spec.throughput, Created: e.clock.Now(),
	}
	if v.VolumeType == "gp3" && v.Iops == 0 {
		v.Iops, v.Throughput = 3000, max(v.Throughput, 125)
	}
	snapEncrypted := spec.snapshot != nil && spec.snapshot.Encrypted
	if spec.snapshot != nil {
		v.SnapshotID, v.Platform = spec.snapshot.ID, spec.snapshot.Platform
		if v.SizeGiB == 0 {
			v.SizeGiB = spec.snapshot.SizeGiB
		}
	}
	v.Encrypted = snapEncrypted || (spec.encrypted != nil && *spec.encrypted) || e.encryptByDefault(c.Account, c.Region)
	if !v.Encrypted {
		return v, nil
	}
	if snapEncrypted {
		if _, err := e.useKey(c, c.Region, spec.snapshot.KmsKeyARN, sourceKeyOps()); err != nil {
			v.KmsKeyARN, v.KeyManager = spec.snapshot.KmsKeyARN, spec.snapshot.KeyManager
			return v, keyFailure(c, spec.snapshot.KmsKeyARN, err)
		}
	}
	ref := spec.keyRef
	switch {
	case ref == "" && snapEncrypted:
		ref = spec.snapshot.KmsKeyARN
	case ref == "":
		ref = e.defaultKeyRef(c.Account, c.Region)
	}
	srcKey := ""
	if snapEncrypted {
		srcKey = spec.snapshot.KmsKeyARN
	}
	info, err := e.useDestinationKey(c, ref, srcKey)
	v.KmsKeyARN, v.KeyManager = info.ARN, info.Manager
	if err != nil {
		if v.KmsKeyARN == "" {
			v.KmsKeyARN = ref
		}
		return v, keyFailure(c, v.KmsKeyARN, err)
	}
	return v, nil
}

func (e *view) ec2CreateVolume(c *core.Call, p ec2Params) (any, *core.APIError) {
	az, err := p.required("AvailabilityZone")
	if err != nil {
		return nil, err
	}
	if !contains(availabilityZones(c.Region), az) {
		return nil, core.Errf("InvalidParameterValue", "Invalid availability zone: [%s]", az)
	}
	spec := volumeSpec{volumeType: p.str("VolumeType"), keyRef: p.str("KmsKeyId")}
	if spec.size, err = p.integer("Size", 0); err != nil {
		return nil, err
	}
	if spec.iops, err = p.integer("Iops", 0); err != nil {
		return nil, err
	}
	if spec.throughput, err = p.integer("Throughput", 0); err != nil {
		return nil, err
	}
	if v, given, err := p.optBool("Encrypted"); err != nil {
		return nil, err
	} else if given {
		spec.encrypted = &v
	}
	if spec.keyRef != "" && (spec.encrypted == nil || !*spec.encrypted) {
		return nil, kmsKeyNeedsEncrypted()
	}
	specs, err := p.tagSpecs("volume")
	if err != nil {
		return nil, err
	}
	if id := p.str("SnapshotId"); id != "" {
		if spec.snapshot, err = find(e, snapshots(), c, id, c.Region); err != nil {
			return nil, err
		}
		if spec.size != 0 && spec.size < spec.snapshot.SizeGiB {
			return nil, core.Errf("InvalidParameterValue", "Volume of size %dGB is smaller than snapshot '%s', expect size >= %dGB", spec.size, id, spec.snapshot.SizeGiB)
		}
	} else if spec.size == 0 {
		return nil, core.Errf("MissingParameter", "The request must contain the parameter size or snapshotId")
	}
	v, kerr := e.newVolume(c, az, spec)
	v.ReadyAt = v.Created.Add(e.clock.Latency(core.LatencyVolumeCreate, 0, false))
	if kerr != nil {
		v.Failed = true
		c.Note("failure", kerr.Message)
	}
	put(e, volumesOf, v)
	if t := tagsFor(specs, "volume"); len(t) > 0 {
		e.setTags(v.ID, c.Account, t)
	}
	c.Note("volumeId", v.ID)
	return e.volumeXML(v, c.Account), nil
}

func (e *view) ec2DeleteVolume(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("VolumeId")
	if err != nil {
		return nil, err
	}
	v, err := own(e, volumes(), c, id)
	if err != nil {
		return nil, err
	}
	if v.InstanceID != "" {
		return nil, core.Errf("VolumeInUse", "Volume %s is currently attached to %s", id, v.InstanceID)
	}
	del(e, volumesOf, v)
	return ec2Return{Return: true}, nil
}

// copyRequest is what CopyImage and CopySnapshot share of their parameters:
// the source, its region (enabled) and the encryption asked for.
type copyRequest struct {
	srcID, srcRegion    string
	encrypted, encGiven bool
	keyRef              string
}

func (e *view) copyRequest(p ec2Params, idParam string) (copyRequest, *core.APIError) {
	var r copyRequest
	var err *core.APIError
	if r.srcID, err = p.required(idParam); err != nil {
		return r, err
	}
	if r.srcRegion, err = p.required("SourceRegion"); err != nil {
		return r, err
	}
	if !e.world.RegionEnabled(r.srcRegion) {
		return r, core.Errf("InvalidParameterValue", "Invalid value '%s' for SourceRegion: the region is unknown or not enabled for this account.", r.srcRegion)
	}
	if r.encrypted, r.encGiven, err = p.optBool("Encrypted"); err != nil {
		return r, err
	}
	r.keyRef = p.str("KmsKeyId")
	if r.keyRef != "" && !r.encrypted {
		return r, kmsKeyNeedsEncrypted()
	}
	return r, nil
}
