"""What the `certsmith` command loads: the operator, and of the dev tooling (when installed) only the
parser of `certsmith dev` — not the local control plane, which loads libc and knows Go builds."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_command_line_loads_no_dev_tooling() -> None:
    loaded = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import json, sys; from certsmith.cli import main; main(['version']); "
                "print(json.dumps(sorted(m for m in sys.modules if m.startswith('certsmith'))))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
    )
    assert "certsmith.runtime" in loaded
    assert "certsmith_devtools.command" in loaded, "certsmith-devtools is installed here: `dev` is a command"
    assert {name for name in loaded if name.startswith("certsmith_devtools")} == {
        "certsmith_devtools",
        "certsmith_devtools.command",
    }
