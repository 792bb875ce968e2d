package ec2_test

// conformance_launch_test.go: the EC2 cases of section 9 of
// docs/aws-behaviour.md, the AWS facts amazon-ebs's launch options (and
// amicrypt-ebs's, its drop-in) rely on: fleets, images' IMDS support,
// metadata options, key pairs, tags, spot options and opt-in regions.

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

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
	}
}
