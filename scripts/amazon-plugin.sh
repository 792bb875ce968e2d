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
# shellcheck source=lib/gomodbin.sh
. "$root/scripts/lib/gomodbin.sh"
gomodbin github.com/hashicorp/packer-plugin-amazon "$AMAZON_PLUGIN_VERSION" \
  "$cache/packer-plugin-amazon-$AMAZON_PLUGIN_VERSION/packer-plugin-amazon" describe
