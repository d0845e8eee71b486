"""The CRDs, as the real API server enforces them: schema, defaults, CEL rules, printer columns."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith import __version__
from tests.conftest import REPO, Cluster

EXAMPLES = REPO / "docs" / "examples"
INVALID = sorted((EXAMPLES / "invalid").glob("*.yaml"))
GROUP, VERSION = "certsmith.dev", "v1alpha1"
PLURALS = {
    "Certificate": "certificates",
    "Issuer": "issuers",
    "ClusterIssuer": "clusterissuers",
    "Bundle": "bundles",
}
CLUSTER_SCOPED = ("ClusterIssuer", "Bundle")


def _create(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    objects = client.CustomObjectsApi(cluster.api)
    plural = PLURALS[manifest["kind"]]
    if manifest["kind"] in CLUSTER_SCOPED:
        created = objects.create_cluster_custom_object(GROUP, VERSION, plural, manifest)
    else:
        created = objects.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, manifest)
    assert isinstance(created, dict)
    return created


@pytest.fixture
def cluster_issuer_names(cluster: Cluster) -> Iterator[list[str]]:
    """ClusterIssuers a test creates are named here and deleted afterwards."""
    names: list[str] = []
    yield names
    objects = client.CustomObjectsApi(cluster.api)
    for name in names:
        objects.delete_cluster_custom_object(GROUP, VERSION, "clusterissuers", name)


def _with_unique_cluster_name(manifest: dict[str, Any]) -> dict[str, Any]:
    """Cluster-scoped names are suffixed, so that tests can run against a shared cluster."""
    if manifest["kind"] in CLUSTER_SCOPED:
        manifest["metadata"]["name"] += f"-{uuid.uuid4().hex[:6]}"
    return manifest


def test_every_crd_is_established(cluster: Cluster) -> None:
    extensions = client.ApiextensionsV1Api(cluster.api)
    for name in (
        "certificates.certsmith.dev",
        "issuers.certsmith.dev",
        "clusterissuers.certsmith.dev",
        "bundles.certsmith.dev",
    ):
        status = extensions.read_custom_resource_definition(name).status
        assert status
        conditions = {c.type: c.status for c in status.conditions or []}
        assert conditions["Established"] == "True", name
        assert conditions["NamesAccepted"] == "True", name


def test_kubectl_explain_teaches_the_private_key_fields(cluster: Cluster) -> None:
    explained = _kubectl_eventually(cluster, "explain", "certificate.spec.privateKey")
    assert "The private key's algorithm, size, encoding and rotation." in explained
    assert "Key size in bits. RSA: 2048, 3072, 4096 or 8192" in explained
    assert "enum: RSA, ECDSA, Ed25519" in explained


def test_kubectl_explain_says_what_issuing_means_and_where_cluster_issuer_secrets_live(
    cluster: Cluster,
) -> None:
    conditions = " ".join(_kubectl_eventually(cluster, "explain", "certificate.status.conditions").split())
    assert "Unlike cert-manager's Issuing=True" in conditions
    ca = " ".join(_kubectl_eventually(cluster, "explain", "clusterissuer.spec.ca").split())
    assert "--cluster-resource-namespace" in ca


def test_the_certsmith_category_lists_all_kinds(cluster: Cluster, namespace: str) -> None:
    listed = _kubectl(cluster, "get", "certsmith", "-n", namespace, "-o", "name")
    assert listed.strip() == ""
    resources = _kubectl(
        cluster, "api-resources", "--api-group", GROUP, "--categories", "certsmith", "-o", "name"
    )
    assert sorted(resources.split()) == [
        f"bundles.{GROUP}",
        f"certificaterequests.{GROUP}",
        f"certificates.{GROUP}",
        f"clusterissuers.{GROUP}",
        f"issuers.{GROUP}",
    ]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda path: path.stem)
def test_example_manifest_is_accepted(
    cluster: Cluster, namespace: str, cluster_issuer_names: list[str], path: Path
) -> None:
    manifest = _with_unique_cluster_name(yaml.safe_load(path.read_text()))
    created = _create(cluster, namespace, manifest)
    if manifest["kind"] == "ClusterIssuer":
        cluster_issuer_names.append(manifest["metadata"]["name"])
    _assert_kept(manifest["spec"], created["spec"], "spec")


def _assert_kept(given: Any, stored: Any, path: str) -> None:
    """Everything the manifest says is stored as given: the schema prunes none of it."""
    if isinstance(given, dict):
        for key, value in given.items():
            assert key in stored, f"{path}.{key} was pruned"
            _assert_kept(value, stored[key], f"{path}.{key}")
    elif isinstance(given, list):
        assert len(given) == len(stored), path
        for index, (item, kept) in enumerate(zip(given, stored, strict=True)):
            _assert_kept(item, kept, f"{path}[{index}]")
    else:
        assert given == stored, path


@pytest.mark.parametrize("path", INVALID, ids=lambda path: path.stem)
def test_invalid_manifest_is_rejected_naming_the_field(cluster: Cluster, namespace: str, path: Path) -> None:
    text = path.read_text()
    expected_field = _header(text, "expect-field")
    expected_message = _header(text, "expect-message")
    manifest = _with_unique_cluster_name(yaml.safe_load(text))
    with pytest.raises(ApiException) as rejected:
        _create(cluster, namespace, manifest)
    assert rejected.value.status == 422, rejected.value.body
    causes = json.loads(rejected.value.body or "{}")["details"]["causes"]
    matching = [c for c in causes if c.get("field") == expected_field and expected_message in c["message"]]
    assert matching, f"no cause for {expected_field} containing {expected_message!r}: {causes}"


def test_there_is_an_invalid_example_for_every_rule() -> None:
    assert len(INVALID) >= 30


def test_defaults_are_applied_on_create(cluster: Cluster, namespace: str) -> None:
    certificate = _create(
        cluster,
        namespace,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Certificate",
            "metadata": {"name": "defaults"},
            "spec": {"secretName": "defaults-tls", "dnsNames": ["example.com"], "issuerRef": {"name": "ca"}},
        },
    )
    spec = certificate["spec"]
    assert spec["duration"] == "2160h"
    assert spec["privateKey"] == {
        "algorithm": "RSA",
        "size": 2048,
        "encoding": "PKCS1",
        "rotationPolicy": "Always",
    }
    assert spec["issuerRef"] == {"name": "ca", "kind": "Issuer"}


def test_nested_defaults_apply_to_a_partial_private_key(cluster: Cluster, namespace: str) -> None:
    certificate = _create(
        cluster,
        namespace,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Certificate",
            "metadata": {"name": "ecdsa"},
            "spec": {
                "secretName": "ecdsa-tls",
                "commonName": "ecdsa",
                "privateKey": {"algorithm": "ECDSA"},
                "keystores": {"pkcs12": {"create": True, "passwordSecretRef": {"name": "p", "key": "k"}}},
                "issuerRef": {"name": "ca", "kind": "ClusterIssuer"},
            },
        },
    )
    spec = certificate["spec"]
    assert spec["privateKey"] == {"algorithm": "ECDSA", "encoding": "PKCS1", "rotationPolicy": "Always"}
    assert spec["keystores"]["pkcs12"]["profile"] == "Modern2023"
    assert spec["issuerRef"]["kind"] == "ClusterIssuer"


def test_issuer_defaults_are_applied_on_create(cluster: Cluster, namespace: str) -> None:
    issuer = _create(
        cluster,
        namespace,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Issuer",
            "metadata": {"name": "acme"},
            "spec": {
                "acme": {
                    "server": "https://acme.example.com/directory",
                    "privateKeySecretRef": {"name": "account"},
                    "solvers": [
                        {"dns01": {"rfc2136": {"nameserver": "192.0.2.53"}}},
                        {"http01": {"ingress": {}}},
                    ],
                }
            },
        },
    )
    acme = issuer["spec"]["acme"]
    assert acme["privateKeySecretRef"]["key"] == "tls.key"
    assert acme["solvers"][0]["dns01"]["rfc2136"]["tsigAlgorithm"] == "HMACSHA256"


def test_printer_columns_answer_the_first_questions(cluster: Cluster, solo_namespace: str) -> None:
    """In a namespace no operator serves, so that the Ready column is still blank."""
    namespace = solo_namespace
    _create(
        cluster,
        namespace,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Certificate",
            "metadata": {"name": "columns"},
            "spec": {
                "secretName": "columns-tls",
                "dnsNames": ["example.com"],
                "issuerRef": {"name": "the-ca"},
            },
        },
    )
    _create(
        cluster,
        namespace,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Issuer",
            "metadata": {"name": "the-ca"},
            "spec": {"ca": {"secretName": "root-ca"}},
        },
    )
    certificates = _kubectl(cluster, "get", "certificates", "-n", namespace).splitlines()
    assert certificates[0].split() == ["NAME", "READY", "SECRET", "ISSUER", "EXPIRES", "RENEWS", "AGE"]
    assert certificates[1].split()[:3] == ["columns", "columns-tls", "the-ca"]  # not Ready yet: blank
    issuers = _kubectl(cluster, "get", "issuers", "-n", namespace).splitlines()
    assert issuers[0].split() == ["NAME", "READY", "TYPE", "AGE"]


def _header(text: str, key: str) -> str:
    prefix = f"# {key}: "
    return next(line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix))


def _kubectl(cluster: Cluster, *args: str) -> str:
    completed = _run_kubectl(cluster, *args)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def _kubectl_eventually(cluster: Cluster, *args: str, timeout: float = 30.0) -> str:
    """For reads of the OpenAPI document, which the API server publishes a moment after Established."""
    deadline = time.monotonic() + timeout
    while (completed := _run_kubectl(cluster, *args)).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def _run_kubectl(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cluster.kubectl), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_deploy_kustomization_installs_crds_namespace_rbac_operator_and_solver_service(
    cluster: Cluster,
) -> None:
    core = client.CoreV1Api(cluster.api)
    if "certsmith" not in {n.metadata.name for n in core.list_namespace().items if n.metadata}:
        # a server-side dry run cannot create the namespace that the namespaced objects go into
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="certsmith")))
    common = [
        *(
            f"customresourcedefinition.apiextensions.k8s.io/{plural}.{GROUP}"
            for plural in ("certificates", "certificaterequests", "clusterissuers", "issuers", "bundles")
        ),
        f"validatingadmissionpolicy.admissionregistration.k8s.io/certificaterequest-approval.{GROUP}",
        f"validatingadmissionpolicybinding.admissionregistration.k8s.io/certificaterequest-approval.{GROUP}",
        f"validatingadmissionpolicy.admissionregistration.k8s.io/issuance-policy.{GROUP}",
        f"validatingadmissionpolicybinding.admissionregistration.k8s.io/issuance-policy.{GROUP}",
        "namespace/certsmith",
        "serviceaccount/certsmith",
        "deployment.apps/certsmith",
        "poddisruptionbudget.policy/certsmith",
        "service/certsmith-acme-solver",
        "networkpolicy.networking.k8s.io/certsmith",
    ]
    applied = _kubectl(cluster, "apply", "-k", str(REPO / "deploy"), "--dry-run=server", "-o", "name")
    assert sorted(applied.split()) == sorted(
        [
            *common,
            "clusterrole.rbac.authorization.k8s.io/certsmith",
            "clusterrolebinding.rbac.authorization.k8s.io/certsmith",
            "role.rbac.authorization.k8s.io/certsmith-leader-election",
            "rolebinding.rbac.authorization.k8s.io/certsmith-leader-election",
        ]
    )
    namespaced = _kubectl(
        cluster, "apply", "-k", str(REPO / "deploy" / "namespaced"), "--dry-run=server", "-o", "name"
    )
    assert sorted(namespaced.split()) == sorted(
        [
            *common,
            "role.rbac.authorization.k8s.io/certsmith",
            "rolebinding.rbac.authorization.k8s.io/certsmith",
        ]
    ), "deploy/namespaced/ has no ClusterRole"


def test_install_yaml_is_the_rendered_kustomization(cluster: Cluster) -> None:
    rendered = _kubectl(cluster, "kustomize", str(REPO / "deploy"))
    shipped = (REPO / "deploy" / "install.yaml").read_text()
    assert list(yaml.safe_load_all(shipped)) == list(yaml.safe_load_all(rendered)), (
        "deploy/install.yaml is stale: run kubectl kustomize deploy > deploy/install.yaml (keep its header)"
    )


def test_the_deployment_runs_this_version_hardened() -> None:
    documents = yaml.safe_load_all((REPO / "deploy" / "base" / "deployment.yaml").read_text())
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == f"certsmith:{__version__}"
    assert "--leader-elect" in container["args"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
