"""From an annotated Ingress or Gateway to the Certificates it wants, and what is wrong with it."""

from __future__ import annotations

from typing import Any

from certsmith.api.shim import first_claim, gateway_certificates, ingress_certificates
from certsmith.reconcile.shim import spec_patch


def _ingress(tls: list[dict[str, Any]], **annotations: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "web", "annotations": annotations}, "spec": {"tls": tls}}


def test_unannotated_objects_want_nothing() -> None:
    wanted = ingress_certificates(_ingress([{"hosts": ["a.example"], "secretName": "a"}]))
    assert not wanted.annotated
    assert wanted.certificates == {}


def test_one_certificate_per_secret_with_the_hosts_of_its_entries() -> None:
    wanted = ingress_certificates(
        _ingress(
            [
                {"hosts": ["a.example"], "secretName": "shared"},
                {"hosts": ["b.example", "a.example"], "secretName": "shared"},
                {"hosts": ["c.example"], "secretName": "c"},
            ],
            **{
                "certsmith.dev/cluster-issuer": "letsencrypt",
                "certsmith.dev/private-key-algorithm": "Ed25519",
            },
        )
    )
    assert wanted.problems == ()
    assert wanted.certificates["shared"] == {
        "secretName": "shared",
        "dnsNames": ["a.example", "b.example"],
        "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"},
        "privateKey": {"algorithm": "Ed25519", "encoding": "PKCS8"},
    }
    assert set(wanted.certificates) == {"shared", "c"}


def test_problems_name_the_annotation_or_field() -> None:
    both = ingress_certificates(
        _ingress([], **{"certsmith.dev/issuer": "a", "certsmith.dev/cluster-issuer": "b"})
    )
    assert "keep one" in both.problems[0]
    bad = ingress_certificates(
        _ingress(
            [{"hosts": ["a"], "secretName": "a"}],
            **{"certsmith.dev/issuer": "x", "certsmith.dev/duration": "1 day"},
        )
    )
    assert bad.certificates == {}
    assert bad.problems[0].startswith("annotation certsmith.dev/duration:")
    hostless = ingress_certificates(
        _ingress([{"secretName": "a"}, {"hosts": ["b"]}], **{"certsmith.dev/issuer": "x"})
    )
    assert hostless.problems == (
        "spec.tls[0] (Secret a) names no host; list the hosts the certificate is for",
        "spec.tls[1] has no Secret name; name one to get a certificate for it",
    )


def test_gateway_listeners_terminating_tls_in_their_own_namespace() -> None:
    listeners = [
        {"hostname": "shop.example", "tls": {"certificateRefs": [{"name": "shop"}]}},
        {"hostname": "pass.example", "tls": {"mode": "Passthrough", "certificateRefs": [{"name": "pass"}]}},
        {"hostname": "far.example", "tls": {"certificateRefs": [{"name": "far", "namespace": "other"}]}},
        {"hostname": "plain.example"},
    ]
    wanted = gateway_certificates(
        {
            "metadata": {"namespace": "edge", "annotations": {"certsmith.dev/issuer": "ca"}},
            "spec": {"listeners": listeners},
        }
    )
    assert set(wanted.certificates) == {"shop"}
    assert wanted.certificates["shop"]["dnsNames"] == ["shop.example"]
    assert len(wanted.problems) == 1
    assert "namespace other" in wanted.problems[0]


def test_what_is_no_longer_asked_for_is_removed_from_the_certificate() -> None:
    before = {"dnsNames": ["a"], "duration": "48h", "privateKey": {"algorithm": "RSA", "size": 4096}}
    after = {"dnsNames": ["a", "b"], "privateKey": {"algorithm": "RSA"}}
    assert spec_patch(before, after) == {
        "duration": None,
        "dnsNames": ["a", "b"],
        "privateKey": {"size": None, "algorithm": "RSA"},
    }


def test_the_oldest_object_claims_a_secret_then_the_first_by_name() -> None:
    def body(name: str, created: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "creationTimestamp": created}}

    old, new = body("zeta", "2026-01-01T00:00:00Z"), body("alpha", "2026-01-02T00:00:00Z")
    assert first_claim([new, old]) is old
    assert first_claim([old, new]) is old
    same_b, same_a = body("b", "2026-01-01T00:00:00Z"), body("a", "2026-01-01T00:00:00Z")
    assert first_claim([same_b, same_a]) is same_a
