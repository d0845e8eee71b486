"""The RFC 2136 DNS-01 provider: dynamic updates, optionally TSIG-signed, with dnspython."""

from __future__ import annotations

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update

from certsmith.api.acme import DNS01Solver, RFC2136Solver, TSIGAlgorithm
from certsmith.issuers.acme.dns01 import DNSProviderError, ProviderContext, nameserver_address

_TTL = 60
_TIMEOUT = 10.0
_ALGORITHMS = {
    TSIGAlgorithm.HMACMD5: dns.tsig.HMAC_MD5,
    TSIGAlgorithm.HMACSHA1: dns.tsig.HMAC_SHA1,
    TSIGAlgorithm.HMACSHA256: dns.tsig.HMAC_SHA256,
    TSIGAlgorithm.HMACSHA512: dns.tsig.HMAC_SHA512,
}


def rfc2136_provider(solver: DNS01Solver, context: ProviderContext) -> RFC2136Provider:
    """The factory registered as `rfc2136`."""
    rfc2136 = solver.provider
    if not isinstance(rfc2136, RFC2136Solver):
        raise DNSProviderError("the rfc2136 provider needs dns01.rfc2136")
    secret = None
    if rfc2136.tsig_secret is not None:
        secret = context.read_secret(rfc2136.tsig_secret, "rfc2136.tsigSecretSecretRef")
    return RFC2136Provider(rfc2136, secret)


class RFC2136Provider:
    def __init__(self, solver: RFC2136Solver, tsig_secret: bytes | None) -> None:
        self._host, self._port = nameserver_address(solver.nameserver)
        self._where = solver.nameserver
        self._key: dns.tsig.Key | None = None
        if solver.tsig_key_name and tsig_secret is not None:
            self._key = dns.tsig.Key(
                solver.tsig_key_name, tsig_secret.decode("ascii").strip(), _ALGORITHMS[solver.tsig_algorithm]
            )

    def present(self, fqdn: str, value: str) -> None:
        zone = self._zone(fqdn)
        update = dns.update.UpdateMessage(zone, keyring=self._key)
        update.add(fqdn, _TTL, "TXT", _quoted(value))
        self._send(update, f"adding TXT {fqdn}")

    def visible(self, fqdn: str, value: str) -> bool:
        return value in self._txt(fqdn)

    def cleanup(self, fqdn: str, value: str) -> None:
        update = dns.update.UpdateMessage(self._zone(fqdn), keyring=self._key)
        update.delete(fqdn, "TXT", _quoted(value))
        self._send(update, f"removing TXT {fqdn}")

    def _zone(self, fqdn: str) -> dns.name.Name:
        """The zone `fqdn` is in: the nearest enclosing name with an SOA at the server."""
        name = dns.name.from_text(fqdn)
        while len(name.labels) > 1:
            answer = self._query(name, dns.rdatatype.SOA)
            if any(rrset.rdtype == dns.rdatatype.SOA and rrset.name == name for rrset in answer.answer):
                return name
            name = name.parent()
        raise DNSProviderError(f"{self._where} is not authoritative for any zone above {fqdn}")

    def _txt(self, fqdn: str) -> set[str]:
        answer = self._query(dns.name.from_text(fqdn), dns.rdatatype.TXT)
        return {
            b"".join(item.strings).decode("ascii", "replace")
            for rrset in answer.answer
            if rrset.rdtype == dns.rdatatype.TXT
            for item in rrset
        }

    def _query(self, name: dns.name.Name, kind: dns.rdatatype.RdataType) -> dns.message.Message:
        try:
            return dns.query.udp(dns.message.make_query(name, kind), self._host, _TIMEOUT, self._port)
        except (dns.exception.DNSException, OSError) as error:
            raise DNSProviderError(f"asking {self._where} for {name} {kind.name}: {error}") from None

    def _send(self, update: dns.update.UpdateMessage, action: str) -> None:
        try:
            response = dns.query.tcp(update, self._host, _TIMEOUT, self._port)
        except (dns.exception.DNSException, OSError) as error:
            raise DNSProviderError(f"{action} at {self._where}: {error}") from None
        if response.rcode() != dns.rcode.NOERROR:
            hint = "; check tsigKeyName, tsigAlgorithm and the TSIG secret" if self._key else ""
            raise DNSProviderError(
                f"{action}: {self._where} answered {dns.rcode.to_text(response.rcode())}{hint}"
            )


def _quoted(value: str) -> str:
    return f'"{value}"'
