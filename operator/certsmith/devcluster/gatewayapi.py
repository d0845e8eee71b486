"""The Gateway API's own CRDs (Gateway, GatewayClass), from its Go module: the shim's tests install the
real definitions rather than a hand-written subset."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from certsmith.devcluster.build import find_go, run_go
from certsmith.devcluster.versions import GATEWAY_API_VERSION

_CRDS = ("gateway.networking.k8s.io_gatewayclasses.yaml", "gateway.networking.k8s.io_gateways.yaml")


def gateway_api_crds() -> list[dict[str, Any]]:
    """The standard-channel GatewayClass and Gateway CRDs of GATEWAY_API_VERSION."""
    go = find_go()
    with tempfile.TemporaryDirectory(prefix="certsmith-gateway-api-") as scratch:
        download = run_go(
            go, ["mod", "download", "-json", f"sigs.k8s.io/gateway-api@{GATEWAY_API_VERSION}"], Path(scratch)
        )
    directory = Path(json.loads(download)["Dir"]) / "config" / "crd" / "standard"
    return [yaml.safe_load((directory / name).read_text()) for name in _CRDS]
