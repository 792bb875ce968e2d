# shellcheck shell=bash
# gomodbin MODULE VERSION BIN CHECK...: prints BIN, a binary of MODULE@VERSION
# built from the Go module proxy in a throwaway module, and reuses BIN when
# `BIN CHECK...` succeeds. Shared by scripts/packer.sh and
# scripts/amazon-plugin.sh. Packer modules need the go-cty replace
# (packer-plugin-sdk issue 187), and replace directives of dependencies are
# ignored, so the throwaway module repeats it.
gomodbin() {
  local module="$1" version="$2" bin="$3"
  shift 3
  if [ -x "$bin" ] && "$bin" "$@" >/dev/null 2>&1; then
    echo "$bin"; return 0
  fi
  local work
  work="$(mktemp -d)"
  mkdir -p "$(dirname "$bin")"
  (
    cd "$work"
    cat > go.mod <<MOD
module gomodbin

go 1.26

replace github.com/zclconf/go-cty => github.com/nywilken/go-cty v1.13.3
MOD
    cat > tools.go <<GO
//go:build tools

package tools

import _ "$module"
GO
    go get "$module@$version" >&2
    go build -trimpath -o "$bin.tmp" "$module" >&2
    mv "$bin.tmp" "$bin"
  ) || { rm -rf "$work"; return 1; }
  rm -rf "$work"
  echo "$bin"
}
