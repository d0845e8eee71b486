"""The command line for people, against the real API server with the operator running: status (table,
story, what the policy would do now), renew, inspect, kubectl's plugin, errors and exit codes."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client

from certsmith.devcluster.kit import create_object
from certsmith.pki.encodings import certificates_pem
from certsmith.pki.keys import KeyAlgorithm, KeyEncoding, KeySpec, encode_private_key, generate_private_key
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import SigningAuthority, self_sign, sign_with_authority
from tests.cluster.support import certificate, create_certificate, create_secret, wait_ready
from tests.conftest import REPO, Cluster, OperatorProcess

pytestmark = pytest.mark.cluster


def certsmith(cluster: Cluster, *arguments: str, kubeconfig: Path | None = None) -> tuple[int, str]:
    """Exit code and output (stdout then stderr) of `certsmith ARGUMENTS`."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "certsmith.cli",
            *arguments,
            "--kubeconfig",
            str(kubeconfig or cluster.kubeconfig),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def issued(cluster: Cluster, operator: OperatorProcess, namespace: str) -> str:
    create_object(cluster.api, namespace, "Issuer", "selfsigned", {"selfSigned": {}})
    create_certificate(cluster, namespace, "web", "selfsigned", dnsNames=["web.example.com"])
    create_certificate(cluster, namespace, "api", "selfsigned", dnsNames=["api.example.com"])
    create_certificate(cluster, namespace, "lost", "no-such-issuer", dnsNames=["lost.example.com"])
    wait_ready(cluster, namespace, "web")
    wait_ready(cluster, namespace, "api")
    return namespace


def test_status_lists_certificates_as_kubectl_would(cluster: Cluster, issued: str) -> None:
    code, output = certsmith(cluster, "status", "-n", issued)
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0].split() == [
        "NAME",
        "READY",
        "REASON",
        "SECRET",
        "ISSUER",
        "EXPIRES",
        "RENEWS",
        "REVISION",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["web"][1:5] == ["True", "Ready", "web", "Issuer/selfsigned"]
    assert rows["web"][6] == "(90d)", "days left, after the expiry time"
    assert rows["lost"][1:3] == ["False", "IssuerNotFound"]
    code, output = certsmith(cluster, "status", "-A")
    assert code == 0
    assert output.splitlines()[0].split()[0] == "NAMESPACE"
    assert any(line.split()[:2] == [issued, "web"] for line in output.splitlines())
    code, output = certsmith(cluster, "status", "-n", issued, "-o", "json")
    assert sorted(item["name"] for item in json.loads(output)) == ["api", "lost", "web"]


def test_status_of_one_certificate_tells_its_story_and_what_the_operator_would_do(
    cluster: Cluster, issued: str
) -> None:
    code, output = certsmith(cluster, "status", "web", "-n", issued)
    assert code == 0, output
    assert f"Certificate {issued}/web: Ready=True (Ready)" in output
    assert "tls.key ECDSA 256, matches the certificate" in output
    assert "Issuer:    Issuer/selfsigned: Ready=True" in output
    assert "Issued" in output, "the last Events"
    assert "Now:       Nothing (UpToDate)" in output
    assert "; renews at " in output
    assert "PRIVATE KEY" not in output
    code, output = certsmith(cluster, "status", "lost", "-n", issued, "-o", "yaml")
    assert code == 4, output
    story = yaml.safe_load(output)
    assert story["ready"]["reason"] == "IssuerNotFound"
    assert story["decision"]["reason"] in ("BackingOff", "SecretMissing"), story["decision"]
    assert story["secret"] is None
    code, output = certsmith(cluster, "status", "nowhere", "-n", issued)
    assert code == 3
    assert "not found: get certificates.certsmith.dev nowhere" in output


def test_renew_asks_the_operator_and_waits_for_the_new_certificate(cluster: Cluster, issued: str) -> None:
    before = certificate(cluster, issued, "web")["status"]["revision"]
    code, output = certsmith(cluster, "renew", "web", "-n", issued, "--wait", "60")
    assert code == 0, output
    assert f"certificate {issued}/web: renewed (revision {before + 1}" in output
    client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object(
        "certsmith.dev", "v1alpha1", issued, "certificates", "api", {"metadata": {"labels": {"tier": "api"}}}
    )
    code, output = certsmith(cluster, "renew", "--all", "-l", "tier=api", "-n", issued, "--wait", "60")
    assert code == 0, output
    assert f"certificate {issued}/api: renewed" in output
    assert "web" not in output
    code, output = certsmith(cluster, "renew", "lost", "-n", issued, "--wait", "3")
    assert code == 4
    assert "not renewed yet" in output
    assert certsmith(cluster, "renew", "-n", issued)[0] == 2


def test_inspect_reads_any_tls_secret_and_says_what_is_wrong(cluster: Cluster, issued: str) -> None:
    code, output = certsmith(cluster, "inspect", "secret", "web", "-n", issued)
    assert code == 0, output
    assert "names    web.example.com" in output
    assert "matches the certificate" in output
    assert "WARNING" not in output
    assert "PRIVATE KEY" not in output
    now = datetime.datetime.now(datetime.UTC)
    root_key = rsa.generate_private_key(65537, 1024)  # noqa: S505 -- the weak key to warn about
    root = self_sign(CertificateTemplate(common_name="weak root", is_ca=True), root_key, now).certificate
    middle_key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    middle = sign_with_authority(
        CertificateTemplate(common_name="middle", is_ca=True),
        middle_key.public_key(),
        SigningAuthority(root, root_key, (), root),
        now,
    ).certificate
    leaf_key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    leaf = sign_with_authority(
        CertificateTemplate(dns_names=("legacy.example.com",)),
        leaf_key.public_key(),
        SigningAuthority(middle, middle_key, (), root),
        now,
    ).certificate
    data = {
        "tls.crt": certificates_pem([leaf]),
        "tls.key": encode_private_key(middle_key, KeyEncoding.PKCS8),
        "ca.crt": certificates_pem([root]),
    }
    create_secret(cluster, issued, "legacy", data)
    code, output = certsmith(cluster, "inspect", "secret", "legacy", "-n", issued)
    assert code == 0, output
    assert "is issued by CN=middle, ca.crt holds CN=weak root (an intermediate may be missing)" in output
    assert "WARNING: tls.key does not belong to the certificate in tls.crt" in output
    assert "WARNING: CN=weak root has a weak key: RSA 1024 bits" in output
    assert "PRIVATE KEY" not in output
    code, output = certsmith(cluster, "inspect", "secret", "legacy", "-n", issued, "-o", "json")
    assert json.loads(output)["key"] == "ECDSA 256, does NOT match the certificate"


def test_errors_say_which_verb_on_which_resource(cluster: Cluster, issued: str, tmp_path: Path) -> None:
    core = client.CoreV1Api(cluster.api)
    core.create_namespaced_service_account(
        issued, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = core.create_namespaced_service_account_token(
        "nobody", issued, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    )
    assert token.status is not None
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    kubeconfig = tmp_path / "nobody.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
                "users": [{"name": "nobody", "user": {"token": token.status.token}}],
                "contexts": [
                    {"name": "nobody", "context": {"cluster": "local", "user": "nobody", "namespace": issued}}
                ],
                "current-context": "nobody",
            }
        )
    )
    code, output = certsmith(cluster, "status", kubeconfig=kubeconfig)
    assert code == 1
    assert f"Forbidden: you may not list certificates.certsmith.dev in namespace {issued}" in output
    code, output = certsmith(cluster, "status", kubeconfig=tmp_path / "missing.kubeconfig")
    assert code == 1
    assert "no cluster to talk to" in output


def test_kubectl_runs_it_as_a_plugin(cluster: Cluster, issued: str) -> None:
    path = f"{Path(sys.executable).parent}:{cluster.kubectl.parent}:{os.environ['PATH']}"
    done = subprocess.run(
        ["kubectl", "certsmith", "status", "web", "-n", issued, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": path},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"Certificate {issued}/web: Ready=True" in done.stdout
