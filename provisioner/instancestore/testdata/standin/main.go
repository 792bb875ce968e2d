// Command standin stands in for amicrypt-agent in the provisioner's tests of
// embedding and uploading, until the real agent is built into the plugin.
// It answers `version` like the agent and refuses everything else.
package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "version" {
		fmt.Printf("amicrypt-agent stand-in (%s/%s)\n", runtime.GOOS, runtime.GOARCH)
		return
	}
	fmt.Fprintln(os.Stderr, "amicrypt-agent stand-in: only `version` is implemented")
	os.Exit(2)
}
