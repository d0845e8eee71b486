"""DNS-01 through Route53 (emulated by moto's server on loopback) and through a CNAME into a zone
certsmith updates (BIND), each with a real issuance by Pebble. Pebble resolves Route53's names through
a nameserver answering from moto's records, as Route53's own nameservers answer from a hosted zone."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from certsmith.api.acme import DNS01Solver, Route53Solver
from certsmith.api.references import SecretKeyRef
from certsmith.issuers.acme.dns01 import DNSProviderError, ProviderContext
from certsmith.issuers.acme.dns01_route53 import route53_provider
from certsmith_devtools.bind import TSIG_KEY_NAME, Bind
from certsmith_devtools.kit import free_port
from certsmith_devtools.moto import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoServer
from certsmith_devtools.pebble import Pebble
from certsmith_devtools.route53_dns import Route53DNS
from tests.cluster.support import (
    certificate,
    create,
    create_certificate,
    create_secret,
    eventually,
    secret_data,
    wait_ready,
)
from tests.cluster.test_acme import acme_issuer, issuer_condition, issuer_reason, issuing_reason
from tests.conftest import Cluster, OperatorProcess, assert_no_key_material, fresh_namespace

pytestmark = pytest.mark.cluster

NAMES_ZONE = "names.test"
ACME_ZONE = "acme.test"
"""The BIND zones: names.test holds the certificates' names and delegates their _acme-challenge names
by CNAME into acme.test, the zone certsmith updates."""


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bind]:
    records = [f"_acme-challenge.app CNAME app.{ACME_ZONE}.", f"_acme-challenge CNAME apex.{ACME_ZONE}."]
    with Bind(tmp_path_factory.mktemp("bind"), NAMES_ZONE, [ACME_ZONE], records, recursive=True) as server:
        yield server


@pytest.fixture(scope="module")
def dns_operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, moto: MotoServer, bind: Bind
) -> Iterator[OperatorProcess]:
    """An operator whose boto3 talks to moto (AWS_ENDPOINT_URL_*, as any AWS endpoint is configured)
    and whose CNAME lookups ask BIND."""
    process = OperatorProcess(
        cluster.kubeconfig,
        tmp_path_factory.mktemp("dns-operator") / "operator.log",
        *("--namespace", "solo-dns-*", "--backoff-initial", "1s", "--backoff-max", "4s"),
        *("--acme-http01-port", "0", "--dns01-recursive-nameserver", bind.address),
    )
    with pytest.MonkeyPatch.context() as patch:
        for name, value in moto.environment.items():
            patch.setenv(name, value)
        process.start()
    yield process
    process.stop()
    print(f"DNS operator log: {process.log_path}")
    assert_no_key_material(process.log(), "the DNS operator's log")
    assert SECRET_ACCESS_KEY not in process.log(), "the AWS secret access key was logged"


@pytest.fixture
def dns_namespace(cluster: Cluster, dns_operator: OperatorProcess) -> Iterator[str]:
    with fresh_namespace(cluster, "solo-dns") as name:
        yield name


def _context(ambient: bool = False) -> ProviderContext:
    secrets = {
        SecretKeyRef("aws", "id"): ACCESS_KEY_ID.encode(),
        SecretKeyRef("aws", "secret"): SECRET_ACCESS_KEY.encode(),
    }
    return ProviderContext(lambda reference, field: secrets[reference], ambient)


def _keyed(**fields: str) -> DNS01Solver:
    return DNS01Solver(
        Route53Solver(
            access_key_id_secret=SecretKeyRef("aws", "id"),
            secret_access_key=SecretKeyRef("aws", "secret"),
            **fields,
        )
    )


def test_route53_records_go_into_the_right_hosted_zone_and_only_their_value_is_removed(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in moto.environment.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    parent = f"r53-{uuid.uuid4().hex[:6]}.test"
    parent_id = moto.create_zone(parent)
    child_id = moto.create_zone(f"sub.{parent}")
    fqdn = f"_acme-challenge.www.sub.{parent}."
    provider = route53_provider(_keyed(), _context())

    provider.present(fqdn, "first")
    provider.present(fqdn, "second")
    provider.present(fqdn, "second")
    assert moto.txt(child_id, fqdn) == {"first", "second"}, "the longest matching zone holds the record"
    assert moto.txt(parent_id, fqdn) == set()
    assert provider.visible(fqdn, "first")
    provider.cleanup(fqdn, "first")
    assert moto.txt(child_id, fqdn) == {"second"}, "the wildcard's value stays when the apex's goes"
    assert not provider.visible(fqdn, "first")
    provider.cleanup(fqdn, "second")
    provider.cleanup(fqdn, "second")
    assert moto.txt(child_id, fqdn) == set()

    pinned = route53_provider(_keyed(hosted_zone_id=parent_id), _context())
    pinned.present(fqdn, "pinned")
    assert moto.txt(parent_id, fqdn) == {"pinned"}, "hostedZoneID wins over the zone search"
    pinned.cleanup(fqdn, "pinned")

    assumed = route53_provider(_keyed(role="arn:aws:iam::123456789012:role/dns"), _context())
    assumed.present(f"_acme-challenge.{parent}.", "assumed")
    assert moto.txt(parent_id, f"_acme-challenge.{parent}.") == {"assumed"}
    assumed.cleanup(f"_acme-challenge.{parent}.", "assumed")

    with pytest.raises(DNSProviderError) as nowhere:
        provider.present("_acme-challenge.www.nowhere.invalid.", "value")
    assert "no public hosted zone above _acme-challenge.www.nowhere.invalid." in str(nowhere.value)
    assert "hostedZoneID" in str(nowhere.value)
    assert SECRET_ACCESS_KEY not in caplog.text, "the secret access key was logged"
    assert not [record for record in caplog.records if record.name.startswith("botocore")], (
        "botocore's debug lines (headers, STS answers with the assumed role's key) reach the log"
    )


def test_only_a_cluster_issuer_may_use_the_operators_ambient_credentials() -> None:
    with pytest.raises(DNSProviderError) as refused:
        route53_provider(DNS01Solver(Route53Solver()), _context(ambient=False))
    assert "only a ClusterIssuer may use the operator's ambient AWS credentials" in str(refused.value)
    assert SECRET_ACCESS_KEY not in str(refused.value)


def _route53_issuer(cluster: Cluster, namespace: str, pebble: Pebble) -> None:
    create_secret(
        cluster,
        namespace,
        "aws",
        {"access-key-id": ACCESS_KEY_ID.encode(), "secret-access-key": SECRET_ACCESS_KEY.encode()},
        kind="Opaque",
    )
    route53 = {
        "region": "eu-west-1",
        "accessKeyIDSecretRef": {"name": "aws", "key": "access-key-id"},
        "secretAccessKeySecretRef": {"name": "aws", "key": "secret-access-key"},
    }
    acme_issuer(cluster, namespace, pebble, solvers=[{"dns01": {"route53": route53}}])
    eventually(lambda: issuer_condition(cluster, namespace, "pebble").get("status") == "True", what="Ready")


def test_route53_issuance_through_pebble_publishes_and_removes_the_records(
    cluster: Cluster, tmp_path: Path, moto: MotoServer, dns_namespace: str
) -> None:
    zone = f"r53-{uuid.uuid4().hex[:6]}.test"
    zone_id = moto.create_zone(zone)
    with (
        Route53DNS(moto.route53()) as route53_dns,
        Pebble(tmp_path / "pebble", free_port(), dns_server=route53_dns.address) as pebble,
    ):
        _route53_issuer(cluster, dns_namespace, pebble)
        names = [zone, f"*.{zone}"]
        create_certificate(cluster, dns_namespace, "wild", "pebble", dnsNames=names)
        wait_ready(cluster, dns_namespace, "wild", timeout=60)
        leaf = x509.load_pem_x509_certificate(secret_data(cluster, dns_namespace, "wild")["tls.crt"])
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(names)
        assert len(set(route53_dns.served)) >= 2, "Pebble read both records from Route53 while the order ran"
        assert moto.txt(zone_id, f"_acme-challenge.{zone}") == set(), "TXT records left in Route53"
        assert SECRET_ACCESS_KEY not in str(certificate(cluster, dns_namespace, "wild"))


def test_a_failed_route53_order_removes_its_record(
    cluster: Cluster, tmp_path: Path, moto: MotoServer, dns_namespace: str
) -> None:
    """Pebble's nameserver does not answer the record (Route53 still lists it): the challenge fails,
    and the record is removed all the same."""
    zone = f"r53-{uuid.uuid4().hex[:6]}.test"
    zone_id = moto.create_zone(zone)
    with (
        Route53DNS(moto.route53()) as route53_dns,
        Pebble(tmp_path / "pebble", free_port(), dns_server=route53_dns.address) as pebble,
    ):
        route53_dns.answering = False
        _route53_issuer(cluster, dns_namespace, pebble)
        create_certificate(cluster, dns_namespace, "unseen", "pebble", dnsNames=[f"unseen.{zone}"])
        failed = issuing_reason(cluster, dns_namespace, "unseen", "ChallengeFailed")
        assert f"dns-01 challenge for unseen.{zone} failed" in failed["message"], failed
        record = f"_acme-challenge.unseen.{zone}"
        eventually(lambda: moto.txt(zone_id, record) == set(), what="the failed order's record to be removed")


def test_a_name_delegated_by_cname_issues_through_the_zone_it_points_into(
    cluster: Cluster, tmp_path: Path, bind: Bind, dns_namespace: str
) -> None:
    """_acme-challenge.app.names.test is a CNAME to app.acme.test: certsmith updates acme.test (its
    solver's nameserver is not told about names.test at all) and Pebble follows the CNAME there."""
    with Pebble(tmp_path / "pebble", free_port(), dns_server=bind.address) as pebble:
        create_secret(cluster, dns_namespace, "tsig", {"secret": bind.tsig_secret.encode()}, kind="Opaque")
        rfc2136 = {
            "nameserver": bind.address,
            "tsigKeyName": TSIG_KEY_NAME,
            "tsigAlgorithm": "HMACSHA256",
            "tsigSecretSecretRef": {"name": "tsig", "key": "secret"},
        }
        solver = {"dns01": {"cnameStrategy": "Follow", "rfc2136": rfc2136}}
        acme_issuer(cluster, dns_namespace, pebble, solvers=[solver])
        names = [f"app.{NAMES_ZONE}", NAMES_ZONE, f"*.{NAMES_ZONE}"]
        create_certificate(cluster, dns_namespace, "delegated", "pebble", dnsNames=names)
        wait_ready(cluster, dns_namespace, "delegated", timeout=60)
        leaf = x509.load_pem_x509_certificate(secret_data(cluster, dns_namespace, "delegated")["tls.crt"])
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(names)
        for target in (f"app.{ACME_ZONE}.", f"apex.{ACME_ZONE}."):
            assert bind.txt(target) == set(), f"TXT records left at {target}"
        assert bind.txt(f"_acme-challenge.{NAMES_ZONE}.") == set()


def test_route53_credentials_come_from_secrets_and_an_issuer_without_them_says_which(
    cluster: Cluster, dns_namespace: str, moto: MotoServer
) -> None:
    """Not ready before any order: a missing Secret names the field and the Secret; an Issuer without
    an access key may not borrow the operator's ambient credentials."""
    missing = {
        "accessKeyID": ACCESS_KEY_ID,
        "secretAccessKeySecretRef": {"name": "absent", "key": "secret-access-key"},
    }
    server = "https://127.0.0.1:1/dir"
    for name, route53 in (("missing", missing), ("ambient", {"region": "eu-west-1"})):
        spec = {"server": server, "privateKeySecretRef": {"name": f"{name}-account"}}
        create(
            cluster,
            dns_namespace,
            "Issuer",
            name,
            {"acme": {**spec, "solvers": [{"dns01": {"route53": route53}}]}},
        )
    absent = issuer_reason(cluster, dns_namespace, "missing", "SecretNotFound")
    assert "route53.secretAccessKeySecretRef" in absent["message"], absent
    assert f"{dns_namespace}/absent" in absent["message"], absent
    ambient = issuer_reason(cluster, dns_namespace, "ambient", "AmbientCredentialsNotAllowed")
    assert "only a ClusterIssuer" in ambient["message"], ambient
