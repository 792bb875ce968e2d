package luks2

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// Limits that keep a hostile header from making the checker allocate or
// compute without bound.
const (
	maxKeySize    = 512      // bytes of a volume or keyslot key
	maxStripes    = 65536    // anti-forensic stripes
	maxAreaSize   = 64 << 20 // bytes of one keyslot area
	maxIterations = 1 << 26  // PBKDF2 iterations
	maxArgonMem   = 4 << 20  // KiB of Argon2 memory (4 GiB)
	maxArgonTime  = 64
	maxSlotID     = 31 // LUKS2 has 32 keyslots at most
)

// Number is a JSON integer written as a decimal string, as LUKS2 writes
// offsets and sizes ("16777216").
type Number uint64

// UnmarshalJSON accepts "123" (and, leniently, 123).
func (n *Number) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var u uint64
		if err2 := json.Unmarshal(b, &u); err2 != nil {
			return fmt.Errorf("want a decimal string, got %s", truncate(b))
		}
		*n = Number(u)
		return nil
	}
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("want a decimal string, got %q", s)
	}
	*n = Number(u)
	return nil
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// Metadata is the JSON area of a LUKS2 header.
type Metadata struct {
	Keyslots map[string]Keyslot `json:"keyslots"`
	Tokens   map[string]Token   `json:"tokens"`
	Segments map[string]Segment `json:"segments"`
	Digests  map[string]Digest  `json:"digests"`
	Config   Config             `json:"config"`
}

// Keyslot is one LUKS2 keyslot.
type Keyslot struct {
	Type     string `json:"type"` // "luks2"
	KeySize  int    `json:"key_size"`
	AF       AF     `json:"af"`
	Area     Area   `json:"area"`
	KDF      KDF    `json:"kdf"`
	Priority *int   `json:"priority,omitempty"`
}

// AF is the anti-forensic splitter of a keyslot.
type AF struct {
	Type    string `json:"type"` // "luks1"
	Stripes int    `json:"stripes"`
	Hash    string `json:"hash"`
}

// Area is where a keyslot's split key lives and how it is encrypted.
type Area struct {
	Type       string `json:"type"` // "raw"
	Offset     Number `json:"offset"`
	Size       Number `json:"size"`
	Encryption string `json:"encryption"` // "aes-xts-plain64"
	KeySize    int    `json:"key_size"`
}

// KDF derives the keyslot key from a passphrase.
type KDF struct {
	Type       string `json:"type"` // pbkdf2, argon2i, argon2id
	Hash       string `json:"hash,omitempty"`
	Iterations int    `json:"iterations,omitempty"`
	Time       int    `json:"time,omitempty"`
	Memory     int    `json:"memory,omitempty"`
	CPUs       int    `json:"cpus,omitempty"`
	Salt       []byte `json:"salt"` // base64 in JSON
}

// Token is a LUKS2 token: its type, the keyslots it is assigned to, and its
// whole JSON object, compacted (tokens carry type-specific fields).
type Token struct {
	Type     string
	Keyslots []string
	Raw      json.RawMessage
}

// UnmarshalJSON keeps the raw object besides type and keyslots.
func (t *Token) UnmarshalJSON(b []byte) error {
	var head struct {
		Type     string   `json:"type"`
		Keyslots []string `json:"keyslots"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	var raw bytes.Buffer
	if err := json.Compact(&raw, b); err != nil {
		return err
	}
	t.Type, t.Keyslots, t.Raw = head.Type, head.Keyslots, raw.Bytes()
	return nil
}

// Segment is a data segment.
type Segment struct {
	Type       string `json:"type"` // "crypt"
	Offset     Number `json:"offset"`
	Size       string `json:"size"` // bytes or "dynamic"
	IVTweak    Number `json:"iv_tweak"`
	Encryption string `json:"encryption"`
	SectorSize int    `json:"sector_size"`
}

// Digest verifies a volume key.
type Digest struct {
	Type       string   `json:"type"` // "pbkdf2"
	Keyslots   []string `json:"keyslots"`
	Segments   []string `json:"segments"`
	Hash       string   `json:"hash"`
	Iterations int      `json:"iterations"`
	Salt       []byte   `json:"salt"`
	Digest     []byte   `json:"digest"`
}

// Config is the header's config object.
type Config struct {
	JSONSize     Number   `json:"json_size"`
	KeyslotsSize Number   `json:"keyslots_size"`
	Flags        []string `json:"flags,omitempty"`
	Requirements *struct {
		Mandatory []string `json:"mandatory,omitempty"`
	} `json:"requirements,omitempty"`
}

// ParseMetadata parses and checks a LUKS2 JSON area (also what
// `cryptsetup luksDump --dump-json-metadata` prints): object IDs are small
// decimal numbers, references point at objects that exist, and sizes stay
// within the format's limits.
func ParseMetadata(b []byte) (*Metadata, error) {
	var md Metadata
	if err := json.Unmarshal(b, &md); err != nil {
		return nil, fmt.Errorf("LUKS2 metadata: %w", err)
	}
	if err := md.validate(); err != nil {
		return nil, fmt.Errorf("LUKS2 metadata: %w", err)
	}
	return &md, nil
}

func validID(id string) bool {
	n, err := strconv.Atoi(id)
	return err == nil && n >= 0 && n <= maxSlotID && strconv.Itoa(n) == id
}

func (md *Metadata) validate() error {
	for id, ks := range md.Keyslots {
		if !validID(id) {
			return fmt.Errorf("keyslots: %q is not a keyslot number 0-%d", id, maxSlotID)
		}
		if ks.KeySize < 1 || ks.KeySize > maxKeySize {
			return fmt.Errorf("keyslots.%s.key_size: %d out of range 1-%d", id, ks.KeySize, maxKeySize)
		}
		if ks.Area.Size > maxAreaSize || ks.Area.Offset > 1<<50 {
			return fmt.Errorf("keyslots.%s.area: offset %d size %d out of range", id, ks.Area.Offset, ks.Area.Size)
		}
	}
	for id, t := range md.Tokens {
		if !validID(id) {
			return fmt.Errorf("tokens: %q is not a token number 0-%d", id, maxSlotID)
		}
		if t.Type == "" {
			return fmt.Errorf("tokens.%s.type: missing", id)
		}
		for _, ks := range t.Keyslots {
			if _, ok := md.Keyslots[ks]; !ok {
				return fmt.Errorf("tokens.%s.keyslots: keyslot %q does not exist", id, ks)
			}
		}
	}
	for id := range md.Segments {
		if _, err := strconv.ParseUint(id, 10, 32); err != nil {
			return fmt.Errorf("segments: %q is not a segment number", id)
		}
	}
	for id, d := range md.Digests {
		if _, err := strconv.ParseUint(id, 10, 32); err != nil {
			return fmt.Errorf("digests: %q is not a digest number", id)
		}
		for _, ks := range d.Keyslots {
			if _, ok := md.Keyslots[ks]; !ok {
				return fmt.Errorf("digests.%s.keyslots: keyslot %q does not exist", id, ks)
			}
		}
		for _, sg := range d.Segments {
			if _, ok := md.Segments[sg]; !ok {
				return fmt.Errorf("digests.%s.segments: segment %q does not exist", id, sg)
			}
		}
	}
	return nil
}

// SortedIDs returns the keys of a LUKS2 object map in numeric order.
func SortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, _ := strconv.Atoi(ids[i])
		b, _ := strconv.Atoi(ids[j])
		return a < b
	})
	return ids
}

// TokensOfType returns the IDs of the tokens of type typ, in numeric order.
func (md *Metadata) TokensOfType(typ string) []string {
	var ids []string
	for _, id := range SortedIDs(md.Tokens) {
		if md.Tokens[id].Type == typ {
			ids = append(ids, id)
		}
	}
	return ids
}
