package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
