#!/usr/bin/env bash
# Run a command with Docker's daemon up: start dockerd if it is not running, and stop it again
# afterwards if this script started it.
#
# Where this machine's capability bounding set lacks a capability (CI machines here lack
# CAP_SYS_RESOURCE), privileged containers such as kind's nodes fail in runc with "unable to apply
# caps: operation not permitted"; dockerd then runs them through devtools/certsmith_devtools/kind_node/runc-caps.go, which
# leaves out of a container's capabilities only those the machine does not have.
set -euo pipefail
if docker info >/dev/null 2>&1; then
    exec "$@"
fi
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid  # left by a daemon that did not stop cleanly
fi
runtime=()
last=$(cat /proc/sys/kernel/cap_last_cap)
bounding=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
if [ "$bounding" -ne $(((1 << (last + 1)) - 1)) ]; then
    source="$(cd "$(dirname "$0")/.." && pwd)/devtools/certsmith_devtools/kind_node/runc-caps.go"
    cache="${CERTSMITH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/certsmith}/bin"
    runc_caps="$cache/runc-caps-$(sha256sum "$source" | cut -c1-12)"
    if [ ! -x "$runc_caps" ]; then
        mkdir -p "$cache"
        (cd "$cache" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$runc_caps" "$source")
    fi
    runtime=(--add-runtime "runc-caps=$runc_caps" --default-runtime runc-caps)
fi
log=$(mktemp -t certsmith-dockerd.XXXXXX.log)
dockerd "${runtime[@]}" >"$log" 2>&1 &
dockerd_pid=$!
trap 'kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not start; its log ends:" >&2
    tail -20 "$log" >&2
    exit 1
fi
"$@"
