"""dns-persist-01 against Pebble v2.10.3 with BIND: the issuer shows the TXT record to create, a
Certificate says which record is missing before any order, and once the user has created the records
(here: a TSIG-signed update of BIND's zone) it issues and renews with no DNS credentials in the cluster."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import dns.query
import dns.tsigkeyring
import dns.update
import pytest
from cryptography import x509

from certsmith_devtools.bind import TSIG_KEY_NAME, Bind
from certsmith_devtools.kit import condition, free_port
from certsmith_devtools.pebble import Pebble
from tests.cluster.acme_support import acme_operator_process
from tests.cluster.support import (
    certificate,
    create,
    create_certificate,
    eventually,
    secret_data,
    wait_ready,
)
from tests.cluster.test_acme import issuer
from tests.cluster.test_cli import certsmith
from tests.conftest import Cluster, OperatorProcess, fresh_namespace

pytestmark = pytest.mark.cluster

NAMESPACES = "solo-persist-*"
ZONE = "persist.test"
PEBBLE_DOMAIN = "pebble.letsencrypt.org"
"""Pebble's issuer domain: its directory's meta.caaIdentities, and what it accepts in the record."""


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bind]:
    with Bind(
        tmp_path_factory.mktemp("bind"), ZONE, records=[f'@ IN CAA 0 issue "{PEBBLE_DOMAIN}"']
    ) as server:
        yield server


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory, bind: Bind) -> Iterator[Pebble]:
    with Pebble(tmp_path_factory.mktemp("pebble"), free_port(), dns_server=bind.address) as server:
        yield server


@pytest.fixture(scope="module")
def persist_operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, bind: Bind
) -> Iterator[OperatorProcess]:
    with acme_operator_process(
        cluster,
        tmp_path_factory,
        "dns-persist-01",
        NAMESPACES,
        free_port(),
        *("--dns01-recursive-nameserver", bind.address),
        metrics_port=free_port(),
    ) as process:
        yield process


@pytest.fixture
def namespace(cluster: Cluster, persist_operator: OperatorProcess) -> Iterator[str]:
    with fresh_namespace(cluster, "solo-persist") as name:
        yield name


def _issuer_status(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return dict(issuer(cluster, namespace, "persist").get("status") or {})


def _create_txt(bind: Bind, name: str, *values: str) -> None:
    """What the user does once, at their DNS provider: here a TSIG-signed update of BIND's zone."""
    keyring = dns.tsigkeyring.from_text({TSIG_KEY_NAME: bind.tsig_secret})
    update = dns.update.UpdateMessage(ZONE, keyring=keyring, keyalgorithm="hmac-sha256")
    for value in values:
        update.add(name, 60, "TXT", f'"{value}"')
    response = dns.query.tcp(update, "127.0.0.1", port=bind.port, timeout=5)
    assert response.rcode() == 0, response


def test_dns_persist01_issues_and_renews_once_the_record_the_issuer_shows_exists(
    cluster: Cluster, bind: Bind, pebble: Pebble, namespace: str, persist_operator: OperatorProcess
) -> None:
    spec = {
        "server": pebble.url,
        "privateKeySecretRef": {"name": "persist-account"},
        "caBundle": base64.b64encode(pebble.ca_bundle).decode(),
        "solvers": [{"dnsPersist01": {}}],
    }
    create(cluster, namespace, "Issuer", "persist", {"acme": spec})
    shown = eventually(
        lambda: (_issuer_status(cluster, namespace).get("acme") or {}).get("dnsPersist01"),
        what="the dns-persist-01 record in the Issuer's status",
    )
    account = _issuer_status(cluster, namespace)["acme"]["uri"]
    assert shown == {
        "name": "_validation-persist.<DNS name>",
        "value": f"{PEBBLE_DOMAIN}; accounturi={account}",
        "wildcardValue": f"{PEBBLE_DOMAIN}; accounturi={account}; policy=wildcard",
    }

    names = [ZONE, f"*.{ZONE}"]
    create_certificate(cluster, namespace, "site", "persist", dnsNames=names)

    def missing() -> dict[str, str] | None:
        found = condition(certificate(cluster, namespace, "site"))
        return found if found.get("reason") == "DNSPersistRecordMissing" else None

    said = eventually(missing, what="the missing record in the Certificate's Ready condition")
    record = f"_validation-persist.{ZONE}."
    assert f'create: {record} TXT "{shown["value"]}"' in said["message"], said
    code, output = certsmith(cluster, "status", "site", "-n", namespace)
    assert f'{record} TXT "{shown["value"]}"' in output, output
    assert f'{record} TXT "{shown["wildcardValue"]}"' in output, output
    assert f"certificate {namespace}/site: new ACME order" not in persist_operator.log()

    _create_txt(bind, "_validation-persist", shown["value"], shown["wildcardValue"])
    body = wait_ready(cluster, namespace, "site", timeout=60)
    leaf = x509.load_pem_x509_certificate(secret_data(cluster, namespace, "site")["tls.crt"])
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(names)

    revision = int(body["status"]["revision"])
    code, output = certsmith(cluster, "renew", "site", "-n", namespace, "--wait", "60")
    assert code == 0, output
    assert f"certificate {namespace}/site: renewed (revision {revision + 1}" in output
    assert bind.txt(record) == {shown["value"], shown["wildcardValue"]}, (
        "the records stay as the user made them"
    )
