package luks2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

var testPass = []byte("correct horse battery staple, 256 bits of it")

func TestReadBuiltImage(t *testing.T) {
	img := buildImage(t, imageSpec{
		passphrase: testPass, label: "amicrypt", subsystem: "amicrypt", seqPrimary: 3, seqSecondary: 3,
		tokens: map[string]string{"0": `{"type":"amicrypt-kms","keyslots":["0"],"ciphertext":"AAAA"}`},
	})
	v, err := Read(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if v.Primary == nil || v.Secondary == nil || v.Active != v.Primary {
		t.Fatalf("copies: primary %v secondary %v active primary %v", v.Primary != nil, v.Secondary != nil, v.Active == v.Primary)
	}
	if v.UUID() != "6f1c7e3a-2b0d-4c5e-9a8b-7d6e5f4a3b2c" || v.Label() != "amicrypt" || v.Subsystem() != "amicrypt" {
		t.Errorf("uuid %q label %q subsystem %q", v.UUID(), v.Label(), v.Subsystem())
	}
	if got := v.Metadata.TokensOfType("amicrypt-kms"); len(got) != 1 || got[0] != "0" {
		t.Errorf("tokens of type amicrypt-kms: %v", got)
	}
	if ks := v.Metadata.Keyslots["0"]; ks.Area.Offset != testAreaOffset || ks.KDF.Iterations != testIterations {
		t.Errorf("keyslot 0: %+v", ks)
	}
	if err := v.VerifyPassphrase(bytes.NewReader(img), "0", testPass); err != nil {
		t.Errorf("VerifyPassphrase(right): %v", err)
	}
	if err := v.VerifyPassphrase(bytes.NewReader(img), "0", []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("VerifyPassphrase(wrong) = %v, want ErrWrongPassphrase", err)
	}
	if err := v.VerifyPassphrase(bytes.NewReader(img), "1", testPass); err == nil {
		t.Error("VerifyPassphrase(missing slot) succeeded")
	}
}

func TestReadCopies(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(img []byte)
		wantActive string // "primary", "secondary" or "" for an error
		wantErr    string
	}{
		{name: "both valid, equal seq", edit: func([]byte) {}, wantActive: "primary"},
		{name: "secondary newer", edit: func(img []byte) {
			binary.BigEndian.PutUint64(img[testHdrSize+offSeqID:], 9)
			resum(img, testHdrSize)
		}, wantActive: "secondary"},
		{name: "primary checksum broken", edit: func(img []byte) { img[binaryHeaderSize+10] ^= 1 }, wantActive: "secondary"},
		{name: "primary magic gone", edit: func(img []byte) { clear(img[:binaryHeaderSize]) }, wantActive: "secondary"},
		{name: "secondary broken", edit: func(img []byte) { img[testHdrSize+binaryHeaderSize+3] ^= 1 }, wantActive: "primary"},
		{name: "both broken", edit: func(img []byte) {
			img[binaryHeaderSize+10] ^= 1
			img[testHdrSize+binaryHeaderSize+3] ^= 1
		}, wantErr: "checksum mismatch"},
		{name: "no header", edit: func(img []byte) { clear(img[:2*testHdrSize]) }, wantErr: ErrNotLUKS2.Error()},
		{name: "version 1", edit: func(img []byte) {
			binary.BigEndian.PutUint16(img[offVersion:], 1)
			binary.BigEndian.PutUint16(img[testHdrSize+offVersion:], 1)
		}, wantErr: "LUKS2 only"},
		{name: "odd header size", edit: func(img []byte) {
			binary.BigEndian.PutUint64(img[offHdrSize:], 20000)
			binary.BigEndian.PutUint64(img[testHdrSize+offHdrSize:], 20000)
		}, wantErr: "header size 20000"},
		{name: "wrong recorded offset", edit: func(img []byte) {
			binary.BigEndian.PutUint64(img[offHdrOffset:], 512)
			resum(img, 0)
		}, wantActive: "secondary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := buildImage(t, imageSpec{passphrase: testPass, stripes: 8, seqPrimary: 5, seqSecondary: 5})
			tt.edit(img)
			v, err := Read(bytes.NewReader(img))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Read error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			got := "primary"
			if v.Active == v.Secondary && v.Active != v.Primary {
				got = "secondary"
			}
			if got != tt.wantActive {
				t.Errorf("active copy %s, want %s", got, tt.wantActive)
			}
			if err := v.VerifyPassphrase(bytes.NewReader(img), "0", testPass); err != nil {
				t.Errorf("VerifyPassphrase: %v", err)
			}
		})
	}
}

func TestParseMetadataRejects(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"not json", `{`, "unexpected end"},
		{"keyslot id", `{"keyslots":{"x":{"type":"luks2","key_size":64}}}`, `"x" is not a keyslot number`},
		{"keyslot id leading zero", `{"keyslots":{"01":{"type":"luks2","key_size":64}}}`, `"01" is not a keyslot number`},
		{"key size", `{"keyslots":{"0":{"type":"luks2","key_size":100000}}}`, "key_size: 100000 out of range"},
		{"token without type", `{"tokens":{"0":{"keyslots":[]}}}`, "tokens.0.type: missing"},
		{"token on missing slot", `{"tokens":{"0":{"type":"x","keyslots":["3"]}}}`, `keyslot "3" does not exist`},
		{"digest on missing segment", `{"keyslots":{"0":{"type":"luks2","key_size":64}},"digests":{"0":{"keyslots":["0"],"segments":["1"]}}}`, `segment "1" does not exist`},
		{"offset not a number", `{"keyslots":{"0":{"type":"luks2","key_size":64,"area":{"offset":"12x"}}}}`, "decimal string"},
		{"area too large", `{"keyslots":{"0":{"type":"luks2","key_size":64,"area":{"size":"999999999999"}}}}`, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMetadata([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseMetadata error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestVerifyRejectsUnsupported(t *testing.T) {
	img := buildImage(t, imageSpec{passphrase: testPass, stripes: 8})
	v, err := Read(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(ks *Keyslot)
		want string
	}{
		{"cipher", func(ks *Keyslot) { ks.Area.Encryption = "aes-cbc-essiv:sha256" }, "not supported"},
		{"kdf", func(ks *Keyslot) { ks.KDF.Type = "scrypt" }, `"scrypt" is not supported`},
		{"iterations", func(ks *Keyslot) { ks.KDF.Iterations = 0 }, "iterations 0 out of range"},
		{"stripes beyond area", func(ks *Keyslot) { ks.AF.Stripes = 60000 }, "smaller than"},
		{"hash", func(ks *Keyslot) { ks.AF.Hash = "md5" }, `"md5" is not supported`},
		{"argon memory", func(ks *Keyslot) { ks.KDF = KDF{Type: "argon2id", Time: 1, Memory: 1 << 30, CPUs: 1, Salt: []byte{1}} }, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks := v.Metadata.Keyslots["0"]
			tt.edit(&ks)
			vv := *v
			md := *v.Metadata
			md.Keyslots = map[string]Keyslot{"0": ks}
			vv.Metadata = &md
			err := vv.VerifyPassphrase(bytes.NewReader(img), "0", testPass)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("VerifyPassphrase error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestHasMagic(t *testing.T) {
	for _, tt := range []struct {
		b    []byte
		want bool
	}{
		{[]byte("LUKS\xba\xbe\x00\x02"), true},
		{[]byte("SKUL\xba\xbe"), true},
		{[]byte("LUKS"), false},
		{make([]byte, 16), false},
	} {
		if got := HasMagic(tt.b); got != tt.want {
			t.Errorf("HasMagic(%q) = %v", tt.b, got)
		}
	}
}

func TestFindHeader(t *testing.T) {
	img := buildImage(t, imageSpec{passphrase: testPass, stripes: 2})
	if !FindHeader(img) {
		t.Error("FindHeader(valid image) = false")
	}
	clear(img[:binaryHeaderSize])
	if !FindHeader(img) {
		t.Error("FindHeader(primary wiped) = false, want the secondary found")
	}
	clear(img[testHdrSize : testHdrSize+binaryHeaderSize])
	if FindHeader(img) {
		t.Error("FindHeader(both wiped) = true")
	}
}

// BenchmarkVerifyPassphrase is the checker's cost for the agent's keyslot
// parameters (PBKDF2 1000 iterations, 4000 stripes); reported, not asserted.
func BenchmarkVerifyPassphrase(b *testing.B) {
	img := buildImage(b, imageSpec{passphrase: testPass})
	v, err := Read(bytes.NewReader(img))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := v.VerifyPassphrase(bytes.NewReader(img), "0", testPass); err != nil {
			b.Fatal(err)
		}
	}
}
