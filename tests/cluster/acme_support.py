"""The operator that the ACME cluster tests run beside their CA: one per test module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import Cluster, OperatorProcess, assert_no_key_material


@contextmanager
def acme_operator_process(
    cluster: Cluster,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    namespaces: str,
    http01_port: int,
    *arguments: str,
    metrics_port: int | None = None,
) -> Iterator[OperatorProcess]:
    """`certsmith run` for the namespaces matching `namespaces`, with a short backoff, answering HTTP-01 on
    127.0.0.1:`http01_port` (and serving metrics there when `metrics_port` is given); `arguments` are
    further flags. When the module is done its log, named after `name`, must hold no key material."""
    metrics = (
        ()
        if metrics_port is None
        else ("--metrics-port", str(metrics_port), "--metrics-address", "127.0.0.1")
    )
    process = OperatorProcess(
        cluster.kubeconfig,
        tmp_path_factory.mktemp(f"{name.lower()}-operator") / "operator.log",
        *("--namespace", namespaces, "--backoff-initial", "1s", "--backoff-max", "4s"),
        *("--acme-http01-port", str(http01_port), "--acme-http01-address", "127.0.0.1"),
        *metrics,
        *arguments,
    )
    process.start()
    yield process
    process.stop()
    print(f"{name} operator log: {process.log_path}")
    assert_no_key_material(process.log(), f"the {name} operator's log")
