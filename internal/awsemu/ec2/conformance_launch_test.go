package ec2_test

// conformance_launch_test.go: the EC2 cases of section 9 of
// docs/aws-behaviour.md, the AWS facts amazon-ebs's launch options (and
// amicrypt-ebs's, its drop-in) rely on: fleets, images' IMDS support,
// metadata options, key pairs, tags, spot options and opt-in regions.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/md5" //nolint:gosec // RFC 4716 fingerprints
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // PPK v2 MACs
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

// fleetTemplate makes a launch template of the seed AMI and returns its name.
func fleetTemplate(t *testing.T, x *emutest.Env, c *ec2.Client, name string) string {
	t.Helper()
	emutest.Must[*ec2.CreateLaunchTemplateOutput](t, "CreateLaunchTemplate")(c.CreateLaunchTemplate(x.Ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(name), LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(emutest.SeedAMI)}}))
	return name
}

// fleetInput is CreateFleet of one instance from the template lt at version.
func fleetInput(lt string, version *string, typ types.FleetType) *ec2.CreateFleetInput {
	return &ec2.CreateFleetInput{Type: typ,
		LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{
			LaunchTemplateName: aws.String(lt), Version: version}}},
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{TotalTargetCapacity: aws.Int32(1), DefaultTargetCapacityType: types.DefaultTargetCapacityTypeOnDemand}}
}

func launchConformance() []emutest.Case {
	return []emutest.Case{
		{Rule: "9.6", Name: "CreateFleet needs a launch template version and serves instant fleets", Own: true, Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			lt := fleetTemplate(t, x, c, "lt-fleet-version")
			tests := []struct {
				name    string
				version *string
				typ     types.FleetType
				code    string // "" when the fleet is made
			}{
				{"no version", nil, types.FleetTypeInstant, "MissingParameter"},
				{"empty version", aws.String(""), types.FleetTypeInstant, "MissingParameter"},
				{"a version that does not exist", aws.String("7"), types.FleetTypeInstant, "InvalidLaunchTemplateVersion.NotFound"},
				{"$Latest", aws.String("$Latest"), types.FleetTypeInstant, ""},
				{"version 1", aws.String("1"), types.FleetTypeInstant, ""},
				{"type unknown", aws.String("1"), "burst", "InvalidParameterValue"},
				{"default type maintain (emulator limit)", aws.String("1"), "", "UnsupportedOperation"},
				{"type request (emulator limit)", aws.String("1"), types.FleetTypeRequest, "UnsupportedOperation"},
			}
			for _, tc := range tests {
				out, err := c.CreateFleet(x.Ctx, fleetInput(lt, tc.version, tc.typ))
				if tc.code == "" {
					if err != nil || len(out.Instances) != 1 {
						t.Errorf("%s: CreateFleet = %+v, %v; want one instance", tc.name, out, err)
					}
					continue
				}
				emutest.WantCode(t, "CreateFleet, "+tc.name, err, tc.code)
			}
			_, err := c.CreateFleet(x.Ctx, fleetInput(lt, aws.String("1"), ""))
			if msg := emutest.APIMessage(err); !strings.Contains(msg, "maintain") || !strings.Contains(msg, "Set Type to instant") {
				t.Errorf("the refusal of the default type says %q; want it to name maintain and the fix", msg)
			}
		}},
		{Rule: "9.6", Name: "DeleteFleets of an instant fleet must terminate its instances", Own: true, Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			lt := fleetTemplate(t, x, c, "lt-fleet-delete")
			fleet := emutest.Must[*ec2.CreateFleetOutput](t, "CreateFleet")(c.CreateFleet(x.Ctx, fleetInput(lt, aws.String("1"), types.FleetTypeInstant)))
			id, inst := aws.ToString(fleet.FleetId), fleet.Instances[0].InstanceIds[0]
			tests := []struct {
				name      string
				terminate bool
				code      string // the unsuccessful deletion's code; "" when deleted
				state     []types.InstanceStateName
			}{
				{"no-terminate-instances", false, "fleetNotInDeletableState", []types.InstanceStateName{types.InstanceStateNamePending, types.InstanceStateNameRunning}},
				{"terminate-instances", true, "", []types.InstanceStateName{types.InstanceStateNameShuttingDown, types.InstanceStateNameTerminated}},
			}
			for _, tc := range tests {
				out := emutest.Must[*ec2.DeleteFleetsOutput](t, "DeleteFleets")(c.DeleteFleets(x.Ctx, &ec2.DeleteFleetsInput{FleetIds: []string{id}, TerminateInstances: aws.Bool(tc.terminate)}))
				if tc.code != "" {
					if len(out.SuccessfulFleetDeletions) != 0 || len(out.UnsuccessfulFleetDeletions) != 1 ||
						out.UnsuccessfulFleetDeletions[0].Error.Code != types.DeleteFleetErrorCode(tc.code) || aws.ToString(out.UnsuccessfulFleetDeletions[0].FleetId) != id {
						t.Errorf("%s: DeleteFleets = %+v; want %s unsuccessful with %s", tc.name, out, id, tc.code)
					}
				} else if len(out.UnsuccessfulFleetDeletions) != 0 || len(out.SuccessfulFleetDeletions) != 1 {
					t.Errorf("%s: DeleteFleets = %+v; want %s deleted", tc.name, out, id)
				}
				if st := x.Instance(c, inst).State.Name; !slices.Contains(tc.state, st) {
					t.Errorf("%s: instance %s is %s, want one of %v", tc.name, inst, st, tc.state)
				}
			}
		}},
		{Rule: "9.4", Name: "ImdsSupport is v2.0 only and can't be undone", Own: true, Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			snap := ownSnapshot(x, emutest.AcctBuild)
			register := func(name string, imds types.ImdsSupportValues) (string, error) {
				out, err := c.RegisterImage(x.Ctx, &ec2.RegisterImageInput{Name: aws.String(name), RootDeviceName: aws.String("/dev/xvda"),
					Architecture: types.ArchitectureValuesX8664, VirtualizationType: aws.String("hvm"), ImdsSupport: imds,
					BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(snap)}}}})
				if err != nil {
					return "", err
				}
				return aws.ToString(out.ImageId), nil
			}
			_, err := register("imds-v1", "v1.0")
			emutest.WantCode(t, "RegisterImage with ImdsSupport v1.0", err, "InvalidParameterValue")
			plain, err := register("imds-none", "")
			if err != nil {
				t.Fatal(err)
			}
			modify := func(in *ec2.ModifyImageAttributeInput) error {
				in.ImageId = aws.String(plain)
				_, err := c.ModifyImageAttribute(x.Ctx, in)
				return err
			}
			tests := []struct {
				name string
				in   ec2.ModifyImageAttributeInput
				code string // "" when accepted
				want types.ImdsSupportValues
			}{
				{"a value other than v2.0", ec2.ModifyImageAttributeInput{ImdsSupport: &types.AttributeValue{Value: aws.String("v1.0")}}, "InvalidParameterValue", ""},
				{"v2.0", ec2.ModifyImageAttributeInput{ImdsSupport: &types.AttributeValue{Value: aws.String("v2.0")}}, "", types.ImdsSupportValuesV20},
				{"undo by ImdsSupport", ec2.ModifyImageAttributeInput{ImdsSupport: &types.AttributeValue{Value: aws.String("v1.0")}}, "InvalidParameterValue", types.ImdsSupportValuesV20},
				{"undo by Attribute and Value", ec2.ModifyImageAttributeInput{Attribute: aws.String("imdsSupport"), Value: aws.String("v1.0")}, "InvalidParameterValue", types.ImdsSupportValuesV20},
				{"v2.0 again", ec2.ModifyImageAttributeInput{ImdsSupport: &types.AttributeValue{Value: aws.String("v2.0")}}, "", types.ImdsSupportValuesV20},
			}
			for _, tc := range tests {
				err := modify(&tc.in)
				if tc.code == "" && err != nil {
					t.Errorf("%s: %v", tc.name, err)
				} else if tc.code != "" {
					emutest.WantCode(t, "ModifyImageAttribute, "+tc.name, err, tc.code)
				}
				if got := x.Image(c, plain).ImdsSupport; got != tc.want {
					t.Errorf("%s: ImdsSupport = %q, want %q", tc.name, got, tc.want)
				}
			}
		}},
		{Rule: "9.4", Name: "metadata defaults follow the AMI's ImdsSupport", Own: true, Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			snap := ownSnapshot(x, emutest.AcctBuild)
			plain := emutest.Must[*ec2.RegisterImageOutput](t, "RegisterImage")(c.RegisterImage(x.Ctx, &ec2.RegisterImageInput{Name: aws.String("imds-default"),
				RootDeviceName: aws.String("/dev/xvda"), Architecture: types.ArchitectureValuesX8664, VirtualizationType: aws.String("hvm"),
				BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(snap)}}}}))
			x.WaitImage(c, aws.ToString(plain.ImageId))
			tests := []struct {
				name   string
				image  string // the seed AMI has ImdsSupport v2.0
				opts   *types.InstanceMetadataOptionsRequest
				tokens types.HttpTokensState
				hops   int32
			}{
				{"an AMI without ImdsSupport", aws.ToString(plain.ImageId), nil, types.HttpTokensStateOptional, 1},
				{"an AMI with ImdsSupport v2.0", emutest.SeedAMI, nil, types.HttpTokensStateRequired, 2},
				{"an explicit hop limit wins", emutest.SeedAMI, &types.InstanceMetadataOptionsRequest{HttpPutResponseHopLimit: aws.Int32(3)}, types.HttpTokensStateRequired, 3},
				{"explicit options on a plain AMI", aws.ToString(plain.ImageId), &types.InstanceMetadataOptionsRequest{HttpTokens: types.HttpTokensStateRequired, HttpPutResponseHopLimit: aws.Int32(2)}, types.HttpTokensStateRequired, 2},
			}
			for _, tc := range tests {
				run := emutest.Must[*ec2.RunInstancesOutput](t, "RunInstances")(c.RunInstances(x.Ctx, &ec2.RunInstancesInput{ImageId: aws.String(tc.image),
					MinCount: aws.Int32(1), MaxCount: aws.Int32(1), MetadataOptions: tc.opts}))
				mo := x.Instance(c, aws.ToString(run.Instances[0].InstanceId)).MetadataOptions
				if mo.HttpTokens != tc.tokens || aws.ToInt32(mo.HttpPutResponseHopLimit) != tc.hops {
					t.Errorf("%s: HttpTokens %s, hop limit %d; want %s, %d", tc.name, mo.HttpTokens, aws.ToInt32(mo.HttpPutResponseHopLimit), tc.tokens, tc.hops)
				}
			}
		}},
		{Rule: "9.4", Name: "the metadata service honours HttpEndpoint and InstanceMetadataTags", Own: true, Run: func(t *testing.T, x *emutest.Env) {
			launch := func(endpoint types.InstanceMetadataEndpointState, tags types.InstanceMetadataTagsState) string {
				id, _ := runningInstance(x, emutest.AcctBuild, &ec2.RunInstancesInput{
					MetadataOptions: &types.InstanceMetadataOptionsRequest{HttpTokens: types.HttpTokensStateOptional, HttpEndpoint: endpoint, InstanceMetadataTags: tags},
					TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{
						{Key: aws.String("Name"), Value: aws.String("builder")}, {Key: aws.String("Team"), Value: aws.String("pci")}}}}})
				url, err := x.Srv.Emulator().ServeIMDS(id)
				if err != nil {
					t.Fatal(err)
				}
				return url
			}
			get := func(url, path string) (int, string, error) {
				req, _ := http.NewRequestWithContext(x.Ctx, http.MethodGet, url+path, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0, "", err
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b), nil
			}
			tagged := launch(types.InstanceMetadataEndpointStateEnabled, types.InstanceMetadataTagsStateEnabled)
			untagged := launch(types.InstanceMetadataEndpointStateEnabled, "")
			disabled := launch(types.InstanceMetadataEndpointStateDisabled, types.InstanceMetadataTagsStateEnabled)
			tests := []struct {
				name, url, path string
				status          int    // 0: no HTTP answer at all
				body            string // checked when status is 200
			}{
				{"tag keys", tagged, "/latest/meta-data/tags/instance", 200, "Name\nTeam"},
				{"a tag's value", tagged, "/latest/meta-data/tags/instance/Team", 200, "pci"},
				{"a tag that does not exist", tagged, "/latest/meta-data/tags/instance/Owner", 404, ""},
				{"tags listed among the categories", tagged, "/latest/meta-data/tags/", 200, "instance"},
				{"tags not enabled", untagged, "/latest/meta-data/tags/instance", 404, ""},
				{"a tag's value, tags not enabled", untagged, "/latest/meta-data/tags/instance/Name", 404, ""},
				{"other metadata, tags not enabled", untagged, "/latest/meta-data/ami-id", 200, emutest.SeedAMI},
				{"HttpEndpoint disabled", disabled, "/latest/meta-data/instance-id", 0, ""},
			}
			for _, tc := range tests {
				st, body, err := get(tc.url, tc.path)
				switch {
				case tc.status == 0 && err == nil:
					t.Errorf("%s: HTTP %d %q; want no answer", tc.name, st, body)
				case tc.status != 0 && err != nil:
					t.Errorf("%s: %v", tc.name, err)
				case st != tc.status || (st == 200 && body != tc.body):
					t.Errorf("%s: HTTP %d %q; want %d %q", tc.name, st, body, tc.status, tc.body)
				}
			}
			if st, body, _ := get(tagged, "/latest/meta-data"); st != 200 || !strings.Contains(body, "tags/") {
				t.Errorf("meta-data categories with tags enabled: %d %q", st, body)
			}
			if _, body, _ := get(untagged, "/latest/meta-data"); strings.Contains(body, "tags/") {
				t.Errorf("meta-data categories with tags not enabled list tags/: %q", body)
			}
		}},
		{Rule: "9.2", Name: "CreateKeyPair KeyFormat pem or ppk", Own: true, Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			tests := []struct {
				name    string
				typ     types.KeyType
				format  types.KeyFormat
				code    string // "" when made
				prefix  string // of the key material
				puttyOf string // the PPK's algorithm, "" for PEM
			}{
				{"rsa pem (default)", "", "", "", "-----BEGIN RSA PRIVATE KEY-----", ""},
				{"rsa ppk", types.KeyTypeRsa, types.KeyFormatPpk, "", "PuTTY-User-Key-File-2: ssh-rsa\n", "ssh-rsa"},
				{"ed25519 ppk", types.KeyTypeEd25519, types.KeyFormatPpk, "", "PuTTY-User-Key-File-2: ssh-ed25519\n", "ssh-ed25519"},
				{"a format that does not exist", types.KeyTypeRsa, "openssh", "InvalidParameterValue", "", ""},
			}
			for i, tc := range tests {
				name := fmt.Sprintf("kp-%d", i)
				out, err := c.CreateKeyPair(x.Ctx, &ec2.CreateKeyPairInput{KeyName: aws.String(name), KeyType: tc.typ, KeyFormat: tc.format})
				if tc.code != "" {
					emutest.WantCode(t, "CreateKeyPair, "+tc.name, err, tc.code)
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				material := aws.ToString(out.KeyMaterial)
				if !strings.HasPrefix(material, tc.prefix) {
					t.Errorf("%s: key material begins %.40q, want %q", tc.name, material, tc.prefix)
					continue
				}
				if tc.puttyOf == "" {
					continue
				}
				kps := emutest.Must[*ec2.DescribeKeyPairsOutput](t, "DescribeKeyPairs")(c.DescribeKeyPairs(x.Ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{name}, IncludePublicKey: aws.Bool(true)}))
				pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(aws.ToString(kps.KeyPairs[0].PublicKey)))
				if err != nil {
					t.Fatalf("%s: public key %q: %v", tc.name, aws.ToString(kps.KeyPairs[0].PublicKey), err)
				}
				if err := checkPPK(material, name, pub); err != nil {
					t.Errorf("%s: %v", tc.name, err)
				}
			}
		}},
		{Rule: "9.2", Name: "ImportKeyPair takes RSA and ED25519 keys with their fingerprints", Own: true, Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			edPub, _, _ := ed25519.GenerateKey(rand.Reader)
			ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
			authorized := func(k any) (string, []byte) {
				pub, err := ssh.NewPublicKey(k)
				if err != nil {
					t.Fatal(err)
				}
				return string(ssh.MarshalAuthorizedKey(pub)), pub.Marshal()
			}
			md5Hex := func(b []byte) string {
				sum := md5.Sum(b) //nolint:gosec // RFC 4716's fingerprint, as AWS gives it
				parts := make([]string, len(sum))
				for i, v := range sum {
					parts[i] = fmt.Sprintf("%02x", v)
				}
				return strings.Join(parts, ":")
			}
			sha256B64 := func(b []byte) string { sum := sha256.Sum256(b); return base64.RawStdEncoding.EncodeToString(sum[:]) }
			edLine, edBlob := authorized(edPub)
			ecLine, _ := authorized(&ecKey.PublicKey)
			rsaLine, rsaBlob := authorized(&rsaKey.PublicKey)
			tests := []struct {
				name, line  string
				code        string // "" when imported
				typ         types.KeyType
				fingerprint string
			}{
				{"ed25519", edLine, "", types.KeyTypeEd25519, sha256B64(edBlob)},
				{"rsa", rsaLine, "", types.KeyTypeRsa, md5Hex(rsaBlob)},
				{"ecdsa", ecLine, "InvalidKey.Format", "", ""},
			}
			for _, tc := range tests {
				out, err := c.ImportKeyPair(x.Ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("imp-" + tc.name), PublicKeyMaterial: []byte(tc.line)})
				if tc.code != "" {
					emutest.WantCode(t, "ImportKeyPair, "+tc.name, err, tc.code)
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if aws.ToString(out.KeyFingerprint) != tc.fingerprint {
					t.Errorf("%s: fingerprint %q, want %q", tc.name, aws.ToString(out.KeyFingerprint), tc.fingerprint)
				}
				kps := emutest.Must[*ec2.DescribeKeyPairsOutput](t, "DescribeKeyPairs")(c.DescribeKeyPairs(x.Ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"imp-" + tc.name}}))
				if kp := kps.KeyPairs[0]; kp.KeyType != tc.typ || aws.ToString(kp.KeyFingerprint) != tc.fingerprint {
					t.Errorf("%s: described as %s with fingerprint %q", tc.name, kp.KeyType, aws.ToString(kp.KeyFingerprint))
				}
			}
		}},
		{Rule: "9.3", Name: "tag lengths count Unicode characters", Own: true, Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			tests := []struct {
				name, key, value string
				code             string // "" when tagged
			}{
				{"a key of 128 three-byte characters", strings.Repeat("€", 128), "v", ""},
				{"a key of 129 characters", strings.Repeat("k", 129), "v", "InvalidParameterValue"},
				{"a value of 256 three-byte characters", "v256", strings.Repeat("€", 256), ""},
				{"a value of 257 characters", "v257", strings.Repeat("v", 257), "InvalidParameterValue"},
			}
			for _, tc := range tests {
				_, err := c.CreateTags(x.Ctx, &ec2.CreateTagsInput{Resources: []string{emutest.SeedAMI},
					Tags: []types.Tag{{Key: aws.String(tc.key), Value: aws.String(tc.value)}}})
				if tc.code == "" && err != nil {
					t.Errorf("%s: %v", tc.name, err)
				} else if tc.code != "" {
					emutest.WantCode(t, "CreateTags, "+tc.name, err, tc.code)
				}
			}
		}},
		{Rule: "9.7", Name: "spot options: persistent requests with stop or hibernate, a MaxPrice above USD 0.001", Own: true, Run: func(t *testing.T, x *emutest.Env) {
			c := x.EC2(emutest.AcctBuild, emutest.East)
			spot := func(o types.SpotMarketOptions) *types.InstanceMarketOptionsRequest {
				return &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot, SpotOptions: &o}
			}
			refused := []struct {
				name string
				opts types.SpotMarketOptions
				code string
			}{
				{"persistent with terminate", types.SpotMarketOptions{SpotInstanceType: types.SpotInstanceTypePersistent, InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate}, "InvalidParameterCombination"},
				{"persistent with the default behaviour (terminate)", types.SpotMarketOptions{SpotInstanceType: types.SpotInstanceTypePersistent}, "InvalidParameterCombination"},
				{"a request type that does not exist", types.SpotMarketOptions{SpotInstanceType: "forever"}, "InvalidParameterValue"},
				{"a behaviour that does not exist", types.SpotMarketOptions{InstanceInterruptionBehavior: "pause"}, "InvalidParameterValue"},
				{"MaxPrice 0.001", types.SpotMarketOptions{MaxPrice: aws.String("0.001")}, "InvalidParameterValue"},
				{"MaxPrice not a number", types.SpotMarketOptions{MaxPrice: aws.String("cheap")}, "InvalidParameterValue"},
			}
			for _, tc := range refused {
				_, err := c.RunInstances(x.Ctx, &ec2.RunInstancesInput{ImageId: aws.String(emutest.SeedAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceMarketOptions: spot(tc.opts)})
				emutest.WantCode(t, "RunInstances, "+tc.name, err, tc.code)
			}
			launched := []struct {
				name           string
				opts           types.SpotMarketOptions
				typ            types.SpotInstanceType
				behaviour      types.InstanceInterruptionBehavior
				stopCode       string                  // "" when StopInstances succeeds
				stoppedRequest types.SpotInstanceState // the request's state once the instance stopped
			}{
				{"one-time (default)", types.SpotMarketOptions{MaxPrice: aws.String("0.05")}, types.SpotInstanceTypeOneTime, types.InstanceInterruptionBehaviorTerminate, "UnsupportedOperation", ""},
				{"persistent with stop", types.SpotMarketOptions{SpotInstanceType: types.SpotInstanceTypePersistent, InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorStop},
					types.SpotInstanceTypePersistent, types.InstanceInterruptionBehaviorStop, "", types.SpotInstanceStateDisabled},
				{"persistent with hibernate", types.SpotMarketOptions{SpotInstanceType: types.SpotInstanceTypePersistent, InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorHibernate},
					types.SpotInstanceTypePersistent, types.InstanceInterruptionBehaviorHibernate, "", types.SpotInstanceStateDisabled},
			}
			for _, tc := range launched {
				id, _ := runningInstance(x, emutest.AcctBuild, &ec2.RunInstancesInput{InstanceMarketOptions: spot(tc.opts)})
				inst := x.Instance(c, id)
				reqs := emutest.Must[*ec2.DescribeSpotInstanceRequestsOutput](t, "DescribeSpotInstanceRequests")(c.DescribeSpotInstanceRequests(x.Ctx,
					&ec2.DescribeSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{aws.ToString(inst.SpotInstanceRequestId)}}))
				if r := reqs.SpotInstanceRequests[0]; r.Type != tc.typ || r.InstanceInterruptionBehavior != tc.behaviour || r.State != types.SpotInstanceStateActive {
					t.Errorf("%s: request type %s, behaviour %s, state %s; want %s, %s, active", tc.name, r.Type, r.InstanceInterruptionBehavior, r.State, tc.typ, tc.behaviour)
				}
				_, err := c.StopInstances(x.Ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
				if tc.stopCode != "" {
					emutest.WantCode(t, "StopInstances, "+tc.name, err, tc.stopCode)
					continue
				}
				if err != nil {
					t.Errorf("%s: StopInstances: %v", tc.name, err)
					continue
				}
				x.Srv.Emulator().Advance(10 * time.Minute)
				reqs = emutest.Must[*ec2.DescribeSpotInstanceRequestsOutput](t, "DescribeSpotInstanceRequests")(c.DescribeSpotInstanceRequests(x.Ctx,
					&ec2.DescribeSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{aws.ToString(inst.SpotInstanceRequestId)}}))
				if st := x.Instance(c, id).State.Name; st != types.InstanceStateNameStopped || reqs.SpotInstanceRequests[0].State != tc.stoppedRequest {
					t.Errorf("%s: after StopInstances the instance is %s and its request %s; want stopped, %s", tc.name, st, reqs.SpotInstanceRequests[0].State, tc.stoppedRequest)
				}
			}
		}},
		{Rule: "9.8", Name: "DescribeRegions optInStatus of default, enabled opt-in and disabled regions",
			World: func(w *awsemu.World) { w.Regions = append(w.Regions, "me-south-1", "ap-northeast-3") }, Run: func(t *testing.T, x *emutest.Env) {
				c := x.EC2(emutest.AcctBuild, emutest.East)
				out := emutest.Must[*ec2.DescribeRegionsOutput](t, "DescribeRegions")(c.DescribeRegions(x.Ctx, &ec2.DescribeRegionsInput{AllRegions: aws.Bool(true)}))
				got := map[string]string{}
				for _, r := range out.Regions {
					got[aws.ToString(r.RegionName)] = aws.ToString(r.OptInStatus)
				}
				tests := []struct{ region, want string }{
					{"us-east-1", "opt-in-not-required"},
					{"ap-northeast-3", "opt-in-not-required"}, // Osaka predates opt-in regions
					{"me-south-1", "opted-in"},
					{"ap-southeast-3", "not-opted-in"},
				}
				for _, tc := range tests {
					if got[tc.region] != tc.want {
						t.Errorf("%s: optInStatus %q, want %q", tc.region, got[tc.region], tc.want)
					}
				}
			}},
	}
}

// checkPPK checks an unencrypted PuTTY-User-Key-File-2: its MAC, comment,
// public key, and that its private part belongs to that public key.
func checkPPK(file, comment string, pub ssh.PublicKey) error {
	lines := strings.Split(strings.TrimSuffix(file, "\n"), "\n")
	field := func(i int, name string) (string, error) {
		if i >= len(lines) {
			return "", fmt.Errorf("no %s line", name)
		}
		v, ok := strings.CutPrefix(lines[i], name+": ")
		if !ok {
			return "", fmt.Errorf("line %d is %q, want %s", i+1, lines[i], name)
		}
		return v, nil
	}
	block := func(i int, name string) ([]byte, int, error) {
		v, err := field(i, name+"-Lines")
		if err != nil {
			return nil, 0, err
		}
		n, err := strconv.Atoi(v)
		if err != nil || i+1+n > len(lines) {
			return nil, 0, fmt.Errorf("%s-Lines %q", name, v)
		}
		b, err := base64.StdEncoding.DecodeString(strings.Join(lines[i+1:i+1+n], ""))
		return b, i + 1 + n, err
	}
	algo, err := field(0, "PuTTY-User-Key-File-2")
	if err != nil {
		return err
	}
	enc, err := field(1, "Encryption")
	if err != nil {
		return err
	}
	cmt, err := field(2, "Comment")
	if err != nil {
		return err
	}
	public, next, err := block(3, "Public")
	if err != nil {
		return err
	}
	private, next, err := block(next, "Private")
	if err != nil {
		return err
	}
	macHex, err := field(next, "Private-MAC")
	if err != nil {
		return err
	}
	if enc != "none" || cmt != comment || algo != pub.Type() || !bytes.Equal(public, pub.Marshal()) {
		return fmt.Errorf("header %s/%s/%s or public key differs from the key pair's %s", algo, enc, cmt, pub.Type())
	}
	key := sha1.Sum([]byte("putty-private-key-file-mac-key")) //nolint:gosec // PPK v2's MAC key
	mac := hmac.New(sha1.New, key[:])
	mac.Write(ssh.Marshal(struct {
		Algo, Enc, Comment string
		Public, Private    []byte
	}{algo, enc, cmt, public, private}))
	if want := hex.EncodeToString(mac.Sum(nil)); macHex != want {
		return fmt.Errorf("Private-MAC %s, want %s", macHex, want)
	}
	switch algo {
	case ssh.KeyAlgoRSA:
		var priv struct{ D, P, Q, Iqmp *big.Int }
		if err := ssh.Unmarshal(private, &priv); err != nil {
			return err
		}
		n := pub.(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey).N
		if new(big.Int).Mul(priv.P, priv.Q).Cmp(n) != 0 || new(big.Int).Mod(new(big.Int).Mul(priv.Iqmp, priv.Q), priv.P).Cmp(big.NewInt(1)) != 0 {
			return fmt.Errorf("the RSA private part does not belong to the public key")
		}
	case ssh.KeyAlgoED25519:
		var priv struct{ Seed []byte }
		if err := ssh.Unmarshal(private, &priv); err != nil || len(priv.Seed) != ed25519.SeedSize {
			return fmt.Errorf("ED25519 private part: %w", err)
		}
		want := pub.(ssh.CryptoPublicKey).CryptoPublicKey().(ed25519.PublicKey)
		if !bytes.Equal(ed25519.NewKeyFromSeed(priv.Seed).Public().(ed25519.PublicKey), want) {
			return fmt.Errorf("the ED25519 seed does not belong to the public key")
		}
	}
	return nil
}
