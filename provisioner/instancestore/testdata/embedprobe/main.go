// Command embedprobe writes the amicrypt-agent binaries embedded in its own
// build of the provisioner package to DIR/ARCH, so a test can prove what a
// plugin built the same way carries. Built only by the provisioner's tests.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/amicrypt/packer-plugin-amicrypt/provisioner/instancestore"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: embedprobe DIR")
		os.Exit(2)
	}
	for _, arch := range instancestore.Architectures {
		data, err := instancestore.AgentBinary(arch)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := os.WriteFile(filepath.Join(os.Args[1], arch), data, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
