"""Detection of control-plane processes that outlived their owner."""

from __future__ import annotations

import os
import subprocess

from certsmith_devtools.processes import OWNER_ENVIRONMENT_VARIABLE, orphaned_processes


def test_a_process_whose_owner_exited_is_reported_and_one_with_a_live_owner_is_not() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    orphan = subprocess.Popen(["sleep", "30"], env={**os.environ, OWNER_ENVIRONMENT_VARIABLE: str(gone.pid)})
    owned = subprocess.Popen(
        ["sleep", "31"], env={**os.environ, OWNER_ENVIRONMENT_VARIABLE: str(os.getpid())}
    )
    try:
        reported = orphaned_processes()
        assert f"{orphan.pid} sleep 30" in reported
        assert not any(line.startswith(f"{owned.pid} ") for line in reported)
    finally:
        for process in (orphan, owned):
            process.kill()
            process.wait()
