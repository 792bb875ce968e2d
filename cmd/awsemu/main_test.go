package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func TestServeAndShutDown(t *testing.T) {
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-state", statePath, "-time-scale", "0.001"}, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var url string
	var accounts int
	for lines.Scan() {
		line := lines.Text()
		if u, ok := strings.CutPrefix(line, "awsemu listening on "); ok {
			url = u
		}
		if strings.Contains(line, "AWS_ACCESS_KEY_ID=AKIA") {
			accounts++
		}
		if accounts == 4 {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if url == "" || accounts != 4 {
		t.Fatalf("url %q, %d accounts printed", url, accounts)
	}
	client := sts.New(sts.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIA3333333333333333", "emu-secret-333333333333", ""),
	})
	id, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(id.Account) != "333333333333" {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	describeImagesWithCLI(t, url)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no shutdown")
	}
	if _, err := os.Stat(statePath); err != nil {
		t.Fatalf("state file after shutdown: %v", err)
	}
	audit, err := os.ReadFile(statePath + ".audit.jsonl")
	if err != nil || !strings.Contains(string(audit), `"GetCallerIdentity"`) {
		t.Fatalf("audit log after shutdown: %v %s", err, audit)
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-addr", "0.0.0.0:4566"}, "loopback"},
		{[]string{"-time-scale", "0"}, "-time-scale"},
		{[]string{"-call-latency", "-1s"}, "-call-latency -1s: must be 0 (none) or positive"},
		{[]string{"-world", "/nonexistent/world.json"}, "reading world file"},
		{[]string{"-faults", "/nonexistent/faults.json"}, "reading fault profile"},
	}
	for _, tc := range tests {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

// The request-rate flags reach the emulator's limits, per wall second by
// default and per emulated second with -emulated-time-rates.
func TestRateFlags(t *testing.T) {
	tests := []struct {
		args []string
		want awsemu.Limits
	}{
		{[]string{"-mutate-rate", "5", "-mutate-burst", "10"}, awsemu.Limits{MutateRate: 5, MutateBurst: 10}},
		{[]string{"-mutate-rate", "5", "-emulated-time-rates", "-time-scale", "0.01"}, awsemu.Limits{MutateRate: 5, EmulatedTime: true}},
		{[]string{"-aws-rate-limits", "-emulated-time-rates"}, awsemu.Limits{DescribeRate: 20, DescribeBurst: 100, MutateRate: 5, MutateBurst: 200,
			Services: []string{"ec2"}, EmulatedTime: true}},
	}
	for _, tc := range tests {
		cfg, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if !reflect.DeepEqual(cfg.opts.Limits, tc.want) {
			t.Errorf("%v: limits %+v, want %+v", tc.args, cfg.opts.Limits, tc.want)
		}
	}
}

// -call-latency reaches the emulator's latency model as its api-call
// time, in emulated time.
func TestCallLatencyFlag(t *testing.T) {
	cfg, err := parseFlags([]string{"-call-latency", "100ms", "-time-scale", "0.1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.opts.CallLatency != 100*time.Millisecond {
		t.Fatalf("CallLatency = %v, want 100ms", cfg.opts.CallLatency)
	}
}

// describeImagesWithCLI is the acceptance check of the server: the AWS CLI
// lists the default world's amazon AMI. Without `aws` it skips, unless
// AMICRYPT_REQUIRE_AWSCLI=1.
func describeImagesWithCLI(t *testing.T, url string) {
	bin, err := exec.LookPath("aws")
	if err != nil {
		if os.Getenv("AMICRYPT_REQUIRE_AWSCLI") == "1" {
			t.Fatalf("AMICRYPT_REQUIRE_AWSCLI=1 but the aws CLI is not on PATH: %v", err)
		}
		t.Log("aws CLI not installed; skipping the describe-images check")
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "--endpoint-url", url, "--region", "us-east-1", "--output", "json",
		"ec2", "describe-images", "--owners", "amazon")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "AWS_ACCESS_KEY_ID=AKIA2222222222222222", "AWS_SECRET_ACCESS_KEY=emu-secret-222222222222",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aws ec2 describe-images --owners amazon: %v\n%s", err, out)
	}
	for _, want := range []string{`"ami-0a1b2c3d4e5f60001"`, `"al2023-ami-2023.6.20241212.0-kernel-6.1-x86_64"`, `"snap-0a1b2c3d4e5f60001"`} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("describe-images output lacks %s:\n%s", want, out)
		}
	}
}
