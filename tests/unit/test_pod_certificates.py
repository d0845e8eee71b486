"""Pod certificates' pure decisions: signer names, the stub request's key, SPIFFE IDs, validity."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import CollectorRegistry

from certsmith.api import SpecError
from certsmith.api.pod_certificate_request import (
    POD_CERTIFICATE_REQUESTS,
    SignerRefusal,
    is_answered,
    parse_pod_certificate_request_spec,
    signer_issuer,
)
from certsmith.api.references import IssuerKind, IssuerRef
from certsmith.metrics.issuance import IssuanceMetrics
from certsmith.pki import PKIError
from certsmith.pki.inspection import load_certificates
from certsmith.pki.keys import PrivateKey, same_public_key
from certsmith.pki.pod_certificates import (
    BadStubError,
    UnsupportedKeyError,
    pod_validity,
    spiffe_id,
    stub_public_key,
)
from certsmith.reconcile.plan import Outcome, merge_written
from certsmith.reconcile.pod_certificate_request import PodCertificateRequestReconciler
from tests.unit.test_reconcile import NOW, NS, World, _ca_pair

START = datetime.datetime(2026, 12, 7, 1, 0, 0, 123456, tzinfo=datetime.UTC)


def _stub(key: PrivateKey) -> bytes:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, algorithm)
    return request.public_bytes(Encoding.DER)


def test_a_cluster_issuer_signer_name_names_the_cluster_issuer() -> None:
    assert signer_issuer("clusterissuers.certsmith.dev/mesh-ca", "apps") == IssuerRef(
        "mesh-ca", IssuerKind.CLUSTER_ISSUER
    )


def test_an_issuer_signer_name_serves_only_its_own_namespace() -> None:
    assert signer_issuer("issuers.certsmith.dev/apps.ca.v2", "apps") == IssuerRef("ca.v2", IssuerKind.ISSUER)
    refusal = signer_issuer("issuers.certsmith.dev/apps.ca", "other")
    assert isinstance(refusal, SignerRefusal)
    assert refusal.reason == "NamespaceNotAllowed"
    assert "apps/ca" in refusal.message
    assert "other" in refusal.message


def test_an_issuer_signer_name_without_a_namespace_is_refused() -> None:
    refusal = signer_issuer("issuers.certsmith.dev/ca", "apps")
    assert isinstance(refusal, SignerRefusal)
    assert refusal.reason == "InvalidSignerName"


def test_other_signers_names_are_not_certsmiths() -> None:
    assert signer_issuer("example.com/ca", "apps") is None
    assert signer_issuer("kubernetes.io/kube-apiserver-client-pod", "apps") is None
    assert signer_issuer("clusterissuers.certsmith.dev", "apps") is None


@pytest.mark.parametrize(
    "generate",
    [
        lambda: rsa.generate_private_key(65537, 3072),
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP521R1()),
        ed25519.Ed25519PrivateKey.generate,
    ],
    ids=["rsa3072", "p256", "p521", "ed25519"],
)
def test_the_stub_requests_key_is_the_certificates_key(generate: Callable[[], PrivateKey]) -> None:
    key = generate()
    assert same_public_key(stub_public_key(_stub(key)), key)


def test_a_key_the_api_server_would_not_allow_is_denied_as_unsupported() -> None:
    with pytest.raises(UnsupportedKeyError, match="RSA 2048 is not supported; use RSA 3072 or 4096"):
        stub_public_key(_stub(rsa.generate_private_key(65537, 2048)))
    with pytest.raises(UnsupportedKeyError, match="secp256k1"):
        stub_public_key(_stub(ec.generate_private_key(ec.SECP256K1())))


def test_a_stub_that_is_no_request_fails_without_repeating_it() -> None:
    with pytest.raises(BadStubError) as raised:
        stub_public_key(b"\x30\x03secret")
    assert "secret" not in str(raised.value)


def test_the_spiffe_id_names_namespace_and_service_account() -> None:
    assert spiffe_id("cluster.local", "apps", "web") == "spiffe://cluster.local/ns/apps/sa/web"


def test_validity_is_the_requested_maximum_from_now_to_the_second() -> None:
    validity = pod_validity(START, 86400, START + datetime.timedelta(days=365))
    assert validity.not_before == START.replace(microsecond=0)
    assert validity.lifetime == datetime.timedelta(seconds=86400)
    assert validity.begin_refresh_at == validity.not_before + datetime.timedelta(hours=12)


def test_validity_ends_with_the_ca() -> None:
    ca_end = START + datetime.timedelta(hours=5, microseconds=5)
    validity = pod_validity(START, 86400, ca_end)
    assert validity.not_after == ca_end.replace(microsecond=0)
    assert validity.begin_refresh_at == validity.not_before + validity.lifetime / 2


def test_a_ca_that_expires_within_the_hour_cannot_sign_pod_certificates() -> None:
    with pytest.raises(PKIError, match="renew the issuer's CA"):
        pod_validity(START, 86400, START + datetime.timedelta(minutes=59))


def test_the_spec_needs_a_stub_request_and_a_maximum_lifetime() -> None:
    stub = _stub(ec.generate_private_key(ec.SECP256R1()))
    spec = {
        "signerName": "clusterissuers.certsmith.dev/ca",
        "podName": "web-0",
        "serviceAccountName": "web",
        "maxExpirationSeconds": 3600,
        "stubPKCS10Request": base64.b64encode(stub).decode(),
    }
    parsed = parse_pod_certificate_request_spec(spec)
    assert (parsed.stub, parsed.max_expiration_seconds, parsed.service_account_name) == (stub, 3600, "web")
    assert parsed.user_annotations == ()
    annotated = {**spec, "unverifiedUserAnnotations": {"b.example/x": "1", "a.example/y": "2"}}
    assert parse_pod_certificate_request_spec(annotated).user_annotations == ("a.example/y", "b.example/x")
    with pytest.raises(SpecError, match="stubPKCS10Request"):
        parse_pod_certificate_request_spec({**spec, "stubPKCS10Request": ""})
    with pytest.raises(SpecError, match="maxExpirationSeconds"):
        parse_pod_certificate_request_spec({**spec, "maxExpirationSeconds": None})


def test_a_request_is_answered_by_any_one_of_the_three_conditions() -> None:
    assert not is_answered({})
    for kind in ("Issued", "Denied", "Failed"):
        assert is_answered({"conditions": [{"type": kind, "status": "True"}]})


def _signer_world() -> tuple[World, PodCertificateRequestReconciler, CollectorRegistry]:
    """A CA ClusterIssuer "root" serving only namespace NS, and the pod certificate reconciler."""
    world = World()
    world.kube.put_secret("certsmith", "root-ca", _ca_pair())
    world.reconcile_issuer(
        world.issuer("root", {"ca": {"secretName": "root-ca"}, "issuancePolicy": {"namespaces": [NS]}}, True)
    )
    registry = CollectorRegistry()
    reconciler = PodCertificateRequestReconciler(
        world.store, world.kube, world.resolver, "example.org", world.clock, IssuanceMetrics(registry)
    )
    return world, reconciler, registry


def _file(world: World, namespace: str, signer_name: str, key: PrivateKey) -> tuple[str, str]:
    body = {
        "metadata": {"name": "web-0-abc", "namespace": namespace, "uid": "uid-pcr"},
        "spec": {
            "signerName": signer_name,
            "serviceAccountName": "web",
            "maxExpirationSeconds": 7200,
            "stubPKCS10Request": base64.b64encode(_stub(key)).decode(),
        },
    }
    world.store.remember(POD_CERTIFICATE_REQUESTS, (namespace, "web-0-abc"), body)
    return namespace, "web-0-abc"


def test_the_reconciler_issues_once_and_counts_it() -> None:
    world, reconciler, registry = _signer_world()
    key = ec.generate_private_key(ec.SECP256R1())
    request = _file(world, NS, "clusterissuers.certsmith.dev/root", key)
    merge_written(world.store, reconciler.reconcile(request).written)
    status = world.kube.statuses[(POD_CERTIFICATE_REQUESTS, request)]
    assert [item["type"] for item in status["conditions"]] == ["Issued"]
    leaf = load_certificates(status["certificateChain"].encode())[0]
    assert same_public_key(leaf.public_key(), key)  # type: ignore[arg-type]
    uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert uris.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"spiffe://example.org/ns/{NS}/sa/web"
    ]
    assert leaf.not_valid_before_utc == NOW.replace(microsecond=0)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == datetime.timedelta(hours=2)
    assert "PRIVATE KEY" not in str(world.kube.events)
    sample = {"issuer_kind": "ClusterIssuer", "result": "Issued"}
    assert registry.get_sample_value("certsmith_pod_certificate_requests_total", sample) == 1
    writes = len(world.kube.requests)
    assert reconciler.reconcile(request) == Outcome()
    assert len(world.kube.requests) == writes, "an answered request is never written again"


def test_a_request_for_an_issuer_that_does_not_exist_waits_unwritten() -> None:
    world, reconciler, _registry = _signer_world()
    request = _file(world, NS, "clusterissuers.certsmith.dev/absent", ec.generate_private_key(ec.SECP256R1()))
    outcome = reconciler.reconcile(request)
    assert outcome.recheck_at == NOW + datetime.timedelta(seconds=30)
    assert (POD_CERTIFICATE_REQUESTS, request) not in world.kube.statuses


def test_the_cluster_issuers_policy_denies_other_namespaces() -> None:
    world, reconciler, _registry = _signer_world()
    request = _file(
        world, "elsewhere", "clusterissuers.certsmith.dev/root", ec.generate_private_key(ec.SECP256R1())
    )
    reconciler.reconcile(request)
    (denied,) = world.kube.statuses[(POD_CERTIFICATE_REQUESTS, request)]["conditions"]
    assert (denied["type"], denied["reason"]) == ("Denied", "NamespaceNotAllowed")
    assert "certificateChain" not in world.kube.statuses[(POD_CERTIFICATE_REQUESTS, request)]
