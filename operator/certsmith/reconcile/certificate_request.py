"""Sign a CertificateRequest once: when it is valid and approved, with the issuer it names.

One status write per outcome, none when nothing changed. Terminal outcomes (signed, denied, invalid,
refused by the issuer) are final: the request is never acted on again. Approved and Denied are kept
as they are in every write (the approval policy refuses a write that would change them).
"""

from __future__ import annotations

import base64
import datetime
import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from certsmith.api import CERTIFICATE_REQUESTS, SpecError
from certsmith.api.certificate_request import (
    APPROVED,
    DENIED,
    PRIVATE_KEY_SECRET_ANNOTATION,
    TERMINAL_REASONS,
    CertificateRequestSpec,
    Decision,
    decision_of,
    is_finished,
    parse_certificate_request_spec,
)
from certsmith.api.issuer import IssuanceRefusal, issuance_refusal
from certsmith.api.references import IssuerRef
from certsmith.api.status import condition, status_differs, timestamp
from certsmith.engine.lanes import Lanes
from certsmith.engine.steps import SignStep, Step
from certsmith.issuers import IssuerId, IssuerNotReadyError, Pending, SigningFailedError, SigningRequest
from certsmith.issuers.resolver import IssuerResolver, Resolved, issuer_id
from certsmith.kube.port import ApiAccessError, EventRecord, Key, KubePort, ObjectRef
from certsmith.pki import PKIError
from certsmith.pki.csr import RequestRefusedError, load_csr, request_template
from certsmith.pki.encodings import certificates_pem
from certsmith.pki.keys import PrivateKey, load_private_key, same_public_key
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import IssuedCertificate
from certsmith.reconcile.plan import Outcome, Plan, StatusWrite, apply_plan
from certsmith.reconcile.store import Store, WorkItem
from certsmith.tls_secret import TLS_KEY

logger = logging.getLogger("certsmith")

RETRY = datetime.timedelta(seconds=30)
"""When a request waiting for its issuer or its private-key Secret is looked at again (events about
the issuer or the Secret bring it back sooner)."""


@dataclass(frozen=True)
class _Result:
    """What to say about the request: the reason and message of its Ready condition (True only when
    Issued; a terminal reason is a failure for good, said as a Warning), and the rest of the status."""

    reason: str
    message: str
    issued: IssuedCertificate | None = None
    order: Mapping[str, Any] | None = None
    """An ACME order to keep in status.acme (None: none, or the finished one is dropped)."""
    recheck_at: datetime.datetime | None = None
    step: Step | None = None
    """The signing step to start in the issuer's lane."""
    settles: Hashable | None = None
    """The owner of the step result this result was made from."""

    @property
    def failed(self) -> bool:
        return self.reason in TERMINAL_REASONS


class CertificateRequestReconciler:
    def __init__(
        self,
        store: Store,
        port: KubePort,
        resolver: IssuerResolver,
        auto_approve: bool,
        clock: Callable[[], datetime.datetime],
        lanes: Lanes,
    ) -> None:
        self._lanes = lanes
        self._store = store
        self._port = port
        self._resolver = resolver
        self._auto_approve = auto_approve
        self._clock = clock

    def reconcile(self, key: Key) -> Outcome:
        body = self._store.certificate_requests.get(key)
        if body is None or is_finished(body.get("status") or {}):
            return Outcome()
        now = self._clock()
        decision = decision_of(body.get("status") or {})
        checked = _checked(body) if decision is not Decision.DENIED else None
        missing, refusal = self._policy(key, checked)
        deny = refusal if decision is Decision.UNDECIDED else None
        approving = decision is Decision.UNDECIDED and self._auto_approve
        approve = approving and missing is None and refusal is None
        if refusal is not None:
            result = _Result("Denied" if deny else "Failed", str(refusal))
        elif approving and missing is not None:
            result = _Result(
                "Pending",
                f"waiting for the issuer: {missing} does not exist; certsmith approves a request once it "
                f"can read its issuer's issuancePolicy",
                recheck_at=now + RETRY,
            )
        else:
            result = self._result(key, body, checked, decision if not approve else Decision.APPROVED, now)
        plan = self._plan(key, body, result, approve, now, deny)
        try:
            written = apply_plan(self._port, plan, self._lanes)
        except ApiAccessError as error:
            logger.warning("certificate request %s/%s: status not written: %s", *key, error)
            return Outcome(now + RETRY)
        return Outcome(result.recheck_at, written=written)

    def _result(
        self,
        key: Key,
        body: Mapping[str, Any],
        checked: _Checked | None,
        decision: Decision,
        now: datetime.datetime,
    ) -> _Result:
        """`checked` is `_checked(body)`, None for a denied request (it is not looked at)."""
        if checked is None:
            return _Result("Denied", "the request was denied; it will not be signed")
        if isinstance(checked, _Result):
            return checked
        if decision is not Decision.APPROVED:
            namespace, name = key
            return _Result(
                "Pending",
                f"waiting for approval: `certsmith approve {name} -n {namespace}` (needs the verb approve on "
                f"signers.certsmith.dev), or `certsmith deny`",
            )
        return self._signed(key, body, *checked, now)

    def _signed(
        self,
        key: Key,
        body: Mapping[str, Any],
        spec: CertificateRequestSpec,
        csr: x509.CertificateSigningRequest,
        template: CertificateTemplate,
        now: datetime.datetime,
    ) -> _Result:
        try:
            resolved = self._resolver.resolve(spec.issuer_ref, key[0], now)
        except IssuerNotReadyError as error:
            return _Result("Pending", f"waiting for the issuer: {error}", recheck_at=now + RETRY)
        request = SigningRequest(
            template=template,
            key=lambda: self._private_key(key, body, csr),
            now=now,
            certificate=key,
            uid=body["metadata"].get("uid"),
            order=((body.get("status") or {}).get("acme") or {}).get("order"),
            csr=csr,
            kind="CertificateRequest",
        )
        if resolved.lane is not None:
            return self._in_lane(key, body, spec, resolved, resolved.lane, request)
        return self._sign_here(spec, resolved, request)

    def _sign_here(
        self, spec: CertificateRequestSpec, resolved: Resolved, request: SigningRequest
    ) -> _Result:
        """Signing that only computes (self-signed, CA), in this reconcile."""
        try:
            signed = resolved.signer.sign(request)
        except _KeyNotAvailableError as error:
            return _Result("Pending", str(error), recheck_at=request.now + RETRY)
        except SigningFailedError as error:
            return _Result("Failed", f"{error.reason}: {error}", order=error.order)
        except (PKIError, IssuerNotReadyError) as error:
            reason = getattr(error, "reason", "InvalidRequest")
            return _Result("Failed", f"{reason}: {error}")
        if isinstance(signed, Pending):
            return _Result("Pending", signed.message, order=signed.order, recheck_at=signed.until)
        return _Result("Issued", f"signed by {spec.issuer_ref}", issued=signed)

    def _in_lane(
        self,
        key: Key,
        body: Mapping[str, Any],
        spec: CertificateRequestSpec,
        resolved: Resolved,
        lane: IssuerId,
        request: SigningRequest,
    ) -> _Result:
        """Signing by a CA, in the issuer's lane `lane`: start it, wait for it, or say what it answered."""
        owner = WorkItem(CERTIFICATE_REQUESTS, key)
        found = self._lanes.signed(owner)
        basis = body["metadata"].get("generation")
        if found is None or not found.usable(basis, self._clock()):
            step = None
            if not self._lanes.busy(owner):
                step = SignStep(lane, resolved.address, owner, resolved.signer, request, basis)
            message = f"waiting for the CA at {resolved.address}"
            return _Result("Pending", message, order=request.order, step=step, settles=found and owner)
        result = found.result
        if isinstance(result, SigningFailedError):
            return _Result("Failed", f"{result.reason}: {result}", order=result.order, settles=owner)
        if isinstance(result, Pending):
            until = result.until
            return _Result("Pending", result.message, order=result.order, recheck_at=until, settles=owner)
        return _Result("Issued", f"signed by {spec.issuer_ref}", issued=result, settles=owner)

    def _private_key(
        self, key: Key, body: Mapping[str, Any], csr: x509.CertificateSigningRequest
    ) -> PrivateKey:
        """The CSR's private key, for self-signing: from the Secret the annotation names."""
        secret_name = (body["metadata"].get("annotations") or {}).get(PRIVATE_KEY_SECRET_ANNOTATION)
        if not secret_name:
            raise RequestRefusedError(
                "PrivateKeyNotGiven",
                f"a SelfSigned issuer signs with the request's own private key: put it in a Secret (key "
                f"{TLS_KEY}) and name that Secret in the annotation {PRIVATE_KEY_SECRET_ANNOTATION}",
            )
        observed = self._resolver.referenced_secret((key[0], secret_name))
        pem = observed.contents.data.get(TLS_KEY) if observed else None
        if pem is None:
            raise _KeyNotAvailableError(
                f"waiting for Secret {key[0]}/{secret_name} with the request's private key in {TLS_KEY}"
            )
        private_key = load_private_key(pem)
        if not same_public_key(private_key, csr.public_key()):  # type: ignore[arg-type]
            raise RequestRefusedError(
                "PrivateKeyMismatch",
                f"the key in Secret {key[0]}/{secret_name} is not the CSR's key",
            )
        return private_key

    def _policy(self, key: Key, checked: _Checked | None) -> tuple[IssuerRef | None, IssuanceRefusal | None]:
        """The issuer the request names if it does not exist (its policy cannot be read yet), and
        whether its policy refuses the request. An invalid or denied request is neither: it is said so."""
        if checked is None or isinstance(checked, _Result):
            return None, None
        spec, _, template = checked
        plural, issuer_key = issuer_id(spec.issuer_ref, key[0])
        issuer = self._store.objects(plural).get(issuer_key)
        if issuer is None:
            return spec.issuer_ref, None
        return None, issuance_refusal(spec.issuer_ref, issuer.get("spec") or {}, key[0], template.is_ca)

    def _plan(
        self,
        key: Key,
        body: Mapping[str, Any],
        result: _Result,
        approve: bool,
        now: datetime.datetime,
        deny: IssuanceRefusal | None = None,
    ) -> Plan:
        current = body.get("status") or {}
        previous = current.get("conditions") or []
        kept = [item for item in previous if item.get("type") in (APPROVED, DENIED)]
        if approve:
            kept.append(
                condition(APPROVED, True, "AutoApproved", "approved by certsmith", None, previous, now)
            )
        if deny is not None:
            kept.append(condition(DENIED, True, deny.reason, deny.message, None, previous, now))
        conditions = [
            *kept,
            condition("Ready", result.issued is not None, result.reason, result.message, None, previous, now),
        ]
        if result.reason == "InvalidRequest":
            conditions.append(
                condition("InvalidRequest", True, "InvalidRequest", result.message, None, previous, now)
            )
        status: dict[str, Any] = {"conditions": conditions}
        if result.issued is not None:
            chain = (result.issued.certificate, *result.issued.intermediates)
            status["certificate"] = base64.b64encode(certificates_pem(chain)).decode()
            if result.issued.root is not None:
                status["ca"] = base64.b64encode(certificates_pem([result.issued.root])).decode()
        elif result.failed:
            status["failureTime"] = timestamp(now)
        if result.order is not None or current.get("acme"):
            status["acme"] = {"order": result.order} if result.order is not None else None
        if not status_differs(current, status):
            return Plan(step=result.step, settles=result.settles)
        metadata = body["metadata"]
        subject = ObjectRef(
            "CertificateRequest", key[0], key[1], metadata.get("uid"), metadata.get("resourceVersion")
        )
        events = [EventRecord(subject, False, "Approved", "approved by certsmith")] if approve else []
        previous_ready: Mapping[str, Any] = next(
            (item for item in previous if item.get("type") == "Ready"), {}
        )
        if (previous_ready.get("reason"), previous_ready.get("message")) != (result.reason, result.message):
            events.append(EventRecord(subject, result.failed, result.reason, result.message))
        return Plan(
            status=StatusWrite(CERTIFICATE_REQUESTS, key, status),
            events=tuple(events),
            log=f"certificate request {key[0]}/{key[1]}: {result.reason}: {result.message}",
            log_warning=result.failed,
            step=result.step,
            settles=result.settles,
        )


_Checked = tuple[CertificateRequestSpec, x509.CertificateSigningRequest, CertificateTemplate] | _Result


def _checked(body: Mapping[str, Any]) -> _Checked:
    """The spec, the CSR and what the certificate would say, or why the request cannot be signed."""
    try:
        spec = parse_certificate_request_spec(body.get("spec") or {})
        csr = load_csr(spec.request)
        template = request_template(csr, is_ca=spec.is_ca, usages=spec.usages, duration=spec.duration)
    except (SpecError, RequestRefusedError) as error:
        reason = error.reason if isinstance(error, RequestRefusedError) else "InvalidSpec"
        return _Result("InvalidRequest", f"{reason}: {error}")
    return spec, csr, template


class _KeyNotAvailableError(RuntimeError):
    """The Secret holding the request's private key does not exist (yet)."""
