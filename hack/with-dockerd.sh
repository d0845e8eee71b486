#!/usr/bin/env bash
# Run a command with Docker's daemon up: start dockerd if it is not running, and stop it again
# afterwards if this script started it.
set -euo pipefail
if docker info >/dev/null 2>&1; then
    exec "$@"
fi
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid  # left by a daemon that did not stop cleanly
fi
log=$(mktemp -t certsmith-dockerd.XXXXXX.log)
dockerd >"$log" 2>&1 &
dockerd_pid=$!
trap 'kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not start; its log ends:" >&2
    tail -20 "$log" >&2
    exit 1
fi
"$@"
