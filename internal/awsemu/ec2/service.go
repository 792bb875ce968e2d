package ec2

// ec2.go holds the EC2 side's state, its seeding from the world and the
// action table. The resources live in ec2_*.go by family.

import (
	"cmp"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

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

// seed builds the EC2 state of a world: per account and enabled region a
// default VPC, one default subnet per availability zone and the default
// security group; then the world's images and their snapshots.
func (e *Service) seed(w *core.World) {
	want := map[core.Scope]bool{}
	for _, a := range w.Accounts {
		for _, region := range w.Regions {
			want[core.Scope{Account: a.ID, Region: region}] = true
		}
	}
	v := e.lock(want)
	defer v.unlock()
	epoch := e.clock.Now().Add(-30 * 24 * time.Hour)
	for _, a := range w.Accounts {
		for _, region := range w.Regions {
			v.seedNetwork(a.ID, region)
		}
	}
	for _, wi := range w.Images {
		img := &ec2Image{
			ID: wi.ID, Owner: wi.Owner, Region: wi.Region, Name: wi.Name,
			Description: wi.Description, Public: wi.Public,
			Architecture: orDefault(wi.Architecture, "x86_64"), VirtualizationType: orDefault(wi.VirtualizationType, "hvm"),
			RootDeviceName: orDefault(wi.RootDeviceName, "/dev/xvda"), EnaSupport: wi.EnaSupport,
			SriovNetSupport: wi.SriovNetSupport, BootMode: wi.BootMode, TpmSupport: wi.TpmSupport, ImdsSupport: wi.ImdsSupport,
			Platform: worldPlatform(wi), Created: epoch, ReadyAt: epoch, State: "available", Seeded: true,
		}
		for _, vol := range wi.Volumes {
			snap := &ec2Snapshot{
				ID: vol.SnapshotID, Owner: wi.Owner, Region: wi.Region, VolumeID: "vol-ffffffff", SizeGiB: vol.SizeGiB,
				Encrypted: vol.Encrypted, KmsKeyARN: vol.KmsKey, Description: "", Started: epoch, DoneAt: epoch,
				State: "completed", Lineage: vol.SnapshotID, Seeded: true, Platform: img.Platform,
			}
			if vol.Encrypted {
				snap.KeyManager = "CUSTOMER"
				if info, ok := e.keys.KeyInfoByARN(vol.KmsKey); ok {
					snap.KmsKeyARN, snap.KeyManager = info.ARN, info.Manager
				}
			}
			put(v, snapshotsOf, snap)
			m := ec2Mapping{
				DeviceName: vol.DeviceName, SnapshotID: vol.SnapshotID, SizeGiB: vol.SizeGiB,
				VolumeType: orDefault(vol.VolumeType, "gp3"), DeleteOnTermination: true,
				Encrypted: vol.Encrypted, KmsKeyARN: snap.KmsKeyARN, HasEbs: true,
				Iops: vol.Iops, Throughput: vol.Throughput,
			}
			if m.VolumeType == "gp3" {
				m.Iops, m.Throughput = cmp.Or(m.Iops, 3000), cmp.Or(m.Throughput, 125)
			}
			img.Mappings = append(img.Mappings, m)
		}
		putImage(v, img)
		if len(wi.Tags) > 0 {
			v.setTags(img.ID, wi.Owner, wi.Tags)
		}
	}
}

// worldPlatform is a world image's platform. A world file that predates
// the platform field marks Windows only by the name, as Amazon names its
// Windows AMIs ("Windows_Server-2022-…"): such an image without a platform
// is taken as windows (emulator convention; set platform instead).
func worldPlatform(wi core.WorldImage) string {
	if wi.Platform == "" && strings.HasPrefix(strings.ToLower(wi.Name), "windows") {
		return "windows"
	}
	return wi.Platform
}

// seedNetwork makes the default VPC, subnets and security group of an
// account-region.
func (e *view) seedNetwork(account, region string) {
	vpc := &ec2VPC{ID: e.newID("vpc"), Owner: account, Region: region, CIDR: "172.31.0.0/16", Default: true}
	put(e, vpcsOf, vpc)
	for i, az := range availabilityZones(region) {
		sub := &ec2Subnet{
			ID: e.newID("subnet"), Owner: account, Region: region, VpcID: vpc.ID, AZ: az,
			CIDR: fmt.Sprintf("172.31.%d.0/20", 16*i), DefaultForAZ: true,
		}
		put(e, subnetsOf, sub)
	}
	sg := &ec2SecurityGroup{
		ID: e.newID("sg"), Owner: account, Region: region, VpcID: vpc.ID, Name: "default",
		Description: "default VPC security group", Default: true, Seeded: true,
	}
	sg.Ingress = []ec2Permission{{Protocol: "-1", FromPort: -1, ToPort: -1, Groups: []string{sg.ID}}}
	sg.Egress = []ec2Permission{{Protocol: "-1", FromPort: -1, ToPort: -1, CIDRs: []string{"0.0.0.0/0"}}}
	put(e, securityGroupsOf, sg)
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
type ec2Handler func(e *view, c *core.Call, p ec2Params) (any, *core.APIError)

// ec2ActionTable maps EC2 actions to their handlers. It is a function,
// not a package-level map, so there is no package-level mutable state.
func ec2ActionTable() map[string]ec2Handler {
	t := map[string]ec2Handler{
		// images
		"DescribeImages":                       (*view).ec2DescribeImages,
		"CreateImage":                          (*view).ec2CreateImage,
		"RegisterImage":                        (*view).ec2RegisterImage,
		"CopyImage":                            (*view).ec2CopyImage,
		"DeregisterImage":                      (*view).ec2DeregisterImage,
		"DescribeImageAttribute":               (*view).ec2DescribeImageAttribute,
		"ModifyImageAttribute":                 (*view).ec2ModifyImageAttribute,
		"ResetImageAttribute":                  (*view).ec2ResetImageAttribute,
		"EnableImageDeprecation":               (*view).ec2EnableImageDeprecation,
		"DisableImageDeprecation":              (*view).ec2DisableImageDeprecation,
		"EnableImageDeregistrationProtection":  (*view).ec2EnableImageDeregistrationProtection,
		"DisableImageDeregistrationProtection": (*view).ec2DisableImageDeregistrationProtection,
		// snapshots and volumes
		"CreateSnapshot":            (*view).ec2CreateSnapshot,
		"CopySnapshot":              (*view).ec2CopySnapshot,
		"DescribeSnapshots":         (*view).ec2DescribeSnapshots,
		"DeleteSnapshot":            (*view).ec2DeleteSnapshot,
		"DescribeSnapshotAttribute": (*view).ec2DescribeSnapshotAttribute,
		"ModifySnapshotAttribute":   (*view).ec2ModifySnapshotAttribute,
		"DescribeVolumes":           (*view).ec2DescribeVolumes,
		"CreateVolume":              (*view).ec2CreateVolume,
		"DeleteVolume":              (*view).ec2DeleteVolume,
		// instances
		"RunInstances":              (*view).ec2RunInstances,
		"DescribeInstances":         (*view).ec2DescribeInstances,
		"DescribeInstanceStatus":    (*view).ec2DescribeInstanceStatus,
		"StopInstances":             (*view).ec2StopInstances,
		"StartInstances":            (*view).ec2StartInstances,
		"TerminateInstances":        (*view).ec2TerminateInstances,
		"ModifyInstanceAttribute":   (*view).ec2ModifyInstanceAttribute,
		"DescribeInstanceAttribute": (*view).ec2DescribeInstanceAttribute,
		// network
		"CreateKeyPair":                 (*view).ec2CreateKeyPair,
		"ImportKeyPair":                 (*view).ec2ImportKeyPair,
		"DeleteKeyPair":                 (*view).ec2DeleteKeyPair,
		"DescribeKeyPairs":              (*view).ec2DescribeKeyPairs,
		"CreateSecurityGroup":           (*view).ec2CreateSecurityGroup,
		"AuthorizeSecurityGroupIngress": (*view).ec2AuthorizeSecurityGroupIngress,
		"AuthorizeSecurityGroupEgress":  (*view).ec2AuthorizeSecurityGroupEgress,
		"RevokeSecurityGroupIngress":    (*view).ec2RevokeSecurityGroupIngress,
		"DeleteSecurityGroup":           (*view).ec2DeleteSecurityGroup,
		"DescribeSecurityGroups":        (*view).ec2DescribeSecurityGroups,
		"DescribeVpcs":                  (*view).ec2DescribeVpcs,
		"DescribeSubnets":               (*view).ec2DescribeSubnets,
		// account
		"DescribeRegions":               (*view).ec2DescribeRegions,
		"DescribeAvailabilityZones":     (*view).ec2DescribeAvailabilityZones,
		"DescribeInstanceTypes":         (*view).ec2DescribeInstanceTypes,
		"DescribeInstanceTypeOfferings": (*view).ec2DescribeInstanceTypeOfferings,
		"CreateTags":                    (*view).ec2CreateTags,
		"DeleteTags":                    (*view).ec2DeleteTags,
		"DescribeTags":                  (*view).ec2DescribeTags,
		"GetEbsEncryptionByDefault":     (*view).ec2GetEbsEncryptionByDefault,
		"EnableEbsEncryptionByDefault":  (*view).ec2EnableEbsEncryptionByDefault,
		"DisableEbsEncryptionByDefault": (*view).ec2DisableEbsEncryptionByDefault,
		"GetEbsDefaultKmsKeyId":         (*view).ec2GetEbsDefaultKmsKeyId,
		"ModifyEbsDefaultKmsKeyId":      (*view).ec2ModifyEbsDefaultKmsKeyId,
		"ResetEbsDefaultKmsKeyId":       (*view).ec2ResetEbsDefaultKmsKeyId,
	}
	// Launch templates, EC2 Fleet, spot requests and Windows passwords (dropin.go).
	for action, h := range dropInActions() {
		t[action] = h
	}
	return t
}

// Handle serves one EC2 Query call, holding the locks of the stores it
// touches (see lockFor).
func (e *Service) Handle(c *core.Call) (any, *core.APIError) {
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
	if err := e.authorize(c, p); err != nil {
		return nil, err
	}
	if dry {
		return nil, &core.APIError{HTTPStatus: 412, Code: "DryRunOperation",
			Message: "Request would have succeeded, but DryRun flag is set."}
	}
	v := e.lockFor(c, p)
	defer v.unlock()
	return h(v, c, p)
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

// clientToken implements ClientToken idempotency (docs/aws-behaviour.md 3.10): it
// returns the earlier result for the same token and parameters, an
// IdempotentParameterMismatch for the same token with other parameters, or
// "" for a new token.
func (e *view) clientToken(c *core.Call, p ec2Params) (key, earlier string, err *core.APIError) {
	token := p.str("ClientToken")
	if token == "" {
		return "", "", nil
	}
	if len(token) > 64 {
		return "", "", core.Errf("InvalidParameterValue", "Value (%s) for parameter ClientToken is invalid. The client token must be 64 ASCII characters or fewer.", token)
	}
	key = c.Action + "|" + token
	if prev, ok := e.own(c).ClientTokens[key]; ok {
		if prev.Params != p.canonical() {
			return "", "", core.Errf("IdempotentParameterMismatch", "Client token %s was already used with different parameters.", token)
		}
		return key, prev.Result, nil
	}
	return key, "", nil
}

func (e *view) rememberToken(c *core.Call, key string, p ec2Params, result string) {
	if key != "" {
		e.own(c).ClientTokens[key] = &ec2ClientToken{Params: p.canonical(), Result: result}
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
