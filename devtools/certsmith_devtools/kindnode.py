"""A kind node image made here, offline: `kindest/node` for machines that cannot pull it.

kind's own `kind build node-image` cannot be used offline: whatever the Kubernetes source, it fetches
the kindnetd, local-path-provisioner and kubeadm's etcd/pause/CoreDNS images from their registries
(`ctr content fetch`). This builder makes the same image from parts that build from the Go module
proxy and Debian's mirror, and does the steps kind's builder does (binaries into /usr/bin, images
into the node's containerd, /kind/version), with kind's own node files (entrypoint, systemd units,
containerd configuration) taken from the kind module:

- base: Debian bookworm by debootstrap with systemd, iptables, runc and the CNI plugins, plus
  containerd, ctr and the runc shim built from containerd's module, and runc-caps as `runc` (see
  kind_node/runc-caps.go: privileged Pods on hosts that lack a capability);
- binaries: kubeadm, kubelet, kubectl (Kubernetes' module, the control plane's version);
- images, each on an empty base with one static binary: kube-apiserver, kube-controller-manager,
  kube-scheduler, etcd, CoreDNS, pause; kube-proxy on the base (it runs iptables);
- networking: Debian's ptp plugin with a host-local range, configured in the image, instead of
  kindnetd (a cluster made from it has `networking.disableDefaultCNI: true`, see `KIND_CONFIG`), so
  it makes single-node clusters.

Everything is cached by content: the binaries under ~/.cache/certsmith/kind-…/bin, the root
filesystem as a tarball, the images under tags naming the hash of their inputs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from certsmith_devtools.build import (
    Progress,
    build_cached,
    build_go_module,
    build_kubernetes_commands,
    default_cache_dir,
    ensure_binaries,
    module_directory,
    print_progress,
    run_go,
)
from certsmith_devtools.image import ImageBuildError, image_exists, require
from certsmith_devtools.processes import run_command
from certsmith_devtools.versions import (
    CONTAINERD_VERSION,
    COREDNS_VERSION,
    ETCD_VERSION,
    KIND_VERSION,
    KUBERNETES_VERSION,
)

NODE_KUBERNETES_COMMANDS = ("kubeadm", "kubelet", "kube-proxy", "kube-scheduler")
CONTAINERD_COMMANDS = ("containerd", "ctr", "containerd-shim-runc-v2")
_CONTAINERD_TAGS = ("no_btrfs", "no_devmapper", "no_zfs", "no_aufs")
_OWN_PROGRAMS = Path(__file__).with_name("kind_node")
"""pause.go (the sandbox process) and runc-caps.go (runc for hosts that lack a capability)."""


@dataclass(frozen=True)
class NodeBinaries:
    """The executables a kind node image is made of, besides the control plane's own."""

    directory: Path
    names = (*NODE_KUBERNETES_COMMANDS, *CONTAINERD_COMMANDS, "coredns", "pause", "runc-caps")

    def __getitem__(self, name: str) -> Path:
        if name not in self.names:
            raise KeyError(name)
        return self.directory / name

    def complete(self) -> bool:
        return all((self.directory / name).is_file() for name in self.names)


def cached_node_binaries(cache_dir: Path | None = None) -> NodeBinaries:
    root = cache_dir or default_cache_dir()
    own = hashlib.sha256(b"".join(path.read_bytes() for path in sorted(_OWN_PROGRAMS.glob("*.go"))))
    key = (
        f"kubernetes-{KUBERNETES_VERSION}_containerd-{CONTAINERD_VERSION}_coredns-{COREDNS_VERSION}"
        f"_own-{own.hexdigest()[:8]}"
    )
    return NodeBinaries(root / f"kind-{KIND_VERSION}_{key}" / "bin")


def ensure_node_binaries(cache_dir: Path | None = None, progress: Progress | None = None) -> NodeBinaries:
    """Return the node's binaries, building those missing from the Go module proxy first."""
    binaries = cached_node_binaries(cache_dir)
    if binaries.complete():
        return binaries
    say = progress or print_progress

    def build(go: str, work: Path, staged: Path) -> None:
        say(
            f"certsmith: building {', '.join(NODE_KUBERNETES_COMMANDS)} "
            f"{KUBERNETES_VERSION}, containerd {CONTAINERD_VERSION} and CoreDNS {COREDNS_VERSION} "
            f"for the offline kind node image (first run only; this takes several minutes)"
        )
        build_kubernetes_commands(go, work / "kubernetes", staged, NODE_KUBERNETES_COMMANDS)
        build_go_module(
            go,
            work / "containerd",
            f"github.com/containerd/containerd/v2 {CONTAINERD_VERSION}",
            [f"github.com/containerd/containerd/v2/cmd/{command}" for command in CONTAINERD_COMMANDS],
            staged,
            tags=_CONTAINERD_TAGS,
        )
        build_go_module(
            go,
            work / "coredns",
            f"github.com/coredns/coredns {COREDNS_VERSION}",
            ["github.com/coredns/coredns"],
            staged,
        )
        for program in ("pause", "runc-caps"):
            _build_own_program(go, program, work, staged)
        say(f"certsmith: kind node binaries cached in {binaries.directory}")

    build_cached(binaries.directory, binaries.complete, build)
    return binaries


def ensure_kind_cli(cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """The `kind` command of KIND_VERSION, built from its module the first time."""
    kind = cached_node_binaries(cache_dir).directory / "kind"

    def build(go: str, work: Path, staged: Path) -> None:
        (progress or print_progress)(f"certsmith: building kind {KIND_VERSION} (first run only)")
        build_go_module(go, work / "kind", f"sigs.k8s.io/kind {KIND_VERSION}", ["sigs.k8s.io/kind"], staged)

    if not kind.is_file():
        build_cached(kind.parent, kind.is_file, build)
    return kind


def _build_own_program(go: str, name: str, work: Path, out_dir: Path) -> None:
    """One of kind_node/'s single-file programs (standard library only)."""
    source = _OWN_PROGRAMS / f"{name}.go"
    run_go(go, ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out_dir / name), str(source)], work)


NODE_PACKAGES = (
    "systemd",
    "dbus",
    "conntrack",
    "iptables",
    "nftables",
    "iproute2",
    "ethtool",
    "util-linux",
    "mount",
    "kmod",
    "libseccomp2",
    "pigz",
    "bash",
    "ca-certificates",
    "procps",
    "jq",
    "runc",
    "containernetworking-plugins",
)
"""kind's base image packages that a single-node cluster uses, with Debian's runc and CNI plugins."""
POD_SUBNET = "10.244.0.0/16"
NODE_POD_RANGE = "10.244.0.0/24"
CNI_CONFIG = {
    "cniVersion": "1.0.0",
    "name": "kind",
    "plugins": [
        {
            "type": "ptp",
            "ipMasq": True,
            "mtu": 1500,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": NODE_POD_RANGE}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        },
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}
"""Point-to-point pod networking within the one node (what kindnetd sets up per node, without it)."""
KIND_CONFIG = f"""kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  disableDefaultCNI: true
  podSubnet: "{POD_SUBNET}"
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  failCgroupV1: false
"""
"""The cluster configuration for the offline image: its own CNI, and a kubelet that runs on hosts with
cgroup v1 (Kubernetes 1.35+ refuses them unless told; this machine's Docker has cgroup v1)."""
_TRIMMED = ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man", "usr/share/locale")
_SUITE = "bookworm"
_MIRROR = "http://deb.debian.org/debian"


def ensure_node_image(cache_dir: Path | None = None, progress: Progress | None = None) -> str:
    """The tag of the offline kind node image for the pinned versions, built if not there yet."""
    say = progress or print_progress
    require("docker", "install Docker (Debian: apt-get install docker.io) and start dockerd")
    binaries = ensure_node_binaries(cache_dir, say)
    control_plane = ensure_binaries(cache_dir, say)
    base = _ensure_base(binaries, cache_dir, say)
    tag = f"certsmith-kind-node:{KUBERNETES_VERSION}-{_node_key(base)}"
    if image_exists(tag):
        return tag
    _remove_images("certsmith-kind-node", f"{KUBERNETES_VERSION}-")
    say(f"certsmith: building the kind node image {tag}")
    with tempfile.TemporaryDirectory(prefix="certsmith-kind-images-") as scratch:
        archive = _component_images(base, binaries, control_plane.directory, Path(scratch), say)
        _assemble_node(base, binaries, control_plane.kubectl, archive, tag)
    return tag


def _ensure_base(binaries: NodeBinaries, cache_dir: Path | None, say: Progress) -> str:
    recipe = json.dumps(
        [
            _SUITE,
            NODE_PACKAGES,
            _TRIMMED,
            CNI_CONFIG,
            KIND_VERSION,
            CONTAINERD_VERSION,
            (_OWN_PROGRAMS / "runc-caps.go").read_text(),
        ],
        sort_keys=True,
    )
    tag = f"certsmith-kind-base:{_SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if image_exists(tag):
        return tag
    _remove_images("certsmith-kind-base")
    tarball = (cache_dir or default_cache_dir()) / "images" / f"{tag.replace(':', '-')}.tar"
    if not tarball.exists():
        require("debootstrap", "install it (Debian: apt-get install debootstrap)")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        for older in tarball.parent.glob("certsmith-kind-base-*.tar"):
            older.unlink()
        with tempfile.TemporaryDirectory(prefix="certsmith-kind-rootfs-") as directory:
            root = Path(directory)
            say(f"certsmith: making the kind node's root filesystem with debootstrap ({_SUITE})")
            run_command(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(NODE_PACKAGES)}",
                    _SUITE,
                    directory,
                    _MIRROR,
                ]
            )
            _install_kind_files(root)
            _install_containerd(root, binaries)
            partial = tarball.with_suffix(".partial")
            run_command(
                [
                    "tar",
                    "-C",
                    directory,
                    *(f"--exclude=./{path}/*" for path in _TRIMMED),
                    "-cf",
                    str(partial),
                    ".",
                ]
            )
            partial.rename(tarball)
    say(f"certsmith: importing {tarball.name} as {tag}")
    imported = f"{tag}-rootfs"
    run_command(["docker", "import", str(tarball), imported])
    try:  # `docker import --change` knows no STOPSIGNAL
        run_command(
            ["docker", "build", "--quiet", "--tag", tag, "-"],
            stdin=(
                f"FROM {imported}\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\n"
                'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n'
            ).encode(),
        )
    finally:
        subprocess.run(["docker", "image", "rm", imported], capture_output=True, check=False)
    return tag


def _remove_images(repository: str, tag_prefix: str = "") -> None:
    """Images of earlier builds of the node or its base are of no further use; a node image of another
    Kubernetes version (`tag_prefix` keeps to one) may still be what a checkout on that version runs."""
    listed = run_command(["docker", "image", "ls", repository, "--format", "{{.Repository}}:{{.Tag}}"])
    stale = [image for image in listed.split() if image.partition(":")[2].startswith(tag_prefix)]
    if stale:
        run_command(["docker", "image", "rm", "--force", *stale])


def _install_kind_files(root: Path) -> None:
    """What kind's images/base Dockerfile does to a Debian root, with kind's files from its module."""
    files = _kind_module() / "images" / "base" / "files"
    shutil.copytree(files / "usr" / "local" / "bin", root / "usr" / "local" / "bin", dirs_exist_ok=True)
    shutil.copytree(files / "kind", root / "kind")
    shutil.copytree(files / "etc", root / "etc", dirs_exist_ok=True)
    for path in [
        root / "kind",
        *(root / "kind").rglob("*"),
        root / "usr/local/bin",
        *(root / "usr/local/bin").iterdir(),
    ]:
        executable = path.is_dir() or path.parent.name == "bin"
        path.chmod(0o755 if executable else 0o644)
    for path in (root / "etc").rglob("*"):
        if path.is_file() and path.stat().st_mode & 0o200 == 0:  # read-only copies from the module cache
            path.chmod(0o644)
    for wants in (
        "lib/systemd/system/multi-user.target.wants",
        "lib/systemd/system/local-fs.target.wants",
        "lib/systemd/system/basic.target.wants",
        "etc/systemd/system",
    ):
        for link in (root / wants).glob("*.wants/*" if wants == "etc/systemd/system" else "*"):
            link.unlink()
    for pattern in (
        "sockets.target.wants/*udev*",
        "sockets.target.wants/*initctl*",
        "sysinit.target.wants/systemd-tmpfiles-setup.service",
    ):
        for link in (root / "lib/systemd/system").glob(pattern):
            link.unlink()
    containerd_config = root / "etc/containerd/config.toml"
    containerd_config.write_text(_restricted_oom_score_adj(containerd_config.read_text()))
    with (root / "etc/systemd/journald.conf").open("a") as journald:
        journald.write("ReadKMsg=no\n")
    (root / "sbin/init").unlink(missing_ok=True)
    (root / "sbin/init").symlink_to("/usr/lib/systemd/systemd")
    run_command(
        [
            "chroot",
            str(root),
            "systemctl",
            "enable",
            "kubelet.service",
            "containerd.service",
            "undo-mount-hacks.service",
        ]
    )
    run_command(["chroot", str(root), "systemctl", "mask", "systemd-binfmt.service"])
    (root / "etc/kubernetes/manifests").mkdir(parents=True)
    cni_bin = root / "opt/cni/bin"
    cni_bin.mkdir(parents=True)
    for plugin in (root / "usr/lib/cni").iterdir():
        (cni_bin / plugin.name).symlink_to(f"/usr/lib/cni/{plugin.name}")
    net_d = root / "etc/cni/net.d"
    net_d.mkdir(parents=True, exist_ok=True)
    (net_d / "10-kind-ptp.conflist").write_text(json.dumps(CNI_CONFIG, indent=2) + "\n")


def _restricted_oom_score_adj(config: str) -> str:
    """containerd never gives a container a lower OOM score than its own: lowering one needs
    CAP_SYS_RESOURCE, which hosts such as these CI machines withhold (runc then fails to start any
    sandbox). kind sets the same for rootless nodes."""
    restricted = config.replace("restrict_oom_score_adj = false", "restrict_oom_score_adj = true")
    if restricted == config:
        raise ImageBuildError(
            f"kind {KIND_VERSION}'s containerd config.toml no longer sets restrict_oom_score_adj"
        )
    return restricted


def _install_containerd(root: Path, binaries: NodeBinaries) -> None:
    for command in CONTAINERD_COMMANDS:
        shutil.copy2(binaries[command], root / "usr/local/bin" / command)
    shutil.copy2(binaries["runc-caps"], root / "usr/local/sbin" / "runc")  # before /usr/sbin/runc on PATH
    spec = json.loads(run_command([str(binaries["ctr"]), "oci", "spec"]))
    spec.setdefault("hooks", {}).setdefault("createContainer", []).append(
        {"path": "/kind/bin/mount-product-files.sh"}
    )
    spec["process"].pop("rlimits", None)
    (root / "etc/containerd/cri-base.json").write_text(json.dumps(spec, indent=2) + "\n")


def kind_default_node_image() -> str:
    """The `kindest/node` image (with its digest) kind creates clusters from by default."""
    source = (_kind_module() / "pkg/apis/config/defaults/image.go").read_text()
    found = re.search(r'const Image = "([^"]+)"', source)
    if found is None:
        raise ImageBuildError(f"kind {KIND_VERSION}'s pkg/apis/config/defaults/image.go names no image")
    return found[1]


@functools.cache
def _kind_module() -> Path:
    return module_directory(f"sigs.k8s.io/kind@{KIND_VERSION}")


def _node_key(base: str) -> str:
    inputs = [
        base,
        KUBERNETES_VERSION,
        ETCD_VERSION,
        COREDNS_VERSION,
        (_OWN_PROGRAMS / "pause.go").read_text(),
    ]
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class _ComponentImage:
    names: tuple[str, ...]
    binary: Path
    path: str
    version: str
    on_base: bool = False


def _component_images(
    base: str, binaries: NodeBinaries, control_plane: Path, scratch: Path, say: Progress
) -> Path:
    """Build the images kubeadm runs, saved into one archive for the node's containerd; the images
    themselves are removed from Docker again (only the node image is kept)."""
    wanted = run_command(
        [str(binaries["kubeadm"]), "config", "images", "list", "--kubernetes-version", KUBERNETES_VERSION]
    )
    by_name = {line.rsplit("/", 1)[-1].split(":")[0]: line.strip() for line in wanted.split()}
    components = [
        *(
            _ComponentImage(
                (by_name[name],), control_plane / name, f"/usr/local/bin/{name}", KUBERNETES_VERSION
            )
            for name in ("kube-apiserver", "kube-controller-manager")
        ),
        _ComponentImage(
            (by_name["kube-scheduler"],),
            binaries["kube-scheduler"],
            "/usr/local/bin/kube-scheduler",
            KUBERNETES_VERSION,
        ),
        _ComponentImage(
            (by_name["kube-proxy"],),
            binaries["kube-proxy"],
            "/usr/local/bin/kube-proxy",
            KUBERNETES_VERSION,
            on_base=True,
        ),
        _ComponentImage((by_name["etcd"],), control_plane / "etcd", "/usr/local/bin/etcd", ETCD_VERSION),
        _ComponentImage((by_name["coredns"],), binaries["coredns"], "/coredns", COREDNS_VERSION),
        _ComponentImage((by_name["pause"], _sandbox_image()), binaries["pause"], "/pause", "certsmith"),
    ]
    tags: list[str] = []
    try:
        for component in components:
            say(
                f"certsmith: image {', '.join(component.names)} ({component.binary.name} {component.version})"
            )
            context = scratch / component.binary.name
            context.mkdir()
            shutil.copy2(component.binary, context / component.binary.name)
            (context / "Dockerfile").write_text(
                f"FROM {base if component.on_base else 'scratch'}\n"
                f"LABEL org.opencontainers.image.version={component.version}\n"
                f"COPY {component.binary.name} {component.path}\n"
                f'ENTRYPOINT ["{component.path}"]\n'
            )
            run_command(
                ["docker", "build", "--quiet", *(f"--tag={name}" for name in component.names), str(context)]
            )
            tags += component.names
        archive = scratch / "images.tar"
        run_command(["docker", "save", "--output", str(archive), *tags])
    finally:
        if tags:
            subprocess.run(["docker", "image", "rm", *tags], capture_output=True, check=False)
    return archive


def _sandbox_image() -> str:
    """The pause image kind's containerd configuration names (kind's builder uses it over kubeadm's)."""
    config = (_kind_module() / "images/base/files/etc/containerd/config.toml").read_text()
    return next(
        line.split("=", 1)[1].strip().strip('"')
        for line in config.splitlines()
        if line.strip().startswith("sandbox_image")
    )


def _assemble_node(base: str, binaries: NodeBinaries, kubectl: Path, archive: Path, tag: str) -> None:
    """kind's node-image build: binaries into /usr/bin, images into containerd, then commit."""
    container = f"certsmith-kind-build-{tag.rsplit('-', 1)[-1]}"
    run_command(
        [
            "docker",
            "run",
            "--detach",
            "--entrypoint=sleep",
            f"--name={container}",
            "--security-opt",
            "seccomp=unconfined",
            base,
            "infinity",
        ]
    )
    try:
        for binary in (binaries["kubeadm"], binaries["kubelet"], kubectl):
            run_command(["docker", "cp", str(binary), f"{container}:/usr/bin/{binary.name}"])
        run_command(["docker", "exec", container, "sh", "-c", f"echo {KUBERNETES_VERSION} > /kind/version"])
        run_command(["docker", "exec", "--detach", container, "containerd"])
        run_command(
            [
                "docker",
                "exec",
                container,
                "sh",
                "-c",
                "for i in $(seq 50); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.2; done; ctr version",
            ]
        )
        run_command(
            [
                "docker",
                "exec",
                "--interactive",
                container,
                "ctr",
                "--namespace=k8s.io",
                "images",
                "import",
                "--label=io.cri-containerd.pinned=pinned",
                "--all-platforms",
                "--no-unpack",
                "--digests",
                "-",
            ],
            stdin=archive.read_bytes(),
        )
        run_command(["docker", "exec", container, "pkill", "containerd"])
        run_command(
            [
                "docker",
                "commit",
                "--change",
                'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
                container,
                tag,
            ]
        )
    finally:
        subprocess.run(["docker", "rm", "--force", "--volumes", container], capture_output=True, check=False)


if __name__ == "__main__":
    print(ensure_node_image())
