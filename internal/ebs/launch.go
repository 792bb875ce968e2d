package ebs

// launch.go: the verbs of a build instance beyond RunInstances: its
// network (VPC, subnet and security groups by filter), key pairs of a type
// or size, a security group open to given sources only, a spot instance
// through an instant EC2 Fleet, and the Windows password.

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// BuildAPI is EC2API and the calls a build instance needs besides, so the
// builder's fakes and the post-processor's stay as they are.
type BuildAPI interface {
	EC2API
	DescribeVpcs(context.Context, *ec2.DescribeVpcsInput, ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DescribeRegions(context.Context, *ec2.DescribeRegionsInput, ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error)
	DescribeKeyPairs(context.Context, *ec2.DescribeKeyPairsInput, ...func(*ec2.Options)) (*ec2.DescribeKeyPairsOutput, error)
	ImportKeyPair(context.Context, *ec2.ImportKeyPairInput, ...func(*ec2.Options)) (*ec2.ImportKeyPairOutput, error)
	CreateLaunchTemplate(context.Context, *ec2.CreateLaunchTemplateInput, ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error)
	DeleteLaunchTemplate(context.Context, *ec2.DeleteLaunchTemplateInput, ...func(*ec2.Options)) (*ec2.DeleteLaunchTemplateOutput, error)
	DescribeLaunchTemplates(context.Context, *ec2.DescribeLaunchTemplatesInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	CreateFleet(context.Context, *ec2.CreateFleetInput, ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error)
	GetPasswordData(context.Context, *ec2.GetPasswordDataInput, ...func(*ec2.Options)) (*ec2.GetPasswordDataOutput, error)
	DeleteTags(context.Context, *ec2.DeleteTagsInput, ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error)
	DeleteVolume(context.Context, *ec2.DeleteVolumeInput, ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error)
}

var _ BuildAPI = (*ec2.Client)(nil)

// filterList turns a filter map into EC2 filters, sorted by name.
func filterList(m map[string]string) []types.Filter {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]types.Filter, 0, len(names))
	for _, n := range names {
		out = append(out, types.Filter{Name: aws.String(n), Values: []string{m[n]}})
	}
	return out
}

// FindVPCByFilters returns the one VPC the filters match.
func FindVPCByFilters(ctx context.Context, client BuildAPI, filters map[string]string) (*types.Vpc, error) {
	out, err := client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: filterList(filters)})
	if err != nil {
		return nil, fmt.Errorf("looking for a VPC matching %v: %w", filters, err)
	}
	if len(out.Vpcs) != 1 {
		var ids []string
		for _, v := range out.Vpcs {
			ids = append(ids, aws.ToString(v.VpcId))
		}
		return nil, fmt.Errorf("%d VPCs match %v (%v); exactly one must: narrow the filters", len(out.Vpcs), filters, ids)
	}
	return &out.Vpcs[0], nil
}

// SubnetChoice says how to pick among several matching subnets.
type SubnetChoice struct {
	MostFree bool
	Random   bool
	// Rand picks for Random; nil uses a fresh source.
	Rand func(n int) int
}

// PickSubnet finds the subnets matching the filters (in vpcID and zone
// when given) and picks one: the one with the most free addresses, one at
// random, or the only one.
func PickSubnet(ctx context.Context, client BuildAPI, filters map[string]string, vpcID, zone string, how SubnetChoice) (*types.Subnet, error) {
	f := map[string]string{"state": "available"}
	for k, v := range filters {
		f[k] = v
	}
	if vpcID != "" {
		f["vpc-id"] = vpcID
	}
	if zone != "" {
		f["availability-zone"] = zone
	}
	out, err := client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: filterList(f)})
	if err != nil {
		return nil, fmt.Errorf("looking for a subnet matching %v: %w", f, err)
	}
	subnets := out.Subnets
	switch {
	case len(subnets) == 0:
		return nil, &NotFoundError{Kind: "subnet", ID: fmt.Sprintf("matching %v", f)}
	case len(subnets) == 1:
		return &subnets[0], nil
	case how.MostFree:
		best := &subnets[0]
		for i := range subnets {
			if aws.ToInt32(subnets[i].AvailableIpAddressCount) > aws.ToInt32(best.AvailableIpAddressCount) {
				best = &subnets[i]
			}
		}
		return best, nil
	case how.Random:
		pick := how.Rand
		if pick == nil {
			pick = rand.IntN
		}
		return &subnets[pick(len(subnets))], nil
	}
	var ids []string
	for _, s := range subnets {
		ids = append(ids, aws.ToString(s.SubnetId))
	}
	return nil, fmt.Errorf("%d subnets match %v (%v); narrow the filters, or set most_free or random", len(subnets), filters, ids)
}

// FindSubnetByID describes one subnet.
func FindSubnetByID(ctx context.Context, client BuildAPI, id string) (*types.Subnet, error) {
	out, err := client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{id}})
	if IsCode(err, "InvalidSubnetID.NotFound") {
		return nil, &NotFoundError{Kind: "subnet", ID: id, Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("describing subnet %s: %w", id, err)
	}
	if len(out.Subnets) != 1 {
		return nil, &NotFoundError{Kind: "subnet", ID: id}
	}
	return &out.Subnets[0], nil
}

// DefaultVPC returns the region's default VPC, or a *NotFoundError.
func DefaultVPC(ctx context.Context, client BuildAPI) (*types.Vpc, error) {
	out, err := client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: filterList(map[string]string{"is-default": "true"})})
	if err != nil {
		return nil, fmt.Errorf("looking for the default VPC: %w", err)
	}
	if len(out.Vpcs) == 0 {
		return nil, &NotFoundError{Kind: "vpc", ID: "default"}
	}
	return &out.Vpcs[0], nil
}

// FindVPCByID describes one VPC.
func FindVPCByID(ctx context.Context, client BuildAPI, id string) (*types.Vpc, error) {
	out, err := client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{id}})
	if IsCode(err, "InvalidVpcID.NotFound") {
		return nil, &NotFoundError{Kind: "vpc", ID: id, Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("describing VPC %s: %w", id, err)
	}
	if len(out.Vpcs) != 1 {
		return nil, &NotFoundError{Kind: "vpc", ID: id}
	}
	return &out.Vpcs[0], nil
}

// VPCCIDRs lists a VPC's IPv4 and IPv6 CIDR blocks.
func VPCCIDRs(v *types.Vpc) []string {
	seen := map[string]bool{}
	var out []string
	add := func(c string) {
		if c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	add(aws.ToString(v.CidrBlock))
	for _, a := range v.CidrBlockAssociationSet {
		add(aws.ToString(a.CidrBlock))
	}
	for _, a := range v.Ipv6CidrBlockAssociationSet {
		add(aws.ToString(a.Ipv6CidrBlock))
	}
	return out
}

// FindSecurityGroups returns the IDs of the groups with these IDs, or
// matching the filters (in vpcID when given); none found is an error.
func FindSecurityGroups(ctx context.Context, client BuildAPI, ids []string, filters map[string]string, vpcID string) ([]string, error) {
	in := &ec2.DescribeSecurityGroupsInput{GroupIds: ids}
	if len(ids) == 0 {
		f := map[string]string{}
		for k, v := range filters {
			f[k] = v
		}
		if vpcID != "" {
			f["vpc-id"] = vpcID
		}
		in.Filters = filterList(f)
	}
	out, err := client.DescribeSecurityGroups(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("looking for security groups %v %v: %w", ids, filters, err)
	}
	var found []string
	for _, g := range out.SecurityGroups {
		found = append(found, aws.ToString(g.GroupId))
	}
	if len(found) == 0 {
		return nil, &NotFoundError{Kind: "security group", ID: fmt.Sprintf("matching %v", filters)}
	}
	sort.Strings(found)
	return found, nil
}

// SecurityGroupSpec is a security group that admits the communicator port
// from given sources only.
type SecurityGroupSpec struct {
	Name, Description, VpcID string
	Port                     int32
	// Sources are IPv4 or IPv6 CIDR blocks; none means no ingress rule.
	Sources []string
	Tags    map[string]string
}

// CreateSecurityGroup creates the group, tagged on creation, and opens the
// port to the sources. When the group is made but the port can't be
// opened, it returns the group's ID with the error, so the caller can
// delete it.
func CreateSecurityGroup(ctx context.Context, client EC2API, s SecurityGroupSpec) (string, error) {
	in := &ec2.CreateSecurityGroupInput{GroupName: aws.String(s.Name), Description: aws.String(s.Description),
		TagSpecifications: TagSpecs(map[types.ResourceType]map[string]string{types.ResourceTypeSecurityGroup: s.Tags})}
	if s.VpcID != "" {
		in.VpcId = aws.String(s.VpcID)
	}
	out, err := client.CreateSecurityGroup(ctx, in)
	if err != nil {
		return "", fmt.Errorf("creating security group %s: %w", s.Name, err)
	}
	groupID := aws.ToString(out.GroupId)
	if len(s.Sources) == 0 {
		return groupID, nil
	}
	perm := types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(s.Port), ToPort: aws.Int32(s.Port)}
	for _, cidr := range s.Sources {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			return groupID, fmt.Errorf("security group %s: source %q is not a CIDR block", groupID, cidr)
		}
		if n.IP.To4() != nil {
			perm.IpRanges = append(perm.IpRanges, types.IpRange{CidrIp: aws.String(cidr)})
		} else {
			perm.Ipv6Ranges = append(perm.Ipv6Ranges, types.Ipv6Range{CidrIpv6: aws.String(cidr)})
		}
	}
	if _, err := client.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: out.GroupId, IpPermissions: []types.IpPermission{perm}}); err != nil {
		return groupID, fmt.Errorf("opening port %d to %v in security group %s: %w", s.Port, s.Sources, groupID, err)
	}
	return groupID, nil
}

// KeyPair is a key pair made for a build.
type KeyPair struct {
	Name       string
	ID         string
	PrivateKey []byte // PEM
}

// CreateKeyPairOfType creates a key pair of type rsa (2048 bits) or
// ed25519, tagged on creation.
func CreateKeyPairOfType(ctx context.Context, client EC2API, name, keyType string, tags map[string]string) (KeyPair, error) {
	out, err := client.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String(name), KeyType: types.KeyType(keyType),
		TagSpecifications: TagSpecs(map[types.ResourceType]map[string]string{types.ResourceTypeKeyPair: tags})})
	if err != nil {
		return KeyPair{}, fmt.Errorf("creating %s key pair %s: %w", keyType, name, err)
	}
	return KeyPair{Name: name, ID: aws.ToString(out.KeyPairId), PrivateKey: []byte(aws.ToString(out.KeyMaterial))}, nil
}

// ImportKeyPair imports an OpenSSH public key under name, tagged on creation.
func ImportKeyPair(ctx context.Context, client BuildAPI, name string, publicKey []byte, tags map[string]string) (string, error) {
	out, err := client.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String(name), PublicKeyMaterial: publicKey,
		TagSpecifications: TagSpecs(map[types.ResourceType]map[string]string{types.ResourceTypeKeyPair: tags})})
	if err != nil {
		return "", fmt.Errorf("importing key pair %s: %w", name, err)
	}
	return aws.ToString(out.KeyPairId), nil
}

// SpotLaunch is a spot instance launched through an instant EC2 Fleet
// from a launch template, as amazon-ebs does.
type SpotLaunch struct {
	TemplateName string
	Data         *types.RequestLaunchTemplateData
	// TemplateTags tag the launch template (spot_tags).
	TemplateTags map[string]string
	// InstanceTypes are the fleet's overrides, in order of preference.
	InstanceTypes      []string
	AllocationStrategy string
	FleetTags          map[string]string
}

// CreateSpotLaunchTemplate creates the launch template of a spot launch.
func CreateSpotLaunchTemplate(ctx context.Context, client BuildAPI, s SpotLaunch) (string, error) {
	out, err := client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(s.TemplateName), LaunchTemplateData: s.Data,
		VersionDescription: aws.String("made by amicrypt-ebs to launch a spot build instance"),
		TagSpecifications:  TagSpecs(map[types.ResourceType]map[string]string{types.ResourceTypeLaunchTemplate: s.TemplateTags}),
	})
	if err != nil {
		return "", fmt.Errorf("creating launch template %s: %w", s.TemplateName, err)
	}
	return aws.ToString(out.LaunchTemplate.LaunchTemplateId), nil
}

// FleetError is an instant fleet that launched nothing, with AWS's reasons.
type FleetError struct {
	FleetID string
	Errors  []string // "CODE: message"
	Codes   []string
}

func (e *FleetError) Error() string {
	return fmt.Sprintf("EC2 Fleet %s launched no instance: %s", e.FleetID, strings.Join(e.Errors, "; "))
}

// LaunchSpotInstance creates an instant fleet of one spot instance from the
// launch template and returns the instance ID (and the fleet's).
func LaunchSpotInstance(ctx context.Context, client BuildAPI, s SpotLaunch) (instanceID, fleetID string, err error) {
	cfg := types.FleetLaunchTemplateConfigRequest{LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{
		LaunchTemplateName: aws.String(s.TemplateName), Version: aws.String("1")}}
	for _, t := range s.InstanceTypes {
		cfg.Overrides = append(cfg.Overrides, types.FleetLaunchTemplateOverridesRequest{InstanceType: types.InstanceType(t)})
	}
	in := &ec2.CreateFleetInput{
		Type:                      types.FleetTypeInstant,
		LaunchTemplateConfigs:     []types.FleetLaunchTemplateConfigRequest{cfg},
		ReplaceUnhealthyInstances: aws.Bool(false),
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{TotalTargetCapacity: aws.Int32(1),
			DefaultTargetCapacityType: types.DefaultTargetCapacityTypeSpot},
		TagSpecifications: TagSpecs(map[types.ResourceType]map[string]string{types.ResourceTypeFleet: s.FleetTags}),
	}
	if s.AllocationStrategy != "" {
		in.SpotOptions = &types.SpotOptionsRequest{AllocationStrategy: types.SpotAllocationStrategy(s.AllocationStrategy)}
	}
	out, err := client.CreateFleet(ctx, in)
	if err != nil {
		return "", "", fmt.Errorf("creating an EC2 Fleet of one spot instance: %w", err)
	}
	fleetID = aws.ToString(out.FleetId)
	for _, inst := range out.Instances {
		if len(inst.InstanceIds) > 0 {
			return inst.InstanceIds[0], fleetID, nil
		}
	}
	fe := &FleetError{FleetID: fleetID}
	for _, e := range out.Errors {
		fe.Errors = append(fe.Errors, aws.ToString(e.ErrorCode)+": "+aws.ToString(e.ErrorMessage))
		fe.Codes = append(fe.Codes, aws.ToString(e.ErrorCode))
	}
	return "", fleetID, fe
}

// DeleteLaunchTemplate deletes a launch template by name; one already gone
// is not an error.
func DeleteLaunchTemplate(ctx context.Context, client BuildAPI, name string) error {
	_, err := client.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: aws.String(name)})
	if err != nil && !IsCode(err, "InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound") {
		return fmt.Errorf("deleting launch template %s: %w", name, err)
	}
	return nil
}

// WaitWindowsPassword polls GetPasswordData every delay until the password
// is there (AWS returns an empty string until then) and decrypts it with
// the key pair's private key (PEM, PKCS #1 RSA); it gives up after timeout.
func WaitWindowsPassword(ctx context.Context, client BuildAPI, instanceID string, privateKey []byte, delay, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		out, err := client.GetPasswordData(ctx, &ec2.GetPasswordDataInput{InstanceId: aws.String(instanceID)})
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return "", fmt.Errorf("no Windows password for %s after %s; the image may not set one (EC2Launch), or raise windows_password_timeout", instanceID, timeout)
		case err != nil:
			return "", fmt.Errorf("getting the password of %s: %w", instanceID, err)
		case aws.ToString(out.PasswordData) != "":
			return DecryptPassword(aws.ToString(out.PasswordData), privateKey)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return "", fmt.Errorf("no Windows password for %s after %s; the image may not set one (EC2Launch), or raise windows_password_timeout", instanceID, timeout)
			}
			return "", fmt.Errorf("waiting for the password of %s: %w", instanceID, ctx.Err())
		case <-t.C:
		}
	}
}

// DecryptPassword decrypts GetPasswordData's PasswordData (base64 of an
// RSA PKCS #1 v1.5 ciphertext) with a PEM private key.
func DecryptPassword(passwordData string, privateKey []byte) (string, error) {
	enc, err := base64.StdEncoding.DecodeString(passwordData)
	if err != nil {
		return "", fmt.Errorf("password data is not base64: %w", err)
	}
	block, _ := pem.Decode(privateKey)
	if block == nil {
		return "", errors.New("the key pair's private key is not PEM")
	}
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		key = k
	} else if k8, err8 := x509.ParsePKCS8PrivateKey(block.Bytes); err8 == nil {
		rk, ok := k8.(*rsa.PrivateKey)
		if !ok {
			return "", errors.New("the key pair is not RSA; Windows passwords need an RSA key pair")
		}
		key = rk
	} else {
		return "", fmt.Errorf("parsing the key pair's private key: %w", err)
	}
	// AWS encrypts Windows passwords with PKCS #1 v1.5 (GetPasswordData);
	// the decryption happens once, on the builder, so no oracle is exposed.
	plain, err := rsa.DecryptPKCS1v15(nil, key, enc) //nolint:staticcheck // SA1019: see above
	if err != nil {
		return "", fmt.Errorf("decrypting the Windows password: %w", err)
	}
	return string(plain), nil
}

// Regions maps every region of the account's partition to its opt-in
// status (opt-in-not-required, opted-in or not-opted-in), from
// DescribeRegions with AllRegions.
func Regions(ctx context.Context, client BuildAPI) (map[string]string, error) {
	out, err := client.DescribeRegions(ctx, &ec2.DescribeRegionsInput{AllRegions: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("describing regions: %w", err)
	}
	regions := make(map[string]string, len(out.Regions))
	for _, r := range out.Regions {
		regions[aws.ToString(r.RegionName)] = aws.ToString(r.OptInStatus)
	}
	return regions, nil
}
