"""What `certsmith run` loads: the operator, not the local control plane (which loads libc and
knows Go builds)."""

from __future__ import annotations

import subprocess
import sys


def test_the_command_line_loads_no_dev_tooling() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, certsmith.cli; print(sorted(m for m in sys.modules if m.startswith('certsmith.')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "certsmith.runtime" in loaded
    assert "certsmith.devcluster" not in loaded
