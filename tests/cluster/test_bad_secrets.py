"""Bad values in users' Secrets, against a real Pebble and BIND: the issuer says which field and what
to do, and no ACME order is made until the Secret is fixed; then it issues. A Secret that cannot be
written because its namespace is missing says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from certsmith.kube.port import ApiServer, NamespaceNotFoundError, SecretConflictError
from certsmith.tls_secret import SecretContents
from certsmith_devtools.bind import TSIG_KEY_NAME, Bind
from certsmith_devtools.kit import condition
from certsmith_devtools.pebble import EAB_KEY_ID, Pebble
from tests.cluster.support import (
    certificate,
    create_certificate,
    create_secret,
    events,
    eventually,
    wait_ready,
)
from tests.cluster.test_acme import (
    acme_issuer,
    acme_namespace,
    acme_operator,
    eab_pebble,
    http01_port,
    issuer_reason,
    metrics_port,
)
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster
__all__ = ["acme_namespace", "acme_operator", "eab_pebble", "http01_port", "metrics_port"]  # fixtures


def test_a_tsig_secret_that_is_not_base64_makes_no_order_until_it_is_fixed(
    cluster: Cluster, tmp_path: Path, http01_port: int, acme_namespace: str
) -> None:
    with (
        Bind(tmp_path / "bind", "example.test") as bind,
        Pebble(tmp_path / "pebble", http01_port, dns_server=bind.address) as server,
    ):
        create_secret(cluster, acme_namespace, "tsig", {"secret": b"not base64!"}, kind="Opaque")
        rfc2136 = {
            "nameserver": bind.address,
            "tsigKeyName": TSIG_KEY_NAME,
            "tsigAlgorithm": "HMACSHA256",
            "tsigSecretSecretRef": {"name": "tsig", "key": "secret"},
        }
        acme_issuer(cluster, acme_namespace, server, solvers=[{"dns01": {"rfc2136": rfc2136}}])
        refused = issuer_reason(cluster, acme_namespace, "pebble", "InvalidTSIGSecret")
        assert f"key secret of Secret {acme_namespace}/tsig" in refused["message"]
        assert "not base64!" not in refused["message"]
        create_certificate(cluster, acme_namespace, "dns", "pebble", dnsNames=["dns.example.test"])
        waiting = eventually(
            lambda: (
                (found := condition(certificate(cluster, acme_namespace, "dns"))).get("reason")
                == "IssuerNotReady"
                and found
            ),
            what="the Certificate to wait for its issuer",
        )
        assert "not a base64 TSIG secret" in waiting["message"]
        assert "order" not in (certificate(cluster, acme_namespace, "dns")["status"].get("acme") or {})
        assert "OrderCreated" not in [reason for _, reason, _ in events(cluster, acme_namespace, "dns")]

        client.CoreV1Api(cluster.api).patch_namespaced_secret(
            "tsig", acme_namespace, {"stringData": {"secret": bind.tsig_secret}}
        )
        wait_ready(cluster, acme_namespace, "dns", timeout=60)


def test_an_eab_mac_key_that_is_not_ascii_is_said_on_the_issuer(
    cluster: Cluster, eab_pebble: Pebble, acme_namespace: str
) -> None:
    create_secret(cluster, acme_namespace, "eab", {"key": "kéy".encode()}, kind="Opaque")
    binding = {"keyID": EAB_KEY_ID, "keySecretRef": {"name": "eab", "key": "key"}}
    acme_issuer(cluster, acme_namespace, eab_pebble, "eab", externalAccountBinding=binding)
    refused = issuer_reason(cluster, acme_namespace, "eab", "InvalidEABKey")
    assert (
        f"externalAccountBinding.keySecretRef: key key of Secret {acme_namespace}/eab" in refused["message"]
    )
    assert "base64url" in refused["message"]


def test_a_secret_written_into_a_missing_namespace_is_not_a_conflict(cluster: Cluster) -> None:
    """The API server's 404 names what is missing: a namespace is an error that says so (it used to be
    taken for a Secret deleted meanwhile, and the ACME account key was never made)."""
    port = ApiServer(cluster.api)
    with pytest.raises(NamespaceNotFoundError) as missing:
        port.write_secret("no-such-namespace", "account", SecretContents(data={"k": b"v"}), None, None)
    assert "namespace no-such-namespace does not exist; create it" in str(missing.value)
    with pytest.raises(SecretConflictError):
        port.write_secret("default", "no-such-secret", SecretContents(data={"k": b"v"}), "1", None)
