#!/usr/bin/env bash
# Provides a real Packer binary for the e2e tests and the demo, built from the
# module proxy into a git-ignored cache, and prints its path. Never uses a
# Packer that happens to be on PATH.
set -euo pipefail
PACKER_VERSION="${PACKER_VERSION:-v1.12.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${AMICRYPT_CACHE:-$root/.cache}"
# shellcheck source=lib/gomodbin.sh
. "$root/scripts/lib/gomodbin.sh"
gomodbin github.com/hashicorp/packer "$PACKER_VERSION" "$cache/packer-$PACKER_VERSION/packer" version
