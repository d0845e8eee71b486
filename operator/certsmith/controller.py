"""Reconciling Certificates and issuers: the latest observed objects -> policy -> issuer -> Kubernetes.

Everything here is synchronous and runs in worker threads; the event loop side (`runtime`) owns the
queue and the scheduler, and feeds the store from watch events. A reconcile returns an `Outcome`:
when to look again, and what else to look at.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from certsmith.api import API_VERSION, SpecError
from certsmith.api.certificate import (
    CertificateSpec,
    IssuerKind,
    IssuerRef,
    RotationPolicy,
    parse_certificate_spec,
)
from certsmith.api.durations import format_duration
from certsmith.api.issuer import (
    ACMEIssuerSpec,
    CAIssuerSpec,
    IssuerSpec,
    SelfSignedIssuerSpec,
    issuer_type,
    parse_issuer_spec,
)
from certsmith.api.status import condition, parse_timestamp, status_differs, timestamp
from certsmith.budget import RewriteBudget
from certsmith.issuers import IssuerNotReadyError, Signer
from certsmith.issuers.ca import CASigner, load_authority
from certsmith.issuers.selfsigned import SelfSignedSigner
from certsmith.kube.events import post_event
from certsmith.kube.listing import list_custom_objects, list_secrets
from certsmith.kube.secrets import (
    ObservedSecret,
    SecretConflictError,
    read_secret,
    read_secret_value,
    write_secret,
)
from certsmith.kube.status import patch_status
from certsmith.pki import PKIError
from certsmith.pki.keys import PrivateKey, encode_private_key, generate_private_key, load_private_key, spec_of
from certsmith.pki.signing import IssuedCertificate, SigningAuthority
from certsmith.policy import Action, Decision, Reason, decide, up_to_date_message
from certsmith.renewal import renewal_time
from certsmith.settings import OperatorSettings
from certsmith.tls_secret import (
    MANAGED_LABEL,
    RENEW_REQUEST,
    TLS_KEY,
    SecretContents,
    derived_data,
    desired_metadata,
    keystores,
)

logger = logging.getLogger("certsmith")

Key = tuple[str, str]
"""(namespace, name); the namespace is "" for ClusterIssuers."""

CERTIFICATES = "certificates"
ISSUERS = "issuers"
CLUSTER_ISSUERS = "clusterissuers"
_RENEWAL_REASONS = frozenset({Reason.RENEWAL_DUE, Reason.MANUAL_RENEWAL})
_CHANGED_BY_OTHERS = frozenset(
    {
        Reason.SECRET_MISSING,
        Reason.MISSING_DATA,
        Reason.INVALID_CERTIFICATE,
        Reason.INVALID_KEY,
        Reason.KEY_MISMATCH,
        Reason.ISSUER_CHANGED,
        Reason.DURATION_CHANGED,
        Reason.METADATA_DRIFT,
    }
)
"""Reasons that a change to the Secret, not to the Certificate or the clock, can cause."""


@dataclass(frozen=True)
class WorkItem:
    plural: str
    key: Key

    def __str__(self) -> str:
        namespace, name = self.key
        return f"{self.plural}/{namespace + '/' if namespace else ''}{name}"


@dataclass(frozen=True)
class Outcome:
    recheck_at: datetime.datetime | None = None
    follow_up: tuple[WorkItem, ...] = ()


@dataclass(frozen=True)
class StatusUpdate:
    """What a reconcile learned about a Certificate; rendered into its status by `_set_status`."""

    ready: tuple[bool, str, str]
    """(status, reason, message) of the Ready condition."""
    issuing: tuple[str, str] | None = None
    """(reason, message) of a failing issuance; None removes the Issuing condition."""
    issued: IssuedCertificate | None = None
    renewal: datetime.datetime | None = None
    revision: int | None = None
    failures: int | None = None
    failed_at: datetime.datetime | None = None
    warn: bool = False
    """Post a Warning Event when Ready changes to this."""


@dataclass(frozen=True)
class _Work:
    """One Certificate being reconciled: what was observed of it and of its Secret."""

    key: Key
    body: Mapping[str, Any]
    spec: CertificateSpec
    observed: ObservedSecret | None
    renew_request: str | None


@dataclass
class _CachedAuthority:
    authority: SigningAuthority
    loaded_at: datetime.datetime


@dataclass
class Store:
    """The latest observed objects, fed by watch events (and by our own writes, to stay current)."""

    certificates: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    issuers: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    cluster_issuers: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    secrets: dict[Key, ObservedSecret] = field(default_factory=dict)
    issuer_ready: dict[WorkItem, bool] = field(default_factory=dict)

    def remember(self, plural: str, key: Key, body: Mapping[str, Any]) -> None:
        """Keep `body` without metadata.managedFields, often its largest part, which certsmith never reads."""
        metadata = body.get("metadata") or {}
        if "managedFields" in metadata:
            body = {
                **body,
                "metadata": {name: value for name, value in metadata.items() if name != "managedFields"},
            }
        self.objects(plural)[key] = body

    def objects(self, plural: str) -> dict[Key, Mapping[str, Any]]:
        return {
            CERTIFICATES: self.certificates,
            ISSUERS: self.issuers,
            CLUSTER_ISSUERS: self.cluster_issuers,
        }[plural]


class Controller:
    def __init__(
        self,
        api: client.ApiClient,
        settings: OperatorSettings,
        clock: Callable[[], datetime.datetime],
    ) -> None:
        self.api = api
        self.settings = settings
        self.clock = clock
        self.store = Store()
        self._authorities: dict[tuple[Key, IssuerSpec], _CachedAuthority] = {}
        self._retry_now: set[Key] = set()
        self._rewrites: RewriteBudget[Key] = RewriteBudget(settings.rewrite_limit, settings.rewrite_window)

    def prime(self) -> None:
        """Fill the store with managed Secrets and issuers by one LIST each, before the first
        Certificate is reconciled, so that a restart never takes a Secret that the watch has not
        delivered yet for a missing one. Watch events that arrived first are newer and are kept.

        With namespace patterns (globs) there is no list to make without cluster-wide rights; the
        write conflicts of a not-yet-listed Secret then resolve by a re-read (one extra request).
        """
        namespaces: list[str | None] = list(self.settings.namespaces) or [None]
        if any(set(namespace or "") & set("*?!,") for namespace in namespaces):
            logger.info("namespace patterns given: the store fills from the watch streams alone")
            return
        started = self.clock()
        for namespace in namespaces:
            for key, observed in list_secrets(self.api, namespace, f"{MANAGED_LABEL}=true"):
                self.store.secrets.setdefault(key, observed)
            for body in list_custom_objects(self.api, ISSUERS, namespace):
                key = (body["metadata"]["namespace"], body["metadata"]["name"])
                if key not in self.store.issuers:
                    self.store.remember(ISSUERS, key, body)
        for body in list_custom_objects(self.api, CLUSTER_ISSUERS, None):
            if ("", body["metadata"]["name"]) not in self.store.cluster_issuers:
                self.store.remember(CLUSTER_ISSUERS, ("", body["metadata"]["name"]), body)
        logger.info(
            "listed %d managed Secrets and %d issuers in %.1fs",
            len(self.store.secrets),
            len(self.store.issuers) + len(self.store.cluster_issuers),
            (self.clock() - started).total_seconds(),
        )

    def reconcile(self, item: WorkItem) -> Outcome:
        if item.plural == CERTIFICATES:
            return self.reconcile_certificate(item.key)
        return self.reconcile_issuer(item)

    # ---- issuers -------------------------------------------------------------------------------------

    def reconcile_issuer(self, item: WorkItem) -> Outcome:
        body = self.store.objects(item.plural).get(item.key)
        if body is None:
            self.store.issuer_ready.pop(item, None)
            return Outcome(follow_up=self._certificates_using(item))
        kind = "ClusterIssuer" if item.plural == CLUSTER_ISSUERS else "Issuer"
        now = self.clock()
        type_name: str | None = None
        expires: datetime.datetime | None = None
        try:
            spec = parse_issuer_spec(body.get("spec") or {})
            type_name = issuer_type(spec).value
            signer = self._signer(spec, item.key[0])
            if isinstance(signer, CASigner):
                expires = signer.authority.certificate.not_valid_after_utc
        except SpecError as error:
            ready, reason, message = False, "InvalidSpec", str(error)
        except IssuerNotReadyError as error:
            ready, reason, message = False, error.reason, str(error)
        else:
            ready, reason, message = True, _ready_reason(spec), _ready_message(spec)
        metadata = body["metadata"]
        previous = (body.get("status") or {}).get("conditions") or []
        status = {
            "type": type_name,
            "conditions": [
                condition("Ready", ready, reason, message, metadata.get("generation"), previous, now)
            ],
            "observedGeneration": metadata.get("generation"),
        }
        if status_differs(body.get("status") or {}, status):
            namespace = metadata.get("namespace")
            patch_status(self.api, item.plural, namespace, metadata["name"], status)
            self._remember_status(item.plural, item.key, status)
            if not ready:
                post_event(self.api, body, kind, True, reason, message)
            logger.info("%s %s: Ready=%s reason=%s: %s", kind, item, ready, reason, message)
        was_ready = self.store.issuer_ready.get(item)
        self.store.issuer_ready[item] = ready
        if was_ready is not None and was_ready == ready:
            return Outcome(recheck_at=expires)
        dependents = self._certificates_using(item)
        if ready:
            self._retry_now.update(work.key for work in dependents)
        return Outcome(recheck_at=expires, follow_up=dependents)

    def _certificates_using(self, issuer: WorkItem) -> tuple[WorkItem, ...]:
        kind = IssuerKind.CLUSTER_ISSUER if issuer.plural == CLUSTER_ISSUERS else IssuerKind.ISSUER
        namespace, name = issuer.key
        return tuple(
            WorkItem(CERTIFICATES, key)
            for key, body in list(self.store.certificates.items())
            if _references(body, kind, name) and (kind is IssuerKind.CLUSTER_ISSUER or key[0] == namespace)
        )

    def issuers_using_secret(self, secret: Key) -> tuple[WorkItem, ...]:
        """Issuers whose CA Secret is `secret`; their cached key pairs are dropped."""
        self._authorities = {
            cached: value for cached, value in self._authorities.items() if cached[0] != secret
        }
        namespace, name = secret
        found = []
        for plural, objects in ((ISSUERS, self.store.issuers), (CLUSTER_ISSUERS, self.store.cluster_issuers)):
            for key, body in list(objects.items()):
                ca = (body.get("spec") or {}).get("ca") or {}
                issuer_namespace = key[0] or self.settings.cluster_resource_namespace
                if ca.get("secretName") == name and issuer_namespace == namespace:
                    found.append(WorkItem(plural, key))
        return tuple(found)

    def _signer(self, spec: IssuerSpec, namespace: str) -> Signer:
        if isinstance(spec, SelfSignedIssuerSpec):
            return SelfSignedSigner(spec.urls)
        if isinstance(spec, CAIssuerSpec):
            return CASigner(self._authority(spec, namespace or self.settings.cluster_resource_namespace))
        raise IssuerNotReadyError(
            "Unsupported", f"ACME issuers are not supported by this version of certsmith ({spec.server})"
        )

    def _authority(self, spec: CAIssuerSpec, namespace: str) -> SigningAuthority:
        """The CA key pair: from the watch store for a managed Secret, else read and cached briefly."""
        now = self.clock()
        secret_key = (namespace, spec.secret_name)
        cached = self._authorities.get((secret_key, spec))
        if (
            cached
            and now - cached.loaded_at < self.settings.ca_secret_cache_ttl
            and now < cached.authority.certificate.not_valid_after_utc
        ):
            return cached.authority
        observed = self.store.secrets.get(secret_key) or read_secret(self.api, namespace, spec.secret_name)
        contents = observed.contents if observed else None
        authority = load_authority(f"{namespace}/{spec.secret_name}", contents, spec.urls, now)
        self._authorities[(secret_key, spec)] = _CachedAuthority(authority, now)
        return authority

    def _resolve_signer(self, reference: IssuerRef, namespace: str) -> Signer:
        if reference.kind is IssuerKind.ISSUER:
            body = self.store.issuers.get((namespace, reference.name))
            where = f" in namespace {namespace}"
        else:
            body = self.store.cluster_issuers.get(("", reference.name))
            where = ""
        if body is None:
            raise IssuerNotReadyError("IssuerNotFound", f"{reference} does not exist{where}; create it")
        try:
            spec = parse_issuer_spec(body.get("spec") or {})
        except SpecError as error:
            raise IssuerNotReadyError("IssuerNotReady", f"{reference}: {error}") from None
        try:
            return self._signer(spec, namespace if reference.kind is IssuerKind.ISSUER else "")
        except IssuerNotReadyError as error:
            raise IssuerNotReadyError("IssuerNotReady", f"{reference} is not ready: {error}") from None

    # ---- certificates --------------------------------------------------------------------------------

    def reconcile_certificate(self, key: Key) -> Outcome:
        body = self.store.certificates.get(key)
        if body is None:
            return Outcome()
        try:
            spec = parse_certificate_spec(body.get("spec") or {})
        except SpecError as error:
            self._set_status(key, body, StatusUpdate((False, "InvalidSpec", str(error)), warn=True))
            return Outcome()
        work = _Work(
            key,
            body,
            spec,
            self.store.secrets.get((key[0], spec.secret_name)),
            (body["metadata"].get("annotations") or {}).get(RENEW_REQUEST),
        )
        decision = decide(
            spec, key[1], work.observed.contents if work.observed else None, self.clock(), work.renew_request
        )
        return self._act(work, decision)

    def _act(self, work: _Work, decision: Decision) -> Outcome:
        """Act on the decision. Writes are conditional on the Secret's observed resourceVersion, so a
        stale observation costs a conflict and a re-read, never a wrong write."""
        if decision.action is Action.NOTHING:
            return self._up_to_date(work, decision)
        if decision.action is Action.BLOCKED:
            blocked = StatusUpdate((False, decision.reason.value, decision.message), warn=True)
            self._set_status(work.key, work.body, blocked)
            return Outcome()
        if decision.reason in _CHANGED_BY_OTHERS:
            held_until = self._rewrites.next_allowed(work.key, self.clock())
            if held_until is not None:
                return self._hold(work, decision, held_until)
        if decision.action is Action.REPAIR:
            return self._repair(work, decision)
        return self._issue(work, decision)

    def _hold(self, work: _Work, decision: Decision, until: datetime.datetime) -> Outcome:
        budget = self._rewrites
        message = (
            f"Secret {work.spec.secret_name} was changed by something other than certsmith {budget.limit} "
            f"times within {format_duration(budget.window)} ({decision.message}); certsmith waits until "
            f"{timestamp(until)} before writing it again; find the other writer in its managedFields."
        )
        stored = decision.stored
        if stored is not None and decision.reason is Reason.METADATA_DRIFT:
            ready = (True, "Ready", decision.message)
        else:
            ready = (False, "SecretKeepsChanging", message)
        update = StatusUpdate(
            ready,
            issuing=("SecretKeepsChanging", message),
            issued=stored.issued if stored else None,
            renewal=decision.renewal_time,
            revision=stored.revision if stored else None,
        )
        self._set_status(work.key, work.body, update)
        logger.warning("certificate %s/%s: %s", *work.key, message)
        return Outcome(recheck_at=until)

    def _up_to_date(self, work: _Work, decision: Decision) -> Outcome:
        stored = decision.stored
        if stored is None or decision.renewal_time is None:
            raise RuntimeError(f"policy decided {decision.action} without a readable Secret")
        update = StatusUpdate(
            (True, "Ready", decision.message),
            issued=stored.issued,
            renewal=decision.renewal_time,
            revision=stored.revision,
            failures=0,
        )
        self._set_status(work.key, work.body, update)
        return Outcome(recheck_at=decision.renewal_time)

    def _repair(self, work: _Work, decision: Decision) -> Outcome:
        stored, observed = decision.stored, work.observed
        if stored is None or observed is None:
            raise RuntimeError(f"policy decided {decision.action} without a readable Secret")
        try:
            contents = self._secret_contents(
                work,
                stored.key,
                stored.issued,
                stored.revision,
                observed.contents.annotations.get(RENEW_REQUEST),
            )
            self._write(work, contents, decision.reason)
        except SecretConflictError:
            return self._reread(work)
        except IssuerNotReadyError as error:
            return self._failed(work, decision, error.reason, str(error))
        post_event(self.api, work.body, "Certificate", False, "Repaired", decision.message)
        logger.info("certificate %s/%s: %s", *work.key, decision.message)
        return self._up_to_date(work, decision)

    def _issue(self, work: _Work, decision: Decision) -> Outcome:
        now = self.clock()
        spec, status = work.spec, work.body.get("status") or {}
        failures = int(status.get("failedIssuanceAttempts") or 0)
        generation_changed = status.get("observedGeneration") != work.body["metadata"].get("generation")
        last_failure = parse_timestamp(status.get("lastFailureTime"))
        if failures and last_failure and not generation_changed and work.key not in self._retry_now:
            next_attempt = last_failure + self.settings.backoff.delay(failures)
            if now < next_attempt:
                return Outcome(recheck_at=next_attempt)
        self._retry_now.discard(work.key)
        try:
            signer = self._resolve_signer(spec.issuer_ref, work.key[0])
            private_key = self._key_for(work, decision)
            issued = signer.sign(spec.request, private_key, now)
            revision = (
                max(int(status.get("revision") or 0), decision.stored.revision if decision.stored else 0) + 1
            )
            self._write(
                work,
                self._secret_contents(work, private_key, issued, revision, work.renew_request),
                decision.reason,
            )
        except SecretConflictError:
            return self._reread(work)
        except IssuerNotReadyError as error:
            return self._failed(work, decision, error.reason, str(error))
        except PKIError as error:
            return self._failed(work, decision, "SigningFailed", str(error))
        renewal = _renewal(spec, issued)
        verb = "Renewed" if decision.reason in _RENEWAL_REASONS else "Issued"
        message = (
            f"{verb} certificate serial {issued.certificate.serial_number:x}, valid until "
            f"{timestamp(issued.certificate.not_valid_after_utc)}, signed by {spec.issuer_ref} "
            f"(revision {revision}; reason {decision.reason.value}: {decision.message})"
        )
        ready = (True, "Ready", up_to_date_message(issued.certificate.not_valid_after_utc))
        self._set_status(
            work.key,
            work.body,
            StatusUpdate(ready, issued=issued, renewal=renewal, revision=revision, failures=0),
        )
        post_event(self.api, work.body, "Certificate", False, verb, message)
        logger.info("certificate %s/%s: %s", *work.key, message)
        return Outcome(recheck_at=renewal)

    def _key_for(self, work: _Work, decision: Decision) -> PrivateKey:
        """A new key, unless rotationPolicy Never and the Secret holds a key of the requested type."""
        wanted = work.spec.private_key
        if wanted.rotation is RotationPolicy.NEVER:
            if decision.stored is not None:
                return decision.stored.key
            existing = work.observed.contents.data.get(TLS_KEY) if work.observed else None
            if existing:
                try:
                    key = load_private_key(existing)
                except PKIError:
                    pass
                else:
                    if spec_of(key) == wanted.spec:
                        return key
        return generate_private_key(wanted.spec)

    def _secret_contents(
        self,
        work: _Work,
        private_key: PrivateKey,
        issued: IssuedCertificate,
        revision: int,
        renew_request: str | None,
    ) -> SecretContents:
        """The whole Secret to write: desired data and metadata over whatever others put there."""
        spec, namespace = work.spec, work.key[0]
        labels, annotations = desired_metadata(spec, work.key[1], revision, renew_request)
        key_pem = encode_private_key(private_key, spec.private_key.encoding)
        data = derived_data(spec, private_key, key_pem, issued)
        if spec.pkcs12 is not None:
            reference = spec.pkcs12.password
            password = read_secret_value(self.api, namespace, reference.name, reference.key)
            if password is None:
                raise IssuerNotReadyError(
                    "KeystorePasswordMissing",
                    f"Secret {reference.name} has no key {reference.key} "
                    f"for keystores.pkcs12.passwordSecretRef; create it",
                )
            data |= keystores(spec, private_key, issued, password)
        current = work.observed.contents if work.observed else SecretContents()
        return SecretContents(
            labels={**current.labels, **labels}, annotations={**current.annotations, **annotations}, data=data
        )

    def _write(self, work: _Work, contents: SecretContents, reason: Reason) -> None:
        owner = None
        if self.settings.secret_owner_references:
            metadata = work.body["metadata"]
            owner = client.V1OwnerReference(
                api_version=API_VERSION,
                kind="Certificate",
                name=metadata["name"],
                uid=metadata["uid"],
                controller=True,
                block_owner_deletion=False,
            )
        namespace, name = work.key[0], work.spec.secret_name
        resource_version = work.observed.resource_version if work.observed else None
        self._remember_secret(
            (namespace, name), write_secret(self.api, namespace, name, contents, resource_version, owner)
        )
        if reason in _CHANGED_BY_OTHERS:
            self._rewrites.spend(work.key, self.clock())

    def _failed(self, work: _Work, decision: Decision, reason: str, message: str) -> Outcome:
        now = self.clock()
        failures = int((work.body.get("status") or {}).get("failedIssuanceAttempts") or 0) + 1
        retry_at = now.replace(microsecond=0) + self.settings.backoff.delay(failures)
        full_message = f"attempt {failures} failed: {message}; next attempt at {timestamp(retry_at)}"
        stored = decision.stored
        if stored is not None and decision.reason in _RENEWAL_REASONS:
            ready = (
                True,
                "Ready",
                f"the current certificate is still valid, but renewing it failed: {message}",
            )
        else:
            ready = (False, reason, message)
        update = StatusUpdate(
            ready,
            issuing=(reason, full_message),
            failures=failures,
            failed_at=now,
            issued=stored.issued if stored else None,
            renewal=decision.renewal_time,
            revision=stored.revision if stored else None,
            warn=True,
        )
        self._set_status(work.key, work.body, update)
        logger.warning("certificate %s/%s: %s", *work.key, full_message)
        return Outcome(recheck_at=retry_at)

    def _set_status(self, key: Key, body: Mapping[str, Any], update: StatusUpdate) -> None:
        """Patch the status if it differs; post a Warning Event for each failed attempt or new problem."""
        now = self.clock()
        current = body.get("status") or {}
        previous = current.get("conditions") or []
        generation = body["metadata"].get("generation")
        ready, issuing = update.ready, update.issuing
        conditions = [condition("Ready", ready[0], ready[1], ready[2], generation, previous, now)]
        if issuing is not None:
            conditions.append(condition("Issuing", True, issuing[0], issuing[1], generation, previous, now))
        status: dict[str, Any] = {"conditions": conditions, "observedGeneration": generation}
        if update.issued is not None:
            status["notBefore"] = timestamp(update.issued.certificate.not_valid_before_utc)
            status["notAfter"] = timestamp(update.issued.certificate.not_valid_after_utc)
        if update.renewal is not None:
            status["renewalTime"] = timestamp(update.renewal)
        if update.revision is not None:
            status["revision"] = update.revision
        if update.failures is not None:
            status["failedIssuanceAttempts"] = update.failures
            status["lastFailureTime"] = timestamp(update.failed_at) if update.failed_at else None
        if not status_differs(current, status):
            return
        patch_status(self.api, CERTIFICATES, key[0], key[1], status)
        self._remember_status(CERTIFICATES, key, status)
        if issuing is not None:
            post_event(self.api, body, "Certificate", True, issuing[0], issuing[1])
        elif update.warn and _condition_changed(previous, "Ready", ready):
            post_event(self.api, body, "Certificate", True, ready[1], ready[2])

    def _remember_status(self, plural: str, key: Key, status: Mapping[str, Any]) -> None:
        objects = self.store.objects(plural)
        body = objects.get(key)
        if body is not None:
            merged = {**(body.get("status") or {}), **status}
            objects[key] = {
                **body,
                "status": {name: value for name, value in merged.items() if value is not None},
            }

    def _remember_secret(self, key: Key, observed: ObservedSecret | None) -> None:
        if observed is None:
            self.store.secrets.pop(key, None)
        else:
            self.store.secrets[key] = observed

    def _reread(self, work: _Work) -> Outcome:
        """After a write conflict: read the Secret as it is now and decide again right away."""
        namespace, name = work.key[0], work.spec.secret_name
        self._remember_secret((namespace, name), read_secret(self.api, namespace, name))
        return Outcome(follow_up=(WorkItem(CERTIFICATES, work.key),))


def _renewal(spec: CertificateSpec, issued: IssuedCertificate) -> datetime.datetime:
    certificate = issued.certificate
    return renewal_time(
        certificate.not_valid_before_utc,
        certificate.not_valid_after_utc,
        spec.renew_before,
        spec.renew_before_percentage,
    )


def _condition_changed(previous: list[Mapping[str, Any]], kind: str, now: tuple[bool, str, str]) -> bool:
    before = next((item for item in previous if item.get("type") == kind), {})
    return (before.get("status"), before.get("reason"), before.get("message")) != (
        str(now[0]),
        now[1],
        now[2],
    )


def _references(body: Mapping[str, Any], kind: IssuerKind, name: str) -> bool:
    reference = (body.get("spec") or {}).get("issuerRef") or {}
    return bool(reference.get("name") == name and reference.get("kind", "Issuer") == kind.value)


def _ready_reason(spec: IssuerSpec) -> str:
    return "KeyPairVerified" if isinstance(spec, CAIssuerSpec) else "IsReady"


def _ready_message(spec: IssuerSpec) -> str:
    if isinstance(spec, CAIssuerSpec):
        return f"signing with the CA key pair in Secret {spec.secret_name}"
    if isinstance(spec, ACMEIssuerSpec):
        return f"ACME account at {spec.server}"
    return "signing each certificate with its own key"
