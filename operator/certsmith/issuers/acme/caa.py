"""The CAA pre-flight check (RFC 8659): before an order is made, whether the names' CAA records allow
the CA to issue for them, so a forbidden name is reported in the status instead of a failed order.

`relevant_records` looks the records up (RFC 8659 section 3: the CAA RRset of the name, else of its
nearest parent that has one; the resolver follows CNAMEs at each name); `forbidden` decides, without
I/O, from those records and the CA's identity domains (the issuer's `spec.acme.caaIdentities`, else the
directory's `meta.caaIdentities`). With no identity known certsmith cannot tell, and leaves the judgement
to the CA.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.rdatatype
import dns.resolver

from certsmith.issuers.acme.lookups import LOOKUP_TIMEOUT, resolver

CAA_FORBIDDEN = "CAAForbidden"
_CRITICAL = 128
_KNOWN_TAGS = frozenset(
    {"issue", "issuewild", "iodef", "issuemail", "issuevmc", "contactemail", "contactphone"}
)


class CAALookupError(RuntimeError):
    """The CAA records of a name could not be read (timeout, SERVFAIL); the message names it."""


@dataclass(frozen=True)
class Record:
    flags: int
    tag: str
    value: str

    def __str__(self) -> str:
        return f'{self.flags} {self.tag} "{self.value}"'


@dataclass(frozen=True)
class Relevant:
    """The relevant CAA RRset of an identifier: where it was found, and its records."""

    owner: str
    records: tuple[Record, ...]


def forbidden(identifier: str, relevant: Relevant | None, identities: Sequence[str]) -> str | None:
    """Why the CAA records forbid a CA with `identities` to issue for `identifier`, or None."""
    if relevant is None or not identities:
        return None
    unknown_critical = [
        r for r in relevant.records if r.flags & _CRITICAL and r.tag.lower() not in _KNOWN_TAGS
    ]
    if unknown_critical:
        return (
            f"the CAA record {relevant.owner} {unknown_critical[0]} for {identifier} is critical and "
            f"unknown, which forbids every CA"
        )
    wildcard = identifier.startswith("*.")
    wild = [r for r in relevant.records if r.tag.lower() == "issuewild"]
    properties = wild if wildcard and wild else [r for r in relevant.records if r.tag.lower() == "issue"]
    if not properties:
        return None
    allowed = {identity.lower().rstrip(".") for identity in identities}
    if any(_issuer_domain(r.value) in allowed for r in properties):
        return None
    shown = "; ".join(f"{relevant.owner} CAA {r}" for r in properties)
    return (
        f"the CAA records of {identifier} ({shown}) do not name the CA ({', '.join(sorted(allowed))}); "
        f'add a CAA record `issue{"wild" if wildcard and wild else ""} "{sorted(allowed)[0]}"` at '
        f"{relevant.owner} or use an issuer whose CA they name"
    )


def _issuer_domain(value: str) -> str:
    """The issuer domain of an issue/issuewild value ("" for `;`, which allows no CA)."""
    return value.split(";", 1)[0].strip().lower().rstrip(".")


def relevant_records(identifier: str, nameservers: Sequence[str], deadline: float) -> Relevant | None:
    """The relevant CAA RRset of `identifier`, through `nameservers` ("host[:port]"; none: the
    system's resolver), climbing to parents; None when no name up to the TLD has CAA records.
    `deadline` is a time.monotonic() value after which it gives up with CAALookupError."""
    asking = resolver(nameservers)
    labels = identifier.removeprefix("*.").rstrip(".").split(".")
    for start in range(len(labels)):
        name = ".".join(labels[start:]) + "."
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CAALookupError(
                f"looking up CAA records for {identifier}: no answer within {LOOKUP_TIMEOUT:.0f}s"
            )
        try:
            answer = asking.resolve(name, dns.rdatatype.CAA, raise_on_no_answer=False, lifetime=remaining)
        except dns.resolver.NXDOMAIN:
            continue
        except dns.exception.DNSException as error:
            raise CAALookupError(f"looking up CAA records at {name}: {error}") from None
        if answer.rrset:
            records = tuple(
                Record(int(r.flags), r.tag.decode("ascii", "replace"), r.value.decode("utf-8", "replace"))
                for r in answer.rrset
            )
            return Relevant(name, records)
    return None
