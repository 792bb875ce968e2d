#!/usr/bin/env bash
# Provides a real Packer binary for the e2e tests and the demo, built from the
# module proxy into a git-ignored cache, and prints its path. Never uses a
# Packer that happens to be on PATH.
set -euo pipefail
PACKER_VERSION="${PACKER_VERSION:-v1.12.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${AMICRYPT_CACHE:-$root/.cache}"
bin="$cache/packer-$PACKER_VERSION/packer"
if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
  echo "$bin"; exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$bin")"
(
  cd "$work"
  cat > go.mod <<MOD
module packerbuild

go 1.26

replace github.com/zclconf/go-cty => github.com/nywilken/go-cty v1.13.3
MOD
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/hashicorp/packer"
GO
  go get "github.com/hashicorp/packer@$PACKER_VERSION" >&2
  go build -o "$bin.tmp" github.com/hashicorp/packer >&2
  mv "$bin.tmp" "$bin"
)
echo "$bin"
