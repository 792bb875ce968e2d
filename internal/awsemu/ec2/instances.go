package ec2

// ec2_instances.go: RunInstances and the instance life cycle
// (pending → running, stopping → stopped, shutting-down → terminated).

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// ec2Instance is one EC2 instance.
type ec2Instance struct {
	ID             string   `json:"id"`
	Owner          string   `json:"owner"`
	Region         string   `json:"region"`
	ReservationID  string   `json:"reservation_id"`
	ImageID        string   `json:"image_id"`
	InstanceType   string   `json:"instance_type"`
	KeyName        string   `json:"key_name,omitempty"`
	SubnetID       string   `json:"subnet_id"`
	VpcID          string   `json:"vpc_id"`
	AZ             string   `json:"az"`
	SecurityGroups []string `json:"security_groups"`
	PrivateIP      string   `json:"private_ip"`
	PublicIP       string   `json:"public_ip,omitempty"`
	UserData       string   `json:"user_data,omitempty"`
	IAMProfileARN  string   `json:"iam_profile_arn,omitempty"`
	// RoleARN is the role of the instance profile: the instance's
	// credentials are sessions of it, named after the instance.
	RoleARN     string `json:"role_arn,omitempty"`
	ClientToken string `json:"client_token,omitempty"`
	LaunchIndex int    `json:"launch_index"`
	HTTPTokens  string `json:"http_tokens"`
	// The rest of MetadataOptions ("" reads as AWS's default).
	HTTPEndpoint string `json:"http_endpoint,omitempty"`
	HTTPHopLimit int    `json:"http_hop_limit,omitempty"`
	MetadataTags string `json:"metadata_tags,omitempty"`

	// Launch options RunInstances (or a fleet's launch template) set.
	EbsOptimized                  bool     `json:"ebs_optimized,omitempty"`
	ShutdownBehavior              string   `json:"shutdown_behavior,omitempty"` // stop (default), terminate
	CPUCredits                    string   `json:"cpu_credits,omitempty"`       // standard, unlimited
	Tenancy                       string   `json:"tenancy,omitempty"`
	HostID                        string   `json:"host_id,omitempty"`
	HostResourceGroupARN          string   `json:"host_resource_group_arn,omitempty"`
	EnclaveEnabled                bool     `json:"enclave_enabled,omitempty"`
	Licenses                      []string `json:"licenses,omitempty"`
	CapacityReservationPreference string   `json:"capacity_reservation_preference,omitempty"`
	CapacityReservationID         string   `json:"capacity_reservation_id,omitempty"`
	CapacityReservationGroupARN   string   `json:"capacity_reservation_group_arn,omitempty"`
	// Lifecycle is "spot" for a spot instance, whose one-time request is
	// SpotRequestID (fleet.go).
	Lifecycle     string `json:"lifecycle,omitempty"`
	SpotRequestID string `json:"spot_request_id,omitempty"`
	// Platform is "windows" for a Windows image; its administrator password
	// (passwords.go) is PasswordData from PasswordAt on.
	Platform     string    `json:"platform,omitempty"`
	PasswordData string    `json:"password_data,omitempty"`
	PasswordAt   time.Time `json:"password_at,omitempty"`

	RootDeviceName     string `json:"root_device_name"`
	Architecture       string `json:"architecture"`
	VirtualizationType string `json:"virtualization_type"`
	EnaSupport         bool   `json:"ena_support,omitempty"`
	SriovNetSupport    string `json:"sriov_net_support,omitempty"`
	BootMode           string `json:"boot_mode,omitempty"`
	TpmSupport         string `json:"tpm_support,omitempty"`
	ImdsSupport        string `json:"imds_support,omitempty"`

	Attachments []ec2Attachment `json:"attachments"`

	Launched time.Time `json:"launched"`
	// State moves to Next at TransitionAt when read.
	State        string    `json:"state"`
	Next         string    `json:"next,omitempty"`
	TransitionAt time.Time `json:"transition_at,omitempty"`
	// LaunchFails: the launch could not use a key (docs/aws-behaviour.md 3.5).
	LaunchFails   bool   `json:"launch_fails,omitempty"`
	ReasonCode    string `json:"reason_code,omitempty"`
	ReasonMessage string `json:"reason_message,omitempty"`
	Reason        string `json:"reason,omitempty"`

	Principal string    `json:"principal,omitempty"`
	Hidden    time.Time `json:"hidden_until,omitempty"`
}

type ec2Attachment struct {
	DeviceName          string    `json:"device_name"`
	VolumeID            string    `json:"volume_id"`
	DeleteOnTermination bool      `json:"delete_on_termination"`
	AttachTime          time.Time `json:"attach_time"`
}

type ec2Reservation struct {
	ID        string   `json:"id"`
	Owner     string   `json:"owner"`
	Region    string   `json:"region"`
	Groups    []string `json:"groups"`
	Instances []string `json:"instances"`
}

// stateCode is the numeric code of an instance state.
func stateCode(state string) int {
	switch state {
	case "running":
		return 16
	case "shutting-down":
		return 32
	case "terminated":
		return 48
	case "stopping":
		return 64
	case "stopped":
		return 80
	}
	return 0 // pending
}

// refreshInstance applies a due state transition (lock held).
func (e *view) refreshInstance(inst *ec2Instance) {
	if inst.Next == "" || e.clock.Now().Before(inst.TransitionAt) {
		return
	}
	inst.State, inst.Next = inst.Next, ""
	switch inst.State {
	case "terminated":
		if inst.LaunchFails {
			inst.ReasonCode = "Client.InternalError"
			inst.ReasonMessage = "Client.InternalError: Client error on launch"
			inst.Reason = "Client.InternalError: Client error on launch"
		}
		for _, att := range inst.Attachments {
			v, ok := get(e, volumesOf, att.VolumeID)
			if !ok {
				continue
			}
			if att.DeleteOnTermination {
				del(e, volumesOf, v)
			} else {
				v.InstanceID, v.Device = "", ""
			}
		}
		inst.PublicIP = ""
	case "stopped":
		inst.PublicIP = ""
	}
}

// transition starts a state change that completes after d.
func (e *view) transition(inst *ec2Instance, now, next string, d time.Duration) {
	inst.State, inst.Next, inst.TransitionAt = now, next, e.clock.Now().Add(d)
}

func (e *view) visibleInstance(inst *ec2Instance, c *core.Call) bool {
	return inst.Owner == c.Account && inst.Region == c.Region && !e.clock.Now().Before(inst.Hidden)
}

// ---- XML ----

type xmlInstanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xmlGroup struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type xmlInstanceEbs struct {
	VolumeID            string `xml:"volumeId"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlInstanceBDM struct {
	DeviceName string         `xml:"deviceName"`
	Ebs        xmlInstanceEbs `xml:"ebs"`
}

type xmlPlacement struct {
	AvailabilityZone     string `xml:"availabilityZone"`
	GroupName            string `xml:"groupName"`
	Tenancy              string `xml:"tenancy"`
	HostID               string `xml:"hostId,omitempty"`
	HostResourceGroupArn string `xml:"hostResourceGroupArn,omitempty"`
}

type xmlEnclaveOptions struct {
	Enabled bool `xml:"enabled"`
}

type xmlLicense struct {
	LicenseConfigurationArn string `xml:"licenseConfigurationArn"`
}

type xmlCapacityReservationTarget struct {
	CapacityReservationID               string `xml:"capacityReservationId,omitempty"`
	CapacityReservationResourceGroupArn string `xml:"capacityReservationResourceGroupArn,omitempty"`
}

type xmlCapacityReservationSpecification struct {
	CapacityReservationPreference string                        `xml:"capacityReservationPreference,omitempty"`
	CapacityReservationTarget     *xmlCapacityReservationTarget `xml:"capacityReservationTarget,omitempty"`
}

type xmlIAMProfile struct {
	Arn string `xml:"arn"`
	ID  string `xml:"id"`
}

type xmlMetadataOptions struct {
	State                   string `xml:"state"`
	HTTPTokens              string `xml:"httpTokens"`
	HTTPPutResponseHopLimit int    `xml:"httpPutResponseHopLimit"`
	HTTPEndpoint            string `xml:"httpEndpoint"`
	InstanceMetadataTags    string `xml:"instanceMetadataTags"`
}

type xmlInstance struct {
	InstanceID         string             `xml:"instanceId"`
	ImageID            string             `xml:"imageId"`
	InstanceState      xmlInstanceState   `xml:"instanceState"`
	PrivateDNSName     string             `xml:"privateDnsName"`
	DNSName            string             `xml:"dnsName"`
	Reason             string             `xml:"reason"`
	KeyName            string             `xml:"keyName,omitempty"`
	AmiLaunchIndex     int                `xml:"amiLaunchIndex"`
	InstanceType       string             `xml:"instanceType"`
	LaunchTime         string             `xml:"launchTime"`
	Placement          xmlPlacement       `xml:"placement"`
	Monitoring         ec2StateOnly       `xml:"monitoring"`
	SubnetID           string             `xml:"subnetId,omitempty"`
	VpcID              string             `xml:"vpcId,omitempty"`
	PrivateIPAddress   string             `xml:"privateIpAddress,omitempty"`
	IPAddress          string             `xml:"ipAddress,omitempty"`
	SourceDestCheck    bool               `xml:"sourceDestCheck"`
	GroupSet           []xmlGroup         `xml:"groupSet>item"`
	StateReason        *xmlStateReason    `xml:"stateReason,omitempty"`
	Architecture       string             `xml:"architecture"`
	RootDeviceType     string             `xml:"rootDeviceType"`
	RootDeviceName     string             `xml:"rootDeviceName"`
	BlockDeviceMapping []xmlInstanceBDM   `xml:"blockDeviceMapping>item"`
	VirtualizationType string             `xml:"virtualizationType"`
	ClientToken        string             `xml:"clientToken,omitempty"`
	TagSet             []xmlTag           `xml:"tagSet>item,omitempty"`
	Hypervisor         string             `xml:"hypervisor"`
	IAMInstanceProfile *xmlIAMProfile     `xml:"iamInstanceProfile,omitempty"`
	EbsOptimized       bool               `xml:"ebsOptimized"`
	EnaSupport         bool               `xml:"enaSupport"`
	MetadataOptions    xmlMetadataOptions `xml:"metadataOptions"`
	BootMode           string             `xml:"bootMode,omitempty"`
	PlatformDetails    string             `xml:"platformDetails"`
	UsageOperation     string             `xml:"usageOperation"`
	CurrentBootMode    string             `xml:"currentInstanceBootMode,omitempty"`
	Platform           string             `xml:"platform,omitempty"`
	InstanceLifecycle  string             `xml:"instanceLifecycle,omitempty"`
	SpotRequestID      string             `xml:"spotInstanceRequestId,omitempty"`
	EnclaveOptions     xmlEnclaveOptions  `xml:"enclaveOptions"`
	Licenses           []xmlLicense       `xml:"licenseSet>item,omitempty"`

	CapacityReservationSpecification *xmlCapacityReservationSpecification `xml:"capacityReservationSpecification,omitempty"`
}

type ec2StateOnly struct {
	State string `xml:"state"`
}

func (e *view) instanceXML(inst *ec2Instance, account string) xmlInstance {
	x := xmlInstance{
		InstanceID: inst.ID, ImageID: inst.ImageID,
		InstanceState: xmlInstanceState{Code: stateCode(inst.State), Name: inst.State},
		Reason:        inst.Reason, KeyName: inst.KeyName, AmiLaunchIndex: inst.LaunchIndex,
		InstanceType: inst.InstanceType, LaunchTime: ec2Time(inst.Launched),
		Placement: xmlPlacement{AvailabilityZone: inst.AZ, Tenancy: orDefault(inst.Tenancy, "default"), HostID: inst.HostID,
			HostResourceGroupArn: inst.HostResourceGroupARN},
		Monitoring: ec2StateOnly{State: "disabled"}, SourceDestCheck: true,
		Architecture: inst.Architecture, RootDeviceType: "ebs", RootDeviceName: inst.RootDeviceName,
		VirtualizationType: inst.VirtualizationType, ClientToken: inst.ClientToken,
		TagSet: e.tagSet(inst.ID, account), Hypervisor: "xen", EnaSupport: inst.EnaSupport,
		MetadataOptions: xmlMetadataOptions{State: "applied", HTTPTokens: inst.HTTPTokens, HTTPPutResponseHopLimit: orDefaultInt(inst.HTTPHopLimit, 1),
			HTTPEndpoint: orDefault(inst.HTTPEndpoint, "enabled"), InstanceMetadataTags: orDefault(inst.MetadataTags, "disabled")},
		BootMode: inst.BootMode,
		GroupSet: []xmlGroup{}, BlockDeviceMapping: []xmlInstanceBDM{},
		EbsOptimized: inst.EbsOptimized, Platform: inst.Platform, InstanceLifecycle: inst.Lifecycle, SpotRequestID: inst.SpotRequestID,
		EnclaveOptions: xmlEnclaveOptions{Enabled: inst.EnclaveEnabled},
	}
	x.PlatformDetails, x.UsageOperation = billing(inst.Platform)
	for _, arn := range inst.Licenses {
		x.Licenses = append(x.Licenses, xmlLicense{LicenseConfigurationArn: arn})
	}
	if inst.CapacityReservationPreference != "" || inst.CapacityReservationID != "" || inst.CapacityReservationGroupARN != "" {
		spec := &xmlCapacityReservationSpecification{CapacityReservationPreference: inst.CapacityReservationPreference}
		if inst.CapacityReservationID != "" || inst.CapacityReservationGroupARN != "" {
			spec.CapacityReservationTarget = &xmlCapacityReservationTarget{CapacityReservationID: inst.CapacityReservationID,
				CapacityReservationResourceGroupArn: inst.CapacityReservationGroupARN}
		}
		x.CapacityReservationSpecification = spec
	}
	if inst.State != "terminated" {
		x.SubnetID, x.VpcID, x.PrivateIPAddress = inst.SubnetID, inst.VpcID, inst.PrivateIP
		x.PrivateDNSName = "ip-" + strings.ReplaceAll(inst.PrivateIP, ".", "-") + "." + inst.Region + ".compute.internal"
		x.IPAddress = inst.PublicIP
		if inst.PublicIP != "" {
			x.DNSName = "ec2-" + strings.ReplaceAll(inst.PublicIP, ".", "-") + "." + inst.Region + ".compute.amazonaws.com"
		}
		for _, g := range inst.SecurityGroups {
			name := ""
			if sg, ok := get(e, securityGroupsOf, g); ok {
				name = sg.Name
			}
			x.GroupSet = append(x.GroupSet, xmlGroup{GroupID: g, GroupName: name})
		}
		for _, att := range inst.Attachments {
			if _, ok := get(e, volumesOf, att.VolumeID); !ok {
				continue
			}
			x.BlockDeviceMapping = append(x.BlockDeviceMapping, xmlInstanceBDM{DeviceName: att.DeviceName,
				Ebs: xmlInstanceEbs{VolumeID: att.VolumeID, Status: "attached", AttachTime: ec2Time(att.AttachTime),
					DeleteOnTermination: att.DeleteOnTermination}})
		}
	}
	if inst.ReasonCode != "" {
		x.StateReason = &xmlStateReason{Code: inst.ReasonCode, Message: inst.ReasonMessage}
	}
	if inst.IAMProfileARN != "" {
		x.IAMInstanceProfile = &xmlIAMProfile{Arn: inst.IAMProfileARN, ID: core.UniqueID("AIPA", inst.IAMProfileARN)}
	}
	if inst.BootMode != "" {
		x.CurrentBootMode = "uefi"
		if inst.BootMode == "legacy-bios" {
			x.CurrentBootMode = "legacy-bios"
		}
	}
	return x
}

type reservationXML struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	GroupSet      []xmlGroup    `xml:"groupSet>item"`
	InstancesSet  []xmlInstance `xml:"instancesSet>item"`
}

func (e *view) reservationXML(r *ec2Reservation, account string, include func(*ec2Instance) bool) reservationXML {
	x := reservationXML{ReservationID: r.ID, OwnerID: r.Owner, GroupSet: []xmlGroup{}, InstancesSet: []xmlInstance{}}
	for _, id := range r.Instances {
		inst, ok := get(e, instancesOf, id)
		if !ok || (include != nil && !include(inst)) {
			continue
		}
		x.InstancesSet = append(x.InstancesSet, e.instanceXML(inst, account))
	}
	return x
}

// ---- RunInstances ----

var instanceTypePattern = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)

func (e *view) ec2RunInstances(c *core.Call, p ec2Params) (any, *core.APIError) {
	tokenKey, earlier, err := e.clientToken(c, p)
	if err != nil {
		return nil, err
	}
	if earlier != "" {
		r, _ := get(e, reservationsOf, earlier)
		for _, id := range r.Instances {
			inst, _ := get(e, instancesOf, id)
			e.refreshInstance(inst)
		}
		return e.reservationXML(r, c.Account, nil), nil
	}
	l, err := e.resolveLaunch(c, p)
	if err != nil {
		return nil, err
	}
	now := e.clock.Now()
	res := &ec2Reservation{ID: e.newID("r"), Owner: c.Account, Region: c.Region, Groups: []string{}}
	put(e, reservationsOf, res)
	for i := range l.maxCount {
		inst := e.launchInstance(c, p, l, res.ID, i, now)
		res.Instances = append(res.Instances, inst.ID)
	}
	e.rememberToken(c, tokenKey, p, res.ID)
	return e.reservationXML(res, c.Account, nil), nil
}

// launch is a RunInstances request resolved and checked: nothing is
// created until every part of it is known to be valid.
type launch struct {
	img               *ec2Image
	instanceType      string
	keyName, userData string
	maxCount          int
	subnet            *ec2Subnet
	groups            []string
	profile           core.InstanceProfile
	opts              launchOptions
	httpTokens        string
	hopLimit          int
	volumes           []volPlan
	specs             []ec2TagSpec
}

// volPlan is one volume of a launch: its mapping and its resolved spec.
type volPlan struct {
	m    ec2Mapping
	spec volumeSpec
}

// resolveLaunch checks a RunInstances request and resolves its image, key
// pair, network, volumes, instance profile and options.
func (e *view) resolveLaunch(c *core.Call, p ec2Params) (*launch, *core.APIError) {
	imageID, err := p.required("ImageId")
	if err != nil {
		return nil, err
	}
	minCount, err := p.integer("MinCount", 1)
	if err != nil {
		return nil, err
	}
	maxCount, err := p.integer("MaxCount", 1)
	if err != nil {
		return nil, err
	}
	if minCount < 1 || maxCount < minCount {
		return nil, core.Errf("InvalidParameterValue", "MinCount (%d) must be at least 1 and at most MaxCount (%d).", minCount, maxCount)
	}
	if maxCount > 20 {
		return nil, core.Errf("InstanceLimitExceeded", "You have requested more instances (%d) than your current instance limit of 20 allows for the specified instance type.", maxCount)
	}
	l := &launch{maxCount: maxCount, keyName: p.str("KeyName"), userData: p.str("UserData")}
	l.instanceType = orDefault(p.str("InstanceType"), "m1.small")
	if !instanceTypePattern.MatchString(l.instanceType) {
		return nil, core.Errf("InvalidParameterValue", "Invalid value '%s' for InstanceType.", l.instanceType)
	}
	if l.specs, err = p.tagSpecs("instance", "volume", "network-interface"); err != nil {
		return nil, err
	}
	if l.userData != "" {
		if _, derr := base64.StdEncoding.DecodeString(l.userData); derr != nil {
			return nil, core.Errf("InvalidParameterValue", "Invalid BASE64 encoding of user data.")
		}
	}
	if l.img, err = find(e, images(), c, imageID, c.Region); err != nil {
		return nil, err
	}
	if l.img.State != "available" {
		return nil, core.Errf("InvalidAMIID.Unavailable", "AMI '%s' is %s, and cannot be run", l.img.ID, l.img.State)
	}
	if l.keyName != "" && e.keyPairByName(c.Account, c.Region, l.keyName) == nil {
		return nil, core.Errf("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", l.keyName)
	}
	if l.subnet, l.groups, err = e.launchNetwork(c, p); err != nil {
		return nil, err
	}
	reqMappings, err := parseBlockDeviceMappings(p)
	if err != nil {
		return nil, err
	}
	mappings, err := launchMappings(l.img, reqMappings)
	if err != nil {
		return nil, err
	}
	if l.profile, err = e.launchProfile(c, p); err != nil {
		return nil, err
	}
	if l.opts, err = parseLaunchOptions(p); err != nil {
		return nil, err
	}
	// A spot instance can't be launched with credits it can't use.
	if l.opts.spot && l.opts.cpuCredits == "unlimited" && strings.HasPrefix(l.instanceType, "t2.") {
		return nil, core.Errf("InvalidParameterCombination", "Unlimited mode is not supported for T2 Spot Instances.")
	}
	if l.keyName != "" {
		if kp := e.keyPairByName(c.Account, c.Region, l.keyName); kp != nil && kp.Type == "ed25519" && windowsImage(l.img) {
			return nil, core.Errf("InvalidKeyPair.Format", "ED25519 key pairs are not supported with Windows AMIs. Choose an RSA key pair and try again.")
		}
	}
	l.httpTokens, l.hopLimit = metadataDefaults(l.opts, l.img)
	if l.volumes, err = e.volumePlans(mappings); err != nil {
		return nil, err
	}
	return l, nil
}

// metadataDefaults are a launch's HttpTokens and hop limit: as given, else
// required and 2 from an AMI with ImdsSupport v2.0, optional and 1 from
// any other (API_RegisterImage.html,
// API_InstanceMetadataOptionsRequest.html).
func metadataDefaults(opts launchOptions, img *ec2Image) (httpTokens string, hopLimit int) {
	httpTokens, hopLimit = opts.httpTokens, opts.hopLimit
	if httpTokens == "" {
		httpTokens = "optional"
		if img.ImdsSupport == "v2.0" {
			httpTokens = "required"
		}
	}
	if hopLimit == 0 {
		hopLimit = 1
		if img.ImdsSupport == "v2.0" {
			hopLimit = 2
		}
	}
	return httpTokens, hopLimit
}

// volumePlans resolves every volume spec of a launch before anything is
// created.
func (e *view) volumePlans(mappings []ec2Mapping) ([]volPlan, *core.APIError) {
	var plans []volPlan
	for _, m := range mappings {
		spec := volumeSpec{size: m.SizeGiB, volumeType: m.VolumeType, iops: m.Iops, throughput: m.Throughput, keyRef: m.KmsKeyARN}
		if m.Encrypted {
			t := true
			spec.encrypted = &t
		}
		if m.SnapshotID != "" {
			snap, ok := get(e, snapshotsOf, m.SnapshotID)
			if !ok {
				return nil, snapshotNotFound(m.SnapshotID)
			}
			spec.snapshot = snap
		}
		plans = append(plans, volPlan{m, spec})
	}
	return plans, nil
}

// launchInstance makes instance i of a resolved launch, with its volumes:
// pending, then running, or terminated when a volume can't be made under
// its key (rule 3.5).
func (e *view) launchInstance(c *core.Call, p ec2Params, l *launch, reservation string, i int, now time.Time) *ec2Instance {
	img, subnet := l.img, l.subnet
	inst := &ec2Instance{
		ID: e.newID("i"), Owner: c.Account, Region: c.Region, ReservationID: reservation, ImageID: img.ID,
		InstanceType: l.instanceType, KeyName: l.keyName, SubnetID: subnet.ID, VpcID: subnet.VpcID, AZ: subnet.AZ,
		SecurityGroups: l.groups, UserData: l.userData, IAMProfileARN: l.profile.ARN, RoleARN: l.profile.Role.ARN, ClientToken: p.str("ClientToken"),
		LaunchIndex: i, HTTPTokens: l.httpTokens, RootDeviceName: img.RootDeviceName, Architecture: img.Architecture,
		VirtualizationType: img.VirtualizationType, EnaSupport: img.EnaSupport, SriovNetSupport: img.SriovNetSupport,
		BootMode: img.BootMode, TpmSupport: img.TpmSupport, ImdsSupport: img.ImdsSupport,
		Launched: now, Principal: c.Principal, Attachments: []ec2Attachment{},
	}
	inst.PrivateIP = subnet.nextIP()
	if publicAddress(subnet, p) {
		inst.PublicIP = publicIP(inst.ID)
	}
	l.opts.apply(inst)
	inst.HTTPHopLimit = l.hopLimit
	if l.opts.spot {
		e.newSpotRequest(c, inst, l.opts.spotType, l.opts.interruption)
	}
	if windowsImage(img) {
		e.setWindowsPassword(c, inst)
	}
	var vols []*ec2Volume
	for _, vp := range l.volumes {
		v, kerr := e.newVolume(c, subnet.AZ, vp.spec)
		if kerr != nil {
			inst.LaunchFails = true
			c.Note("failure."+inst.ID, kerr.Message)
			break
		}
		v.InstanceID, v.Device, v.DeleteOnTermination, v.AttachTime = inst.ID, vp.m.DeviceName, vp.m.DeleteOnTermination, now
		vols = append(vols, v)
	}
	if inst.LaunchFails {
		// Rule 3.5: accepted, then pending → terminated.
		e.transition(inst, "pending", "terminated", e.clock.Latency(core.LatencyInstanceStart, 0, false))
	} else {
		e.transition(inst, "pending", "running", e.clock.Latency(core.LatencyInstanceStart, 0, false))
		volTags := tagsFor(l.specs, "volume")
		for _, v := range vols {
			put(e, volumesOf, v)
			inst.Attachments = append(inst.Attachments, ec2Attachment{DeviceName: v.Device, VolumeID: v.ID,
				DeleteOnTermination: v.DeleteOnTermination, AttachTime: now})
			if len(volTags) > 0 {
				e.setTags(v.ID, c.Account, volTags)
			}
			c.Note("volumeId."+v.Device, v.ID)
			if v.KmsKeyARN != "" {
				c.Note("kmsKeyArn", v.KmsKeyARN)
			}
		}
	}
	inst.Hidden = e.hideIfFault(c)
	put(e, instancesOf, inst)
	if t := tagsFor(l.specs, "instance"); len(t) > 0 {
		e.setTags(inst.ID, c.Account, t)
	}
	c.Note("instanceId."+fmt.Sprint(i), inst.ID)
	return inst
}

// launchNetwork resolves the subnet and security groups of a launch.
func (e *view) launchNetwork(c *core.Call, p ec2Params) (*ec2Subnet, []string, *core.APIError) {
	subnetID := orDefault(p.str("SubnetId"), p.str("NetworkInterface.1.SubnetId"))
	groupIDs := append(p.list("SecurityGroupId"), p.list("NetworkInterface.1.SecurityGroupId")...)
	groupNames := p.list("SecurityGroup")
	var subnet *ec2Subnet
	if subnetID != "" {
		s, ok := get(e, subnetsOf, subnetID)
		if !ok || s.Owner != c.Account || s.Region != c.Region {
			return nil, nil, core.Errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", subnetID)
		}
		subnet = s
	} else {
		az := p.str("Placement.AvailabilityZone")
		if az != "" && !contains(availabilityZones(c.Region), az) {
			return nil, nil, core.Errf("InvalidParameterValue", "Invalid availability zone: [%s]", az)
		}
		subnet = e.defaultSubnet(c.Account, c.Region, az)
		if subnet == nil {
			return nil, nil, core.Errf("VPCIdNotSpecified", "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.")
		}
	}
	var groups []string
	for _, g := range groupIDs {
		sg, ok := get(e, securityGroupsOf, g)
		if !ok || sg.Owner != c.Account || sg.Region != c.Region {
			return nil, nil, core.Errf("InvalidGroup.NotFound", "The security group '%s' does not exist", g)
		}
		if sg.VpcID != subnet.VpcID {
			return nil, nil, core.Errf("InvalidParameter", "Security group %s and subnet %s belong to different networks.", g, subnet.ID)
		}
		groups = appendUnique(groups, g)
	}
	for _, name := range groupNames {
		sg := e.securityGroupByName(c.Account, c.Region, subnet.VpcID, name)
		if sg == nil {
			return nil, nil, core.Errf("InvalidGroup.NotFound", "The security group '%s' does not exist in VPC '%s'", name, subnet.VpcID)
		}
		groups = appendUnique(groups, sg.ID)
	}
	if len(groups) == 0 {
		if sg := e.securityGroupByName(c.Account, c.Region, subnet.VpcID, "default"); sg != nil {
			groups = []string{sg.ID}
		}
	}
	return subnet, groups, nil
}

// launchMappings merges the image's block devices with the request's.
func launchMappings(img *ec2Image, req map[string]reqMapping) ([]ec2Mapping, *core.APIError) {
	var out []ec2Mapping
	seen := map[string]bool{}
	for _, m := range img.Mappings {
		seen[m.DeviceName] = true
		r, ok := req[m.DeviceName]
		if ok && r.NoDevice {
			continue
		}
		if !m.HasEbs {
			continue
		}
		if ok && r.Ebs != nil {
			if r.Ebs.SnapshotID != "" && r.Ebs.SnapshotID != m.SnapshotID {
				return nil, core.Errf("InvalidBlockDeviceMapping", "The snapshot of device %s can't be changed at launch.", m.DeviceName)
			}
			if r.Ebs.VolumeSize != 0 {
				if r.Ebs.VolumeSize < m.SizeGiB {
					return nil, core.Errf("InvalidBlockDeviceMapping", "Volume of size %dGB is smaller than snapshot '%s', expect size >= %dGB", r.Ebs.VolumeSize, m.SnapshotID, m.SizeGiB)
				}
				m.SizeGiB = r.Ebs.VolumeSize
			}
			if r.Ebs.VolumeType != "" {
				m.VolumeType = r.Ebs.VolumeType
			}
			if r.Ebs.DeleteOnTermination != nil {
				m.DeleteOnTermination = *r.Ebs.DeleteOnTermination
			}
			if r.Ebs.Iops != 0 {
				m.Iops = r.Ebs.Iops
			}
			if r.Ebs.Throughput != 0 {
				m.Throughput = r.Ebs.Throughput
			}
			if r.Ebs.Encrypted != nil && *r.Ebs.Encrypted {
				m.Encrypted = true
			}
			m.KmsKeyARN = r.Ebs.KmsKeyID
		} else {
			// The volume keeps the snapshot's encryption and key.
			m.KmsKeyARN = ""
		}
		out = append(out, m)
	}
	for _, dev := range sortedKeys(req) {
		r := req[dev]
		if seen[dev] || r.NoDevice || r.Ebs == nil {
			continue
		}
		if r.Ebs.SnapshotID == "" && r.Ebs.VolumeSize == 0 {
			return nil, core.Errf("InvalidBlockDeviceMapping", "The block device mapping for %s needs a snapshot ID or a volume size.", dev)
		}
		m := ec2Mapping{DeviceName: dev, HasEbs: true, SnapshotID: r.Ebs.SnapshotID, SizeGiB: r.Ebs.VolumeSize,
			VolumeType: r.Ebs.VolumeType, Iops: r.Ebs.Iops, Throughput: r.Ebs.Throughput, KmsKeyARN: r.Ebs.KmsKeyID,
			DeleteOnTermination: r.Ebs.DeleteOnTermination != nil && *r.Ebs.DeleteOnTermination}
		m.Encrypted = r.Ebs.Encrypted != nil && *r.Ebs.Encrypted
		out = append(out, m)
	}
	return out, nil
}

func publicIP(seed string) string {
	h := 0
	for _, b := range []byte(seed) {
		h = h*31 + int(b)
	}
	if h < 0 {
		h = -h
	}
	return fmt.Sprintf("54.%d.%d.%d", 64+h%64, (h/64)%256, 1+(h/16384)%254)
}

// ---- DescribeInstances ----

type describeInstancesOutput struct {
	ReservationSet []reservationXML `xml:"reservationSet>item"`
	NextToken      string           `xml:"nextToken,omitempty"`
}

func (e *view) ec2DescribeInstances(c *core.Call, p ec2Params) (any, *core.APIError) {
	ids := p.list("InstanceId")
	filters := p.filters()
	var missing []string
	for _, id := range ids {
		if !instanceIDPattern.MatchString(id) {
			return nil, malformedID(id, "i")
		}
		if inst, ok := get(e, instancesOf, id); !ok || !e.visibleInstance(inst, c) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, instanceNotFound(missing...)
	}
	matched := map[string]bool{}
	var resIDs []string
	for _, inst := range allIn(e, instancesOf, c.Region) {
		if !e.visibleInstance(inst, c) || (len(ids) > 0 && !contains(ids, inst.ID)) {
			continue
		}
		e.refreshInstance(inst)
		ok, ferr := matchFilters(filters, func(name string) ([]string, bool) { return e.instanceFilterValues(inst, c.Account, name) })
		if ferr != nil {
			return nil, ferr
		}
		if ok {
			if !matched[inst.ReservationID] {
				resIDs = append(resIDs, inst.ReservationID)
			}
			matched[inst.ID], matched[inst.ReservationID] = true, true
		}
	}
	sort.Strings(resIDs)
	from, to, next, err := paginate(p, len(resIDs))
	if err != nil {
		return nil, err
	}
	out := describeInstancesOutput{NextToken: next, ReservationSet: []reservationXML{}}
	for _, rid := range resIDs[from:to] {
		out.ReservationSet = append(out.ReservationSet, e.reservationXML(e.own(c).Reservations[rid], c.Account,
			func(inst *ec2Instance) bool { return matched[inst.ID] }))
	}
	return out, nil
}

func (e *view) instanceFilterValues(inst *ec2Instance, account, name string) ([]string, bool) {
	if v, ok, handled := e.tagFilterValues(inst.ID, account, name); handled {
		return v, ok
	}
	switch name {
	case "instance-id":
		return []string{inst.ID}, true
	case "instance-state-name":
		return []string{inst.State}, true
	case "instance-state-code":
		return []string{fmt.Sprint(stateCode(inst.State))}, true
	case "image-id":
		return []string{inst.ImageID}, true
	case "key-name":
		return []string{inst.KeyName}, true
	case "subnet-id":
		return []string{inst.SubnetID}, true
	case "vpc-id":
		return []string{inst.VpcID}, true
	case "instance-type":
		return []string{inst.InstanceType}, true
	case "availability-zone":
		return []string{inst.AZ}, true
	case "reservation-id":
		return []string{inst.ReservationID}, true
	case "client-token":
		return []string{inst.ClientToken}, true
	case "private-ip-address":
		return []string{inst.PrivateIP}, true
	case "ip-address":
		return []string{inst.PublicIP}, true
	case "instance.group-id", "group-id":
		return inst.SecurityGroups, true
	case "instance.group-name", "group-name":
		var names []string
		for _, g := range inst.SecurityGroups {
			if sg, ok := get(e, securityGroupsOf, g); ok {
				names = append(names, sg.Name)
			}
		}
		return names, true
	case "block-device-mapping.volume-id":
		var vols []string
		for _, a := range inst.Attachments {
			vols = append(vols, a.VolumeID)
		}
		return vols, true
	case "iam-instance-profile.arn":
		return []string{inst.IAMProfileARN}, true
	case "instance-lifecycle":
		return []string{inst.Lifecycle}, true
	case "spot-instance-request-id":
		return []string{inst.SpotRequestID}, true
	case "metadata-options.http-tokens":
		return []string{inst.HTTPTokens}, true
	}
	return nil, false
}

// ---- DescribeInstanceStatus ----

type xmlStatusDetail struct {
	Name   string `xml:"name"`
	Status string `xml:"status"`
}

type xmlStatusSummary struct {
	Status  string            `xml:"status"`
	Details []xmlStatusDetail `xml:"details>item"`
}

type xmlInstanceStatus struct {
	InstanceID       string           `xml:"instanceId"`
	AvailabilityZone string           `xml:"availabilityZone"`
	InstanceState    xmlInstanceState `xml:"instanceState"`
	SystemStatus     xmlStatusSummary `xml:"systemStatus"`
	InstanceStatus   xmlStatusSummary `xml:"instanceStatus"`
}

type describeInstanceStatusOutput struct {
	InstanceStatusSet []xmlInstanceStatus `xml:"instanceStatusSet>item"`
	NextToken         string              `xml:"nextToken,omitempty"`
}

func (e *view) ec2DescribeInstanceStatus(c *core.Call, p ec2Params) (any, *core.APIError) {
	ids := p.list("InstanceId")
	all, err := p.boolean("IncludeAllInstances")
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, id := range ids {
		if inst, ok := get(e, instancesOf, id); !ok || !e.visibleInstance(inst, c) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, instanceNotFound(missing...)
	}
	filters := p.filters()
	var found []*ec2Instance
	for _, inst := range allIn(e, instancesOf, c.Region) {
		if !e.visibleInstance(inst, c) || (len(ids) > 0 && !contains(ids, inst.ID)) {
			continue
		}
		e.refreshInstance(inst)
		if !all && inst.State != "running" {
			continue
		}
		ok, ferr := matchFilters(filters, func(name string) ([]string, bool) {
			switch name {
			case "instance-state-name":
				return []string{inst.State}, true
			case "instance-state-code":
				return []string{fmt.Sprint(stateCode(inst.State))}, true
			case "availability-zone":
				return []string{inst.AZ}, true
			case "system-status.status", "instance-status.status":
				return []string{instanceHealth(inst)}, true
			}
			return nil, false
		})
		if ferr != nil {
			return nil, ferr
		}
		if ok {
			found = append(found, inst)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].ID < found[j].ID })
	from, to, next, err := paginate(p, len(found))
	if err != nil {
		return nil, err
	}
	out := describeInstanceStatusOutput{NextToken: next, InstanceStatusSet: []xmlInstanceStatus{}}
	for _, inst := range found[from:to] {
		health := instanceHealth(inst)
		detail := "passed"
		if health != "ok" {
			detail = health
		}
		sum := xmlStatusSummary{Status: health, Details: []xmlStatusDetail{{Name: "reachability", Status: detail}}}
		out.InstanceStatusSet = append(out.InstanceStatusSet, xmlInstanceStatus{InstanceID: inst.ID, AvailabilityZone: inst.AZ,
			InstanceState: xmlInstanceState{Code: stateCode(inst.State), Name: inst.State},
			SystemStatus:  sum, InstanceStatus: sum})
	}
	return out, nil
}

func instanceHealth(inst *ec2Instance) string {
	if inst.State == "running" {
		return "ok"
	}
	return "not-applicable"
}

// ---- Stop / Start / Terminate ----

type xmlStateChange struct {
	InstanceID    string           `xml:"instanceId"`
	CurrentState  xmlInstanceState `xml:"currentState"`
	PreviousState xmlInstanceState `xml:"previousState"`
}

type instancesChangeOutput struct {
	InstancesSet []xmlStateChange `xml:"instancesSet>item"`
}

// changeInstances applies change to every InstanceId.N, all or nothing.
func (e *view) changeInstances(c *core.Call, p ec2Params, check func(*ec2Instance) *core.APIError, change func(*ec2Instance)) (any, *core.APIError) {
	ids := p.list("InstanceId")
	if len(ids) == 0 {
		return nil, core.Errf("MissingParameter", "The request must contain the parameter InstanceId")
	}
	var insts []*ec2Instance
	var missing []string
	for _, id := range ids {
		inst, err := own(e, instances(), c, id)
		if err != nil {
			if err.Code == "InvalidInstanceID.NotFound" {
				missing = append(missing, id)
				continue
			}
			return nil, err
		}
		insts = append(insts, inst)
	}
	if len(missing) > 0 {
		return nil, instanceNotFound(missing...)
	}
	for _, inst := range insts {
		if err := check(inst); err != nil {
			return nil, err
		}
	}
	out := instancesChangeOutput{}
	for _, inst := range insts {
		prev := inst.State
		change(inst)
		out.InstancesSet = append(out.InstancesSet, xmlStateChange{InstanceID: inst.ID,
			CurrentState:  xmlInstanceState{Code: stateCode(inst.State), Name: inst.State},
			PreviousState: xmlInstanceState{Code: stateCode(prev), Name: prev}})
		c.Note("instanceId."+inst.ID, inst.State)
	}
	return out, nil
}

func (e *view) userReason(code, what string) (string, string, string) {
	return "Client." + code, "Client." + code + ": User initiated " + what,
		fmt.Sprintf("User initiated (%s)", e.clock.Now().Format("2006-01-02 15:04:05 MST"))
}

func (e *view) ec2StopInstances(c *core.Call, p ec2Params) (any, *core.APIError) {
	return e.changeInstances(c, p, func(inst *ec2Instance) *core.APIError {
		if inst.Lifecycle == "spot" && !e.persistentSpot(inst) {
			// Only a persistent request's instance (interruption
			// behaviour stop or hibernate) can be stopped.
			return core.Errf("UnsupportedOperation", "You can't stop the Spot Instance '%s' because it is associated with a one-time Spot Instance request. You can only stop Spot Instances associated with persistent Spot Instance requests.", inst.ID)
		}
		switch inst.State {
		case "running", "stopping", "stopped":
			return nil
		}
		return core.Errf("IncorrectInstanceState", "This instance '%s' is not in a state from which it can be stopped.", inst.ID)
	}, func(inst *ec2Instance) {
		if inst.State == "running" {
			e.transition(inst, "stopping", "stopped", e.clock.Latency(core.LatencyInstanceStop, 0, false))
			inst.ReasonCode, inst.ReasonMessage, inst.Reason = e.userReason("UserInitiatedShutdown", "shutdown")
		}
	})
}

func (e *view) ec2StartInstances(c *core.Call, p ec2Params) (any, *core.APIError) {
	return e.changeInstances(c, p, func(inst *ec2Instance) *core.APIError {
		switch inst.State {
		case "stopped", "pending", "running":
			return nil
		}
		return core.Errf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", inst.ID)
	}, func(inst *ec2Instance) {
		if inst.State == "stopped" {
			e.transition(inst, "pending", "running", e.clock.Latency(core.LatencyInstanceStart, 0, false))
			inst.ReasonCode, inst.ReasonMessage, inst.Reason = "", "", ""
			if sub, ok := get(e, subnetsOf, inst.SubnetID); ok && sub.DefaultForAZ {
				inst.PublicIP = publicIP(inst.ID + e.clock.Now().String())
			}
		}
	})
}

func (e *view) ec2TerminateInstances(c *core.Call, p ec2Params) (any, *core.APIError) {
	return e.changeInstances(c, p, func(*ec2Instance) *core.APIError { return nil }, func(inst *ec2Instance) {
		switch inst.State {
		case "terminated", "shutting-down":
			return
		}
		e.transition(inst, "shutting-down", "terminated", e.clock.Latency(core.LatencyInstanceTerm, 0, false))
		inst.LaunchFails = false
		inst.ReasonCode, inst.ReasonMessage, inst.Reason = e.userReason("UserInitiatedShutdown", "shutdown")
	})
}

// ---- instance attributes ----

func (e *view) ec2ModifyInstanceAttribute(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("InstanceId")
	if err != nil {
		return nil, err
	}
	inst, err := own(e, instances(), c, id)
	if err != nil {
		return nil, err
	}
	if p.has("EnaSupport.Value") {
		if inst.State != "stopped" {
			return nil, core.Errf("IncorrectInstanceState", "The instance '%s' is not in the 'stopped' state.", id)
		}
		v, err := p.boolean("EnaSupport.Value")
		if err != nil {
			return nil, err
		}
		inst.EnaSupport = v
	}
	if p.has("SriovNetSupport.Value") {
		inst.SriovNetSupport = p.str("SriovNetSupport.Value")
	}
	if p.has("InstanceType.Value") {
		if inst.State != "stopped" {
			return nil, core.Errf("IncorrectInstanceState", "The instance '%s' is not in the 'stopped' state.", id)
		}
		inst.InstanceType = p.str("InstanceType.Value")
	}
	return ec2Return{Return: true}, nil
}

type describeInstanceAttributeOutput struct {
	InstanceID         string            `xml:"instanceId"`
	ShutdownBehavior   *ec2ValueString   `xml:"instanceInitiatedShutdownBehavior,omitempty"`
	EbsOptimized       *ec2ValueBool     `xml:"ebsOptimized,omitempty"`
	InstanceType       *ec2ValueString   `xml:"instanceType,omitempty"`
	UserData           *ec2ValueString   `xml:"userData,omitempty"`
	EnaSupport         *ec2ValueBool     `xml:"enaSupport,omitempty"`
	SriovNetSupport    *ec2ValueString   `xml:"sriovNetSupport,omitempty"`
	RootDeviceName     *ec2ValueString   `xml:"rootDeviceName,omitempty"`
	GroupSet           *[]xmlGroup       `xml:"groupSet>item,omitempty"`
	BlockDeviceMapping *[]xmlInstanceBDM `xml:"blockDeviceMapping>item,omitempty"`
}

func (e *view) ec2DescribeInstanceAttribute(c *core.Call, p ec2Params) (any, *core.APIError) {
	id, err := p.required("InstanceId")
	if err != nil {
		return nil, err
	}
	inst, err := own(e, instances(), c, id)
	if err != nil {
		return nil, err
	}
	x := e.instanceXML(inst, c.Account)
	out := describeInstanceAttributeOutput{InstanceID: id}
	switch attr := p.str("Attribute"); attr {
	case "instanceType":
		out.InstanceType = &ec2ValueString{Value: inst.InstanceType}
	case "userData":
		out.UserData = &ec2ValueString{Value: inst.UserData}
	case "enaSupport":
		out.EnaSupport = &ec2ValueBool{Value: inst.EnaSupport}
	case "sriovNetSupport":
		out.SriovNetSupport = &ec2ValueString{Value: inst.SriovNetSupport}
	case "rootDeviceName":
		out.RootDeviceName = &ec2ValueString{Value: inst.RootDeviceName}
	case "instanceInitiatedShutdownBehavior":
		out.ShutdownBehavior = &ec2ValueString{Value: orDefault(inst.ShutdownBehavior, "stop")}
	case "ebsOptimized":
		out.EbsOptimized = &ec2ValueBool{Value: inst.EbsOptimized}
	case "groupSet":
		out.GroupSet = &x.GroupSet
	case "blockDeviceMapping":
		out.BlockDeviceMapping = &x.BlockDeviceMapping
	default:
		return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter attribute is invalid.", attr)
	}
	return out, nil
}

// AutoScalingRoleARN is the service-linked role Auto Scaling launches
// instances with in account (docs/aws-behaviour.md 3.5).
func AutoScalingRoleARN(account string) string {
	return "arn:aws:iam::" + account + ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
}

// CheckLaunch reports whether principalIAM (for example AutoScalingRoleARN)
// could launch imageID in account/region: the image must be visible to the
// account and every encrypted snapshot's key usable by the principal, as
// RunInstances checks. It returns nil, or the error RunInstances would give
// or the key failure that would end such a launch in Client.InternalError.
// The emulator has no Auto Scaling API; tests use this for docs/aws-behaviour.md 3.5.
func (e *Service) CheckLaunch(account, region, principalIAM, imageID string) error {
	c := &core.Call{Service: "ec2", Region: region, Account: account, Principal: principalIAM, PrincipalIAM: principalIAM, Action: "RunInstances"}
	v := e.lockFor(c, ec2Params{v: map[string][]string{"ImageId": {imageID}}})
	defer v.unlock()
	return v.checkLaunch(c, imageID)
}

func (e *view) checkLaunch(c *core.Call, imageID string) error {
	img, err := find(e, images(), c, imageID, c.Region)
	if err != nil {
		return err
	}
	for _, m := range img.Mappings {
		snap, ok := get(e, snapshotsOf, m.SnapshotID)
		if !ok || !snap.Encrypted {
			continue
		}
		if _, err := e.useKey(c, c.Region, snap.KmsKeyARN, sourceKeyOps()); err != nil {
			return keyFailure(c, snap.KmsKeyARN, err)
		}
		if _, err := e.useDestinationKey(c, snap.KmsKeyARN, snap.KmsKeyARN); err != nil {
			return keyFailure(c, snap.KmsKeyARN, err)
		}
	}
	return nil
}

// launchProfile is the instance profile RunInstances names, by ARN or name,
// which must exist in the caller's account (docs/aws-behaviour.md, instance
// profiles).
func (e *view) launchProfile(c *core.Call, p ec2Params) (core.InstanceProfile, *core.APIError) {
	if arn := p.str("IamInstanceProfile.Arn"); arn != "" {
		prof, ok := e.iam.InstanceProfile(c.Account, arn)
		if !ok {
			return prof, core.Errf("InvalidParameterValue", "Value (%s) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN", arn)
		}
		return prof, nil
	}
	if name := p.str("IamInstanceProfile.Name"); name != "" {
		prof, ok := e.iam.InstanceProfile(c.Account, name)
		if !ok {
			return prof, core.Errf("InvalidParameterValue", "Value (%s) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name", name)
		}
		return prof, nil
	}
	return core.InstanceProfile{}, nil
}

// publicAddress reports whether a launch gets a public IP: as the
// network interface asks, else as the subnet maps one on launch.
func publicAddress(subnet *ec2Subnet, p ec2Params) bool {
	if p.has("NetworkInterface.1.AssociatePublicIpAddress") {
		return strings.EqualFold(p.str("NetworkInterface.1.AssociatePublicIpAddress"), "true")
	}
	return subnet.DefaultForAZ
}

func orDefaultInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
