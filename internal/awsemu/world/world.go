// Package world holds the emulator's default world file: the accounts, keys,
// roles and public AMIs that tests, benchmarks and the demo share.
package world

import (
	"bytes"
	_ "embed"
)

//go:embed default.json
var defaultJSON []byte

// DefaultJSON returns the default world file (JSON; format in docs/emulator.md).
func DefaultJSON() []byte { return bytes.Clone(defaultJSON) }
