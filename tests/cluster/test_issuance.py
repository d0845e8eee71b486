"""Issuance end to end: the operator running against the real API server, checked with openssl and TLS."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_der_private_key, pkcs12
from kubernetes import client

from certsmith.pki.inspection import describe, load_certificates
from certsmith.pki.keys import (
    KeyAlgorithm,
    KeyEncoding,
    KeySpec,
    encode_private_key,
    generate_private_key,
    load_private_key,
    spec_of,
)
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import self_sign
from tests.cluster.support import create, create_certificate, openssl_verify, secret, secret_data, wait_ready
from tests.conftest import REPO, Cluster, OperatorProcess


def test_demo_chain_is_ready_and_verifies(
    cluster: Cluster, operator: OperatorProcess, tmp_path: Path
) -> None:
    subprocess.run(
        [
            str(cluster.kubectl),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "apply",
            "-f",
            str(REPO / "docs" / "demo" / "chain.yaml"),
        ],
        check=True,
        capture_output=True,
    )
    for namespace, name in (
        ("certsmith", "demo-root-ca"),
        ("demo", "intermediate-ca"),
        ("demo", "server"),
        ("demo", "client"),
    ):
        wait_ready(cluster, namespace, name, timeout=60)
    server = _write_secret(cluster, "demo", "server-tls", tmp_path / "server")
    openssl_verify(server / "ca.crt", server / "tls.crt", "-untrusted", str(server / "tls.crt"))
    chain = load_certificates((server / "tls.crt").read_bytes())
    assert [describe(cert).common_name for cert in chain] == [None, "certsmith demo intermediate CA"]
    root = load_certificates((server / "ca.crt").read_bytes())
    assert [describe(cert).common_name for cert in root] == ["certsmith demo root CA"]

    client_files = _write_secret(cluster, "demo", "client-tls", tmp_path / "client")
    assert _mutual_tls(server, client_files) == b"hello over mutual TLS"
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    foreign = self_sign(
        CertificateTemplate(common_name="stranger", usages=frozenset({"client auth"})),
        key,
        datetime.datetime.now(datetime.UTC),
    )
    (stranger / "tls.crt").write_bytes(_pem(foreign.certificate))
    (stranger / "tls.key").write_bytes(encode_private_key(key, KeyEncoding.PKCS8))
    (stranger / "ca.crt").write_bytes((server / "ca.crt").read_bytes())
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _mutual_tls(server, stranger)


KEY_CASES: list[tuple[str, dict[str, str | int], bytes, KeySpec]] = [
    (
        "rsa-2048-pkcs1",
        {"algorithm": "RSA", "size": 2048, "encoding": "PKCS1"},
        b"BEGIN RSA PRIVATE KEY",
        KeySpec(KeyAlgorithm.RSA, 2048),
    ),
    (
        "rsa-3072-pkcs8",
        {"algorithm": "RSA", "size": 3072, "encoding": "PKCS8"},
        b"BEGIN PRIVATE KEY",
        KeySpec(KeyAlgorithm.RSA, 3072),
    ),
    (
        "ecdsa-256-sec1",
        {"algorithm": "ECDSA", "encoding": "PKCS1"},
        b"BEGIN EC PRIVATE KEY",
        KeySpec(KeyAlgorithm.ECDSA, 256),
    ),
    (
        "ecdsa-384-pkcs8",
        {"algorithm": "ECDSA", "size": 384, "encoding": "PKCS8"},
        b"BEGIN PRIVATE KEY",
        KeySpec(KeyAlgorithm.ECDSA, 384),
    ),
    (
        "ecdsa-521-sec1",
        {"algorithm": "ECDSA", "size": 521},
        b"BEGIN EC PRIVATE KEY",
        KeySpec(KeyAlgorithm.ECDSA, 521),
    ),
    (
        "ed25519-pkcs8",
        {"algorithm": "Ed25519", "encoding": "PKCS8"},
        b"BEGIN PRIVATE KEY",
        KeySpec(KeyAlgorithm.ED25519, None),
    ),
]


def test_every_key_algorithm_and_encoding_matches_the_spec(
    cluster: Cluster, namespace: str, ca_issuer: str, tmp_path: Path
) -> None:
    for name, private_key, _, _ in KEY_CASES:
        create_certificate(
            cluster,
            namespace,
            name,
            ca_issuer,
            commonName=name,
            dnsNames=[f"{name}.example.com", "*.example.org"],
            ipAddresses=["10.1.2.3", "fd00::7"],
            uris=[f"spiffe://cluster.local/ns/{namespace}/sa/{name}"],
            emailAddresses=["ops@example.com"],
            usages=["digital signature", "server auth", "client auth"],
            duration="48h",
            privateKey=private_key,
        )
    for name, _, marker, expected in KEY_CASES:
        status = wait_ready(cluster, namespace, name)["status"]
        files = _write_secret(cluster, namespace, name, tmp_path / name)
        key_pem = (files / "tls.key").read_bytes()
        assert marker in key_pem
        key = load_private_key(key_pem)
        assert spec_of(key) == expected
        info = describe(load_certificates((files / "tls.crt").read_bytes())[0])
        assert info.common_name == name
        assert info.dns_names == {f"{name}.example.com", "*.example.org"}
        assert info.ip_addresses == {ipaddress.ip_address("10.1.2.3"), ipaddress.ip_address("fd00::7")}
        assert info.uris == {f"spiffe://cluster.local/ns/{namespace}/sa/{name}"}
        assert info.email_addresses == {"ops@example.com"}
        assert info.usages == {"digital signature", "server auth", "client auth"}
        assert info.not_after - info.not_before == datetime.timedelta(hours=48, minutes=5)
        assert status["notAfter"] == info.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert status["revision"] == 1
        openssl_verify(files / "ca.crt", files / "tls.crt")
        pkey = subprocess.run(["openssl", "pkey", "-in", str(files / "tls.key"), "-noout"], check=False)
        assert pkey.returncode == 0


def test_secret_layout_and_additional_formats(cluster: Cluster, namespace: str, ca_issuer: str) -> None:
    client.CoreV1Api(cluster.api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="store-password"),
            string_data={"password": "s3cret"},
        ),
    )
    create(
        cluster,
        namespace,
        "Certificate",
        "formats",
        {
            "secretName": "formats-tls",
            "dnsNames": ["formats.example.com"],
            "privateKey": {"algorithm": "ECDSA"},
            "issuerRef": {"name": ca_issuer},
            "secretTemplate": {"labels": {"team": "web"}, "annotations": {"owner": "ops@example.com"}},
            "additionalOutputFormats": [{"type": "DER"}, {"type": "CombinedPEM"}],
            "keystores": {
                "pkcs12": {"create": True, "passwordSecretRef": {"name": "store-password", "key": "password"}}
            },
        },
    )
    wait_ready(cluster, namespace, "formats")
    stored = secret(cluster, namespace, "formats-tls")
    assert stored is not None
    assert stored.type == "kubernetes.io/tls"
    assert stored.metadata is not None
    assert stored.metadata.labels == {"team": "web", "certsmith.dev/managed": "true"}
    annotations = stored.metadata.annotations or {}
    assert annotations["owner"] == "ops@example.com"
    assert annotations["certsmith.dev/certificate-name"] == "formats"
    assert annotations["certsmith.dev/issuer-name"] == "ca"
    assert annotations["certsmith.dev/issuer-kind"] == "Issuer"
    assert annotations["certsmith.dev/alt-names"] == "formats.example.com"
    data = secret_data(cluster, namespace, "formats-tls")
    key = load_private_key(data["tls.key"])
    assert load_der_private_key(data["key.der"], None).public_key() == key.public_key()
    assert data["tls-combined.pem"].startswith(data["tls.key"].rstrip(b"\n"))
    assert data["tls-combined.pem"].endswith(data["tls.crt"])
    keystore = pkcs12.load_pkcs12(data["keystore.p12"], b"s3cret")
    assert keystore.cert is not None
    assert keystore.cert.certificate == load_certificates(data["tls.crt"])[0]
    truststore = pkcs12.load_pkcs12(data["truststore.p12"], b"s3cret")
    assert [c.certificate for c in truststore.additional_certs] == load_certificates(data["ca.crt"])


def _write_secret(cluster: Cluster, namespace: str, name: str, directory: Path) -> Path:
    directory.mkdir(parents=True)
    for key, value in secret_data(cluster, namespace, name).items():
        (directory / key).write_bytes(value)
    return directory


def _mutual_tls(server: Path, client_files: Path) -> bytes:
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.minimum_version = ssl.TLSVersion.TLSv1_3
    server_context.load_cert_chain(server / "tls.crt", server / "tls.key")
    server_context.load_verify_locations(server / "ca.crt")
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.create_default_context(cafile=str(client_files / "ca.crt"))
    client_context.minimum_version = ssl.TLSVersion.TLSv1_3
    client_context.load_cert_chain(client_files / "tls.crt", client_files / "tls.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with server_context.wrap_socket(connection, server_side=True) as tls:
                received.append(tls.recv(100))
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"hello over mutual TLS")
            assert tls.recv(10) == b"ok"
            assert tls.version() == "TLSv1.3"
    finally:
        thread.join(timeout=10)
        listener.close()
    return received[0]


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.PEM)
