"""The command line for people, against the real API server with the operator running: status (table,
story, what the policy would do now), renew, inspect, kubectl's plugin, errors and exit codes."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client

from certsmith.api.status import parse_timestamp
from certsmith.pki.encodings import certificates_pem
from certsmith.pki.keys import KeyAlgorithm, KeyEncoding, KeySpec, encode_private_key, generate_private_key
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import SigningAuthority, self_sign, sign_with_authority
from certsmith_devtools.controlplane import ControlPlane
from certsmith_devtools.kit import create_object
from tests.cluster.support import (
    certificate,
    create_certificate,
    create_secret,
    eventually,
    key_pair,
    service_account_kubeconfig,
    wait_ready,
)
from tests.conftest import REPO, Cluster, OperatorProcess

pytestmark = pytest.mark.cluster


def certsmith(cluster: Cluster | None, *arguments: str, kubeconfig: Path | None = None) -> tuple[int, str]:
    """Exit code and output (stdout then stderr) of `certsmith ARGUMENTS`, with `--kubeconfig` unless
    there is no `cluster` to talk to."""
    cluster_flags = [] if cluster is None else ["--kubeconfig", str(kubeconfig or cluster.kubeconfig)]
    done = subprocess.run(
        [sys.executable, "-m", "certsmith.cli", *arguments, *cluster_flags],
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
    create_secret(cluster, issued, "leaf-pair", key_pair("just a leaf", False, datetime.timedelta(days=30)))
    create_object(cluster.api, issued, "Issuer", "notca", {"ca": {"secretName": "leaf-pair"}})
    create_certificate(cluster, issued, "signed", "notca", dnsNames=["signed.example.com"])
    eventually(lambda: certificate(cluster, issued, "signed").get("status"), 30, "a status")
    code, output = certsmith(cluster, "status", "signed", "-n", issued)
    assert code == 4, output
    assert "Issuer:    Issuer/notca: Ready=False (NotACA)" in output
    assert "Now:       " in output
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
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "nobody.kubeconfig", issued, "nobody")
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


CERT_MANAGER = """
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: ca}
spec:
  ca: {secretName: migrated-ca}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web}
spec:
  secretName: web-tls
  dnsNames: [web.example.com]
  issuerRef: {name: ca, kind: Issuer, group: cert-manager.io}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: api}
spec:
  secretName: api-tls
  dnsNames: [api.example.com]
  privateKey: {algorithm: ECDSA, size: 256}
  issuerRef: {name: ca, kind: Issuer, group: cert-manager.io}
"""


def _cert_manager_secret(
    name: str, dns_name: str, key: Any, authority: SigningAuthority, issued: datetime.datetime, days: int
) -> tuple[dict[str, bytes], dict[str, str], dict[str, str]]:
    """(data, labels, annotations) as cert-manager lays out a Secret it issued (its documented format):
    tls.crt, tls.key (PKCS#1, or SEC1 for ECDSA), ca.crt; its annotations and its label."""
    leaf = sign_with_authority(
        CertificateTemplate(
            dns_names=(dns_name,),
            usages=frozenset({"digital signature", "key encipherment"}),
            duration=datetime.timedelta(days=days),
        ),
        key.public_key(),
        authority,
        issued,
    ).certificate
    data = {
        "tls.crt": certificates_pem([leaf]),
        "tls.key": encode_private_key(key, KeyEncoding.PKCS1),
        "ca.crt": certificates_pem([authority.root]),
    }
    annotations = {
        "cert-manager.io/certificate-name": name,
        "cert-manager.io/issuer-name": "ca",
        "cert-manager.io/issuer-kind": "Issuer",
        "cert-manager.io/issuer-group": "cert-manager.io",
        "cert-manager.io/common-name": "",
        "cert-manager.io/alt-names": dns_name,
        "cert-manager.io/ip-sans": "",
        "cert-manager.io/uri-sans": "",
    }
    return data, {"controller.cert-manager.io/fao": "true"}, annotations


def test_certificates_cert_manager_issued_are_adopted_without_reissuing(
    cluster: Cluster, solo_namespace: str, tmp_path: Path
) -> None:
    namespace = solo_namespace
    now = datetime.datetime.now(datetime.UTC)
    ca_key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    ca = self_sign(
        CertificateTemplate(common_name="migrated CA", is_ca=True, duration=datetime.timedelta(days=3650)),
        ca_key,
        now - datetime.timedelta(days=30),
    )
    authority = SigningAuthority(ca.certificate, ca_key, (), ca.certificate)
    create_secret(
        cluster,
        namespace,
        "migrated-ca",
        {
            "tls.crt": certificates_pem([ca.certificate]),
            "tls.key": encode_private_key(ca_key, KeyEncoding.PKCS8),
        },
    )
    issued = {"web": (now - datetime.timedelta(days=10), 90), "api": (now - datetime.timedelta(days=5), 30)}
    keys = {
        "web": generate_private_key(KeySpec(KeyAlgorithm.RSA, 2048)),
        "api": generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256)),
    }
    for name, (when, days) in issued.items():
        data, labels, annotations = _cert_manager_secret(
            name, f"{name}.example.com", keys[name], authority, when, days
        )
        create_secret(cluster, namespace, f"{name}-tls", data, labels=labels, annotations=annotations)
    (tmp_path / "cert-manager.yaml").write_text(CERT_MANAGER)
    code, converted = certsmith(None, "convert", str(tmp_path / "cert-manager.yaml"))
    assert code == 0, converted
    applied = subprocess.run(
        [str(cluster.kubectl), "--kubeconfig", str(cluster.kubeconfig), "apply", "-n", namespace, "-f", "-"],
        input=converted,
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    code, output = certsmith(cluster, "migrate", "-n", namespace)
    assert code == 0, output
    assert f"certificate {namespace}/web: adopted Secret web-tls as it is" in output
    assert f"certificate {namespace}/api: adopted Secret api-tls as it is" in output
    core = client.CoreV1Api(cluster.api)
    before = {name: _version(core, namespace, f"{name}-tls") for name in issued}
    operator = OperatorProcess(cluster.kubeconfig, tmp_path / "operator.log", "--namespace", namespace)
    operator.start()
    try:
        for name in issued:
            wait_ready(cluster, namespace, name)
        time.sleep(3)
        after = {name: _version(core, namespace, f"{name}-tls") for name in issued}
    finally:
        operator.stop()
    assert after == before, "the operator wrote a migrated Secret"
    code, output = certsmith(cluster, "status", "api", "-n", namespace)
    assert code == 0, output
    assert "Now:       Nothing (UpToDate)" in output
    assert "Issued" not in operator.log()
    for name, (when, days) in issued.items():
        status = certificate(cluster, namespace, name)["status"]
        not_before, not_after = (parse_timestamp(status[field]) for field in ("notBefore", "notAfter"))
        assert not_before is not None
        assert not_after is not None
        assert abs((not_after - (when + datetime.timedelta(days=days))).total_seconds()) < 120, (
            "the same certificate"
        )
        renewal = parse_timestamp(status["renewalTime"])
        assert renewal == (not_after - (not_after - not_before) / 3).replace(microsecond=0), (
            f"{name}: renews at 2/3 of its lifetime, as cert-manager would have"
        )


def _version(core: client.CoreV1Api, namespace: str, name: str) -> str:
    metadata = core.read_namespaced_secret(name, namespace).metadata
    assert metadata is not None
    return str(metadata.resource_version)


def test_check_says_what_works_and_what_does_not(
    cluster: Cluster, solo_namespace: str, tmp_path: Path
) -> None:
    operator = OperatorProcess(
        cluster.kubeconfig,
        tmp_path / "operator.log",
        *("--namespace", solo_namespace, "--leader-elect", "--leader-elect-namespace", solo_namespace),
    )
    operator.start()
    try:
        lease = ("--lease-namespace", solo_namespace)

        def leading() -> bool:
            return certsmith(cluster, "check", "-n", solo_namespace, *lease)[0] == 0

        eventually(leading, 30, "check to pass once the operator leads")
        code, output = certsmith(cluster, "check", "-n", solo_namespace, *lease)
        crds = "certificates, certificaterequests, issuers, clusterissuers.certsmith.dev"
        assert f"ok    CRDs: {crds}/v1alpha1 are served" in output
        assert f"_{operator.pid}_" in output, "the leader named"
        assert f"ok    you may patch certificates.certsmith.dev in namespace {solo_namespace}" in output
    finally:
        operator.stop()
    code, output = certsmith(cluster, "check", "-n", solo_namespace, "--lease-namespace", "nowhere")
    assert code == 1
    assert "FAIL  operator: no Lease nowhere/certsmith" in output


def test_completion_scripts_are_made_from_the_commands() -> None:
    code, script = certsmith(None, "completion", "bash")
    assert code == 0
    assert "status" in script
    assert "inspect" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True, check=False).returncode == 0
    code, script = certsmith(None, "completion", "zsh")
    assert code == 0
    assert "#compdef certsmith" in script


def test_a_cluster_without_certsmiths_crds_is_said_to_be_one(cluster: Cluster) -> None:
    with ControlPlane() as bare:
        code, output = certsmith(cluster, "status", kubeconfig=bare.kubeconfig)
        assert code == 1
        assert "not served; are certsmith's CRDs installed? (certsmith check)" in output
        code, output = certsmith(cluster, "check", kubeconfig=bare.kubeconfig)
        assert code == 1
        crds = "certificates, certificaterequests, issuers, clusterissuers.certsmith.dev"
        assert f"FAIL  CRDs: {crds} not served" in output
