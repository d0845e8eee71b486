"""The two distributions as users get them: each built as a wheel and installed (not editable) in a
fresh venv, run from folders outside the checkout. The operator's wheel holds the operator only; the
devtools' wheel brings `certsmith dev`, which runs from an empty folder."""

from __future__ import annotations

import signal
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from certsmith.kube.client import api_client_from_kubeconfig
from certsmith_devtools.kit import create_object, free_port, not_ready
from tests.cluster.support import eventually
from tests.cluster.test_dev import _Output
from tests.conftest import REPO

DEV_TOOLING = ("debootstrap", "kindnode", "kind node", "pebble", "devcluster", "certsmith_devtools")
"""Words of the dev tooling (the image and kind node builders, the Pebble harness) no operator file says."""


def _wheel(project: Path, out: Path) -> Path:
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
            str(out),
            str(project),
        ],
        check=True,
        timeout=120,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


def _fresh_venv(directory: Path, *wheels: Path) -> Path:
    """A venv with `wheels` installed, their dependencies from the index (or pip's cache); its bin/.
    Nothing is byte-compiled ahead (the kubernetes client alone has thousands of modules): what runs
    compiles as it is imported."""
    venv.create(directory, with_pip=True)
    bin_dir = directory / "bin"
    subprocess.run(
        [bin_dir / "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile", *wheels],
        check=True,
        timeout=600,
    )
    return bin_dir


@pytest.fixture(scope="module")
def operator_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _wheel(REPO, tmp_path_factory.mktemp("operator-wheel"))


@pytest.fixture(scope="module")
def devtools_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _wheel(REPO / "devtools", tmp_path_factory.mktemp("devtools-wheel"))


def test_the_operator_wheel_holds_the_operator_and_no_dev_tooling(operator_wheel: Path) -> None:
    archive = zipfile.ZipFile(operator_wheel)
    names = set(archive.namelist())
    sources = {
        str(path.relative_to(REPO / "operator")) for path in (REPO / "operator" / "certsmith").rglob("*.py")
    }
    assert sources <= names
    assert "certsmith/py.typed" in names
    assert not any(name.startswith("operator/") for name in names), "must not shadow the stdlib `operator`"
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "certsmith = certsmith.cli:main" in archive.read(entry_points).decode()
    mentions = {
        (name, word)
        for name in names
        for word in DEV_TOOLING
        if word in name.lower() or word in archive.read(name).decode(errors="replace").lower()
    }
    assert not mentions
    size = operator_wheel.stat().st_size
    print(f"operator wheel: {len(names)} files, {size} bytes")


def test_the_devtools_wheel_holds_its_data(devtools_wheel: Path) -> None:
    names = set(zipfile.ZipFile(devtools_wheel).namelist())
    crds = {path.name for path in (REPO / "crds").glob("*.yaml")}
    assert {f"certsmith_devtools/data/crds/{name}" for name in crds} <= names
    assert "certsmith_devtools/data/demo.yaml" in names
    assert "certsmith_devtools/data/monitoring-rules.yaml" in names
    assert "certsmith_devtools/kind_node/runc-caps.go" in names
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert (
        "dev = certsmith_devtools.command:add_dev_command"
        in zipfile.ZipFile(devtools_wheel).read(entry_points).decode()
    )


def test_the_operator_wheel_alone_runs_its_commands_outside_the_checkout(
    operator_wheel: Path, tmp_path: Path
) -> None:
    bin_dir = _fresh_venv(tmp_path / "venv", operator_wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def certsmith(*arguments: str) -> str:
        done = subprocess.run(
            [bin_dir / "certsmith", *arguments],
            capture_output=True,
            text=True,
            cwd=elsewhere,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert certsmith("version").strip() == "certsmith 0.1.0"
    assert "--leader-elect" in certsmith("run", "--help")
    assert "--all-namespaces" in certsmith("status", "--help")
    assert " dev " not in certsmith("--help"), "without certsmith-devtools there is no `certsmith dev`"


@pytest.fixture
def dev(operator_wheel: Path, devtools_wheel: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """`certsmith dev --no-demo` of a fresh venv with both wheels, run in an empty folder: the venv's
    bin/ and the kubeconfig of its cluster."""
    bin_dir = _fresh_venv(tmp_path / "venv", operator_wheel, devtools_wheel)
    empty = tmp_path / "empty"
    empty.mkdir()
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [
            bin_dir / "certsmith",
            "dev",
            "--no-demo",
            "--metrics-port",
            str(free_port()),
            "--kubeconfig-out",
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=empty,
    )
    output = _Output(process)
    try:
        output.wait_for("certsmith dev: installed")
        output.wait_for("Press Ctrl-C to stop.")
        yield bin_dir, kubeconfig
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        output.wait_for("every process and file it started is gone")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert list(empty.iterdir()) == [], "certsmith dev leaves the folder it ran in as it was"


def test_the_devtools_wheel_runs_certsmith_dev_from_an_empty_folder(dev: tuple[Path, Path]) -> None:
    bin_dir, kubeconfig = dev
    api = api_client_from_kubeconfig(kubeconfig)
    create_object(api, "default", "Issuer", "selfsigned", {"selfSigned": {}})
    create_object(
        api,
        "default",
        "Certificate",
        "wheel",
        {"secretName": "wheel-tls", "dnsNames": ["wheel.example.com"], "issuerRef": {"name": "selfsigned"}},
    )
    eventually(lambda: not not_ready(api, [("default", "wheel")]), timeout=60, what="Certificate wheel Ready")
    status = subprocess.run(
        [bin_dir / "certsmith", "status", "wheel", "-n", "default", "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stdout + status.stderr
