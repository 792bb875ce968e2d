#!/usr/bin/env bash
# Provides HashiCorp's Amazon plugin (packer-plugin-amazon, for the amazon-ebs
# side-by-side e2e test and benchmark), built from the module proxy into the
# git-ignored cache, and prints the binary's path. The version is a release
# (VersionPrerelease ""), so `packer plugins install --path BIN
# github.com/hashicorp/amazon` and an offline `packer init` accept it.
set -euo pipefail
AMAZON_PLUGIN_VERSION="${AMAZON_PLUGIN_VERSION:-v1.8.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${AMICRYPT_CACHE:-$root/.cache}"
bin="$cache/packer-plugin-amazon-$AMAZON_PLUGIN_VERSION/packer-plugin-amazon"
if [ -x "$bin" ] && "$bin" describe >/dev/null 2>&1; then
  echo "$bin"; exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$bin")"
(
  cd "$work"
  # The plugin's own go.mod replaces go-cty (packer-plugin-sdk issue 187);
  # replace directives of dependencies are ignored, so repeat it here.
  cat > go.mod <<MOD
module amazonpluginbuild

go 1.26

replace github.com/zclconf/go-cty => github.com/nywilken/go-cty v1.13.3
MOD
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/hashicorp/packer-plugin-amazon"
GO
  go get "github.com/hashicorp/packer-plugin-amazon@$AMAZON_PLUGIN_VERSION" >&2
  go build -trimpath -o "$bin.tmp" github.com/hashicorp/packer-plugin-amazon >&2
  mv "$bin.tmp" "$bin"
)
echo "$bin"
