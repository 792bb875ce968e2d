package ec2_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

// cli runs the AWS CLI, an independent client, against the emulator.
type cli struct {
	t   *testing.T
	x   *emutest.Env
	bin string
	dir string
}

func newCLI(t *testing.T, x *emutest.Env) *cli {
	bin, err := exec.LookPath("aws")
	if err != nil {
		if os.Getenv("AMICRYPT_REQUIRE_AWSCLI") == "1" {
			t.Fatalf("AMICRYPT_REQUIRE_AWSCLI=1 but the aws CLI is not on PATH: %v", err)
		}
		t.Skip("aws CLI not installed (set AMICRYPT_REQUIRE_AWSCLI=1 to make this a failure)")
	}
	return &cli{t: t, x: x, bin: bin, dir: t.TempDir()}
}

// run calls `aws --endpoint-url URL --region REGION --output json ARGS…` as
// the account's user; it returns stdout, stderr and whether it succeeded.
func (c *cli) run(account, region string, args ...string) (string, string, bool) {
	c.t.Helper()
	ak, sk, err := c.x.Srv.Emulator().Credentials(account)
	if err != nil {
		c.t.Fatal(err)
	}
	full := append([]string{"--endpoint-url", c.x.Srv.URL(), "--region", region, "--output", "json"}, args...)
	cmd := exec.CommandContext(c.x.Ctx, c.bin, full...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"AWS_ACCESS_KEY_ID="+ak, "AWS_SECRET_ACCESS_KEY="+sk,
		"AWS_CONFIG_FILE="+filepath.Join(c.dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(c.dir, "credentials"),
		"AWS_MAX_ATTEMPTS=1", "AWS_RETRY_MODE=standard", "AWS_PAGER=",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	return stdout.String(), stderr.String(), err == nil
}

// ok runs a command that must succeed and decodes its JSON output.
func (c *cli) ok(account, region string, out any, args ...string) {
	c.t.Helper()
	stdout, stderr, ok := c.run(account, region, args...)
	if !ok {
		c.t.Fatalf("aws %s: %s", strings.Join(args, " "), stderr)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(stdout), out); err != nil {
			c.t.Fatalf("aws %s: decoding %q: %v", strings.Join(args, " "), stdout, err)
		}
	}
}

// fails runs a command that must fail with code and message in stderr.
func (c *cli) fails(account, region, code, message string, args ...string) {
	c.t.Helper()
	_, stderr, ok := c.run(account, region, args...)
	if ok || !strings.Contains(stderr, "("+code+")") || !strings.Contains(stderr, message) {
		c.t.Fatalf("aws %s: succeeded=%t stderr %q, want (%s) %q", strings.Join(args, " "), ok, stderr, code, message)
	}
}

type cliSnapshots struct {
	Snapshots []struct {
		SnapshotID string `json:"SnapshotId"`
		State      string `json:"State"`
		Encrypted  bool   `json:"Encrypted"`
		KmsKeyID   string `json:"KmsKeyId"`
		Progress   string `json:"Progress"`
	} `json:"Snapshots"`
}

func (c *cli) waitSnapshot(account, region, id string) cliSnapshots {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out cliSnapshots
		c.ok(account, region, &out, "ec2", "describe-snapshots", "--snapshot-ids", id)
		if len(out.Snapshots) == 1 && out.Snapshots[0].State != "pending" {
			return out
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("snapshot %s still pending", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEC2AWSCLI drives the core scenarios with the AWS CLI: copy an
// encrypted snapshot under a new key, share it and copy it from a second
// account, and see the AWS-managed-key sharing errors.
func TestEC2AWSCLI(t *testing.T) {
	x := emutest.NewEnv(t, awsemu.Options{})
	c := newCLI(t, x)
	buildKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/amicrypt-build")
	targetKey := x.KeyARN(emutest.AcctT2, emutest.East, "alias/amicrypt-target")
	managedKey := x.KeyARN(emutest.AcctBuild, emutest.East, "alias/aws/ebs")

	var images struct {
		Images []struct {
			ImageID string `json:"ImageId"`
			Name    string `json:"Name"`
		} `json:"Images"`
	}
	c.ok(emutest.AcctBuild, emutest.East, &images, "ec2", "describe-images", "--owners", "amazon")
	if len(images.Images) != 1 || images.Images[0].ImageID != emutest.SeedAMI {
		t.Fatalf("describe-images --owners amazon: %+v", images)
	}

	// An unencrypted snapshot of a builder's root volume.
	var run struct {
		Instances []struct {
			InstanceID string `json:"InstanceId"`
		} `json:"Instances"`
	}
	c.ok(emutest.AcctBuild, emutest.East, &run, "ec2", "run-instances", "--image-id", emutest.SeedAMI, "--instance-type", "t3.micro", "--count", "1")
	instID := run.Instances[0].InstanceID
	var vols struct {
		Volumes []struct {
			VolumeID string `json:"VolumeId"`
		} `json:"Volumes"`
	}
	c.ok(emutest.AcctBuild, emutest.East, &vols, "ec2", "describe-volumes", "--filters", "Name=attachment.instance-id,Values="+instID)
	if len(vols.Volumes) != 1 {
		t.Fatalf("describe-volumes: %+v", vols)
	}
	var snap struct {
		SnapshotID string `json:"SnapshotId"`
	}
	c.ok(emutest.AcctBuild, emutest.East, &snap, "ec2", "create-snapshot", "--volume-id", vols.Volumes[0].VolumeID, "--description", "root")
	plain := snap.SnapshotID
	c.waitSnapshot(emutest.AcctBuild, emutest.East, plain)

	// Copy it encrypted under the customer key.
	c.ok(emutest.AcctBuild, emutest.East, &snap, "ec2", "copy-snapshot", "--source-snapshot-id", plain, "--source-region", emutest.East,
		"--encrypted", "--kms-key-id", "alias/amicrypt-build", "--description", "encrypted root")
	encrypted := snap.SnapshotID
	got := c.waitSnapshot(emutest.AcctBuild, emutest.East, encrypted).Snapshots[0]
	if got.State != "completed" || !got.Encrypted || got.KmsKeyID != buildKey || got.Progress != "100%" {
		t.Fatalf("encrypted copy: %+v, want key %s", got, buildKey)
	}
	c.fails(emutest.AcctBuild, emutest.East, "InvalidRequest", "Creating an unencrypted copy from an encrypted snapshot is not supported",
		"ec2", "copy-snapshot", "--source-snapshot-id", encrypted, "--source-region", emutest.East, "--no-encrypted")
	c.fails(emutest.AcctBuild, emutest.East, "InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.",
		"ec2", "copy-snapshot", "--source-snapshot-id", plain, "--source-region", emutest.East, "--kms-key-id", buildKey)

	// Not shared yet: the second account can't see it.
	c.fails(emutest.AcctT2, emutest.East, "InvalidSnapshot.NotFound", "The snapshot '"+encrypted+"' does not exist.",
		"ec2", "describe-snapshots", "--snapshot-ids", encrypted)
	// Share: createVolumePermission plus a grant on the key.
	c.ok(emutest.AcctBuild, emutest.East, nil, "ec2", "modify-snapshot-attribute", "--snapshot-id", encrypted, "--attribute", "createVolumePermission",
		"--operation-type", "add", "--user-ids", emutest.AcctT2)
	var grant struct {
		GrantID string `json:"GrantId"`
	}
	c.ok(emutest.AcctBuild, emutest.East, &grant, "kms", "create-grant", "--key-id", buildKey, "--grantee-principal", "arn:aws:iam::"+emutest.AcctT2+":root",
		"--operations", "Decrypt", "DescribeKey", "CreateGrant", "ReEncryptFrom", "GenerateDataKeyWithoutPlaintext")

	// The second account copies it under its own key.
	c.ok(emutest.AcctT2, emutest.East, &snap, "ec2", "copy-snapshot", "--source-snapshot-id", encrypted, "--source-region", emutest.East,
		"--encrypted", "--kms-key-id", targetKey)
	theirs := c.waitSnapshot(emutest.AcctT2, emutest.East, snap.SnapshotID).Snapshots[0]
	if theirs.State != "completed" || theirs.KmsKeyID != targetKey {
		t.Fatalf("cross-account copy: %+v, want key %s", theirs, targetKey)
	}

	// Under the AWS managed key nothing can be shared.
	c.ok(emutest.AcctBuild, emutest.East, &snap, "ec2", "copy-snapshot", "--source-snapshot-id", plain, "--source-region", emutest.East, "--encrypted")
	managed := snap.SnapshotID
	if s := c.waitSnapshot(emutest.AcctBuild, emutest.East, managed).Snapshots[0]; s.KmsKeyID != managedKey {
		t.Fatalf("default-key copy: %+v, want %s", s, managedKey)
	}
	c.fails(emutest.AcctBuild, emutest.East, "OperationNotPermitted", "Encrypted snapshots with EBS default key cannot be shared",
		"ec2", "modify-snapshot-attribute", "--snapshot-id", managed, "--attribute", "createVolumePermission", "--operation-type", "add", "--user-ids", emutest.AcctT2)
	var reg struct {
		ImageID string `json:"ImageId"`
	}
	c.ok(emutest.AcctBuild, emutest.East, &reg, "ec2", "register-image", "--name", "managed-key-ami", "--root-device-name", "/dev/xvda",
		"--architecture", "x86_64", "--virtualization-type", "hvm", "--ena-support",
		"--block-device-mappings", `[{"DeviceName":"/dev/xvda","Ebs":{"SnapshotId":"`+managed+`","VolumeType":"gp3"}}]`)
	c.fails(emutest.AcctBuild, emutest.East, "InvalidParameter", "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify another snapshot.",
		"ec2", "modify-image-attribute", "--image-id", reg.ImageID, "--launch-permission", "Add=[{UserId="+emutest.AcctT2+"}]")
	c.fails(emutest.AcctBuild, emutest.East, "InvalidAMIName.Duplicate", "AMI name managed-key-ami is already in use by AMI "+reg.ImageID,
		"ec2", "register-image", "--name", "managed-key-ami", "--root-device-name", "/dev/xvda",
		"--block-device-mappings", `[{"DeviceName":"/dev/xvda","Ebs":{"SnapshotId":"`+managed+`"}}]`)
	c.fails(emutest.AcctBuild, emutest.East, "InvalidSnapshot.InUse", "The snapshot "+managed+" is currently in use by "+reg.ImageID,
		"ec2", "delete-snapshot", "--snapshot-id", managed)
	c.fails(emutest.AcctBuild, emutest.East, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.",
		"ec2", "describe-regions", "--dry-run")
}
