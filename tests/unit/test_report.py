"""The TLS Secret report (`certsmith inspect secret`, `certsmith status NAME`): pure."""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from certsmith.pki import PKIError
from certsmith.pki.encodings import certificates_pem
from certsmith.pki.keys import (
    KeyAlgorithm,
    KeyEncoding,
    KeySpec,
    PrivateKey,
    encode_private_key,
    generate_private_key,
)
from certsmith.pki.report import tls_report
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import IssuedCertificate, SigningAuthority, self_sign, sign_with_authority

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
ECDSA = KeySpec(KeyAlgorithm.ECDSA, 256)


def _chain() -> tuple[IssuedCertificate, IssuedCertificate, PrivateKey]:
    root_key, middle_key, leaf_key = (generate_private_key(ECDSA) for _ in range(3))
    root = self_sign(CertificateTemplate(common_name="root", is_ca=True), root_key, NOW)
    middle = sign_with_authority(
        CertificateTemplate(common_name="middle", is_ca=True),
        middle_key.public_key(),
        SigningAuthority(root.certificate, root_key, (), root.certificate),
        NOW,
    )
    leaf = sign_with_authority(
        CertificateTemplate(
            common_name="leaf", dns_names=("leaf.example.com",), usages=frozenset({"server auth"})
        ),
        leaf_key.public_key(),
        SigningAuthority(middle.certificate, middle_key, (), root.certificate),
        NOW,
    )
    return leaf, middle, leaf_key


def test_a_good_secret_has_no_warnings_and_shows_no_key() -> None:
    leaf, middle, key = _chain()
    assert middle.root is not None
    data = {
        "tls.crt": certificates_pem([leaf.certificate, middle.certificate]),
        "tls.key": encode_private_key(key, KeyEncoding.PKCS8),
        "ca.crt": certificates_pem([middle.root]),
    }
    report = tls_report(data, NOW)
    assert report.warnings == ()
    assert [facts.subject for facts in report.chain] == ["CN=leaf", "CN=middle"]
    assert report.chain[0].names == ("leaf.example.com",)
    assert "server auth" in report.chain[0].usages
    assert report.key == "ECDSA 256, matches the certificate"
    assert "PRIVATE" not in repr(report)


def test_what_is_wrong_is_said() -> None:
    leaf, middle, _ = _chain()
    weak = rsa.generate_private_key(65537, 1024)  # noqa: S505 -- the weak key to warn about
    weak_root = self_sign(CertificateTemplate(common_name="weak", is_ca=True), weak, NOW)
    data = {
        "tls.crt": certificates_pem([middle.certificate, leaf.certificate]),
        "tls.key": encode_private_key(generate_private_key(ECDSA), KeyEncoding.PKCS8),
        "ca.crt": certificates_pem([weak_root.certificate]),
    }
    warnings = tls_report(data, NOW + datetime.timedelta(days=400)).warnings
    assert any(
        "out of order: certificate 0 (CN=middle) is not signed by certificate 1 (CN=leaf)" in w
        for w in warnings
    )
    assert any("the chain does not reach ca.crt" in w for w in warnings)
    assert any(w.startswith("the certificate expired at") for w in warnings)
    assert "tls.key does not belong to the certificate in tls.crt" in warnings
    assert "CN=weak has a weak key: RSA 1024 bits (use at least 2048)" in warnings
    without_root = {"tls.crt": certificates_pem([leaf.certificate])}
    warnings = tls_report(without_root, NOW).warnings
    assert "the Secret has no tls.key" in warnings
    assert any("there is no ca.crt to check the chain against" in w for w in warnings)
    with pytest.raises(PKIError, match=r"no tls\.crt"):
        tls_report({}, NOW)
