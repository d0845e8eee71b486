"""Building the operator image here, offline, from the one Dockerfile a user builds with `docker build .`.

No registry is reachable from these machines, so the base is made locally — Debian bookworm by
`debootstrap --variant=minbase` with python3 — and imported into Docker, and the wheels are fetched on
the host (which reaches PyPI) into the build context. Both the base's root filesystem and the image are
cached by content: the rootfs tarball under ~/.cache/certsmith/, the image under a tag naming the hash
of everything that goes into it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from certsmith import __version__
from certsmith_devtools.build import default_cache_dir, print_progress
from certsmith_devtools.paths import source_tree
from certsmith_devtools.processes import run_command

IMAGE = "certsmith"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_SUITE = "bookworm"
BASE_MIRROR = "http://deb.debian.org/debian"
BASE_TRIMMED = ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man", "usr/share/locale")
"""Left out of the base: package lists and caches, documentation and translations (~150 MB)."""
_BASE_KEY = hashlib.sha256(
    f"{BASE_SUITE} minbase {' '.join(BASE_PACKAGES)} without {' '.join(BASE_TRIMMED)}".encode()
).hexdigest()[:12]
BASE_IMAGE = f"certsmith-base:{BASE_SUITE}-{_BASE_KEY}"


class ImageBuildError(RuntimeError):
    """An image cannot be built here: a tool is missing, or an input is not what the build expects
    (a failed command raises `processes.CommandFailedError`)."""


def ensure_image(source: Path) -> str:
    """The tag of the operator image of the checkout `source` (see `paths.source_tree`), built if it is
    not there yet; it is also tagged certsmith:<version>, the name deploy/base/deployment.yaml uses."""
    require("docker", "install Docker (Debian: apt-get install docker.io) and start dockerd")
    base = _ensure_base()
    tag = f"{IMAGE}:{_source_hash(source, base)}"
    if image_exists(tag):
        return tag
    _remove_older_images()
    released = f"{IMAGE}:{__version__}"
    with tempfile.TemporaryDirectory(prefix="certsmith-image-") as directory:
        context = Path(directory)
        for name in ("Dockerfile", ".dockerignore", "pyproject.toml"):
            shutil.copy2(source / name, context / name)
        shutil.copytree(
            source / "operator", context / "operator", ignore=shutil.ignore_patterns("__pycache__")
        )
        wheels = context / "wheels"
        wheels.mkdir()
        print_progress("certsmith: fetching the operator's wheels for the image")
        run_command(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), str(source)]
        )
        run_command(
            [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheels), "setuptools>=77"]
        )
        print_progress(f"certsmith: building the image {tag} on {base}")
        run_command(
            [
                "docker",
                "build",
                "--quiet",
                "--build-arg",
                f"BASE={base}",
                "--build-arg",
                "PIP_NO_INDEX=1",
                "--tag",
                tag,
                "--tag",
                released,
                str(context),
            ]
        )
    return tag


def _ensure_base() -> str:
    if image_exists(BASE_IMAGE):
        return BASE_IMAGE
    tarball = default_cache_dir() / "images" / f"{BASE_IMAGE.replace(':', '-')}.tar"
    if not tarball.exists():
        require("debootstrap", "install it (Debian: apt-get install debootstrap)")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="certsmith-rootfs-") as directory:
            print_progress(
                f"certsmith: making the base image's root filesystem with debootstrap ({BASE_SUITE})"
            )
            run_command(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    BASE_SUITE,
                    directory,
                    BASE_MIRROR,
                ]
            )
            partial = tarball.with_suffix(".partial")
            excluded = [f"--exclude=./{path}/*" for path in BASE_TRIMMED]
            run_command(["tar", "-C", directory, *excluded, "-cf", str(partial), "."])
            partial.rename(tarball)
    print_progress(f"certsmith: importing {tarball.name} as {BASE_IMAGE}")
    with tarball.open("rb") as source:
        imported = subprocess.run(
            ["docker", "import", "-", BASE_IMAGE], stdin=source, capture_output=True, text=True, check=False
        )
    if imported.returncode != 0:
        raise ImageBuildError(f"docker import failed: {imported.stderr.strip()}")
    return BASE_IMAGE


def _source_hash(source: Path, base: str) -> str:
    digest = hashlib.sha256(base.encode())
    paths = [source / name for name in ("Dockerfile", ".dockerignore", "pyproject.toml")]
    paths += sorted(
        path
        for path in (source / "operator").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )
    for path in paths:
        digest.update(str(path.relative_to(source)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _remove_older_images() -> None:
    """Images of earlier source trees, and the build stages they left, are of no further use."""
    listed = subprocess.run(
        ["docker", "image", "ls", IMAGE, "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    older = listed.stdout.split()
    if older:
        subprocess.run(["docker", "image", "rm", "--force", *older], capture_output=True, check=False)
    subprocess.run(["docker", "image", "prune", "--force"], capture_output=True, check=False)


def image_exists(tag: str) -> bool:
    return (
        subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode == 0
    )


def require(command: str, fix: str) -> None:
    if shutil.which(command) is None:
        raise ImageBuildError(f"{command} is not installed: {fix}")


if __name__ == "__main__":
    print(ensure_image(source_tree(Path.cwd())))
