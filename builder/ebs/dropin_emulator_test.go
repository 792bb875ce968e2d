package ebs

// Integration tests of the amazon-ebs behaviours amicrypt-ebs honours,
// against the in-process emulator through the real SDK clients.

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	gossh "golang.org/x/crypto/ssh"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// fakeCheckIP answers the public-IP question on loopback.
func fakeCheckIP(t *testing.T, ip string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, ip) }))
	t.Cleanup(srv.Close)
	t.Setenv(EnvCheckIPURL, srv.URL)
}

// stepRun is a build state over the emulator, to run some steps by hand.
type stepRun struct {
	t     *testing.T
	b     *buildState
	state *multistep.BasicStateBag
	done  []multistep.Step
	out   *syncBuffer
}

func newStepRun(t *testing.T, raw map[string]interface{}) *stepRun {
	t.Helper()
	var c Config
	if _, _, err := c.Prepare(raw); err != nil {
		t.Fatal(err)
	}
	cfg, err := c.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b := &buildState{config: &c, clients: newAWSClients(cfg, c.EC2Options()), runID: "run-" + t.Name()}
	b.lease = newLease(b.runID, c.templateID(), time.Hour)
	out := &syncBuffer{}
	state := new(multistep.BasicStateBag)
	state.Put("build", b)
	state.Put("ui", &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: out, ErrorWriter: out})
	return &stepRun{t: t, b: b, state: state, out: out}
}

// run runs steps in order and fails the test on a halt.
func (r *stepRun) run(steps ...multistep.Step) {
	r.t.Helper()
	for _, s := range steps {
		r.done = append(r.done, s)
		if s.Run(context.Background(), r.state) != multistep.ActionContinue {
			r.cleanup()
			r.t.Fatalf("%T: %v\n%s", s, r.state.Get("error"), r.out.String())
		}
	}
}

// cleanup runs the cleanups of the steps run, last first.
func (r *stepRun) cleanup() {
	for i := len(r.done) - 1; i >= 0; i-- {
		r.done[i].Cleanup(r.state)
	}
	r.done = nil
}

func auditParams(srv *emutest.Server, mark int, action string) []map[string]string {
	var out []map[string]string
	for _, e := range audited(srv, awsemu.AuditFilter{Account: buildAccount, Action: action, SinceSeq: mark}) {
		out = append(out, e.Params)
	}
	return out
}

func wantParams(t *testing.T, what string, got map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s %s = %q, want %q", what, k, got[k], v)
		}
	}
}

// The launch settings of amazon-ebs reach RunInstances, and a launch volume
// that doesn't go with the instance (delete_on_termination unset, as in
// amazon-ebs) is deleted after it.
func TestEmulatorLaunchOptions(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	lic := "arn:aws:license-manager:us-east-1:111111111111:license-configuration:lic-0123456789abcdef0123456789abcdef"
	res := runBuild(t, srv, with("ami_name", "amicrypt-options", "instance_type", "m5.large",
		"metadata_options", map[string]interface{}{"http_tokens": "required", "http_put_response_hop_limit": 2, "instance_metadata_tags": "enabled"},
		"ebs_optimized", true, "shutdown_behavior", "terminate", "placement", map[string]interface{}{"tenancy": "dedicated"},
		"availability_zone", "us-east-1b", "enable_nitro_enclave", true, "capacity_reservation_id", "cr-0123456789abcdef0",
		"license_specifications", []map[string]interface{}{{"license_configuration_request": map[string]interface{}{"license_configuration_arn": lic}}},
		"no_ephemeral", true, "imds_support", "v2.0", "ena_support", true, "sriov_support", true,
		"launch_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/xvdb", "volume_size": 2, "volume_type": "gp3"}}))
	if res.err != nil {
		t.Fatalf("build: %v\n%s", res.err, res.output)
	}
	run := auditParams(srv, res.mark, "RunInstances")
	if len(run) != 1 {
		t.Fatalf("RunInstances calls = %d", len(run))
	}
	wantParams(t, "RunInstances", run[0], map[string]string{
		"MetadataOptions.HttpTokens": "required", "MetadataOptions.HttpPutResponseHopLimit": "2", "MetadataOptions.HttpEndpoint": "enabled",
		"MetadataOptions.InstanceMetadataTags": "enabled", "EbsOptimized": "true", "InstanceInitiatedShutdownBehavior": "terminate",
		"Placement.Tenancy": "dedicated", "Placement.AvailabilityZone": "us-east-1b", "EnclaveOptions.Enabled": "true",
		"LicenseSpecification.1.LicenseConfigurationArn": lic, "CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId": "cr-0123456789abcdef0",
		"BlockDeviceMapping.1.DeviceName": "/dev/xvdb", "BlockDeviceMapping.1.Ebs.DeleteOnTermination": "false",
		"BlockDeviceMapping.2.DeviceName": "xvdca", "BlockDeviceMapping.27.DeviceName": "xvdcz",
	})
	reg := auditParams(srv, res.mark, "RegisterImage")
	wantParams(t, "RegisterImage", reg[0], map[string]string{"ImdsSupport": "v2.0", "EnaSupport": "true", "SriovNetSupport": "simple"})
	if got := calls(srv, res.mark, "DeleteVolume"); got != 1 {
		t.Errorf("DeleteVolume calls = %d, want 1 (the launch volume that outlives the instance)", got)
	}
	img := describeImage(t, srv, buildAccount, "us-east-1", res.artifact.Amis["us-east-1"])
	for _, m := range img.BlockDeviceMappings {
		if aws.ToString(m.DeviceName) == "/dev/xvdb" && (m.Ebs == nil || aws.ToBool(m.Ebs.DeleteOnTermination)) {
			t.Errorf("AMI device /dev/xvdb = %+v, want DeleteOnTermination false as launched (as amazon-ebs)", m.Ebs)
		}
	}
	mustPass(t, srv, res.mark)
}

// The temporary security group admits the communicator port from this
// machine's public IP, from the VPC when connecting privately, from the
// CIDRs given, and from nowhere for a session_manager tunnel.
func TestEmulatorTemporarySecurityGroupSources(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	fakeCheckIP(t, "198.51.100.23")
	cases := []struct {
		name   string
		raw    map[string]interface{}
		ipv4   []string
		ipv6   []string
		noRule bool
	}{
		{name: "public address: this machine's IP", raw: ssh(), ipv4: []string{"198.51.100.23/32"}},
		{name: "temporary_security_group_source_public_ip", raw: ssh("temporary_security_group_source_public_ip", true, "ssh_interface", "private_ip"), ipv4: []string{"198.51.100.23/32"}},
		{name: "private address: the VPC", raw: ssh("associate_public_ip_address", false), ipv4: []string{"172.31.0.0/16"}},
		{name: "ssh_interface private_ip: the VPC", raw: ssh("ssh_interface", "private_ip"), ipv4: []string{"172.31.0.0/16"}},
		{name: "cidrs given", raw: ssh("temporary_security_group_source_cidrs", []string{"10.1.0.0/16", "2001:db8::/48"}), ipv4: []string{"10.1.0.0/16"}, ipv6: []string{"2001:db8::/48"}},
		{name: "winrm port", raw: with("communicator", "winrm", "winrm_username", "Administrator", "winrm_password", "x"), ipv4: []string{"198.51.100.23/32"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mark := srv.Emulator().CheckMark()
			r := newStepRun(t, tc.raw)
			r.run(&stepPreflight{}, &stepSourceAMIInfo{}, &stepNetwork{}, &stepKeyPair{}, &stepSecurityGroup{})
			r.cleanup()
			ingress := auditParams(srv, mark, "AuthorizeSecurityGroupIngress")
			if tc.noRule {
				if len(ingress) != 0 {
					t.Fatalf("ingress = %v, want none", ingress)
				}
				return
			}
			if len(ingress) != 1 {
				t.Fatalf("AuthorizeSecurityGroupIngress calls = %d", len(ingress))
			}
			p := ingress[0]
			want := map[string]string{"IpPermissions.1.FromPort": fmt.Sprint(r.b.config.Comm.Port())}
			for i, c := range tc.ipv4 {
				want[fmt.Sprintf("IpPermissions.1.IpRanges.%d.CidrIp", i+1)] = c
			}
			for i, c := range tc.ipv6 {
				want[fmt.Sprintf("IpPermissions.1.Ipv6Ranges.%d.CidrIpv6", i+1)] = c
			}
			wantParams(t, "AuthorizeSecurityGroupIngress", p, want)
			for k, v := range p {
				if strings.Contains(v, "0.0.0.0/0") || v == "::/0" {
					t.Errorf("%s = %s: the group is open to the world", k, v)
				}
			}
			mustPass(t, srv, mark)
		})
	}
	t.Run("session_manager: no rule", func(t *testing.T) {
		mark := srv.Emulator().CheckMark()
		r := newStepRun(t, ssh("ssh_interface", "session_manager", "iam_instance_profile", "ssm", "skip_profile_validation", true))
		r.run((&stepSourceAMIInfo{}).withSource(t, r), &stepNetwork{}, &stepSecurityGroup{})
		r.cleanup()
		if n := calls(srv, mark, "AuthorizeSecurityGroupIngress"); n != 0 || calls(srv, mark, "CreateSecurityGroup") != 1 {
			t.Errorf("session_manager: %d ingress rules, %d groups; want a group with no rule", n, calls(srv, mark, "CreateSecurityGroup"))
		}
	})
	t.Run("no public IP found", func(t *testing.T) {
		t.Setenv(EnvCheckIPURL, "http://127.0.0.1:1/")
		r := newStepRun(t, ssh())
		r.run(&stepPreflight{}, &stepSourceAMIInfo{}, &stepNetwork{}, &stepKeyPair{})
		defer r.cleanup()
		if (&stepSecurityGroup{}).Run(context.Background(), r.state) != multistep.ActionHalt {
			t.Fatal("the group was made without knowing whom to admit")
		}
		if err := r.state.Get("error").(error); !strings.Contains(err.Error(), "set temporary_security_group_source_cidrs") {
			t.Errorf("error = %v", err)
		}
	})
}

// withSource gives a step run the source AMI without a preflight.
func (s *stepSourceAMIInfo) withSource(t *testing.T, r *stepRun) *stepSourceAMIInfo {
	t.Helper()
	img, err := ebs.FindImageByID(context.Background(), r.b.clients.EC2("us-east-1"), sourceAMI)
	if err != nil {
		t.Fatal(err)
	}
	r.b.source = img
	return s
}

// A spot build goes as amazon-ebs's: a launch template, an instant EC2
// Fleet of spot capacity with the type overrides, spot_tags on the template
// and the spot request, fleet_tags on the fleet; the instance isn't
// stopped; the template is deleted; the AMI is encrypted under the key.
func TestEmulatorSpotBuild(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	res := runBuild(t, srv, with("ami_name", "amicrypt-spot", "instance_type", nil, "spot_price", "auto",
		"spot_instance_types", []string{"t3.micro", "t3a.micro"}, "spot_allocation_strategy", "price-capacity-optimized",
		"spot_tags", map[string]string{"spot": "{{ .SourceAMIName }}"}, "fleet_tags", map[string]string{"fleet": "yes"},
		"metadata_options", map[string]interface{}{"http_tokens": "required"}, "run_tags", map[string]string{"team": "x"}))
	if res.err != nil {
		t.Fatalf("build: %v\n%s", res.err, res.output)
	}
	for action, want := range map[string]int{"CreateLaunchTemplate": 1, "CreateFleet": 1, "RunInstances": 0, "StopInstances": 0,
		"TerminateInstances": 1, "DeleteLaunchTemplate": 1, "CopySnapshot": 1, "RegisterImage": 1} {
		if got := calls(srv, res.mark, action); got != want {
			t.Errorf("%s calls = %d, want %d", action, got, want)
		}
	}
	src := describeImage(t, srv, buildAccount, "us-east-1", sourceAMI)
	lt := auditParams(srv, res.mark, "CreateLaunchTemplate")[0]
	wantParams(t, "CreateLaunchTemplate", lt, map[string]string{
		"LaunchTemplateData.InstanceMarketOptions.MarketType": "spot", "LaunchTemplateData.MetadataOptions.HttpTokens": "required",
		"TagSpecification.1.ResourceType": "launch-template", "LaunchTemplateData.ImageId": sourceAMI,
	})
	if !strings.Contains(fmt.Sprint(lt), aws.ToString(src.Name)) {
		t.Errorf("spot_tags were not rendered onto the launch template: %v", lt)
	}
	fleet := auditParams(srv, res.mark, "CreateFleet")[0]
	wantParams(t, "CreateFleet", fleet, map[string]string{"Type": "instant", "TargetCapacitySpecification.DefaultTargetCapacityType": "spot",
		"TargetCapacitySpecification.TotalTargetCapacity": "1", "LaunchTemplateConfigs.1.Overrides.1.InstanceType": "t3.micro",
		"LaunchTemplateConfigs.1.Overrides.2.InstanceType": "t3a.micro", "SpotOptions.AllocationStrategy": "price-capacity-optimized",
		"TagSpecification.1.ResourceType": "fleet"})
	tagged := false
	for _, p := range auditParams(srv, res.mark, "CreateTags") {
		if strings.HasPrefix(p["ResourceId.1"], "sir-") && p["Tag.1.Key"] == "spot" {
			tagged = true
		}
	}
	if !tagged {
		t.Error("the spot instance request was not tagged with spot_tags")
	}
	assertEncryptedUnder(t, srv, "us-east-1", res.artifact.Amis["us-east-1"], keyARN(t, srv, buildAccount, "us-east-1", "alias/amicrypt-build"))
	mustPass(t, srv, res.mark)
}

// Tags, run tags and the description are rendered with the build's data;
// run tags go onto the AMI and its snapshots unless skip_ami_run_tags; what
// the build keeps carries no lease.
func TestEmulatorTagTemplating(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	src := describeImage(t, srv, buildAccount, "us-east-1", sourceAMI)
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprintf("skip_ami_run_tags=%v", skip), func(t *testing.T) {
			res := runBuild(t, srv, with("ami_name", fmt.Sprintf("amicrypt-tags-%v", skip), "skip_ami_run_tags", skip,
				"ami_description", "{{ .SourceAMIName }} in {{ .BuildRegion }}",
				"tags", map[string]string{"Name": "app-{{ .SourceAMIName }}", "Source": "{{ .SourceAMI }}", "Owner": "{{ .SourceAMIOwner }}"},
				"snapshot_tags", map[string]string{"Region": "{{ .BuildRegion }}"},
				"run_tags", map[string]string{"Team": "platform", "Name": "builder"},
				"run_volume_tags", map[string]string{"Vol": "{{ .SourceAMIName }}"}))
			if res.err != nil {
				t.Fatalf("build: %v\n%s", res.err, res.output)
			}
			img := describeImage(t, srv, buildAccount, "us-east-1", res.artifact.Amis["us-east-1"])
			tags := tagMap(img.Tags)
			want := map[string]string{"Name": "app-" + aws.ToString(src.Name), "Source": sourceAMI, "Owner": "137112412989"}
			if !skip {
				want["Team"] = "platform"
			}
			for k, v := range want {
				if tags[k] != v {
					t.Errorf("AMI tag %s = %q, want %q (all %v)", k, tags[k], v, tags)
				}
			}
			if _, ok := tags["Team"]; skip && ok {
				t.Errorf("skip_ami_run_tags: AMI has run tag Team: %v", tags)
			}
			if tags[tagLease] != "" || tags[tagRun] == "" {
				t.Errorf("kept AMI tags %v: want the run, not the lease", tags)
			}
			if got := aws.ToString(img.Description); got != aws.ToString(src.Name)+" in us-east-1" {
				t.Errorf("description = %q", got)
			}
			snaps := assertEncryptedUnder(t, srv, "us-east-1", aws.ToString(img.ImageId), keyARN(t, srv, buildAccount, "us-east-1", "alias/amicrypt-build"))
			out, err := ec2.NewFromConfig(srv.Config(context.Background(), buildAccount, "us-east-1")).DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: snaps})
			if err != nil {
				t.Fatal(err)
			}
			st := tagMap(out.Snapshots[0].Tags)
			if st["Region"] != "us-east-1" || (st["Team"] == "platform") == skip || st[tagLease] != "" {
				t.Errorf("snapshot tags = %v", st)
			}
			run := auditParams(srv, res.mark, "RunInstances")[0]
			if !strings.Contains(fmt.Sprint(run), "Vol") || !strings.Contains(fmt.Sprint(run), aws.ToString(src.Name)) {
				t.Errorf("run_volume_tags not rendered onto RunInstances: %v", run)
			}
			mustPass(t, srv, res.mark)
		})
	}
}

// temporary_key_pair_type ed25519 asks EC2 for one; temporary_key_pair_bits
// other than EC2's 2048 generates the key here and imports it.
func TestEmulatorTemporaryKeyPairTypes(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	fakeCheckIP(t, "198.51.100.23")
	cases := []struct {
		name, action, keyType, bits string
		raw                         map[string]interface{}
		block                       string
	}{
		{"ed25519", "CreateKeyPair", "ed25519", "", ssh("temporary_key_pair_type", "ed25519"), "PRIVATE KEY"},
		{"rsa 2048", "CreateKeyPair", "rsa", "2048", ssh(), "RSA PRIVATE KEY"},
		{"rsa 4096", "ImportKeyPair", "rsa", "4096", ssh("temporary_key_pair_bits", 4096), "PRIVATE KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mark := srv.Emulator().CheckMark()
			r := newStepRun(t, tc.raw)
			r.run((&stepSourceAMIInfo{}).withSource(t, r), &stepKeyPair{})
			c := r.b.config
			entries := audited(srv, awsemu.AuditFilter{Account: buildAccount, Action: tc.action, SinceSeq: mark})
			if len(entries) != 1 || entries[0].Notes["keyType"] != tc.keyType || entries[0].Notes["keyBits"] != tc.bits {
				t.Fatalf("%s audit = %+v", tc.action, entries)
			}
			block, _ := pem.Decode(c.Comm.SSHPrivateKey)
			if block == nil || block.Type != tc.block {
				t.Fatalf("private key block %v", block)
			}
			signer, err := gossh.ParsePrivateKey(c.Comm.SSHPrivateKey)
			if err != nil {
				t.Fatal(err)
			}
			kps, err := ec2.NewFromConfig(srv.Config(context.Background(), buildAccount, "us-east-1")).DescribeKeyPairs(context.Background(),
				&ec2.DescribeKeyPairsInput{KeyNames: []string{c.Comm.SSHKeyPairName}, IncludePublicKey: aws.Bool(true)})
			if err != nil {
				t.Fatal(err)
			}
			if pub := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(signer.PublicKey()))); tc.name != "rsa 2048" && !strings.HasPrefix(aws.ToString(kps.KeyPairs[0].PublicKey), pub) {
				t.Errorf("EC2's public key %q is not the communicator's %q", aws.ToString(kps.KeyPairs[0].PublicKey), pub)
			}
			if c.Comm.SSHTemporaryKeyPairName != c.Comm.SSHKeyPairName {
				t.Errorf("ssh_clear_authorized_keys would look for %q, the key is %q", c.Comm.SSHTemporaryKeyPairName, c.Comm.SSHKeyPairName)
			}
			if tags := tagMap(kps.KeyPairs[0].Tags); tags[tagLease] == "" || tags[tagRun] != r.b.runID {
				t.Errorf("key pair tags = %v, want the run and its lease", tags)
			}
			r.cleanup()
			mustPass(t, srv, mark)
		})
	}
}

// windowsWorld is the default world with a Windows AMI in the build account.
func windowsWorld(t *testing.T) *awsemu.World {
	t.Helper()
	w, err := awsemu.DefaultWorld()
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range w.Images {
		if img.ID == sourceAMI {
			win := img
			win.ID, win.Name, win.Owner = "ami-0a1b2c3d4e5f60002", "Windows_Server-2022-English-Full-Base-2025.01.15", buildAccount
			win.Volumes = append([]awsemu.WorldVolume(nil), img.Volumes...)
			win.Volumes[0].SnapshotID = "snap-0a1b2c3d4e5f60002"
			win.Volumes[0].DeviceName = "/dev/sda1"
			win.RootDeviceName = "/dev/sda1"
			w.Images = append(w.Images, win)
			return w
		}
	}
	t.Fatal("no source image in the default world")
	return nil
}

// WinRM without a password: the Windows password is read with
// GetPasswordData, decrypted with the temporary (RSA) key pair, and given
// to the communicator.
func TestEmulatorWindowsPassword(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{World: windowsWorld(t)})
	fakeCheckIP(t, "198.51.100.23")
	mark := srv.Emulator().CheckMark()
	r := newStepRun(t, with("source_ami", "ami-0a1b2c3d4e5f60002", "communicator", "winrm", "winrm_username", "Administrator",
		"windows_password_timeout", "2m"))
	r.run(&stepPreflight{}, &stepSourceAMIInfo{}, &stepNetwork{}, &stepKeyPair{}, &stepSecurityGroup{}, &stepRunInstance{}, &stepGetPassword{})
	pw := r.b.config.Comm.WinRMPassword
	if len(pw) < 16 {
		t.Errorf("WinRM password = %q", pw)
	}
	if n := calls(srv, mark, "GetPasswordData"); n < 2 {
		t.Errorf("GetPasswordData calls = %d; the password is not ready at once", n)
	}
	r.cleanup()
	mustPass(t, srv, mark)

	// A Linux image has no password: the wait ends at the timeout, saying so.
	r = newStepRun(t, with("communicator", "winrm", "winrm_username", "Administrator", "windows_password_timeout", "1s"))
	r.run(&stepPreflight{}, &stepSourceAMIInfo{}, &stepNetwork{}, &stepKeyPair{}, &stepSecurityGroup{}, &stepRunInstance{})
	defer r.cleanup()
	if (&stepGetPassword{}).Run(context.Background(), r.state) != multistep.ActionHalt {
		t.Fatal("a password was found for a Linux instance")
	}
	if err := r.state.Get("error").(error); !strings.Contains(err.Error(), "windows_password_timeout") {
		t.Errorf("error = %v", err)
	}
}

// A build killed mid-way (no cleanup runs) leaves resources under a lease;
// once it expires, the next build removes them all, and leaves a live
// build's alone.
func TestEmulatorReapsDeadBuilds(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	fakeCheckIP(t, "198.51.100.23")
	mark := srv.Emulator().CheckMark()
	dead := newStepRun(t, ssh("ami_name", "amicrypt-dead", "launch_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/xvdb", "volume_size": 1}}))
	dead.b.lease = newLease("dead-run", dead.b.config.templateID(), time.Second)
	dead.run(&stepPreflight{}, &stepSourceAMIInfo{}, &stepNetwork{}, &stepKeyPair{}, &stepSecurityGroup{}, &stepRunInstance{}, &stepStopInstance{},
		&stepCreateSnapshots{}, &stepEncryptSnapshots{})
	// Killed: no cleanup. A live build's key pair, leased for an hour:
	live := newStepRun(t, ssh("ami_name", "amicrypt-live"))
	live.run((&stepSourceAMIInfo{}).withSource(t, live), &stepKeyPair{})
	defer live.cleanup()
	if rep := srv.Emulator().Check(awsemu.CheckOptions{Account: buildAccount, SinceSeq: mark}); rep.Pass {
		t.Fatal("the dead build left nothing; the test proves nothing")
	}
	time.Sleep(1100 * time.Millisecond)

	res := runBuild(t, srv, with("ami_name", "amicrypt-after-dead"))
	if res.err != nil {
		t.Fatalf("build: %v\n%s", res.err, res.output)
	}
	for _, w := range []string{"left by dead builds", "of run dead-run"} {
		if !strings.Contains(res.output, w) {
			t.Errorf("output lacks %q:\n%s", w, res.output)
		}
	}
	for action, atLeast := range map[string]int{"TerminateInstances": 2, "DeleteKeyPair": 1, "DeleteSecurityGroup": 1, "DeleteSnapshot": 3, "DeleteVolume": 1} {
		if got := calls(srv, res.mark, action); got < atLeast {
			t.Errorf("%s calls after the dead build = %d, want at least %d", action, got, atLeast)
		}
	}
	for _, p := range auditParams(srv, res.mark, "DeleteKeyPair") {
		if p["KeyName"] == live.b.keyPairName {
			t.Errorf("the live build's key pair %s was removed", live.b.keyPairName)
		}
	}
	live.cleanup()
	mustPass(t, srv, mark)
}

// A CopySnapshot that ends in error is deleted and tried afresh; the build
// succeeds and leaves nothing.
func TestEmulatorCopySnapshotRetried(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{Faults: &awsemu.FaultProfile{Rules: []awsemu.FaultRule{
		{Kind: awsemu.FaultCopyFails, Action: "CopySnapshot", Max: 1},
	}}})
	res := runBuild(t, srv, with("ami_name", "amicrypt-copy-retry"))
	if res.err != nil {
		t.Fatalf("build: %v\n%s", res.err, res.output)
	}
	if got := calls(srv, res.mark, "CopySnapshot"); got != 2 {
		t.Errorf("CopySnapshot calls = %d, want 2 (one failed, one fresh)", got)
	}
	if !strings.Contains(res.output, "starting a fresh copy (attempt 2 of 3)") {
		t.Errorf("output does not say the copy is retried:\n%s", res.output)
	}
	assertEncryptedUnder(t, srv, "us-east-1", res.artifact.Amis["us-east-1"], keyARN(t, srv, buildAccount, "us-east-1", "alias/amicrypt-build"))
	mustPass(t, srv, res.mark)
}

// With the concurrent snapshot copy quota at 1 and two volumes to copy,
// the second copy is refused (ResourceLimitExceeded) until the first is
// done; the build backs off and succeeds.
func TestEmulatorCopySnapshotQuotaBackoff(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{Limits: awsemu.Limits{ConcurrentSnapshotCopies: 1}})
	res := runBuild(t, srv, with("ami_name", "amicrypt-quota",
		"launch_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/xvdb", "volume_size": 4, "delete_on_termination": true}}))
	if res.err != nil {
		t.Fatalf("build: %v\n%s", res.err, res.output)
	}
	refused := audited(srv, awsemu.AuditFilter{Account: buildAccount, Action: "CopySnapshot", Outcome: "ResourceLimitExceeded", SinceSeq: res.mark})
	if len(refused) == 0 {
		t.Fatal("no copy was refused; the test proves nothing")
	}
	if !strings.Contains(res.output, "concurrent snapshot copy quota is reached (ResourceLimitExceeded); asking again") {
		t.Errorf("output does not say it backs off:\n%s", res.output)
	}
	assertEncryptedUnder(t, srv, "us-east-1", res.artifact.Amis["us-east-1"], keyARN(t, srv, buildAccount, "us-east-1", "alias/amicrypt-build"))
	mustPass(t, srv, res.mark)
}

// A region the account hasn't enabled is named as such, not blamed on the
// credentials, with or without the region validation.
func TestEmulatorRegionNotEnabled(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprintf("skip_region_validation=%v", skip), func(t *testing.T) {
			res := runBuild(t, srv, with("ami_name", "amicrypt-optin", "skip_launch", true, "instance_type", nil, "skip_region_validation", skip,
				"ami_regions", []string{"ap-southeast-3"}))
			if res.err == nil {
				t.Fatal("build into a disabled region succeeded")
			}
			for _, w := range []string{"ap-southeast-3 is an opt-in region that account 111111111111 hasn't enabled", "enable it"} {
				if !strings.Contains(res.err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, res.err)
				}
			}
			mustPass(t, srv, res.mark)
		})
	}
}

// disable_stop_instance: the builder doesn't stop the instance; it waits
// for a provisioner (here the test) to.
func TestEmulatorDisableStopInstance(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	var b Builder
	if _, _, err := b.Prepare(with("ami_name", "amicrypt-nostop", "disable_stop_instance", true)); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	mark := srv.Emulator().CheckMark()
	done := make(chan error, 1)
	go func() {
		_, err := b.Run(context.Background(), &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: out, ErrorWriter: out}, &packersdk.MockHook{})
		done <- err
	}()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "to be stopped by the provisioners") {
		if time.Now().After(deadline) {
			t.Fatalf("the build did not wait:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := calls(srv, mark, "StopInstances"); n != 0 {
		t.Fatalf("the builder stopped the instance itself (%d calls)", n)
	}
	client := ec2.NewFromConfig(srv.Config(context.Background(), buildAccount, "us-east-1"))
	insts, err := client.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("instance-state-name"), Values: []string{"running"}}, {Name: aws.String("tag-key"), Values: []string{tagLease}}}})
	if err != nil || len(insts.Reservations) != 1 {
		t.Fatalf("the build instance: %v %v", insts, err)
	}
	id := aws.ToString(insts.Reservations[0].Instances[0].InstanceId)
	if _, err := client.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	if n := calls(srv, mark, "StopInstances"); n != 1 {
		t.Errorf("StopInstances calls = %d, want only the test's", n)
	}
	mustPass(t, srv, mark)
}

// force_deregister keeps the old AMI's snapshots, as amazon-ebs, unless
// force_delete_snapshot; skip_save_build_region keeps the AMI only in the
// copies; skip_create_ami makes none.
func TestEmulatorAMIOptions(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	first := runBuild(t, srv, with("ami_name", "amicrypt-again", "skip_launch", true, "instance_type", nil))
	if first.err != nil {
		t.Fatal(first.err)
	}
	oldSnaps := assertEncryptedUnder(t, srv, "us-east-1", first.artifact.Amis["us-east-1"], keyARN(t, srv, buildAccount, "us-east-1", "alias/amicrypt-build"))
	deletedOld := func(mark int) bool {
		for _, p := range auditParams(srv, mark, "DeleteSnapshot") {
			if p["SnapshotId"] == oldSnaps[0] {
				return true
			}
		}
		return false
	}
	second := runBuild(t, srv, with("ami_name", "amicrypt-again", "skip_launch", true, "instance_type", nil, "force_deregister", true))
	if second.err != nil || deletedOld(second.mark) {
		t.Fatalf("force_deregister alone: err %v, old snapshot deleted %v", second.err, deletedOld(second.mark))
	}
	secondSnaps := assertEncryptedUnder(t, srv, "us-east-1", second.artifact.Amis["us-east-1"], keyARN(t, srv, buildAccount, "us-east-1", "alias/amicrypt-build"))
	third := runBuild(t, srv, with("ami_name", "amicrypt-again", "skip_launch", true, "instance_type", nil, "force_deregister", true, "force_delete_snapshot", true))
	if third.err != nil {
		t.Fatal(third.err)
	}
	deleted := map[string]bool{}
	for _, p := range auditParams(srv, third.mark, "DeleteSnapshot") {
		deleted[p["SnapshotId"]] = true
	}
	if !deleted[secondSnaps[0]] {
		t.Errorf("force_delete_snapshot: the replaced AMI's snapshot %s was not deleted", secondSnaps[0])
	}
	// The first AMI's snapshot, kept by force_deregister alone, is no AMI's
	// now: remove it so the checker's orphan rule holds.
	if err := ebs.DeleteSnapshot(context.Background(), ec2.NewFromConfig(srv.Config(context.Background(), buildAccount, "us-east-1")), oldSnaps[0]); err != nil {
		t.Fatal(err)
	}

	res := runBuild(t, srv, with("ami_name", "amicrypt-elsewhere", "skip_save_build_region", true, "ami_regions", []string{"us-west-2"}))
	if res.err != nil {
		t.Fatalf("skip_save_build_region: %v\n%s", res.err, res.output)
	}
	if _, ok := res.artifact.Amis["us-east-1"]; ok || res.artifact.Amis["us-west-2"] == "" {
		t.Errorf("skip_save_build_region artifact = %v, want us-west-2 only", res.artifact.Amis)
	}
	assertEncryptedUnder(t, srv, "us-west-2", res.artifact.Amis["us-west-2"], keyARN(t, srv, buildAccount, "us-west-2", "alias/amicrypt-build"))
	mustPass(t, srv, res.mark)

	none := runBuild(t, srv, with("ami_name", "amicrypt-none", "skip_create_ami", true))
	if none.err != nil || none.artifact != nil {
		t.Fatalf("skip_create_ami: artifact %v, err %v", none.artifact, none.err)
	}
	for _, a := range []string{"CreateSnapshot", "CopySnapshot", "RegisterImage"} {
		if calls(srv, none.mark, a) != 0 {
			t.Errorf("skip_create_ami made a %s call", a)
		}
	}
	mustPass(t, srv, none.mark)
}
