package ebs

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepGetPassword gets the Windows administrator password for the WinRM
// communicator when none is given, as amazon-ebs: GetPasswordData until
// EC2 has it (AWS says up to 15 minutes), decrypted with the key pair's
// private key, for at most windows_password_timeout.
type stepGetPassword struct{}

// passwordPollDelay is how often GetPasswordData is asked (amazon-ebs: 5 s).
const passwordPollDelay = 5 * time.Second

func (s *stepGetPassword) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	if c.Comm.Type != "winrm" || c.Comm.WinRMPassword != "" {
		return multistep.ActionContinue
	}
	id := state.Get("instance_id").(string)
	ui(state).Say(fmt.Sprintf("Waiting for the Windows password of %s (up to %s)…", id, c.WindowsPasswordTimeout))
	password, err := ebs.WaitWindowsPassword(ctx, b.clients.EC2(c.RawRegion), id, c.Comm.SSHPrivateKey,
		min(passwordPollDelay, c.PollingConfig.Delay()), c.WindowsPasswordTimeout)
	if err != nil {
		return halt(state, fmt.Errorf("windows_password_timeout: %w", err))
	}
	packersdk.LogSecretFilter.Set(password)
	c.Comm.WinRMPassword = password
	state.Put("winrm_password", password)
	detail(ui(state), "Windows password retrieved")
	return multistep.ActionContinue
}

func (s *stepGetPassword) Cleanup(multistep.StateBag) {}
