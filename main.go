// Command packer-plugin-amicrypt is the amicrypt Packer plugin: the
// amicrypt-ebs builder, the amicrypt-copy post-processor and the
// amicrypt-instance-store provisioner.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"github.com/amicrypt/packer-plugin-amicrypt/builder/ebs"
	amicryptcopy "github.com/amicrypt/packer-plugin-amicrypt/post-processor/copy"
	"github.com/amicrypt/packer-plugin-amicrypt/provisioner/instancestore"
	"github.com/amicrypt/packer-plugin-amicrypt/version"
)

func main() {
	pps := plugin.NewSet()
	pps.RegisterBuilder("ebs", new(ebs.Builder))
	pps.RegisterPostProcessor("copy", new(amicryptcopy.PostProcessor))
	pps.RegisterProvisioner("instance-store", new(instancestore.Provisioner))
	pps.SetVersion(version.PluginVersion)
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}
