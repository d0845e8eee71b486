"""Build etcd, kube-apiserver, kube-controller-manager and kubectl from Go modules, once per version.

`go install k8s.io/kubernetes/cmd/...@version` does not work: k8s.io/kubernetes requires its ~31
staging modules (k8s.io/api, client-go, ...) at `v0.0.0` and fixes them with `replace` directives
that only apply inside its own repository. A tiny wrapper module that requires k8s.io/kubernetes and
replaces each of those `v0.0.0` requirements with the published `v0.<minor>.<patch>` builds with a
plain `go build`. etcd's server has the same problem with its own replaces, so it gets a wrapper too.

The binaries land in a per-user cache directory keyed by the versions; a warm start finds them there
and never runs the Go toolchain or touches the network.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from certsmith_devtools.versions import (
    ETCD_VERSION,
    KUBERNETES_VERSION,
    MINIMUM_GO,
    staging_version,
)

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kubectl")
_STAGING_REQUIREMENT = re.compile(r"^\s*(k8s\.io/[A-Za-z0-9._-]+) v0\.0\.0\s*$", re.MULTILINE)
_OUTPUT_TAIL_LINES = 40
_GO_DEFAULT_INSTALL_DIR = "/usr/local/go/bin"  # where go.dev's tarball puts it, often not on PATH

Progress = Callable[[str], None]


class ControlPlaneBuildError(RuntimeError):
    """The control-plane binaries could not be built; the message says what to do about it."""


@dataclass(frozen=True)
class Binaries:
    """Paths of the control-plane executables in the build cache."""

    directory: Path

    @property
    def etcd(self) -> Path:
        return self.directory / "etcd"

    @property
    def kube_apiserver(self) -> Path:
        return self.directory / "kube-apiserver"

    @property
    def kube_controller_manager(self) -> Path:
        return self.directory / "kube-controller-manager"

    @property
    def kubectl(self) -> Path:
        return self.directory / "kubectl"

    def all(self) -> tuple[Path, ...]:
        return (self.etcd, self.kube_apiserver, self.kube_controller_manager, self.kubectl)

    def complete(self) -> bool:
        return all(path.is_file() and os.access(path, os.X_OK) for path in self.all())


def default_cache_dir() -> Path:
    """`$CERTSMITH_CACHE_DIR`, else `$XDG_CACHE_HOME/certsmith`, else `~/.cache/certsmith`."""
    explicit = os.environ.get("CERTSMITH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "certsmith"


def cached_binaries(cache_dir: Path | None = None) -> Binaries:
    """Where the binaries for the pinned versions live (built or not)."""
    root = cache_dir or default_cache_dir()
    return Binaries(root / f"kubernetes-{KUBERNETES_VERSION}_etcd-{ETCD_VERSION}" / "bin")


def ensure_binaries(cache_dir: Path | None = None, progress: Progress | None = None) -> Binaries:
    """Return the cached binaries, building them first if any is missing."""
    binaries = cached_binaries(cache_dir)
    if binaries.complete():
        return binaries
    say = progress or print_progress

    def build(go: str, work: Path, staged: Path) -> None:
        say(
            f"certsmith: building kube-apiserver, kube-controller-manager and kubectl "
            f"{KUBERNETES_VERSION} and etcd {ETCD_VERSION} with {go} "
            f"(first run only; this takes several minutes)"
        )
        build_kubernetes_commands(go, work / "kubernetes", staged, KUBERNETES_COMMANDS)
        build_go_module(
            go,
            work / "etcd",
            f"go.etcd.io/etcd/server/v3 {ETCD_VERSION}",
            ["go.etcd.io/etcd/server/v3"],
            staged,
        )
        (staged / "server").rename(staged / "etcd")  # go names a binary after .../server/v3's "server"
        say(f"certsmith: control-plane binaries cached in {binaries.directory}")

    build_cached(binaries.directory, binaries.complete, build)
    return binaries


def build_cached(
    directory: Path, complete: Callable[[], bool], build: Callable[[str, Path, Path], None]
) -> None:
    """Run `build(go, work, staged)` unless `complete()`, under a lock that serialises every build in
    `directory`'s parent (a test run and `certsmith dev` started together), in a scratch directory; what
    it left in `staged` is moved into `directory` only when it has all been built."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(directory.parent / "build.lock"):
        if complete():
            return
        go = find_go()
        with tempfile.TemporaryDirectory(prefix="build-", dir=directory.parent) as scratch:
            work = Path(scratch)
            staged = work / "bin"
            staged.mkdir()
            build(go, work, staged)
            directory.mkdir(exist_ok=True)
            for built in staged.iterdir():
                built.replace(directory / built.name)


def build_kubernetes_commands(go: str, module_dir: Path, out_dir: Path, commands: Sequence[str]) -> None:
    """Build `k8s.io/kubernetes/cmd/<command>` for each command, versioned as KUBERNETES_VERSION."""
    staging = _staging_modules(go, module_dir.parent)
    replaces = "\n".join(f"\t{module} => {module} {staging_version()}" for module in staging)
    major, minor, _ = KUBERNETES_VERSION.removeprefix("v").split(".")
    version_flags = " ".join(
        f"-X k8s.io/component-base/version.{name}={value}"
        for name, value in (("gitVersion", KUBERNETES_VERSION), ("gitMajor", major), ("gitMinor", minor))
    )
    build_go_module(
        go,
        module_dir,
        requirement=f"k8s.io/kubernetes {KUBERNETES_VERSION}\n\nreplace (\n{replaces}\n)",
        packages=[f"k8s.io/kubernetes/cmd/{command}" for command in commands],
        out_dir=out_dir,
        ldflags=f"{version_flags} -X k8s.io/client-go/pkg/version.gitVersion={KUBERNETES_VERSION}",
    )


def build_go_module(
    go: str,
    module_dir: Path,
    requirement: str,
    packages: Sequence[str],
    out_dir: Path,
    ldflags: str = "",
    tags: Sequence[str] = (),
) -> None:
    """Build main packages of a published module from a wrapper module that requires it.

    `go install module@version` refuses modules with `replace` directives (Kubernetes, etcd); a
    wrapper module's `go build` does not, and is the one way every binary here is built.
    """
    module_dir.mkdir()
    name = module_dir.name
    (module_dir / "go.mod").write_text(
        f"module certsmith.dev/build/{name}\n\ngo 1.26.0\n\nrequire {requirement}\n"
    )
    _write_tools_file(module_dir, packages)
    run_go(go, ["mod", "tidy"], module_dir)
    flags = ["-trimpath", "-ldflags", f"-s -w {ldflags}".strip()]
    if tags:
        flags += ["-tags", ",".join(tags)]
    run_go(go, ["build", *flags, "-o", f"{out_dir}/", *packages], module_dir)


def module_directory(module: str) -> Path:
    """Where the Go module cache holds `module` ("path@version"), downloaded first if need be: for files
    a module ships besides code (kind's node files, the Gateway API's CRDs)."""
    go = find_go()
    with tempfile.TemporaryDirectory(prefix="certsmith-module-") as scratch:
        download = run_go(go, ["mod", "download", "-json", module], Path(scratch))
    return Path(json.loads(download)["Dir"])


def _staging_modules(go: str, work_dir: Path) -> list[str]:
    """The k8s.io modules that k8s.io/kubernetes requires at v0.0.0 (its in-repo staging modules)."""
    download = run_go(go, ["mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"], work_dir)
    go_mod = Path(json.loads(download)["GoMod"]).read_text()
    modules = sorted(set(_STAGING_REQUIREMENT.findall(go_mod)))
    if not modules:
        raise ControlPlaneBuildError(
            f"k8s.io/kubernetes {KUBERNETES_VERSION} lists no v0.0.0 staging requirements in its go.mod; "
            f"the wrapper-module build in {__name__} needs updating for this release"
        )
    return modules


def _write_tools_file(module_dir: Path, packages: Sequence[str]) -> None:
    imports = "\n".join(f'\t_ "{package}"' for package in packages)
    (module_dir / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")


def run_go(go: str, args: list[str], cwd: Path) -> str:
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    command = [go, *args]
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-_OUTPUT_TAIL_LINES:])
        raise ControlPlaneBuildError(
            f"building the local control plane failed: `{' '.join(command)}` (in {cwd}) exited with "
            f"{completed.returncode}. Last lines of its output:\n{tail}\n"
            f"Check that the Go module proxy is reachable (GOPROXY={env.get('GOPROXY', 'default')}) "
            f"and that {go} is Go >= {'.'.join(map(str, MINIMUM_GO))}."
        )
    return completed.stdout


def find_go() -> str:
    go = shutil.which("go") or shutil.which("go", path=_GO_DEFAULT_INSTALL_DIR)
    install_hint = (
        f"Go >= {'.'.join(map(str, MINIMUM_GO))} is needed once, to build "
        f"kube-apiserver {KUBERNETES_VERSION} "
        f"and etcd {ETCD_VERSION} for the local control plane. Install it from https://go.dev/dl/ "
        f"(or your distribution's package) and put `go` on PATH, then run this again."
    )
    if go is None:
        raise ControlPlaneBuildError(f"`go` was not found on PATH. {install_hint}")
    version = subprocess.run(
        [go, "env", "GOVERSION"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOTOOLCHAIN": "local"},
    ).stdout.strip()
    found = re.match(r"go(\d+)\.(\d+)", version)
    if found is None or (int(found[1]), int(found[2])) < MINIMUM_GO:
        raise ControlPlaneBuildError(f"{go} reports version {version or 'unknown'}. {install_hint}")
    return go


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Serialise builds between processes (a test run and `certsmith dev` started together)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
