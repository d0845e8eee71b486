#!/usr/bin/env python3
"""Fail if any etcd, kube-apiserver or kube-controller-manager outlived the process that started it,
or a test's operator container was left behind.

`make test` runs this after pytest has exited. A `certsmith dev` still running elsewhere is fine:
its components' owner is alive.
"""

import subprocess
import sys

from certsmith_devtools.processes import orphaned_processes

orphans = orphaned_processes()
containers = subprocess.run(
    ["docker", "ps", "--all", "--quiet", "--filter", "label=certsmith-test=1"],
    capture_output=True,
    text=True,
    check=False,
).stdout.split()
orphans += [f"container {container} (label certsmith-test)" for container in containers]
for orphan in orphans:
    print(f"orphaned control-plane process: {orphan}", file=sys.stderr)
if orphans:
    sys.exit(1)
print("no orphaned control-plane processes or test containers")
