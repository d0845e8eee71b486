"""dns-persist-01 (draft-ietf-acme-dns-persist): one TXT record the user creates once, at
`_validation-persist.<name>`, naming the CA's issuer domain and the ACME account, authorises that account
for the name for as long as it stays. certsmith needs no DNS credentials for it: it shows the record to
create (the issuer's status, `certsmith status`), checks before ordering that the record is visible, and
then lets the CA validate it.

The record's value is an RFC 8659 issue-value: `<issuer-domain>; accounturi=<account URL>`, with
`; policy=wildcard` for wildcard names; the parsing follows the draft as the reference ACME test
server implements it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import dns.exception
import dns.rdatatype
import dns.resolver

from certsmith.api.acme import Solver, solver_for
from certsmith.issuers.acme.lookups import LOOKUP_TIMEOUT, resolver

RECORD_PREFIX = "_validation-persist"
RECORD_MISSING = "DNSPersistRecordMissing"


class RecordLookupError(RuntimeError):
    """The TXT records could not be read; the message names where."""


def record_name(identifier: str) -> str:
    return f"{RECORD_PREFIX}.{identifier.removeprefix('*.').rstrip('.')}."


def record_value(issuer_domain: str, account_uri: str, wildcard: bool = False) -> str:
    return f"{issuer_domain}; accounturi={account_uri}" + ("; policy=wildcard" if wildcard else "")


def issuer_status(domains: Sequence[str], account_uri: str | None) -> dict[str, str] | None:
    """The record each name proven by dns-persist-01 needs, as the issuer's status shows it."""
    if not domains or not account_uri:
        return None
    return {
        "name": f"{RECORD_PREFIX}.<DNS name>",
        "value": record_value(domains[0], account_uri),
        "wildcardValue": record_value(domains[0], account_uri, wildcard=True),
    }


def certificate_records(
    names: Sequence[str], solvers: tuple[Solver, ...], labels: Mapping[str, str], shown: Mapping[str, str]
) -> list[str]:
    """The records (`name TXT "value"`) that a certificate's names proven by dns-persist-01 need, from
    what the issuer's status shows (`issuer_status`)."""
    records = []
    for name in dict.fromkeys(n.lower() for n in names):
        solver = solver_for(solvers, name, labels)
        if solver is None or solver.dns_persist01 is None:
            continue
        value = shown.get("wildcardValue" if name.startswith("*.") else "value")
        if value:
            records.append(f'{record_name(name)} TXT "{value}"')
    return records


def authorizes(value: str, issuer_domains: Sequence[str], account_uri: str, wildcard: bool) -> bool:
    """Whether one TXT record value authorises `account_uri` at a CA of `issuer_domains`."""
    domain, *parameters = value.split(";")
    if domain.strip(" \t").lower() not in {d.lower() for d in issuer_domains}:
        return False
    tags: dict[str, str] = {}
    for parameter in parameters:
        tag, equals, given = parameter.strip(" \t").partition("=")
        if not equals or not tag.strip(" \t") or tag.strip(" \t").lower() in tags:
            return False
        tags[tag.strip(" \t").lower()] = given.strip(" \t")
    if tags.get("accounturi") != account_uri:
        return False
    if "persistuntil" in tags and (
        not tags["persistuntil"].isdigit() or int(tags["persistuntil"]) < time.time()
    ):
        return False
    return not wildcard or tags.get("policy", "").lower() == "wildcard"


def txt_values(name: str, nameservers: Sequence[str], deadline: float) -> list[str]:
    """The TXT values at `name` (each record's strings joined); [] when there are none."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise RecordLookupError(f"looking up TXT records at {name}: no answer within {LOOKUP_TIMEOUT:.0f}s")
    try:
        answer = resolver(nameservers).resolve(
            name, dns.rdatatype.TXT, raise_on_no_answer=False, lifetime=remaining
        )
    except dns.resolver.NXDOMAIN:
        return []
    except dns.exception.DNSException as error:
        raise RecordLookupError(f"looking up TXT records at {name}: {error}") from None
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer.rrset or ()]
