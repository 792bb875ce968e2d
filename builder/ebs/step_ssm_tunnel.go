package ebs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packernet "github.com/hashicorp/packer-plugin-sdk/net"
	"github.com/hashicorp/packer-plugin-sdk/shell-local/localexec"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// The session_manager tunnel, as amazon-ebs opens it: an SSM
// AWS-StartPortForwardingSession to the instance's communicator port,
// carried by the session-manager-plugin (AWS's, which the AWS CLI also
// uses) from a local port on 127.0.0.1. The plugin is not a library: it is
// run as a program, with the session StartSession returned.

// sessionManagerPlugin is the program the tunnel runs.
const sessionManagerPlugin = "session-manager-plugin"

// sessionManagerPluginHelp says how to install it.
const sessionManagerPluginHelp = "install AWS's Session Manager plugin (https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html) so that session-manager-plugin is on the PATH of the machine running Packer"

// findSessionManagerPlugin checks the plugin is installed, before anything
// is launched.
func findSessionManagerPlugin() (string, error) {
	path, err := exec.LookPath(sessionManagerPlugin)
	if err != nil {
		return "", fmt.Errorf(`ssh_interface = "session_manager": %s was not found (%w); %s`, sessionManagerPlugin, err, sessionManagerPluginHelp)
	}
	return path, nil
}

// portForwardingDocument is the SSM document of a port forwarding session.
const portForwardingDocument = "AWS-StartPortForwardingSession"

type stepSSMTunnel struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	sessionID string
}

func (s *stepSSMTunnel) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	if c.SSHInterface != "session_manager" {
		return multistep.ActionContinue
	}
	plugin, err := findSessionManagerPlugin()
	if err != nil {
		return halt(state, err)
	}
	if c.PauseBeforeSSM > 0 {
		ui(state).Say(fmt.Sprintf("pause_before_ssm: waiting %s for the SSM agent…", c.PauseBeforeSSM))
		select {
		case <-time.After(c.PauseBeforeSSM):
		case <-ctx.Done():
			return halt(state, ctx.Err())
		}
	}
	lo, hi := 8000, 9000
	if c.SessionManagerPort != 0 {
		lo, hi = c.SessionManagerPort, c.SessionManagerPort+1
	}
	l, err := packernet.ListenRangeConfig{Min: lo, Max: hi, Addr: "127.0.0.1", Network: "tcp"}.Listen(ctx)
	if err != nil {
		return halt(state, fmt.Errorf("session_manager_port: no free local port in %d–%d: %w", lo, hi-1, err))
	}
	b.sessionPort = l.Port
	_ = l.Close()
	id := state.Get("instance_id").(string)
	tunnelCtx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	client := b.clients.SSM(c.RawRegion)
	in := &ssm.StartSessionInput{
		Target: aws.String(id), DocumentName: aws.String(portForwardingDocument),
		Parameters: map[string][]string{"portNumber": {strconv.Itoa(c.Comm.Port())}, "localPortNumber": {strconv.Itoa(b.sessionPort)}},
	}
	ui(state).Say(fmt.Sprintf("Opening an SSM port forwarding session: 127.0.0.1:%d → %s:%d", b.sessionPort, id, c.Comm.Port()))
	go func() {
		defer close(s.done)
		s.keepTunnel(tunnelCtx, state, client, plugin, in)
	}()
	return multistep.ActionContinue
}

// keepTunnel runs sessions until ctx ends: the plugin exits when a session
// drops (an instance reboot during provisioning), and a new one is opened.
func (s *stepSSMTunnel) keepTunnel(ctx context.Context, state multistep.StateBag, client SSMAPI, plugin string, in *ssm.StartSessionInput) {
	b := getBuild(state)
	region := b.config.RawRegion
	for ctx.Err() == nil {
		var out *ssm.StartSessionOutput
		_, err := ebs.Retry(ctx, 60, func(try int) time.Duration { return min(time.Duration(try)*time.Second, 10*time.Second) },
			func(err error) bool { return ebs.IsCode(err, "TargetNotConnected") }, nil,
			func(ctx context.Context) error {
				var err error
				out, err = client.StartSession(ctx, in)
				return err
			})
		if err != nil {
			if ctx.Err() == nil {
				ui(state).Error(fmt.Sprintf("ssm:StartSession to %s: %v (the instance needs the SSM agent and an instance profile allowing SSM)", aws.ToString(in.Target), err))
			}
			return
		}
		s.mu.Lock()
		s.sessionID = aws.ToString(out.SessionId)
		s.mu.Unlock()
		args, err := pluginArgs(out, in, region, ssmEndpoint(region))
		if err != nil {
			ui(state).Error(err.Error())
			return
		}
		cmd := exec.CommandContext(ctx, plugin, args...)
		cmd.Env = os.Environ()
		detail(ui(state), "Session "+aws.ToString(out.SessionId)+" started")
		if err := localexec.RunAndStream(cmd, ui(state), nil); err != nil && ctx.Err() == nil {
			ui(state).Error(fmt.Sprintf("%s: %v", sessionManagerPlugin, err))
		}
		s.terminate(client)
		if ctx.Err() == nil {
			time.Sleep(time.Second)
		}
	}
}

// pluginArgs are the arguments the AWS CLI gives session-manager-plugin:
// the session, the region, the operation, the profile, the request and the
// SSM endpoint.
func pluginArgs(out *ssm.StartSessionOutput, in *ssm.StartSessionInput, region, endpoint string) ([]string, error) {
	session, err := json.Marshal(map[string]string{"SessionId": aws.ToString(out.SessionId), "TokenValue": aws.ToString(out.TokenValue), "StreamUrl": aws.ToString(out.StreamUrl)})
	if err != nil {
		return nil, err
	}
	request, err := json.Marshal(map[string]interface{}{"Target": aws.ToString(in.Target), "DocumentName": aws.ToString(in.DocumentName), "Parameters": in.Parameters})
	if err != nil {
		return nil, err
	}
	return []string{string(session), region, "StartSession", "", string(request), endpoint}, nil
}

// ssmEndpoint is the SSM endpoint the plugin reports to: AWS_ENDPOINT_URL_SSM
// or AWS_ENDPOINT_URL when set (as the SDK), else the region's.
func ssmEndpoint(region string) string {
	for _, k := range []string{"AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return "https://ssm." + region + ".amazonaws.com"
}

// terminate ends the current session, if any.
func (s *stepSSMTunnel) terminate(client SSMAPI) {
	s.mu.Lock()
	id := s.sessionID
	s.sessionID = ""
	s.mu.Unlock()
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = client.TerminateSession(ctx, &ssm.TerminateSessionInput{SessionId: aws.String(id)})
}

func (s *stepSSMTunnel) Cleanup(state multistep.StateBag) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
	}
	s.terminate(getBuild(state).clients.SSM(getBuild(state).config.RawRegion))
	s.cancel = nil
}
