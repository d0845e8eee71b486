"""`certsmith dev` waits for the demo's own Certificates, read from its manifests, and no others."""

from __future__ import annotations

from certsmith_devtools.dev import demo_certificates
from tests.conftest import REPO


def test_the_demo_certificates_are_read_from_its_manifests() -> None:
    demo = demo_certificates((REPO / "docs" / "demo" / "chain.yaml").read_text())
    assert demo == [
        ("certsmith", "demo-root-ca"),
        ("demo", "intermediate-ca"),
        ("demo", "server"),
        ("demo", "client"),
    ]


def test_a_certificate_without_a_namespace_is_in_default() -> None:
    manifests = "kind: Certificate\nmetadata: {name: a}\n---\nkind: Issuer\nmetadata: {name: b}\n"
    assert demo_certificates(manifests) == [("default", "a")]
