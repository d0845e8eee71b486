"""DNS-01 providers: what publishes the `_acme-challenge.<name>` TXT records.

A provider is a small protocol (`DNSProvider`: present, visible, cleanup) made by a factory found by
name in the `certsmith.dns01_providers` entry point group, so a provider for another DNS service ships
as its own package. RFC 2136 and Route53 are the in-tree ones, registered the same way. Every call a
provider makes runs in the issuer's lane and must end within its own timeout.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Protocol

from certsmith.api.acme import DNS01Solver
from certsmith.api.references import SecretKeyRef

ENTRY_POINT_GROUP = "certsmith.dns01_providers"


class DNSProviderError(RuntimeError):
    """The record could not be published or removed; the message says by whom and why."""


class DNSProvider(Protocol):
    def present(self, fqdn: str, value: str) -> None:
        """Publish TXT `value` at `fqdn` (without waiting for it to be visible)."""
        ...

    def visible(self, fqdn: str, value: str) -> bool:
        """Whether the zone's servers answer TXT `value` at `fqdn` now: one check, no waiting."""
        ...

    def cleanup(self, fqdn: str, value: str) -> None:
        """Remove that record (others at the same name stay)."""
        ...


@dataclass(frozen=True)
class ProviderContext:
    """What a factory may use besides the solver's spec."""

    read_secret: Callable[[SecretKeyRef, str], bytes]
    """The value at a SecretKeyRef of the issuer (its namespace, or the cluster resource namespace for
    a ClusterIssuer); the second argument is the spec field, for the message when it is missing.
    Raises DNSProviderError. Credentials come from Secrets only, and never go into a message."""
    ambient_credentials: bool
    """Whether the operator's own cloud credentials may be used: only for ClusterIssuers, as in
    cert-manager, so a namespace's Issuer cannot borrow the operator's identity."""


class DNSProviderFactory(Protocol):
    def __call__(self, solver: DNS01Solver, context: ProviderContext) -> DNSProvider:
        """The provider for `solver`; raises DNSProviderError naming the field when it cannot be made."""
        ...


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    """The group's entry points by name, read once per process; each is imported on first use only."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def provider_factory(name: str) -> DNSProviderFactory:
    points = _entry_points()
    if name not in points:
        raise DNSProviderError(
            f"no DNS-01 provider {name!r} is installed (installed: {', '.join(sorted(points))}); "
            f"install the package that registers it in the {ENTRY_POINT_GROUP} entry point group"
        )
    factory: DNSProviderFactory = points[name].load()
    return factory


def validation_name(identifier: str) -> str:
    """Where the TXT record for a DNS identifier goes (a wildcard's is its base name's)."""
    return f"_acme-challenge.{identifier.removeprefix('*.').rstrip('.')}."


def nameserver_address(nameserver: str) -> tuple[str, int]:
    """(IP address, port) of "host", "host:port" or "[ipv6]:port"."""
    host, port = nameserver, 53
    if nameserver.startswith("["):
        host, _, rest = nameserver[1:].partition("]")
        port = int(rest.removeprefix(":") or 53)
    elif nameserver.count(":") == 1:
        host, _, text = nameserver.partition(":")
        port = int(text)
    try:
        return str(socket.getaddrinfo(host, port, proto=socket.IPPROTO_UDP)[0][4][0]), port
    except OSError as error:
        raise DNSProviderError(f"nameserver {nameserver}: {error}") from None
