"""A real local Kubernetes control plane (etcd + kube-apiserver), built from Go modules and cached.

Used by `certsmith dev` and by the test suite::

    with ControlPlane() as cp:
        api = kubernetes.config.new_client_from_config(str(cp.kubeconfig))
"""

from certsmith.devcluster.build import Binaries, ControlPlaneBuildError, cached_binaries, ensure_binaries
from certsmith.devcluster.controlplane import ControlPlane, ControlPlaneSettings, ControlPlaneStartError
from certsmith.devcluster.processes import stop_signals_raise_keyboard_interrupt
from certsmith.devcluster.versions import ETCD_VERSION, KUBERNETES_VERSION

__all__ = [
    "ETCD_VERSION",
    "KUBERNETES_VERSION",
    "Binaries",
    "ControlPlane",
    "ControlPlaneBuildError",
    "ControlPlaneSettings",
    "ControlPlaneStartError",
    "cached_binaries",
    "ensure_binaries",
    "stop_signals_raise_keyboard_interrupt",
]
