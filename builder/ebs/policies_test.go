package ebs

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

// buildPolicy is docs/policies/build.json with its placeholders filled in
// for the default world: the build account and the role of its instance
// profile amicrypt-instance-store.
func buildPolicy(t *testing.T) string { return policyFile(t, "build.json") }

// policyFile is a policy of docs/policies with the placeholders filled in.
func policyFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "policies", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer("BUILD_ACCOUNT", buildAccount, "INSTANCE_ROLE", "amicrypt-instance-store").Replace(string(data))
}

// policyActions are the actions of every statement of a policy, in order.
func policyActions(t *testing.T, doc string) []string {
	t.Helper()
	var p struct {
		Statement []struct {
			Action json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		t.Fatalf("build.json: %v", err)
	}
	var out []string
	for _, st := range p.Statement {
		var one string
		var many []string
		switch {
		case json.Unmarshal(st.Action, &one) == nil:
			many = []string{one}
		case json.Unmarshal(st.Action, &many) != nil:
			t.Fatalf("build.json: Action %s", st.Action)
		}
		for _, a := range many {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("build.json lists no action")
	}
	return out
}

// sshServer is an SSH server on loopback that lets in any key: the
// communicator's connection to the build instance (ssh_host), so a build
// with the SSH communicator of the README runs through its temporary key
// pair and security group.
func sshServer(t *testing.T) int {
	t.Helper()
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &gossh.ServerConfig{PublicKeyCallback: func(gossh.ConnMetadata, gossh.PublicKey) (*gossh.Permissions, error) { return nil, nil }}
	cfg.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				conn, chans, reqs, err := gossh.NewServerConn(nc, cfg)
				if err != nil {
					nc.Close()
					return
				}
				defer conn.Close()
				go gossh.DiscardRequests(reqs)
				for ch := range chans {
					ch.Reject(gossh.Prohibited, "no sessions")
				}
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// policyWorld is the default world whose build user packer has
// docs/policies/build.json as its only identity policy, and deny as the
// world's deny list (explicit denies).
func policyWorld(t *testing.T, deny ...string) *awsemu.World {
	t.Helper()
	return policiesWorld(t, []string{buildPolicy(t)}, deny...)
}

// policiesWorld is policyWorld with the given identity policies.
func policiesWorld(t *testing.T, docs []string, deny ...string) *awsemu.World {
	t.Helper()
	return emutest.DefaultWorldWith(t, func(w *awsemu.World) {
		for i := range w.Accounts {
			if w.Accounts[i].ID == buildAccount {
				w.Accounts[i].Users[0].Policies = docs
				w.Accounts[i].Users[0].Deny = deny
			}
		}
	})
}

// mutating are the calls that make, change or remove something: none may
// come before a refusal at preflight (DryRun probes make nothing).
var mutating = []string{"RunInstances", "CreateKeyPair", "ImportKeyPair", "CreateSecurityGroup", "AuthorizeSecurityGroupIngress",
	"CreateSnapshot", "CopySnapshot", "CopyImage", "RegisterImage", "DeregisterImage", "DeleteSnapshot", "StopInstances",
	"TerminateInstances", "DeleteKeyPair", "DeleteSecurityGroup", "DeleteVolume", "CreateTags", "DeleteTags",
	"CreateLaunchTemplate", "CreateFleet", "ModifyImageAttribute", "ModifySnapshotAttribute"}

// madeSince counts the build account's mutating calls since mark that were
// not DryRun probes.
func madeSince(srv *emutest.Server, mark int) []string {
	var out []string
	for _, e := range srv.Emulator().Audit(awsemu.AuditFilter{Account: buildAccount, SinceSeq: mark}) {
		if slices.Contains(mutating, e.Action) && e.Params["DryRun"] != "true" {
			out = append(out, e.Action+" "+e.Outcome)
		}
	}
	return out
}

// The builds the policy is tested with: the README's (SSH communicator,
// a temporary key pair and security group, kms_key_id) and the same with
// the build volume launched encrypted under the account's default EBS key,
// whose data the copy re-encrypts under kms_key_id.
func policyBuild(t *testing.T, encryptedLaunch bool) map[string]interface{} {
	t.Helper()
	fakeCheckIP(t, "198.51.100.23")
	raw := with("communicator", "ssh", "ssh_username", "ec2-user", "ssh_host", "127.0.0.1", "ssh_port", sshServer(t), "ssh_timeout", "30s")
	if encryptedLaunch {
		raw["launch_block_device_mappings"] = []map[string]interface{}{{"device_name": "/dev/xvda", "encrypted": true, "delete_on_termination": true}}
	}
	return raw
}

// TestEveryPermissionOfTheBuildPolicy runs the README's build as a
// principal whose only identity policy is docs/policies/build.json, then
// takes each of its actions away in turn (the world's deny list): the
// build stops at preflight, before anything is made, with a message that
// names the permission and the IAM policy to fix, and leaves nothing.
//
// Some actions can't be asked at preflight without making something:
// those EC2 performs with a key on the build's behalf from ciphertext it
// holds (kms:Decrypt, kms:ReEncryptFrom, kms:ReEncryptTo; KMS's DryRun is
// not answered for them by the emulator, and a direct call would be
// refused anyway by kms:ViaService). Denied one of them, the build fails
// at the encrypted copy and rolls back: nothing is left.
// kms:GenerateDataKeyWithoutPlaintext and kms:CreateGrant are asked
// directly; a policy allowing them only through EC2 refuses the direct
// call without an explicit deny, so preflight reports only explicit
// denies of them (the deny list's are).
func TestEveryPermissionOfTheBuildPolicy(t *testing.T) {
	// Actions used only when the launch volume (or the source) is
	// encrypted under another key than kms_key_id; tested with that build.
	encryptedOnly := map[string]bool{"kms:Decrypt": true, "kms:ReEncryptFrom": true, "kms:ReEncryptTo": true}
	// Actions preflight can't ask (see above).
	notProbed := map[string]bool{"kms:Decrypt": true, "kms:ReEncryptFrom": true, "kms:ReEncryptTo": true}

	run := func(t *testing.T, encrypted bool, deny ...string) (*emutest.Server, buildResult) {
		srv := startEmulator(t, awsemu.Options{World: policyWorld(t, deny...)})
		return srv, runBuild(t, srv, policyBuild(t, encrypted))
	}
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprintf("nothing denied, encrypted launch %v", encrypted), func(t *testing.T) {
			srv, res := run(t, encrypted)
			if res.err != nil {
				t.Fatalf("the build fails with every action of build.json allowed: %v\n%s", res.err, res.output)
			}
			mustPass(t, srv, res.mark)
			if encrypted {
				launched := false
				for _, p := range auditParams(srv, res.mark, "RunInstances") {
					launched = launched || p["DryRun"] != "true" && p["BlockDeviceMapping.1.Ebs.Encrypted"] == "true"
				}
				if !launched {
					t.Errorf("no RunInstances launched the build volume encrypted: %v", auditParams(srv, res.mark, "RunInstances"))
				}
			}
		})
	}
	for _, action := range policyActions(t, buildPolicy(t)) {
		t.Run(action, func(t *testing.T) {
			srv, res := run(t, encryptedOnly[action], action)
			if res.err == nil {
				t.Fatalf("denied %s, the build succeeded: build.json lists an action the build does not need, or preflight misses it\n%s", action, res.output)
			}
			msg := res.err.Error()
			if !strings.Contains(msg, action) {
				t.Errorf("the failure does not name %s:\n%s", action, msg)
			}
			if notProbed[action] {
				mustPass(t, srv, res.mark)
				return
			}
			if !strings.Contains(msg, "in the IAM policy of arn:aws:iam::"+buildAccount+":user/packer") {
				t.Errorf("the failure does not point at the IAM policy of the build's principal:\n%s", msg)
			}
			if made := madeSince(srv, res.mark); len(made) > 0 {
				t.Errorf("denied %s, the build made %v before failing: preflight does not ask for it", action, made)
			}
			mustPass(t, srv, res.mark)
		})
	}
}

// TestEveryPermissionOfTheBuildOptionsPolicy: each action of
// docs/policies/build-options.json, with the option that needs it, on top
// of build.json: the build succeeds with both policies, and stops at
// preflight, naming the permission, when the action is taken away.
func TestEveryPermissionOfTheBuildOptionsPolicy(t *testing.T) {
	deprecate := time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	options := map[string]func(t *testing.T) map[string]interface{}{
		"iam:GetInstanceProfile": func(*testing.T) map[string]interface{} {
			return with("iam_instance_profile", "amicrypt-instance-store")
		},
		"ec2:DescribeRegions":      func(*testing.T) map[string]interface{} { return with("ami_regions", []string{"us-west-2"}) },
		"ec2:ModifyImageAttribute": func(*testing.T) map[string]interface{} { return with("ami_users", []string{"222222222222"}) },
		"ec2:ModifySnapshotAttribute": func(*testing.T) map[string]interface{} {
			return with("snapshot_users", []string{"222222222222"})
		},
		"ec2:EnableImageDeprecation": func(*testing.T) map[string]interface{} { return with("deprecate_at", deprecate) },
		"ec2:EnableImageDeregistrationProtection": func(*testing.T) map[string]interface{} {
			return with("deregistration_protection", map[string]interface{}{"enabled": true})
		},
		"ec2:CopyImage": func(*testing.T) map[string]interface{} { return with("skip_launch", true, "instance_type", nil) },
		"ec2:DeleteVolume": func(*testing.T) map[string]interface{} {
			return with("launch_block_device_mappings", []map[string]interface{}{{"device_name": "/dev/sdf", "volume_size": 1}})
		},
		"ec2:ImportKeyPair": func(t *testing.T) map[string]interface{} {
			raw := policyBuild(t, false)
			raw["temporary_key_pair_bits"] = 4096
			return raw
		},
		"ec2:DescribeSubnets": func(*testing.T) map[string]interface{} {
			return with("subnet_filter", map[string]interface{}{"filters": map[string]string{"default-for-az": "true"}, "most_free": true})
		},
	}
	spot := func(*testing.T) map[string]interface{} {
		return with("instance_type", nil, "spot_price", "auto", "spot_instance_types", []string{"t3.micro"})
	}
	for _, a := range []string{"ec2:CreateLaunchTemplate", "ec2:CreateFleet", "ec2:DeleteLaunchTemplate"} {
		options[a] = spot
	}
	// Not run here, and why.
	notRun := map[string]string{
		"iam:PassRole":                   "preflight can't ask it (no DryRun), and the emulator does not evaluate iam:PassRole at RunInstances",
		"ec2:GetPasswordData":            "preflight asks it (DryRun); a WinRM build would need a WinRM server for the communicator, which this test does not run",
		"ssm:StartSession":               "the session_manager tunnel needs the local session-manager-plugin; preflight does not ask it",
		"ssm:TerminateSession":           "as ssm:StartSession",
		"sts:DecodeAuthorizationMessage": "used only to explain a refusal, never needed for a build to succeed",
	}
	docs := []string{buildPolicy(t), policyFile(t, "build-options.json")}
	for _, action := range policyActions(t, docs[1]) {
		t.Run(action, func(t *testing.T) {
			if why, ok := notRun[action]; ok {
				t.Skip(why)
			}
			option, ok := options[action]
			if !ok {
				t.Fatalf("build-options.json lists %s, which this test has no option for", action)
			}
			for _, deny := range []string{"", action} {
				var denied []string
				if deny != "" {
					denied = []string{deny}
				}
				srv := startEmulator(t, awsemu.Options{World: policiesWorld(t, docs, denied...)})
				res := runBuild(t, srv, option(t))
				if deny == "" {
					if res.err != nil {
						t.Fatalf("with its option and every action of both policies allowed, the build fails: %v\n%s", res.err, res.output)
					}
					if calls(srv, res.mark, strings.TrimPrefix(action, "ec2:")) == 0 && strings.HasPrefix(action, "ec2:") {
						t.Errorf("the option's build never called %s", action)
					}
					// A shared AMI stays shared: that is what the option asks.
					mustPass(t, srv, res.mark, "leftover-launch-permission", "leftover-create-volume-permission")
					continue
				}
				if res.err == nil {
					t.Fatalf("denied %s, the build succeeded\n%s", action, res.output)
				}
				msg := res.err.Error()
				if !strings.Contains(msg, action) || !strings.Contains(msg, "in the IAM policy of arn:aws:iam::"+buildAccount+":user/packer") {
					t.Errorf("the failure does not name %s and the IAM policy to fix:\n%s", action, msg)
				}
				if made := madeSince(srv, res.mark); len(made) > 0 {
					t.Errorf("denied %s, the build made %v before failing", action, made)
				}
				mustPass(t, srv, res.mark)
			}
		})
	}
}
