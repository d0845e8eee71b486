"""Reconciling an Issuer or ClusterIssuer: can it sign, and if that changed, who depends on it."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from certsmith.api import CERTIFICATE_REQUESTS, CERTIFICATES, CLUSTER_ISSUERS, SpecError
from certsmith.api.acme import ACMEIssuerSpec
from certsmith.api.certificate_request import is_finished
from certsmith.api.issuer import CAIssuerSpec, IssuerSpec, IssuerType, issuer_type, parse_issuer_spec
from certsmith.api.references import IssuerKind
from certsmith.api.status import condition, status_differs
from certsmith.engine.lanes import Lanes
from certsmith.engine.steps import RegisterStep
from certsmith.issuers import IssuerNotReadyError
from certsmith.issuers.acme.dns_persist01 import issuer_status
from certsmith.issuers.resolver import REGISTERING, AccountNotRegisteredError, IssuerResolver, Resolved
from certsmith.kube.port import EventRecord, KubePort, NamespaceNotFoundError, ObjectRef, SecretConflictError
from certsmith.pki.keys import KeyAlgorithm, KeyEncoding, KeySpec, encode_private_key, generate_private_key
from certsmith.pki.signing import authority_weaknesses
from certsmith.reconcile.plan import Outcome, Plan, StatusWrite, Written, apply_plan
from certsmith.reconcile.store import IssuerState, Store, WorkItem
from certsmith.tls_secret import SecretContents

logger = logging.getLogger("certsmith")

ACCOUNT_KEY_LABEL = "certsmith.dev/acme-account-key"


class IssuerReconciler:
    def __init__(
        self,
        store: Store,
        port: KubePort,
        resolver: IssuerResolver,
        clock: Callable[[], datetime.datetime],
        lanes: Lanes,
    ) -> None:
        self._lanes = lanes
        self._store = store
        self._port = port
        self._resolver = resolver
        self._clock = clock

    def reconcile(self, item: WorkItem) -> Outcome:
        body = self._store.objects(item.plural).get(item.key)
        if body is None:
            self._lanes.close((item.plural, item.key))
            return Outcome(follow_up=self.dependents(item), written=Written(issuer_states=((item, None),)))
        kind = "ClusterIssuer" if item.plural == CLUSTER_ISSUERS else "Issuer"
        now = self._clock()
        type_name: str | None = None
        expires: datetime.datetime | None = None
        ca_serial: int | None = None
        warnings: list[str] = []
        acme: dict[str, Any] | None = None
        register, retry_at = None, None
        try:
            spec = parse_issuer_spec(body.get("spec") or {})
            type_name = issuer_type(spec).value
            if isinstance(spec, ACMEIssuerSpec):
                self._ensure_account_key(spec, item)
            resolved = self._resolver.resolve_spec(spec, (item.plural, item.key), now)
        except SpecError as error:
            ready, reason, message = False, "InvalidSpec", str(error)
        except AccountNotRegisteredError as error:
            ready, reason, message = False, error.reason, str(error)
            register, retry_at = self._registration(item, error, now)
        except IssuerNotReadyError as error:
            ready, reason, message = False, error.reason, str(error)
        else:
            ready, reason, message = True, _ready_reason(spec), _ready_message(spec)
            acme = _acme_status(spec, resolved)
            if resolved.authority is not None:
                expires = resolved.authority.certificate.not_valid_after_utc
                ca_serial = resolved.authority.certificate.serial_number
                warnings = authority_weaknesses(resolved.authority)
                if warnings:
                    message += f"; warning: {'; '.join(warnings)}"
        status = _status(body, type_name, (ready, reason, message), acme, now)
        plan = Plan(recheck_at=retry_at or expires, step=register)
        if status_differs(body.get("status") or {}, status):
            problem = not (ready or reason == REGISTERING)
            subject = _subject(kind, body["metadata"])
            plan = replace(
                plan,
                status=StatusWrite(item.plural, item.key, status),
                events=(EventRecord(subject, True, reason if problem else "WeakKeyPair", message),)
                if warnings or problem
                else (),
                log=f"{kind} {item}: Ready={ready} reason={reason}: {message}",
                log_warning=problem,
            )
        written = apply_plan(self._port, plan, self._lanes)
        before = self._store.issuer_states.get(item)
        # Ready since it was found ready: every failure a Certificate observed before then is released
        # from its back-off.
        since = (before.ready_since if before and before.ready_since else self._clock()) if ready else None
        state = IssuerState(since, ca_serial, expires)
        follow_up: tuple[WorkItem, ...] = ()
        if before is None or (before.ready_since is None) != (since is None) or before.ca_serial != ca_serial:
            follow_up = self.dependents(item)
        return Outcome(plan.recheck_at, follow_up, written + Written(issuer_states=((item, state),)))

    def _registration(
        self, item: WorkItem, error: AccountNotRegisteredError, now: datetime.datetime
    ) -> tuple[RegisterStep | None, datetime.datetime | None]:
        """The registration (the issuer's one probe of its CA) to start now, or when to look again;
        neither while one runs (its end queues the issuer)."""
        if self._lanes.busy(item):
            return None, None
        if error.retry_at is not None and error.retry_at > now:
            return None, error.retry_at
        registration = error.registration
        return RegisterStep((item.plural, item.key), registration.spec.server, item, registration), None

    def _ensure_account_key(self, spec: ACMEIssuerSpec, item: WorkItem) -> None:
        """Generate the ACME account key into its Secret when that Secret does not exist. An existing
        Secret is never written (a missing key in it is reported instead)."""
        namespace, name = self._resolver.issuer_secret(spec.private_key.name, (item.plural, item.key))
        if self._resolver.referenced_secret((namespace, name)) is not None:
            return
        key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
        contents = SecretContents(
            labels={ACCOUNT_KEY_LABEL: "true"},
            data={spec.private_key.key: encode_private_key(key, KeyEncoding.PKCS8)},
            type="Opaque",
        )
        try:
            self._port.write_secret(namespace, name, contents, None, None)
        except SecretConflictError:
            return
        except NamespaceNotFoundError as error:
            raise IssuerNotReadyError("NamespaceNotFound", f"ACME account key: {error}") from None
        logger.info("generated the ACME account key of %s into Secret %s/%s", item, namespace, name)

    def dependents(self, issuer: WorkItem) -> tuple[WorkItem, ...]:
        """The Certificates that name `issuer`, and the CertificateRequests not yet signed or failed."""
        kind = IssuerKind.CLUSTER_ISSUER if issuer.plural == CLUSTER_ISSUERS else IssuerKind.ISSUER
        namespace, name = issuer.key
        requests = [
            (key, body)
            for key, body in self._store.certificate_requests.referring(name)
            if not is_finished(body.get("status") or {})
        ]
        return tuple(
            WorkItem(plural, key)
            for plural, objects in (
                (CERTIFICATES, self._store.certificates.referring(name)),
                (CERTIFICATE_REQUESTS, requests),
            )
            for key, body in objects
            if _references(body, kind, name) and (kind is IssuerKind.CLUSTER_ISSUER or key[0] == namespace)
        )


def _status(
    body: Mapping[str, Any],
    type_name: str | None,
    ready: tuple[bool, str, str],
    acme: dict[str, Any] | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    """`acme`: what an ACME issuer shows of its account (see `_acme_status`)."""
    metadata = body["metadata"]
    previous = (body.get("status") or {}).get("conditions") or []
    status: dict[str, Any] = {
        "type": type_name,
        "conditions": [condition("Ready", *ready, metadata.get("generation"), previous, now)],
        "observedGeneration": metadata.get("generation"),
    }
    if type_name == IssuerType.ACME.value:
        status["acme"] = acme
    return status


def _acme_status(spec: IssuerSpec, resolved: Resolved) -> dict[str, Any] | None:
    """The ACME account's URI, the profiles its CA offers, and the TXT record of dns-persist-01 when
    a solver uses it; None before the account is registered."""
    if not isinstance(spec, ACMEIssuerSpec) or not resolved.account_uri:
        return None
    acme: dict[str, Any] = {"uri": resolved.account_uri}
    if resolved.profiles:
        acme["profiles"] = [
            {"name": name, "description": description} if description else {"name": name}
            for name, description in resolved.profiles
        ]
    persistent = issuer_status(resolved.caa_identities, resolved.account_uri)
    if persistent is not None and any(solver.dns_persist01 for solver in spec.solvers):
        acme["dnsPersist01"] = persistent
    return acme


def _subject(kind: str, metadata: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef(
        kind,
        metadata.get("namespace"),
        metadata["name"],
        metadata.get("uid"),
        metadata.get("resourceVersion"),
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
        profile = f", ordering profile {spec.profile}" if spec.profile else ""
        return f"ACME account at {spec.server}{profile}"
    return "signing each certificate with its own key"
