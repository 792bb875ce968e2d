package instancestore

import (
	"bytes"
	"debug/elf"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// embeddedAgents holds the amicrypt-agent binaries `make agent` builds into
// agent/ before the plugin is built. On a clean clone the folder holds only
// its README, and agentBinary says how to build the plugin with them.
//
//go:embed agent
var embeddedAgents embed.FS

// Architectures the agent is built for, as Go names them.
const (
	ArchAMD64 = "amd64"
	ArchARM64 = "arm64"
)

// Architectures lists every architecture the plugin embeds an agent for.
var Architectures = []string{ArchAMD64, ArchARM64}

// AgentDir is the folder, relative to this package, that `make agent` fills
// and //go:embed reads.
const AgentDir = "agent"

// AgentFileName is the embedded agent's file name for linux/arch.
func AgentFileName(arch string) string { return "amicrypt-agent-linux-" + arch }

// elfMachines are the ELF machine types each architecture's binary must have.
var elfMachines = map[string]elf.Machine{ArchAMD64: elf.EM_X86_64, ArchARM64: elf.EM_AARCH64}

// unameArchitectures maps `uname -m` to the agent's architecture.
var unameArchitectures = map[string]string{"x86_64": ArchAMD64, "amd64": ArchAMD64, "aarch64": ArchARM64, "arm64": ArchARM64}

// archFromUname returns the agent architecture of a `uname -m` answer.
func archFromUname(machine string) (string, error) {
	machine = strings.TrimSpace(machine)
	if arch, ok := unameArchitectures[machine]; ok {
		return arch, nil
	}
	return "", fmt.Errorf("the image's architecture is %q (uname -m), and amicrypt-agent is built for x86_64 (amd64) and aarch64 (arm64) Linux only", machine)
}

// MissingAgentError means the plugin was built without the agent for Arch.
type MissingAgentError struct {
	Arch string
}

func (e *MissingAgentError) Error() string {
	return fmt.Sprintf("this amicrypt plugin was built without amicrypt-agent for linux/%s, which it uploads into the image "+
		"(a plain `go build` embeds no agent); build the plugin with `make build`, which first cross-compiles ./cmd/amicrypt-agent "+
		"for linux/amd64 and linux/arm64 into provisioner/instancestore/agent/, or install a released plugin with `packer init`", e.Arch)
}

// agentBinary returns the agent for linux/arch from fsys (the embedded
// agents, or a test's), after checking that it is an ELF executable for
// that architecture.
func agentBinary(fsys fs.FS, arch string) ([]byte, error) {
	machine, ok := elfMachines[arch]
	if !ok {
		return nil, fmt.Errorf("no amicrypt-agent for architecture %q; the plugin embeds %s", arch, strings.Join(Architectures, " and "))
	}
	data, err := fs.ReadFile(fsys, path.Join(AgentDir, AgentFileName(arch)))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(data) == 0) {
		return nil, &MissingAgentError{Arch: arch}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the embedded amicrypt-agent for linux/%s: %w", arch, err)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("the embedded amicrypt-agent for linux/%s is not an ELF executable (%w); rebuild the plugin with `make build`", arch, err)
	}
	defer f.Close()
	if f.Machine != machine || (f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN) {
		return nil, fmt.Errorf("the embedded amicrypt-agent for linux/%s is a %s %s, not a %s executable; rebuild the plugin with `make build`", arch, f.Machine, f.Type, machine)
	}
	// The agent runs on whatever libc the image has, or none: it must be static.
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("the embedded amicrypt-agent for linux/%s is dynamically linked; it must be static (CGO_ENABLED=0): rebuild the plugin with `make build`", arch)
		}
	}
	return data, nil
}

// AgentBinary returns the amicrypt-agent embedded in this plugin for
// linux/arch (ArchAMD64 or ArchARM64), or a *MissingAgentError.
func AgentBinary(arch string) ([]byte, error) { return agentBinary(embeddedAgents, arch) }
