package luks2

import (
	"crypto/aes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"testing"

	"golang.org/x/crypto/pbkdf2"
	"golang.org/x/crypto/xts"
)

// imageSpec describes a LUKS2 header image built in Go for tests and fuzz
// seeds: the inverse of what the checker reads (AF split, XTS encryption,
// digest), with fixed salts so the bytes are reproducible.
type imageSpec struct {
	passphrase   []byte
	stripes      int
	tokens       map[string]string // token ID -> JSON object
	seqPrimary   uint64
	seqSecondary uint64
	label, uuid  string
	subsystem    string
	extraJSON    string // appended inside the top-level object (tests of bad metadata)
}

const (
	testHdrSize    = 16384
	testAreaOffset = 2 * testHdrSize
	testKeySize    = 64
	testIterations = 1000
)

func deterministic(seed string, n int) []byte {
	out := make([]byte, 0, n)
	for i := 0; len(out) < n; i++ {
		s := sha256.Sum256(fmt.Appendf(nil, "%s/%d", seed, i))
		out = append(out, s[:]...)
	}
	return out[:n]
}

func afSplit(volumeKey []byte, stripes int) []byte {
	keySize := len(volumeKey)
	split := deterministic("stripes", keySize*stripes)
	buf := make([]byte, keySize)
	for i := 0; i < stripes-1; i++ {
		for j := range buf {
			buf[j] ^= split[i*keySize+j]
		}
		diffuse(buf, sha256.New)
	}
	last := split[(stripes-1)*keySize:]
	for j := range last {
		last[j] = buf[j] ^ volumeKey[j]
	}
	return split
}

// buildImage returns the header image (both copies and the keyslot area).
func buildImage(t testing.TB, spec imageSpec) []byte {
	t.Helper()
	if spec.stripes == 0 {
		spec.stripes = 4000
	}
	if spec.uuid == "" {
		spec.uuid = "6f1c7e3a-2b0d-4c5e-9a8b-7d6e5f4a3b2c"
	}
	volumeKey := deterministic("volume-key", testKeySize)
	ksSalt := deterministic("keyslot-salt", 32)
	digestSalt := deterministic("digest-salt", 32)

	split := afSplit(volumeKey, spec.stripes)
	areaSize := (len(split) + sectorSize - 1) / sectorSize * sectorSize
	area := make([]byte, areaSize)
	copy(area, split)
	areaKey := pbkdf2.Key(spec.passphrase, ksSalt, testIterations, testKeySize, sha256.New)
	c, err := xts.NewCipher(aes.NewCipher, areaKey)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < areaSize/sectorSize; i++ {
		s := area[i*sectorSize : (i+1)*sectorSize]
		c.Encrypt(s, s, uint64(i))
	}
	digest := pbkdf2.Key(volumeKey, digestSalt, testIterations, 32, sha256.New)

	b64 := base64.StdEncoding.EncodeToString
	var tokens []string
	ids := make([]string, 0, len(spec.tokens))
	for id := range spec.tokens {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		tokens = append(tokens, fmt.Sprintf("%q:%s", id, spec.tokens[id]))
	}
	js := fmt.Sprintf(`{"keyslots":{"0":{"type":"luks2","key_size":%d,"af":{"type":"luks1","stripes":%d,"hash":"sha256"},`+
		`"area":{"type":"raw","offset":"%d","size":"%d","encryption":"aes-xts-plain64","key_size":%d},`+
		`"kdf":{"type":"pbkdf2","hash":"sha256","iterations":%d,"salt":"%s"}}},`+
		`"tokens":{%s},`+
		`"segments":{"0":{"type":"crypt","offset":"16777216","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":4096}},`+
		`"digests":{"0":{"type":"pbkdf2","keyslots":["0"],"segments":["0"],"hash":"sha256","iterations":%d,"salt":"%s","digest":"%s"}},`+
		`"config":{"json_size":"12288","keyslots_size":"%d"}%s}`,
		testKeySize, spec.stripes, testAreaOffset, areaSize, testKeySize, testIterations, b64(ksSalt),
		strings.Join(tokens, ","), testIterations, b64(digestSalt), b64(digest), areaSize, spec.extraJSON)

	img := make([]byte, testAreaOffset+areaSize)
	writeCopy(img[:testHdrSize], primaryMagic, 0, spec.seqPrimary, spec, js)
	writeCopy(img[testHdrSize:2*testHdrSize], secondaryMagic, testHdrSize, spec.seqSecondary, spec, js)
	copy(img[testAreaOffset:], area)
	return img
}

func writeCopy(dst []byte, magic []byte, offset, seq uint64, spec imageSpec, js string) {
	copy(dst, magic)
	binary.BigEndian.PutUint16(dst[offVersion:], 2)
	binary.BigEndian.PutUint64(dst[offHdrSize:], testHdrSize)
	binary.BigEndian.PutUint64(dst[offSeqID:], seq)
	copy(dst[offLabel:offLabel+labelLen], spec.label)
	copy(dst[offCsumAlg:], "sha256")
	copy(dst[offSalt:offSalt+saltLen], deterministic(fmt.Sprint("hdr-salt", offset), saltLen))
	copy(dst[offUUID:offUUID+uuidLen], spec.uuid)
	copy(dst[offSubsystem:offSubsystem+subsystemLen], spec.subsystem)
	binary.BigEndian.PutUint64(dst[offHdrOffset:], offset)
	copy(dst[binaryHeaderSize:], js)
	sum := sha256.Sum256(dst)
	copy(dst[offCsum:], sum[:])
}

// resum recomputes the checksum of the copy at offset after a test edited it.
func resum(img []byte, offset int) {
	c := img[offset : offset+testHdrSize]
	clear(c[offCsum : offCsum+csumLen])
	sum := sha256.Sum256(c)
	copy(c[offCsum:], sum[:])
}
