package ec2

// ec2_network.go: key pairs, security groups, the default VPC and subnets,
// regions, availability zones and instance types.

import (
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/core"
)

type ec2KeyPair struct {
	ID          string    `json:"id"`
	Owner       string    `json:"owner"`
	Region      string    `json:"region"`
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Fingerprint string    `json:"fingerprint"`
	PublicKey   string    `json:"public_key,omitempty"`
	Created     time.Time `json:"created"`
	Principal   string    `json:"principal,omitempty"`
}

type ec2SecurityGroup struct {
	ID          string          `json:"id"`
	Owner       string          `json:"owner"`
	Region      string          `json:"region"`
	VpcID       string          `json:"vpc_id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Default     bool            `json:"default,omitempty"`
	Ingress     []ec2Permission `json:"ingress"`
	Egress      []ec2Permission `json:"egress"`
	Seeded      bool            `json:"seeded,omitempty"`
	Principal   string          `json:"principal,omitempty"`
}

// ec2Permission is one security group rule set (IpPermission).
type ec2Permission struct {
	Protocol string   `json:"protocol"`
	FromPort int      `json:"from_port"`
	ToPort   int      `json:"to_port"`
	CIDRs    []string `json:"cidrs,omitempty"`
	IPv6     []string `json:"ipv6,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

type ec2VPC struct {
	ID      string `json:"id"`
	Owner   string `json:"owner"`
	Region  string `json:"region"`
	CIDR    string `json:"cidr"`
	Default bool   `json:"default"`
}

type ec2Subnet struct {
	ID           string `json:"id"`
	Owner        string `json:"owner"`
	Region       string `json:"region"`
	VpcID        string `json:"vpc_id"`
	AZ           string `json:"az"`
	CIDR         string `json:"cidr"`
	DefaultForAZ bool   `json:"default_for_az"`
	Used         int    `json:"used"` // addresses handed out
}

// nextIP hands out the next private address of the subnet.
func (s *ec2Subnet) nextIP() string {
	s.Used++
	var a, b, c, d int
	if _, err := fmt.Sscanf(s.CIDR, "%d.%d.%d.%d", &a, &b, &c, &d); err != nil {
		// Only the emulator makes subnets (defaultVPC), always with an IPv4
		// block; anything else is a hand-edited state file.
		panic(fmt.Sprintf("awsemu: subnet %s has CIDR %q, not an IPv4 block: %v", s.ID, s.CIDR, err))
	}
	n := 4 + s.Used
	return fmt.Sprintf("%d.%d.%d.%d", a, b, c+(n/256)%16, n%256)
}

func (e *view) defaultSubnet(account, region, az string) *ec2Subnet {
	var best *ec2Subnet
	for _, s := range allIn(e, subnetsOf, region) {
		if s.Owner != account || s.Region != region || !s.DefaultForAZ || (az != "" && s.AZ != az) {
			continue
		}
		if best == nil || s.AZ < best.AZ {
			best = s
		}
	}
	return best
}

func (e *view) defaultVPC(account, region string) *ec2VPC {
	for _, v := range allIn(e, vpcsOf, region) {
		if v.Owner == account && v.Region == region && v.Default {
			return v
		}
	}
	return nil
}

func (e *view) securityGroupByName(account, region, vpcID, name string) *ec2SecurityGroup {
	for _, sg := range allIn(e, securityGroupsOf, region) {
		if sg.Owner == account && sg.Region == region && sg.VpcID == vpcID && sg.Name == name {
			return sg
		}
	}
	return nil
}

func (e *view) keyPairByName(account, region, name string) *ec2KeyPair {
	for _, k := range allIn(e, keyPairsOf, region) {
		if k.Owner == account && k.Region == region && k.Name == name {
			return k
		}
	}
	return nil
}

// ---- key pairs ----

type xmlKeyPair struct {
	KeyPairID      string   `xml:"keyPairId"`
	KeyName        string   `xml:"keyName"`
	KeyFingerprint string   `xml:"keyFingerprint"`
	KeyType        string   `xml:"keyType,omitempty"`
	PublicKey      string   `xml:"publicKey,omitempty"`
	CreateTime     string   `xml:"createTime,omitempty"`
	TagSet         []xmlTag `xml:"tagSet>item,omitempty"`
}

type createKeyPairOutput struct {
	KeyName        string   `xml:"keyName"`
	KeyFingerprint string   `xml:"keyFingerprint"`
	KeyMaterial    string   `xml:"keyMaterial,omitempty"`
	KeyPairID      string   `xml:"keyPairId"`
	TagSet         []xmlTag `xml:"tagSet>item,omitempty"`
}

var keyNamePattern = regexp.MustCompile(`^[\x20-\x7e]{1,255}$`)

func (e *view) newKeyPair(c *core.Call, name, keyType string, specs []ec2TagSpec) (*ec2KeyPair, *core.APIError) {
	if name == "" {
		return nil, core.Errf("MissingParameter", "The request must contain the parameter KeyName")
	}
	if !keyNamePattern.MatchString(name) {
		return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter keyName is invalid. Key names may contain only ASCII characters.", name)
	}
	if e.keyPairByName(c.Account, c.Region, name) != nil {
		return nil, core.Errf("InvalidKeyPair.Duplicate", "The keypair '%s' already exists.", name)
	}
	k := &ec2KeyPair{ID: e.newID("key"), Owner: c.Account, Region: c.Region, Name: name, Type: keyType,
		Created: e.clock.Now(), Principal: c.Principal}
	put(e, keyPairsOf, k)
	if t := tagsFor(specs, "key-pair"); len(t) > 0 {
		e.setTags(k.ID, c.Account, t)
	}
	c.Note("keyPairId", k.ID)
	c.Note("keyName", name)
	return k, nil
}

func (e *view) ec2CreateKeyPair(c *core.Call, p ec2Params) (any, *core.APIError) {
	keyType := orDefault(p.str("KeyType"), "rsa")
	if keyType != "rsa" && keyType != "ed25519" {
		return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter KeyType is invalid. Expected rsa or ed25519.", keyType)
	}
	keyFormat := orDefault(p.str("KeyFormat"), "pem")
	if keyFormat != "pem" && keyFormat != "ppk" {
		return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter KeyFormat is invalid. Expected pem or ppk.", keyFormat)
	}
	specs, err := p.tagSpecs("key-pair")
	if err != nil {
		return nil, err
	}
	k, err := e.newKeyPair(c, p.str("KeyName"), keyType, specs)
	if err != nil {
		return nil, err
	}
	var material string
	if keyType == "ed25519" {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		material = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		if keyFormat == "ppk" {
			if material, err = ppkMaterial(priv, k.Name); err != nil {
				return nil, err
			}
		}
		blob := sshBlob("ssh-ed25519", pub)
		sum := sha256.Sum256(blob)
		k.Fingerprint = base64.RawStdEncoding.EncodeToString(sum[:])
		k.PublicKey = "ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob)
	} else {
		priv, gerr := rsa.GenerateKey(rand.Reader, 2048)
		if gerr != nil {
			return nil, &core.APIError{HTTPStatus: 500, Code: "InternalError", Message: gerr.Error()}
		}
		material = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}))
		if keyFormat == "ppk" {
			if material, err = ppkMaterial(priv, k.Name); err != nil {
				return nil, err
			}
		}
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		sum := sha1.Sum(der)
		k.Fingerprint = colonHex(sum[:])
		// Kept so GetPasswordData can encrypt a Windows password with it.
		if pub, err := ssh.NewPublicKey(&priv.PublicKey); err == nil {
			k.PublicKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
		}
		c.Note("keyBits", "2048")
	}
	c.Note("keyType", keyType)
	c.Note("keyFormat", keyFormat)
	return createKeyPairOutput{KeyName: k.Name, KeyFingerprint: k.Fingerprint, KeyMaterial: material, KeyPairID: k.ID,
		TagSet: e.tagSet(k.ID, c.Account)}, nil
}

// ppkMaterial is a created key's material in PuTTY's format.
func ppkMaterial(priv any, name string) (string, *core.APIError) {
	out, err := ppkV2(priv, name)
	if err != nil {
		return "", &core.APIError{HTTPStatus: 500, Code: "InternalError", Message: err.Error()}
	}
	return out, nil
}

func (e *view) ec2ImportKeyPair(c *core.Call, p ec2Params) (any, *core.APIError) {
	material, err := p.required("PublicKeyMaterial")
	if err != nil {
		return nil, err
	}
	raw, derr := base64.StdEncoding.DecodeString(material)
	if derr != nil {
		raw = []byte(material)
	}
	fields := strings.Fields(string(raw))
	if len(fields) >= 2 && fields[0] != "ssh-rsa" && fields[0] != "ssh-ed25519" {
		// AWS imports RSA and ED25519 keys only (API_ImportKeyPair.html);
		// the text is an emulator convention.
		return nil, core.Errf("InvalidKey.Format", "Key is not in valid OpenSSH public key format: %s keys can't be imported; import an RSA or ED25519 public key.", fields[0])
	}
	if len(fields) < 2 {
		return nil, core.Errf("InvalidKey.Format", "Key is not in valid OpenSSH public key format")
	}
	blob, derr := base64.StdEncoding.DecodeString(fields[1])
	if derr != nil {
		return nil, core.Errf("InvalidKey.Format", "Key is not in valid OpenSSH public key format")
	}
	specs, err := p.tagSpecs("key-pair")
	if err != nil {
		return nil, err
	}
	keyType := "rsa"
	if fields[0] == "ssh-ed25519" {
		keyType = "ed25519"
	}
	if pub, _, _, _, perr := ssh.ParseAuthorizedKey(raw); perr == nil {
		if ck, ok := pub.(ssh.CryptoPublicKey); ok {
			if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok {
				c.Note("keyBits", fmt.Sprint(rk.N.BitLen()))
			}
		}
	}
	c.Note("keyType", keyType)
	k, err := e.newKeyPair(c, p.str("KeyName"), keyType, specs)
	if err != nil {
		return nil, err
	}
	if keyType == "ed25519" {
		sum := sha256.Sum256(blob)
		k.Fingerprint = base64.RawStdEncoding.EncodeToString(sum[:])
	} else {
		sum := md5.Sum(blob)
		k.Fingerprint = colonHex(sum[:])
	}
	k.PublicKey = fields[0] + " " + fields[1]
	return xmlKeyPair{KeyPairID: k.ID, KeyName: k.Name, KeyFingerprint: k.Fingerprint, TagSet: e.tagSet(k.ID, c.Account)}, nil
}

type deleteKeyPairOutput struct {
	Return    bool   `xml:"return"`
	KeyPairID string `xml:"keyPairId,omitempty"`
}

func (e *view) ec2DeleteKeyPair(c *core.Call, p ec2Params) (any, *core.APIError) {
	name, id := p.str("KeyName"), p.str("KeyPairId")
	if name == "" && id == "" {
		return nil, core.Errf("MissingParameter", "The request must contain the parameter KeyName or KeyPairId")
	}
	var k *ec2KeyPair
	if id != "" {
		if kp, ok := get(e, keyPairsOf, id); ok && kp.Owner == c.Account && kp.Region == c.Region {
			k = kp
		} else {
			return nil, core.Errf("InvalidKeyPair.NotFound", "The key pair ID '%s' does not exist", id)
		}
	} else {
		k = e.keyPairByName(c.Account, c.Region, name)
	}
	// Deleting a key pair that does not exist by name succeeds, as on AWS.
	if k == nil {
		return deleteKeyPairOutput{Return: true}, nil
	}
	del(e, keyPairsOf, k)
	c.Note("keyPairId", k.ID)
	return deleteKeyPairOutput{Return: true, KeyPairID: k.ID}, nil
}

type describeKeyPairsOutput struct {
	KeySet []xmlKeyPair `xml:"keySet>item"`
}

func (e *view) ec2DescribeKeyPairs(c *core.Call, p ec2Params) (any, *core.APIError) {
	names, ids := p.list("KeyName"), p.list("KeyPairId")
	includePublic, err := p.boolean("IncludePublicKey")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if e.keyPairByName(c.Account, c.Region, n) == nil {
			return nil, core.Errf("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", n)
		}
	}
	for _, id := range ids {
		if k, ok := get(e, keyPairsOf, id); !ok || k.Owner != c.Account || k.Region != c.Region {
			return nil, core.Errf("InvalidKeyPair.NotFound", "The key pair ID '%s' does not exist", id)
		}
	}
	filters := p.filters()
	out := describeKeyPairsOutput{KeySet: []xmlKeyPair{}}
	var found []*ec2KeyPair
	for _, k := range allIn(e, keyPairsOf, c.Region) {
		if k.Owner != c.Account || k.Region != c.Region {
			continue
		}
		if (len(names) > 0 || len(ids) > 0) && !contains(names, k.Name) && !contains(ids, k.ID) {
			continue
		}
		ok, ferr := matchFilters(filters, func(name string) ([]string, bool) {
			if v, ok, handled := e.tagFilterValues(k.ID, c.Account, name); handled {
				return v, ok
			}
			switch name {
			case "key-name":
				return []string{k.Name}, true
			case "key-pair-id":
				return []string{k.ID}, true
			case "fingerprint":
				return []string{k.Fingerprint}, true
			case "key-type":
				return []string{k.Type}, true
			}
			return nil, false
		})
		if ferr != nil {
			return nil, ferr
		}
		if ok {
			found = append(found, k)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	for _, k := range found {
		x := xmlKeyPair{KeyPairID: k.ID, KeyName: k.Name, KeyFingerprint: k.Fingerprint, KeyType: k.Type,
			CreateTime: ec2Time(k.Created), TagSet: e.tagSet(k.ID, c.Account)}
		if includePublic {
			x.PublicKey = k.PublicKey
		}
		out.KeySet = append(out.KeySet, x)
	}
	return out, nil
}

func sshBlob(keyType string, key []byte) []byte {
	var b []byte
	for _, part := range [][]byte{[]byte(keyType), key} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(part)))
		b = append(b, part...)
	}
	return b
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

// ---- security groups ----

type createSecurityGroupOutput struct {
	GroupID          string   `xml:"groupId"`
	SecurityGroupArn string   `xml:"securityGroupArn"`
	TagSet           []xmlTag `xml:"tagSet>item,omitempty"`
}

func sgARN(sg *ec2SecurityGroup) string {
	return "arn:aws:ec2:" + sg.Region + ":" + sg.Owner + ":security-group/" + sg.ID
}

func (e *view) ec2CreateSecurityGroup(c *core.Call, p ec2Params) (any, *core.APIError) {
	name, err := p.required("GroupName")
	if err != nil {
		return nil, err
	}
	desc, err := p.required("GroupDescription")
	if err != nil {
		return nil, err
	}
	if len(name) > 255 || strings.HasPrefix(strings.ToLower(name), "sg-") {
		return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter GroupName is invalid. Group names may not be longer than 255 characters or start with sg-.", name)
	}
	if name == "default" {
		return nil, core.Errf("InvalidGroup.Reserved", "The security group 'default' is reserved")
	}
	specs, err := p.tagSpecs("security-group")
	if err != nil {
		return nil, err
	}
	vpcID := p.str("VpcId")
	if vpcID == "" {
		v := e.defaultVPC(c.Account, c.Region)
		if v == nil {
			return nil, core.Errf("VPCIdNotSpecified", "No default VPC for this user")
		}
		vpcID = v.ID
	} else if v, ok := get(e, vpcsOf, vpcID); !ok || v.Owner != c.Account || v.Region != c.Region {
		return nil, core.Errf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpcID)
	}
	if e.securityGroupByName(c.Account, c.Region, vpcID, name) != nil {
		return nil, core.Errf("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, vpcID)
	}
	sg := &ec2SecurityGroup{ID: e.newID("sg"), Owner: c.Account, Region: c.Region, VpcID: vpcID, Name: name,
		Description: desc, Ingress: []ec2Permission{}, Principal: c.Principal,
		Egress: []ec2Permission{{Protocol: "-1", FromPort: -1, ToPort: -1, CIDRs: []string{"0.0.0.0/0"}}}}
	put(e, securityGroupsOf, sg)
	if t := tagsFor(specs, "security-group"); len(t) > 0 {
		e.setTags(sg.ID, c.Account, t)
	}
	c.Note("groupId", sg.ID)
	return createSecurityGroupOutput{GroupID: sg.ID, SecurityGroupArn: sgARN(sg), TagSet: e.tagSet(sg.ID, c.Account)}, nil
}

// findGroup resolves GroupId or GroupName (default VPC).
func (e *view) findGroup(c *core.Call, p ec2Params) (*ec2SecurityGroup, *core.APIError) {
	if id := p.str("GroupId"); id != "" {
		sg, ok := get(e, securityGroupsOf, id)
		if !ok || sg.Owner != c.Account || sg.Region != c.Region {
			return nil, core.Errf("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
		return sg, nil
	}
	name := p.str("GroupName")
	if name == "" {
		return nil, core.Errf("MissingParameter", "The request must contain the parameter GroupId or GroupName")
	}
	vpc := e.defaultVPC(c.Account, c.Region)
	if vpc == nil {
		return nil, core.Errf("InvalidGroup.NotFound", "The security group '%s' does not exist", name)
	}
	sg := e.securityGroupByName(c.Account, c.Region, vpc.ID, name)
	if sg == nil {
		return nil, core.Errf("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", name, vpc.ID)
	}
	return sg, nil
}

// readIPPermissions reads IpPermissions.N.* or the legacy flat form.
func readIPPermissions(p ec2Params) ([]ec2Permission, *core.APIError) {
	var out []ec2Permission
	for _, n := range p.indices("IpPermissions") {
		pre := fmt.Sprintf("IpPermissions.%d.", n)
		perm := ec2Permission{Protocol: strings.ToLower(p.str(pre + "IpProtocol"))}
		var err *core.APIError
		if perm.FromPort, err = p.integer(pre+"FromPort", -1); err != nil {
			return nil, err
		}
		if perm.ToPort, err = p.integer(pre+"ToPort", -1); err != nil {
			return nil, err
		}
		for _, i := range p.indices(pre + "IpRanges") {
			perm.CIDRs = append(perm.CIDRs, p.str(fmt.Sprintf("%sIpRanges.%d.CidrIp", pre, i)))
		}
		for _, i := range p.indices(pre + "Ipv6Ranges") {
			perm.IPv6 = append(perm.IPv6, p.str(fmt.Sprintf("%sIpv6Ranges.%d.CidrIpv6", pre, i)))
		}
		for _, i := range p.indices(pre + "Groups") {
			perm.Groups = append(perm.Groups, p.str(fmt.Sprintf("%sGroups.%d.GroupId", pre, i)))
		}
		out = append(out, perm)
	}
	if len(out) == 0 && p.str("IpProtocol") != "" {
		perm := ec2Permission{Protocol: strings.ToLower(p.str("IpProtocol"))}
		var err *core.APIError
		if perm.FromPort, err = p.integer("FromPort", -1); err != nil {
			return nil, err
		}
		if perm.ToPort, err = p.integer("ToPort", -1); err != nil {
			return nil, err
		}
		if cidr := p.str("CidrIp"); cidr != "" {
			perm.CIDRs = []string{cidr}
		}
		out = append(out, perm)
	}
	if len(out) == 0 {
		return nil, core.Errf("MissingParameter", "The request must contain the parameter IpPermissions")
	}
	for _, perm := range out {
		switch perm.Protocol {
		case "tcp", "udp", "icmp", "icmpv6", "-1", "6", "17", "1":
		default:
			return nil, core.Errf("InvalidParameterValue", "Invalid value '%s' for IP protocol. Unknown protocol.", perm.Protocol)
		}
		for _, cidr := range perm.CIDRs {
			if !strings.Contains(cidr, "/") {
				return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter cidrIp is invalid. This is not a valid CIDR block.", cidr)
			}
		}
	}
	return out, nil
}

type xmlSecurityGroupRule struct {
	SecurityGroupRuleID string `xml:"securityGroupRuleId"`
	GroupID             string `xml:"groupId"`
	GroupOwnerID        string `xml:"groupOwnerId"`
	IsEgress            bool   `xml:"isEgress"`
	IPProtocol          string `xml:"ipProtocol"`
	FromPort            int    `xml:"fromPort"`
	ToPort              int    `xml:"toPort"`
	CidrIpv4            string `xml:"cidrIpv4,omitempty"`
}

type authorizeOutput struct {
	Return bool                   `xml:"return"`
	Rules  []xmlSecurityGroupRule `xml:"securityGroupRuleSet>item"`
}

func samePermission(a, b ec2Permission) bool {
	return a.Protocol == b.Protocol && a.FromPort == b.FromPort && a.ToPort == b.ToPort
}

func (e *view) authorize(c *core.Call, p ec2Params, egress bool) (any, *core.APIError) {
	sg, err := e.findGroup(c, p)
	if err != nil {
		return nil, err
	}
	perms, err := readIPPermissions(p)
	if err != nil {
		return nil, err
	}
	rules := &sg.Ingress
	if egress {
		rules = &sg.Egress
	}
	out := authorizeOutput{Return: true}
	for _, perm := range perms {
		for _, g := range perm.Groups {
			if _, ok := get(e, securityGroupsOf, g); !ok {
				return nil, core.Errf("InvalidGroup.NotFound", "The security group '%s' does not exist", g)
			}
		}
		merged := false
		for i := range *rules {
			r := &(*rules)[i]
			if !samePermission(*r, perm) {
				continue
			}
			for _, cidr := range perm.CIDRs {
				if contains(r.CIDRs, cidr) {
					return nil, core.Errf("InvalidPermission.Duplicate", "the specified rule \"peer: %s, %s, from port: %d, to port: %d, ALLOW\" already exists", cidr, strings.ToUpper(perm.Protocol), perm.FromPort, perm.ToPort)
				}
			}
			r.CIDRs = append(r.CIDRs, perm.CIDRs...)
			r.IPv6 = append(r.IPv6, perm.IPv6...)
			r.Groups = appendUnique(r.Groups, perm.Groups...)
			merged = true
		}
		if !merged {
			*rules = append(*rules, perm)
		}
		for _, cidr := range perm.CIDRs {
			out.Rules = append(out.Rules, xmlSecurityGroupRule{SecurityGroupRuleID: e.newID("sgr"), GroupID: sg.ID,
				GroupOwnerID: sg.Owner, IsEgress: egress, IPProtocol: perm.Protocol, FromPort: perm.FromPort, ToPort: perm.ToPort, CidrIpv4: cidr})
		}
	}
	return out, nil
}

func (e *view) ec2AuthorizeSecurityGroupIngress(c *core.Call, p ec2Params) (any, *core.APIError) {
	return e.authorize(c, p, false)
}

func (e *view) ec2AuthorizeSecurityGroupEgress(c *core.Call, p ec2Params) (any, *core.APIError) {
	return e.authorize(c, p, true)
}

func (e *view) ec2RevokeSecurityGroupIngress(c *core.Call, p ec2Params) (any, *core.APIError) {
	sg, err := e.findGroup(c, p)
	if err != nil {
		return nil, err
	}
	perms, err := readIPPermissions(p)
	if err != nil {
		return nil, err
	}
	for _, perm := range perms {
		kept := sg.Ingress[:0]
		for _, r := range sg.Ingress {
			if samePermission(r, perm) {
				r.CIDRs = removeAll(r.CIDRs, perm.CIDRs...)
				r.Groups = removeAll(r.Groups, perm.Groups...)
				if len(r.CIDRs)+len(r.Groups)+len(r.IPv6) == 0 {
					continue
				}
			}
			kept = append(kept, r)
		}
		sg.Ingress = kept
	}
	return ec2Return{Return: true}, nil
}

type deleteSecurityGroupOutput struct {
	Return  bool   `xml:"return"`
	GroupID string `xml:"groupId"`
}

func (e *view) ec2DeleteSecurityGroup(c *core.Call, p ec2Params) (any, *core.APIError) {
	sg, err := e.findGroup(c, p)
	if err != nil {
		return nil, err
	}
	if sg.Default {
		return nil, core.Errf("CannotDelete", "the specified group: \"%s\" name: \"default\" cannot be deleted by a user", sg.ID)
	}
	for _, inst := range allIn(e, instancesOf, c.Region) {
		if inst.Owner != c.Account || !contains(inst.SecurityGroups, sg.ID) {
			continue
		}
		e.refreshInstance(inst)
		if inst.State != "terminated" {
			return nil, core.Errf("DependencyViolation", "resource %s has a dependent object", sg.ID)
		}
	}
	del(e, securityGroupsOf, sg)
	c.Note("groupId", sg.ID)
	return deleteSecurityGroupOutput{Return: true, GroupID: sg.ID}, nil
}

type xmlIPRange struct {
	CidrIP string `xml:"cidrIp"`
}

type xmlIPv6Range struct {
	CidrIPv6 string `xml:"cidrIpv6"`
}

type xmlUserIDGroupPair struct {
	UserID  string `xml:"userId"`
	GroupID string `xml:"groupId"`
}

type xmlIPPermission struct {
	IPProtocol string               `xml:"ipProtocol"`
	FromPort   *int                 `xml:"fromPort,omitempty"`
	ToPort     *int                 `xml:"toPort,omitempty"`
	Groups     []xmlUserIDGroupPair `xml:"groups>item"`
	IPRanges   []xmlIPRange         `xml:"ipRanges>item"`
	IPv6Ranges []xmlIPv6Range       `xml:"ipv6Ranges>item"`
}

type xmlSecurityGroup struct {
	OwnerID             string            `xml:"ownerId"`
	GroupID             string            `xml:"groupId"`
	GroupName           string            `xml:"groupName"`
	GroupDescription    string            `xml:"groupDescription"`
	VpcID               string            `xml:"vpcId"`
	IPPermissions       []xmlIPPermission `xml:"ipPermissions>item"`
	IPPermissionsEgress []xmlIPPermission `xml:"ipPermissionsEgress>item"`
	TagSet              []xmlTag          `xml:"tagSet>item,omitempty"`
	SecurityGroupArn    string            `xml:"securityGroupArn"`
}

func permissionsXML(owner string, perms []ec2Permission) []xmlIPPermission {
	out := []xmlIPPermission{}
	for _, p := range perms {
		x := xmlIPPermission{IPProtocol: p.Protocol, Groups: []xmlUserIDGroupPair{}, IPRanges: []xmlIPRange{}, IPv6Ranges: []xmlIPv6Range{}}
		if p.Protocol != "-1" {
			from, to := p.FromPort, p.ToPort
			x.FromPort, x.ToPort = &from, &to
		}
		for _, g := range p.Groups {
			x.Groups = append(x.Groups, xmlUserIDGroupPair{UserID: owner, GroupID: g})
		}
		for _, cidr := range p.CIDRs {
			x.IPRanges = append(x.IPRanges, xmlIPRange{CidrIP: cidr})
		}
		for _, cidr := range p.IPv6 {
			x.IPv6Ranges = append(x.IPv6Ranges, xmlIPv6Range{CidrIPv6: cidr})
		}
		out = append(out, x)
	}
	return out
}

type describeSecurityGroupsOutput struct {
	SecurityGroupInfo []xmlSecurityGroup `xml:"securityGroupInfo>item"`
	NextToken         string             `xml:"nextToken,omitempty"`
}

func (e *view) ec2DescribeSecurityGroups(c *core.Call, p ec2Params) (any, *core.APIError) {
	ids, names := p.list("GroupId"), p.list("GroupName")
	for _, id := range ids {
		if sg, ok := get(e, securityGroupsOf, id); !ok || sg.Owner != c.Account || sg.Region != c.Region {
			return nil, core.Errf("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
	}
	vpc := e.defaultVPC(c.Account, c.Region)
	for _, n := range names {
		if vpc == nil || e.securityGroupByName(c.Account, c.Region, vpc.ID, n) == nil {
			return nil, core.Errf("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC", n)
		}
	}
	filters := p.filters()
	var found []*ec2SecurityGroup
	for _, sg := range allIn(e, securityGroupsOf, c.Region) {
		if sg.Owner != c.Account || sg.Region != c.Region {
			continue
		}
		if len(ids) > 0 && !contains(ids, sg.ID) {
			continue
		}
		if len(names) > 0 && (vpc == nil || sg.VpcID != vpc.ID || !contains(names, sg.Name)) {
			continue
		}
		ok, ferr := matchFilters(filters, func(name string) ([]string, bool) {
			if v, ok, handled := e.tagFilterValues(sg.ID, c.Account, name); handled {
				return v, ok
			}
			switch name {
			case "group-id":
				return []string{sg.ID}, true
			case "group-name":
				return []string{sg.Name}, true
			case "vpc-id":
				return []string{sg.VpcID}, true
			case "description":
				return []string{sg.Description}, true
			case "owner-id":
				return []string{sg.Owner}, true
			}
			return nil, false
		})
		if ferr != nil {
			return nil, ferr
		}
		if ok {
			found = append(found, sg)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].ID < found[j].ID })
	from, to, next, err := paginate(p, len(found))
	if err != nil {
		return nil, err
	}
	out := describeSecurityGroupsOutput{NextToken: next, SecurityGroupInfo: []xmlSecurityGroup{}}
	for _, sg := range found[from:to] {
		out.SecurityGroupInfo = append(out.SecurityGroupInfo, xmlSecurityGroup{OwnerID: sg.Owner, GroupID: sg.ID,
			GroupName: sg.Name, GroupDescription: sg.Description, VpcID: sg.VpcID,
			IPPermissions: permissionsXML(sg.Owner, sg.Ingress), IPPermissionsEgress: permissionsXML(sg.Owner, sg.Egress),
			TagSet: e.tagSet(sg.ID, c.Account), SecurityGroupArn: sgARN(sg)})
	}
	return out, nil
}

// ---- VPCs and subnets ----

type xmlCidrAssociation struct {
	AssociationID  string       `xml:"associationId"`
	CidrBlock      string       `xml:"cidrBlock"`
	CidrBlockState ec2StateOnly `xml:"cidrBlockState"`
}

type xmlVpc struct {
	VpcID                   string               `xml:"vpcId"`
	OwnerID                 string               `xml:"ownerId"`
	State                   string               `xml:"state"`
	CidrBlock               string               `xml:"cidrBlock"`
	CidrBlockAssociationSet []xmlCidrAssociation `xml:"cidrBlockAssociationSet>item"`
	DhcpOptionsID           string               `xml:"dhcpOptionsId"`
	TagSet                  []xmlTag             `xml:"tagSet>item,omitempty"`
	InstanceTenancy         string               `xml:"instanceTenancy"`
	IsDefault               bool                 `xml:"isDefault"`
}

type describeVpcsOutput struct {
	VpcSet    []xmlVpc `xml:"vpcSet>item"`
	NextToken string   `xml:"nextToken,omitempty"`
}

func (e *view) ec2DescribeVpcs(c *core.Call, p ec2Params) (any, *core.APIError) {
	ids := p.list("VpcId")
	for _, id := range ids {
		if v, ok := get(e, vpcsOf, id); !ok || v.Owner != c.Account || v.Region != c.Region {
			return nil, core.Errf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
		}
	}
	filters := p.filters()
	out := describeVpcsOutput{VpcSet: []xmlVpc{}}
	for _, id := range sortedKeys(e.own(c).VPCs) {
		v := e.own(c).VPCs[id]
		if v.Owner != c.Account || v.Region != c.Region || (len(ids) > 0 && !contains(ids, v.ID)) {
			continue
		}
		ok, ferr := matchFilters(filters, func(name string) ([]string, bool) {
			if vals, ok, handled := e.tagFilterValues(v.ID, c.Account, name); handled {
				return vals, ok
			}
			switch name {
			case "vpc-id":
				return []string{v.ID}, true
			case "is-default", "isDefault":
				return []string{fmt.Sprint(v.Default)}, true
			case "cidr", "cidr-block-association.cidr-block":
				return []string{v.CIDR}, true
			case "state":
				return []string{"available"}, true
			case "owner-id":
				return []string{v.Owner}, true
			}
			return nil, false
		})
		if ferr != nil {
			return nil, ferr
		}
		if ok {
			out.VpcSet = append(out.VpcSet, xmlVpc{VpcID: v.ID, OwnerID: v.Owner, State: "available", CidrBlock: v.CIDR,
				CidrBlockAssociationSet: []xmlCidrAssociation{{AssociationID: "vpc-cidr-assoc-" + v.ID[4:], CidrBlock: v.CIDR,
					CidrBlockState: ec2StateOnly{State: "associated"}}},
				DhcpOptionsID: "dopt-" + v.ID[4:], TagSet: e.tagSet(v.ID, c.Account), InstanceTenancy: "default", IsDefault: v.Default})
		}
	}
	return out, nil
}

type xmlSubnet struct {
	SubnetID                string   `xml:"subnetId"`
	SubnetArn               string   `xml:"subnetArn"`
	State                   string   `xml:"state"`
	OwnerID                 string   `xml:"ownerId"`
	VpcID                   string   `xml:"vpcId"`
	CidrBlock               string   `xml:"cidrBlock"`
	AvailableIPAddressCount int      `xml:"availableIpAddressCount"`
	AvailabilityZone        string   `xml:"availabilityZone"`
	AvailabilityZoneID      string   `xml:"availabilityZoneId"`
	DefaultForAz            bool     `xml:"defaultForAz"`
	MapPublicIPOnLaunch     bool     `xml:"mapPublicIpOnLaunch"`
	TagSet                  []xmlTag `xml:"tagSet>item,omitempty"`
}

type describeSubnetsOutput struct {
	SubnetSet []xmlSubnet `xml:"subnetSet>item"`
	NextToken string      `xml:"nextToken,omitempty"`
}

func (e *view) ec2DescribeSubnets(c *core.Call, p ec2Params) (any, *core.APIError) {
	ids := p.list("SubnetId")
	for _, id := range ids {
		if s, ok := get(e, subnetsOf, id); !ok || s.Owner != c.Account || s.Region != c.Region {
			return nil, core.Errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
	}
	filters := p.filters()
	var found []*ec2Subnet
	for _, s := range allIn(e, subnetsOf, c.Region) {
		if s.Owner != c.Account || s.Region != c.Region || (len(ids) > 0 && !contains(ids, s.ID)) {
			continue
		}
		ok, ferr := matchFilters(filters, func(name string) ([]string, bool) {
			if vals, ok, handled := e.tagFilterValues(s.ID, c.Account, name); handled {
				return vals, ok
			}
			switch name {
			case "subnet-id":
				return []string{s.ID}, true
			case "vpc-id":
				return []string{s.VpcID}, true
			case "availability-zone", "availabilityZone":
				return []string{s.AZ}, true
			case "availability-zone-id":
				return []string{zoneID(s.AZ)}, true
			case "default-for-az", "defaultForAz":
				return []string{fmt.Sprint(s.DefaultForAZ)}, true
			case "cidr-block", "cidr", "cidrBlock":
				return []string{s.CIDR}, true
			case "state":
				return []string{"available"}, true
			case "owner-id":
				return []string{s.Owner}, true
			case "map-public-ip-on-launch":
				return []string{fmt.Sprint(s.DefaultForAZ)}, true
			}
			return nil, false
		})
		if ferr != nil {
			return nil, ferr
		}
		if ok {
			found = append(found, s)
		}
	}
	sort.Slice(found, func(i, j int) bool {
		return found[i].AZ < found[j].AZ || found[i].AZ == found[j].AZ && found[i].ID < found[j].ID
	})
	out := describeSubnetsOutput{SubnetSet: []xmlSubnet{}}
	for _, s := range found {
		out.SubnetSet = append(out.SubnetSet, xmlSubnet{SubnetID: s.ID, SubnetArn: "arn:aws:ec2:" + s.Region + ":" + s.Owner + ":subnet/" + s.ID,
			State: "available", OwnerID: s.Owner, VpcID: s.VpcID, CidrBlock: s.CIDR, AvailableIPAddressCount: 4091 - s.Used,
			AvailabilityZone: s.AZ, AvailabilityZoneID: zoneID(s.AZ), DefaultForAz: s.DefaultForAZ, MapPublicIPOnLaunch: s.DefaultForAZ,
			TagSet: e.tagSet(s.ID, c.Account)})
	}
	return out, nil
}

// ---- regions, zones, instance types ----

// defaultRegions are AWS's regions launched before March 20, 2019, enabled
// in every account and never opt-in; every region launched since is opt-in
// (AWS Account Management reference, "Enable or disable AWS Regions in
// your account"). A fixed fact of AWS, not of the world.
var defaultRegions = map[string]bool{
	"us-east-1": true, "us-east-2": true, "us-west-1": true, "us-west-2": true, "ca-central-1": true, "sa-east-1": true,
	"eu-west-1": true, "eu-west-2": true, "eu-west-3": true, "eu-central-1": true, "eu-north-1": true,
	"ap-northeast-1": true, "ap-northeast-2": true, "ap-northeast-3": true, "ap-southeast-1": true, "ap-southeast-2": true, "ap-south-1": true,
}

type xmlRegion struct {
	RegionName     string `xml:"regionName"`
	RegionEndpoint string `xml:"regionEndpoint"`
	OptInStatus    string `xml:"optInStatus"`
}

type describeRegionsOutput struct {
	RegionInfo []xmlRegion `xml:"regionInfo>item"`
}

func (e *view) ec2DescribeRegions(c *core.Call, p ec2Params) (any, *core.APIError) {
	all, err := p.boolean("AllRegions")
	if err != nil {
		return nil, err
	}
	names := p.list("RegionName")
	enabled, disabled := e.regions()
	var regions []xmlRegion
	for _, r := range enabled {
		status := "opted-in" // an opt-in region the account has enabled
		if defaultRegions[r] {
			status = "opt-in-not-required"
		}
		regions = append(regions, xmlRegion{RegionName: r, RegionEndpoint: "ec2." + r + ".amazonaws.com", OptInStatus: status})
	}
	for _, r := range disabled {
		if all || contains(names, r) {
			regions = append(regions, xmlRegion{RegionName: r, RegionEndpoint: "ec2." + r + ".amazonaws.com", OptInStatus: "not-opted-in"})
		}
	}
	for _, n := range names {
		if !e.world.RegionKnown(n) {
			return nil, core.Errf("InvalidParameterValue", "Invalid region: %s", n)
		}
	}
	filters := p.filters()
	out := describeRegionsOutput{RegionInfo: []xmlRegion{}}
	for _, r := range regions {
		if len(names) > 0 && !contains(names, r.RegionName) {
			continue
		}
		ok, ferr := matchFilters(filters, func(name string) ([]string, bool) {
			switch name {
			case "region-name":
				return []string{r.RegionName}, true
			case "endpoint":
				return []string{r.RegionEndpoint}, true
			case "opt-in-status":
				return []string{r.OptInStatus}, true
			}
			return nil, false
		})
		if ferr != nil {
			return nil, ferr
		}
		if ok {
			out.RegionInfo = append(out.RegionInfo, r)
		}
	}
	return out, nil
}

type xmlAvailabilityZone struct {
	ZoneName           string     `xml:"zoneName"`
	ZoneState          string     `xml:"zoneState"`
	RegionName         string     `xml:"regionName"`
	ZoneID             string     `xml:"zoneId"`
	ZoneType           string     `xml:"zoneType"`
	OptInStatus        string     `xml:"optInStatus"`
	GroupName          string     `xml:"groupName"`
	NetworkBorderGroup string     `xml:"networkBorderGroup"`
	MessageSet         []struct{} `xml:"messageSet>item"`
}

type describeAvailabilityZonesOutput struct {
	AvailabilityZoneInfo []xmlAvailabilityZone `xml:"availabilityZoneInfo>item"`
}

func (e *view) ec2DescribeAvailabilityZones(c *core.Call, p ec2Params) (any, *core.APIError) {
	names, ids := p.list("ZoneName"), p.list("ZoneId")
	zones := availabilityZones(c.Region)
	for _, n := range names {
		if !contains(zones, n) {
			return nil, core.Errf("InvalidParameterValue", "The zone '%s' does not exist.", n)
		}
	}
	filters := p.filters()
	out := describeAvailabilityZonesOutput{AvailabilityZoneInfo: []xmlAvailabilityZone{}}
	for _, z := range zones {
		if (len(names) > 0 || len(ids) > 0) && !contains(names, z) && !contains(ids, zoneID(z)) {
			continue
		}
		ok, ferr := matchFilters(filters, func(name string) ([]string, bool) {
			switch name {
			case "zone-name":
				return []string{z}, true
			case "zone-id":
				return []string{zoneID(z)}, true
			case "state":
				return []string{"available"}, true
			case "region-name":
				return []string{c.Region}, true
			case "zone-type":
				return []string{"availability-zone"}, true
			case "opt-in-status":
				return []string{"opt-in-not-required"}, true
			}
			return nil, false
		})
		if ferr != nil {
			return nil, ferr
		}
		if ok {
			out.AvailabilityZoneInfo = append(out.AvailabilityZoneInfo, xmlAvailabilityZone{ZoneName: z, ZoneState: "available",
				RegionName: c.Region, ZoneID: zoneID(z), ZoneType: "availability-zone", OptInStatus: "opt-in-not-required",
				GroupName: c.Region, NetworkBorderGroup: c.Region, MessageSet: []struct{}{}})
		}
	}
	return out, nil
}

// instanceTypes is a small catalogue: type, vCPUs, memory MiB.
func instanceTypes() []struct {
	Name   string
	VCPUs  int
	MemMiB int
} {
	return []struct {
		Name   string
		VCPUs  int
		MemMiB int
	}{
		{"t2.micro", 1, 1024}, {"t3.micro", 2, 1024}, {"t3.small", 2, 2048}, {"t3.medium", 2, 4096},
		{"t3a.micro", 2, 1024}, {"m5.large", 2, 8192}, {"m6i.large", 2, 8192}, {"c5.large", 2, 4096},
		{"m1.small", 1, 1740},
	}
}

type xmlInstanceTypeInfo struct {
	InstanceType string `xml:"instanceType"`
	VCPUInfo     struct {
		DefaultVCpus int `xml:"defaultVCpus"`
	} `xml:"vCpuInfo"`
	MemoryInfo struct {
		SizeInMiB int `xml:"sizeInMiB"`
	} `xml:"memoryInfo"`
	ProcessorInfo struct {
		SupportedArchitectures []string `xml:"supportedArchitectures>item"`
	} `xml:"processorInfo"`
	SupportedBootModes []string `xml:"supportedBootModes>item"`
	EbsInfo            struct {
		EncryptionSupport string `xml:"encryptionSupport"`
	} `xml:"ebsInfo"`
	NetworkInfo struct {
		EnaSupport string `xml:"enaSupport"`
	} `xml:"networkInfo"`
	CurrentGeneration bool `xml:"currentGeneration"`
}

type describeInstanceTypesOutput struct {
	InstanceTypeSet []xmlInstanceTypeInfo `xml:"instanceTypeSet>item"`
}

func (e *view) ec2DescribeInstanceTypes(c *core.Call, p ec2Params) (any, *core.APIError) {
	want := p.list("InstanceType")
	out := describeInstanceTypesOutput{InstanceTypeSet: []xmlInstanceTypeInfo{}}
	for _, w := range want {
		known := false
		for _, t := range instanceTypes() {
			known = known || t.Name == w
		}
		if !known {
			return nil, core.Errf("InvalidInstanceType", "The following supplied instance types do not exist: [%s]", w)
		}
	}
	for _, t := range instanceTypes() {
		if len(want) > 0 && !contains(want, t.Name) {
			continue
		}
		var x xmlInstanceTypeInfo
		x.InstanceType = t.Name
		x.VCPUInfo.DefaultVCpus, x.MemoryInfo.SizeInMiB = t.VCPUs, t.MemMiB
		x.ProcessorInfo.SupportedArchitectures = []string{"x86_64"}
		x.SupportedBootModes = []string{"legacy-bios", "uefi"}
		x.EbsInfo.EncryptionSupport = "supported"
		x.NetworkInfo.EnaSupport = "required"
		x.CurrentGeneration = t.Name != "m1.small"
		out.InstanceTypeSet = append(out.InstanceTypeSet, x)
	}
	return out, nil
}

type xmlInstanceTypeOffering struct {
	InstanceType string `xml:"instanceType"`
	LocationType string `xml:"locationType"`
	Location     string `xml:"location"`
}

type describeInstanceTypeOfferingsOutput struct {
	Offerings []xmlInstanceTypeOffering `xml:"instanceTypeOfferingSet>item"`
}

func (e *view) ec2DescribeInstanceTypeOfferings(c *core.Call, p ec2Params) (any, *core.APIError) {
	locType := orDefault(p.str("LocationType"), "region")
	var locations []string
	switch locType {
	case "region":
		locations = []string{c.Region}
	case "availability-zone":
		locations = availabilityZones(c.Region)
	case "availability-zone-id":
		for _, z := range availabilityZones(c.Region) {
			locations = append(locations, zoneID(z))
		}
	default:
		return nil, core.Errf("InvalidParameterValue", "Value (%s) for parameter LocationType is invalid.", locType)
	}
	filters := p.filters()
	out := describeInstanceTypeOfferingsOutput{Offerings: []xmlInstanceTypeOffering{}}
	for _, loc := range locations {
		for _, t := range instanceTypes() {
			ok, ferr := matchFilters(filters, func(name string) ([]string, bool) {
				switch name {
				case "instance-type":
					return []string{t.Name}, true
				case "location":
					return []string{loc}, true
				}
				return nil, false
			})
			if ferr != nil {
				return nil, ferr
			}
			if ok {
				out.Offerings = append(out.Offerings, xmlInstanceTypeOffering{InstanceType: t.Name, LocationType: locType, Location: loc})
			}
		}
	}
	return out, nil
}
