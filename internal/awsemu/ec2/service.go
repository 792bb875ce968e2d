package ec2

// ec2.go holds the EC2 side's state, its seeding from the world and the
// action table. The resources live in ec2_*.go by family.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

// ec2State is everything the EC2 side knows. Exported fields only, so the
// platform can save and load it with encoding/json.
type ec2State struct {
	// Seq makes resource IDs; it survives restarts with the state.
	Seq uint64 `json:"seq"`

	Images         map[string]*ec2Image         `json:"images"`
	Snapshots      map[string]*ec2Snapshot      `json:"snapshots"`
	Volumes        map[string]*ec2Volume        `json:"volumes"`
	Instances      map[string]*ec2Instance      `json:"instances"`
	Reservations   map[string]*ec2Reservation   `json:"reservations"`
	KeyPairs       map[string]*ec2KeyPair       `json:"key_pairs"` // by key-pair ID
	SecurityGroups map[string]*ec2SecurityGroup `json:"security_groups"`
	VPCs           map[string]*ec2VPC           `json:"vpcs"`
	Subnets        map[string]*ec2Subnet        `json:"subnets"`

	// Tags: resource ID -> account that wrote them -> key -> value
	// (aws-behaviour.md 3.6: tags belong to the account that wrote them).
	Tags map[string]map[string]map[string]string `json:"tags"`

	// ClientTokens: "account|region|action|token" -> first call.
	ClientTokens map[string]*ec2ClientToken `json:"client_tokens"`

	// EBS encryption settings changed by API calls, by "account|region".
	// Absent means the world's setting and alias/aws/ebs.
	EBSDefaults map[string]*ec2EBSDefault `json:"ebs_defaults"`

	// FullCopies remembers (lineage, region, key) combinations already copied
	// once, so later copies are incremental (aws-behaviour.md 2).
	FullCopies map[string]bool `json:"full_copies"`

	// Registrations is the history of every AMI made, kept after
	// deregistration for the invariant checker.
	Registrations []Registration `json:"registrations"`

	// Aliases maps account IDs to their alias ("amazon").
	Aliases map[string]string `json:"aliases"`
}

type ec2ClientToken struct {
	Params string `json:"params"` // canonical parameters of the first call
	Result string `json:"result"` // ami-…, r-…
}

type ec2EBSDefault struct {
	Encrypt *bool  `json:"encrypt,omitempty"`
	KeyARN  string `json:"key_arn,omitempty"` // "" means alias/aws/ebs
}

// Registration records an AMI at the moment it was made.
type Registration struct {
	ImageID   string    `json:"image_id"`
	Action    string    `json:"action"` // RegisterImage, CreateImage, CopyImage
	Account   string    `json:"account"`
	Region    string    `json:"region"`
	Principal string    `json:"principal"`
	Time      time.Time `json:"time"`
	// Unencrypted lists the unencrypted snapshots behind the AMI.
	Unencrypted []string `json:"unencrypted,omitempty"`
	// ForeignKeys lists key ARNs of its snapshots owned by another account.
	ForeignKeys []string `json:"foreign_keys,omitempty"`
}

// ec2TimeFormat is how EC2 writes timestamps.
const ec2TimeFormat = "2006-01-02T15:04:05.000Z"

func ec2Time(t time.Time) string { return t.UTC().Format(ec2TimeFormat) }

func newEC2State() *ec2State {
	s := &ec2State{}
	s.ensure()
	return s
}

// ensure makes every map usable, also after a state file load.
func (s *ec2State) ensure() {
	if s.Images == nil {
		s.Images = map[string]*ec2Image{}
	}
	if s.Snapshots == nil {
		s.Snapshots = map[string]*ec2Snapshot{}
	}
	if s.Volumes == nil {
		s.Volumes = map[string]*ec2Volume{}
	}
	if s.Instances == nil {
		s.Instances = map[string]*ec2Instance{}
	}
	if s.Reservations == nil {
		s.Reservations = map[string]*ec2Reservation{}
	}
	if s.KeyPairs == nil {
		s.KeyPairs = map[string]*ec2KeyPair{}
	}
	if s.SecurityGroups == nil {
		s.SecurityGroups = map[string]*ec2SecurityGroup{}
	}
	if s.VPCs == nil {
		s.VPCs = map[string]*ec2VPC{}
	}
	if s.Subnets == nil {
		s.Subnets = map[string]*ec2Subnet{}
	}
	if s.Tags == nil {
		s.Tags = map[string]map[string]map[string]string{}
	}
	if s.ClientTokens == nil {
		s.ClientTokens = map[string]*ec2ClientToken{}
	}
	if s.EBSDefaults == nil {
		s.EBSDefaults = map[string]*ec2EBSDefault{}
	}
	if s.FullCopies == nil {
		s.FullCopies = map[string]bool{}
	}
	if s.Aliases == nil {
		s.Aliases = map[string]string{}
	}
}

// newID returns a fresh AWS-shaped ID with prefix ("ami", "snap", "i"…):
// 17 hex digits derived from a counter, so runs are reproducible.
func (s *ec2State) newID(prefix string) string {
	for {
		s.Seq++
		sum := sha256.Sum256([]byte(prefix + strconv.FormatUint(s.Seq, 10)))
		id := prefix + "-0" + hex.EncodeToString(sum[:])[:16]
		if !s.idTaken(id) {
			return id
		}
	}
}

func (s *ec2State) idTaken(id string) bool {
	if _, ok := s.Images[id]; ok {
		return true
	}
	if _, ok := s.Snapshots[id]; ok {
		return true
	}
	if _, ok := s.Volumes[id]; ok {
		return true
	}
	if _, ok := s.Instances[id]; ok {
		return true
	}
	if _, ok := s.Reservations[id]; ok {
		return true
	}
	if _, ok := s.KeyPairs[id]; ok {
		return true
	}
	if _, ok := s.SecurityGroups[id]; ok {
		return true
	}
	if _, ok := s.VPCs[id]; ok {
		return true
	}
	_, ok := s.Subnets[id]
	return ok
}

// seedEC2 builds the EC2 state of a world: per account and enabled region a
// default VPC, one default subnet per availability zone and the default
// security group; then the world's images and their snapshots.
func (e *Service) seedEC2(w *core.World) {
	s := newEC2State()
	e.st = s
	epoch := e.clock.Now().Add(-30 * 24 * time.Hour)
	for _, a := range w.Accounts {
		if a.Alias != "" {
			s.Aliases[a.ID] = a.Alias
		}
		for _, region := range w.Regions {
			s.seedNetwork(a.ID, region)
		}
	}
	for _, wi := range w.Images {
		img := &ec2Image{
			ID: wi.ID, Owner: wi.Owner, Region: wi.Region, Name: wi.Name,
			Description: wi.Description, Public: wi.Public,
			Architecture: orDefault(wi.Architecture, "x86_64"), VirtualizationType: orDefault(wi.VirtualizationType, "hvm"),
			RootDeviceName: orDefault(wi.RootDeviceName, "/dev/xvda"), EnaSupport: wi.EnaSupport,
			SriovNetSupport: wi.SriovNetSupport, BootMode: wi.BootMode, TpmSupport: wi.TpmSupport, ImdsSupport: wi.ImdsSupport,
			Created: epoch, ReadyAt: epoch, State: "available", Seeded: true,
		}
		for _, v := range wi.Volumes {
			snap := &ec2Snapshot{
				ID: v.SnapshotID, Owner: wi.Owner, Region: wi.Region, VolumeID: "vol-ffffffff", SizeGiB: v.SizeGiB,
				Encrypted: v.Encrypted, KmsKeyARN: v.KmsKey, Description: "", Started: epoch, DoneAt: epoch,
				State: "completed", Lineage: v.SnapshotID, Seeded: true,
			}
			if v.Encrypted {
				snap.KeyManager = "CUSTOMER"
				if info, ok := e.keys.KeyInfoByARN(v.KmsKey); ok {
					snap.KmsKeyARN, snap.KeyManager = info.ARN, info.Manager
				}
			}
			s.Snapshots[snap.ID] = snap
			img.Mappings = append(img.Mappings, ec2Mapping{
				DeviceName: v.DeviceName, SnapshotID: v.SnapshotID, SizeGiB: v.SizeGiB,
				VolumeType: orDefault(v.VolumeType, "gp3"), DeleteOnTermination: true,
				Encrypted: v.Encrypted, KmsKeyARN: snap.KmsKeyARN, HasEbs: true,
			})
		}
		s.Images[img.ID] = img
		if len(wi.Tags) > 0 {
			s.setTags(img.ID, wi.Owner, wi.Tags)
		}
	}
}

// seedNetwork makes the default VPC, subnets and security group of an
// account-region.
func (s *ec2State) seedNetwork(account, region string) {
	vpc := &ec2VPC{ID: s.newID("vpc"), Owner: account, Region: region, CIDR: "172.31.0.0/16", Default: true}
	s.VPCs[vpc.ID] = vpc
	for i, az := range availabilityZones(region) {
		sub := &ec2Subnet{
			ID: s.newID("subnet"), Owner: account, Region: region, VpcID: vpc.ID, AZ: az,
			CIDR: fmt.Sprintf("172.31.%d.0/20", 16*i), DefaultForAZ: true,
		}
		s.Subnets[sub.ID] = sub
	}
	sg := &ec2SecurityGroup{
		ID: s.newID("sg"), Owner: account, Region: region, VpcID: vpc.ID, Name: "default",
		Description: "default VPC security group", Default: true, Seeded: true,
	}
	sg.Ingress = []ec2Permission{{Protocol: "-1", FromPort: -1, ToPort: -1, Groups: []string{sg.ID}}}
	sg.Egress = []ec2Permission{{Protocol: "-1", FromPort: -1, ToPort: -1, CIDRs: []string{"0.0.0.0/0"}}}
	s.SecurityGroups[sg.ID] = sg
}

// availabilityZones are the zones of a region: a, b and c.
func availabilityZones(region string) []string {
	return []string{region + "a", region + "b", region + "c"}
}

// zoneID is the AZ ID of a zone name: us-east-1a -> use1-az1.
func zoneID(zone string) string {
	if zone == "" {
		return ""
	}
	region, letter := zone[:len(zone)-1], zone[len(zone)-1]
	parts := strings.Split(region, "-")
	short := map[string]string{"east": "e", "west": "w", "central": "c", "north": "n", "south": "s",
		"southeast": "se", "northeast": "ne", "southwest": "sw", "northwest": "nw"}
	var b strings.Builder
	for i, p := range parts {
		if i == 1 {
			if v, ok := short[p]; ok {
				p = v
			}
		}
		b.WriteString(p)
	}
	return fmt.Sprintf("%s-az%d", b.String(), int(letter-'a')+1)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// ec2Handler is one EC2 action.
type ec2Handler func(e *Service, c *core.Call, p ec2Params) (any, *core.APIError)

// ec2ActionTable maps EC2 actions to their handlers. It is a function,
// not a package-level map, so there is no package-level mutable state.
func ec2ActionTable() map[string]ec2Handler {
	return map[string]ec2Handler{
		// images
		"DescribeImages":                       (*Service).ec2DescribeImages,
		"CreateImage":                          (*Service).ec2CreateImage,
		"RegisterImage":                        (*Service).ec2RegisterImage,
		"CopyImage":                            (*Service).ec2CopyImage,
		"DeregisterImage":                      (*Service).ec2DeregisterImage,
		"DescribeImageAttribute":               (*Service).ec2DescribeImageAttribute,
		"ModifyImageAttribute":                 (*Service).ec2ModifyImageAttribute,
		"ResetImageAttribute":                  (*Service).ec2ResetImageAttribute,
		"EnableImageDeprecation":               (*Service).ec2EnableImageDeprecation,
		"DisableImageDeprecation":              (*Service).ec2DisableImageDeprecation,
		"EnableImageDeregistrationProtection":  (*Service).ec2EnableImageDeregistrationProtection,
		"DisableImageDeregistrationProtection": (*Service).ec2DisableImageDeregistrationProtection,
		// snapshots and volumes
		"CreateSnapshot":            (*Service).ec2CreateSnapshot,
		"CopySnapshot":              (*Service).ec2CopySnapshot,
		"DescribeSnapshots":         (*Service).ec2DescribeSnapshots,
		"DeleteSnapshot":            (*Service).ec2DeleteSnapshot,
		"DescribeSnapshotAttribute": (*Service).ec2DescribeSnapshotAttribute,
		"ModifySnapshotAttribute":   (*Service).ec2ModifySnapshotAttribute,
		"DescribeVolumes":           (*Service).ec2DescribeVolumes,
		"CreateVolume":              (*Service).ec2CreateVolume,
		"DeleteVolume":              (*Service).ec2DeleteVolume,
		// instances
		"RunInstances":              (*Service).ec2RunInstances,
		"DescribeInstances":         (*Service).ec2DescribeInstances,
		"DescribeInstanceStatus":    (*Service).ec2DescribeInstanceStatus,
		"StopInstances":             (*Service).ec2StopInstances,
		"StartInstances":            (*Service).ec2StartInstances,
		"TerminateInstances":        (*Service).ec2TerminateInstances,
		"ModifyInstanceAttribute":   (*Service).ec2ModifyInstanceAttribute,
		"DescribeInstanceAttribute": (*Service).ec2DescribeInstanceAttribute,
		// network
		"CreateKeyPair":                 (*Service).ec2CreateKeyPair,
		"ImportKeyPair":                 (*Service).ec2ImportKeyPair,
		"DeleteKeyPair":                 (*Service).ec2DeleteKeyPair,
		"DescribeKeyPairs":              (*Service).ec2DescribeKeyPairs,
		"CreateSecurityGroup":           (*Service).ec2CreateSecurityGroup,
		"AuthorizeSecurityGroupIngress": (*Service).ec2AuthorizeSecurityGroupIngress,
		"AuthorizeSecurityGroupEgress":  (*Service).ec2AuthorizeSecurityGroupEgress,
		"RevokeSecurityGroupIngress":    (*Service).ec2RevokeSecurityGroupIngress,
		"DeleteSecurityGroup":           (*Service).ec2DeleteSecurityGroup,
		"DescribeSecurityGroups":        (*Service).ec2DescribeSecurityGroups,
		"DescribeVpcs":                  (*Service).ec2DescribeVpcs,
		"DescribeSubnets":               (*Service).ec2DescribeSubnets,
		// account
		"DescribeRegions":               (*Service).ec2DescribeRegions,
		"DescribeAvailabilityZones":     (*Service).ec2DescribeAvailabilityZones,
		"DescribeInstanceTypes":         (*Service).ec2DescribeInstanceTypes,
		"DescribeInstanceTypeOfferings": (*Service).ec2DescribeInstanceTypeOfferings,
		"CreateTags":                    (*Service).ec2CreateTags,
		"DeleteTags":                    (*Service).ec2DeleteTags,
		"DescribeTags":                  (*Service).ec2DescribeTags,
		"GetEbsEncryptionByDefault":     (*Service).ec2GetEbsEncryptionByDefault,
		"EnableEbsEncryptionByDefault":  (*Service).ec2EnableEbsEncryptionByDefault,
		"DisableEbsEncryptionByDefault": (*Service).ec2DisableEbsEncryptionByDefault,
		"GetEbsDefaultKmsKeyId":         (*Service).ec2GetEbsDefaultKmsKeyId,
		"ModifyEbsDefaultKmsKeyId":      (*Service).ec2ModifyEbsDefaultKmsKeyId,
		"ResetEbsDefaultKmsKeyId":       (*Service).ec2ResetEbsDefaultKmsKeyId,
	}
}

// handleEC2 serves one EC2 Query call; the emulator lock is held.
func (e *Service) handleEC2(c *core.Call) (any, *core.APIError) {
	if e.st == nil {
		e.st = newEC2State()
	}
	e.st.ensure()
	h, ok := ec2ActionTable()[c.Action]
	if !ok {
		return nil, &core.APIError{HTTPStatus: 400, Code: "InvalidAction",
			Message: fmt.Sprintf("The action %s is not valid for this web service.", c.Action)}
	}
	p := ec2Params{v: c.Params}
	dry, err := p.boolean("DryRun")
	if err != nil {
		return nil, err
	}
	if !e.iam.Allowed(c.PrincipalIAM, "ec2:"+c.Action) {
		return nil, ec2Unauthorized(c)
	}
	if dry {
		return nil, &core.APIError{HTTPStatus: 412, Code: "DryRunOperation",
			Message: "Request would have succeeded, but DryRun flag is set."}
	}
	return h(e, c, p)
}

func ec2Unauthorized(c *core.Call) *core.APIError {
	return &core.APIError{HTTPStatus: 403, Code: "UnauthorizedOperation",
		Message: fmt.Sprintf("You are not authorized to perform this operation. User: %s is not authorized to perform: ec2:%s", c.Principal, c.Action)}
}

// ec2Params reads EC2 Query parameters.
type ec2Params struct{ v map[string][]string }

func (p ec2Params) str(name string) string {
	if vs := p.v[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func (p ec2Params) has(name string) bool {
	_, ok := p.v[name]
	return ok
}

// required returns a parameter or MissingParameter.
func (p ec2Params) required(name string) (string, *core.APIError) {
	v := p.str(name)
	if v == "" {
		return "", core.Errf("MissingParameter", "The request must contain the parameter %s", name)
	}
	return v, nil
}

// boolean parses an optional boolean; absent is false.
func (p ec2Params) boolean(name string) (bool, *core.APIError) {
	b, _, err := p.optBool(name)
	return b, err
}

// optBool parses an optional boolean and says whether it was given.
func (p ec2Params) optBool(name string) (value, given bool, err *core.APIError) {
	if !p.has(name) {
		return false, false, nil
	}
	switch strings.ToLower(p.str(name)) {
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	}
	return false, true, core.Errf("InvalidParameterValue", "Value (%s) for parameter %s is invalid. Expected: 'true' or 'false'.", p.str(name), name)
}

// integer parses an optional integer; absent gives def.
func (p ec2Params) integer(name string, def int) (int, *core.APIError) {
	if !p.has(name) || p.str(name) == "" {
		return def, nil
	}
	n, err := strconv.Atoi(p.str(name))
	if err != nil {
		return 0, core.Errf("InvalidParameterValue", "Value (%s) for parameter %s is invalid. Expected an integer.", p.str(name), name)
	}
	return n, nil
}

// indices lists the N of every "prefix.N" or "prefix.N.…" parameter, sorted.
func (p ec2Params) indices(prefix string) []int {
	seen := map[int]bool{}
	for k := range p.v {
		if !strings.HasPrefix(k, prefix+".") {
			continue
		}
		rest := k[len(prefix)+1:]
		if i := strings.IndexByte(rest, '.'); i >= 0 {
			rest = rest[:i]
		}
		if n, err := strconv.Atoi(rest); err == nil {
			seen[n] = true
		}
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// list returns the values of prefix.1, prefix.2, … in order.
func (p ec2Params) list(prefix string) []string {
	var out []string
	for _, n := range p.indices(prefix) {
		if v := p.str(fmt.Sprintf("%s.%d", prefix, n)); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// ec2Filter is one Filter.N of a Describe call.
type ec2Filter struct {
	Name   string
	Values []string
}

func (p ec2Params) filters() []ec2Filter {
	var out []ec2Filter
	for _, n := range p.indices("Filter") {
		pre := fmt.Sprintf("Filter.%d", n)
		out = append(out, ec2Filter{Name: p.str(pre + ".Name"), Values: p.list(pre + ".Value")})
	}
	return out
}

// ec2TagSpec is one TagSpecification.N.
type ec2TagSpec struct {
	ResourceType string
	Tags         map[string]string
}

func (p ec2Params) tagSpecs(allowed ...string) ([]ec2TagSpec, *core.APIError) {
	var out []ec2TagSpec
	for _, n := range p.indices("TagSpecification") {
		pre := fmt.Sprintf("TagSpecification.%d", n)
		ts := ec2TagSpec{ResourceType: p.str(pre + ".ResourceType"), Tags: p.tagList(pre + ".Tag")}
		ok := false
		for _, a := range allowed {
			ok = ok || a == ts.ResourceType
		}
		if !ok {
			return nil, core.Errf("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", ts.ResourceType)
		}
		if err := validateTags(ts.Tags); err != nil {
			return nil, err
		}
		out = append(out, ts)
	}
	return out, nil
}

// tagList reads prefix.N.Key / prefix.N.Value pairs.
func (p ec2Params) tagList(prefix string) map[string]string {
	tags := map[string]string{}
	for _, n := range p.indices(prefix) {
		pre := fmt.Sprintf("%s.%d", prefix, n)
		if k := p.str(pre + ".Key"); k != "" {
			tags[k] = p.str(pre + ".Value")
		}
	}
	return tags
}

// tagsFor returns the tags of one resource type from tag specifications.
func tagsFor(specs []ec2TagSpec, resourceType string) map[string]string {
	out := map[string]string{}
	for _, s := range specs {
		if s.ResourceType == resourceType {
			for k, v := range s.Tags {
				out[k] = v
			}
		}
	}
	return out
}

// canonical is a stable form of the call's parameters for ClientToken
// comparison, without the token itself and the envelope fields.
func (p ec2Params) canonical() string {
	keys := make([]string, 0, len(p.v))
	for k := range p.v {
		switch k {
		case "Action", "Version", "ClientToken", "DryRun":
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strings.Join(p.v[k], ","))
		b.WriteByte('&')
	}
	return b.String()
}

// clientToken implements ClientToken idempotency (aws-behaviour.md 3.10): it
// returns the earlier result for the same token and parameters, an
// IdempotentParameterMismatch for the same token with other parameters, or
// "" for a new token.
func (e *Service) clientToken(c *core.Call, p ec2Params) (key, earlier string, err *core.APIError) {
	token := p.str("ClientToken")
	if token == "" {
		return "", "", nil
	}
	if len(token) > 64 {
		return "", "", core.Errf("InvalidParameterValue", "Value (%s) for parameter ClientToken is invalid. The client token must be 64 ASCII characters or fewer.", token)
	}
	key = c.Account + "|" + c.Region + "|" + c.Action + "|" + token
	if prev, ok := e.st.ClientTokens[key]; ok {
		if prev.Params != p.canonical() {
			return "", "", core.Errf("IdempotentParameterMismatch", "Client token %s was already used with different parameters.", token)
		}
		return key, prev.Result, nil
	}
	return key, "", nil
}

func (e *Service) rememberToken(key string, p ec2Params, result string) {
	if key != "" {
		e.st.ClientTokens[key] = &ec2ClientToken{Params: p.canonical(), Result: result}
	}
}

// paginate applies MaxResults/NextToken to n sorted items and returns the
// window and the next token.
func paginate(p ec2Params, n int) (from, to int, next string, err *core.APIError) {
	max, err := p.integer("MaxResults", 0)
	if err != nil {
		return 0, 0, "", err
	}
	if tok := p.str("NextToken"); tok != "" {
		from, _ = strconv.Atoi(tok)
		if from < 0 || from > n {
			return 0, 0, "", core.Errf("InvalidPaginationToken", "Invalid pagination token: %s", tok)
		}
	}
	to = n
	if max > 0 && from+max < n {
		to = from + max
		next = strconv.Itoa(to)
	}
	return from, to, next, nil
}

// ec2ValueString is an AttributeValue element: <x><value>…</value></x>.
type ec2ValueString struct {
	Value string `xml:"value"`
}

// ec2ValueBool is an AttributeBooleanValue element.
type ec2ValueBool struct {
	Value bool `xml:"value"`
}

// ec2Return is the <return>true</return> of mutating calls.
type ec2Return struct {
	Return bool `xml:"return"`
}
