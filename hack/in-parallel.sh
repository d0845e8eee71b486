#!/usr/bin/env bash
# Run each argument as a shell command, all at once; wait for every one; fail if any failed, naming it.
# `make test-suite` builds its tools this way: on a cold machine Go builds, downloads and Docker
# builds overlap (each alone leaves the 2 cores or the network idle part of the time).
set -uo pipefail
pids=()
for command in "$@"; do
    bash -c "$command" &
    pids+=($!)
done
failed=0
for index in "${!pids[@]}"; do
    if ! wait "${pids[$index]}"; then
        echo "in-parallel: failed: ${*:index+1:1}" >&2
        failed=1
    fi
done
exit "$failed"
