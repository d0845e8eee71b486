"""CertificateRequests against the real API server and operator: CSRs made by openssl signed by CA and
self-signed issuers and checked by openssl; broken, weak and unapproved requests; approval and denial
as the API server's approval policy enforces them."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.api import CERTIFICATE_REQUESTS, GROUP, VERSION
from certsmith.api.certificate_request import PRIVATE_KEY_SECRET_ANNOTATION
from certsmith_devtools.kit import condition, create_object
from tests.cluster.support import (
    create_secret,
    eventually,
    openssl_verify,
    service_account_kubeconfig,
)
from tests.cluster.test_cli import certsmith
from tests.conftest import Cluster, OperatorProcess

pytestmark = pytest.mark.cluster

KEYS = {
    "RSA": ["-newkey", "rsa:2048"],
    "ECDSA": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "Ed25519": ["-newkey", "ed25519"],
}


def openssl_csr(directory: Path, name: str, key: list[str], subject: str = "/CN=app.example") -> bytes:
    """A key and a CSR for it made by openssl; the key stays in `directory` (name.key)."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            *key,
            "-nodes",
            "-keyout",
            str(directory / f"{name}.key"),
            "-subj",
            subject,
            "-addext",
            "subjectAltName=DNS:app.example,DNS:www.app.example",
            "-out",
            str(directory / f"{name}.csr"),
        ],
        check=True,
        capture_output=True,
    )
    return (directory / f"{name}.csr").read_bytes()


def create_request(
    cluster: Cluster, namespace: str, name: str, csr: bytes, issuer: str, **metadata: Any
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CertificateRequest",
        "metadata": {"name": name, **metadata},
        "spec": {"request": base64.b64encode(csr).decode(), "issuerRef": {"name": issuer}, "duration": "24h"},
    }
    client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, CERTIFICATE_REQUESTS, body
    )


def request(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    found = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, CERTIFICATE_REQUESTS, name
    )
    assert isinstance(found, dict)
    return found


def settled(cluster: Cluster, namespace: str, name: str, reason: str, timeout: float = 30) -> dict[str, Any]:
    """The request once its Ready condition has `reason`."""
    return eventually(
        lambda: (
            found if condition(found := request(cluster, namespace, name)).get("reason") == reason else None
        ),
        timeout,
        f"CertificateRequest {namespace}/{name} to be {reason}",
    )


def signed_chain(body: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """The request's certificate (with its chain) and its CA, as files."""
    status = body["status"]
    (directory / "chain.pem").write_bytes(base64.b64decode(status["certificate"]))
    (directory / "ca.pem").write_bytes(base64.b64decode(status["ca"]))
    return directory / "chain.pem", directory / "ca.pem"


@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_an_openssl_csr_is_signed_by_a_ca_issuer(
    cluster: Cluster, ca_issuer: str, namespace: str, tmp_path: Path, algorithm: str
) -> None:
    csr = openssl_csr(tmp_path, "app", KEYS[algorithm])
    create_request(cluster, namespace, "app", csr, ca_issuer)
    body = settled(cluster, namespace, "app", "Issued")
    assert condition(body, "Approved")["status"] == "True"
    chain, ca = signed_chain(body, tmp_path)
    openssl_verify(ca, chain, "-untrusted", str(chain))
    leaf = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["app.example", "www.app.example"]
    assert leaf.public_key() == x509.load_pem_x509_csr(csr).public_key()
    matched = subprocess.run(
        ["openssl", "x509", "-noout", "-pubkey", "-in", str(chain)], capture_output=True, check=True
    ).stdout
    assert (
        matched
        == subprocess.run(
            ["openssl", "pkey", "-pubout", "-in", str(tmp_path / "app.key")], capture_output=True, check=True
        ).stdout
    )


def test_a_self_signed_request_uses_the_key_in_the_named_secret(
    cluster: Cluster, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    create_object(cluster.api, namespace, "Issuer", "selfsigned", {"selfSigned": {}})
    csr = openssl_csr(tmp_path, "own", KEYS["ECDSA"], "/CN=own.example")
    create_request(
        cluster,
        namespace,
        "waiting",
        csr,
        "selfsigned",
        annotations={PRIVATE_KEY_SECRET_ANNOTATION: "own-key"},
    )
    eventually(
        lambda: "own-key" in condition(request(cluster, namespace, "waiting")).get("message", ""),
        what="the request to wait for Secret own-key",
    )
    assert condition(request(cluster, namespace, "waiting"))["reason"] == "Pending"
    create_secret(cluster, namespace, "own-key", {"tls.key": (tmp_path / "own.key").read_bytes()}, "Opaque")
    body = settled(cluster, namespace, "waiting", "Issued")
    chain, _ = signed_chain(body, tmp_path)
    openssl_verify(chain, chain)
    create_request(cluster, namespace, "keyless", csr, "selfsigned")
    refused = condition(settled(cluster, namespace, "keyless", "Failed"))["message"]
    assert PRIVATE_KEY_SECRET_ANNOTATION in refused


def test_a_csr_with_a_broken_signature_is_refused(
    cluster: Cluster, ca_issuer: str, namespace: str, tmp_path: Path
) -> None:
    der = bytearray(
        x509.load_pem_x509_csr(openssl_csr(tmp_path, "app", KEYS["ECDSA"])).public_bytes(Encoding.DER)
    )
    der[-10] ^= 0x01  # inside the signature
    pem = (
        b"-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(bytes(der))
        + b"-----END CERTIFICATE REQUEST-----\n"
    )
    create_request(cluster, namespace, "broken", pem, ca_issuer)
    body = settled(cluster, namespace, "broken", "InvalidRequest")
    assert "InvalidSignature" in condition(body)["message"]
    assert condition(body, "InvalidRequest")["status"] == "True"
    assert body["status"]["failureTime"]
    assert "certificate" not in body["status"]


def test_a_weak_key_is_refused_with_the_fix(
    cluster: Cluster, ca_issuer: str, namespace: str, tmp_path: Path
) -> None:
    create_request(
        cluster, namespace, "weak", openssl_csr(tmp_path, "weak", ["-newkey", "rsa:1024"]), ca_issuer
    )
    message = condition(settled(cluster, namespace, "weak", "InvalidRequest"))["message"]
    assert "RSA 1024 bits" in message
    assert "at least 2048" in message


def test_the_spec_cannot_change(cluster: Cluster, ca_issuer: str, namespace: str, tmp_path: Path) -> None:
    create_request(cluster, namespace, "fixed", openssl_csr(tmp_path, "app", KEYS["ECDSA"]), ca_issuer)
    with pytest.raises(ApiException) as refused:
        client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, CERTIFICATE_REQUESTS, "fixed", {"spec": {"isCA": True}}
        )
    assert "spec cannot be changed" in str(refused.value.body)


@pytest.fixture
def manual_operator(cluster: Cluster, solo_namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """An operator that approves nothing itself, for the solo namespace."""
    process = OperatorProcess(
        cluster.kubeconfig, tmp_path / "manual.log", "--namespace", solo_namespace, "--no-auto-approve"
    )
    process.start()
    yield process
    process.stop()


def test_unapproved_requests_wait_and_approval_is_the_api_servers_to_check(
    cluster: Cluster, manual_operator: OperatorProcess, solo_namespace: str, tmp_path: Path
) -> None:
    namespace = solo_namespace
    create_object(cluster.api, namespace, "Issuer", "selfsigned", {"selfSigned": {}})
    create_secret(cluster, namespace, "root", _ca_key_pair(tmp_path), "kubernetes.io/tls")
    create_object(cluster.api, namespace, "Issuer", "ca", {"ca": {"secretName": "root"}})
    csr = openssl_csr(tmp_path, "app", KEYS["ECDSA"])
    create_request(cluster, namespace, "wait", csr, "ca")
    create_request(cluster, namespace, "refuse", csr, "ca")
    pending = settled(cluster, namespace, "wait", "Pending")
    assert f"certsmith approve wait -n {namespace}" in condition(pending)["message"]
    assert "Approved" not in {item["type"] for item in pending["status"]["conditions"]}

    # Someone who may patch the status but lacks the verb approve is refused by the API server.
    core, rbac = client.CoreV1Api(cluster.api), client.RbacAuthorizationV1Api(cluster.api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="clerk"))
    )
    rules = [
        client.V1PolicyRule(api_groups=[GROUP], resources=["certificaterequests"], verbs=["get"]),
        client.V1PolicyRule(api_groups=[GROUP], resources=["certificaterequests/status"], verbs=["patch"]),
    ]
    _grant(rbac, namespace, "clerk", rules)
    clerk = service_account_kubeconfig(cluster, tmp_path / "clerk.kubeconfig", namespace, "clerk")
    code, output = certsmith(None, "approve", "wait", "-n", namespace, "--kubeconfig", str(clerk))
    assert code == 1, output
    assert f'approve on signers.certsmith.dev named "issuers.certsmith.dev/{namespace}.ca"' in output
    assert condition(request(cluster, namespace, "wait"), "Approved") == {}
    assert "certificate" not in request(cluster, namespace, "wait")["status"]

    # With the verb approve on that signer (a Role in the namespace is enough), the same person approves.
    _grant(
        rbac,
        namespace,
        "approver",
        [
            *rules,
            client.V1PolicyRule(
                api_groups=[GROUP],
                resources=["signers"],
                verbs=["approve"],
                resource_names=[f"issuers.certsmith.dev/{namespace}.ca"],
            ),
        ],
        subject="clerk",
    )
    code, output = certsmith(None, "approve", "wait", "-n", namespace, "--kubeconfig", str(clerk))
    assert code == 0, output
    body = settled(cluster, namespace, "wait", "Issued")
    assert condition(body, "Approved")["reason"] == "ManuallyApproved"
    chain, ca = signed_chain(body, tmp_path)
    openssl_verify(ca, chain)

    code, output = certsmith(cluster, "deny", "refuse", "-n", namespace)
    assert code == 0, output
    denied = settled(cluster, namespace, "refuse", "Denied")
    assert denied["status"]["failureTime"]
    assert "certificate" not in denied["status"]
    code, output = certsmith(cluster, "approve", "refuse", "-n", namespace)
    assert code == 1
    assert "already denied; that is final" in output
    with pytest.raises(ApiException) as final:
        client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, CERTIFICATE_REQUESTS, "refuse", {"status": {"conditions": []}}
        )
    assert "Approved and Denied are final" in str(final.value.body)


def _grant(
    rbac: client.RbacAuthorizationV1Api,
    namespace: str,
    role: str,
    rules: list[client.V1PolicyRule],
    subject: str = "",
) -> None:
    rbac.create_namespaced_role(
        namespace, client.V1Role(metadata=client.V1ObjectMeta(name=role), rules=rules)
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=role),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=role),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=subject or role, namespace=namespace)],
        ),
    )


def _ca_key_pair(directory: Path) -> dict[str, bytes]:
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(directory / "root.key"),
            "-subj",
            "/CN=manual root",
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            str(directory / "root.crt"),
        ],
        check=True,
        capture_output=True,
    )
    return {
        "tls.crt": (directory / "root.crt").read_bytes(),
        "tls.key": (directory / "root.key").read_bytes(),
    }
