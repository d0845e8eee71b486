"""`make kind`: certsmith installed from its image in a kind cluster, with the demo chain Ready.

With internet, kind's own node image and `docker build .` are used. Where pulling fails (these
machines reach no image registry), or with `--offline`, the node image and the operator image are
built here instead (`kindnode`, `image`). Either way the cluster runs certsmith as its Deployment,
under its ServiceAccount, exactly as `kubectl apply -k deploy/` installs it anywhere.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from certsmith import __version__
from certsmith.kube.client import api_client_from_kubeconfig
from certsmith_devtools.build import (
    ControlPlaneBuildError,
    cached_binaries,
    ensure_binaries,
    print_progress,
)
from certsmith_devtools.dev import demo_certificates
from certsmith_devtools.image import ImageBuildError, ensure_image
from certsmith_devtools.kindnode import (
    KIND_CONFIG,
    ensure_kind_cli,
    ensure_node_image,
    kind_default_node_image,
)
from certsmith_devtools.kit import not_ready
from certsmith_devtools.paths import DEMO, SourceTreeError, source_tree
from certsmith_devtools.processes import CommandFailedError, run_command

DEFAULT_NAME = "certsmith"
OPERATOR_IMAGE = f"certsmith:{__version__}"
NAMESPACE = "certsmith"


@dataclass(frozen=True)
class KindCluster:
    """A kind cluster certsmith is installed in; `kubeconfig` reaches its API server on 127.0.0.1."""

    name: str
    kubeconfig: Path
    kind: Path
    kubectl: Path

    def kubectl_run(self, *arguments: str, stdin: str | None = None) -> str:
        argv = [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), *arguments]
        return run_command(argv, stdin.encode() if stdin is not None else None)

    def api(self) -> client.ApiClient:
        return api_client_from_kubeconfig(self.kubeconfig)


def up(name: str, offline: bool, kubeconfig: Path, source: Path, network: str | None = None) -> KindCluster:
    """Create the cluster (or reuse one of that name), load the operator image built from the checkout
    `source` (see `paths.source_tree`), install its deploy/ and
    wait for the operator's Deployment to be available. kind merges the cluster's credentials into
    `kubeconfig` and makes its context (`kind-NAME`) the current one."""
    kind = ensure_kind_cli()
    existing = run_command([str(kind), "get", "clusters"]).split()
    environment = {"KIND_EXPERIMENTAL_DOCKER_NETWORK": network} if network else {}
    if name in existing:
        print_progress(f"certsmith kind: reusing the kind cluster {name}")
    else:
        node_image, config = (ensure_node_image(), KIND_CONFIG) if offline else _public_node_image()
        print_progress(
            f"certsmith kind: creating the kind cluster {name} from {node_image or 'the default image'}"
        )
        with _written(config) as config_file:
            create = [
                str(kind),
                "create",
                "cluster",
                "--name",
                name,
                "--wait",
                "5m",
                "--kubeconfig",
                str(kubeconfig),
            ]
            create += ["--image", node_image] if node_image else []
            create += ["--config", str(config_file)] if config_file else []
            run_command(create, environment=environment)
    run_command([str(kind), "export", "kubeconfig", "--name", name, "--kubeconfig", str(kubeconfig)])
    cluster = KindCluster(name, kubeconfig, kind, _kubectl())
    image = ensure_image(source) if offline else _docker_built_image(source)
    print_progress(f"certsmith kind: loading {image} into {name}")
    run_command([str(kind), "load", "docker-image", OPERATOR_IMAGE, "--name", name])
    print_progress("certsmith kind: kubectl apply --server-side -k deploy/")
    cluster.kubectl_run("apply", "--server-side", "--force-conflicts", "-k", str(source / "deploy"))
    if name in existing:
        cluster.kubectl_run("-n", NAMESPACE, "rollout", "restart", "deployment/certsmith")
    cluster.kubectl_run("-n", NAMESPACE, "rollout", "status", "deployment/certsmith", "--timeout=5m")
    return cluster


def existing(name: str, kubeconfig: Path) -> KindCluster:
    """A cluster `up` made earlier, as it is."""
    kind = ensure_kind_cli()
    run_command([str(kind), "export", "kubeconfig", "--name", name, "--kubeconfig", str(kubeconfig)])
    return KindCluster(name, kubeconfig, kind, _kubectl())


def down(name: str, network: str | None = None) -> None:
    """Delete the cluster, and the Docker network when it was made for this cluster alone."""
    kind = ensure_kind_cli()
    run_command([str(kind), "delete", "cluster", "--name", name])
    if network:
        subprocess.run(["docker", "network", "rm", network], capture_output=True, check=False)


def apply_demo(cluster: KindCluster, timeout: float = 180.0) -> None:
    """Apply the demo chain and wait until its Certificates are Ready."""
    cluster.kubectl_run("apply", "-f", str(DEMO))
    demo = demo_certificates(DEMO.read_text())
    wait_ready(cluster.api(), demo, timeout)


def wait_ready(api: client.ApiClient, certificates: Sequence[tuple[str, str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        waiting = not_ready(api, certificates)
        if not waiting:
            return
        if time.monotonic() > deadline:
            details = "; ".join(f"{name}: {why}" for name, why in waiting.items())
            raise TimeoutError(f"certificates not Ready after {timeout:.0f}s: {details}")
        time.sleep(0.5)


def _public_node_image() -> tuple[str | None, str | None]:
    """kind's default node image if it can be pulled, else the one built here (and its config)."""
    image = kind_default_node_image()
    pulled = subprocess.run(["docker", "pull", image], capture_output=True, text=True, check=False)
    if pulled.returncode == 0:
        return None, None
    print_progress(
        f"certsmith kind: cannot pull {image.split('@')[0]} ({pulled.stderr.strip()[:120]}); "
        f"building a node image here (offline)"
    )
    return ensure_node_image(), KIND_CONFIG


def _docker_built_image(source: Path) -> str:
    built = subprocess.run(
        ["docker", "build", "--tag", OPERATOR_IMAGE, str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode == 0:
        return OPERATOR_IMAGE
    print_progress(
        "certsmith kind: `docker build .` failed (no registry?); building the image here (offline)"
    )
    return ensure_image(source)


def _kubectl() -> Path:
    """The control plane's own kubectl (the version the tests build) if built, else the one on PATH."""
    cached = cached_binaries().kubectl
    if cached.is_file():
        return cached
    found = shutil.which("kubectl")
    return Path(found) if found else ensure_binaries().kubectl


@contextmanager
def _written(text: str | None) -> Iterator[Path | None]:
    if text is None:
        yield None
        return
    with tempfile.NamedTemporaryFile("w", prefix="certsmith-kind-", suffix=".yaml") as handle:
        handle.write(text)
        handle.flush()
        yield Path(handle.name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m certsmith_devtools.kind", description=__doc__)
    parser.add_argument("command", choices=("up", "down"))
    parser.add_argument("--name", default=DEFAULT_NAME, help="the kind cluster's name (default: %(default)s)")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="build the node and operator images here instead of pulling kindest/node and `docker build .`",
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=Path(
            os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube" / "config"
        ),
        help="the kubeconfig kind writes the cluster's context into (default: $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=Path(),
        metavar="DIR",
        help="certsmith's checkout, whose operator image and deploy/ are installed (default: this folder)",
    )
    options = parser.parse_args(argv)
    try:
        if options.command == "down":
            down(options.name)
            return 0
        options.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        cluster = up(options.name, options.offline, options.kubeconfig, source_tree(options.source))
        print_progress("certsmith kind: applying the demo chain")
        apply_demo(cluster)
    except (
        CommandFailedError,
        ImageBuildError,
        ControlPlaneBuildError,
        SourceTreeError,
        TimeoutError,
    ) as error:
        print(f"certsmith kind: {error}", file=sys.stderr)
        return 1
    print(_INSTRUCTIONS.format(name=options.name, kubeconfig=options.kubeconfig))
    return 0


_INSTRUCTIONS = """
certsmith runs in the kind cluster {name} (kubectl context kind-{name}, in {kubeconfig}),
installed with `kubectl apply -k deploy/`, and the demo chain is Ready. Try:

  kubectl -n certsmith get pods,lease                        # two replicas, one holds the Lease
  kubectl -n certsmith logs deploy/certsmith                 # JSON logs
  kubectl get certificates -A                                # the demo chain
  kubectl -n demo get secret server-tls -o jsonpath='{{.data.ca\\.crt}}' | base64 -d > /tmp/kind-ca.crt
  kubectl -n demo get secret server-tls -o jsonpath='{{.data.tls\\.crt}}' | base64 -d > /tmp/kind-server.crt
  openssl verify -CAfile /tmp/kind-ca.crt -untrusted /tmp/kind-server.crt /tmp/kind-server.crt
  make kind-test                                             # the Pod-level tests against it
  make kind-delete                                           # delete the cluster
"""


if __name__ == "__main__":
    sys.exit(main())
