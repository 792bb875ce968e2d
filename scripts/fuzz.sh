#!/usr/bin/env bash
# Runs every Go fuzz target of the module for a bounded time each (CI: the
# corpora under testdata/fuzz are kept; new finds are written there too).
#
#   FUZZTIME=15s bash scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-15s}"
failed=0
# The targets: every func FuzzXxx in a _test.go file, by package directory.
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./.cache/' | xargs -n1 dirname | sort -u); do
  pkg="./${dir#./}"
  for target in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' | sort -u); do
    echo "== $pkg $target ($fuzztime)"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -parallel 2 "$pkg"; then
      echo "!! $pkg $target failed (the failing input is under $pkg's testdata/fuzz/$target)" >&2
      failed=1
    fi
  done
done
exit "$failed"
