"""Reconciling one Certificate: observe -> policy.decide -> a Plan -> apply it once.

Observing reads memory only (the store, the resolver's caches, the issuer's health); the policy is
consulted once per attempt. Signing that talks to a CA is a step of the plan, run in the issuer's
lane (`certsmith.engine`); its result comes back to a later reconcile, which plans what it means.

Every outcome is a plan. Every failure — an issuer that is not ready, a signing error, a Secret
certsmith may not touch, the API server refusing the Secret write — takes one path (`_failure`):
into the status (reason, message, failedIssuanceAttempts, lastFailureTime) and one Warning Event, so
a restart keeps every back-off.
"""

from __future__ import annotations

import datetime
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography import x509

from certsmith.api import CERTIFICATES, SpecError
from certsmith.api.certificate import CertificateSpec, parse_certificate_spec
from certsmith.api.issuer import issuance_refusal
from certsmith.api.status import condition, parse_timestamp, precise_timestamp, status_differs, timestamp
from certsmith.budget import RewriteBudget
from certsmith.engine.lanes import Lanes
from certsmith.engine.steps import KEY_GENERATION_LANE, RenewalInfoStep, SignStep
from certsmith.issuers import IssuerId, IssuerNotReadyError, Pending, SigningFailedError, SigningRequest
from certsmith.issuers.credentials import InvalidCredentialError, keystore_password, secret_where
from certsmith.issuers.resolver import ISSUER_FAILURES, IssuerResolver, Resolved, issuer_id
from certsmith.kube.port import (
    HTTP_FORBIDDEN,
    ApiAccessError,
    EventRecord,
    Key,
    KubePort,
    ObjectRef,
    SecretConflictError,
)
from certsmith.kube.secrets import ObservedSecret
from certsmith.metrics.issuance import IssuanceMetrics
from certsmith.pki import PKIError
from certsmith.pki.inspection import describe
from certsmith.pki.keys import PrivateKey, encode_private_key, generate_private_key, slow_to_generate
from certsmith.pki.signing import IssuedCertificate
from certsmith.policy import (
    Action,
    Decision,
    Gates,
    Observation,
    Reason,
    decide,
    planned_renewal,
    ready_after_failure,
    ready_when_held,
    reusable_key,
    shortened_warning,
    up_to_date_message,
)
from certsmith.reconcile.plan import (
    Outcome,
    Plan,
    SecretWrite,
    SecretWriteRefusedError,
    StatusWrite,
    Written,
    apply_plan,
)
from certsmith.reconcile.store import Store, WorkItem
from certsmith.renewal_info import RenewalInfo, cert_id, first_fetch, from_status, to_status
from certsmith.settings import OperatorSettings
from certsmith.tls_secret import (
    CERTIFICATE_NAME,
    MANAGED_LABEL,
    RENEW_REQUEST,
    SecretContents,
    derived_data,
    desired_metadata,
    keystores,
    merged_contents,
)

logger = logging.getLogger("certsmith")

_ISSUANCE_WINDOW = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class StatusUpdate:
    """What a reconcile learned about a Certificate; rendered into its status by `_status_plan`."""

    ready: tuple[bool, str, str]
    """(status, reason, message) of the Ready condition."""
    issuing: tuple[str, str] | None = None
    """(reason, message) of a failing or held issuance; None removes the Issuing condition."""
    issued: IssuedCertificate | None = None
    renewal: datetime.datetime | None = None
    revision: int | None = None
    failures: int | None = None
    failed_at: datetime.datetime | None = None
    warn: bool = False
    """Post a Warning Event when Ready changes to this."""
    issuing_warning: bool = True
    """Post the Issuing condition as a Warning Event (not for an order that is merely in progress)."""
    acme: Mapping[str, Any] | None = None
    """status.acme to write (the order, the CA's Retry-After); an empty mapping removes it."""
    renewal_information: Mapping[str, Any] | None = None
    """status.renewalInformation to write (the CA's ARI window); None leaves it, empty removes it."""


@dataclass(frozen=True)
class _Work:
    """One Certificate being reconciled: what was observed of it and of its Secret."""

    key: Key
    body: Mapping[str, Any]
    spec: CertificateSpec
    observed: ObservedSecret | None
    observation: Observation
    issuer: Resolved | IssuerNotReadyError
    """The issuer's signer as resolved for this reconcile, or why there is none."""
    renewal_info_answered: bool = False
    """The observation's renewal information is an ARI step's outcome not in the status yet."""

    @property
    def new_renewal_information(self) -> Mapping[str, Any] | None:
        """status.renewalInformation to write: an ARI outcome not in the status yet, else None."""
        info = self.observation.renewal_info
        return to_status(info) if self.renewal_info_answered and info is not None else None

    @property
    def status(self) -> Mapping[str, Any]:
        return self.body.get("status") or {}

    @property
    def secret_key(self) -> Key:
        return (self.key[0], self.spec.secret_name)


class _AttemptFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class CertificateReconciler:
    def __init__(
        self,
        store: Store,
        port: KubePort,
        resolver: IssuerResolver,
        settings: OperatorSettings,
        clock: Callable[[], datetime.datetime],
        metrics: IssuanceMetrics,
        lanes: Lanes,
    ) -> None:
        self._metrics = metrics
        self._lanes = lanes
        self._store = store
        self._port = port
        self._resolver = resolver
        self._settings = settings
        self._clock = clock
        self._rewrites: RewriteBudget[Key] = RewriteBudget(settings.rewrite_limit, settings.rewrite_window)
        self._issuances: RewriteBudget[Key] = RewriteBudget(settings.issuance_limit, _ISSUANCE_WINDOW)

    def reconcile(self, key: Key) -> Outcome:
        body = self._store.certificates.get(key)
        if body is None:
            return Outcome()
        try:
            spec = parse_certificate_spec(body.get("spec") or {})
        except SpecError as error:
            update = StatusUpdate((False, "InvalidSpec", str(error)), warn=True)
            return Outcome(written=apply_plan(self._port, self._status_plan(key, body, update), self._lanes))
        secret_key = (key[0], spec.secret_name)
        observed = self._store.secrets.get(secret_key)
        read_back = Written()
        if observed is None and not self._store.secrets_listed(key):
            observed, read_back = self._read_secret(secret_key)
        for _ in range(2):
            work = self._observe(key, body, spec, observed)
            decision = decide(work.observation, self._settings.backoff)
            started = time.monotonic()
            plan = self._plan(work, decision)
            try:
                written = apply_plan(self._port, plan, self._lanes)
            except SecretConflictError:
                observed, read = self._read_secret(secret_key)
                read_back += read
                continue
            except SecretWriteRefusedError as error:
                # A failure plan settles nothing: a CA's certificate stays at hand, written once allowed.
                plan = self._failure(work, decision, _refusal_reason(error.refusal), str(error))
                written = apply_plan(self._port, plan, self._lanes)
            else:
                self._spend_budgets(work, decision, plan)
                if _renewal_info_shown(work, plan):
                    self._lanes.settle_renewal_info(WorkItem(CERTIFICATES, key))
            self._count(spec, decision, plan, time.monotonic() - started)
            return Outcome(plan.recheck_at, plan.follow_up, read_back + written)
        return Outcome(follow_up=(WorkItem(CERTIFICATES, key),), written=read_back)

    def _read_secret(self, secret_key: Key) -> tuple[ObservedSecret | None, Written]:
        """The Secret as the API server has it, and, if certsmith manages it, what the store learns."""
        observed = self._port.read_secret(*secret_key)
        if observed is not None and observed.contents.labels.get(MANAGED_LABEL) == "true":
            return observed, Written(secrets=((secret_key, observed),))
        return observed, Written()

    def _observe(
        self, key: Key, body: Mapping[str, Any], spec: CertificateSpec, observed: ObservedSecret | None
    ) -> _Work:
        now = self._clock()
        secret = observed.contents if observed else None
        owner = secret.annotations.get(CERTIFICATE_NAME) if secret else None
        owner_exists = True
        if owner and owner != key[1]:
            owner_exists = (key[0], owner) in self._store.certificates or self._port.certificate_exists(
                key[0], owner
            )
        plural, issuer_key = issuer_id(spec.issuer_ref, key[0])
        issuer_body = self._store.objects(plural).get(issuer_key) or {}
        issuer: Resolved | IssuerNotReadyError
        refusal = (
            issuance_refusal(spec.issuer_ref, issuer_body.get("spec") or {}, key[0], spec.request.is_ca)
            if issuer_body
            else None
        )
        if refusal is not None:
            issuer = IssuerNotReadyError(refusal.reason, refusal.message)
        else:
            try:
                issuer = self._resolver.resolve(spec.issuer_ref, key[0], now)
            except IssuerNotReadyError as error:
                issuer = error
        password_secret = None
        if spec.pkcs12 is not None:
            password_secret = self._resolver.referenced_secret((key[0], spec.pkcs12.password.name))
        issuer_state = self._store.issuer_states.get(WorkItem(plural, issuer_key))
        answered = self._lanes.renewal_info(WorkItem(CERTIFICATES, key))
        around = Surroundings(
            owner_exists=owner_exists,
            issuer=issuer,
            issuer_body=issuer_body,
            issuer_ready_since=issuer_state.ready_since if issuer_state else None,
            password_secret=password_secret,
            rewrite_allowed_at=self._rewrites.next_allowed(key, now),
            issuance_allowed_at=self._issuances.next_allowed(key, now),
            renewal_info=answered,
        )
        observation = observation_of(key, body, spec, secret, now, around)
        return _Work(key, body, spec, observed, observation, issuer, answered is not None)

    def _plan(self, work: _Work, decision: Decision) -> Plan:
        match decision.action:
            case Action.NOTHING:
                return self._up_to_date(work, decision)
            case Action.WAIT:
                return Plan(recheck_at=decision.not_before)
            case Action.HOLD:
                return self._hold(work, decision)
            case Action.BLOCKED:
                return self._failure(work, decision, decision.reason.value, decision.message)
            case Action.REPAIR:
                return self._repair(work, decision)
            case Action.ISSUE:
                return self._issue(work, decision)

    def _up_to_date(self, work: _Work, decision: Decision, extra: Plan | None = None) -> Plan:
        stored = decision.stored
        if stored is None:
            raise RuntimeError(f"policy decided {decision.action} without a readable Secret")
        info, step = self._renewal_info_step(work, stored.issued.certificate)
        update = StatusUpdate(
            (True, "Ready", decision.message),
            issued=stored.issued,
            renewal=decision.renewal_time,
            revision=stored.revision,
            failures=0,
            renewal_information=to_status(info) if info else None,
        )
        status = self._status_plan(work.key, work.body, update)
        extra = extra or Plan()
        recheck = decision.renewal_time or stored.info.not_after
        if info is not None and step is None:
            recheck = min(recheck, info.next_update)
        return Plan(
            secret=extra.secret,
            status=status.status,
            events=extra.events + status.events,
            log=extra.log,
            recheck_at=recheck,
            step=step,
        )

    def _renewal_info_step(
        self, work: _Work, certificate: x509.Certificate
    ) -> tuple[RenewalInfo | None, RenewalInfoStep | None]:
        """What is known of the CA's renewal information (ARI) for the Secret's certificate, and the
        request for it if one is due: only for ACME CAs that offer ARI, only while the certificate is
        the current one and has not expired (a replaced certificate is asked about no more)."""
        resolved = work.issuer
        if not isinstance(resolved, Resolved) or resolved.renewal_info is None or resolved.lane is None:
            return None, None
        source = resolved.renewal_info
        cert = cert_id(certificate)
        now = self._clock()
        if cert is None or source.offers_renewal_info() is False or now >= certificate.not_valid_after_utc:
            return None, None
        interval = self._settings.renewal_info_interval
        known = work.observation.renewal_info
        if known is None or known.cert_id != cert:
            known = first_fetch(cert, certificate.not_valid_before_utc, interval)
        owner = WorkItem(CERTIFICATES, work.key)
        if not known.due(now) or work.renewal_info_answered or self._lanes.asking(owner):
            return known, None
        return known, RenewalInfoStep(resolved.lane, resolved.address, owner, source, known, interval)

    def _hold(self, work: _Work, decision: Decision) -> Plan:
        stored = decision.stored
        update = StatusUpdate(
            ready_when_held(work.spec, decision, self._clock(), work.observation.issuer_sets_profile),
            issuing=(decision.reason.value, decision.message),
            issued=stored.issued if stored else None,
            renewal=decision.renewal_time,
            revision=stored.revision if stored else None,
            renewal_information=work.new_renewal_information,
        )
        status = self._status_plan(work.key, work.body, update)
        return Plan(
            status=status.status,
            events=status.events,
            log=f"certificate {_name(work.key)}: {decision.message}" if status.status else None,
            log_warning=True,
            recheck_at=decision.not_before,
        )

    def _repair(self, work: _Work, decision: Decision) -> Plan:
        stored = decision.stored
        if stored is None or work.observed is None:
            raise RuntimeError(f"policy decided {decision.action} without a readable Secret")
        try:
            contents = self._contents(
                work,
                stored.key,
                stored.issued,
                stored.revision,
                work.observed.contents.annotations.get(RENEW_REQUEST),
            )
        except _AttemptFailed as error:
            return self._failure(work, decision, error.reason, str(error))
        repaired = Plan(
            secret=self._secret_write(work, contents),
            events=(self._event(work, False, "Repaired", decision.message),),
            log=f"certificate {_name(work.key)}: {decision.message}",
        )
        return self._up_to_date(work, decision, repaired)

    def _issue(self, work: _Work, decision: Decision) -> Plan:
        if isinstance(work.issuer, IssuerNotReadyError):
            return self._settled_failure(work, decision, work.issuer.reason, str(work.issuer))
        try:
            self._keystore_password(work)  # before signing: no ACME order for a keystore that cannot be made
        except _AttemptFailed as error:
            return self._settled_failure(work, decision, error.reason, str(error))
        resolved = work.issuer
        spec = work.spec
        reused = reusable_key(spec, decision, work.observation.secret)
        private_key = functools.cache(lambda: reused or generate_private_key(spec.private_key.spec))
        metadata = work.body["metadata"]
        request = SigningRequest(
            spec.request,
            private_key,
            self._clock(),
            work.key,
            metadata.get("uid"),
            metadata.get("labels") or {},
            (work.status.get("acme") or {}).get("order"),
            replaces=_replaced_cert_id(decision),
        )
        lane = resolved.lane
        if lane is None and reused is None and slow_to_generate(spec.private_key.spec):
            lane = KEY_GENERATION_LANE
        if lane is None:
            return self._inline(work, decision, resolved, request, private_key)
        return self._in_lane(work, decision, resolved, lane, request)

    def _inline(
        self,
        work: _Work,
        decision: Decision,
        resolved: Resolved,
        request: SigningRequest,
        private_key: Callable[[], PrivateKey],
    ) -> Plan:
        """Signing in the reconcile itself. A key generation step of an earlier decision (the key was
        to be made then, and is in the Secret now) is waited for, and its result dropped."""
        owner = WorkItem(CERTIFICATES, work.key)
        if self._lanes.busy(owner):
            return Plan()  # the step's end queues this Certificate again
        try:
            plan = self._signed(work, decision, resolved, resolved.signer.sign(request), private_key)
        except SigningFailedError as error:
            plan = self._failure(work, decision, error.reason, str(error), error.order, error.retry_after)
        except PKIError as error:
            plan = self._failure(work, decision, "SigningFailed", str(error))
        return replace(plan, settles=owner) if self._lanes.signed(owner) else plan

    def _settled_failure(self, work: _Work, decision: Decision, reason: str, message: str) -> Plan:
        """A failure before signing: a step that ended before it is of no more use."""
        plan = self._failure(work, decision, reason, message)
        return replace(plan, settles=WorkItem(CERTIFICATES, work.key))

    def _in_lane(
        self, work: _Work, decision: Decision, resolved: Resolved, lane: IssuerId, request: SigningRequest
    ) -> Plan:
        """Signing by a CA, in the issuer's lane `lane`: start it, wait for its end, or plan what it
        answered."""
        owner = WorkItem(CERTIFICATES, work.key)
        found = self._lanes.signed(owner)
        basis = (
            work.body["metadata"].get("generation"),
            work.observed.resource_version if work.observed else None,
            lane,
        )
        if found is None or not found.usable(basis, self._clock()):
            if self._lanes.busy(owner):
                return Plan()  # the step's end queues this Certificate again
            step = SignStep(lane, resolved.address, owner, resolved.signer, request, basis)
            return Plan(step=step, settles=owner if found else None)
        result = found.result
        if isinstance(result, SigningFailedError):
            plan = self._failure(work, decision, result.reason, str(result), result.order, result.retry_after)
        else:
            plan = self._signed(work, decision, resolved, result, found.require_key)
        return replace(plan, settles=owner)

    def _signed(
        self,
        work: _Work,
        decision: Decision,
        resolved: Resolved,
        signed: IssuedCertificate | Pending,
        private_key: Callable[[], PrivateKey],
    ) -> Plan:
        """The plan for what the issuer answered: an order in progress, or the certificate."""
        if isinstance(signed, Pending):
            return self._pending(work, decision, signed)
        now = self._clock()
        spec = work.spec
        issued = signed
        revision = (
            max(int(work.status.get("revision") or 0), decision.stored.revision if decision.stored else 0) + 1
        )
        try:
            contents = self._contents(work, private_key(), issued, revision, work.observation.renew_request)
        except _AttemptFailed as error:
            return self._failure(work, decision, error.reason, str(error))
        except PKIError as error:
            return self._failure(work, decision, "SigningFailed", str(error))
        info = describe(issued.certificate)
        renewal = planned_renewal(spec, issued, resolved.ca_certificate, now)
        ari, _ = self._renewal_info_step(work, issued.certificate)
        verb = "Renewed" if decision.renewing else "Issued"
        message = (
            f"{verb} certificate serial {info.serial_number:x}, valid until "
            f"{timestamp(info.not_after)}, signed by {spec.issuer_ref} "
            f"(revision {revision}; reason {decision.reason.value}: {decision.message})"
        )
        events = [self._event(work, False, verb, message)]
        shortened = None if work.observation.issuer_sets_profile else shortened_warning(spec, info)
        if shortened:
            events.append(self._event(work, True, "Shortened", f"certificate {shortened}"))
        update = StatusUpdate(
            (True, "Ready", up_to_date_message(spec, info, work.observation.issuer_sets_profile)),
            issued=issued,
            renewal=renewal,
            revision=revision,
            failures=0,
            acme={} if work.observation.issuer_sets_profile else None,
            renewal_information=to_status(ari) if ari else {},
        )
        status = self._status_plan(work.key, work.body, update)
        recheck = renewal or info.not_after
        return Plan(
            secret=self._secret_write(work, contents),
            status=status.status,
            events=(*events, *status.events),
            log=f"certificate {_name(work.key)}: {message}",
            recheck_at=min(recheck, ari.next_update) if ari else recheck,
            issued=True,
        )

    def _pending(self, work: _Work, decision: Decision, pending: Pending) -> Plan:
        """An ACME order in progress: its state into the status, and a recheck when it is due."""
        stored = decision.stored
        ready = ready_when_held(work.spec, decision, self._clock(), work.observation.issuer_sets_profile)
        if not ready[0]:
            ready = (False, "OrderPending", pending.message)
        update = StatusUpdate(
            ready,
            issuing=("OrderPending", pending.message),
            issued=stored.issued if stored else None,
            renewal=decision.renewal_time,
            revision=stored.revision if stored else None,
            issuing_warning=False,
            acme={"order": pending.order or None, "retryAfter": None},
            renewal_information=work.new_renewal_information,
        )
        status = self._status_plan(work.key, work.body, update)
        events = status.events
        if pending.new_order:
            message = f"created ACME order {pending.order.get('url', '')} ({decision.message})"
            created = self._event(work, False, "OrderCreated", message)
            events = (created, *events)
        return Plan(status=status.status, events=events, recheck_at=pending.until)

    def _failure(
        self,
        work: _Work,
        decision: Decision,
        reason: str,
        message: str,
        acme_order: Mapping[str, Any] | None = None,
        ca_retry_after: datetime.datetime | None = None,
    ) -> Plan:
        # The failure dates from what was observed: an issuer found ready after that releases it.
        now = work.observation.now
        failures = int(work.status.get("failedIssuanceAttempts") or 0) + 1
        retry_at = now.replace(microsecond=0) + self._settings.backoff.delay(failures)
        if ca_retry_after is not None:
            retry_at = max(retry_at, ca_retry_after)
        acme: dict[str, Any] | None = None
        if acme_order is not None or ca_retry_after is not None:
            acme = {"retryAfter": timestamp(ca_retry_after) if ca_retry_after else None}
            if acme_order is not None:
                acme["order"] = acme_order
        full_message = f"attempt {failures} failed: {message}; next attempt at {timestamp(retry_at)}"
        stored = decision.stored
        update = StatusUpdate(
            ready_after_failure(decision, reason, message),
            issuing=(reason, full_message),
            failures=failures,
            failed_at=now,
            issued=stored.issued if stored else None,
            renewal=decision.renewal_time,
            revision=stored.revision if stored else None,
            warn=True,
            acme=acme,
            renewal_information=work.new_renewal_information,
        )
        status = self._status_plan(work.key, work.body, update)
        return Plan(
            status=status.status,
            events=status.events,
            log=f"certificate {_name(work.key)}: {full_message}",
            log_warning=True,
            recheck_at=retry_at,
            issued=False,
        )

    def _contents(
        self,
        work: _Work,
        private_key: PrivateKey,
        issued: IssuedCertificate,
        revision: int,
        renew_request: str | None,
    ) -> SecretContents:
        spec = work.spec
        password_version = work.observation.keystore_password_version
        labels, annotations = desired_metadata(spec, work.key[1], revision, renew_request, password_version)
        key_pem = encode_private_key(private_key, spec.private_key.encoding)
        data = derived_data(spec, private_key, key_pem, issued)
        password = self._keystore_password(work)
        if password is not None:
            data |= keystores(spec, private_key, issued, password)
        current = work.observed.contents if work.observed else None
        return merged_contents(current, labels, annotations, data)

    def _keystore_password(self, work: _Work) -> bytes | None:
        """The PKCS#12 password, if the spec asks for keystores; _AttemptFailed when it cannot be used."""
        if work.spec.pkcs12 is None:
            return None
        reference = work.spec.pkcs12.password
        found = self._resolver.referenced_secret((work.key[0], reference.name))
        password = found.contents.data.get(reference.key) if found else None
        if password is None:
            raise _AttemptFailed(
                "KeystorePasswordMissing",
                f"Secret {reference.name} has no key {reference.key} "
                f"for keystores.pkcs12.passwordSecretRef; create it",
            )
        where = secret_where("keystores.pkcs12.passwordSecretRef", reference, work.key[0])
        try:
            return keystore_password(password, where)
        except InvalidCredentialError as error:
            raise _AttemptFailed(error.reason, str(error)) from None

    def _secret_write(self, work: _Work, contents: SecretContents) -> SecretWrite:
        owner = None
        if self._settings.secret_owner_references:
            metadata = work.body["metadata"]
            owner = ObjectRef("Certificate", work.key[0], work.key[1], metadata.get("uid"))
        resource_version = work.observed.resource_version if work.observed else None
        return SecretWrite(work.key[0], work.spec.secret_name, contents, resource_version, owner)

    def _count(self, spec: CertificateSpec, decision: Decision, plan: Plan, seconds: float) -> None:
        kind = spec.issuer_ref.kind.value
        if plan.issued:
            self._metrics.issued(kind, seconds)
        elif plan.issued is False:
            self._metrics.failed(kind, renewal=decision.renewing and decision.stored is not None)

    def _spend_budgets(self, work: _Work, decision: Decision, plan: Plan) -> None:
        if plan.secret is None:
            return
        now = self._clock()
        if decision.rewrite:
            self._rewrites.spend(work.key, now)
        if decision.action is Action.ISSUE:
            self._issuances.spend(work.key, now)

    def _status_plan(self, key: Key, body: Mapping[str, Any], update: StatusUpdate) -> Plan:
        """The status patch if the status differs, and a Warning Event for each failed attempt or new
        problem."""
        now = self._clock()
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
        status["renewalTime"] = timestamp(update.renewal) if update.renewal is not None else None
        if update.revision is not None:
            status["revision"] = update.revision
        if update.failures is not None:
            status["failedIssuanceAttempts"] = update.failures
            status["lastFailureTime"] = precise_timestamp(update.failed_at) if update.failed_at else None
        if update.acme is not None:
            status["acme"] = _merge_patch(current.get("acme") or {}, update.acme)
        if update.renewal_information is not None:
            status["renewalInformation"] = _merge_patch(
                current.get("renewalInformation") or {}, update.renewal_information
            )
        if not status_differs(current, status):
            return Plan()
        events: tuple[EventRecord, ...] = ()
        subject = _subject(key, body)
        if issuing is not None and update.issuing_warning:
            events = (EventRecord(subject, True, issuing[0], issuing[1]),)
        elif update.warn and _condition_changed(previous, "Ready", ready):
            events = (EventRecord(subject, True, ready[1], ready[2]),)
        return Plan(status=StatusWrite(CERTIFICATES, key, status), events=events)

    def _event(self, work: _Work, warning: bool, reason: str, message: str) -> EventRecord:
        return EventRecord(_subject(work.key, work.body), warning, reason, message)


@dataclass(frozen=True)
class Surroundings:
    """What a decision about one Certificate needs besides the Certificate and its Secret."""

    owner_exists: bool = True
    """Whether the Certificate named in the Secret's certificate-name annotation exists."""
    issuer: Resolved | IssuerNotReadyError | None = None
    issuer_body: Mapping[str, Any] = field(default_factory=dict)
    issuer_ready_since: datetime.datetime | None = None
    password_secret: ObservedSecret | None = None
    rewrite_allowed_at: datetime.datetime | None = None
    issuance_allowed_at: datetime.datetime | None = None
    renewal_info: RenewalInfo | None = None
    """An ARI step's outcome newer than the status, if there is one."""


def observation_of(
    key: Key,
    body: Mapping[str, Any],
    spec: CertificateSpec,
    secret: SecretContents | None,
    now: datetime.datetime,
    around: Surroundings,
) -> Observation:
    """What the policy decides on, from what is known of a Certificate and its world: the one way to
    build it, for the operator and for `certsmith status` alike."""
    status = body.get("status") or {}
    password_secret = around.password_secret
    password = None
    if spec.pkcs12 is not None and password_secret is not None:
        password = password_secret.contents.data.get(spec.pkcs12.password.key)
    gates = Gates(
        failures=int(status.get("failedIssuanceAttempts") or 0),
        last_failure=parse_timestamp(status.get("lastFailureTime")),
        spec_changed_since_failure=status.get("observedGeneration") != body["metadata"].get("generation"),
        issuer_ready_since=around.issuer_ready_since,
        failed_for_issuer=_issuing_reason(status) in ISSUER_FAILURES,
        rewrite_allowed_at=around.rewrite_allowed_at,
        issuance_allowed_at=around.issuance_allowed_at,
        ca_retry_after=parse_timestamp((status.get("acme") or {}).get("retryAfter")),
    )
    resolved = around.issuer if isinstance(around.issuer, Resolved) else None
    return Observation(
        spec=spec,
        certificate_name=key[1],
        secret=secret,
        now=now,
        renew_request=(body["metadata"].get("annotations") or {}).get(RENEW_REQUEST),
        owner_exists=around.owner_exists,
        issuer_ca=resolved.ca_certificate if resolved else None,
        issuer_root=resolved.authority.root if resolved and resolved.authority else None,
        issuer_sets_profile="acme" in (around.issuer_body.get("spec") or {}),
        keystore_password_version=password_secret.resource_version if password_secret else None,
        keystore_password=password,
        gates=gates,
        renewal_info=around.renewal_info or from_status(status.get("renewalInformation")),
    )


def _subject(key: Key, body: Mapping[str, Any]) -> ObjectRef:
    metadata = body["metadata"]
    return ObjectRef("Certificate", key[0], key[1], metadata.get("uid"), metadata.get("resourceVersion"))


def _merge_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch from `current` to `desired` (None values: absent), None to remove it all; equal
    to `current` when nothing changes, so that an unchanged status is not written."""
    wanted = {key: value for key, value in desired.items() if value is not None}
    if not wanted:
        return None
    return wanted | {key: None for key in current if key not in wanted}


def _renewal_info_shown(work: _Work, plan: Plan) -> bool:
    """Whether the status holds, once `plan` is carried out, the ARI outcome `work` was made with (or
    the renewal information of a newer certificate): the outcome is then of no more use in memory."""
    wanted = work.new_renewal_information
    if wanted is None:
        return False
    if plan.status is not None and "renewalInformation" in plan.status.status:
        return True
    return not status_differs(work.status.get("renewalInformation") or {}, wanted)


def _replaced_cert_id(decision: Decision) -> str | None:
    """The ARI certID of the certificate a renewal replaces (newOrder's `replaces`): the one in the
    Secret, when this issuer made it and it is being renewed, not when the issuer changed."""
    if decision.stored is None or decision.reason is Reason.ISSUER_CHANGED:
        return None
    return cert_id(decision.stored.issued.certificate)


def _refusal_reason(error: ApiAccessError) -> str:
    return "SecretAccessDenied" if error.status == HTTP_FORBIDDEN else "SecretWriteFailed"


def _name(key: Key) -> str:
    return f"{key[0]}/{key[1]}"


def _issuing_reason(status: Mapping[str, Any]) -> str | None:
    """The reason of the Issuing condition: why the last attempt failed or is held."""
    for item in status.get("conditions") or []:
        if item.get("type") == "Issuing":
            return str(item.get("reason"))
    return None


def _condition_changed(previous: list[Mapping[str, Any]], kind: str, now: tuple[bool, str, str]) -> bool:
    before = next((item for item in previous if item.get("type") == kind), {})
    return (before.get("status"), before.get("reason"), before.get("message")) != (
        str(now[0]),
        now[1],
        now[2],
    )
