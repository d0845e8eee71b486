"""Every kind of certificate certsmith makes passes zlint and pkilint with no error and no warning.

The certificates are made by the operator's own code, from Certificate specs as a user writes them
(parse_certificate_spec, then the self-signed and CA signers, and the PKCS#12 keystore), so a change
to what certsmith puts in a certificate is linted here.

zlint runs its RFC lints (RFC 5280, 3279, 5480, 5891, 8813) and the community ones. Its CA/Browser
Forum, Mozilla, Apple, Chrome and ETSI lints are not run: they are the rules for publicly trusted
CAs (certificate policies, OCSP and CRL URLs in every certificate, 398-day server certificates) and
certsmith's CAs are private ones. pkilint runs its RFC 5280 linter (lint_pkix_cert); its URI check
accepts only URLs of the schemes the `validators` package knows (it reports spiffe:// and urn: URIs,
valid by RFC 3986, as errors), so the URI kind is linted with an https URI.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from certsmith.api.certificate import parse_certificate_spec
from certsmith.pki.encodings import PKCS12Profile, certificates_pem, pkcs12_keystore
from certsmith.pki.keys import PrivateKey, generate_private_key
from certsmith.pki.signing import (
    IssuerURLs,
    SigningAuthority,
    self_sign,
    sign_with_authority,
)
from certsmith_devtools.zlint import ensure_zlint

NOW = datetime.datetime.now(datetime.UTC)
ZLINT_SOURCES = "RFC5280,RFC3279,RFC5480,RFC5891,RFC8813,Community"


@dataclass(frozen=True)
class Made:
    certificate: x509.Certificate
    key: PrivateKey


def _spec(**spec: Any) -> Any:
    return parse_certificate_spec({"secretName": "s", "issuerRef": {"name": "i"}, **spec})


def _self_signed(**spec: Any) -> Made:
    parsed = _spec(**spec)
    key = generate_private_key(parsed.private_key.spec)
    return Made(self_sign(parsed.request, key, NOW).certificate, key)


def _signed(authority: SigningAuthority, **spec: Any) -> Made:
    parsed = _spec(**spec)
    key = generate_private_key(parsed.private_key.spec)
    return Made(sign_with_authority(parsed.request, key.public_key(), authority, NOW).certificate, key)


def _kinds() -> dict[str, x509.Certificate]:
    root = _self_signed(
        isCA=True, commonName="lint root CA", subject={"organizations": ["certsmith lint"]}, duration="87600h"
    )
    root_authority = SigningAuthority(root.certificate, root.key, (), root.certificate, IssuerURLs())
    intermediate = _signed(root_authority, isCA=True, commonName="lint intermediate CA", duration="8760h")
    authority = SigningAuthority(
        intermediate.certificate, intermediate.key, (), root.certificate, IssuerURLs()
    )
    server = _signed(
        authority,
        dnsNames=["server.example.com", "www.example.com"],
        ipAddresses=["127.0.0.1"],
        usages=["digital signature", "server auth"],
    )
    client = _signed(authority, commonName="lint-client", usages=["digital signature", "client auth"])
    rsa = _signed(
        authority,
        dnsNames=["rsa.example.com"],
        privateKey={"algorithm": "RSA", "size": 2048},
        keystores={"pkcs12": {"create": True, "passwordSecretRef": {"name": "p", "key": "password"}}},
    )
    keystore = pkcs12_keystore(
        rsa.key, [rsa.certificate, intermediate.certificate], b"lint", PKCS12Profile.MODERN_2023, "rsa"
    )
    opened = pkcs12.load_key_and_certificates(keystore, b"lint")
    assert opened[1] is not None
    ed25519 = _signed(
        authority,
        uris=["https://app.example.com/id"],
        emailAddresses=["app@example.com"],
        privateKey={"algorithm": "Ed25519", "encoding": "PKCS8"},
    )
    san_only = _self_signed(dnsNames=["self.example.com"])
    return {
        "root": root.certificate,
        "intermediate": intermediate.certificate,
        "server": server.certificate,
        "client": client.certificate,
        "rsa-pkcs12": opened[1],
        "ed25519-uri-email": ed25519.certificate,
        "san-only-self-signed": san_only.certificate,
    }


KINDS = _kinds()


@pytest.fixture(scope="module")
def zlint() -> Path:
    return ensure_zlint()


def _findings_zlint(zlint: Path, pem: Path) -> dict[str, str]:
    run = subprocess.run(
        [str(zlint), "-includeSources", ZLINT_SOURCES, str(pem)], capture_output=True, text=True, check=True
    )
    results = json.loads(run.stdout)
    return {
        name: result["result"]
        for name, result in results.items()
        if result["result"] in ("warn", "error", "fatal")
    }


def _findings_pkilint(pem: Path) -> dict[str, str]:
    command = shutil.which("lint_pkix_cert", path=str(Path(sys.executable).parent))
    assert command, "pkilint is in the test extra (pip install -e '.[test]')"
    run = subprocess.run(
        [command, "lint", "-s", "WARNING", "-f", "JSON", str(pem)],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(run.stdout or "{}")
    return {
        finding["code"]: finding["severity"]
        for result in report.get("results", [])
        for finding in result.get("finding_descriptions", [])
    }


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_linter_finds_an_error(kind: str, zlint: Path, tmp_path: Path) -> None:
    pem = tmp_path / f"{kind}.pem"
    pem.write_bytes(certificates_pem([KINDS[kind]]))
    found = {f"zlint {k}": v for k, v in _findings_zlint(zlint, pem).items()}
    found |= {f"pkilint {k}": v for k, v in _findings_pkilint(pem).items()}
    assert not found, f"{kind}: {found}"
