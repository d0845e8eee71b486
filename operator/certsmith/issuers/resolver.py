"""From an issuer (or a Certificate's issuerRef) to a Signer, or the reason there is none.

Owns the caches of verified CA key pairs and of parsed ACME account keys (parsing an RSA key costs
milliseconds, and every reconcile of an ACME Certificate resolves its issuer). Entries are keyed by
the Secret's resourceVersion, so a changed Secret can never be signed with from a stale entry,
whichever thread filled it; `invalidate` only frees memory.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from certsmith.api import CLUSTER_ISSUERS, ISSUERS, SpecError
from certsmith.api.acme import ACMEIssuerSpec, DNS01Solver, RFC2136Solver, Route53Solver, Solver
from certsmith.api.issuer import (
    CAIssuerSpec,
    IssuerSpec,
    SelfSignedIssuerSpec,
    parse_issuer_spec,
)
from certsmith.api.references import IssuerKind, IssuerRef, SecretKeyRef
from certsmith.issuers import IssuerId, IssuerNotReadyError, RenewalInfoSource, Signer
from certsmith.issuers.acme.accounts import Registration
from certsmith.issuers.acme.client import AcmeClient, key_authorization
from certsmith.issuers.acme.dns01 import DNSProvider, DNSProviderError, ProviderContext, provider_factory
from certsmith.issuers.acme.dns01_cname import following, resolver_lookup
from certsmith.issuers.acme.signer import AcmeContext, AcmeSigner
from certsmith.issuers.ca import CASigner, load_authority
from certsmith.issuers.credentials import account_key, eab_mac_key, secret_where, tsig_secret
from certsmith.issuers.selfsigned import SelfSignedSigner
from certsmith.kube.port import Key, KubePort
from certsmith.kube.secrets import ObservedSecret
from certsmith.pki import PKIError
from certsmith.pki.keys import PrivateKey, load_private_key
from certsmith.pki.signing import SigningAuthority

IssuerLookup = Callable[[str, Key], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Resolved:
    signer: Signer
    ca_certificate: x509.Certificate | None
    """The CA certificate that signs, for CA issuers."""
    authority: SigningAuthority | None = None
    account_uri: str | None = None
    """The ACME account, for ACME issuers."""
    profiles: tuple[tuple[str, str], ...] = ()
    """(name, description) of the certificate profiles the ACME CA offers."""
    caa_identities: tuple[str, ...] = ()
    """The ACME CA's domains (spec.acme.caaIdentities, else its directory's)."""
    lane: IssuerId | None = None
    """The issuer whose I/O lane runs the signer, for signers that talk to a CA over the network;
    None for those that only compute (self-signed, CA), which sign in the reconcile itself, or in the
    key generation lane when a new RSA key is to be made."""
    address: str = ""
    """The CA the lane talks to, for its health."""
    renewal_info: RenewalInfoSource | None = None
    """Where the CA's renewal information (ACME ARI) is read, for ACME issuers."""


ISSUER_NOT_FOUND = "IssuerNotFound"
ISSUER_NOT_READY = "IssuerNotReady"
ISSUER_FAILURES = frozenset({ISSUER_NOT_FOUND, ISSUER_NOT_READY})
"""The reasons `IssuerResolver.resolve` gives when a Certificate's issuer cannot sign."""

REGISTERING = "Registering"
"""The reason an ACME issuer gives while its account's first registration runs."""
ACCOUNT_RETRY = datetime.timedelta(minutes=1)
"""How soon a registration the CA refused is tried again (a CA that does not answer is probed on the
issuer's health back-off instead)."""


class AccountNotRegisteredError(IssuerNotReadyError):
    """The ACME issuer has no usable account yet: `registration` is what registering it needs, no
    sooner than `retry_at` (None: now)."""

    def __init__(
        self, reason: str, message: str, registration: Registration, retry_at: datetime.datetime | None
    ) -> None:
        super().__init__(reason, message)
        self.registration = registration
        self.retry_at = retry_at


class IssuerResolver:
    def __init__(
        self,
        issuers: IssuerLookup,
        referenced: Mapping[Key, ObservedSecret | None],
        port: KubePort,
        cluster_resource_namespace: str,
        acme: AcmeContext,
        cluster_issuers: bool = True,
    ) -> None:
        self._issuers = issuers
        self._referenced = referenced
        self._port = port
        self._cluster_resource_namespace = cluster_resource_namespace
        self._acme = acme
        self._cluster_issuers = cluster_issuers
        self._authorities: dict[tuple[Key, str, CAIssuerSpec], SigningAuthority] = {}
        self._account_keys: dict[tuple[Key, str, str], PrivateKey] = {}
        self._accounts = acme.accounts
        self._health = acme.health
        self._lock = threading.Lock()

    def issuer_secret(self, name: str, issuer: IssuerId) -> Key:
        """A Secret an issuer names; a ClusterIssuer's are in the cluster resource namespace."""
        plural, key = issuer
        namespace = self._cluster_resource_namespace if plural == CLUSTER_ISSUERS else key[0]
        return (namespace, name)

    def resolve_spec(self, spec: IssuerSpec, issuer: IssuerId, now: datetime.datetime) -> Resolved:
        """Raises IssuerNotReadyError with the reason this issuer cannot sign."""
        if isinstance(spec, SelfSignedIssuerSpec):
            return Resolved(SelfSignedSigner(spec.urls), None)
        if isinstance(spec, ACMEIssuerSpec):
            for solver in spec.solvers:
                if solver.dns01 is not None:
                    self._check_dns01(solver.dns01, issuer)
            client = self._account(spec, issuer)
            signer = AcmeSigner(client, spec, self._acme, lambda solver: self._dns_provider(solver, issuer))
            return Resolved(
                signer,
                None,
                account_uri=client.account_uri,
                profiles=client.profiles,
                caa_identities=spec.caa_identities or client.caa_identities(),
                lane=issuer,
                address=spec.server,
                renewal_info=client,
            )
        try:
            authority = self._authority(spec, self.issuer_secret(spec.secret_name, issuer), now)
        except IssuerNotReadyError as error:
            if issuer[0] == CLUSTER_ISSUERS and error.reason == "SecretNotFound":
                raise IssuerNotReadyError(
                    error.reason,
                    f"{error}; a ClusterIssuer's CA Secret lives in the operator's cluster resource "
                    f"namespace (certsmith run --cluster-resource-namespace)",
                ) from None
            raise
        return Resolved(CASigner(authority), authority.certificate, authority)

    def resolve(self, reference: IssuerRef, namespace: str, now: datetime.datetime) -> Resolved:
        """The signer for a Certificate in `namespace` naming `reference`."""
        item = issuer_id(reference, namespace)
        if reference.kind is IssuerKind.CLUSTER_ISSUER and not self._cluster_issuers:
            raise IssuerNotReadyError(
                "ClusterIssuersNotServed",
                f"{reference}: this operator runs namespace-scoped (--namespaced) and serves no "
                f"ClusterIssuers; use an Issuer in namespace {namespace}",
            )
        body = self._issuers(*item)
        where = f" in namespace {namespace}" if reference.kind is IssuerKind.ISSUER else ""
        if body is None:
            raise IssuerNotReadyError(ISSUER_NOT_FOUND, f"{reference} does not exist{where}; create it")
        try:
            spec = parse_issuer_spec(body.get("spec") or {})
            return self.resolve_spec(spec, item, now)
        except SpecError as error:
            raise IssuerNotReadyError(ISSUER_NOT_READY, f"{reference}: {error}") from None
        except IssuerNotReadyError as error:
            raise IssuerNotReadyError(
                ISSUER_NOT_READY, f"{reference} is not ready ({error.reason}): {error}"
            ) from None

    def invalidate(self, secret: Key) -> None:
        with self._lock:
            self._authorities = {key: value for key, value in self._authorities.items() if key[0] != secret}
            self._account_keys = {key: value for key, value in self._account_keys.items() if key[0] != secret}

    def referenced_secret(self, key: Key) -> ObservedSecret | None:
        """A referenced Secret from its watch; read once if the watch has not listed it yet."""
        if key in self._referenced:
            return self._referenced[key]
        return self._port.read_secret(*key)

    def _account(self, spec: ACMEIssuerSpec, issuer: IssuerId) -> AcmeClient:
        """The registered ACME account, from memory. Raises AccountNotRegisteredError when there is
        none for this key and spec (the Issuer's reconcile registers it, in the issuer's lane), or
        while the CA is unreachable."""
        secret_key = self.issuer_secret(spec.private_key.name, issuer)
        observed = self.referenced_secret(secret_key)
        pem = observed.contents.data.get(spec.private_key.key) if observed else None
        if observed is None or pem is None:
            raise IssuerNotReadyError(
                "AccountKeyMissing",
                f"Secret {secret_key[0]}/{secret_key[1]} has no key {spec.private_key.key} for the ACME "
                f"account; certsmith creates it when the Secret does not exist",
            )
        key = self._account_key(secret_key, observed.resource_version, spec.private_key, pem)
        registration = Registration(issuer, observed.resource_version, spec, key, self._binding(spec, issuer))
        client = self._accounts.client(registration)
        refusal = self._health.refusal(issuer)
        if client is not None and refusal is None:
            return client
        domain = self._health.domain(issuer)
        probe_at = domain.next_attempt if domain else None
        if refusal is not None:
            raise AccountNotRegisteredError(refusal.reason, str(refusal), registration, probe_at)
        failed = self._accounts.failure(registration)
        if failed is not None:
            refused, at = failed
            retry_at = probe_at or at + ACCOUNT_RETRY
            raise AccountNotRegisteredError(refused.reason, str(refused), registration, retry_at)
        raise AccountNotRegisteredError(
            REGISTERING, f"the ACME account at {spec.server} is being registered", registration, None
        )

    def _account_key(self, secret_key: Key, version: str, reference: SecretKeyRef, pem: bytes) -> PrivateKey:
        cache_key = (secret_key, version, reference.key)
        with self._lock:
            cached = self._account_keys.get(cache_key)
        if cached is not None:
            return cached
        key = account_key(pem, secret_where("privateKeySecretRef", reference, secret_key[0]))
        with self._lock:
            self._account_keys[cache_key] = key
        return key

    def key_authorization(self, reference: IssuerRef, namespace: str, token: str) -> str | None:
        """The answer to an HTTP-01 challenge of the ACME issuer a Certificate in `namespace` names,
        from the account key alone (no registration needed): for challenges another replica, or this
        one before a restart, presented."""
        item = issuer_id(reference, namespace)
        body = self._issuers(*item)
        try:
            spec = parse_issuer_spec((body or {}).get("spec") or {})
        except SpecError:
            return None
        if not isinstance(spec, ACMEIssuerSpec):
            return None
        observed = self.referenced_secret(self.issuer_secret(spec.private_key.name, item))
        pem = observed.contents.data.get(spec.private_key.key) if observed else None
        try:
            return key_authorization(token, load_private_key(pem)) if pem else None
        except PKIError:
            return None

    def _binding(self, spec: ACMEIssuerSpec, issuer: IssuerId) -> tuple[str, str] | None:
        binding = spec.external_account_binding
        if binding is None:
            return None
        field = "externalAccountBinding.keySecretRef"
        mac = self._secret_value(binding.key_secret, issuer, field)
        namespace = self.issuer_secret(binding.key_secret.name, issuer)[0]
        return binding.key_id, eab_mac_key(mac, secret_where(field, binding.key_secret, namespace))

    def _check_dns01(self, dns01: DNS01Solver, issuer: IssuerId) -> None:
        """An issuer whose DNS provider is not installed, or whose credentials are missing or bad, is
        not ready (no order is made that could not be solved)."""
        try:
            provider_factory(dns01.provider_name)
        except DNSProviderError as error:
            raise IssuerNotReadyError("DNSProviderNotInstalled", str(error)) from None
        if isinstance(dns01.provider, RFC2136Solver) and dns01.provider.tsig_secret is not None:
            self._tsig_secret(dns01.provider.tsig_secret, issuer)
        route53 = dns01.provider if isinstance(dns01.provider, Route53Solver) else None
        if route53 is not None and route53.ambient and issuer[0] != CLUSTER_ISSUERS:
            raise IssuerNotReadyError(
                "AmbientCredentialsNotAllowed",
                "dns01.route53 names no secretAccessKeySecretRef, and only a ClusterIssuer may use the "
                "operator's ambient AWS credentials; put an access key in a Secret and name it in "
                "accessKeyIDSecretRef (or accessKeyID) and secretAccessKeySecretRef",
            )
        if route53 is not None:
            fields = ("route53.accessKeyIDSecretRef", "route53.secretAccessKeySecretRef")
            for reference, field in zip(
                (route53.access_key_id_secret, route53.secret_access_key), fields, strict=True
            ):
                if reference is not None:
                    self._secret_value(reference, issuer, field)

    def _dns_provider(self, solver: Solver, issuer: IssuerId) -> DNSProvider:
        if solver.dns01 is None:
            raise DNSProviderError("the solver has no dns01 configuration")

        def read_secret(reference: SecretKeyRef, field: str) -> bytes:
            try:
                return self._secret_value(reference, issuer, field)
            except IssuerNotReadyError as error:
                raise DNSProviderError(str(error)) from None

        context = ProviderContext(read_secret, ambient_credentials=issuer[0] == CLUSTER_ISSUERS)
        provider = provider_factory(solver.dns01.provider_name)(solver.dns01, context)
        return following(solver.dns01, provider, resolver_lookup(self._acme.dns01_nameservers))

    def _tsig_secret(self, reference: SecretKeyRef, issuer: IssuerId) -> bytes:
        field = "rfc2136.tsigSecretSecretRef"
        value = self._secret_value(reference, issuer, field)
        namespace = self.issuer_secret(reference.name, issuer)[0]
        return tsig_secret(value, secret_where(field, reference, namespace))

    def _secret_value(self, reference: SecretKeyRef, issuer: IssuerId, field: str) -> bytes:
        key = self.issuer_secret(reference.name, issuer)
        observed = self.referenced_secret(key)
        value = observed.contents.data.get(reference.key) if observed else None
        if value is None:
            raise IssuerNotReadyError(
                "SecretNotFound", f"{field}: Secret {key[0]}/{key[1]} has no key {reference.key}; create it"
            )
        return value

    def _authority(self, spec: CAIssuerSpec, secret_key: Key, now: datetime.datetime) -> SigningAuthority:
        observed = self.referenced_secret(secret_key)
        version = observed.resource_version if observed else ""
        cache_key = (secret_key, version, spec)
        with self._lock:
            cached = self._authorities.get(cache_key)
        if cached is not None and cached.certificate.not_valid_after_utc > now:
            return cached
        namespace, name = secret_key
        authority = load_authority(
            f"{namespace}/{name}", observed.contents if observed else None, spec.urls, now
        )
        with self._lock:
            self._authorities[cache_key] = authority
        return authority


def issuer_id(reference: IssuerRef, namespace: str) -> IssuerId:
    """The issuer a Certificate in `namespace` names."""
    if reference.kind is IssuerKind.CLUSTER_ISSUER:
        return (CLUSTER_ISSUERS, ("", reference.name))
    return (ISSUERS, (namespace, reference.name))
