"""Answer a PodCertificateRequest for one of certsmith's signer names, once: Issued, Denied or Failed.

The issuer's policy is the one CertificateRequests follow (`issuance_refusal`); only CA issuers sign
pod certificates, in the reconcile (signing only computes). A request waits, unanswered, while its
issuer does not exist or is not ready; every answer is one status write and one Event, and final.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from certsmith.api import SpecError
from certsmith.api.issuer import issuance_refusal
from certsmith.api.pod_certificate_request import (
    DENIED,
    FAILED,
    INVALID_USER_ANNOTATIONS,
    ISSUED,
    POD_CERTIFICATE_REQUESTS,
    POD_CERTIFICATES_GROUP,
    POD_CERTIFICATES_VERSION,
    UNSUPPORTED_KEY_TYPE,
    SignerRefusal,
    answer,
    is_answered,
    issued_status,
    parse_pod_certificate_request_spec,
    signer_issuer,
)
from certsmith.api.references import IssuerRef
from certsmith.issuers import IssuerNotReadyError
from certsmith.issuers.resolver import IssuerResolver, issuer_id
from certsmith.kube.port import ApiAccessError, EventRecord, Key, KubePort, ObjectRef
from certsmith.metrics.issuance import IssuanceMetrics
from certsmith.pki import PKIError
from certsmith.pki.encodings import certificates_pem
from certsmith.pki.pod_certificates import (
    BadStubError,
    UnsupportedKeyError,
    pod_template,
    pod_validity,
    spiffe_id,
    stub_public_key,
)
from certsmith.pki.signing import sign_with_authority
from certsmith.reconcile.plan import Outcome, Plan, StatusWrite, apply_plan
from certsmith.reconcile.store import Store

logger = logging.getLogger("certsmith")

RETRY = datetime.timedelta(seconds=30)
"""When a request waiting for its issuer is looked at again."""
_NO_BACKDATE = datetime.timedelta(0)


@dataclass(frozen=True)
class _Answer:
    status: dict[str, Any]
    issuer: IssuerRef | None


class PodCertificateRequestReconciler:
    def __init__(
        self,
        store: Store,
        port: KubePort,
        resolver: IssuerResolver,
        trust_domain: str,
        clock: Callable[[], datetime.datetime],
        metrics: IssuanceMetrics,
    ) -> None:
        self._store = store
        self._port = port
        self._resolver = resolver
        self._trust_domain = trust_domain
        self._clock = clock
        self._metrics = metrics

    def reconcile(self, key: Key) -> Outcome:
        body = self._store.pod_certificate_requests.get(key)
        if body is None or is_answered(body.get("status") or {}):
            return Outcome()
        spec = body.get("spec") or {}
        target = signer_issuer(str(spec.get("signerName") or ""), key[0])
        if target is None:
            return Outcome()
        now = self._clock()
        decided = self._answer(key, spec, target, now)
        if isinstance(decided, str):
            logger.debug("pod certificate request %s/%s: waiting: %s", *key, decided)
            return Outcome(now + RETRY)
        try:
            written = apply_plan(self._port, self._plan(key, body, decided))
        except ApiAccessError as error:
            logger.warning("pod certificate request %s/%s: status not written: %s", *key, error)
            return Outcome(now + RETRY)
        condition = decided.status["conditions"][0]
        kind = decided.issuer.kind.value if decided.issuer else "none"
        self._metrics.pod_certificate(kind, condition["type"])
        return Outcome(written=written)

    def _answer(
        self, key: Key, spec: Mapping[str, Any], target: IssuerRef | SignerRefusal, now: datetime.datetime
    ) -> _Answer | str:
        """The final status, or why the request waits."""
        if isinstance(target, SignerRefusal):
            return _Answer(answer(DENIED, target.reason, target.message, now), None)
        try:
            return self._issue(key[0], spec, target, now)
        except _FinalError as final:
            return _Answer(answer(final.kind, final.reason, str(final), now), target)

    def _issue(
        self, namespace: str, spec: Mapping[str, Any], target: IssuerRef, now: datetime.datetime
    ) -> _Answer | str:
        """Issued, or why the request waits; _FinalError when it is Denied or Failed."""
        try:
            request = parse_pod_certificate_request_spec(spec)
        except SpecError as error:
            raise _FinalError(FAILED, "InvalidRequest", str(error)) from None
        if request.user_annotations:
            raise _FinalError(
                DENIED,
                INVALID_USER_ANNOTATIONS,
                f"certsmith knows no userAnnotations of podCertificate volumes, and got "
                f"{', '.join(request.user_annotations)}: remove them from the pod's volume",
            )
        plural, issuer_key = issuer_id(target, namespace)
        issuer = self._store.objects(plural).get(issuer_key)
        if issuer is None:
            return f"{target} does not exist"
        _check_policy(target, issuer.get("spec") or {}, namespace)
        try:
            public_key = stub_public_key(request.stub)
        except UnsupportedKeyError as error:
            raise _FinalError(DENIED, UNSUPPORTED_KEY_TYPE, str(error)) from None
        except BadStubError as error:
            raise _FinalError(FAILED, "BadStubRequest", str(error)) from None
        try:
            authority = self._resolver.resolve(target, namespace, now).authority
        except IssuerNotReadyError as error:
            return str(error)
        if authority is None:
            return f"{target} has no CA key pair loaded"
        try:
            validity = pod_validity(
                now, request.max_expiration_seconds, authority.certificate.not_valid_after_utc
            )
        except PKIError as error:
            raise _FinalError(FAILED, "CAExpiresSoon", str(error)) from None
        identity = spiffe_id(self._trust_domain, namespace, request.service_account_name)
        issued = sign_with_authority(
            pod_template(identity, validity.lifetime),
            public_key,
            authority,
            validity.not_before,
            _NO_BACKDATE,
        )
        chain = certificates_pem((issued.certificate, *issued.intermediates)).decode()
        message = f"signed by {target} for {identity}"
        status = issued_status(
            chain, validity.not_before, validity.begin_refresh_at, validity.not_after, message, now
        )
        return _Answer(status, target)

    def _plan(self, key: Key, body: Mapping[str, Any], decided: _Answer) -> Plan:
        condition = decided.status["conditions"][0]
        metadata = body["metadata"]
        subject = ObjectRef(
            "PodCertificateRequest",
            key[0],
            key[1],
            metadata.get("uid"),
            metadata.get("resourceVersion"),
            api_version=f"{POD_CERTIFICATES_GROUP}/{POD_CERTIFICATES_VERSION}",
        )
        failed = condition["type"] != ISSUED
        return Plan(
            status=StatusWrite(POD_CERTIFICATE_REQUESTS, key, decided.status),
            events=(EventRecord(subject, failed, condition["reason"], condition["message"]),),
            log=f"pod certificate request {key[0]}/{key[1]}: {condition['type']}: {condition['message']}",
            log_warning=failed,
        )


class _FinalError(Exception):
    """The request is answered Denied or Failed (`kind`) with `reason` and the message."""

    def __init__(self, kind: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.reason = reason


def _check_policy(target: IssuerRef, issuer_spec: Mapping[str, Any], namespace: str) -> None:
    """Deny what the issuer's policy refuses (as for CertificateRequests), and non-CA issuers."""
    refusal = issuance_refusal(target, issuer_spec, namespace, is_ca=False)
    if refusal is not None:
        raise _FinalError(DENIED, refusal.reason, refusal.message)
    if issuer_spec.get("ca") is None:
        raise _FinalError(
            DENIED,
            "UnsupportedIssuer",
            f"{target} is not a CA issuer; only CA issuers sign pod certificates: name a CA Issuer "
            f"or ClusterIssuer in the signer name",
        )
