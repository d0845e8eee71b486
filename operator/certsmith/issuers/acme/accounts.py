"""ACME accounts, one per issuer: registered by a step in the issuer's own lane (the network), looked
up by the resolver (memory only). No lock is held across a registration, and no issuer waits for
another's."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from certsmith.api.acme import ACMEIssuerSpec
from certsmith.issuers import IssuerId
from certsmith.issuers.acme.client import AcmeClient, AcmeError, RequestObserver
from certsmith.pki.keys import PrivateKey


@dataclass(frozen=True)
class Registration:
    """What registering an issuer's account needs, all found in memory by the resolver."""

    issuer: IssuerId
    version: str
    """The resourceVersion of the account key's Secret: a new key is a new account."""
    spec: ACMEIssuerSpec
    key: PrivateKey = field(repr=False, compare=False)
    binding: tuple[str, str] | None = field(repr=False, compare=False)
    """(key ID, MAC key) for external account binding."""


@dataclass(frozen=True)
class _Entry:
    registration: Registration
    client: AcmeClient | None
    failure: AcmeError | None
    at: datetime.datetime


class AccountBook:
    def __init__(
        self, observe: RequestObserver, clock: Callable[[], datetime.datetime], timeout: int
    ) -> None:
        """`timeout`: seconds each request to a CA may wait for its answer."""
        self._observe = observe
        self._timeout = timeout
        self._clock = clock
        self._entries: dict[IssuerId, _Entry] = {}
        self._lock = threading.Lock()

    def client(self, registration: Registration) -> AcmeClient | None:
        """The account registered for exactly this key and spec, if it is."""
        entry = self._entry(registration)
        return entry.client if entry else None

    def failure(self, registration: Registration) -> tuple[AcmeError, datetime.datetime] | None:
        """How and when the last registration of exactly this key and spec failed, if it did."""
        entry = self._entry(registration)
        return (entry.failure, entry.at) if entry and entry.failure else None

    def register(self, registration: Registration) -> AcmeClient:
        """Register (or find) the account at the CA: network calls, each with the client's timeout.
        Runs in the issuer's lane; raises AcmeError, which is kept for the resolver to report. A
        profile the CA does not offer is such an error, found before registering."""
        spec = registration.spec
        client = AcmeClient(
            spec.server, registration.key, spec.ca_bundle, spec.skip_tls_verify, self._timeout, self._observe
        )
        try:
            client.require_profile(spec.profile)
            client.register(spec.email, registration.binding)
        except AcmeError as error:
            self._keep(_Entry(registration, None, error, self._clock()))
            raise
        self._keep(_Entry(registration, client, None, self._clock()))
        return client

    def forget(self, issuer: IssuerId) -> None:
        with self._lock:
            self._entries.pop(issuer, None)

    def _entry(self, registration: Registration) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(registration.issuer)
        return entry if entry is not None and entry.registration == registration else None

    def _keep(self, entry: _Entry) -> None:
        with self._lock:
            self._entries[entry.registration.issuer] = entry
