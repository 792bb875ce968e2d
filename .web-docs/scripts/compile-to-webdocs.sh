#!/usr/bin/env bash
# Compiles the docs rendered by `packer-sdc renderdocs` (MDX with front matter,
# one file per component under builders/, post-processors/, provisioners/,
# datasources/) into the layout of the Packer integration registry:
#   .web-docs/README.md                                 <- docs/README.md
#   .web-docs/components/<type>/<slug>/README.md        <- <folder>/<slug>.mdx
# and checks that .web-docs/metadata.hcl declares every component it writes.
# Same contract as hashicorp/packer-plugin-scaffolding's script of this name.
#
# Usage: compile-to-webdocs.sh PLUGIN_DIR RENDERED_DOCS_DIR WEB_DOCS_DIR ORG
set -euo pipefail

plugin_dir="$1"
docs_dir="$plugin_dir/$2"
web_docs_dir="$plugin_dir/$3"
org="$4"
metadata="$web_docs_dir/metadata.hcl"

component_type() {
  case "$1" in
    builders) echo builder ;;
    provisioners) echo provisioner ;;
    post-processors) echo post-processor ;;
    datasources) echo data-source ;;
    *) echo "" ;;
  esac
}

# Plugin-site links (/packer/plugins/<kind>/<plugin>[/<component>]) become
# integration links (/packer/integrations/<org>/<plugin>[/latest/components/...]).
rewrite_links() {
  sed -E \
    -e "s#\(/packer/plugins/([^/)#]+)/([^/)#]+)/([^/)#]+)(\#[^)]*)?\)#(/packer/integrations/$org/\2/latest/components/\1/\3\4)#g" \
    -e "s#\(/packer/plugins/([^/)#]+)/([^/)#]+)(\#[^)]*)?\)#(/packer/integrations/$org/\2\3)#g" \
    -e 's#/components/builders/#/components/builder/#g' \
    -e 's#/components/post-processors/#/components/post-processor/#g' \
    -e 's#/components/provisioners/#/components/provisioner/#g' \
    -e 's#/components/datasources/#/components/data-source/#g'
}

# Drops the front matter (between the first two '---' lines) and the first H1,
# which the registry adds itself.
strip_header() {
  awk '
    NR == 1 && /^---[[:space:]]*$/ { in_fm = 1; next }
    in_fm { if (/^---[[:space:]]*$/) in_fm = 0; next }
    !seen_h1 && /^# / { seen_h1 = 1; skip_blank = 1; next }
    (skip_blank || !printed) && /^[[:space:]]*$/ { next }
    { skip_blank = 0; printed = 1; print }
  ' "$1"
}

echo "Compiling MDX docs in '$2' to Markdown in '$3'..."
mkdir -p "$web_docs_dir"
cp "$docs_dir/README.md" "$web_docs_dir/README.md"
rm -rf "$web_docs_dir/components"

status=0
while IFS= read -r file; do
  rel="${file#"$docs_dir"/}"
  folder="${rel%%/*}"
  slug="$(basename "$rel" .mdx)"
  type="$(component_type "$folder")"
  if [ -z "$type" ]; then
    echo "Failed to process '$file': component docs live in builders/, provisioners/, post-processors/ or datasources/." >&2
    exit 1
  fi
  out="$web_docs_dir/components/$type/$slug"
  mkdir -p "$out"
  strip_header "$file" | rewrite_links >"$out/README.md"
  if ! awk -v t="$type" -v s="$slug" '
      /component[[:space:]]*\{/ { ty = ""; sl = "" }
      /type[[:space:]]*=/ { if ($0 ~ "\"" t "\"") ty = 1 }
      /slug[[:space:]]*=/ { if ($0 ~ "\"" s "\"") sl = 1 }
      /\}/ { if (ty && sl) found = 1; ty = ""; sl = "" }
      END { exit found ? 0 : 1 }' "$metadata"; then
    echo "$metadata declares no component { type = \"$type\", slug = \"$slug\" } for $rel" >&2
    status=1
  fi
done < <(find "$docs_dir" -mindepth 2 -name '*.mdx' ! -name 'index.mdx' | LC_ALL=C sort)
exit "$status"
