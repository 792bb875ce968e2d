package luks2

import (
	"bytes"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the header reader: it must never panic,
// and a header it accepts must have metadata that passes its own checks. The
// seeds are a valid image (built here) plus the small files under
// testdata/fuzz/FuzzRead.
func FuzzRead(f *testing.F) {
	f.Add(buildImage(f, imageSpec{passphrase: testPass, stripes: 2, seqPrimary: 1, seqSecondary: 1,
		tokens: map[string]string{"0": `{"type":"amicrypt-kms","keyslots":["0"]}`}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		if v.Active == nil || v.Metadata == nil {
			t.Fatal("Read succeeded without an active copy and metadata")
		}
		if err := v.Metadata.validate(); err != nil {
			t.Fatalf("accepted metadata fails validation: %v", err)
		}
		for _, id := range SortedIDs(v.Metadata.Keyslots) {
			ks := v.Metadata.Keyslots[id]
			// Verification is cheap only for small PBKDF2 costs; it must
			// still never panic.
			if ks.KDF.Type == "pbkdf2" && ks.KDF.Iterations <= 1000 && ks.AF.Stripes <= 64 {
				_ = v.VerifyPassphrase(bytes.NewReader(data), id, testPass)
			}
		}
	})
}

// FuzzParseMetadata feeds arbitrary JSON to the metadata parser.
func FuzzParseMetadata(f *testing.F) {
	img := buildImage(f, imageSpec{passphrase: testPass, stripes: 2,
		tokens: map[string]string{"0": `{"type":"amicrypt-kms","keyslots":["0"],"ciphertext":"QUJD"}`}})
	v, err := Read(bytes.NewReader(img))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v.Active.JSON)
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := ParseMetadata(data)
		if err != nil {
			return
		}
		for _, id := range md.TokensOfType("amicrypt-kms") {
			for _, ks := range md.Tokens[id].Keyslots {
				if _, ok := md.Keyslots[ks]; !ok {
					t.Fatalf("token %s names keyslot %s that does not exist", id, ks)
				}
			}
		}
	})
}
