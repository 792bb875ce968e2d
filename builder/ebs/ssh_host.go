package ebs

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// instanceHost is the address the communicator connects to, as amazon-ebs
// chooses it: ssh_host when set; localhost through a session_manager
// tunnel; the address ssh_interface names; otherwise the public IP, else
// (in a VPC, after a retry) the private IP. An address EC2 hasn't assigned
// yet is asked for again.
func instanceHost(state multistep.StateBag) (string, error) {
	b := getBuild(state)
	c := b.config
	if h := c.Comm.Host(); h != "" {
		return h, nil
	}
	if c.SSHInterface == "session_manager" {
		return "localhost", nil
	}
	const tries = 3
	for try := 1; ; try++ {
		inst := b.instance
		if inst == nil {
			return "", fmt.Errorf("no instance")
		}
		if host := hostOf(inst, c.SSHInterface, try == tries || b.connectsPrivately()); host != "" {
			return host, nil
		}
		if try == tries {
			what := c.SSHInterface
			if what == "" {
				what = "public or private IP"
			}
			return "", fmt.Errorf("instance %s has no %s; check ssh_interface and associate_public_ip_address", aws.ToString(inst.InstanceId), what)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		fresh, err := ebs.FindInstanceByID(ctx, b.clients.EC2(c.RawRegion), aws.ToString(inst.InstanceId))
		cancel()
		if err != nil {
			return "", err
		}
		b.instance = fresh
		time.Sleep(min(time.Second, b.config.PollingConfig.Delay()))
	}
}

// hostOf reads the address iface names from an instance; with no iface, the
// public IP, or the private one when privateOK.
func hostOf(inst *types.Instance, iface string, privateOK bool) string {
	switch iface {
	case "public_ip":
		return aws.ToString(inst.PublicIpAddress)
	case "private_ip":
		return aws.ToString(inst.PrivateIpAddress)
	case "public_dns":
		return aws.ToString(inst.PublicDnsName)
	case "private_dns":
		return aws.ToString(inst.PrivateDnsName)
	case "ipv6":
		return aws.ToString(inst.Ipv6Address)
	}
	if ip := aws.ToString(inst.PublicIpAddress); ip != "" {
		return ip
	}
	if privateOK {
		return aws.ToString(inst.PrivateIpAddress)
	}
	return ""
}

// instancePort is the communicator port: the local end of the
// session_manager tunnel, or the configured port.
func instancePort(state multistep.StateBag) (int, error) {
	b := getBuild(state)
	if b.config.SSHInterface != "session_manager" {
		return b.config.Comm.Port(), nil
	}
	if b.sessionPort == 0 {
		return 0, fmt.Errorf("the session_manager tunnel has no local port")
	}
	return b.sessionPort, nil
}
