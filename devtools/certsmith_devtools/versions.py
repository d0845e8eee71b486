"""The versions of the control-plane components certsmith builds and tests against.

Bumping one of these is the whole upgrade: the build cache is keyed by them.
"""

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.7.0"
MINIMUM_GO = (1, 26)


def staging_version(kubernetes_version: str = KUBERNETES_VERSION) -> str:
    """The version of k8s.io/api, client-go, ... published with a Kubernetes release (v1.36.3 -> v0.36.3)."""
    _, minor, patch = kubernetes_version.removeprefix("v").split(".")
    return f"v0.{minor}.{patch}"


KIND_VERSION = "v0.33.0"
"""sigs.k8s.io/kind: the CLI, and the node image's files (entrypoint, systemd units, containerd config)."""
CONTAINERD_VERSION = "v2.3.4"
"""The containerd kind v0.33.0's own base image ships (Kubernetes 1.36 and later need containerd 2)."""
COREDNS_VERSION = "v1.14.6"
"""The CoreDNS kubeadm v1.37 deploys."""
GATEWAY_API_VERSION = "v1.4.0"
"""sigs.k8s.io/gateway-api: its standard Gateway and GatewayClass CRDs, installed by tests of the shim."""
ZLINT_VERSION = "v3.7.3"
"""github.com/zmap/zlint/v3: the X.509 linter the tests run on every kind of certificate certsmith makes."""
HELM_VERSION = "v4.3.2"
"""helm.sh/helm/v4: lints, renders and installs charts/certsmith in the tests."""
KUBE_SCORE_VERSION = "v1.20.0"
"""github.com/zegl/kube-score: lints deploy/install.yaml and the chart's default rendering."""
