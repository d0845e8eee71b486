"""The Gateway API's own CRDs (Gateway, GatewayClass), from its Go module: the shim's tests install the
real definitions rather than a hand-written subset."""

from __future__ import annotations

from typing import Any

import yaml

from certsmith_devtools.build import module_directory
from certsmith_devtools.versions import GATEWAY_API_VERSION

_CRDS = ("gateway.networking.k8s.io_gatewayclasses.yaml", "gateway.networking.k8s.io_gateways.yaml")


def gateway_api_crds() -> list[dict[str, Any]]:
    """The standard-channel GatewayClass and Gateway CRDs of GATEWAY_API_VERSION."""
    directory = (
        module_directory(f"sigs.k8s.io/gateway-api@{GATEWAY_API_VERSION}") / "config" / "crd" / "standard"
    )
    return [yaml.safe_load((directory / name).read_text()) for name in _CRDS]
