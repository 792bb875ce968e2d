package luks2

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/pbkdf2"
	"golang.org/x/crypto/xts"
)

// ErrWrongPassphrase means the passphrase does not open the keyslot: the key
// it yields does not match the volume key digest.
var ErrWrongPassphrase = errors.New("the passphrase does not open this keyslot")

const sectorSize = 512 // keyslot areas are encrypted in 512-byte sectors

func hashFunc(name string) (func() hash.Hash, error) {
	h, err := checksumHash(name)
	if err != nil {
		return nil, fmt.Errorf("hash %q is not supported (sha1, sha256, sha512)", name)
	}
	return h, nil
}

// VerifyPassphrase checks that passphrase opens keyslot slot of v: it derives
// the keyslot key, decrypts the keyslot area read from r, merges the
// anti-forensic stripes and checks the result against the volume key digest.
// It returns nil on success and ErrWrongPassphrase when the digest does not
// match. The volume key never leaves this function.
func (v *Volume) VerifyPassphrase(r io.ReaderAt, slot string, passphrase []byte) error {
	ks, ok := v.Metadata.Keyslots[slot]
	if !ok {
		return fmt.Errorf("keyslot %s does not exist", slot)
	}
	var digest *Digest
	for _, id := range SortedIDs(v.Metadata.Digests) {
		d := v.Metadata.Digests[id]
		for _, s := range d.Keyslots {
			if s == slot {
				digest = &d
			}
		}
		if digest != nil {
			break
		}
	}
	if digest == nil {
		return fmt.Errorf("keyslot %s has no digest", slot)
	}
	volumeKey, err := openKeyslot(r, ks, passphrase)
	if err != nil {
		return fmt.Errorf("keyslot %s: %w", slot, err)
	}
	defer clear(volumeKey)
	return checkDigest(digest, volumeKey)
}

// openKeyslot returns the candidate volume key the passphrase yields.
func openKeyslot(r io.ReaderAt, ks Keyslot, passphrase []byte) ([]byte, error) {
	if ks.Type != "luks2" {
		return nil, fmt.Errorf("type %q is not supported (luks2)", ks.Type)
	}
	if ks.Area.Type != "raw" || ks.Area.Encryption != "aes-xts-plain64" {
		return nil, fmt.Errorf("area %s/%s is not supported (raw aes-xts-plain64)", ks.Area.Type, ks.Area.Encryption)
	}
	if ks.Area.KeySize != 32 && ks.Area.KeySize != 64 {
		return nil, fmt.Errorf("area key size %d is not one of AES-XTS's (32, 64)", ks.Area.KeySize)
	}
	if ks.AF.Type != "luks1" || ks.AF.Stripes < 1 || ks.AF.Stripes > maxStripes {
		return nil, fmt.Errorf("anti-forensic splitter %s with %d stripes is not supported (luks1, 1-%d)", ks.AF.Type, ks.AF.Stripes, maxStripes)
	}
	afHash, err := hashFunc(ks.AF.Hash)
	if err != nil {
		return nil, fmt.Errorf("af: %w", err)
	}
	splitLen := uint64(ks.KeySize) * uint64(ks.AF.Stripes)
	readLen := (splitLen + sectorSize - 1) / sectorSize * sectorSize
	if readLen > uint64(ks.Area.Size) {
		return nil, fmt.Errorf("area of %d bytes is smaller than %d stripes of %d bytes", ks.Area.Size, ks.AF.Stripes, ks.KeySize)
	}

	areaKey, err := deriveKey(ks.KDF, passphrase, ks.Area.KeySize)
	if err != nil {
		return nil, fmt.Errorf("kdf: %w", err)
	}
	defer clear(areaKey)
	c, err := xts.NewCipher(aes.NewCipher, areaKey)
	if err != nil {
		return nil, fmt.Errorf("area cipher: %w", err)
	}
	split := make([]byte, readLen)
	defer clear(split)
	if _, err := r.ReadAt(split, int64(ks.Area.Offset)); err != nil {
		return nil, fmt.Errorf("reading the keyslot area at %d: %w", ks.Area.Offset, err)
	}
	// plain64: the IV is the 64-bit little-endian sector number counted from
	// the start of the area, which is what xts takes as its sector number.
	for i := uint64(0); i < readLen/sectorSize; i++ {
		sector := split[i*sectorSize : (i+1)*sectorSize]
		c.Decrypt(sector, sector, i)
	}
	return afMerge(split[:splitLen], ks.KeySize, ks.AF.Stripes, afHash), nil
}

func deriveKey(kdf KDF, passphrase []byte, keyLen int) ([]byte, error) {
	if len(kdf.Salt) == 0 {
		return nil, errors.New("salt is empty")
	}
	switch kdf.Type {
	case "pbkdf2":
		h, err := hashFunc(kdf.Hash)
		if err != nil {
			return nil, err
		}
		if kdf.Iterations < 1 || kdf.Iterations > maxIterations {
			return nil, fmt.Errorf("iterations %d out of range 1-%d", kdf.Iterations, maxIterations)
		}
		return pbkdf2.Key(passphrase, kdf.Salt, kdf.Iterations, keyLen, h), nil
	case "argon2i", "argon2id":
		if kdf.Time < 1 || kdf.Time > maxArgonTime || kdf.Memory < 8 || kdf.Memory > maxArgonMem || kdf.CPUs < 1 || kdf.CPUs > 255 {
			return nil, fmt.Errorf("%s cost time=%d memory=%d cpus=%d out of range", kdf.Type, kdf.Time, kdf.Memory, kdf.CPUs)
		}
		if kdf.Type == "argon2i" {
			return argon2.Key(passphrase, kdf.Salt, uint32(kdf.Time), uint32(kdf.Memory), uint8(kdf.CPUs), uint32(keyLen)), nil
		}
		return argon2.IDKey(passphrase, kdf.Salt, uint32(kdf.Time), uint32(kdf.Memory), uint8(kdf.CPUs), uint32(keyLen)), nil
	}
	return nil, fmt.Errorf("type %q is not supported (pbkdf2, argon2i, argon2id)", kdf.Type)
}

// afMerge undoes the LUKS anti-forensic split: the XOR of all stripes, with a
// hash diffusion between them.
func afMerge(split []byte, keySize, stripes int, newHash func() hash.Hash) []byte {
	buf := make([]byte, keySize)
	for i := 0; i < stripes-1; i++ {
		subtle.XORBytes(buf, buf, split[i*keySize:(i+1)*keySize])
		diffuse(buf, newHash)
	}
	subtle.XORBytes(buf, buf, split[(stripes-1)*keySize:stripes*keySize])
	return buf
}

// diffuse replaces each digest-sized block of buf by the hash of its
// big-endian block number and the block (the last block may be shorter).
func diffuse(buf []byte, newHash func() hash.Hash) {
	h := newHash()
	ds := h.Size()
	var iv [4]byte
	for i, off := 0, 0; off < len(buf); i, off = i+1, off+ds {
		end := min(off+ds, len(buf))
		h.Reset()
		binary.BigEndian.PutUint32(iv[:], uint32(i))
		h.Write(iv[:])
		h.Write(buf[off:end])
		copy(buf[off:end], h.Sum(nil))
	}
}

func checkDigest(d *Digest, volumeKey []byte) error {
	if d.Type != "pbkdf2" {
		return fmt.Errorf("digest type %q is not supported (pbkdf2)", d.Type)
	}
	h, err := hashFunc(d.Hash)
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	if d.Iterations < 1 || d.Iterations > maxIterations || len(d.Digest) == 0 || len(d.Digest) > 512 || len(d.Salt) == 0 {
		return fmt.Errorf("digest: iterations %d, %d-byte digest, %d-byte salt out of range", d.Iterations, len(d.Digest), len(d.Salt))
	}
	got := pbkdf2.Key(volumeKey, d.Salt, d.Iterations, len(d.Digest), h)
	if subtle.ConstantTimeCompare(got, d.Digest) != 1 {
		return ErrWrongPassphrase
	}
	return nil
}
