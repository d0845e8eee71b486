"""Converting cert-manager's manifests: every field carried over or named in a note."""

from __future__ import annotations

from typing import Any

from certsmith.api.cert_manager import convert, is_cert_manager
from certsmith.api.certificate import parse_certificate_spec
from certsmith.api.issuer import parse_issuer_spec


def _document(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "apps"},
        "spec": spec,
    }


def test_a_certificate_converts_field_by_field_and_keeps_cert_managers_usages() -> None:
    spec = {
        "secretName": "web-tls",
        "commonName": "web",
        "dnsNames": ["web.example.com"],
        "duration": "720h",
        "renewBefore": "240h",
        "subject": {"organizations": ["Example"]},
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "issuerRef": {"name": "ca", "kind": "Issuer", "group": "cert-manager.io"},
        "secretTemplate": {"labels": {"team": "web"}},
    }
    result = convert(_document("Certificate", spec))
    assert result.notes == []
    assert result.manifest is not None
    assert result.manifest["apiVersion"] == "certsmith.dev/v1alpha1"
    converted = result.manifest["spec"]
    assert converted["issuerRef"] == {"name": "ca", "kind": "Issuer"}
    assert converted["usages"] == ["digital signature", "key encipherment"]
    parsed = parse_certificate_spec(converted)
    assert parsed.request.dns_names == ("web.example.com",)
    assert parsed.request.subject.organizations == ("Example",)


def test_what_certsmith_does_not_take_is_named() -> None:
    spec = {
        "secretName": "s",
        "dnsNames": ["a.example.com"],
        "issuerRef": {"name": "vault", "group": "vault.example.io"},
        "literalSubject": "CN=x",
        "keystores": {"jks": {"create": True}, "pkcs12": {"create": True, "profile": "LegacyRC2"}},
        "privateKey": {"algorithm": "RSA", "encoding": "PKCS1", "size": 2048},
    }
    notes = convert(_document("Certificate", spec)).notes
    assert any("spec.issuerRef.group vault.example.io" in note for note in notes)
    assert "spec.literalSubject: not supported by certsmith; dropped" in notes
    assert any(note.startswith("spec.keystores.jks") for note in notes)
    assert any("LegacyRC2" in note for note in notes)


def test_issuers_convert_and_unknown_issuers_and_solvers_are_reported() -> None:
    acme = {
        "server": "https://acme.example.com/dir",
        "privateKeySecretRef": {"name": "account"},
        "externalAccountBinding": {
            "keyID": "k",
            "keySecretRef": {"name": "eab", "key": "mac"},
            "keyAlgorithm": "HS256",
        },
        "solvers": [
            {"http01": {"ingress": {"class": "nginx", "serviceType": "ClusterIP"}}},
            {"selector": {"dnsZones": ["example.com"]}, "dns01": {"rfc2136": {"nameserver": "10.0.0.53"}}},
            {"dns01": {"cloudflare": {"email": "a@example.com"}}},
        ],
    }
    result = convert(_document("ClusterIssuer", {"acme": acme}))
    assert result.manifest is not None
    converted = result.manifest["spec"]["acme"]
    assert len(converted["solvers"]) == 2
    assert converted["externalAccountBinding"] == {
        "keyID": "k",
        "keySecretRef": {"name": "eab", "key": "mac"},
    }
    parse_issuer_spec(result.manifest["spec"])
    assert any("serviceType" in note for note in result.notes)
    assert any("cloudflare" in note for note in result.notes)
    assert any("keyAlgorithm" in note for note in result.notes)
    vault = convert(_document("Issuer", {"vault": {"server": "https://vault"}}))
    assert vault.manifest is None
    assert "not converted" in vault.notes[0]
    ca = convert(_document("Issuer", {"ca": {"secretName": "root"}}))
    assert ca.manifest is not None
    assert ca.manifest["spec"] == {"ca": {"secretName": "root"}}
    assert not is_cert_manager({"apiVersion": "v1", "kind": "Secret"})
