// Package luks2 reads LUKS2 headers without cryptsetup or device-mapper: it
// parses and checks both binary header copies and the JSON metadata, and
// verifies a passphrase against a keyslot. It never writes.
//
// The pure-Go LUKS libraries are not available to this project, and no
// maintained library reads LUKS2 alone, so this small read-only checker is
// hand-written after the LUKS2 on-disk format specification (version 1.1.x).
// Tests use it to check what cryptsetup wrote; the fuzz targets keep it
// panic-free on any input.
package luks2

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Binary header layout (all integers big-endian).
const (
	binaryHeaderSize = 4096
	magicLen         = 6
	offVersion       = 6
	offHdrSize       = 8
	offSeqID         = 16
	offLabel         = 24
	labelLen         = 48
	offCsumAlg       = 72
	csumAlgLen       = 32
	offSalt          = 104
	saltLen          = 64
	offUUID          = 168
	uuidLen          = 40
	offSubsystem     = 208
	subsystemLen     = 48
	offHdrOffset     = 256
	offCsum          = 448
	csumLen          = 64
)

var (
	primaryMagic   = []byte{'L', 'U', 'K', 'S', 0xba, 0xbe}
	secondaryMagic = []byte{'S', 'K', 'U', 'L', 0xba, 0xbe}
)

// headerSizes are the allowed sizes of one header copy (binary header plus
// JSON area); the secondary copy starts at one of them.
var headerSizes = []uint64{
	16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20,
}

// ErrNotLUKS2 means the bytes hold no LUKS2 header (no magic at the start and
// no secondary copy at any allowed offset).
var ErrNotLUKS2 = errors.New("no LUKS2 header")

// BinaryHeader is one copy of the LUKS2 binary header.
type BinaryHeader struct {
	Secondary   bool   // the copy carries the secondary magic "SKUL\xba\xbe"
	Version     uint16 // 2
	HeaderSize  uint64 // binary header plus JSON area, bytes
	SeqID       uint64 // incremented on every metadata update
	Label       string
	ChecksumAlg string // e.g. "sha256"
	Salt        []byte
	UUID        string
	Subsystem   string
	Offset      uint64 // where this copy lives on the device
	Checksum    []byte // the checksum as stored (digest size bytes)
}

// HasMagic reports whether b starts with the primary or secondary LUKS
// magic. It is a cheap probe; it says nothing about the header's validity.
func HasMagic(b []byte) bool {
	return len(b) >= magicLen && (bytes.Equal(b[:magicLen], primaryMagic) || bytes.Equal(b[:magicLen], secondaryMagic))
}

// FindHeader reports whether b (the start of a device) holds the magic of a
// LUKS header copy where one may be: the primary at 0, a secondary at any
// allowed header size. A damaged primary still shows through its secondary.
func FindHeader(b []byte) bool {
	if HasMagic(b) {
		return true
	}
	for _, off := range headerSizes {
		if off < uint64(len(b)) && HasMagic(b[off:]) {
			return true
		}
	}
	return false
}

// cString returns the bytes up to the first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func checksumHash(alg string) (func() hash.Hash, error) {
	switch alg {
	case "sha256":
		return sha256.New, nil
	case "sha1":
		return sha1.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("checksum algorithm %q is not supported (sha1, sha256, sha512)", alg)
}

// ParseBinaryHeader parses the first 4096 bytes of a header copy. It checks
// the magic, the version and the header size, not the checksum (which covers
// the JSON area too; see ReadCopy).
func ParseBinaryHeader(b []byte) (*BinaryHeader, error) {
	if len(b) < binaryHeaderSize {
		return nil, fmt.Errorf("binary header: %d bytes, want %d", len(b), binaryHeaderSize)
	}
	h := &BinaryHeader{}
	switch {
	case bytes.Equal(b[:magicLen], primaryMagic):
	case bytes.Equal(b[:magicLen], secondaryMagic):
		h.Secondary = true
	default:
		return nil, ErrNotLUKS2
	}
	h.Version = binary.BigEndian.Uint16(b[offVersion:])
	if h.Version != 2 {
		return nil, fmt.Errorf("binary header: version %d, this checker reads LUKS2 only", h.Version)
	}
	h.HeaderSize = binary.BigEndian.Uint64(b[offHdrSize:])
	validSize := false
	for _, s := range headerSizes {
		validSize = validSize || s == h.HeaderSize
	}
	if !validSize {
		return nil, fmt.Errorf("binary header: header size %d is not one LUKS2 allows (16 KiB to 4 MiB, a power of two)", h.HeaderSize)
	}
	h.SeqID = binary.BigEndian.Uint64(b[offSeqID:])
	h.Label = cString(b[offLabel : offLabel+labelLen])
	h.ChecksumAlg = cString(b[offCsumAlg : offCsumAlg+csumAlgLen])
	h.Salt = append([]byte(nil), b[offSalt:offSalt+saltLen]...)
	h.UUID = cString(b[offUUID : offUUID+uuidLen])
	h.Subsystem = cString(b[offSubsystem : offSubsystem+subsystemLen])
	h.Offset = binary.BigEndian.Uint64(b[offHdrOffset:])
	newHash, err := checksumHash(h.ChecksumAlg)
	if err != nil {
		return nil, fmt.Errorf("binary header: %w", err)
	}
	h.Checksum = append([]byte(nil), b[offCsum:offCsum+newHash().Size()]...)
	return h, nil
}

// Copy is one verified header copy: its binary header and JSON text.
type Copy struct {
	Header *BinaryHeader
	JSON   []byte // the JSON area up to its terminating NUL
}

// ReadCopy reads and verifies the header copy at offset: magic, version,
// size, the recorded offset and the checksum over the binary header and JSON
// area (with the checksum field zeroed).
func ReadCopy(r io.ReaderAt, offset uint64) (*Copy, error) {
	first := make([]byte, binaryHeaderSize)
	if _, err := r.ReadAt(first, int64(offset)); err != nil {
		return nil, fmt.Errorf("reading the header at %d: %w", offset, err)
	}
	h, err := ParseBinaryHeader(first)
	if err != nil {
		return nil, err
	}
	if h.Offset != offset {
		return nil, fmt.Errorf("header at %d records offset %d", offset, h.Offset)
	}
	area := make([]byte, h.HeaderSize)
	copy(area, first)
	if _, err := r.ReadAt(area[binaryHeaderSize:], int64(offset)+binaryHeaderSize); err != nil {
		return nil, fmt.Errorf("reading the JSON area at %d: %w", offset+binaryHeaderSize, err)
	}
	newHash, _ := checksumHash(h.ChecksumAlg) // checked by ParseBinaryHeader
	sum := newHash()
	clear(area[offCsum : offCsum+csumLen])
	sum.Write(area)
	if subtle.ConstantTimeCompare(sum.Sum(nil), h.Checksum) != 1 {
		return nil, fmt.Errorf("header at %d: %s checksum mismatch", offset, h.ChecksumAlg)
	}
	js := area[binaryHeaderSize:]
	if i := bytes.IndexByte(js, 0); i >= 0 {
		js = js[:i]
	}
	return &Copy{Header: h, JSON: js}, nil
}

// Volume is what a LUKS2 device's header says.
type Volume struct {
	// Primary and Secondary are the copies that verified (nil when damaged or
	// absent). Active is the one in force: the valid copy with the higher
	// sequence ID, as cryptsetup picks it.
	Primary, Secondary *Copy
	Active             *Copy
	Metadata           *Metadata
}

// UUID, Label and Subsystem of the active header.
func (v *Volume) UUID() string      { return v.Active.Header.UUID }
func (v *Volume) Label() string     { return v.Active.Header.Label }
func (v *Volume) Subsystem() string { return v.Active.Header.Subsystem }

// Read reads a LUKS2 header from r: both copies, each checked, and the JSON
// metadata of the one in force. It fails with ErrNotLUKS2 when neither copy
// is found.
func Read(r io.ReaderAt) (*Volume, error) {
	v := &Volume{}
	primary, primaryErr := ReadCopy(r, 0)
	if primaryErr == nil && !primary.Header.Secondary {
		v.Primary = primary
	}
	secondaryErr := ErrNotLUKS2
	offsets := headerSizes
	if v.Primary != nil {
		offsets = []uint64{v.Primary.Header.HeaderSize}
	}
	for _, off := range offsets {
		c, err := ReadCopy(r, off)
		if err == nil && c.Header.Secondary {
			v.Secondary, secondaryErr = c, nil
			break
		}
		if err != nil && !errors.Is(err, ErrNotLUKS2) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			secondaryErr = err
		}
	}
	switch {
	case v.Primary == nil && v.Secondary == nil:
		if errors.Is(primaryErr, ErrNotLUKS2) && errors.Is(secondaryErr, ErrNotLUKS2) {
			return nil, ErrNotLUKS2
		}
		return nil, fmt.Errorf("no valid LUKS2 header copy: primary: %w; secondary: %w", primaryErr, secondaryErr)
	case v.Secondary == nil || (v.Primary != nil && v.Primary.Header.SeqID >= v.Secondary.Header.SeqID):
		v.Active = v.Primary
	default:
		v.Active = v.Secondary
	}
	md, err := ParseMetadata(v.Active.JSON)
	if err != nil {
		return nil, err
	}
	v.Metadata = md
	return v, nil
}
