package ec2

// ec2_images.go: AMIs. DescribeImages, CreateImage, RegisterImage, CopyImage,
// DeregisterImage, image attributes, deprecation, deregistration protection.

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// ec2Image is one AMI (EBS-backed).
type ec2Image struct {
	ID          string `json:"id"`
	Owner       string `json:"owner"`
	Region      string `json:"region"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`

	Public      bool     `json:"public,omitempty"`
	LaunchUsers []string `json:"launch_users,omitempty"`
	LaunchOrgs  []string `json:"launch_orgs,omitempty"`
	LaunchOUs   []string `json:"launch_ous,omitempty"`

	Architecture       string       `json:"architecture"`
	VirtualizationType string       `json:"virtualization_type"`
	RootDeviceName     string       `json:"root_device_name"`
	EnaSupport         bool         `json:"ena_support,omitempty"`
	SriovNetSupport    string       `json:"sriov_net_support,omitempty"`
	BootMode           string       `json:"boot_mode,omitempty"`
	TpmSupport         string       `json:"tpm_support,omitempty"`
	ImdsSupport        string       `json:"imds_support,omitempty"`
	Platform           string       `json:"platform,omitempty"` // "windows" or "" (Linux/UNIX)
	Mappings           []ec2Mapping `json:"mappings"`

	Created time.Time `json:"created"`
	// ReadyAt is the earliest time the image can be available; it also
	// waits for every backing snapshot to complete.
	ReadyAt time.Time `json:"ready_at"`
	// State is pending, available or failed; pending moves on when read.
	State       string    `json:"state"`
	FailAt      time.Time `json:"fail_at,omitempty"`
	FailCode    string    `json:"fail_code,omitempty"`
	FailMessage string    `json:"fail_message,omitempty"`

	DeprecationTime *time.Time `json:"deprecation_time,omitempty"`
	DeregProtection string     `json:"dereg_protection,omitempty"` // "", enabled, enabled-with-cooldown

	SourceImageID    string `json:"source_image_id,omitempty"`
	SourceRegion     string `json:"source_region,omitempty"`
	SourceInstanceID string `json:"source_instance_id,omitempty"`

	Action    string    `json:"action,omitempty"` // how it was made
	Principal string    `json:"principal,omitempty"`
	Hidden    time.Time `json:"hidden_until,omitempty"`
	Seeded    bool      `json:"seeded,omitempty"`
}

// ec2Mapping is one block device mapping of an image.
type ec2Mapping struct {
	DeviceName          string `json:"device_name"`
	VirtualName         string `json:"virtual_name,omitempty"`
	NoDevice            bool   `json:"no_device,omitempty"`
	SnapshotID          string `json:"snapshot_id,omitempty"`
	SizeGiB             int    `json:"size_gib,omitempty"`
	VolumeType          string `json:"volume_type,omitempty"`
	DeleteOnTermination bool   `json:"delete_on_termination,omitempty"`
	Encrypted           bool   `json:"encrypted,omitempty"`
	KmsKeyARN           string `json:"kms_key_arn,omitempty"`
	Iops                int    `json:"iops,omitempty"`
	Throughput          int    `json:"throughput,omitempty"`
	// HasEbs is false for ephemeral and NoDevice mappings.
	HasEbs bool `json:"has_ebs,omitempty"`
}

// refreshImage moves a pending image on (lock held).
func (e *view) refreshImage(img *ec2Image) {
	if img.State != "pending" {
		return
	}
	now := e.clock.Now()
	if !img.FailAt.IsZero() {
		if !now.Before(img.FailAt) {
			img.State = "failed"
		}
		return
	}
	for _, m := range img.Mappings {
		if m.SnapshotID == "" {
			continue
		}
		snap, ok := get(e, snapshotsOf, m.SnapshotID)
		if !ok {
			img.State, img.FailCode = "failed", "Client.InvalidSnapshot.NotFound"
			img.FailMessage = fmt.Sprintf("Client.InvalidSnapshot.NotFound: The snapshot '%s' does not exist.", m.SnapshotID)
			return
		}
		e.refreshSnapshot(snap)
		switch snap.State {
		case "error":
			img.State, img.FailCode = "failed", "Server.InternalError"
			img.FailMessage = "Server.InternalError: " + snap.FailMessage
			return
		case "pending":
			return
		}
	}
	if !now.Before(img.ReadyAt) {
		img.State = "available"
	}
}

// canLaunch reports whether account may see and use the image.
func (img *ec2Image) canLaunch(account string) bool {
	return img.Owner == account || img.Public || contains(img.LaunchUsers, account)
}

// visibleImage reports whether the caller sees the image now (docs/aws-behaviour.md 3.4 and
// the just-created NotFound fault of docs/aws-behaviour.md 3.14).
func (e *view) visibleImage(img *ec2Image, c *core.Call) bool {
	return img.Region == c.Region && img.canLaunch(c.Account) && !e.clock.Now().Before(img.Hidden)
}

var amiNamePattern = regexp.MustCompile(`^[A-Za-z0-9()\[\] ./\-'@_]{3,128}$`)

// checkAMIName applies docs/aws-behaviour.md 3.11: syntax, then uniqueness per account-region.
func (e *view) checkAMIName(c *core.Call, name string) *core.APIError {
	if name == "" {
		return core.Errf("MissingParameter", "The request must contain the parameter Name")
	}
	if !amiNamePattern.MatchString(name) {
		return core.Errf("InvalidAMIName.Malformed", "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' , '[', ']', ' ', '@', ''' and '_' (got %q)", name)
	}
	for _, img := range allIn(e, imagesOf, c.Region) {
		if img.Owner == c.Account && img.Region == c.Region && img.Name == name {
			return core.Errf("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI %s", name, img.ID)
		}
	}
	return nil
}

// imageUsesAWSManagedKey reports whether a snapshot behind img is encrypted
// under an AWS managed key.
func (e *view) imageUsesAWSManagedKey(img *ec2Image) bool {
	for _, m := range img.Mappings {
		if snap, ok := get(e, snapshotsOf, m.SnapshotID); ok && snap.Encrypted && snap.KeyManager == "AWS" {
			return true
		}
	}
	return false
}

func (img *ec2Image) encrypted() bool {
	for _, m := range img.Mappings {
		if m.Encrypted {
			return true
		}
	}
	return false
}

// recordRegistration remembers how an image was made, for the invariant
// checker.
func (e *view) recordRegistration(c *core.Call, img *ec2Image) {
	r := Registration{ImageID: img.ID, Action: c.Action, Account: c.Account, Region: c.Region,
		Principal: c.Principal, Time: e.clock.Now()}
	for _, m := range img.Mappings {
		if !m.HasEbs || m.SnapshotID == "" && m.KmsKeyARN == "" {
			continue
		}
		if !m.Encrypted {
			r.Unencrypted = append(r.Unencrypted, m.SnapshotID)
		} else if a := core.ARNAccount(m.KmsKeyARN); a != "" && a != img.Owner {
			r.ForeignKeys = append(r.ForeignKeys, m.KmsKeyARN)
		}
	}
	st := e.own(c)
	st.Registrations = append(st.Registrations, r)
	c.Note("imageId", img.ID)
}

// hideIfFault makes a new resource invisible for a moment when the
// NotFound-after-create fault fires (docs/aws-behaviour.md 3.14).
func (e *view) hideIfFault(c *core.Call) time.Time {
	if e.faults.Fires(core.FaultNotFoundAfterNew, c, c.Action) {
		return e.clock.Now().Add(e.clock.Scaled(5 * time.Second))
	}
	return time.Time{}
}

// ---- XML shapes ----

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type xmlStateReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type xmlEbs struct {
	SnapshotID          string `xml:"snapshotId,omitempty"`
	VolumeSize          int    `xml:"volumeSize,omitempty"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
	VolumeType          string `xml:"volumeType,omitempty"`
	Iops                int    `xml:"iops,omitempty"`
	Throughput          int    `xml:"throughput,omitempty"`
	Encrypted           bool   `xml:"encrypted"`
	// No kmsKeyId: AWS returns it only in the block device mappings of
	// RunInstances, RequestSpotInstances and CreateFleet, never in an
	// image's (docs/aws-behaviour.md, "DescribeImages does not return
	// KmsKeyId"); clients read the key from DescribeSnapshots.
}

type xmlBlockDeviceMapping struct {
	DeviceName  string  `xml:"deviceName"`
	VirtualName string  `xml:"virtualName,omitempty"`
	Ebs         *xmlEbs `xml:"ebs,omitempty"`
	NoDevice    *string `xml:"noDevice,omitempty"`
}

type xmlImage struct {
	ImageID                  string                  `xml:"imageId"`
	ImageLocation            string                  `xml:"imageLocation"`
	ImageState               string                  `xml:"imageState"`
	ImageOwnerID             string                  `xml:"imageOwnerId"`
	CreationDate             string                  `xml:"creationDate"`
	IsPublic                 bool                    `xml:"isPublic"`
	Architecture             string                  `xml:"architecture"`
	ImageType                string                  `xml:"imageType"`
	ImageOwnerAlias          string                  `xml:"imageOwnerAlias,omitempty"`
	Name                     string                  `xml:"name"`
	Description              string                  `xml:"description,omitempty"`
	RootDeviceType           string                  `xml:"rootDeviceType"`
	RootDeviceName           string                  `xml:"rootDeviceName"`
	BlockDeviceMapping       []xmlBlockDeviceMapping `xml:"blockDeviceMapping>item"`
	VirtualizationType       string                  `xml:"virtualizationType"`
	TagSet                   []xmlTag                `xml:"tagSet>item,omitempty"`
	Hypervisor               string                  `xml:"hypervisor"`
	EnaSupport               bool                    `xml:"enaSupport"`
	SriovNetSupport          string                  `xml:"sriovNetSupport,omitempty"`
	StateReason              *xmlStateReason         `xml:"stateReason,omitempty"`
	BootMode                 string                  `xml:"bootMode,omitempty"`
	TpmSupport               string                  `xml:"tpmSupport,omitempty"`
	ImdsSupport              string                  `xml:"imdsSupport,omitempty"`
	DeprecationTime          string                  `xml:"deprecationTime,omitempty"`
	DeregistrationProtection string                  `xml:"deregistrationProtection,omitempty"`
	Platform                 string                  `xml:"platform,omitempty"`
	PlatformDetails          string                  `xml:"platformDetails"`
	UsageOperation           string                  `xml:"usageOperation"`
	SourceImageID            string                  `xml:"sourceImageId,omitempty"`
	SourceImageRegion        string                  `xml:"sourceImageRegion,omitempty"`
	SourceInstanceID         string                  `xml:"sourceInstanceId,omitempty"`
}

// billing is the PlatformDetails and UsageOperation of a platform, as
// AWS's table of AMI billing information lists them (docs/aws-behaviour.md
// 8.7): Linux/UNIX and RunInstances, Windows and RunInstances:0002.
func billing(platform string) (details, usageOperation string) {
	if platform == "windows" {
		return "Windows", "RunInstances:0002"
	}
	return "Linux/UNIX", "RunInstances"
}

func mappingsXML(ms []ec2Mapping) []xmlBlockDeviceMapping {
	out := make([]xmlBlockDeviceMapping, 0, len(ms))
	for _, m := range ms {
		x := xmlBlockDeviceMapping{DeviceName: m.DeviceName, VirtualName: m.VirtualName}
		if m.NoDevice {
			empty := ""
			x.NoDevice = &empty
		}
		if m.HasEbs {
			x.Ebs = &xmlEbs{SnapshotID: m.SnapshotID, VolumeSize: m.SizeGiB, DeleteOnTermination: m.DeleteOnTermination,
				VolumeType: m.VolumeType, Iops: m.Iops, Throughput: m.Throughput, Encrypted: m.Encrypted}
		}
		out = append(out, x)
	}
	return out
}

func (e *view) imageXML(img *ec2Image, account string) xmlImage {
	x := xmlImage{
		ImageID: img.ID, ImageLocation: img.Owner + "/" + img.Name, ImageState: img.State, ImageOwnerID: img.Owner,
		CreationDate: ec2Time(img.Created), IsPublic: img.Public, Architecture: img.Architecture, ImageType: "machine",
		ImageOwnerAlias: e.aliases[img.Owner], Name: img.Name, Description: img.Description,
		RootDeviceType: "ebs", RootDeviceName: img.RootDeviceName, BlockDeviceMapping: mappingsXML(img.Mappings),
		VirtualizationType: img.VirtualizationType, TagSet: e.tagSet(img.ID, account), Hypervisor: "xen",
		EnaSupport: img.EnaSupport, SriovNetSupport: img.SriovNetSupport, BootMode: img.BootMode,
		TpmSupport: img.TpmSupport, ImdsSupport: img.ImdsSupport,
		SourceImageID: img.SourceImageID, SourceImageRegion: img.SourceRegion, SourceInstanceID: img.SourceInstanceID,
	}
	x.Platform = img.Platform
	x.PlatformDetails, x.UsageOperation = billing(img.Platform)
	if x.ImageOwnerAlias != "" {
		x.ImageLocation = x.ImageOwnerAlias + "/" + img.Name
	}
	if img.State == "failed" {
		x.StateReason = &xmlStateReason{Code: img.FailCode, Message: img.FailMessage}
	}
	if img.DeprecationTime != nil {
		x.DeprecationTime = ec2Time(*img.DeprecationTime)
	}
	x.DeregistrationProtection = "disabled"
	if img.DeregProtection != "" {
		x.DeregistrationProtection = img.DeregProtection
	}
	return x
}

// ---- DescribeImages ----

type describeImagesOutput struct {
	ImagesSet []xmlImage `xml:"imagesSet>item"`
	NextToken string     `xml:"nextToken,omitempty"`
}

func (e *view) ec2DescribeImages(c *core.Call, p ec2Params) (any, *core.APIError) {
	owners := p.list("Owner")
	execBy := p.list("ExecutableBy")
	includeDeprecated, err := p.boolean("IncludeDeprecated")
	if err != nil {
		return nil, err
	}
	now := e.clock.Now()
	page, next, err := describe(e, images(), c, p, "ImageId",
		func(img *ec2Image) bool { return e.visibleImage(img, c) },
		func(img *ec2Image, byID bool) bool {
			if len(owners) > 0 && !e.ownerMatches(owners, img.Owner, c.Account) {
				return false
			}
			if len(execBy) > 0 && !permitted(execBy, img.Owner, img.Public, img.LaunchUsers, c.Account) {
				return false
			}
			// Deprecated images of others are listed only by ID or on request.
			return byID || includeDeprecated || img.Owner == c.Account || img.DeprecationTime == nil || now.Before(*img.DeprecationTime)
		},
		func(img *ec2Image, name string) ([]string, bool) { return e.imageFilterValues(img, c.Account, name) })
	if err != nil {
		return nil, err
	}
	out := describeImagesOutput{NextToken: next, ImagesSet: []xmlImage{}}
	for _, img := range page {
		out.ImagesSet = append(out.ImagesSet, e.imageXML(img, c.Account))
	}
	return out, nil
}

// ownerMatches implements the Owner.N parameter: self, amazon, account IDs.
func (e *view) ownerMatches(owners []string, owner, caller string) bool {
	for _, o := range owners {
		switch o {
		case "self":
			if owner == caller {
				return true
			}
		case owner:
			return true
		default:
			if e.aliases[owner] == o {
				return true
			}
		}
	}
	return false
}

func (e *view) imageFilterValues(img *ec2Image, account, name string) ([]string, bool) {
	if v, ok, handled := e.tagFilterValues(img.ID, account, name); handled {
		return v, ok
	}
	switch name {
	case "name":
		return []string{img.Name}, true
	case "image-id":
		return []string{img.ID}, true
	case "state":
		return []string{img.State}, true
	case "owner-id":
		return []string{img.Owner}, true
	case "owner-alias":
		return []string{e.aliases[img.Owner]}, true
	case "is-public":
		return []string{fmt.Sprint(img.Public)}, true
	case "architecture":
		return []string{img.Architecture}, true
	case "description":
		return []string{img.Description}, true
	case "virtualization-type":
		return []string{img.VirtualizationType}, true
	case "root-device-type":
		return []string{"ebs"}, true
	case "root-device-name":
		return []string{img.RootDeviceName}, true
	case "image-type":
		return []string{"machine"}, true
	case "hypervisor":
		return []string{"xen"}, true
	case "ena-support":
		return []string{fmt.Sprint(img.EnaSupport)}, true
	case "boot-mode":
		return []string{img.BootMode}, true
	case "platform":
		return []string{img.Platform}, true
	case "source-image-id":
		return []string{img.SourceImageID}, true
	case "block-device-mapping.snapshot-id", "block-device-mapping.encrypted", "block-device-mapping.device-name",
		"block-device-mapping.volume-size", "block-device-mapping.volume-type", "block-device-mapping.delete-on-termination":
		var out []string
		for _, m := range img.Mappings {
			switch name {
			case "block-device-mapping.snapshot-id":
				out = append(out, m.SnapshotID)
			case "block-device-mapping.encrypted":
				out = append(out, fmt.Sprint(m.Encrypted))
			case "block-device-mapping.device-name":
				out = append(out, m.DeviceName)
			case "block-device-mapping.volume-size":
				out = append(out, fmt.Sprint(m.SizeGiB))
			case "block-device-mapping.volume-type":
				out = append(out, m.VolumeType)
			default:
				out = append(out, fmt.Sprint(m.DeleteOnTermination))
			}
		}
		return out, true
	}
	return nil, false
}

// ---- CreateImage ----

type imageIDOutput struct {
	ImageID string `xml:"imageId"`
}

func (e *view) ec2CreateImage(c *core.Call, p ec2Params) (any, *core.APIError) {
	instID, err := p.required("InstanceId")
	if err != nil {
		return nil, err
	}
	name := p.str("Name")
	if err := e.checkAMIName(c, name); err != nil {
		return nil, err
	}
	specs, err := p.tagSpecs("image", "snapshot")
	if err != nil {
		return nil, err
	}
	inst, err := own(e, instances(), c, instID)
	if err != nil {
		return nil, err
	}
	if inst.State != "running" && inst.State != "stopped" {
		return nil, core.Errf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be imaged.", instID)
	}
	reqMappings, err := parseBlockDeviceMappings(p)
	if err != nil {
		return nil, err
	}
	now := e.clock.Now()
	img := &ec2Image{
		ID: e.newID("ami"), Owner: c.Account, Region: c.Region, Name: name, Description: p.str("Description"),
		Architecture: inst.Architecture, VirtualizationType: inst.VirtualizationType, RootDeviceName: inst.RootDeviceName,
		EnaSupport: inst.EnaSupport, SriovNetSupport: inst.SriovNetSupport, BootMode: inst.BootMode,
		TpmSupport: inst.TpmSupport, ImdsSupport: inst.ImdsSupport, Platform: inst.Platform,
		Created: now, ReadyAt: now.Add(e.clock.Latency(core.LatencyImageRegister, 0, false)), State: "pending",
		SourceInstanceID: inst.ID, Action: c.Action, Principal: c.Principal, Hidden: e.hideIfFault(c),
	}
	snapTags := tagsFor(specs, "snapshot")
	for _, att := range inst.Attachments {
		vol, ok := get(e, volumesOf, att.VolumeID)
		if !ok {
			continue
		}
		m := ec2Mapping{DeviceName: att.DeviceName, SizeGiB: vol.SizeGiB, VolumeType: vol.VolumeType,
			DeleteOnTermination: att.DeleteOnTermination, Encrypted: vol.Encrypted, KmsKeyARN: vol.KmsKeyARN,
			Iops: vol.Iops, Throughput: vol.Throughput, HasEbs: true}
		if r, ok := reqMappings[att.DeviceName]; ok {
			if r.NoDevice {
				continue
			}
			if r.Ebs != nil && r.Ebs.VolumeSize > m.SizeGiB {
				m.SizeGiB = r.Ebs.VolumeSize
			}
			if r.Ebs != nil && r.Ebs.DeleteOnTermination != nil {
				m.DeleteOnTermination = *r.Ebs.DeleteOnTermination
			}
		}
		snap := e.snapshotVolume(c, vol, fmt.Sprintf("Created by CreateImage(%s) for %s", inst.ID, img.ID))
		if len(snapTags) > 0 {
			e.setTags(snap.ID, c.Account, snapTags)
		}
		m.SnapshotID = snap.ID
		img.Mappings = append(img.Mappings, m)
		c.Note("snapshotId."+att.DeviceName, snap.ID)
	}
	sort.Slice(img.Mappings, func(i, j int) bool { return img.Mappings[i].DeviceName < img.Mappings[j].DeviceName })
	putImage(e, img)
	if t := tagsFor(specs, "image"); len(t) > 0 {
		e.setTags(img.ID, c.Account, t)
	}
	e.recordRegistration(c, img)
	return imageIDOutput{ImageID: img.ID}, nil
}

// ---- RegisterImage ----

func (e *view) ec2RegisterImage(c *core.Call, p ec2Params) (any, *core.APIError) {
	name := p.str("Name")
	if err := e.checkAMIName(c, name); err != nil {
		return nil, err
	}
	if p.str("ImageLocation") != "" {
		return nil, core.Errf("InvalidParameterCombination", "awsemu registers EBS-backed AMIs only; ImageLocation (instance store) is not supported")
	}
	specs, err := p.tagSpecs("image")
	if err != nil {
		return nil, err
	}
	root, err := p.required("RootDeviceName")
	if err != nil {
		return nil, err
	}
	reqMappings, err := parseBlockDeviceMappings(p)
	if err != nil {
		return nil, err
	}
	ena, _, err := p.optBool("EnaSupport")
	if err != nil {
		return nil, err
	}
	if _, err := oneOfValues(p, "ImdsSupport", "v2.0"); err != nil {
		return nil, err
	}
	now := e.clock.Now()
	img := &ec2Image{
		ID: e.newID("ami"), Owner: c.Account, Region: c.Region, Name: name, Description: p.str("Description"),
		Architecture: orDefault(p.str("Architecture"), "i386"), VirtualizationType: orDefault(p.str("VirtualizationType"), "paravirtual"),
		RootDeviceName: root, EnaSupport: ena, SriovNetSupport: p.str("SriovNetSupport"), BootMode: p.str("BootMode"),
		TpmSupport: p.str("TpmSupport"), ImdsSupport: p.str("ImdsSupport"),
		Created: now, ReadyAt: now.Add(e.clock.Latency(core.LatencyImageRegister, 0, false)), State: "pending",
		Action: c.Action, Principal: c.Principal,
	}
	rootMapped := false
	for _, dev := range sortedKeys(reqMappings) {
		r := reqMappings[dev]
		m := ec2Mapping{DeviceName: dev, VirtualName: r.VirtualName, NoDevice: r.NoDevice}
		if r.Ebs != nil && !r.NoDevice {
			m.HasEbs = true
			m.VolumeType = orDefault(r.Ebs.VolumeType, "gp2")
			m.DeleteOnTermination = r.Ebs.DeleteOnTermination == nil || *r.Ebs.DeleteOnTermination
			m.Iops, m.Throughput, m.SizeGiB = r.Ebs.Iops, r.Ebs.Throughput, r.Ebs.VolumeSize
			if r.Ebs.SnapshotID != "" {
				snap, err := find(e, snapshots(), c, r.Ebs.SnapshotID, c.Region)
				if err != nil {
					return nil, err
				}
				if snap.State == "error" {
					return nil, core.Errf("IncorrectState", "Snapshot %s is in state error and can't be registered.", snap.ID)
				}
				if m.SizeGiB == 0 {
					m.SizeGiB = snap.SizeGiB
				}
				if m.SizeGiB < snap.SizeGiB {
					return nil, core.Errf("InvalidBlockDeviceMapping", "Volume of size %dGB is smaller than snapshot '%s', expect size >= %dGB", m.SizeGiB, snap.ID, snap.SizeGiB)
				}
				m.SnapshotID, m.Encrypted, m.KmsKeyARN = snap.ID, snap.Encrypted, snap.KmsKeyARN
			} else if m.SizeGiB == 0 {
				return nil, core.Errf("InvalidBlockDeviceMapping", "The block device mapping for %s needs a snapshot ID or a volume size.", dev)
			}
			if dev == root && m.SnapshotID != "" {
				rootMapped = true
				// RegisterImage derives the billing information from the
				// root snapshot's metadata (docs/aws-behaviour.md 8.7).
				if snap, ok := get(e, snapshotsOf, m.SnapshotID); ok {
					img.Platform = snap.Platform
				}
			}
		}
		img.Mappings = append(img.Mappings, m)
	}
	if !rootMapped {
		return nil, core.Errf("InvalidBlockDeviceMapping", "The root device %s needs a block device mapping with a snapshot ID.", root)
	}
	putImage(e, img)
	img.Hidden = e.hideIfFault(c)
	if t := tagsFor(specs, "image"); len(t) > 0 {
		e.setTags(img.ID, c.Account, t)
	}
	e.recordRegistration(c, img)
	return imageIDOutput{ImageID: img.ID}, nil
}

// reqMapping is one BlockDeviceMapping.N of a request.
type reqMapping struct {
	DeviceName  string
	VirtualName string
	NoDevice    bool
	Ebs         *reqEbs
}

type reqEbs struct {
	SnapshotID          string
	VolumeSize          int
	VolumeType          string
	DeleteOnTermination *bool
	Encrypted           *bool
	KmsKeyID            string
	Iops, Throughput    int
}

// parseBlockDeviceMappings reads BlockDeviceMapping.N.* keyed by device.
func parseBlockDeviceMappings(p ec2Params) (map[string]reqMapping, *core.APIError) {
	out := map[string]reqMapping{}
	for _, n := range p.indices("BlockDeviceMapping") {
		pre := fmt.Sprintf("BlockDeviceMapping.%d.", n)
		r := reqMapping{DeviceName: p.str(pre + "DeviceName"), VirtualName: p.str(pre + "VirtualName"), NoDevice: p.has(pre + "NoDevice")}
		if r.DeviceName == "" {
			return nil, core.Errf("MissingParameter", "The request must contain the parameter %sDeviceName", pre)
		}
		if p.hasPrefix(pre + "Ebs.") {
			ebs := &reqEbs{SnapshotID: p.str(pre + "Ebs.SnapshotId"), VolumeType: p.str(pre + "Ebs.VolumeType"), KmsKeyID: p.str(pre + "Ebs.KmsKeyId")}
			var err *core.APIError
			if ebs.VolumeSize, err = p.integer(pre+"Ebs.VolumeSize", 0); err != nil {
				return nil, err
			}
			if ebs.Iops, err = p.integer(pre+"Ebs.Iops", 0); err != nil {
				return nil, err
			}
			if ebs.Throughput, err = p.integer(pre+"Ebs.Throughput", 0); err != nil {
				return nil, err
			}
			if v, given, err := p.optBool(pre + "Ebs.DeleteOnTermination"); err != nil {
				return nil, err
			} else if given {
				ebs.DeleteOnTermination = &v
			}
			if v, given, err := p.optBool(pre + "Ebs.Encrypted"); err != nil {
				return nil, err
			} else if given {
				ebs.Encrypted = &v
			}
			if ebs.KmsKeyID != "" && (ebs.Encrypted == nil || !*ebs.Encrypted) {
				return nil, kmsKeyNeedsEncrypted()
			}
			r.Ebs = ebs
		}
		out[r.DeviceName] = r
	}
	return out, nil
}

// hasPrefix reports whether any parameter name starts with prefix.
func (p ec2Params) hasPrefix(prefix string) bool {
	for k := range p.v {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// ---- CopyImage ----

func (e *view) ec2CopyImage(c *core.Call, p ec2Params) (any, *core.APIError) {
	tokenKey, earlier, err := e.clientToken(c, p)
	if err != nil {
		return nil, err
	}
	if earlier != "" {
		return imageIDOutput{ImageID: earlier}, nil
	}
	cp, err := e.copyRequest(p, "SourceImageId")
	if err != nil {
		return nil, err
	}
	srcID, srcRegion, encrypted, encGiven, keyRef := cp.srcID, cp.srcRegion, cp.encrypted, cp.encGiven, cp.keyRef
	copyTags, err := p.boolean("CopyImageTags")
	if err != nil {
		return nil, err
	}
	name := p.str("Name")
	if err := e.checkAMIName(c, name); err != nil {
		return nil, err
	}
	specs, err := p.tagSpecs("image", "snapshot")
	if err != nil {
		return nil, err
	}
	src, err := find(e, images(), c, srcID, srcRegion)
	if err != nil {
		return nil, err
	}
	if src.State != "available" {
		return nil, core.Errf("IncorrectState", "Image %s is in state %s; only available images can be copied.", src.ID, src.State)
	}
	for _, m := range src.Mappings {
		if m.SnapshotID == "" {
			continue
		}
		snap, ok := get(e, snapshotsOf, m.SnapshotID)
		if !ok || (src.Owner != c.Account && !src.Public && !snap.canRestore(c.Account)) {
			return nil, snapshotNotFound(m.SnapshotID)
		}
		if snap.Encrypted && encGiven && !encrypted {
			return nil, unencryptedCopy(snap.ID)
		}
	}
	if n := e.imageCopiesInFlight(c); n >= e.opts.Limits.ConcurrentImageCopies {
		return nil, core.Errf("ResourceLimitExceeded", "You have reached your quota of %d concurrent AMI copies in %s. Wait for copies in progress to finish.", e.opts.Limits.ConcurrentImageCopies, c.Region)
	}

	now := e.clock.Now()
	cross := srcRegion != c.Region
	img := &ec2Image{
		ID: e.newID("ami"), Owner: c.Account, Region: c.Region, Name: name, Description: p.str("Description"),
		Architecture: src.Architecture, VirtualizationType: src.VirtualizationType, RootDeviceName: src.RootDeviceName,
		EnaSupport: src.EnaSupport, SriovNetSupport: src.SriovNetSupport, BootMode: src.BootMode,
		TpmSupport: src.TpmSupport, ImdsSupport: src.ImdsSupport, Platform: src.Platform,
		Created: now, ReadyAt: now.Add(e.clock.Latency(core.LatencyImageRegister, 0, false)), State: "pending",
		SourceImageID: src.ID, SourceRegion: srcRegion, Action: c.Action, Principal: c.Principal,
		Hidden: e.hideIfFault(c),
	}
	fails := e.faults.Fires(core.FaultCopyFails, c, c.Action)
	snapTags := tagsFor(specs, "snapshot")
	for _, m := range src.Mappings {
		nm := m
		if m.SnapshotID == "" {
			img.Mappings = append(img.Mappings, nm)
			continue
		}
		snap, _ := get(e, snapshotsOf, m.SnapshotID)
		plan, kerr := e.planCopy(c, snap, srcRegion, encrypted, keyRef)
		if kerr != nil {
			// Rule 3.4: the copy is accepted and fails later.
			img.FailAt = now.Add(e.clock.Latency(core.LatencySnapshotCopy, 0, cross))
			img.FailCode = "Client.InvalidKMSKey.InvalidState"
			img.FailMessage = kerr.Message
			nm.SnapshotID = ""
			nm.Encrypted, nm.KmsKeyARN = plan.encrypted, plan.keyARN
			img.Mappings = append(img.Mappings, nm)
			continue
		}
		cp := e.newSnapshotCopy(c, now, snap, srcRegion, plan, fmt.Sprintf("Copied for DestinationAmi %s from SourceAmi %s for SourceSnapshot %s. Task created on %s.", img.ID, src.ID, snap.ID, now.Format("2006-01-02,15:04:05")))
		cp.ImageCopy = img.ID
		if fails {
			cp.Fails, cp.FailMessage = true, "Internal error on copy"
		}
		if len(snapTags) > 0 {
			e.setTags(cp.ID, c.Account, snapTags)
		}
		nm.SnapshotID, nm.Encrypted, nm.KmsKeyARN = cp.ID, cp.Encrypted, cp.KmsKeyARN
		img.Mappings = append(img.Mappings, nm)
		c.Note("snapshotId."+m.DeviceName, cp.ID)
		if cp.KmsKeyARN != "" {
			c.Note("kmsKeyArn", cp.KmsKeyARN)
		}
	}
	if !img.FailAt.IsZero() {
		// No snapshot of a copy that fails on its key survives it.
		for _, m := range img.Mappings {
			if s, ok := get(e, snapshotsOf, m.SnapshotID); ok && s.ImageCopy == img.ID {
				del(e, snapshotsOf, s)
			}
		}
		for i := range img.Mappings {
			img.Mappings[i].SnapshotID = ""
		}
		c.Note("failure", img.FailMessage)
	}
	putImage(e, img)
	tags := map[string]string{}
	if copyTags {
		// Rule 3.6: only the tags the caller's own account wrote are
		// visible to it, so only those are copied.
		for k, v := range e.tagsOf(src.ID, src.Region, c.Account) {
			tags[k] = v
		}
	}
	for k, v := range tagsFor(specs, "image") {
		tags[k] = v
	}
	if len(tags) > 0 {
		e.setTags(img.ID, c.Account, tags)
	}
	e.recordRegistration(c, img)
	e.rememberToken(c, tokenKey, p, img.ID)
	return imageIDOutput{ImageID: img.ID}, nil
}

func (e *view) imageCopiesInFlight(c *core.Call) int {
	n := 0
	for _, img := range mine(e, imagesOf, c) {
		if img.Action == "CopyImage" && img.State == "pending" {
			e.refreshImage(img)
			if img.State == "pending" {
				n++
			}
		}
	}
	return n
}

// ---- DeregisterImage ----

type deregisterImageOutput struct {
	Return  bool                   `xml:"return"`
	Deleted []xmlDeleteSnapshotRet `xml:"deleteSnapshotResultSet>item,omitempty"`
}

type xmlDeleteSnapshotRet struct {
	SnapshotID string `xml:"snapshotId"`
	ReturnCode string `xml:"returnCode"`
}

func (e *view) ec2DeregisterImage(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("ImageId")
	if err != nil {
		return nil, err
	}
	deleteSnaps, err := p.boolean("DeleteAssociatedSnapshots")
	if err != nil {
		return nil, err
	}
	img, err := own(e, images(), c, id)
	if err != nil {
		return nil, err
	}
	if img.DeregProtection != "" {
		return nil, core.Errf("OperationNotPermitted", "Image %s has deregistration protection enabled. Disable it before you deregister the image.", id)
	}
	del(e, imagesOf, img)
	out := deregisterImageOutput{Return: true}
	if deleteSnaps {
		for _, m := range img.Mappings {
			snap, ok := get(e, snapshotsOf, m.SnapshotID)
			switch {
			case !ok:
				continue
			case snap.Owner != c.Account:
				out.Deleted = append(out.Deleted, xmlDeleteSnapshotRet{snap.ID, "missing-permissions"})
			case e.snapshotUser(snap.ID) != "":
				out.Deleted = append(out.Deleted, xmlDeleteSnapshotRet{snap.ID, "skipped"})
			default:
				del(e, snapshotsOf, snap)
				out.Deleted = append(out.Deleted, xmlDeleteSnapshotRet{snap.ID, "success"})
				c.Note("deletedSnapshot."+snap.ID, "success")
			}
		}
	}
	c.Note("imageId", id)
	return out, nil
}

// ---- image attributes ----

type xmlLaunchPermission struct {
	Group                 string `xml:"group,omitempty"`
	UserID                string `xml:"userId,omitempty"`
	OrganizationArn       string `xml:"organizationArn,omitempty"`
	OrganizationalUnitArn string `xml:"organizationalUnitArn,omitempty"`
}

type describeImageAttributeOutput struct {
	ImageID                  string                   `xml:"imageId"`
	LaunchPermission         *[]xmlLaunchPermission   `xml:"launchPermission>item,omitempty"`
	Description              *ec2ValueString          `xml:"description,omitempty"`
	BlockDeviceMapping       *[]xmlBlockDeviceMapping `xml:"blockDeviceMapping>item,omitempty"`
	BootMode                 *ec2ValueString          `xml:"bootMode,omitempty"`
	TpmSupport               *ec2ValueString          `xml:"tpmSupport,omitempty"`
	ImdsSupport              *ec2ValueString          `xml:"imdsSupport,omitempty"`
	SriovNetSupport          *ec2ValueString          `xml:"sriovNetSupport,omitempty"`
	DeregistrationProtection *ec2ValueString          `xml:"deregistrationProtection,omitempty"`
	LastLaunchedTime         *ec2ValueString          `xml:"lastLaunchedTime,omitempty"`
	Kernel                   *ec2ValueString          `xml:"kernel,omitempty"`
	Ramdisk                  *ec2ValueString          `xml:"ramdisk,omitempty"`
	ProductCodes             *[]struct{}              `xml:"productCodes>item,omitempty"`
}

func launchPermissionsXML(img *ec2Image) []xmlLaunchPermission {
	var out []xmlLaunchPermission
	if img.Public {
		out = append(out, xmlLaunchPermission{Group: "all"})
	}
	for _, u := range img.LaunchUsers {
		out = append(out, xmlLaunchPermission{UserID: u})
	}
	for _, o := range img.LaunchOrgs {
		out = append(out, xmlLaunchPermission{OrganizationArn: o})
	}
	for _, o := range img.LaunchOUs {
		out = append(out, xmlLaunchPermission{OrganizationalUnitArn: o})
	}
	return out
}

func (e *view) ec2DescribeImageAttribute(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("ImageId")
	if err != nil {
		return nil, err
	}
	attr, err := p.required("Attribute")
	if err != nil {
		return nil, err
	}
	img, err := own(e, images(), c, id)
	if err != nil {
		return nil, err
	}
	out := describeImageAttributeOutput{ImageID: id}
	val := func(s string) *ec2ValueString { return &ec2ValueString{Value: s} }
	switch attr {
	case "launchPermission":
		lp := launchPermissionsXML(img)
		out.LaunchPermission = &lp
	case "description":
		out.Description = val(img.Description)
	case "blockDeviceMapping":
		m := mappingsXML(img.Mappings)
		out.BlockDeviceMapping = &m
	case "bootMode":
		out.BootMode = val(img.BootMode)
	case "tpmSupport":
		out.TpmSupport = val(img.TpmSupport)
	case "imdsSupport":
		out.ImdsSupport = val(img.ImdsSupport)
	case "sriovNetSupport":
		out.SriovNetSupport = val(img.SriovNetSupport)
	case "deregistrationProtection":
		out.DeregistrationProtection = val(orDefault(img.DeregProtection, "disabled"))
	case "lastLaunchedTime":
		out.LastLaunchedTime = val("")
	case "kernel":
		out.Kernel = val("")
	case "ramdisk":
		out.Ramdisk = val("")
	case "productCodes":
		out.ProductCodes = &[]struct{}{}
	default:
		return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Unknown attribute.", attr)
	}
	return out, nil
}

func (e *view) ec2ModifyImageAttribute(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("ImageId")
	if err != nil {
		return nil, err
	}
	img, err := own(e, images(), c, id)
	if err != nil {
		return nil, err
	}
	if err := productCodesUnsupported(p); err != nil {
		return nil, err
	}
	if p.has("Description.Value") || (p.str("Attribute") == "description" && p.has("Value")) {
		img.Description = orDefault(p.str("Description.Value"), p.str("Value"))
		return nil, nil
	}
	if p.has("ImdsSupport.Value") || (p.str("Attribute") == "imdsSupport" && p.has("Value")) {
		// v2.0 is the only value, and once set it can't be undone
		// (API_ModifyImageAttribute.html); the texts are an emulator
		// convention.
		v := orDefault(p.str("ImdsSupport.Value"), p.str("Value"))
		if v != "v2.0" {
			if img.ImdsSupport == "v2.0" {
				return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter ImdsSupport is invalid. The image %s already has ImdsSupport v2.0, which can't be undone; register a new image from its snapshots instead.", v, img.ID)
			}
			return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter ImdsSupport is invalid. Expected one of: [v2.0]", v)
		}
		img.ImdsSupport = v
		return nil, nil
	}
	legacy := permissionChange{Users: p.list("UserId"), Groups: p.list("UserGroup"),
		Orgs: p.list("OrganizationArn"), OUs: p.list("OrganizationalUnitArn")}
	add, remove, err := readPermissionChange(p, "LaunchPermission", legacy, "LaunchPermission, Description or ImdsSupport",
		func(field, v string) *core.APIError {
			return core.Errf("InvalidAMIAttributeItemValue", "Invalid attribute item value \"%s\" for %s item type.", v, field)
		})
	if err != nil {
		return nil, err
	}
	if !add.empty() {
		if e.imageUsesAWSManagedKey(img) {
			return nil, core.Errf("InvalidParameter", "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify another snapshot.")
		}
		if len(add.Groups) > 0 && img.encrypted() {
			return nil, core.Errf("InvalidParameter", "Encrypted AMIs can't be made public. Image %s has encrypted snapshots.", img.ID)
		}
	}
	applyPermissions(c, "launchPermission", img.ID, img.Owner, &img.LaunchUsers, &img.Public, add, remove)
	img.LaunchOrgs = removeAll(appendUnique(img.LaunchOrgs, add.Orgs...), remove.Orgs...)
	img.LaunchOUs = removeAll(appendUnique(img.LaunchOUs, add.OUs...), remove.OUs...)
	return nil, nil
}

// productCodesUnsupported refuses product codes in ModifyImageAttribute:
// the API reference documents ProductCode.N as "Not supported" and the
// attribute as one of description, imdsSupport and launchPermission; an
// AWS Marketplace product code is attached by Marketplace, never by its
// seller's ModifyImageAttribute, and no account of the world is a seller
// (docs/aws-behaviour.md 8.6).
func productCodesUnsupported(p ec2Params) *core.APIError {
	if codes := p.list("ProductCode"); len(codes) > 0 {
		return core.Errf("InvalidParameterValue", "Product code in ami manifest does not have a configured relationship with Amazon EC2: %s", codes[0])
	}
	if p.str("Attribute") == "productCodes" {
		return core.Errf("InvalidParameterValue", "Value (productCodes) for parameter attribute is invalid. Valid values are description, imdsSupport and launchPermission.")
	}
	return nil
}

func (e *view) ec2ResetImageAttribute(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("ImageId")
	if err != nil {
		return nil, err
	}
	img, err := own(e, images(), c, id)
	if err != nil {
		return nil, err
	}
	if p.str("Attribute") != "launchPermission" {
		return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Only launchPermission can be reset.", p.str("Attribute"))
	}
	img.Public, img.LaunchUsers, img.LaunchOrgs, img.LaunchOUs = false, nil, nil, nil
	return ec2Return{Return: true}, nil
}

func (e *view) ec2EnableImageDeprecation(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("ImageId")
	if err != nil {
		return nil, err
	}
	at, err := p.required("DeprecateAt")
	if err != nil {
		return nil, err
	}
	img, err := own(e, images(), c, id)
	if err != nil {
		return nil, err
	}
	t, perr := time.Parse(time.RFC3339, at)
	if perr != nil {
		return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter DeprecateAt is invalid. Expected a UTC timestamp like 2025-01-02T15:04:00Z.", at)
	}
	t = t.UTC().Truncate(time.Minute)
	img.DeprecationTime = &t
	return ec2Return{Return: true}, nil
}

func (e *view) ec2DisableImageDeprecation(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("ImageId")
	if err != nil {
		return nil, err
	}
	img, err := own(e, images(), c, id)
	if err != nil {
		return nil, err
	}
	img.DeprecationTime = nil
	return ec2Return{Return: true}, nil
}

type stringReturn struct {
	Return string `xml:"return"`
}

func (e *view) ec2EnableImageDeregistrationProtection(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("ImageId")
	if err != nil {
		return nil, err
	}
	cooldown, err := p.boolean("WithCooldown")
	if err != nil {
		return nil, err
	}
	img, err := own(e, images(), c, id)
	if err != nil {
		return nil, err
	}
	img.DeregProtection = "enabled"
	if cooldown {
		img.DeregProtection = "enabled-with-cooldown"
	}
	return stringReturn{Return: "true"}, nil
}

func (e *view) ec2DisableImageDeregistrationProtection(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("ImageId")
	if err != nil {
		return nil, err
	}
	img, err := own(e, images(), c, id)
	if err != nil {
		return nil, err
	}
	img.DeregProtection = ""
	return stringReturn{Return: "true"}, nil
}

// ---- small helpers ----

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func appendUnique(list []string, vs ...string) []string {
	for _, v := range vs {
		if !contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

func removeAll(list []string, vs ...string) []string {
	out := list[:0:0]
	for _, x := range list {
		if !contains(vs, x) {
			out = append(out, x)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
