"""The ACME signer: runs `orders.next_step` against the CA until the order needs time or is done.

It talks to the CA and the DNS server, so it never runs in a reconcile: the I/O layer
(`certsmith.engine`) runs it in the issuer's own lane, and its answer (a certificate, a `Pending`
order with the time to look again, or a failure) comes back to the next reconcile. One call does as
many steps as it can without waiting (create the order, present every challenge, poll once,
finalize, download); a TXT record not visible yet, like an order the CA is still processing, is a
`Pending` to come back to, never a wait in the call. Between calls the order lives in the
Certificate's status.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from josepy import b64

from certsmith.api.acme import ACMEIssuerSpec, Solver, is_ip_address, solver_for
from certsmith.budget import RewriteBudget
from certsmith.issuers import Pending, SigningFailedError, SigningRequest
from certsmith.issuers.acme.accounts import AccountBook
from certsmith.issuers.acme.caa import (
    CAA_FORBIDDEN,
    CAALookupError,
    forbidden,
    relevant_records,
)
from certsmith.issuers.acme.client import (
    AcmeClient,
    AcmeError,
    OrderAnswer,
    OrderGoneError,
    RequestObserver,
)
from certsmith.issuers.acme.dns01 import DNSProvider, DNSProviderError, validation_name
from certsmith.issuers.acme.dns_persist01 import (
    RECORD_MISSING,
    RecordLookupError,
    authorizes,
    record_name,
    record_value,
    txt_values,
)
from certsmith.issuers.acme.http01 import HTTP01Responder
from certsmith.issuers.acme.lookups import LOOKUP_TIMEOUT
from certsmith.issuers.acme.orders import (
    Answer,
    Authorization,
    Download,
    Finalize,
    NewOrder,
    Order,
    Present,
    Refresh,
    Status,
    Step,
    Wait,
    abandoned,
    answered,
    failure,
    finalized,
    fold_order,
    next_step,
    order_from_status,
    order_status,
    presented,
)
from certsmith.issuers.health import IssuerHealth
from certsmith.kube.port import ApiAccessError, ObjectRef
from certsmith.kube.routes import ChallengeRoutes, IngressOptions
from certsmith.pki import PKIError
from certsmith.pki.inspection import is_self_signed, load_certificates
from certsmith.pki.request import build_csr
from certsmith.pki.signing import IssuedCertificate

logger = logging.getLogger("certsmith")

DNS_UPDATE_FAILED = "DNSUpdateFailed"
CHALLENGE_ROUTE_REFUSED = "ChallengeRouteRefused"
UNSUPPORTED_IDENTIFIERS = "UnsupportedIdentifiers"
NOT_ABOUT_THE_CA = frozenset(
    {DNS_UPDATE_FAILED, CHALLENGE_ROUTE_REFUSED, UNSUPPORTED_IDENTIFIERS, CAA_FORBIDDEN, RECORD_MISSING}
)
"""Failure reasons that say nothing about whether the CA answers (the issuer's health ignores them)."""

REPLACES_REFUSED = frozenset({"AlreadyReplaced", "Unauthorized", "Malformed", "ServerInternal"})
"""Reasons of a newOrder refused for its `replaces` (see `AcmeSigner._create_order`)."""

_STEPS_PER_CALL = 12
_DNS_RECHECK = datetime.timedelta(seconds=2)
"""How soon a TXT record the nameserver does not answer yet is looked for again."""
_DNS_VISIBLE_WITHIN = datetime.timedelta(minutes=2)
"""How long after the order was made the nameserver may take to answer its TXT records; then the
attempt fails (and backs off) instead of waiting on."""
_ORDER_WINDOW = datetime.timedelta(hours=1)
_CAA_PAUSE = datetime.timedelta(minutes=5)

DNSProviders = Callable[[Solver], DNSProvider]
"""A solver's DNS provider, with its credentials; raises DNSProviderError when it cannot be made."""


@dataclass
class AcmeContext:
    """What all ACME issuers of one operator process share."""

    http01: HTTP01Responder
    orders_per_hour: int
    timeout: int
    """Seconds each request to a CA may wait for its answer (`--acme-timeout`)."""
    routes: ChallengeRoutes | None = None
    """Where HTTP-01 challenges get an Ingress (in a cluster); None where the CA reaches the solver
    port directly."""
    observe: RequestObserver = field(default=lambda action, status, seconds: None)
    """Told of every request to a CA (the metrics)."""
    clock: Callable[[], datetime.datetime] = field(default=lambda: datetime.datetime.now(datetime.UTC))
    dns01_nameservers: tuple[str, ...] = ()
    """Where CNAMEs are looked up for DNS-01 solvers that follow them, and the CAA and dns-persist-01
    records checked before ordering; () for the system's resolver."""

    caa_skipped_until: datetime.datetime | None = None
    """After a CAA lookup failed (a resolver that does not answer), the check is left to the CAs until
    then: one lookup timeout per `_CAA_PAUSE`, not one per order."""

    def __post_init__(self) -> None:
        self.orders: RewriteBudget[tuple[str, str]] = RewriteBudget(self.orders_per_hour, _ORDER_WINDOW)
        self.lock = threading.Lock()
        self.accounts = AccountBook(self.observe, self.clock, self.timeout)
        self.health = IssuerHealth(self.clock)


class AcmeSigner:
    def __init__(
        self, client: AcmeClient, spec: ACMEIssuerSpec, context: AcmeContext, dns_providers: DNSProviders
    ) -> None:
        self._client = client
        self._spec = spec
        self._context = context
        self._dns_providers = dns_providers

    def sign(self, request: SigningRequest) -> IssuedCertificate | Pending:
        run = _Run(self._identifiers(request), order_from_status(request.order))
        for _ in range(_STEPS_PER_CALL):
            now = datetime.datetime.now(datetime.UTC)
            try:
                key_held = request.key_held or request.csr is not None or run.finalized
                step = next_step(run.order, run.names, now, key_held)
                done = self._take(step, run, request, now)
            except (AcmeError, DNSProviderError, PKIError, ApiAccessError) as error:
                kept = order_status(run.order) if run.order else None
                retry_after = error.retry_after if isinstance(error, AcmeError) else None
                raise SigningFailedError(_reason(error), str(error), kept, retry_after) from None
            if done is not None:
                return done
            problem = failure(run.order, now) if run.order is not None else None
            if problem is not None and run.order is not None:
                self._cleanup(run.order, request)
                raise SigningFailedError(*problem, order_status(abandoned(run.order, problem[1])))
        order = run.require()
        soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)
        message = f"order {order.url} is {order.status}"
        return Pending(order_status(order), soon, message, run.new_order, finalized(order))

    def _take(
        self, step: Step, run: _Run, request: SigningRequest, now: datetime.datetime
    ) -> IssuedCertificate | Pending | None:
        """Do one step; the certificate or a reason to wait, else None (the next step follows)."""
        match step:
            case NewOrder(why=why):
                return self._new_order(run, request, why, now)
            case Present(authorization=authorization):
                self._present(authorization, request)
                run.order = presented(run.require(), authorization)
            case Answer(authorizations=authorizations):
                hidden = self._not_visible(authorizations, request)
                if hidden is not None and now - run.require().created_at > _DNS_VISIBLE_WITHIN:
                    raise DNSProviderError(
                        f"{hidden} took the TXT records of the DNS-01 challenges but has not answered them "
                        f"within {_DNS_VISIBLE_WITHIN.total_seconds():.0f}s of the order; check that it "
                        f"serves the zone it was updated in"
                    )
                if hidden is not None:
                    message = f"waiting for {hidden} to answer the TXT record of the DNS-01 challenge"
                    return Pending(order_status(run.require()), now + _DNS_RECHECK, message, run.new_order)
                for authorization in authorizations:
                    challenge_url = authorization.challenge.url if authorization.challenge else ""
                    run.order = answered(run.require(), authorization, self._client.answer(challenge_url))
            case Refresh():
                self._refresh(run, request, now)
            case Finalize():
                order = run.require()
                csr = request.csr or build_csr(request.template, request.key())
                answer = self._client.finalize(order.url, order.finalize_url, csr)
                run.finalized = True
                run.order = fold_order(
                    order.url, answer.body, {}, order, self._chooser(request), now, answer.retry_after
                )
            case Download():
                order = run.require()
                chains = self._client.download(order.certificate_url or "")
                self._cleanup(order, request)
                return _issued(chains, self._spec.preferred_chain)
            case Wait(until=until, message=message):
                order = run.require()
                return Pending(order_status(order), until, message, run.new_order, finalized(order))
        return None

    def _new_order(
        self, run: _Run, request: SigningRequest, why: str, now: datetime.datetime
    ) -> Pending | None:
        if run.order is not None:
            self._cleanup(run.order, request)
        held = self._held(request.certificate, now, run.order)
        if held is not None:
            return held
        self._check_caa(run.names)
        self._check_persistent_records(run.names, request)
        answer = self._create_order(run.names, request)
        with self._context.lock:
            self._context.orders.spend(request.certificate, now)
        replaced = answer.body.get("replaces")
        why = f"{why}; it replaces certificate {replaced}" if replaced else why
        logger.info("certificate %s/%s: new ACME order %s (%s)", *request.certificate, answer.url, why)
        run.order = fold_order(
            answer.url, answer.body, answer.authorizations, None, self._chooser(request), now
        )
        run.new_order = True
        return None

    def _create_order(self, names: tuple[str, ...], request: SigningRequest) -> OrderAnswer:
        """newOrder, naming the certificate it renews (ARI's `replaces`) when there is one.

        A CA that refuses the claim gets the order once more without `replaces`: the renewal matters
        more than the claim. It may say the certificate was already replaced (`alreadyReplaced`: an
        earlier order claimed it), or refuse a certificate it does not link to this account (the
        account key was changed: `unauthorized`) or does not know (a CA that lost its state:
        `malformed`, `serverInternal`). A second refusal is the order's own failure.
        """
        profile = self._spec.profile
        if request.replaces is None:
            return self._client.new_order(names, profile)
        try:
            return self._client.new_order(names, profile, request.replaces)
        except AcmeError as error:
            if error.reason not in REPLACES_REFUSED:
                raise
            logger.warning(
                "certificate %s/%s: the CA refused an order replacing certificate %s (%s); "
                "ordering again without replaces",
                *request.certificate,
                request.replaces,
                error,
            )
        return self._client.new_order(names, profile)

    def _refresh(self, run: _Run, request: SigningRequest, now: datetime.datetime) -> None:
        order = run.require()
        unfinished = [a.url for a in order.authorizations if a.status == Status.PENDING]
        try:
            answer = self._client.fetch(order.url, unfinished)
        except OrderGoneError as gone:
            logger.warning("certificate %s/%s: %s", *request.certificate, gone)
            self._cleanup(order, request)
            run.order = None
            return
        run.order = fold_order(
            order.url,
            answer.body,
            answer.authorizations,
            order,
            self._chooser(request),
            now,
            answer.retry_after,
        )

    def _check_caa(self, names: tuple[str, ...]) -> None:
        """Refuse to order when the names' CAA records forbid the CA (the CAA pre-flight check). A
        lookup that fails is no refusal: the CA checks CAA itself, and says so if it must."""
        identities = self._spec.caa_identities or self._client.caa_identities()
        now = datetime.datetime.now(datetime.UTC)
        with self._context.lock:
            paused = self._context.caa_skipped_until is not None and now < self._context.caa_skipped_until
        if not identities or paused:
            return
        deadline = time.monotonic() + LOOKUP_TIMEOUT
        for name in (name for name in names if not is_ip_address(name)):
            try:
                relevant = relevant_records(name, self._context.dns01_nameservers, deadline)
            except CAALookupError as error:
                with self._context.lock:
                    self._context.caa_skipped_until = now + _CAA_PAUSE
                logger.warning(
                    "%s; ordering without the CAA pre-flight check for %.0f minutes",
                    error,
                    _CAA_PAUSE.total_seconds() / 60,
                )
                return
            reason = forbidden(name, relevant, identities)
            if reason is not None:
                raise SigningFailedError(CAA_FORBIDDEN, f"no order made: {reason}")

    def _check_persistent_records(self, names: tuple[str, ...], request: SigningRequest) -> None:
        """Refuse to order while a name proven by dns-persist-01 has no TXT record authorising the
        account: the CA would fail the challenge; the message gives the record to create."""
        persistent = [
            name
            for name in names
            if (solver := solver_for(self._spec.solvers, name, request.labels)) and solver.dns_persist01
        ]
        if not persistent:
            return
        account = self._client.account_uri or ""
        domains = self._spec.caa_identities or self._client.caa_identities()
        if not domains:
            raise SigningFailedError(
                RECORD_MISSING,
                f"the CA's directory names no issuer domain (meta.caaIdentities) for the dns-persist-01 "
                f"record of {persistent[0]}; set spec.acme.caaIdentities to the CA's domain",
            )
        deadline = time.monotonic() + LOOKUP_TIMEOUT
        for name in persistent:
            wildcard = name.startswith("*.")
            try:
                values = txt_values(record_name(name), self._context.dns01_nameservers, deadline)
            except RecordLookupError as error:
                raise SigningFailedError(RECORD_MISSING, f"no order made: {error}") from None
            if not any(authorizes(value, domains, account, wildcard) for value in values):
                wanted = record_value(domains[0], account, wildcard)
                raise SigningFailedError(
                    RECORD_MISSING,
                    f"no order made: {name} is proven by dns-persist-01, but {record_name(name)} has no TXT "
                    f'record authorising this account; create: {record_name(name)} TXT "{wanted}"',
                )

    def _held(
        self, certificate: tuple[str, str], now: datetime.datetime, order: Order | None
    ) -> Pending | None:
        with self._context.lock:
            allowed = self._context.orders.next_allowed(certificate, now)
        if allowed is None:
            return None
        message = (
            f"{self._context.orders_per_hour} ACME orders for this certificate in the last hour; "
            f"the next one no sooner than {allowed.isoformat(timespec='seconds')} (certsmith run "
            f"--acme-orders-per-hour)"
        )
        return Pending(order_status(order) if order else {}, allowed, message)

    def _chooser(self, request: SigningRequest) -> Callable[[str], str | None]:
        def choose(identifier: str) -> str | None:
            solver = solver_for(self._spec.solvers, identifier, request.labels)
            return solver.challenge_type if solver else None

        return choose

    def _present(self, authorization: Authorization, request: SigningRequest) -> None:
        challenge = authorization.challenge
        solver = self._solver(authorization, request)
        key_authorization = self._key_authorization(challenge.token) if challenge else ""
        if challenge is None or solver is None or solver.dns_persist01 is not None:
            return
        if solver.http01 is not None:
            self._context.http01.present(challenge.token, key_authorization)
            if self._context.routes is not None:
                http01 = solver.http01
                ingress = IngressOptions(http01.ingress_class_name, http01.ingress_class, http01.annotations)
                namespace = request.certificate[0]
                owner = ObjectRef(request.kind, namespace, request.certificate[1], request.uid)
                host = None if is_ip_address(authorization.identifier) else authorization.identifier
                self._context.routes.publish(namespace, challenge.token, host, ingress, owner)
            return
        provider = self._dns_providers(solver)
        provider.present(validation_name(authorization.identifier), _dns_value(key_authorization))

    def _not_visible(self, authorizations: tuple[Authorization, ...], request: SigningRequest) -> str | None:
        """The nameserver of the first DNS-01 record that is not visible yet, if one is not."""
        for authorization in authorizations:
            challenge = authorization.challenge
            solver = self._solver(authorization, request)
            if challenge is None or solver is None or solver.dns01 is None:
                continue
            value = _dns_value(self._key_authorization(challenge.token))
            if not self._dns_providers(solver).visible(validation_name(authorization.identifier), value):
                return solver.dns01.where
        return None

    def _cleanup(self, order: Order, request: SigningRequest) -> None:
        """Remove what was presented for `order`; failures are logged, never raised (the CA no longer
        looks at a finished order's records)."""
        for authorization in order.authorizations:
            challenge = authorization.challenge
            solver = self._solver(authorization, request)
            if not authorization.presented or challenge is None or solver is None or solver.dns_persist01:
                continue
            try:
                if solver.http01 is not None:
                    self._context.http01.cleanup(challenge.token)
                    if self._context.routes is not None:
                        self._context.routes.withdraw(request.certificate[0], challenge.token)
                    continue
                value = _dns_value(self._key_authorization(challenge.token))
                self._dns_providers(solver).cleanup(validation_name(authorization.identifier), value)
            except (DNSProviderError, ApiAccessError) as error:
                logger.warning(
                    "leaving the %s challenge of %s: %s", challenge.type, authorization.identifier, error
                )

    def _solver(self, authorization: Authorization, request: SigningRequest) -> Solver | None:
        """The solver of the challenge type chosen for `authorization` (the issuer's solvers may have
        changed since: then none, and nothing is presented)."""
        solver = solver_for(self._spec.solvers, authorization.identifier, request.labels)
        challenge = authorization.challenge
        if solver is None or challenge is None or solver.challenge_type != challenge.type:
            return None
        return solver

    def _key_authorization(self, token: str) -> str:
        return self._client.key_authorization(token)

    def _identifiers(self, request: SigningRequest) -> tuple[str, ...]:
        """The certificate's DNS names and IP addresses; an IP address without an HTTP-01 solver is
        refused before any order (RFC 8738 validates IP addresses with HTTP-01 or TLS-ALPN-01 only)."""
        identifiers = _names(request)
        for identifier in identifiers:
            if not is_ip_address(identifier):
                continue
            if solver_for(self._spec.solvers, identifier, request.labels) is None:
                raise SigningFailedError(
                    UNSUPPORTED_IDENTIFIERS,
                    f"IP address {identifier} can only be validated with HTTP-01 (RFC 8738; DNS-01 cannot "
                    f"prove an IP address), and no http01 solver of the issuer matches it; add one whose "
                    f"selector matches it (no selector, or dnsNames: [{identifier}])",
                )
        return identifiers


def _reason(error: AcmeError | DNSProviderError | PKIError | ApiAccessError) -> str:
    if isinstance(error, AcmeError):
        return error.reason
    if isinstance(error, DNSProviderError):
        return DNS_UPDATE_FAILED
    if isinstance(error, ApiAccessError):
        return CHALLENGE_ROUTE_REFUSED
    return "SigningFailed"


@dataclass
class _Run:
    """One call's order, as the steps change it."""

    names: tuple[str, ...]
    """The DNS identifiers the certificate needs."""
    order: Order | None
    new_order: bool = False
    finalized: bool = False
    """This call sent the CSR: its key is at hand."""

    def require(self) -> Order:
        if self.order is None:
            raise RuntimeError("an ACME order step without an order")
        return self.order


def _names(request: SigningRequest) -> tuple[str, ...]:
    template = request.template
    if template.uris or template.email_addresses:
        raise SigningFailedError(
            UNSUPPORTED_IDENTIFIERS,
            "ACME issuers certify DNS names and IP addresses only: remove uris and emailAddresses",
        )
    names = (*template.dns_names, template.common_name or "", *(str(ip) for ip in template.ip_addresses))
    identifiers = tuple(dict.fromkeys(name.lower() for name in names if name))
    if not identifiers:
        raise SigningFailedError(
            UNSUPPORTED_IDENTIFIERS, "an ACME certificate needs at least one DNS name or IP address"
        )
    return identifiers


def _dns_value(key_authorization: str) -> str:
    return b64.b64encode(hashlib.sha256(key_authorization.encode("ascii")).digest()).decode("ascii")


def _issued(chains: list[str], preferred: str | None) -> IssuedCertificate:
    """The certificate from the chain whose top names `preferred` (else the CA's default chain); a
    self-signed top is the root, kept apart from the intermediates."""
    parsed = [load_certificates(chain.encode("ascii")) for chain in chains]
    chosen = parsed[0]
    if preferred:
        chosen = next((chain for chain in parsed if _top_name(chain) == preferred), chosen)
    leaf, *rest = chosen
    root = rest.pop() if rest and is_self_signed(rest[-1]) else None
    return IssuedCertificate(leaf, tuple(rest), root)


def _top_name(chain: list[x509.Certificate]) -> str:
    top = chain[-1]
    names = top.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""
