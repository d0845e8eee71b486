"""The package the Dockerfile installs: every module and the console script, nothing shadowing the stdlib."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO


def test_wheel_holds_the_package_and_the_console_script(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("certsmith-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        str(path.relative_to(REPO / "operator")) for path in (REPO / "operator" / "certsmith").rglob("*.py")
    }
    assert sources <= names
    assert "certsmith/py.typed" in names
    assert not any(name.startswith("operator/") for name in names), "must not shadow the stdlib `operator`"
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "certsmith = certsmith.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
