package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestFilesystemOn: an opened volume's filesystem is told by its signature,
// never by zeros: dm-crypt over a blank disk reads as random bytes.
func TestFilesystemOn(t *testing.T) {
	at := func(off int, magic string) []byte {
		b := bytes.Repeat([]byte{0xa5}, fsProbeSpan)
		copy(b[off:], magic)
		return b
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"zeros", make([]byte, fsProbeSpan), ""},
		{"what dm-crypt shows over zeros", bytes.Repeat([]byte{0xa5}, fsProbeSpan), ""},
		{"ext4", at(0x438, "\x53\xef"), "ext4"},
		{"xfs", at(0, "XFSB"), "xfs"},
		{"btrfs", at(0x10040, "_BHRfS_M"), "a btrfs filesystem"},
		{"short device", []byte{1, 2, 3}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "mapped")
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := filesystemOn(p)
			if err != nil || got != tt.want {
				t.Errorf("filesystemOn = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
