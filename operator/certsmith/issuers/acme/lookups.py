"""The resolver of the checks certsmith makes before it orders (CAA, dns-persist-01 records): through
`certsmith run --dns01-recursive-nameserver`, else the system's resolver."""

from __future__ import annotations

from collections.abc import Sequence

import dns.nameserver
import dns.resolver

from certsmith.issuers.acme.dns01 import nameserver_address

LOOKUP_TIMEOUT = 10.0
"""Seconds all the lookups of one check may take together."""


def resolver(nameservers: Sequence[str]) -> dns.resolver.Resolver:
    """A resolver asking `nameservers` ("host[:port]"), or the system's resolver when there are none."""
    made = dns.resolver.Resolver(configure=not nameservers)
    if nameservers:
        made.nameservers = [dns.nameserver.Do53Nameserver(*nameserver_address(s)) for s in nameservers]
    return made
