"""ACME issuance against a real Pebble: HTTP-01 answered by the operator, external account binding, a
challenge that cannot validate, a restart in the middle of an order, a CA that restarts."""

from __future__ import annotations

import base64
import datetime
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from kubernetes import client, watch

from certsmith.api import GROUP, VERSION
from certsmith.issuers.acme.client import AcmeClient
from certsmith.issuers.acme.orders import fold_order, order_status
from certsmith.pki.keys import load_private_key
from certsmith_devtools.bind import TSIG_KEY_NAME, Bind
from certsmith_devtools.kit import condition, free_port, why_not_ready
from certsmith_devtools.pebble import EAB_KEY_ID, EAB_MAC_KEY, Pebble
from tests.cluster.acme_support import acme_operator_process
from tests.cluster.support import (
    certificate,
    create,
    create_certificate,
    create_secret,
    events,
    eventually,
    http_status,
    openssl_verify,
    secret_data,
    wait_ready,
)
from tests.cluster.test_certificate_requests import KEYS, create_request, openssl_csr, settled
from tests.conftest import Cluster, OperatorProcess, fresh_namespace

pytestmark = pytest.mark.cluster

NAMESPACES = "solo-acme-*"


@pytest.fixture(scope="module")
def http01_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory, http01_port: int) -> Iterator[Pebble]:
    with Pebble(tmp_path_factory.mktemp("pebble"), http01_port) as server:
        yield server


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def acme_operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, http01_port: int, metrics_port: int
) -> Iterator[OperatorProcess]:
    with acme_operator_process(
        cluster,
        tmp_path_factory,
        "ACME",
        NAMESPACES,
        http01_port,
        *("--acme-solver-service", "certsmith/certsmith-acme-solver"),
        metrics_port=metrics_port,
    ) as process:
        yield process


@pytest.fixture
def acme_namespace(cluster: Cluster, acme_operator: OperatorProcess) -> Iterator[str]:
    with fresh_namespace(cluster, "solo-acme") as name:
        yield name


def acme_issuer(cluster: Cluster, namespace: str, pebble: Pebble, name: str = "pebble", **acme: Any) -> None:
    """An ACME Issuer for `pebble`, HTTP-01 for every name; `acme` overrides fields (None removes one)."""
    spec = {
        "server": pebble.url,
        "email": "ops@example.com",
        "privateKeySecretRef": {"name": f"{name}-account"},
        "caBundle": base64.b64encode(pebble.ca_bundle).decode(),
        "solvers": [{"http01": {"ingress": {}}}],
        **acme,
    }
    create(cluster, namespace, "Issuer", name, {"acme": {k: v for k, v in spec.items() if v is not None}})


def issuer(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    body = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "issuers", name
    )
    assert isinstance(body, dict)
    return body


def issuing(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The Certificate's Issuing condition ({} when there is none)."""
    return condition(certificate(cluster, namespace, name), "Issuing")


def issuer_condition(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return condition(issuer(cluster, namespace, name))


def issuing_reason(cluster: Cluster, namespace: str, name: str, reason: str) -> dict[str, Any]:
    """The Certificate's Issuing condition once its reason starts with `reason`."""

    def said() -> dict[str, Any] | None:
        found = issuing(cluster, namespace, name)
        return found if str(found.get("reason", "")).startswith(reason) else None

    return eventually(said, what=f"Certificate {name} to say {reason}")


def issuer_reason(cluster: Cluster, namespace: str, name: str, reason: str) -> dict[str, Any]:
    """The Issuer's Ready condition once its reason is `reason`."""

    def said() -> dict[str, Any] | None:
        found = issuer_condition(cluster, namespace, name)
        return found if found.get("reason") == reason else None

    return eventually(said, what=f"Issuer {name} to say {reason}")


def test_http01_certificate_for_two_names_is_issued_and_chains_to_pebbles_root(
    cluster: Cluster, pebble: Pebble, acme_namespace: str, tmp_path: Path, metrics_port: int
) -> None:
    acme_issuer(cluster, acme_namespace, pebble)
    ready = eventually(
        lambda: issuer_condition(cluster, acme_namespace, "pebble").get("status") == "True",
        what="the ACME Issuer to be Ready",
    )
    assert ready
    account = issuer(cluster, acme_namespace, "pebble")["status"]["acme"]["uri"]
    assert account.startswith(pebble.url.removesuffix("/dir"))
    account_key = secret_data(cluster, acme_namespace, "pebble-account")
    assert set(account_key) == {"tls.key"}

    create_certificate(
        cluster, acme_namespace, "web", "pebble", dnsNames=["web.example.com", "www.example.com"]
    )
    body = wait_ready(cluster, acme_namespace, "web")
    assert "acme" not in body["status"], "the finished order stays in the status"
    data = secret_data(cluster, acme_namespace, "web")
    assert "ca.crt" not in data, "Pebble's chain has no root, so ca.crt must be absent"
    (tmp_path / "chain.pem").write_bytes(data["tls.crt"])
    (tmp_path / "root.pem").write_bytes(pebble.roots())
    openssl_verify(tmp_path / "root.pem", tmp_path / "chain.pem", "-untrusted", str(tmp_path / "chain.pem"))

    def reasons() -> list[str] | None:
        found = [reason for _, reason, _ in events(cluster, acme_namespace, "web")]
        return found if "Issued" in found else None

    posted = eventually(reasons, 10, "the Issued Event (the recorder posts it after the status)")
    assert posted.count("OrderCreated") == 1, posted
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    for action in ("register", "new-order", "answer", "finalize", "certificate"):
        assert f'certsmith_acme_requests_total{{action="{action}",status="ok"}}' in metrics, action
    assert 'certsmith_acme_request_duration_seconds_count{action="new-order"}' in metrics


@pytest.fixture
def eab_pebble(tmp_path: Path, http01_port: int) -> Iterator[Pebble]:
    with Pebble(tmp_path / "pebble", http01_port, require_eab=True) as server:
        yield server


def test_external_account_binding_is_required_checked_and_used(
    cluster: Cluster, eab_pebble: Pebble, acme_namespace: str
) -> None:
    keys = {"right": EAB_MAC_KEY.encode(), "wrong": EAB_MAC_KEY[::-1].encode()}
    create_secret(cluster, acme_namespace, "eab", keys, kind="Opaque")
    acme_issuer(cluster, acme_namespace, eab_pebble, "unbound")
    refused = issuer_reason(cluster, acme_namespace, "unbound", "ExternalAccountRequired")
    assert "spec.acme.externalAccountBinding" in refused["message"]

    def bound(name: str, key: str) -> None:
        binding = {"keyID": EAB_KEY_ID, "keySecretRef": {"name": "eab", "key": key}}
        acme_issuer(cluster, acme_namespace, eab_pebble, name, externalAccountBinding=binding)

    bound("wrong", "wrong")
    wrong = eventually(
        lambda: (
            (found := issuer_condition(cluster, acme_namespace, "wrong")).get("status") == "False"
            and found.get("reason") not in (None, "AccountKeyMissing", "Registering")
            and found
        ),
        what="an Issuer with a wrong EAB key to be refused",
    )
    assert "registering the ACME account" in wrong["message"], wrong

    bound("right", "right")
    eventually(
        lambda: issuer_condition(cluster, acme_namespace, "right").get("status") == "True",
        what="an Issuer with the right EAB key to be Ready",
    )
    create_certificate(cluster, acme_namespace, "bound", "right", dnsNames=["bound.example.com"])
    wait_ready(cluster, acme_namespace, "bound")


def test_a_challenge_that_cannot_validate_fails_with_the_cas_words_and_orders_stay_bounded(
    cluster: Cluster, tmp_path: Path, acme_namespace: str, acme_operator: OperatorProcess
) -> None:
    """Pebble's validator connects to a port where nothing listens: every order fails. The operator
    backs off, and after --acme-orders-per-hour (6) orders it stops making new ones."""
    with Pebble(tmp_path / "pebble", free_port()) as unreachable:
        acme_issuer(cluster, acme_namespace, unreachable)
        create_certificate(cluster, acme_namespace, "lost", "pebble", dnsNames=["lost.example.com"])

        failed = issuing_reason(cluster, acme_namespace, "lost", "ChallengeFailed")
        assert "http-01 challenge for lost.example.com failed" in failed["message"], failed
        assert "Connection refused" in failed["message"] or "connection refused" in failed["message"], failed
        held = eventually(
            lambda: (
                "ACME orders for this certificate in the last hour"
                in issuing(cluster, acme_namespace, "lost").get("message", "")
            ),
            timeout=90,
            what="the order bound to hold further orders",
        )
        assert held
        orders = acme_operator.log().count(f"certificate {acme_namespace}/lost: new ACME order")
        assert orders == 6, f"{orders} orders made; the bound is 6 per hour"
        body = certificate(cluster, acme_namespace, "lost")
        assert condition(body).get("status") != "True", why_not_ready(body)
        assert body["status"]["acme"]["order"]["state"] == "invalid"


def test_a_restarted_operator_resumes_the_order_in_the_status(
    cluster: Cluster, pebble: Pebble, acme_namespace: str, acme_operator: OperatorProcess
) -> None:
    """The order is made while no operator runs (as if the one that made it had died right after
    saving it); the operator that starts finishes that order instead of making another."""
    acme_issuer(cluster, acme_namespace, pebble)
    eventually(lambda: issuer_condition(cluster, acme_namespace, "pebble").get("status") == "True")
    acme_operator.stop()
    try:
        names = ["resumed.example.com"]
        create_certificate(cluster, acme_namespace, "resumed", "pebble", dnsNames=names)
        account = AcmeClient(
            pebble.url,
            load_private_key(secret_data(cluster, acme_namespace, "pebble-account")["tls.key"]),
            pebble.ca_bundle,
            skip_tls_verify=False,
            timeout=30,
        )
        account.register("ops@example.com", None)
        answer = account.new_order(names, None)
        now = datetime.datetime.now(datetime.UTC)
        order = fold_order(answer.url, answer.body, answer.authorizations, None, lambda _: "http-01", now)
        status = {"status": {"acme": {"order": order_status(order)}}}
        client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object_status(
            GROUP, VERSION, acme_namespace, "certificates", "resumed", status
        )
    finally:
        acme_operator.start()
    wait_ready(cluster, acme_namespace, "resumed")
    assert f"certificate {acme_namespace}/resumed: new ACME order" not in acme_operator.log()
    assert account.fetch(answer.url, []).body["status"] == "valid"


def test_a_ca_that_restarts_and_forgets_everything_ends_in_a_certificate(
    cluster: Cluster, tmp_path: Path, http01_port: int, acme_namespace: str, acme_operator: OperatorProcess
) -> None:
    with Pebble(tmp_path / "pebble", http01_port) as forgetful:
        acme_issuer(cluster, acme_namespace, forgetful)
        eventually(lambda: issuer_condition(cluster, acme_namespace, "pebble").get("status") == "True")
        forgetful.stop()
        create_certificate(cluster, acme_namespace, "patient", "pebble", dnsNames=["patient.example.com"])
        down = issuing_reason(cluster, acme_namespace, "patient", "ServerUnreachable")
        assert "connect" in down["message"].lower(), down
        forgetful.restart()
        wait_ready(cluster, acme_namespace, "patient", timeout=60)
    orders = acme_operator.log().count(f"certificate {acme_namespace}/patient: new ACME order")
    assert orders == 1, f"{orders} orders for one certificate"


def test_a_ca_that_rejects_half_the_nonces_still_issues(
    cluster: Cluster, tmp_path: Path, http01_port: int, acme_namespace: str
) -> None:
    with Pebble(tmp_path / "pebble", http01_port, environment={"PEBBLE_WFE_NONCEREJECT": "50"}) as picky:
        acme_issuer(cluster, acme_namespace, picky)
        create_certificate(cluster, acme_namespace, "nonces", "pebble", dnsNames=["nonces.example.com"])
        wait_ready(cluster, acme_namespace, "nonces", timeout=60)


def test_a_standby_replica_answers_http01_from_the_status(
    cluster: Cluster, tmp_path: Path, solo_namespace: str
) -> None:
    """Pebble validates through the standby's solver port only: the leader's own memory cannot answer."""
    namespace = solo_namespace
    leader_port, standby_port = free_port(), free_port()

    def replica(name: str, port: int) -> OperatorProcess:
        process = OperatorProcess(
            cluster.kubeconfig,
            tmp_path / f"{name}.log",
            *("--namespace", namespace, "--leader-elect", "--leader-elect-namespace", namespace),
            *("--acme-http01-port", str(port), "--acme-http01-address", "127.0.0.1"),
        )
        process.start()
        return process

    leader = replica("leader", leader_port)
    standby: OperatorProcess | None = None
    try:
        eventually(lambda: f"_{leader.pid}_" in _lease_holder(cluster, namespace), what="a leader")
        standby = replica("standby", standby_port)
        eventually(lambda: http_status(standby_port, "/.well-known/acme-challenge/none") == 404)
        with Pebble(tmp_path / "pebble", standby_port) as server:
            acme_issuer(cluster, namespace, server)
            create_certificate(cluster, namespace, "ha", "pebble", dnsNames=["ha.example.com"])
            wait_ready(cluster, namespace, "ha")
        assert "new ACME order" in leader.log()
        assert "new ACME order" not in standby.log()
    finally:
        leader.stop()
        if standby is not None:
            standby.stop()


def _lease_holder(cluster: Cluster, namespace: str) -> str:
    try:
        lease = client.CoordinationV1Api(cluster.api).read_namespaced_lease("certsmith", namespace)
    except client.exceptions.ApiException:
        return ""
    return (lease.spec.holder_identity if lease.spec else None) or ""


def test_dns01_wildcard_and_apex_through_a_real_bind(
    cluster: Cluster, tmp_path: Path, http01_port: int, acme_namespace: str
) -> None:
    """Pebble resolves through BIND, which takes TSIG-signed updates: the TXT records are published,
    validated and removed again."""
    with (
        Bind(tmp_path / "bind", "example.test") as bind,
        Pebble(tmp_path / "pebble", http01_port, dns_server=bind.address) as server,
    ):
        create_secret(cluster, acme_namespace, "tsig", {"secret": bind.tsig_secret.encode()}, kind="Opaque")
        rfc2136 = {
            "nameserver": bind.address,
            "tsigKeyName": TSIG_KEY_NAME,
            "tsigAlgorithm": "HMACSHA256",
            "tsigSecretSecretRef": {"name": "tsig", "key": "secret"},
        }
        acme_issuer(cluster, acme_namespace, server, solvers=[{"dns01": {"rfc2136": rfc2136}}])
        names = ["example.test", "*.example.test"]
        create_certificate(cluster, acme_namespace, "wild", "pebble", dnsNames=names)
        wait_ready(cluster, acme_namespace, "wild")
        leaf = x509.load_pem_x509_certificate(secret_data(cluster, acme_namespace, "wild")["tls.crt"])
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(names)
        assert bind.txt("_acme-challenge.example.test.") == set(), "TXT records left behind"


def test_a_wildcard_without_a_dns01_solver_says_so(
    cluster: Cluster, pebble: Pebble, acme_namespace: str
) -> None:
    acme_issuer(cluster, acme_namespace, pebble)
    create_certificate(cluster, acme_namespace, "nosolver", "pebble", dnsNames=["*.example.com"])
    refused = issuing_reason(cluster, acme_namespace, "nosolver", "NoSolver")
    assert "a wildcard needs a dns01 solver" in refused["message"]


def test_each_http01_challenge_gets_an_ingress_to_the_solver_that_is_removed_afterwards(
    cluster: Cluster, pebble: Pebble, acme_namespace: str
) -> None:
    """What an ingress controller would route: the replayed watch shows every Ingress and Service the
    operator made for the challenges, and their deletion."""
    ingress = {"ingressClassName": "nginx", "annotations": {"example.com/team": "web"}}
    acme_issuer(cluster, acme_namespace, pebble, solvers=[{"http01": {"ingress": ingress}}])
    networking, core = client.NetworkingV1Api(cluster.api), client.CoreV1Api(cluster.api)
    since = {
        "ingresses": _version(networking.list_namespaced_ingress(acme_namespace)),
        "services": _version(core.list_namespaced_service(acme_namespace)),
    }
    create_certificate(cluster, acme_namespace, "routed", "pebble", dnsNames=["routed.example.com"])
    body = wait_ready(cluster, acme_namespace, "routed")
    assert "acme" not in body["status"]
    ingresses = _replayed(networking.list_namespaced_ingress, acme_namespace, since["ingresses"])
    services = _replayed(core.list_namespaced_service, acme_namespace, since["services"])
    assert [kind for kind, _ in ingresses] == ["ADDED", "DELETED"], ingresses
    assert [kind for kind, _ in services] == ["ADDED", "DELETED"], services
    made = ingresses[0][1]
    for owned in (made, services[0][1]):
        (owner,) = owned.metadata.owner_references
        assert (owner.kind, owner.name) == ("Certificate", "routed"), "collected with the Certificate"
    assert made.spec.ingress_class_name == "nginx"
    assert made.metadata.annotations == {"example.com/team": "web"}
    (rule,) = made.spec.rules
    assert rule.host == "routed.example.com"
    (path,) = rule.http.paths
    assert path.path.startswith("/.well-known/acme-challenge/")
    assert path.path_type == "Exact"
    assert path.backend.service.name == services[0][1].metadata.name
    assert services[0][1].spec.type == "ExternalName"
    assert services[0][1].spec.external_name == "certsmith-acme-solver.certsmith.svc"


def _version(listed: Any) -> str:
    return str(listed.metadata.resource_version)


def _replayed(lister: Any, namespace: str, since: str) -> list[tuple[str, Any]]:
    """The watch events of a namespace's objects after resourceVersion `since`."""
    replay = watch.Watch()  # type: ignore[no-untyped-call]
    stream = replay.stream(lister, namespace, resource_version=since, timeout_seconds=2)  # type: ignore[no-untyped-call]
    return [(event["type"], event["object"]) for event in stream]


def test_preferred_chain_picks_the_alternate_chain_by_its_roots_name(
    cluster: Cluster, tmp_path: Path, http01_port: int, acme_namespace: str
) -> None:
    with Pebble(tmp_path / "pebble", http01_port, environment={"PEBBLE_ALTERNATE_ROOTS": "1"}) as server:
        alternate = x509.load_pem_x509_certificate(server.roots(1))
        name = alternate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        acme_issuer(cluster, acme_namespace, server, preferredChain=name)
        create_certificate(cluster, acme_namespace, "alt", "pebble", dnsNames=["alt.example.com"])
        wait_ready(cluster, acme_namespace, "alt")
        (tmp_path / "chain.pem").write_bytes(secret_data(cluster, acme_namespace, "alt")["tls.crt"])
        (tmp_path / "alternate.pem").write_bytes(server.roots(1))
        (tmp_path / "default.pem").write_bytes(server.roots(0))
    chain = str(tmp_path / "chain.pem")
    openssl_verify(tmp_path / "alternate.pem", tmp_path / "chain.pem", "-untrusted", chain)
    with pytest.raises(AssertionError):
        openssl_verify(tmp_path / "default.pem", tmp_path / "chain.pem", "-untrusted", chain)


def test_an_issuer_says_why_it_cannot_reach_its_ca(
    cluster: Cluster, pebble: Pebble, acme_namespace: str
) -> None:
    acme_issuer(cluster, acme_namespace, pebble, "untrusted", caBundle=None)
    acme_issuer(cluster, acme_namespace, pebble, "nowhere", server=f"https://127.0.0.1:{free_port()}/dir")
    untrusted = issuer_reason(cluster, acme_namespace, "untrusted", "TLSError")
    assert "set spec.acme.caBundle" in untrusted["message"]
    nowhere = issuer_reason(cluster, acme_namespace, "nowhere", "CAUnreachable")
    assert "reading the ACME directory" in nowhere["message"]
    assert "https://127.0.0.1:" in nowhere["message"], "the CA's address is named"
    acme_issuer(
        cluster, acme_namespace, pebble, "elsewhere", server=pebble.url.replace("/dir", "/nothing-here")
    )
    elsewhere = issuer_reason(cluster, acme_namespace, "elsewhere", "NotAnACMEDirectory")
    assert "spec.acme.server must be the URL of the CA's ACME directory" in elsewhere["message"]


def test_a_certificate_request_is_signed_through_an_acme_order(
    cluster: Cluster, pebble: Pebble, acme_namespace: str, tmp_path: Path
) -> None:
    """An openssl-made CSR for two names: the order runs from the request's status, the chain verifies."""
    acme_issuer(cluster, acme_namespace, pebble)
    csr = openssl_csr(tmp_path, "shop", KEYS["ECDSA"], "/CN=app.example")
    create_request(cluster, acme_namespace, "shop", csr, "pebble")
    body = settled(cluster, acme_namespace, "shop", "Issued", timeout=60)
    assert "acme" not in body["status"], "the finished order stays in the status"
    chain = tmp_path / "chain.pem"
    chain.write_bytes(base64.b64decode(body["status"]["certificate"]))
    (tmp_path / "root.pem").write_bytes(pebble.roots())
    openssl_verify(tmp_path / "root.pem", chain, "-untrusted", str(chain))
    leaf = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == ["app.example", "www.app.example"]
