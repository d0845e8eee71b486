"""Reconcile paths against the in-memory port: every outcome, every failure, issuer readiness, and
the data-safety cases (Secrets certsmith did not make, a CA about to end, refusals), in virtual time."""

from __future__ import annotations

import datetime
import itertools
import queue
from collections.abc import Hashable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from prometheus_client import CollectorRegistry

from certsmith.api import CERTIFICATES, CLUSTER_ISSUERS, ISSUERS
from certsmith.api.status import parse_timestamp
from certsmith.engine.lanes import Lanes
from certsmith.issuers import (
    Pending,
    RenewalInfoAnswer,
    RenewalInfoSource,
    SigningFailedError,
    SigningRequest,
)
from certsmith.issuers.acme.http01 import HTTP01Responder
from certsmith.issuers.acme.signer import AcmeContext
from certsmith.issuers.resolver import IssuerResolver, Resolved
from certsmith.kube.port import ApiAccessError
from certsmith.metrics.issuance import IssuanceMetrics
from certsmith.pki.encodings import certificates_pem
from certsmith.pki.inspection import describe, load_certificates
from certsmith.pki.keys import (
    KeyAlgorithm,
    KeyEncoding,
    KeySpec,
    PrivateKey,
    encode_private_key,
    generate_private_key,
)
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import IssuedCertificate, self_sign
from certsmith.reconcile.certificate import CertificateReconciler
from certsmith.reconcile.issuer import IssuerReconciler
from certsmith.reconcile.plan import Outcome, merge_written
from certsmith.reconcile.store import Store, WorkItem
from certsmith.renewal import BackoffSettings
from certsmith.renewal_info import cert_id
from certsmith.settings import OperatorSettings
from certsmith.tls_secret import CERTIFICATE_NAME, MANAGED_LABEL, SecretContents
from tests.unit.fakekube import Clock, FakeKube

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
NS = "apps"
MINUTE = datetime.timedelta(minutes=1)
ECDSA = KeySpec(KeyAlgorithm.ECDSA, 256)


class World:
    """A store, the fake port and both reconcilers, with the watch simulated after each reconcile."""

    def __init__(self, **settings: Any) -> None:
        self.clock = Clock(NOW)
        self.kube = FakeKube()
        self.store = Store()
        self.settings = OperatorSettings(backoff=BackoffSettings(MINUTE, 16 * MINUTE), **settings)
        acme = AcmeContext(
            HTTP01Responder(),
            self.settings.acme_orders_per_hour,
            self.settings.acme_timeout,
            clock=self.clock,
        )
        self.ended: queue.SimpleQueue[Hashable] = queue.SimpleQueue()
        self.lanes = Lanes(acme.accounts, acme.health, self.ended.put, lambda issuer: None, self.clock)
        self.resolver = IssuerResolver(
            lambda plural, key: self.store.objects(plural).get(key),
            self.store.referenced,
            self.kube,
            "certsmith",
            acme,
        )
        self.registry = CollectorRegistry()
        self.certificates = CertificateReconciler(
            self.store,
            self.kube,
            self.resolver,
            self.settings,
            self.clock,
            IssuanceMetrics(self.registry),
            self.lanes,
        )
        self.issuers = IssuerReconciler(self.store, self.kube, self.resolver, self.clock, self.lanes)
        self.referenced: set[tuple[str, str]] = set()

    def certificate(
        self, name: str, generation: int = 1, annotations: dict[str, str] | None = None, **spec: Any
    ) -> None:
        body = {
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": f"uid-{name}",
                "generation": generation,
                "annotations": annotations or {},
            },
            "spec": {
                "secretName": name,
                "dnsNames": [f"{name}.example.com"],
                "privateKey": {"algorithm": "ECDSA"},
                "issuerRef": {"name": "selfsigned"},
                **spec,
            },
            "status": (self.store.certificates.get((NS, name)) or {}).get("status", {}),
        }
        self.store.remember(CERTIFICATES, (NS, name), body)
        self.kube.certificates.add((NS, name))
        password = ((spec.get("keystores") or {}).get("pkcs12") or {}).get("passwordSecretRef")
        if password:
            self.referenced.add((NS, password["name"]))
        self._watch()

    def delete_certificate(self, name: str) -> None:
        del self.store.certificates[(NS, name)]
        self.kube.certificates.discard((NS, name))

    def issuer(self, name: str, spec: dict[str, Any], cluster: bool = False) -> WorkItem:
        plural, key = (CLUSTER_ISSUERS, ("", name)) if cluster else (ISSUERS, (NS, name))
        self.store.remember(
            plural,
            key,
            {
                "metadata": {"name": name, "generation": 1, **({} if cluster else {"namespace": NS})},
                "spec": spec,
            },
        )
        if "ca" in spec:
            self.referenced.add(("certsmith" if cluster else NS, spec["ca"]["secretName"]))
        self._watch()
        return WorkItem(plural, key)

    def reconcile(self, name: str) -> Outcome:
        outcome = self.certificates.reconcile((NS, name))
        merge_written(self.store, outcome.written)
        self._watch()
        return outcome

    def step_ended(self) -> Hashable:
        """The owner of the next I/O step to end (steps run in their issuer's lane)."""
        return self.ended.get(timeout=10)

    def reconcile_issuer(self, item: WorkItem) -> Outcome:
        outcome = self.issuers.reconcile(item)
        merge_written(self.store, outcome.written)
        return outcome

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.store.certificates[(NS, name)].get("status") or {})

    def ready(self, name: str) -> dict[str, Any]:
        return next(c for c in self.status(name)["conditions"] if c["type"] == "Ready")

    def issuer_ready(self, item: WorkItem) -> dict[str, Any]:
        status = self.store.objects(item.plural)[item.key]["status"]
        return dict(status["conditions"][0])

    def secret(self, name: str, namespace: str = NS) -> SecretContents:
        return self.kube.secrets[(namespace, name)].contents

    def reasons(self) -> list[str]:
        return [event.reason for event in self.kube.events]

    def _watch(self) -> None:
        """What the watches would deliver: managed Secrets, and the referenced ones by name."""
        for key, observed in self.kube.secrets.items():
            if observed.contents.labels.get(MANAGED_LABEL) == "true":
                self.store.secrets[key] = observed
        for key in list(self.store.secrets):
            if key not in self.kube.secrets:
                del self.store.secrets[key]
        for key in self.referenced:
            self.store.referenced[key] = self.kube.secrets.get(key)


def _key_pair(
    template: CertificateTemplate, key: PrivateKey | None = None, at: datetime.datetime = NOW
) -> SecretContents:
    key = key or generate_private_key(ECDSA)
    issued = self_sign(template, key, at)
    return SecretContents(
        data={
            "tls.crt": certificates_pem([issued.certificate]),
            "tls.key": encode_private_key(key, KeyEncoding.PKCS8),
        }
    )


def _ca_pair(duration: datetime.timedelta = datetime.timedelta(days=365), **template: Any) -> SecretContents:
    return _key_pair(CertificateTemplate(common_name="test CA", is_ca=True, duration=duration, **template))


def _ca_world(ca: SecretContents | None = None, **settings: Any) -> tuple[World, WorkItem]:
    world = World(**settings)
    world.kube.put_secret(NS, "ca-pair", ca or _ca_pair())
    world.issuer("selfsigned", {"selfSigned": {}})
    issuer = world.issuer("ca", {"ca": {"secretName": "ca-pair"}})
    world.reconcile_issuer(issuer)
    return world, issuer


def test_issuing_costs_three_writes_and_nothing_more_when_done() -> None:
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    world.certificate("web")
    world.reconcile("web")
    assert world.kube.requests == [
        f"POST secrets/{NS}/web",
        f"PATCH certificates/{NS}/web/status",
        "POST events/Issued",
    ]
    assert world.ready("web")["status"] == "True"
    world.kube.requests.clear()
    outcome = world.reconcile("web")
    assert world.kube.requests == []
    assert outcome.recheck_at == datetime.datetime.fromisoformat(
        world.status("web")["renewalTime"].replace("Z", "+00:00")
    )


def test_while_its_shard_is_taken_over_a_secret_missing_from_the_store_is_read_not_reissued() -> None:
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    world.certificate("web")
    world.reconcile("web")
    del world.store.secrets[(NS, "web")]  # its shard's Secrets are not listed yet
    world.store.secrets_listed = lambda key: False
    world.kube.requests.clear()
    world.certificates.reconcile((NS, "web"))
    assert world.kube.requests == [f"GET secrets/{NS}/web"]
    world.certificate("new")
    world.kube.requests.clear()
    world.reconcile("new")
    assert world.kube.requests[:2] == [f"GET secrets/{NS}/new", f"POST secrets/{NS}/new"]


def test_self_signed_with_only_dns_names_is_issued() -> None:
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    world.certificate("names-only")
    world.reconcile("names-only")
    assert world.ready("names-only")["status"] == "True"
    certificate = load_certificates(world.secret("names-only").data["tls.crt"])[0]
    assert certificate.issuer.rfc4514_string() == "CN=names-only.example.com", "RFC 5280: issuer not empty"
    assert certificate.subject == certificate.issuer, "self-issued, so verifiers find it as its own issuer"
    assert describe(certificate).dns_names == {"names-only.example.com"}
    world.kube.requests.clear()
    world.reconcile("names-only")
    assert world.kube.requests == [], "the added common name is what the spec implies: no re-issue"


def _rsa_1024_ca() -> SecretContents:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 -- a weak CA on purpose
    return _key_pair(
        CertificateTemplate(common_name="weak CA", is_ca=True, duration=datetime.timedelta(days=30)), key
    )


def _mismatched_ca() -> SecretContents:
    pair = _ca_pair()
    other = encode_private_key(generate_private_key(ECDSA), KeyEncoding.PKCS8)
    return SecretContents(data={**pair.data, "tls.key": other})


@pytest.mark.parametrize(
    ("secret", "ready", "reason", "words"),
    [
        (None, "False", "SecretNotFound", "does not exist"),
        (_key_pair(CertificateTemplate(common_name="leaf")), "False", "NotACA", "not a CA certificate"),
        (
            _key_pair(
                CertificateTemplate(common_name="soon", is_ca=True), at=NOW + datetime.timedelta(days=2)
            ),
            "False",
            "NotYetValid",
            "not valid before",
        ),
        (
            _key_pair(
                CertificateTemplate(common_name="old", is_ca=True, duration=datetime.timedelta(hours=1)),
                at=NOW - datetime.timedelta(days=1),
            ),
            "False",
            "Expired",
            "expired at",
        ),
        (_mismatched_ca(), "False", "KeyMismatch", "does not belong"),
        (SecretContents(data={"tls.crt": b"garbage"}), "False", "InvalidKeyPair", "has no tls.key"),
        (_rsa_1024_ca(), "True", "KeyPairVerified", "RSA 1024 bits"),
    ],
)
def test_ca_issuer_readiness_and_what_its_certificates_say(
    secret: SecretContents | None, ready: str, reason: str, words: str
) -> None:
    world = World()
    if secret is not None:
        world.kube.put_secret(NS, "ca-pair", secret)
    issuer = world.issuer("ca", {"ca": {"secretName": "ca-pair"}})
    world.reconcile_issuer(issuer)
    condition = world.issuer_ready(issuer)
    assert (condition["status"], condition["reason"]) == (ready, reason)
    assert words in condition["message"]
    assert world.kube.events, "a problem with an issuer is posted as a Warning Event"
    world.certificate("web", issuerRef={"name": "ca"})
    world.reconcile("web")
    certificate_ready = world.ready("web")
    if ready == "True":
        assert certificate_ready["status"] == "True"
    else:
        assert (certificate_ready["status"], certificate_ready["reason"]) == ("False", "IssuerNotReady")
        assert words in certificate_ready["message"]


def test_a_cluster_issuer_without_its_secret_names_the_cluster_resource_namespace() -> None:
    world = World()
    issuer = world.issuer("root", {"ca": {"secretName": "root-ca"}}, cluster=True)
    world.reconcile_issuer(issuer)
    message = world.issuer_ready(issuer)["message"]
    assert "certsmith/root-ca does not exist" in message
    assert "--cluster-resource-namespace" in message


def test_an_issuer_follows_its_ca_secret_and_releases_its_certificates() -> None:
    world = World()
    issuer = world.issuer("ca", {"ca": {"secretName": "ca-pair"}})
    world.reconcile_issuer(issuer)
    world.certificate("web", issuerRef={"name": "ca"})
    world.reconcile("web")
    assert world.status("web")["failedIssuanceAttempts"] == 1
    assert world.reconcile("web").written.statuses == ()  # backing off
    world.clock.advance(datetime.timedelta(seconds=5))
    world.kube.put_secret(NS, "ca-pair", _ca_pair())
    world._watch()
    outcome = world.reconcile_issuer(issuer)
    assert world.issuer_ready(issuer)["status"] == "True"
    assert WorkItem(CERTIFICATES, (NS, "web")) in outcome.follow_up
    world.reconcile("web")  # released at once, not after its back-off
    assert world.ready("web")["status"] == "True"
    del world.kube.secrets[(NS, "ca-pair")]
    world._watch()
    world.reconcile_issuer(issuer)
    assert world.issuer_ready(issuer)["reason"] == "SecretNotFound"


def test_a_certificate_that_saw_its_issuer_not_ready_after_it_turned_ready_is_released() -> None:
    """The Certificate's view of the CA Secret lags the issuer's (its failure comes after the issuer's
    ready time); once it sees the Secret, it issues at once, not after its back-off."""
    world = World()
    world.kube.put_secret(NS, "ca-pair", _ca_pair())
    issuer = world.issuer("ca", {"ca": {"secretName": "ca-pair"}})
    world.reconcile_issuer(issuer)
    assert world.issuer_ready(issuer)["status"] == "True"
    pair = world.kube.secrets.pop((NS, "ca-pair"))
    world._watch()
    world.resolver.invalidate((NS, "ca-pair"))
    world.clock.advance(datetime.timedelta(seconds=1))
    world.certificate("web", issuerRef={"name": "ca"})
    world.reconcile("web")
    assert world.ready("web")["reason"] == "IssuerNotReady"
    world.kube.secrets[(NS, "ca-pair")] = pair
    world._watch()
    world.resolver.invalidate((NS, "ca-pair"))
    world.reconcile("web")
    assert world.ready("web")["status"] == "True", world.ready("web")


@pytest.mark.parametrize(
    "foreign",
    [
        _ca_pair(),  # a CA key pair made with kubectl create secret tls
        SecretContents(data={"a": b"1"}, type="Opaque"),  # kubectl create secret generic
    ],
)
def test_a_secret_certsmith_did_not_make_is_never_written(foreign: SecretContents) -> None:
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    before = world.kube.put_secret(NS, "goodca", foreign)
    world.certificate("typo", secretName="goodca")
    world.reconcile("typo")
    assert world.kube.secrets[(NS, "goodca")] == before
    ready = world.ready("typo")
    assert (ready["status"], ready["reason"]) == ("False", "SecretNotOwned")
    assert "kubectl annotate secret goodca certsmith.dev/certificate-name=typo" in ready["message"]
    assert world.status("typo")["failedIssuanceAttempts"] == 1
    world.kube.requests.clear()
    world.reconcile("typo")
    assert world.kube.requests == [], "backing off: no request until the next attempt"
    world.clock.advance(MINUTE)
    world.reconcile("typo")
    assert world.kube.secrets[(NS, "goodca")] == before
    assert world.status("typo")["failedIssuanceAttempts"] == 2


def test_a_handed_over_secret_is_reissued_and_keeps_other_data() -> None:
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    world.kube.put_secret(
        NS,
        "imported",
        SecretContents(
            {MANAGED_LABEL: "true"}, {CERTIFICATE_NAME: "web"}, {"app.conf": b"x=1", "tls.crt": b"old"}
        ),
    )
    world.certificate("web", secretName="imported")
    world.reconcile("web")
    assert world.ready("web")["status"] == "True"
    assert world.secret("imported").data["app.conf"] == b"x=1"
    world.certificate("web", generation=2, dnsNames=["changed.example.com"])
    world.reconcile("web")
    assert world.secret("imported").data["app.conf"] == b"x=1", "user data keys survive re-issuance"


def test_a_secret_in_use_is_taken_over_once_its_certificate_is_gone() -> None:
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    world.certificate("twin1", secretName="shared")
    world.reconcile("twin1")
    world.certificate("twin2", secretName="shared")
    world.reconcile("twin2")
    assert world.ready("twin2")["reason"] == "SecretInUse"
    world.delete_certificate("twin1")
    world.clock.advance(MINUTE)
    world.reconcile("twin2")
    assert world.ready("twin2")["status"] == "True"
    assert world.secret("shared").annotations[CERTIFICATE_NAME] == "twin2"


@pytest.mark.parametrize(("status", "reason"), [(403, "SecretAccessDenied"), (429, "SecretWriteFailed")])
def test_a_refused_secret_write_is_a_failed_attempt_in_the_status(status: int, reason: str) -> None:
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    world.kube.refuse_secret_writes = (status, "Refused")
    world.certificate("web")
    world.reconcile("web")
    ready = world.ready("web")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert f"answered {status}" in ready["message"]
    assert world.status("web")["failedIssuanceAttempts"] == 1
    assert world.kube.events[-1].warning


def test_a_refused_status_patch_is_not_mistaken_for_a_refused_secret_write() -> None:
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    world.kube.refuse_status_patches = (429, "Too Many Requests")
    world.certificate("web")
    with pytest.raises(ApiAccessError, match="patching the status"):
        world.reconcile("web")  # the runtime backs off; the Secret it wrote is kept
    assert world.secret("web").data["tls.crt"]
    world.kube.refuse_status_patches = None
    world._watch()
    world.reconcile("web")
    assert world.ready("web")["status"] == "True"
    assert world.status("web")["revision"] == 1, "found in place, not issued again"


def test_a_ca_about_to_end_gives_one_shortened_certificate_not_a_storm() -> None:
    world, _issuer = _ca_world(_ca_pair(duration=datetime.timedelta(minutes=4)))
    world.certificate("web", issuerRef={"name": "ca"})

    def run(seconds: int) -> int:
        for _ in range(seconds):  # reconciling every second, far more often than the scheduler would
            world.reconcile("web")
            world.clock.advance(datetime.timedelta(seconds=1))
        return world.reasons().count("Issued") + world.reasons().count("Renewed")

    assert run(230) == 1
    assert "Shortened" in world.reasons()
    assert "instead of 2160h" in world.ready("web")["message"]
    assert "renew that CA" in world.ready("web")["message"]
    assert "renewalTime" not in world.status("web")
    assert run(120) == 1, "after the CA's end nothing can be issued: failures back off"
    assert world.ready("web")["reason"] == "IssuerNotReady"


def test_the_issuance_bound_stops_any_loop() -> None:
    world = World(issuance_limit=3)
    world.issuer("selfsigned", {"selfSigned": {}})
    for attempt in range(6):
        world.certificate("web", annotations={"certsmith.dev/renew-requested-at": f"t{attempt}"})
        world.reconcile("web")
        world.clock.advance(datetime.timedelta(seconds=5))
    assert world.reasons().count("Issued") + world.reasons().count("Renewed") == 3
    issuing = next(c for c in world.status("web")["conditions"] if c["type"] == "Issuing")
    assert issuing["reason"] == "IssuanceLimitReached"
    assert world.ready("web")["status"] == "True", "the certificate in place is still valid"
    world.clock.advance(datetime.timedelta(hours=1))
    world.reconcile("web")
    assert world.reasons().count("Renewed") == 3


def test_back_off_is_kept_in_the_status_and_doubles() -> None:
    world = World()
    world.certificate("web", issuerRef={"name": "missing"})
    attempts = []
    for _ in range(40):
        if world.reconcile("web").written.statuses:
            attempts.append(world.clock.now)
        world.clock.advance(datetime.timedelta(seconds=30))
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps[:4] == [60, 120, 240, 480]
    assert world.ready("web")["reason"] == "IssuerNotFound"


def test_a_changed_keystore_password_rewrites_the_keystores_without_reading_per_issuance() -> None:
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    world.kube.put_secret(NS, "pw", SecretContents(data={"password": b"one"}, type="Opaque"))
    world.certificate(
        "web", keystores={"pkcs12": {"create": True, "passwordSecretRef": {"name": "pw", "key": "password"}}}
    )
    world.reconcile("web")
    assert not [request for request in world.kube.requests if request.startswith("GET")]
    first = world.secret("web").data["keystore.p12"]
    world.kube.put_secret(NS, "pw", SecretContents(data={"password": b"two"}, type="Opaque"))
    world._watch()
    world.reconcile("web")
    assert world.reasons()[-1] == "Repaired"
    assert world.secret("web").data["keystore.p12"] != first
    pkcs12.load_key_and_certificates(world.secret("web").data["keystore.p12"], b"two")
    rewritten = world.secret("web")
    world.kube.put_secret(
        NS, "pw", SecretContents(data={"password": b"two"}, labels={"x": "y"}, type="Opaque")
    )
    world._watch()
    world.reconcile("web")
    assert world.secret("web") == rewritten, "the same password in a rewritten Secret rewrites nothing"


class _ScriptedSigner:
    """An ACME-like signer whose answers are given in advance: what the reconciler does with pending
    orders, failures that carry an order and a Retry-After, and the final certificate."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[SigningRequest] = []

    def sign(self, request: SigningRequest) -> IssuedCertificate | Pending:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if answer == "issue":
            return self_sign(request.template, request.key(), request.now)
        assert isinstance(answer, Pending)
        return answer


def _acme_world(signer: _ScriptedSigner, renewal_info: RenewalInfoSource | None = None) -> World:
    world = World()
    world.issuer("acme", {"acme": {"server": "https://ca.test/dir", "privateKeySecretRef": {"name": "a"}}})
    world.resolver.resolve = lambda reference, namespace, now: Resolved(  # type: ignore[method-assign]
        signer,
        None,
        account_uri="https://ca.test/account/1",
        lane=(ISSUERS, (NS, "acme")),
        address="ca.test",
        renewal_info=renewal_info,
    )
    world.certificate("web", issuerRef={"name": "acme"})
    return world


def test_an_order_in_progress_is_kept_in_the_status_and_cleared_once_issued() -> None:
    order = {"url": "https://ca.test/order/1", "state": "pending"}
    signer = _ScriptedSigner(Pending(order, NOW + MINUTE, "order is pending", new_order=True), "issue")
    world = _acme_world(signer)
    started = world.reconcile("web")
    assert started.recheck_at is None, "the step's end queues the Certificate, no timer"
    assert not started.written.statuses, "the CA's answer is not waited for"
    assert world.step_ended() == WorkItem(CERTIFICATES, (NS, "web"))
    outcome = world.reconcile("web")
    assert outcome.recheck_at == NOW + MINUTE
    assert world.status("web")["acme"] == {"order": order}
    assert world.ready("web")["reason"] == "OrderPending"
    assert [(event.reason, event.warning) for event in world.kube.events] == [("OrderCreated", False)]
    world.certificate("web", issuerRef={"name": "acme"})
    world.reconcile("web")
    world.step_ended()
    world.reconcile("web")
    assert signer.requests[1].order == order, "the next reconcile resumes the order in the status"
    assert "acme" not in world.status("web")
    assert world.ready("web")["status"] == "True"


def test_a_cas_retry_after_holds_every_attempt_until_then() -> None:
    later = NOW + 10 * MINUTE
    refusal = SigningFailedError(
        "rateLimited", "too many new orders", {"url": "u", "state": "invalid"}, later
    )
    signer = _ScriptedSigner(refusal)
    world = _acme_world(signer)
    world.reconcile("web")
    world.step_ended()
    world.reconcile("web")
    status = world.status("web")
    assert status["acme"] == {"order": {"url": "u", "state": "invalid"}, "retryAfter": "2026-11-28T12:10:00Z"}
    world.clock.advance(5 * MINUTE)
    world.certificate("web", issuerRef={"name": "acme"})
    outcome = world.reconcile("web")
    assert len(signer.requests) == 1, "no attempt before the CA's Retry-After, back-off or not"
    assert outcome.recheck_at == later


class _Windows:
    """A CA's ARI answers: the window it suggests now (set by the test), with Retry-After 6 hours."""

    def __init__(self) -> None:
        self.window: tuple[datetime.datetime, datetime.datetime] = (NOW, NOW)
        self.asked: list[str] = []

    def offers_renewal_info(self) -> bool | None:
        return True

    def renewal_info(self, cert_id: str) -> RenewalInfoAnswer | None:
        self.asked.append(cert_id)
        start, end = (moment.isoformat() for moment in self.window)
        return RenewalInfoAnswer({"suggestedWindow": {"start": start, "end": end}}, 6 * 60 * MINUTE)


def _issued() -> tuple[World, _ScriptedSigner, _Windows, datetime.datetime]:
    """An ACME certificate issued at NOW, and when its first ARI request is due: spread over the
    second hour after its notBefore (which is backdated), so after the issuance."""
    windows = _Windows()
    signer = _ScriptedSigner("issue", "issue")
    world = _acme_world(signer, windows)
    world.reconcile("web")
    world.step_ended()
    world.reconcile("web")
    placeholder = world.status("web")["renewalInformation"]
    assert "suggestedWindow" not in placeholder
    due = parse_timestamp(placeholder["nextUpdate"])
    not_before = parse_timestamp(world.status("web")["notBefore"])
    assert due is not None
    assert not_before is not None
    assert not_before + 60 * MINUTE <= due < not_before + 120 * MINUTE, "spread over the second hour"
    assert due > NOW
    return world, signer, windows, due


def test_the_cas_window_is_asked_for_when_due_written_once_and_renews_with_replaces() -> None:
    world, signer, windows, due = _issued()
    assert world.reconcile("web").recheck_at == due
    assert windows.asked == [], "nothing is asked before it is due"

    windows.window = (NOW + 50 * 24 * 60 * MINUTE, NOW + 52 * 24 * 60 * MINUTE)
    world.clock.advance(due - NOW)
    world.reconcile("web")
    assert world.step_ended() == WorkItem(CERTIFICATES, (NS, "web"))
    patches = _patches(world)
    world.reconcile("web")
    assert _patches(world) == patches + 1, "one status write for the answer"
    shown = world.status("web")
    assert shown["renewalInformation"]["suggestedWindow"] == {
        "start": "2027-01-17T12:00:00Z",
        "end": "2027-01-19T12:00:00Z",
    }
    renewal = parse_timestamp(shown["renewalTime"])
    assert renewal is not None
    assert windows.window[0] <= renewal < windows.window[1]
    outcome = world.reconcile("web")
    assert len(windows.asked) == 1
    assert _patches(world) == patches + 1
    assert outcome.recheck_at == world.clock() + 6 * 60 * MINUTE, "next at the CA's Retry-After"

    old = cert_id(load_certificates(world.secret("web").data["tls.crt"])[0])
    windows.window = (NOW - 60 * MINUTE, NOW - 59 * MINUTE)
    world.clock.advance(6 * 60 * MINUTE)
    world.reconcile("web")
    world.step_ended()
    world.reconcile("web")
    assert world.step_ended() == WorkItem(CERTIFICATES, (NS, "web")), "a window in the past: renew now"
    assert signer.requests[-1].replaces == old
    world.reconcile("web")
    assert world.reasons()[-1] == "Renewed"
    assert "reason CARequestedRenewal: CA asked for renewal (ARI window" in world.kube.events[-1].message
    new = cert_id(load_certificates(world.secret("web").data["tls.crt"])[0])
    assert world.status("web")["renewalInformation"]["certID"] == new != old


def _patches(world: World) -> int:
    return sum(1 for request in world.kube.requests if request.startswith("PATCH"))
