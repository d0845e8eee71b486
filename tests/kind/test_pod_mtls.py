"""Mutual TLS between Pods whose certificates the kubelet got from certsmith through `podCertificate`
projected volumes: the seed's Python `ssl` exchange (CERT_REQUIRED on both sides, TLS 1.3), in a
cluster, with the mesh CA (a ClusterIssuer's) in a ConfigMap that a Bundle of that ClusterIssuer made;
a Pod whose certificate another CA signed is refused."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith_devtools.kind import NAMESPACE, OPERATOR_IMAGE, KindCluster
from certsmith_devtools.kit import create_object
from tests.cluster.support import eventually, secret_data, wait_ready
from tests.conftest import Cluster

_TLS = """
import os, socket, ssl, sys, time
role = sys.argv[1]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if role == "server" else ssl.PROTOCOL_TLS_CLIENT)
context.minimum_version = ssl.TLSVersion.TLSv1_3
context.verify_mode = ssl.CERT_REQUIRED
context.check_hostname = False  # the certificates name SPIFFE IDs, checked below, not host names
context.load_cert_chain("/identity/chain.pem", "/identity/key.pem")
context.load_verify_locations("/trust/ca.crt")

def peer(tls):
    return ",".join(value for kind, value in tls.getpeercert()["subjectAltName"] if kind == "URI")

if role == "server":
    listener = socket.create_server(("", 8443))
    while True:
        connection, _ = listener.accept()
        try:
            with context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(f"hello {peer(tls)} over {tls.version()}".encode())
                print("served", peer(tls), flush=True)
        except (ssl.SSLError, OSError) as error:
            print("refused:", error, flush=True)
for _ in range(120):
    try:
        connection = socket.create_connection((os.environ["SERVER"], 8443), timeout=10)
    except OSError:
        time.sleep(1)
        continue
    try:
        with context.wrap_socket(connection) as tls:
            print("server", peer(tls), "said:", tls.recv(200).decode(), flush=True)
    except (ssl.SSLError, OSError) as error:
        print("refused:", error, flush=True)
    break
"""


def test_two_pods_talk_mutual_tls_with_certsmith_pod_certificates_and_a_stranger_is_refused(
    kind: KindCluster, cluster: Cluster, namespace: str
) -> None:
    mesh = f"mesh-{namespace}"
    _ca_issuer(cluster, NAMESPACE, mesh, "mesh CA")
    objects = client.CustomObjectsApi(cluster.api)
    issuer = _object("ClusterIssuer", mesh, {"ca": {"secretName": f"{mesh}-root"}})
    objects.create_cluster_custom_object(GROUP, VERSION, "clusterissuers", issuer)
    bundle = {
        "sources": [{"issuerRef": {"name": mesh, "kind": "ClusterIssuer"}}],
        "target": {
            "configMap": {"key": "ca.crt"},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        },
    }
    objects.create_cluster_custom_object(GROUP, VERSION, "bundles", _object("Bundle", mesh, bundle))
    try:
        _talk(kind, cluster, namespace, mesh)
    finally:
        objects.delete_cluster_custom_object(GROUP, VERSION, "bundles", mesh)
        objects.delete_cluster_custom_object(GROUP, VERSION, "clusterissuers", mesh)
        made = (("certificates", f"{mesh}-root"), ("issuers", mesh), ("issuers", f"{mesh}-selfsigned"))
        for plural, name in made:
            objects.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)
        client.CoreV1Api(cluster.api).delete_namespaced_secret(f"{mesh}-root", NAMESPACE)


def _talk(kind: KindCluster, cluster: Cluster, namespace: str, mesh: str) -> None:
    """The mesh CA reaches `namespace` through the Bundle `mesh`; the server and client Pods get
    certificates from the ClusterIssuer `mesh`, the stranger from an Issuer of another CA."""
    _ca_issuer(cluster, namespace, "other", "stranger CA")
    ca = secret_data(cluster, NAMESPACE, f"{mesh}-root")["tls.crt"].decode()
    eventually(lambda: ca.strip() in _trusted(cluster, namespace, mesh), 60, "the Bundle's ConfigMap")
    for account in ("server", "client", "stranger"):
        kind.kubectl_run("-n", namespace, "create", "serviceaccount", account)

    signer = f"clusterissuers.certsmith.dev/{mesh}"
    _pod(kind, namespace, "server", "server", signer, "", mesh)
    server_ip = eventually(
        lambda: _get(kind, namespace, "server")["status"].get("podIP"), 180, "server Pod IP"
    )
    _pod(kind, namespace, "client", "client", signer, server_ip, mesh)
    _pod(kind, namespace, "stranger", "client", f"issuers.certsmith.dev/{namespace}.other", server_ip, mesh)

    client_log = _finished_log(kind, namespace, "client")
    assert f"server spiffe://cluster.local/ns/{namespace}/sa/server said: hello " in client_log, client_log
    assert f"spiffe://cluster.local/ns/{namespace}/sa/client over TLSv1.3" in client_log, client_log
    stranger_log = _finished_log(kind, namespace, "stranger")
    assert "refused:" in stranger_log, stranger_log
    assert "said:" not in stranger_log, stranger_log
    server_log = kind.kubectl_run("-n", namespace, "logs", "server")
    assert f"served spiffe://cluster.local/ns/{namespace}/sa/client" in server_log, server_log
    assert "refused:" in server_log, server_log
    assert f"served spiffe://cluster.local/ns/{namespace}/sa/stranger" not in server_log, server_log


def _trusted(cluster: Cluster, namespace: str, name: str) -> str:
    """The ca.crt of the ConfigMap `name`, empty while there is none."""
    try:
        config_map = client.CoreV1Api(cluster.api).read_namespaced_config_map(name, namespace)
    except client.exceptions.ApiException as error:
        if error.status == 404:
            return ""
        raise
    return str((config_map.data or {}).get("ca.crt") or "")


def _object(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}


def _ca_issuer(cluster: Cluster, namespace: str, name: str, common_name: str) -> None:
    """A CA Issuer `name` signing with a self-signed root CA Certificate `<name>-root`."""
    create_object(cluster.api, namespace, "Issuer", f"{name}-selfsigned", {"selfSigned": {}})
    create_object(
        cluster.api,
        namespace,
        "Certificate",
        f"{name}-root",
        {
            "secretName": f"{name}-root",
            "isCA": True,
            "commonName": common_name,
            "privateKey": {"algorithm": "ECDSA"},
            "issuerRef": {"name": f"{name}-selfsigned"},
        },
    )
    create_object(cluster.api, namespace, "Issuer", name, {"ca": {"secretName": f"{name}-root"}})
    wait_ready(cluster, namespace, f"{name}-root", timeout=60)


def _pod(
    kind: KindCluster, namespace: str, name: str, role: str, signer_name: str, server: str, trust: str
) -> None:
    """A Pod of ServiceAccount `name` running `_TLS` as `role`, its key and chain from `signer_name`, the
    CA certificates it trusts from the ConfigMap `trust`."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "serviceAccountName": name,
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": 0, "runAsNonRoot": False},
            "containers": [
                {
                    "name": "tls",
                    "image": OPERATOR_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", _TLS, role],
                    "env": [{"name": "SERVER", "value": server}],
                    "volumeMounts": [
                        {"name": "identity", "mountPath": "/identity", "readOnly": True},
                        {"name": "trust", "mountPath": "/trust", "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "identity",
                    "projected": {
                        "sources": [
                            {
                                "podCertificate": {
                                    "signerName": signer_name,
                                    "keyType": "ECDSAP256",
                                    "keyPath": "key.pem",
                                    "certificateChainPath": "chain.pem",
                                    "maxExpirationSeconds": 3600,
                                }
                            }
                        ]
                    },
                },
                {"name": "trust", "configMap": {"name": trust}},
            ],
        },
    }
    kind.kubectl_run("create", "-f", "-", stdin=json.dumps(pod))


def _get(kind: KindCluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kind.kubectl_run("-n", namespace, "get", "pod", name, "-o", "json"))
    return found


def _finished_log(kind: KindCluster, namespace: str, name: str) -> str:
    def finished() -> bool:
        phase = _get(kind, namespace, name)["status"].get("phase")
        return phase in ("Succeeded", "Failed")

    eventually(finished, 240, f"Pod {name} to finish")
    return kind.kubectl_run("-n", namespace, "logs", name)
