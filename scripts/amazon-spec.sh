#!/usr/bin/env bash
# Prints the path of amazon-ebs-spec, a program that lists every name of the
# HCL2 spec of HashiCorp's amazon-ebs builder (packer-plugin-amazon
# AMAZON_PLUGIN_VERSION, the version scripts/amazon-plugin.sh builds), one
# per line, nested blocks as "block.name". Built from the Go module proxy in
# a throwaway module into the git-ignored cache, and reused. The e2e test
# that checks amicrypt-ebs against it: e2e/dropin_test.go.
set -euo pipefail
AMAZON_PLUGIN_VERSION="${AMAZON_PLUGIN_VERSION:-v1.8.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${AMICRYPT_CACHE:-$root/.cache}"
bin="$cache/amazon-ebs-spec-$AMAZON_PLUGIN_VERSION/amazon-ebs-spec"
if [ -x "$bin" ] && "$bin" >/dev/null 2>&1; then
  echo "$bin"; exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$bin")"
cd "$work"
cat > go.mod <<MOD
module amazonebsspec

go 1.26

replace github.com/zclconf/go-cty => github.com/nywilken/go-cty v1.13.3
MOD
cat > main.go <<'GO'
// Command amazon-ebs-spec lists the names of amazon-ebs's HCL2 spec.
package main

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-amazon/builder/ebs"
)

func walk(prefix string, spec hcldec.ObjectSpec, out *[]string) {
	for name, s := range spec {
		path := prefix + name
		*out = append(*out, path)
		var nested hcldec.Spec
		switch b := s.(type) {
		case *hcldec.BlockSpec:
			nested = b.Nested
		case *hcldec.BlockListSpec:
			nested = b.Nested
		}
		if o, ok := nested.(hcldec.ObjectSpec); ok {
			walk(path+".", o, out)
		}
	}
}

func main() {
	var names []string
	walk("", (&ebs.Builder{}).ConfigSpec(), &names)
	sort.Strings(names)
	for _, n := range names {
		fmt.Println(n)
	}
}
GO
go get "github.com/hashicorp/packer-plugin-amazon@$AMAZON_PLUGIN_VERSION" >&2
go mod tidy >&2
go build -trimpath -o "$bin.tmp" . >&2
mv "$bin.tmp" "$bin"
echo "$bin"
