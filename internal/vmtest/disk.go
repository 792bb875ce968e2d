package vmtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// NewDisk makes a blank (sparse, all-zero) raw disk image of size bytes in
// the test's temporary directory: a fresh instance-store disk. A LUKS2
// volume needs 16 MiB for its header; 64 MiB leaves room for a file system.
func NewDisk(t testing.TB, size int64) Disk {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "disk-*.raw")
	if err != nil {
		t.Fatalf("vmtest: making a disk image: %v", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatalf("vmtest: sizing disk image %s to %d bytes: %v", f.Name(), size, err)
	}
	return Disk{Path: f.Name()}
}

// ContainsBytes tells whether the raw image at path holds needle anywhere,
// e.g. whether a plaintext marker written inside the guest reached the disk
// unencrypted.
func ContainsBytes(path string, needle []byte) (bool, error) {
	if len(needle) == 0 {
		return false, errors.New("ContainsBytes: the needle is empty; give the bytes to look for")
	}
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("searching disk image: %w", err)
	}
	defer f.Close()
	found, err := containsBytes(f, needle, 1<<20)
	if err != nil {
		return false, fmt.Errorf("searching disk image %s: %w", path, err)
	}
	return found, nil
}

// containsBytes reads r in chunks of the given size, keeping the last
// len(needle)-1 bytes of each so that a match across chunks is found.
func containsBytes(r io.Reader, needle []byte, chunk int) (bool, error) {
	buf := make([]byte, 0, chunk+len(needle)-1)
	for {
		n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if bytes.Contains(buf, needle) {
			return true, nil
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		keep := min(len(buf), len(needle)-1)
		copy(buf, buf[len(buf)-keep:])
		buf = buf[:keep]
	}
}

// LUKS2 on-disk constants (the LUKS2 on-disk format specification, section
// 2: the binary header).
const (
	luks2BinaryHeaderSize = 4096
	luks2MinHeaderSize    = 16 << 10
	luks2MaxHeaderSize    = 4 << 20
)

// luks2Magic starts every LUKS device: "LUKS" 0xBA 0xBE.
const luks2Magic = "LUKS\xba\xbe"

// LUKS2Magic returns the bytes that begin every LUKS device.
func LUKS2Magic() []byte { return []byte(luks2Magic) }

// LUKS2Header is the primary LUKS2 header of a disk image as found on the
// host: the binary header's fields and the JSON metadata. Its checksum has
// been verified.
type LUKS2Header struct {
	Version    uint16
	HeaderSize uint64 // binary header plus JSON area
	SeqID      uint64
	Label      string
	UUID       string
	Subsystem  string
	Checksum   string // the checksum algorithm, e.g. sha256
	// Metadata is the JSON area: keyslots, tokens, segments, digests,
	// config. JSON keeps it all.
	Metadata LUKS2Metadata
	JSON     json.RawMessage
}

// LUKS2Metadata is the part of the JSON metadata tests look at.
type LUKS2Metadata struct {
	Keyslots map[string]json.RawMessage `json:"keyslots"`
	Tokens   map[string]LUKS2Token      `json:"tokens"`
	Segments map[string]json.RawMessage `json:"segments"`
	Digests  map[string]json.RawMessage `json:"digests"`
}

// LUKS2Token is a token of the JSON metadata; Raw holds all of it, including
// fields of the token's own type.
type LUKS2Token struct {
	Type     string          `json:"type"`
	Keyslots []string        `json:"keyslots"`
	Raw      json.RawMessage `json:"-"`
}

// UnmarshalJSON keeps the raw token besides its common fields.
func (t *LUKS2Token) UnmarshalJSON(data []byte) error {
	type plain LUKS2Token
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*t = LUKS2Token(p)
	t.Raw = bytes.Clone(data)
	return nil
}

// ReadLUKS2Header reads and checks the primary LUKS2 header at the start of a
// raw disk image: magic, version 2, a plausible size, its checksum (sha256
// over the header with the checksum field zeroed, as cryptsetup computes it)
// and its JSON. This is a small reader for tests: it checks structure, not
// keyslots.
func ReadLUKS2Header(path string) (*LUKS2Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading a LUKS2 header: %w", err)
	}
	defer f.Close()
	return readLUKS2Header(f, filepath.Base(path))
}

func readLUKS2Header(r io.ReaderAt, name string) (*LUKS2Header, error) {
	bin := make([]byte, luks2BinaryHeaderSize)
	if _, err := r.ReadAt(bin, 0); err != nil {
		return nil, fmt.Errorf("%s: reading the LUKS2 binary header: %w", name, err)
	}
	if string(bin[:6]) != luks2Magic {
		return nil, fmt.Errorf("%s: no LUKS magic at offset 0 (found % x)", name, bin[:6])
	}
	h := &LUKS2Header{
		Version:    binary.BigEndian.Uint16(bin[6:8]),
		HeaderSize: binary.BigEndian.Uint64(bin[8:16]),
		SeqID:      binary.BigEndian.Uint64(bin[16:24]),
		Label:      cString(bin[24:72]),
		Checksum:   cString(bin[72:104]),
		UUID:       cString(bin[168:208]),
		Subsystem:  cString(bin[208:256]),
	}
	if h.Version != 2 {
		return nil, fmt.Errorf("%s: LUKS version %d, not 2", name, h.Version)
	}
	if h.HeaderSize < luks2MinHeaderSize || h.HeaderSize > luks2MaxHeaderSize || h.HeaderSize%4096 != 0 {
		return nil, fmt.Errorf("%s: implausible LUKS2 header size %d", name, h.HeaderSize)
	}
	if h.Checksum != "sha256" {
		return nil, fmt.Errorf("%s: LUKS2 header checksum algorithm %q; this reader checks sha256 only", name, h.Checksum)
	}
	whole := make([]byte, h.HeaderSize)
	if _, err := r.ReadAt(whole, 0); err != nil {
		return nil, fmt.Errorf("%s: reading the %d-byte LUKS2 header: %w", name, h.HeaderSize, err)
	}
	// The checksum field is bytes 448..511; it is computed with them zeroed.
	const csumOff, csumLen = 448, 64
	stored := bytes.Clone(whole[csumOff : csumOff+sha256.Size])
	clear(whole[csumOff : csumOff+csumLen])
	if sum := sha256.Sum256(whole); !bytes.Equal(sum[:], stored) {
		return nil, fmt.Errorf("%s: LUKS2 header checksum mismatch (stored %x, computed %x)", name, stored, sum)
	}
	area := whole[luks2BinaryHeaderSize:]
	if i := bytes.IndexByte(area, 0); i >= 0 {
		area = area[:i]
	}
	h.JSON = bytes.Clone(area)
	if err := json.Unmarshal(h.JSON, &h.Metadata); err != nil {
		return nil, fmt.Errorf("%s: LUKS2 JSON metadata: %w", name, err)
	}
	return h, nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
