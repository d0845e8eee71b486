"""Errors from building the control plane say what failed and what to do."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from certsmith_devtools import build
from certsmith_devtools.versions import staging_version


def test_staging_modules_are_published_as_v0_minor_patch() -> None:
    assert staging_version("v1.36.3") == "v0.36.3"
    assert staging_version("v1.40.12") == "v0.40.12"


def test_missing_go_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(build, "_GO_DEFAULT_INSTALL_DIR", str(tmp_path))
    with pytest.raises(build.ControlPlaneBuildError) as error:
        build.ensure_binaries(tmp_path / "cache", progress=lambda _: None)
    assert "`go` was not found on PATH" in str(error.value)
    assert "Go >= 1.26" in str(error.value)
    assert "https://go.dev/dl/" in str(error.value)


def _fake_go(directory: Path, version: str, build_output: str) -> None:
    go = directory / "go"
    go.write_text(
        f"#!/bin/sh\nif [ \"$1\" = env ]; then echo {version}; exit 0; fi\nprintf '{build_output}'\nexit 1\n"
    )
    go.chmod(go.stat().st_mode | stat.S_IXUSR)


def test_old_go_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_go(tmp_path, "go1.22.4", "")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(build.ControlPlaneBuildError, match=r"reports version go1\.22\.4\. Go >= 1\.26"):
        build.ensure_binaries(tmp_path / "cache", progress=lambda _: None)


def test_failed_build_names_the_command_and_shows_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_go(tmp_path, "go1.26.8", "line 1\\nproxy.golang.org: connection refused\\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(build.ControlPlaneBuildError) as error:
        build.ensure_binaries(tmp_path / "cache", progress=lambda _: None)
    message = str(error.value)
    assert f"`{tmp_path}/go mod download -json k8s.io/kubernetes@" in message
    assert "exited with 1" in message
    assert "proxy.golang.org: connection refused" in message
    assert not build.cached_binaries(tmp_path / "cache").complete()
