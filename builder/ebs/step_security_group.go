package ebs

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/uuid"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepSecurityGroup creates a temporary security group when the
// communicator connects and no group is given. Its one rule admits the
// communicator port from temporary_security_group_source_cidrs, else from
// this machine's public IP (as amazon-ebs's
// temporary_security_group_source_public_ip) when the instance is reached
// at a public address, else from the VPC's address ranges. It is never
// open to 0.0.0.0/0 unless the template says so. A session_manager tunnel
// needs no rule at all.
type stepSecurityGroup struct{}

// Where this machine's public IP is asked, as amazon-ebs does;
// AMICRYPT_CHECK_IP_URL points elsewhere (a proxy's echo service, a test).
const (
	defaultCheckIPURL = "https://checkip.amazonaws.com"
	EnvCheckIPURL     = "AMICRYPT_CHECK_IP_URL"
)

func needsTempSecurityGroup(c *Config) bool {
	return (c.Comm.Type == "ssh" || c.Comm.Type == "winrm") && len(c.SecurityGroupIDs) == 0 && c.SecurityGroupFilter.Empty()
}

// connectsPrivately reports whether the communicator reaches the instance at
// a private address.
func (b *buildState) connectsPrivately() bool {
	c := b.config
	switch c.SSHInterface {
	case "private_ip", "private_dns":
		return true
	case "public_ip", "public_dns", "ipv6", "session_manager":
		return false
	}
	if c.AssociatePublicIPAddress != nil {
		return !*c.AssociatePublicIPAddress
	}
	return !b.publicSubnet
}

// sourceCIDRs are the sources the temporary group admits, and why.
func (b *buildState) sourceCIDRs(ctx context.Context) ([]string, string, error) {
	c := b.config
	switch {
	case len(c.TemporarySGSourceCidrs) > 0:
		return c.TemporarySGSourceCidrs, "temporary_security_group_source_cidrs", nil
	case c.SSHInterface == "session_manager":
		return nil, "no rule: the session_manager tunnel connects from inside", nil
	case c.TemporarySGSourcePublicIp || !b.connectsPrivately():
		ip, err := publicIP(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("the temporary security group admits only this machine's public IP, which could not be found (%w); set temporary_security_group_source_cidrs to the addresses Packer connects from", err)
		}
		bits := 128
		if ip.To4() != nil {
			ip, bits = ip.To4(), 32
		}
		return []string{fmt.Sprintf("%s/%d", ip, bits)}, "this machine's public IP", nil
	case b.vpc != nil:
		return ebs.VPCCIDRs(b.vpc), "the VPC's address ranges (the instance is reached at a private address)", nil
	}
	return nil, "", fmt.Errorf("the instance is reached at a private address but its VPC is unknown; set temporary_security_group_source_cidrs")
}

// publicIP asks checkip for this machine's public address.
func publicIP(ctx context.Context) (net.IP, error) {
	url := os.Getenv(EnvCheckIPURL)
	if url == "" {
		url = defaultCheckIPURL
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	ip := net.ParseIP(strings.TrimSpace(string(body)))
	if ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("GET %s: %q is not an IP address", url, strings.TrimSpace(string(body)))
	}
	return ip, nil
}

func (s *stepSecurityGroup) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	if !needsTempSecurityGroup(c) {
		return multistep.ActionContinue
	}
	sources, why, err := b.sourceCIDRs(ctx)
	if err != nil {
		return halt(state, err)
	}
	port := int32(c.Comm.Port())
	groupID, err := ebs.CreateSecurityGroup(ctx, b.clients.EC2(c.RawRegion), ebs.SecurityGroupSpec{
		Name: "packer_amicrypt_" + uuid.TimeOrderedUUID(), Description: "Temporary group for amicrypt-ebs",
		VpcID: b.vpcID(), Port: port, Sources: sources, Tags: b.leaseTags(b.tags.run),
	})
	b.tempSGID = groupID // set even on error: a group made but not opened is ours to delete
	b.track(c.RawRegion, groupID)
	if err != nil {
		return halt(state, err)
	}
	b.securityGroups = []string{groupID}
	if len(sources) == 0 {
		detail(ui(state), fmt.Sprintf("Created temporary security group %s (%s)", groupID, why))
	} else {
		detail(ui(state), fmt.Sprintf("Created temporary security group %s: port %d from %s (%s)", groupID, port, strings.Join(sources, ", "), why))
	}
	return multistep.ActionContinue
}

func (s *stepSecurityGroup) Cleanup(state multistep.StateBag) {
	b := getBuild(state)
	if b.tempSGID == "" {
		return
	}
	ctx, cancel := cleanupContext()
	defer cancel()
	// The group stays in use until the instance is gone; the run step's
	// cleanup waits for termination first, and DeleteSecurityGroup retries
	// while the group is still held.
	if err := ebs.DeleteSecurityGroup(ctx, b.clients.EC2(b.config.RawRegion), b.config.PollingConfig, b.tempSGID); err != nil {
		ui(state).Error(fmt.Sprintf("%v (delete it by hand)", err))
		return
	}
	detail(ui(state), "Deleted temporary security group "+b.tempSGID)
	b.untrack(b.config.RawRegion, b.tempSGID)
	b.tempSGID = ""
}
