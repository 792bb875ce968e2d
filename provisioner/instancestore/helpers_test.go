package instancestore

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"testing"
	"testing/fstest"
)

// fakeELF is the smallest ELF executable header debug/elf accepts, for a
// machine, optionally with a PT_INTERP program header (a dynamically linked
// binary). It stands for an agent binary where only its identity matters.
func fakeELF(t testing.TB, machine elf.Machine, dynamic bool) []byte {
	t.Helper()
	hdr := elf.Header64{
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(machine),
		Version:   uint32(elf.EV_CURRENT),
		Ehsize:    64,
		Phentsize: 56,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var progs []elf.Prog64
	if dynamic {
		progs = append(progs, elf.Prog64{Type: uint32(elf.PT_INTERP)})
		hdr.Phoff = 64
		hdr.Phnum = 1
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, hdr); err != nil {
		t.Fatal(err)
	}
	for _, p := range progs {
		if err := binary.Write(&buf, binary.LittleEndian, p); err != nil {
			t.Fatal(err)
		}
	}
	// A body, so the uploads of two architectures differ in more than a byte.
	buf.WriteString("amicrypt-agent test body for " + machine.String())
	return buf.Bytes()
}

// fakeAgents is an agent folder with a fake binary for every architecture.
func fakeAgents(t testing.TB) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	for arch, machine := range elfMachines {
		fsys[AgentDir+"/"+AgentFileName(arch)] = &fstest.MapFile{Data: fakeELF(t, machine, false), Mode: 0o755}
	}
	return fsys
}

// newProvisioner prepares a provisioner over agents with raw's fields.
func newProvisioner(t testing.TB, agents fstest.MapFS, raw map[string]interface{}) (*Provisioner, error) {
	t.Helper()
	p := &Provisioner{agents: agents}
	return p, p.Prepare(raw)
}
