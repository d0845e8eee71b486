"""The I/O layer against a fake CA and a fake DNS server, in virtual time: no reconcile waits for a CA
or a nameserver, each issuer is its own failure domain, and a dead CA is probed by one step."""

from __future__ import annotations

import base64
import datetime
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from certsmith.api import CERTIFICATE_REQUESTS, CERTIFICATES, ISSUERS
from certsmith.api.acme import RFC2136Solver, parse_acme_spec
from certsmith.api.status import timestamp
from certsmith.engine import lanes as lanes_module
from certsmith.engine.lanes import KEY_GENERATION_LANE_SIZE, LANE_SIZE, Lanes
from certsmith.engine.steps import RenewalInfoStep
from certsmith.issuers import Pending, RenewalInfoAnswer, SigningFailedError, SigningRequest
from certsmith.issuers.acme import dns01_rfc2136
from certsmith.issuers.acme.accounts import AccountBook
from certsmith.issuers.acme.client import SERVER_UNREACHABLE, AcmeClient, AcmeError, OrderAnswer
from certsmith.issuers.acme.dns01 import DNSProviderError
from certsmith.issuers.acme.dns01_rfc2136 import RFC2136Provider
from certsmith.issuers.acme.http01 import HTTP01Responder
from certsmith.issuers.acme.signer import AcmeContext, AcmeSigner
from certsmith.issuers.health import UNREACHABLE_AFTER, IssuerHealth
from certsmith.pki.inspection import load_certificates
from certsmith.pki.keys import (
    KeyAlgorithm,
    KeyEncoding,
    KeySpec,
    PrivateKey,
    encode_private_key,
    generate_private_key,
    load_private_key,
    spec_of,
)
from certsmith.pki.request import CertificateTemplate, build_csr
from certsmith.reconcile import certificate as certificate_module
from certsmith.reconcile.certificate_request import CertificateRequestReconciler
from certsmith.reconcile.plan import merge_written
from certsmith.reconcile.store import WorkItem
from certsmith.renewal_info import first_fetch
from certsmith.tls_secret import CERTIFICATE_NAME, MANAGED_LABEL, SecretContents
from tests.unit.fakekube import Clock
from tests.unit.test_reconcile import MINUTE, NOW, NS, World, _ca_pair

SECOND = datetime.timedelta(seconds=1)
CA_KEY = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))


class FakeCA:
    """Stands in for the network side of `AcmeClient`, per server: answers at once, hangs until
    released, or is unreachable. Counts the requests and the most it served at once."""

    def __init__(self) -> None:
        self.mode: dict[str, str] = {}
        self.requests: dict[str, int] = {}
        self.running = 0
        self.most_at_once = 0
        self.release = threading.Event()
        self.processing = False
        """Finalizing answers "processing" (the certificate comes with a later poll), not "valid"."""
        self.csrs: dict[str, x509.CertificateSigningRequest] = {}
        self._lock = threading.Lock()

    def order(self, url: str, status: str) -> dict[str, Any]:
        csr = self.csrs[url]
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        body: dict[str, Any] = {
            "status": status,
            "identifiers": [{"value": name} for name in names.get_values_for_type(x509.DNSName)],
            "finalize": "f",
        }
        return body | ({"certificate": f"{url}/cert"} if status == "valid" else {})

    def request(self, server: str) -> None:
        if not server.endswith(".test/dir"):  # a step of an earlier test, against a real socket
            raise AcmeError(SERVER_UNREACHABLE, f"{server} is not a fake CA")
        with self._lock:
            self.requests[server] = self.requests.get(server, 0) + 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            mode = self.mode.get(server, "answer")
            if mode == "hang":
                self.release.wait(30)
            if mode in ("hang", "unreachable"):
                raise AcmeError(SERVER_UNREACHABLE, f"connecting to {server}: timed out")
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def ca(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCA]:
    fake = FakeCA()

    def register(self: AcmeClient, email: str | None, binding: tuple[str, str] | None) -> str:
        fake.request(self.server)
        self.account_uri = f"{self.server}/account/1"
        return self.account_uri

    def new_order(self: AcmeClient, identifiers: Sequence[str], profile: str | None) -> OrderAnswer:
        fake.request(self.server)
        body = {"status": "ready", "identifiers": [{"value": n} for n in identifiers], "finalize": "f"}
        return OrderAnswer(f"{self.server}/order/1", body, {})

    def finalize(
        self: AcmeClient, order_url: str, finalize_url: str, csr: x509.CertificateSigningRequest
    ) -> OrderAnswer:
        fake.request(self.server)
        fake.csrs[order_url] = csr
        return OrderAnswer(order_url, fake.order(order_url, "processing" if fake.processing else "valid"), {})

    def fetch(self: AcmeClient, url: str, authorizations: Sequence[str]) -> OrderAnswer:
        fake.request(self.server)
        return OrderAnswer(url, fake.order(url, "valid"), {})

    def download(self: AcmeClient, certificate_url: str) -> list[str]:
        fake.request(self.server)
        return [_signed_pem(fake.csrs[certificate_url.removesuffix("/cert")])]

    monkeypatch.setattr(AcmeClient, "register", register)
    monkeypatch.setattr(AcmeClient, "new_order", new_order)
    monkeypatch.setattr(AcmeClient, "finalize", finalize)
    monkeypatch.setattr(AcmeClient, "fetch", fetch)
    monkeypatch.setattr(AcmeClient, "download", download)
    monkeypatch.setattr(AcmeClient, "caa_identities", lambda self: ())
    yield fake
    fake.release.set()


def _signed_pem(csr: x509.CertificateSigningRequest) -> str:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "fake CA")])
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(name)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(hours=1))
        .not_valid_after(NOW + datetime.timedelta(days=90))
        .add_extension(names.value, critical=False)
        .sign(CA_KEY, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _acme_issuer(world: World, name: str, server: str) -> WorkItem:
    account_key = encode_private_key(
        generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256)), KeyEncoding.PKCS8
    )
    world.kube.put_secret(NS, f"{name}-account", SecretContents(data={"tls.key": account_key}, type="Opaque"))
    world.referenced.add((NS, f"{name}-account"))
    spec = {"server": server, "privateKeySecretRef": {"name": f"{name}-account"}, "solvers": [{"http01": {}}]}
    return world.issuer(name, {"acme": spec})


def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _ready_issuer(world: World, item: WorkItem) -> None:
    """Register the issuer's account through its lane, as the runtime would."""
    world.reconcile_issuer(item)
    assert world.step_ended() == item
    world.reconcile_issuer(item)
    assert world.issuer_ready(item)["status"] == "True", world.issuer_ready(item)


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every socket use from the test's own thread (the reconcile's) is recorded and refused; the
    lanes' threads are left alone."""
    reconciling = threading.get_ident()
    used: list[str] = []

    def guard(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == reconciling:
                used.append(name)
                raise OSError(f"the reconcile path called socket.{name}")
            return original(*args, **kwargs)

        return call

    for name in ("create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, guard(name, getattr(socket, name)))
    monkeypatch.setattr(socket.socket, "connect", guard("connect", socket.socket.connect))
    monkeypatch.setattr(socket.socket, "sendto", guard("sendto", socket.socket.sendto))
    return used


@pytest.fixture
def silent_tcp() -> Iterator[str]:
    """An ACME server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"https://127.0.0.1:{server.getsockname()[1]}/dir"
    server.close()


def test_the_reconcile_path_makes_no_network_call_even_with_a_silent_ca(
    guarded: list[str], silent_tcp: str
) -> None:
    """The real ACME client against a server that never answers: the issuer says it is registering and
    its Certificate waits on it, at once, with no socket used by the reconcile."""
    world = World()
    silent = _acme_issuer(world, "silent", silent_tcp)
    world.certificate("web", issuerRef={"name": "silent"})
    started = time.monotonic()
    world.reconcile_issuer(silent)
    world.reconcile_issuer(silent)
    world.reconcile("web")
    assert time.monotonic() - started < 5, "no call waits for the CA"
    assert world.issuer_ready(silent)["reason"] == "Registering"
    assert world.lanes.busy(silent), "one registration, in the issuer's lane"
    ready = world.ready("web")
    assert ready["reason"] == "IssuerNotReady"
    assert silent_tcp in ready["message"]
    assert guarded == []


def test_signing_by_a_ca_is_a_step_and_no_reconcile_makes_a_request(ca: FakeCA, guarded: list[str]) -> None:
    world = World()
    issuer = _acme_issuer(world, "acme", "https://ca.test/dir")
    _ready_issuer(world, issuer)
    world.certificate("web", issuerRef={"name": "acme"})
    first = world.reconcile("web")
    assert first.written.statuses == (), "nothing to say until the CA answers"
    assert world.step_ended() == WorkItem(CERTIFICATES, (NS, "web"))
    world.reconcile("web")
    assert world.ready("web")["status"] == "True", world.ready("web")
    assert ca.requests["https://ca.test/dir"] == 4, "register, new order, finalize, download"
    assert world.lanes.signed(WorkItem(CERTIFICATES, (NS, "web"))) is None, "the result is settled"
    assert guarded == []


def test_an_order_the_ca_still_processes_is_polled_for_the_key_that_finalized_it(ca: FakeCA) -> None:
    """No wait for the CA to process the CSR: the order is saved as processing, the key stays in
    memory, and a later step downloads the certificate for that key."""
    ca.processing = True
    world = World()
    _ready_issuer(world, _acme_issuer(world, "acme", "https://ca.test/dir"))
    world.certificate("web", issuerRef={"name": "acme"})
    world.reconcile("web")
    world.step_ended()
    pending = world.reconcile("web")
    assert world.status("web")["acme"]["order"]["state"] == "processing"
    assert pending.recheck_at is not None
    time.sleep(1.1)  # the order's first poll is due a second after it was finalized
    world.certificate("web", issuerRef={"name": "acme"})
    world.reconcile("web")
    world.step_ended()
    world.reconcile("web")
    assert world.ready("web")["status"] == "True", world.ready("web")
    assert ca.requests["https://ca.test/dir"] == 5, "register, new order, finalize, poll, download"
    assert "acme" not in world.status("web")
    world.reconcile("web")
    assert world.ready("web")["status"] == "True"
    assert ca.requests["https://ca.test/dir"] == 5, "the certificate is for the Secret's key: nothing to redo"


@pytest.mark.parametrize("certificates", [1, 20])
def test_a_hanging_ca_never_holds_the_one_worker_nor_another_issuer(ca: FakeCA, certificates: int) -> None:
    """One thread reconciles everything (--workers 1): Certificates of a CA that hangs are each handed
    to their issuer's lane at once, and the CA issuer's are Ready meanwhile."""
    world = World()
    slow = _acme_issuer(world, "slow", "https://slow.test/dir")
    _ready_issuer(world, slow)
    ca.mode["https://slow.test/dir"] = "hang"
    world.kube.put_secret(NS, "ca", _ca_pair())
    world.issuer("ca", {"ca": {"secretName": "ca"}})
    started = time.monotonic()
    for index in range(certificates):
        world.certificate(f"slow-{index}", issuerRef={"name": "slow"})
        world.reconcile(f"slow-{index}")
    for index in range(certificates):
        world.certificate(f"fast-{index}", issuerRef={"name": "ca"})
        world.reconcile(f"fast-{index}")
        assert world.ready(f"fast-{index}")["status"] == "True"
    assert time.monotonic() - started < 5
    _until("the slow CA's lane to fill", lambda: ca.running == min(certificates, LANE_SIZE))
    assert ca.most_at_once == min(certificates, LANE_SIZE), "the lane's own limit"
    assert all(world.lanes.busy(WorkItem(CERTIFICATES, (NS, f"slow-{i}"))) for i in range(certificates))


def test_each_issuer_has_its_own_lane(ca: FakeCA) -> None:
    world = World()
    slow = _acme_issuer(world, "slow", "https://slow.test/dir")
    fast = _acme_issuer(world, "fast", "https://fast.test/dir")
    _ready_issuer(world, slow)
    _ready_issuer(world, fast)
    ca.mode["https://slow.test/dir"] = "hang"
    for index in range(2 * LANE_SIZE):
        world.certificate(f"slow-{index}", issuerRef={"name": "slow"})
        world.reconcile(f"slow-{index}")
    world.certificate("quick", issuerRef={"name": "fast"})
    world.reconcile("quick")
    assert world.step_ended() == WorkItem(CERTIFICATES, (NS, "quick")), "not behind the slow issuer's steps"
    world.reconcile("quick")
    assert world.ready("quick")["status"] == "True"


def test_an_rsa_key_is_made_in_the_key_lane_while_the_worker_signs_the_rest() -> None:
    """One worker (--workers 1): an RSA Certificate of a CA issuer is handed to the key generation lane,
    and an ECDSA one of the same issuer is Ready meanwhile, signed in the reconcile."""
    world = World()
    world.kube.put_secret(NS, "ca", _ca_pair())
    world.issuer("ca", {"ca": {"secretName": "ca"}})
    world.certificate("rsa", issuerRef={"name": "ca"}, privateKey={"algorithm": "RSA", "size": 2048})
    world.certificate("ecdsa", issuerRef={"name": "ca"})
    handed = world.reconcile("rsa")
    world.reconcile("ecdsa")
    assert handed.written.statuses == (), "nothing to say until its key is made"
    assert world.ready("ecdsa")["status"] == "True"
    assert world.step_ended() == WorkItem(CERTIFICATES, (NS, "rsa"))
    world.reconcile("rsa")
    assert world.ready("rsa")["status"] == "True", world.ready("rsa")
    key = load_private_key(world.secret("rsa").data["tls.key"])
    assert spec_of(key) == KeySpec(KeyAlgorithm.RSA, 2048)
    assert world.lanes.signed(WorkItem(CERTIFICATES, (NS, "rsa"))) is None, "the result is settled"


def test_rsa_keys_are_made_at_most_one_per_core_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    release = threading.Event()
    making = [0, 0]  # now, most at once
    lock = threading.Lock()

    def generate(spec: KeySpec) -> PrivateKey:
        with lock:
            making[0] += 1
            making[1] = max(making)
        release.wait(10)
        with lock:
            making[0] -= 1
        return generate_private_key(spec)

    monkeypatch.setattr(certificate_module, "generate_private_key", generate)
    certificates = KEY_GENERATION_LANE_SIZE + 3
    for index in range(certificates):
        world.certificate(f"rsa-{index}", privateKey={"algorithm": "RSA", "size": 2048})
        world.reconcile(f"rsa-{index}")
    _until("the key lane to fill", lambda: making[0] == KEY_GENERATION_LANE_SIZE)
    release.set()
    ended = {world.step_ended() for _ in range(certificates)}
    assert len(ended) == certificates
    assert making[1] == KEY_GENERATION_LANE_SIZE


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [(None, 2), ("max 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1), ("garbage", 2)],
)
def test_the_key_lane_has_a_thread_per_core_the_cgroup_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpu_max: str | None, expected: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    assert lanes_module._cores(path) == expected


def test_a_key_made_for_an_earlier_secret_is_never_written_later() -> None:
    """rotationPolicy Never: the key lane makes a key, but a key appears in the Secret before the
    result is used, so the Certificate is signed for that one. Days later the Secret is deleted: the
    certificate made back then (expired by now) must not be written."""
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    owner = WorkItem(CERTIFICATES, (NS, "kept"))
    rsa = {"algorithm": "RSA", "size": 2048, "rotationPolicy": "Never"}
    world.certificate("kept", privateKey=rsa, duration="24h")
    world.reconcile("kept")
    assert world.step_ended() == owner
    key = encode_private_key(generate_private_key(KeySpec(KeyAlgorithm.RSA, 2048)), KeyEncoding.PKCS1)
    contents = SecretContents(
        labels={MANAGED_LABEL: "true"},
        annotations={CERTIFICATE_NAME: "kept"},
        data={"tls.key": key},
        type="kubernetes.io/tls",
    )
    world.kube.put_secret(NS, "kept", contents)
    world.certificate("kept", privateKey=rsa, duration="24h")
    world.reconcile("kept")
    assert world.secret("kept").data["tls.key"] == key
    assert world.lanes.signed(owner) is None, "the lane's result is dropped"
    world.clock.advance(datetime.timedelta(days=3))
    del world.kube.secrets[(NS, "kept")]
    world.certificate("kept", privateKey=rsa, duration="24h")
    world.reconcile("kept")
    assert world.step_ended() == owner
    world.reconcile("kept")
    leaf = load_certificates(world.secret("kept").data["tls.crt"])[0]
    assert leaf.not_valid_after_utc > world.clock()


def test_a_result_passed_over_is_not_written_when_the_certificate_issues_again() -> None:
    """A foreign Secret takes the name while the key is made, so the result is not used; when that
    Secret is gone days later, a new step signs, not the one of back then."""
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    owner = WorkItem(CERTIFICATES, (NS, "web"))
    rsa = {"algorithm": "RSA", "size": 2048}
    world.certificate("web", privateKey=rsa, duration="24h")
    world.reconcile("web")
    assert world.step_ended() == owner
    world.kube.put_secret(NS, "web", _ca_pair())
    world.referenced.add((NS, "web"))
    world.reconcile("web")
    assert world.ready("web")["status"] == "False"
    world.clock.advance(datetime.timedelta(days=3))
    del world.kube.secrets[(NS, "web")]
    world.referenced.discard((NS, "web"))
    world.certificate("web", privateKey=rsa, duration="24h")
    world.reconcile("web")
    assert world.lanes.busy(owner), "signed anew"
    assert world.step_ended() == owner
    world.reconcile("web")
    leaf = load_certificates(world.secret("web").data["tls.crt"])[0]
    assert leaf.not_valid_after_utc > world.clock()


def test_a_kept_rsa_key_is_signed_in_the_reconcile() -> None:
    """rotationPolicy Never with the key in the Secret: no key to make, nothing to hand over."""
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    rsa = {"algorithm": "RSA", "size": 2048, "rotationPolicy": "Never"}
    world.certificate("kept", privateKey=rsa)
    world.reconcile("kept")
    world.step_ended()
    world.reconcile("kept")
    kept = world.secret("kept").data["tls.key"]
    world.certificate("kept", generation=2, privateKey=rsa, dnsNames=["other.example.com"])
    world.reconcile("kept")
    assert world.ready("kept")["status"] == "True", world.ready("kept")
    assert world.secret("kept").data["tls.key"] == kept
    assert not world.lanes.busy(WorkItem(CERTIFICATES, (NS, "kept")))


def test_an_unreachable_ca_is_one_failure_domain_probed_by_one_step(ca: FakeCA) -> None:
    world = World()
    acme = _acme_issuer(world, "acme", "https://down.test/dir")
    _ready_issuer(world, acme)
    ca.mode["https://down.test/dir"] = "unreachable"
    names = [f"web-{index}" for index in range(UNREACHABLE_AFTER + 3)]
    for name in names[:UNREACHABLE_AFTER]:
        world.certificate(name, issuerRef={"name": "acme"})
        world.reconcile(name)
        world.step_ended()
    world.reconcile(names[0])
    assert "CAUnreachable" in world.ready(names[0])["message"], "its own step's failure is not counted twice"
    assert world.lanes.signed(WorkItem(CERTIFICATES, (NS, names[0]))) is None
    requests = ca.requests["https://down.test/dir"]

    world.reconcile_issuer(acme)
    ready = world.issuer_ready(acme)
    assert (ready["status"], ready["reason"]) == ("False", "CAUnreachable")
    assert "https://down.test/dir" in ready["message"]
    assert "timed out" in ready["message"], "the last error"
    for name in names:
        world.certificate(name, issuerRef={"name": "acme"})
        world.reconcile(name)
        assert world.ready(name)["reason"] == "IssuerNotReady"
        assert "CAUnreachable" in world.ready(name)["message"]
    assert ca.requests["https://down.test/dir"] == requests, "no Certificate tried the CA"

    probe_at = world.reconcile_issuer(acme).recheck_at
    assert probe_at == NOW + 10 * SECOND, "the probe waits its back-off"
    ca.mode["https://down.test/dir"] = "hang"
    world.clock.advance(probe_at - world.clock())
    for _ in range(3):
        world.reconcile_issuer(acme)
    _until("the probe to reach the CA", lambda: ca.running == 1)
    assert ca.requests["https://down.test/dir"] == requests + 1, "one probe"
    ca.release.set()
    assert world.step_ended() == acme
    probe_at = world.reconcile_issuer(acme).recheck_at
    assert probe_at == world.clock() + 20 * SECOND, "the back-off doubles"

    ca.mode["https://down.test/dir"] = "answer"
    world.clock.advance(probe_at - world.clock())
    world.reconcile_issuer(acme)
    assert world.step_ended() == acme
    back = world.reconcile_issuer(acme)
    assert world.issuer_ready(acme)["status"] == "True"
    assert set(back.follow_up) >= {WorkItem(CERTIFICATES, (NS, name)) for name in names}


def test_probes_back_off_and_a_refusal_is_an_answer() -> None:
    clock = Clock(NOW)
    health = IssuerHealth(clock)
    issuer = (ISSUERS, (NS, "acme"))
    assert not health.failed(issuer, "https://ca.test/dir", "refused")
    assert health.refusal(issuer) is None, "one failure is not yet a dead CA"
    assert health.failed(issuer, "https://ca.test/dir", "refused")
    delays = []
    for _ in range(8):
        domain = health.domain(issuer)
        assert domain is not None
        delays.append((domain.next_attempt - clock()).total_seconds())
        health.failed(issuer, "https://ca.test/dir", "refused")
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]
    assert health.answered(issuer), "any answer makes it reachable again"
    assert health.refusal(issuer) is None


class FakeDNS:
    """A nameserver that takes updates and answers TXT queries only once told to."""

    def __init__(self) -> None:
        self.records: set[tuple[str, str]] = set()
        self.published = False
        self.queries = 0

    def present(self, fqdn: str, value: str) -> None:
        self.records.add((fqdn, value))

    def visible(self, fqdn: str, value: str) -> bool:
        self.queries += 1
        return self.published and (fqdn, value) in self.records

    def cleanup(self, fqdn: str, value: str) -> None:
        self.records.discard((fqdn, value))


class _DNSClient:
    """The CA side of a DNS-01 order, for the signer alone."""

    server = "https://ca.test/dir"

    def __init__(self) -> None:
        self.answered: list[str] = []
        self.body: dict[str, Any] = {}

    def new_order(self, identifiers: Sequence[str], profile: str | None) -> OrderAnswer:
        authorization = {
            "status": "pending",
            "identifier": {"type": "dns", "value": identifiers[0]},
            "challenges": [
                {"type": "dns-01", "url": "https://ca.test/chall/1", "token": "t", "status": "pending"}
            ],
        }
        self.body = {
            "status": "pending",
            "identifiers": [{"value": identifiers[0]}],
            "authorizations": ["a1"],
        }
        return OrderAnswer("https://ca.test/order/1", self.body, {"a1": authorization})

    def fetch(self, url: str, authorizations: Sequence[str]) -> OrderAnswer:
        return OrderAnswer(url, self.body, {})

    def answer(self, challenge_url: str) -> Mapping[str, Any]:
        self.answered.append(challenge_url)
        return {"status": "processing"}

    def key_authorization(self, token: str) -> str:
        return f"{token}.thumbprint"

    def caa_identities(self) -> tuple[str, ...]:
        return ()


def test_a_txt_record_not_visible_yet_is_a_recheck_not_a_wait() -> None:
    dns = FakeDNS()
    client = _DNSClient()
    spec = parse_acme_spec(
        {
            "server": client.server,
            "privateKeySecretRef": {"name": "a"},
            "solvers": [{"dns01": {"rfc2136": {"nameserver": "192.0.2.53"}}}],
        }
    )
    context = AcmeContext(HTTP01Responder(), 6, 30)
    signer = AcmeSigner(cast(AcmeClient, client), spec, context, lambda solver: dns)
    key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    template = CertificateTemplate(common_name=None, dns_names=("web.example.com",))

    def sign(order: Mapping[str, Any] | None) -> Pending:
        now = datetime.datetime.now(datetime.UTC)
        started = time.monotonic()
        signed = signer.sign(SigningRequest(template, lambda: key, now, (NS, "web"), order=order))
        assert time.monotonic() - started < 5, "no wait for the record to show"
        assert isinstance(signed, Pending)
        return signed

    presented = sign(None)
    assert dns.records, "the record was sent"
    assert "saving the presented challenges" in presented.message
    hidden = sign(presented.order)
    assert "waiting for 192.0.2.53 to answer the TXT record" in hidden.message
    assert hidden.until - datetime.datetime.now(datetime.UTC) < 3 * SECOND
    assert client.answered == [], "the CA is not asked to look before the record is visible"
    old = {**hidden.order, "createdAt": timestamp(datetime.datetime.now(datetime.UTC) - 3 * MINUTE)}
    with pytest.raises(SigningFailedError) as failed:
        sign(old)
    assert failed.value.reason == "DNSUpdateFailed"
    assert "192.0.2.53 took the TXT records" in str(failed.value)
    assert failed.value.order is not None, "the order is kept for the next attempt"
    dns.published = True
    sign(hidden.order)
    assert client.answered == ["https://ca.test/chall/1"]


@pytest.fixture
def silent_udp() -> Iterator[str]:
    """A nameserver that never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_a_silent_nameserver_fails_within_the_query_timeout(
    silent_udp: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dns01_rfc2136, "_TIMEOUT", 0.3)
    spec = parse_acme_spec(
        {
            "server": "https://ca.test/dir",
            "privateKeySecretRef": {"name": "a"},
            "solvers": [{"dns01": {"rfc2136": {"nameserver": silent_udp}}}],
        }
    )
    solver = spec.solvers[0].dns01
    assert solver is not None
    assert isinstance(solver.provider, RFC2136Solver)
    provider = RFC2136Provider(solver.provider, None)
    started = time.monotonic()
    with pytest.raises(DNSProviderError) as failed:
        provider.present("_acme-challenge.web.example.com.", "value")
    assert time.monotonic() - started < 5, "one query timeout, not ten"
    assert silent_udp in str(failed.value)


def test_a_certificate_request_is_signed_by_a_step_in_its_issuers_lane(
    ca: FakeCA, guarded: list[str]
) -> None:
    world = World()
    issuer = _acme_issuer(world, "acme", "https://ca.test/dir")
    _ready_issuer(world, issuer)
    requests = CertificateRequestReconciler(
        world.store, world.kube, world.resolver, True, world.clock, world.lanes
    )
    template = CertificateTemplate(common_name=None, dns_names=("shop.example.com",))
    csr = build_csr(template, generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256)))
    pem = csr.public_bytes(serialization.Encoding.PEM)
    key = (NS, "shop")
    body = {
        "metadata": {"name": "shop", "namespace": NS, "uid": "uid-shop", "generation": 1},
        "spec": {"request": base64.b64encode(pem).decode(), "issuerRef": {"name": "acme"}},
    }
    world.store.remember(CERTIFICATE_REQUESTS, key, body)

    def ready() -> dict[str, Any]:
        conditions = world.kube.statuses[(CERTIFICATE_REQUESTS, key)]["conditions"]
        return dict(next(c for c in conditions if c["type"] == "Ready"))

    merge_written(world.store, requests.reconcile(key).written)
    assert (ready()["reason"], ready()["message"]) == ("Pending", "waiting for the CA at https://ca.test/dir")
    assert world.step_ended() == WorkItem(CERTIFICATE_REQUESTS, key)
    merge_written(world.store, requests.reconcile(key).written)
    assert ready()["reason"] == "Issued"
    assert "certificate" in world.kube.statuses[(CERTIFICATE_REQUESTS, key)]
    assert guarded == []


class _ReplacedClient(_DNSClient):
    """A CA that refuses every order naming a certificate in `replaces`, for `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason
        self.orders: list[str | None] = []

    def new_order(
        self, identifiers: Sequence[str], profile: str | None, replaces: str | None = None
    ) -> OrderAnswer:
        self.orders.append(replaces)
        if replaces is not None:
            raise AcmeError(self.reason, f"the CA answered {self.reason}")
        return super().new_order(identifiers, profile)


@pytest.mark.parametrize("reason", ["AlreadyReplaced", "Unauthorized", "Malformed", "ServerInternal"])
def test_an_order_refused_for_its_replaces_is_made_again_once_without_it(
    reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = _ReplacedClient(reason)
    spec = parse_acme_spec(
        {
            "server": client.server,
            "privateKeySecretRef": {"name": "a"},
            "solvers": [{"dns01": {"rfc2136": {"nameserver": "192.0.2.53"}}}],
        }
    )
    signer = AcmeSigner(
        cast(AcmeClient, client), spec, AcmeContext(HTTP01Responder(), 6, 30), lambda s: FakeDNS()
    )
    key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    template = CertificateTemplate(common_name=None, dns_names=("web.example.com",))
    now = datetime.datetime.now(datetime.UTC)
    signed = signer.sign(SigningRequest(template, lambda: key, now, (NS, "web"), replaces="aki.serial"))
    assert isinstance(signed, Pending)
    assert client.orders == ["aki.serial", None]
    assert "refused an order replacing certificate aki.serial" in caplog.text
    assert "ordering again without replaces" in caplog.text


def test_an_order_refused_for_another_reason_is_not_made_again() -> None:
    client = _ReplacedClient("RateLimited")
    spec = parse_acme_spec(
        {
            "server": client.server,
            "privateKeySecretRef": {"name": "a"},
            "solvers": [{"dns01": {"rfc2136": {"nameserver": "192.0.2.53"}}}],
        }
    )
    signer = AcmeSigner(
        cast(AcmeClient, client), spec, AcmeContext(HTTP01Responder(), 6, 30), lambda s: FakeDNS()
    )
    key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    template = CertificateTemplate(common_name=None, dns_names=("web.example.com",))
    now = datetime.datetime.now(datetime.UTC)
    with pytest.raises(SigningFailedError):
        signer.sign(SigningRequest(template, lambda: key, now, (NS, "web"), replaces="aki.serial"))
    assert client.orders == ["aki.serial"]


class _RenewalInfoCA:
    """ARI answers for any certificate, counting requests and the most served at once."""

    def __init__(self, offers: bool = True) -> None:
        self.offers = offers
        self.asked: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def offers_renewal_info(self) -> bool | None:
        return self.offers

    def renewal_info(self, cert_id: str) -> RenewalInfoAnswer | None:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.asked.append(cert_id)
        time.sleep(0.01)
        with self._lock:
            self.running -= 1
        if not self.offers:
            return None
        window = {"start": "2027-01-01T00:00:00Z", "end": "2027-01-02T00:00:00Z"}
        return RenewalInfoAnswer({"suggestedWindow": window}, datetime.timedelta(seconds=30))


def test_ari_requests_of_many_certificates_run_one_at_a_time_and_once_each() -> None:
    done: list[object] = []
    lanes = Lanes(
        AccountBook(lambda *_: None, Clock(NOW), 30), IssuerHealth(Clock(NOW)), done.append, lambda _: None
    )
    source = _RenewalInfoCA()
    issuer = (ISSUERS, (NS, "acme"))
    now = datetime.datetime.now(datetime.UTC)
    for index in range(40):
        previous = first_fetch(f"aki.{index}", now, None)
        lanes.start(RenewalInfoStep(issuer, "https://ca.test/dir", ("cert", index), source, previous, None))
        lanes.start(RenewalInfoStep(issuer, "https://ca.test/dir", ("cert", index), source, previous, None))
    eventually_true(lambda: len(done) == 40)
    assert source.most_at_once == 1
    assert sorted(source.asked) == sorted(f"aki.{index}" for index in range(40)), "one request each"
    outcome = lanes.renewal_info(("cert", 7))
    assert outcome is not None
    assert outcome.window is not None
    assert outcome.retrieved is not None
    assert outcome.next_update - outcome.retrieved == MINUTE, "the CA's Retry-After of 30 s, clamped"
    lanes.settle_renewal_info(("cert", 7))
    assert lanes.renewal_info(("cert", 7)) is None
    lanes.shutdown()


def eventually_true(probe: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class _BrokenRenewalInfoCA(_RenewalInfoCA):
    """Fails with a bug (not an AcmeError) on the first request, answers afterwards."""

    def renewal_info(self, cert_id: str) -> RenewalInfoAnswer | None:
        if not self.asked:
            self.asked.append(cert_id)
            raise RuntimeError("a bug")
        return super().renewal_info(cert_id)


def test_a_bug_in_an_ari_request_fails_that_request_not_the_lane() -> None:
    done: list[object] = []
    lanes = Lanes(
        AccountBook(lambda *_: None, Clock(NOW), 30), IssuerHealth(Clock(NOW)), done.append, lambda _: None
    )
    source = _BrokenRenewalInfoCA()
    issuer = (ISSUERS, (NS, "acme"))
    now = datetime.datetime.now(datetime.UTC)
    for index in range(2):
        previous = first_fetch(f"aki.{index}", now, None)
        lanes.start(RenewalInfoStep(issuer, "https://ca.test/dir", ("cert", index), source, previous, None))
    eventually_true(lambda: len(done) == 2)
    broken, fine = lanes.renewal_info(("cert", 0)), lanes.renewal_info(("cert", 1))
    assert broken is not None
    assert (broken.failures, broken.error) == (1, "RuntimeError: a bug")
    assert fine is not None
    assert fine.window is not None
    lanes.shutdown()
