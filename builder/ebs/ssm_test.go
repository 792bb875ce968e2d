package ebs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// fakeSSM answers StartSession and TerminateSession (JSON 1.1) and records
// the requests.
type fakeSSM struct {
	mu       sync.Mutex
	requests []map[string]interface{}
	targets  []string
}

func (f *fakeSSM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req map[string]interface{}
	_ = json.Unmarshal(body, &req)
	target := r.Header.Get("X-Amz-Target")
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.targets = append(f.targets, target)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch target {
	case "AmazonSSM.StartSession":
		fmt.Fprint(w, `{"SessionId":"packer-0123456789abcdef0","TokenValue":"tok","StreamUrl":"wss://ssmmessages.example/v1/data-channel/packer-0123456789abcdef0"}`)
	case "AmazonSSM.TerminateSession":
		fmt.Fprint(w, `{"SessionId":"packer-0123456789abcdef0"}`)
	default:
		w.WriteHeader(http.StatusBadRequest)
	}
}

func (f *fakeSSM) saw(target string) map[string]interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, t := range f.targets {
		if t == target {
			return f.requests[i]
		}
	}
	return nil
}

// A stand-in session-manager-plugin: it writes its arguments to a file and
// stays up like the real one until it is stopped.
const fakePluginScript = `#!/bin/sh
for a in "$@"; do printf '%s\n' "$a"; done > "$PLUGIN_ARGS"
exec sleep 60
`

// ssh_interface = "session_manager": preflight refuses without the plugin,
// saying how to install it; with it, an SSM port forwarding session to the
// instance is started, the plugin runs with the session, and the cleanup
// ends the session.
func TestSessionManagerTunnel(t *testing.T) {
	srv := startEmulator(t, awsemu.Options{})
	ssmSrv := &fakeSSM{}
	fake := httptest.NewServer(ssmSrv)
	defer fake.Close()
	t.Setenv("AWS_ENDPOINT_URL_SSM", fake.URL)
	// The default world's one instance profile stands in for an SSM one.
	raw := ssh("ssh_interface", "session_manager", "iam_instance_profile", "amicrypt-instance-store", "skip_profile_validation", true, "session_manager_port", 8765)

	t.Setenv("PATH", t.TempDir())
	r := newStepRun(t, raw)
	if (&stepPreflight{}).Run(context.Background(), r.state) != multistep.ActionHalt {
		t.Fatal("preflight passed without session-manager-plugin")
	}
	if err := r.state.Get("error").(error).Error(); !strings.Contains(err, "session-manager-plugin was not found") || !strings.Contains(err, "session-manager-working-with-install-plugin") {
		t.Errorf("error = %s", err)
	}

	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "session-manager-plugin"), []byte(fakePluginScript), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	argsFile := filepath.Join(t.TempDir(), "args")
	t.Setenv("PLUGIN_ARGS", argsFile)
	mark := srv.Emulator().CheckMark()
	r = newStepRun(t, raw)
	tunnel := &stepSSMTunnel{}
	r.run(&stepPreflight{}, &stepSourceAMIInfo{}, &stepNetwork{}, &stepKeyPair{}, &stepSecurityGroup{}, &stepRunInstance{}, tunnel)
	if port, err := instancePort(r.state); err != nil || port != 8765 {
		t.Errorf("communicator port = %d, %v; want the tunnel's 8765", port, err)
	}
	if host, err := instanceHost(r.state); err != nil || host != "localhost" {
		t.Errorf("communicator host = %q, %v", host, err)
	}
	var args []string
	deadline := time.Now().Add(10 * time.Second)
	for len(args) < 6 {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin did not run (args %q)\n%s", args, r.out.String())
		}
		data, _ := os.ReadFile(argsFile)
		args = strings.Split(strings.TrimSpace(string(data)), "\n")
		time.Sleep(20 * time.Millisecond)
	}
	start := ssmSrv.saw("AmazonSSM.StartSession")
	params, _ := json.Marshal(start["Parameters"])
	if start["Target"] != *r.b.instance.InstanceId || start["DocumentName"] != "AWS-StartPortForwardingSession" ||
		string(params) != `{"localPortNumber":["8765"],"portNumber":["22"]}` {
		t.Errorf("StartSession = %v", start)
	}
	if !strings.Contains(args[0], "packer-0123456789abcdef0") || args[1] != "us-east-1" || args[2] != "StartSession" || args[5] != fake.URL {
		t.Errorf("plugin args = %q", args)
	}
	r.cleanup()
	if ssmSrv.saw("AmazonSSM.TerminateSession") == nil {
		t.Error("the session was not terminated")
	}
	mustPass(t, srv, mark)
}
