#!/usr/bin/env python3
"""Fail if any etcd, kube-apiserver or kube-controller-manager outlived the process that started it.

`make test` runs this after pytest has exited. A `certsmith dev` still running elsewhere is fine:
its components' owner is alive.
"""

import sys

from certsmith.devcluster.processes import orphaned_processes

orphans = orphaned_processes()
for orphan in orphans:
    print(f"orphaned control-plane process: {orphan}", file=sys.stderr)
if orphans:
    sys.exit(1)
print("no orphaned control-plane processes")
