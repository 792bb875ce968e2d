#!/usr/bin/env bash
# The README demo (`make demo`): amicrypt-ebs into amicrypt-copy, on the local
# AWS emulator, with the real Packer binary. Needs only Go.
#
#  1. starts cmd/awsemu with the default world on a free loopback port;
#  2. builds the plugin with a release version and installs it with
#     `packer plugins install --path` into a private plugin directory, so
#     `packer init` is satisfied offline;
#  3. runs `packer init` and `packer build` on example/demo with the Packer from
#     scripts/packer.sh (never one on PATH);
#  4. prints the copy summary, the manifest and the invariant checker's verdict
#     (GET /_emu/check), then stops the emulator.
#
# Interfaces it relies on: cmd/awsemu prints "awsemu listening on URL" and
# serves /_emu/check (JSON with "pass" and "findings"); example/demo declares
# `variable "manifest_output"` when it wants the manifest somewhere we choose.
#
# Knobs: AMICRYPT_DEMO_TIME_SCALE (default 0.01: an 8 GiB snapshot copy takes
# about 2 s), AMICRYPT_DEMO_KEEP=1 keeps the work directory, AMICRYPT_DEMO_DIR
# runs another template directory (default example/demo).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
demo_dir="$(cd "$root" && realpath -m "${AMICRYPT_DEMO_DIR:-example/demo}")"
time_scale="${AMICRYPT_DEMO_TIME_SCALE:-0.01}"
module="$(sed -n 's/^module[[:space:]]*//p' go.mod)"
plugin_version="$(sed -n 's/^[[:space:]]*Version[[:space:]]*=[[:space:]]*"\(.*\)".*/\1/p' version/version.go)"

section() { if [ -t 1 ]; then printf '\n\033[1m==> %s\033[0m\n' "$*"; else printf '\n==> %s\n' "$*"; fi; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ -d "$demo_dir" ] || die "$demo_dir is missing: set AMICRYPT_DEMO_DIR to a template directory."

work="$(mktemp -d "${TMPDIR:-/tmp}/amicrypt-demo.XXXXXX")"
emu_pid=""
cleanup() {
  status=$?
  if [ -n "$emu_pid" ] && kill -0 "$emu_pid" 2>/dev/null; then
    section "Stopping the emulator"
    kill -TERM "$emu_pid" 2>/dev/null || true
    wait "$emu_pid" 2>/dev/null || true
  fi
  if [ "${AMICRYPT_DEMO_KEEP:-}" = 1 ] || [ "$status" -ne 0 ]; then
    echo "Work directory kept: $work (emulator log: $work/awsemu.log)"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

packer_version="${PACKER_VERSION:-v1.12.0}"
section "Building Packer $packer_version, the emulator and the plugin v$plugin_version"
# Packer is built from the Go module proxy once and cached (scripts/packer.sh);
# its build output goes to a log, shown only if it fails.
if [ -x "${AMICRYPT_CACHE:-$root/.cache}/packer-$packer_version/packer" ]; then
  echo "Packer $packer_version: already built, in ${AMICRYPT_CACHE:-.cache}/"
else
  echo "Packer $packer_version: building it from the Go module proxy into ${AMICRYPT_CACHE:-.cache}/ (this happens once and takes a few minutes)"
fi
packer="$(bash scripts/packer.sh 2>"$work/packer-build-tool.log")" || { cat "$work/packer-build-tool.log" >&2; die "building Packer failed."; }
go build -o "$work/awsemu" ./cmd/awsemu
go build -ldflags "-X $module/version.Version=$plugin_version -X $module/version.VersionPrerelease=" \
  -o "$work/packer-plugin-amicrypt" .

section "Starting the local AWS emulator (default world, time scale $time_scale)"
"$work/awsemu" -addr 127.0.0.1:0 -time-scale "$time_scale" >"$work/awsemu.log" 2>&1 &
emu_pid=$!
endpoint=""
for _ in $(seq 1 300); do
  endpoint="$(sed -n 's/^awsemu listening on \(http[^ ]*\).*/\1/p' "$work/awsemu.log" | head -n1)"
  [ -n "$endpoint" ] && break
  kill -0 "$emu_pid" 2>/dev/null || { cat "$work/awsemu.log" >&2; die "the emulator exited before listening."; }
  sleep 0.1
done
[ -n "$endpoint" ] || { cat "$work/awsemu.log" >&2; die "the emulator did not report its address within 30 s."; }
echo "AWS_ENDPOINT_URL=$endpoint"
hostport="${endpoint#http://}"
emu_host="${hostport%:*}"
emu_port="${hostport##*:}"

# emu_get PATH prints the body of GET PATH on the emulator. Plain bash
# (/dev/tcp), so the demo needs no curl.
emu_get() {
  local response
  exec 3<>"/dev/tcp/$emu_host/$emu_port"
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" "$hostport" >&3
  response="$(cat <&3)"
  exec 3<&-
  printf '%s\n' "${response#*$'\r\n\r\n'}"
}

# The build account's user from the default world; nothing from the host's
# AWS configuration leaks in.
export AWS_ENDPOINT_URL="$endpoint"
export AWS_ACCESS_KEY_ID=AKIA1111111111111111
export AWS_SECRET_ACCESS_KEY=emu-secret-111111111111
export AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_REGION
export AWS_POLL_DELAY_SECONDS="${AWS_POLL_DELAY_SECONDS:-0.2}"
export PACKER_PLUGIN_PATH="$work/plugins" PACKER_CONFIG_DIR="$work/packer-config" CHECKPOINT_DISABLE=1
mkdir -p "$PACKER_PLUGIN_PATH" "$PACKER_CONFIG_DIR"

section "Installing the plugin with packer plugins install --path"
"$packer" plugins install --path "$work/packer-plugin-amicrypt" github.com/amicrypt/amicrypt

build_args=(-color=false)
manifest="$work/manifest.json"
if grep -qs 'variable[[:space:]]*"manifest_output"' "$demo_dir"/*.pkr.hcl; then
  build_args+=(-var "manifest_output=$manifest")
fi

section "packer init example/demo (offline: the plugin is already installed)"
(cd "$demo_dir" && "$packer" init .)

section "packer build example/demo"
build_status=0
(cd "$demo_dir" && "$packer" build "${build_args[@]}" .) 2>&1 | tee "$work/packer-build.log" || build_status=$?

section "Copy summary"
# amicrypt-copy's own table (account, region, AMI, key, state, duration),
# without Packer's UI prefix; then Packer's list of artifacts.
awk '
  /\(amicrypt-copy\): amicrypt-copy: summary$/ { on = 1; next }
  on && /\(amicrypt-copy\):[[:space:]]*$/ { on = 0 }
  on { sub(/^==> [^:]*\(amicrypt-copy\): /, ""); print }
' "$work/packer-build.log"
if grep -q 'Builds finished' "$work/packer-build.log"; then
  sed -n '/Builds finished/,$p' "$work/packer-build.log"
else
  echo "(no artifacts: the build failed, exit $build_status; see above)"
fi

section "Manifest"
if [ ! -s "$manifest" ]; then
  # The template chose its own manifest_output: take the newest JSON it wrote.
  manifest="$(find "$demo_dir" -maxdepth 2 -name '*.json' -newer "$work/awsemu.log" 2>/dev/null | head -n1)"
fi
if [ -n "$manifest" ] && [ -s "$manifest" ]; then
  echo "$manifest:"
  cat "$manifest"
else
  echo "(no manifest written)"
fi

section "Invariant checker (GET /_emu/check)"
report="$(emu_get /_emu/check)"
verdict=FAIL
if printf '%s' "$report" | grep -Eq '"pass"[[:space:]]*:[[:space:]]*true'; then
  verdict=PASS
fi
calls="$(printf '%s' "$report" | sed -n 's/.*"total_calls"[[:space:]]*:[[:space:]]*\([0-9]*\).*/\1/p' | head -n1)"
echo "$verdict: ${calls:-?} AWS API calls checked"
printf '%s\n' "$report" | sed -n 's/^[[:space:]]*"message"[[:space:]]*:[[:space:]]*"\(.*\)",\{0,1\}$/  finding: \1/p'
echo "API calls by service, action, account and region:"
printf '%s\n' "$report" | awk -F'"' '
  /"service":/ { svc = $4 } /"action":/ { act = $4 } /"account":/ { acct = $4 } /"region":/ { reg = $4 }
  /"calls":/ { match($0, /[0-9]+/); calls = substr($0, RSTART, RLENGTH) }
  /"errors":/ { match($0, /[0-9]+/); printf "  %-4s %-34s %-13s %-13s %5d calls %3d errors\n", svc, act, acct, reg, calls, substr($0, RSTART, RLENGTH) }'

if [ "$build_status" -ne 0 ]; then
  die "packer build failed (exit $build_status)."
fi
[ "$verdict" = PASS ] || die "the invariant checker found problems (above)."
section "Demo finished: every copy encrypted under its own account's key, nothing left behind."
