"""An API server that resets connections — at the operator's start, or while it runs — delays the
operator, never silences it: it retries (and says so), serves once the API server answers, and
`/readyz` follows. Each operator reaches the API server through a proxy that can reset connections."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from certsmith_devtools.kit import free_port
from tests.cluster.proxy import ApiProxy
from tests.cluster.support import create, create_certificate, eventually, http_status, wait_ready
from tests.conftest import Cluster, OperatorProcess

pytestmark = pytest.mark.cluster

OUTAGE_SECONDS = 8


def _through(proxy: ApiProxy, cluster: Cluster, path: Path) -> Path:
    """`cluster`'s kubeconfig, with the proxy as the API server's address."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path.write_text(yaml.safe_dump(config))
    return path


def _operator(
    cluster: Cluster, proxy: ApiProxy, namespace: str, tmp_path: Path
) -> tuple[OperatorProcess, int]:
    port = free_port()
    kubeconfig = _through(proxy, cluster, tmp_path / "kubeconfig")
    process = OperatorProcess(
        kubeconfig, tmp_path / "operator.log", "--namespace", namespace, "--health-port", str(port)
    )
    return process, port


def _serves(operator: OperatorProcess, port: int) -> bool:
    assert operator.exit_code is None, (
        f"the operator exited ({operator.exit_code}):\n{operator.log()[-3000:]}"
    )
    return http_status(port, "/readyz") == 200


def test_an_operator_started_while_the_api_server_resets_connections_serves_once_it_answers(
    cluster: Cluster, proxy: ApiProxy, solo_namespace: str, tmp_path: Path
) -> None:
    proxy.reset_until = float("inf")
    operator, port = _operator(cluster, proxy, solo_namespace, tmp_path)
    operator.start()
    try:
        eventually(lambda: proxy.resets, 60, "the operator to meet the outage")
        proxy.reset_until = time.monotonic() + OUTAGE_SECONDS
        assert http_status(port, "/readyz") == 503, "not ready while the API server resets connections"
        eventually(lambda: _serves(operator, port), 60, "the operator to serve after the outage")
        assert "listing Secrets and issuers failed (attempt 1:" in operator.log()
        create(cluster, solo_namespace, "Issuer", "selfsigned", {"selfSigned": {}})
        create_certificate(cluster, solo_namespace, "after", "selfsigned", commonName="after")
        wait_ready(cluster, solo_namespace, "after", timeout=60)
        assert _serves(operator, port)
    finally:
        operator.stop()


def test_an_operator_whose_connections_are_dropped_mid_run_carries_on(
    cluster: Cluster, proxy: ApiProxy, solo_namespace: str, tmp_path: Path
) -> None:
    operator, port = _operator(cluster, proxy, solo_namespace, tmp_path)
    operator.start()
    try:
        create(cluster, solo_namespace, "Issuer", "selfsigned", {"selfSigned": {}})
        create_certificate(cluster, solo_namespace, "before", "selfsigned", commonName="before")
        wait_ready(cluster, solo_namespace, "before", timeout=60)
        proxy.reset_until = time.monotonic() + OUTAGE_SECONDS
        proxy.drop()
        create_certificate(cluster, solo_namespace, "during", "selfsigned", commonName="during")
        time.sleep(OUTAGE_SECONDS)
        assert proxy.resets, "the operator met the outage"
        create_certificate(cluster, solo_namespace, "after", "selfsigned", commonName="after")
        # The first write after the drop may go out on a pooled connection the drop closed: that attempt
        # fails like any other (APIUnreachable, in the status) and is retried after --backoff-initial (1m).
        wait_ready(cluster, solo_namespace, "during", timeout=70 + 60)
        wait_ready(cluster, solo_namespace, "after", timeout=60)
        assert _serves(operator, port)
    finally:
        operator.stop()
