"""`cnameStrategy: Follow`: `_acme-challenge.<name>` may be a CNAME into a zone certsmith can update
(so a name hosted at any DNS service migrates with one CNAME); the record goes at the CNAME's target.
The chain is looked up with `certsmith run --dns01-recursive-nameserver`, else the system's resolver."""

from __future__ import annotations

from collections.abc import Callable

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from certsmith.api.acme import CNAMEStrategy, DNS01Solver
from certsmith.issuers.acme.dns01 import DNSProvider, DNSProviderError, nameserver_address

_TIMEOUT = 10.0
_MAX_HOPS = 8
"""A CNAME chain longer than this is refused (a loop, or a misconfiguration)."""

Lookup = Callable[[str], str | None]
"""The CNAME target of a name, or None when the name has no CNAME."""


def following(dns01: DNS01Solver, provider: DNSProvider, lookup: Lookup) -> DNSProvider:
    """`provider` itself, or wrapped to follow CNAMEs when the solver says Follow."""
    if dns01.cname_strategy is not CNAMEStrategy.FOLLOW:
        return provider
    return CNAMEFollowing(provider, lookup)


class CNAMEFollowing:
    def __init__(self, provider: DNSProvider, lookup: Lookup) -> None:
        self._provider = provider
        self._lookup = lookup

    def present(self, fqdn: str, value: str) -> None:
        self._provider.present(self.target(fqdn), value)

    def visible(self, fqdn: str, value: str) -> bool:
        return self._provider.visible(self.target(fqdn), value)

    def cleanup(self, fqdn: str, value: str) -> None:
        self._provider.cleanup(self.target(fqdn), value)

    def target(self, fqdn: str) -> str:
        """The end of the CNAME chain at `fqdn` (`fqdn` itself without a CNAME)."""
        name = fqdn
        seen = {name}
        for _ in range(_MAX_HOPS):
            following = self._lookup(name)
            if following is None:
                return name
            if following in seen:
                raise DNSProviderError(
                    f"the CNAME chain at {fqdn} loops at {following}; fix the CNAME records"
                )
            seen.add(following)
            name = following
        raise DNSProviderError(
            f"the CNAME chain at {fqdn} is longer than {_MAX_HOPS} names; point _acme-challenge at the "
            f"updatable name directly"
        )


def resolver_lookup(nameservers: tuple[str, ...]) -> Lookup:
    """CNAME lookups through `nameservers` ("host[:port]"), or the system's resolver when there are none."""

    def lookup(name: str) -> str | None:
        resolver = dns.resolver.Resolver(configure=not nameservers)
        if nameservers:
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(*nameserver_address(server)) for server in nameservers
            ]
        resolver.lifetime = _TIMEOUT
        try:
            answer = resolver.resolve(name, dns.rdatatype.CNAME, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return None
        except dns.exception.DNSException as error:
            raise DNSProviderError(f"looking up the CNAME at {name}: {error}") from None
        for rrset in answer.response.answer:
            if rrset.rdtype == dns.rdatatype.CNAME and rrset.name == dns.name.from_text(name):
                return str(next(iter(rrset)).target)
        return None

    return lookup
