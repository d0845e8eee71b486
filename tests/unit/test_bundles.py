"""Bundles' pure parts: the spec, label selectors, the sorted de-duplicated PEM, the PKCS#12 trust
store and the system trust store's version."""

from __future__ import annotations

import datetime
import io
import re
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from certsmith.api import SpecError
from certsmith.api.bundle import (
    ConfigMapSource,
    DefaultCAsSource,
    InLineSource,
    IssuerSource,
    SecretSource,
    label_selector,
    parse_bundle_spec,
)
from certsmith.api.cert_manager_fields import Severity
from certsmith.api.references import IssuerKind, IssuerRef
from certsmith.api.trust_manager import convert_bundle
from certsmith.commands.common import ExitCode
from certsmith.commands.convert import convert_files
from certsmith.pki.system_trust import system_trust
from certsmith.pki.trust import (
    BadCertificatesError,
    certificate_authorities,
    parse_certificates,
    trust_bundle,
)


def _ca(name: str, ca: bool = True) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def test_a_trust_manager_spec_parses_with_certsmiths_issuer_source() -> None:
    spec = parse_bundle_spec(
        "trust",
        {
            "sources": [
                {"configMap": {"name": "roots", "key": "ca.crt"}},
                {"secret": {"selector": {"matchLabels": {"team": "a"}}, "includeAllKeys": True}},
                {"inLine": "PEM"},
                {"useDefaultCAs": True},
                {"issuerRef": {"name": "root", "kind": "ClusterIssuer"}},
            ],
            "target": {
                "configMap": {"key": "bundle.pem"},
                "additionalFormats": {"pkcs12": {"key": "bundle.p12"}},
                "namespaceSelector": {"matchLabels": {"trust": "yes"}},
            },
        },
    )
    assert spec.sources == (
        ConfigMapSource("roots", None, "ca.crt", False),
        SecretSource(None, label_selector({"matchLabels": {"team": "a"}}), None, True),
        InLineSource("PEM"),
        DefaultCAsSource(),
        IssuerSource(IssuerRef("root", IssuerKind.CLUSTER_ISSUER)),
    )
    assert spec.config_map_key == "bundle.pem"
    assert spec.pkcs12 is not None
    assert (spec.pkcs12.key, spec.pkcs12.password) == ("bundle.p12", "")
    assert spec.namespace_selector.matches({"trust": "yes", "other": "x"})
    assert not spec.namespace_selector.matches({"trust": "no"})
    assert spec.cluster_trust_bundle is None


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"sources": [], "target": {"configMap": {"key": "k"}}}, "sources"),
        (
            {"sources": [{"inLine": "x", "useDefaultCAs": True}], "target": {"configMap": {"key": "k"}}},
            "sources[0]",
        ),
        (
            {"sources": [{"configMap": {"name": "a"}}], "target": {"configMap": {"key": "k"}}},
            "sources[0].configMap",
        ),
        ({"sources": [{"inLine": "x"}], "target": {}}, "target"),
        (
            {
                "sources": [{"inLine": "x"}],
                "target": {"configMap": {"key": "k"}, "additionalFormats": {"jks": {}}},
            },
            "target.additionalFormats.jks",
        ),
    ],
)
def test_a_bad_spec_names_its_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_bundle_spec("trust", spec)
    assert raised.value.field == field


def test_a_signers_cluster_trust_bundle_is_named_with_the_signer_prefix() -> None:
    spec = parse_bundle_spec(
        "trust",
        {"sources": [{"inLine": "x"}], "target": {"clusterTrustBundle": {"signerName": "example.com/root"}}},
    )
    assert spec.cluster_trust_bundle is not None
    assert spec.cluster_trust_bundle.name == "example.com:root:trust"


@pytest.mark.parametrize(
    ("expressions", "labels", "expected"),
    [
        ([{"key": "env", "operator": "In", "values": ["a", "b"]}], {"env": "b"}, True),
        ([{"key": "env", "operator": "In", "values": ["a"]}], {"env": "b"}, False),
        ([{"key": "env", "operator": "NotIn", "values": ["a"]}], {}, True),
        ([{"key": "env", "operator": "Exists"}], {"env": ""}, True),
        ([{"key": "env", "operator": "DoesNotExist"}], {"env": ""}, False),
    ],
)
def test_label_selector_expressions(
    expressions: list[dict[str, object]], labels: dict[str, str], expected: bool
) -> None:
    assert label_selector({"matchExpressions": expressions}).matches(labels) is expected


def test_label_selector_query() -> None:
    selector = label_selector(
        {
            "matchLabels": {"a": "1"},
            "matchExpressions": [{"key": "b", "operator": "NotIn", "values": ["x", "y"]}],
        }
    )
    assert selector.query() == "a=1,b notin (x,y)"


def test_the_bundle_is_sorted_and_each_certificate_is_in_it_once() -> None:
    first, second, third = _ca("b"), _ca("a"), _ca("c")
    one = trust_bundle(parse_certificates(_pem(first, second) + "comment\n" + _pem(third, first), "one"))
    other = trust_bundle(parse_certificates(_pem(third, second, first), "other"))
    assert one.pem == other.pem == _pem(second, first, third)
    assert one.digest("configmaps=k") == other.digest("configmaps=k") != one.digest("configmaps=other")


def test_text_without_a_certificate_names_its_source() -> None:
    expected = re.escape("spec.sources[2].inLine: holds no PEM certificate")
    with pytest.raises(BadCertificatesError, match=expected):
        parse_certificates("not a certificate", "spec.sources[2].inLine")


def test_the_pkcs12_trust_store_holds_every_certificate() -> None:
    bundle = trust_bundle([_ca("a"), _ca("b")])
    opened = pkcs12.load_pkcs12(bundle.pkcs12("changeit"), b"changeit")
    assert opened.key is None
    assert sorted(c.certificate.subject.rfc4514_string() for c in opened.additional_certs) == ["CN=a", "CN=b"]


def test_an_empty_password_makes_a_passwordless_trust_store() -> None:
    bundle = trust_bundle([_ca("a")])
    opened = pkcs12.load_pkcs12(bundle.pkcs12(""), None)
    assert [c.certificate.subject.rfc4514_string() for c in opened.additional_certs] == ["CN=a"]


def test_only_ca_certificates_go_to_a_cluster_trust_bundle() -> None:
    root, leaf = _ca("root"), _ca("leaf", ca=False)
    assert certificate_authorities([root, leaf]) == [root]


def test_the_system_trust_store_and_its_package_version(tmp_path: Path) -> None:
    bundle = tmp_path / "ca-certificates.crt"
    bundle.write_text(_pem(_ca("a"), _ca("b")))
    status = tmp_path / "status"
    status.write_text(
        "Package: ca-certificates-java\nStatus: install ok installed\nVersion: 20230710\n\n"
        "Package: ca-certificates\nStatus: install ok installed\nPriority: optional\n"
        "Version: 20230311+deb12u1\n"
        "Description: Common CA certificates\n continued line: with a colon\n"
    )
    trust = system_trust(bundle, status)
    assert (len(trust.certificates), trust.version) == (2, "20230311+deb12u1")
    assert system_trust(bundle, tmp_path / "missing").version == "unknown"


TRUST_MANAGER_BUNDLE = """\
apiVersion: trust.cert-manager.io/v1alpha1
kind: Bundle
metadata:
  name: trust
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
spec:
  sources:
    - useDefaultCAs: false
    - secret: {name: root, key: ca.crt}
    - configMap: {selector: {matchLabels: {trust: "yes"}}, includeAllKeys: true}
  target:
    configMap: {key: bundle.pem, metadata: {labels: {a: b}}}
    additionalFormats:
      jks: {key: bundle.jks}
      pkcs12: {key: bundle.p12, password: changeit}
    namespaceSelector: {matchLabels: {trust: "yes"}}
"""


def test_a_trust_manager_bundle_converts_by_its_apiversion_and_says_what_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "bundle.yaml"
    path.write_text(TRUST_MANAGER_BUNDLE)
    out, err = io.StringIO(), io.StringIO()
    assert convert_files([path], out, err) == ExitCode.INCOMPLETE
    converted = yaml.safe_load(out.getvalue())
    assert converted == {
        "apiVersion": "certsmith.dev/v1alpha1",
        "kind": "Bundle",
        "metadata": {"name": "trust"},
        "spec": {
            "sources": [
                {"secret": {"name": "root", "key": "ca.crt"}},
                {"configMap": {"selector": {"matchLabels": {"trust": "yes"}}, "includeAllKeys": True}},
            ],
            "target": {
                "configMap": {"key": "bundle.pem"},
                "additionalFormats": {"pkcs12": {"key": "bundle.p12", "password": "changeit"}},
                "namespaceSelector": {"matchLabels": {"trust": "yes"}},
            },
        },
    }
    said = err.getvalue()
    for field in ("spec.target.configMap.metadata", "spec.target.additionalFormats.jks", "--trust-namespace"):
        assert field in said
    parse_bundle_spec("trust", converted["spec"])


def test_a_trust_manager_bundle_that_would_not_work_is_refused_with_the_field() -> None:
    refused = convert_bundle(
        {
            "apiVersion": "trust.cert-manager.io/v1alpha1",
            "kind": "Bundle",
            "metadata": {"name": "trust"},
            "spec": {"sources": [{"configMap": {"name": "a"}}], "target": {"configMap": {"key": "k"}}},
        }
    )
    assert refused.manifest is None
    assert [(note.severity, note.path) for note in refused.notes][-1] == (
        Severity.REFUSED,
        "spec.sources[0].configMap",
    )
