"""A ClusterIssuer signs CA certificates only for the namespaces its spec.issuancePolicy names."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from certsmith.api.issuer import issuance_refusal
from certsmith.api.references import IssuerKind, IssuerRef
from certsmith.pki.encodings import certificates_pem
from certsmith.pki.inspection import describe, load_certificates
from certsmith.pki.keys import load_private_key
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import self_sign
from tests.unit.test_reconcile import NOW, NS, World, _ca_pair

CLUSTER_CA = IssuerRef("root", IssuerKind.CLUSTER_ISSUER)
CA = {"ca": {"secretName": "root-ca"}}


@pytest.mark.parametrize(
    ("reference", "spec", "namespace", "is_ca", "reason"),
    [
        (CLUSTER_CA, CA, "team-a", False, None),
        (CLUSTER_CA, CA, "team-a", True, "CANotAllowed"),
        (CLUSTER_CA, {**CA, "issuancePolicy": {"caNamespaces": ["team-a"]}}, "team-a", True, None),
        (CLUSTER_CA, {**CA, "issuancePolicy": {"caNamespaces": ["team-*"]}}, "team-b", True, None),
        (CLUSTER_CA, {**CA, "issuancePolicy": {"caNamespaces": ["team-a"]}}, "team-b", True, "CANotAllowed"),
        (CLUSTER_CA, {**CA, "issuancePolicy": {"caNamespaces": []}}, "team-a", True, "CANotAllowed"),
        (CLUSTER_CA, {**CA, "issuancePolicy": {"namespaces": ["team-*"]}}, "team-a", False, None),
        (
            CLUSTER_CA,
            {**CA, "issuancePolicy": {"namespaces": ["team-*"]}},
            "other",
            False,
            "NamespaceNotAllowed",
        ),
        (
            CLUSTER_CA,
            {**CA, "issuancePolicy": {"namespaces": ["team-a"], "caNamespaces": ["*"]}},
            "other",
            True,
            "NamespaceNotAllowed",
        ),
        (CLUSTER_CA, {"selfSigned": {}}, "team-a", True, None),
        (IssuerRef("ca", IssuerKind.ISSUER), CA, "team-a", True, None),
    ],
)
def test_what_a_policy_allows(
    reference: IssuerRef, spec: dict[str, Any], namespace: str, is_ca: bool, reason: str | None
) -> None:
    refusal = issuance_refusal(reference, spec, namespace, is_ca)
    assert (refusal.reason if refusal else None) == reason


def test_a_refusal_names_the_field_and_how_to_opt_in() -> None:
    refusal = issuance_refusal(CLUSTER_CA, CA, "team-a", True)
    assert refusal is not None
    assert "spec.issuancePolicy of ClusterIssuer root" in refusal.message
    assert "add 'team-a'" in refusal.message
    assert "caNamespaces" in refusal.message


def _world(policy: dict[str, Any] | None) -> World:
    world = World()
    world.kube.put_secret("certsmith", "root-ca", _ca_pair())
    spec: dict[str, Any] = {"ca": {"secretName": "root-ca"}}
    if policy is not None:
        spec["issuancePolicy"] = policy
    world.reconcile_issuer(world.issuer("root", spec, cluster=True))
    return world


def test_a_cluster_issuer_signs_no_ca_certificate_unless_its_policy_names_the_namespace() -> None:
    world = _world(None)
    world.certificate("leaf", issuerRef={"name": "root", "kind": "ClusterIssuer"})
    world.certificate("sub-ca", isCA=True, issuerRef={"name": "root", "kind": "ClusterIssuer"})
    world.reconcile("leaf")
    world.reconcile("sub-ca")
    assert world.ready("leaf")["status"] == "True", "leaf certificates need no opt-in"
    ready = world.ready("sub-ca")
    assert (ready["status"], ready["reason"]) == ("False", "CANotAllowed")
    assert "caNamespaces" in ready["message"]
    assert (NS, "sub-ca") not in world.kube.secrets
    assert "CANotAllowed" in world.reasons(), "a Warning Event says why"

    opted_in = _world({"caNamespaces": [NS]})
    opted_in.certificate("sub-ca", isCA=True, issuerRef={"name": "root", "kind": "ClusterIssuer"})
    opted_in.reconcile("sub-ca")
    assert opted_in.ready("sub-ca")["status"] == "True"


def test_an_rsa_ca_made_with_key_encipherment_by_an_earlier_release_is_not_reissued() -> None:
    """CA certificates with RSA keys no longer get key encipherment by default (RFC 3279 2.3.1); one
    that has it is kept until it is renewed (no re-issue of every CA at upgrade)."""
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    world.certificate("ca", isCA=True, commonName="old CA", privateKey={"algorithm": "RSA", "size": 2048})
    world.reconcile("ca")
    world.step_ended()  # its RSA key is made in the key generation lane
    world.reconcile("ca")
    secret = world.secret("ca")
    issued = load_certificates(secret.data["tls.crt"])[0]
    assert "key encipherment" not in describe(issued).usages
    key = load_private_key(secret.data["tls.key"])
    template = CertificateTemplate(
        common_name="old CA",
        dns_names=("ca.example.com",),
        is_ca=True,
        usages=describe(issued).usages | {"key encipherment"},
    )
    earlier = self_sign(template, key, NOW).certificate
    world.kube.put_secret(
        NS, "ca", replace(secret, data={**secret.data, "tls.crt": certificates_pem([earlier])})
    )
    world.certificate("ca", isCA=True, commonName="old CA", privateKey={"algorithm": "RSA", "size": 2048})
    world.kube.requests.clear()
    world.reconcile("ca")
    assert not [request for request in world.kube.requests if request.startswith("PUT secrets")]
