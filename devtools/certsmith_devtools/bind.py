"""A real authoritative DNS server on loopback: BIND 9 (Debian's `bind9`), serving zones that take
TSIG-signed dynamic updates (RFC 2136), for the DNS-01 tests. Pebble resolves through it."""

from __future__ import annotations

import base64
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from certsmith_devtools.kit import free_port
from certsmith_devtools.processes import LocalServer, start_until_ready

_READY_TIMEOUT = 30.0
TSIG_KEY_NAME = "certsmith-test"


class BindNotFoundError(RuntimeError):
    """No `named` binary: install Debian's package (`apt-get install bind9`)."""


class Bind(LocalServer):
    """Started on entry, stopped on exit. Every name in `zone` and `more_zones` resolves to 127.0.0.1;
    `records` ("name TYPE data" lines, names relative to `zone`) are added to `zone`, e.g. a CNAME.
    `recursive`: answer as a recursive resolver does (as the CA's does), following a CNAME from one of
    its zones into another; an authoritative-only BIND stops at the zone's edge."""

    def __init__(
        self,
        directory: Path,
        zone: str,
        more_zones: Sequence[str] = (),
        records: Sequence[str] = (),
        *,
        recursive: bool = False,
    ) -> None:
        binary = shutil.which("named") or ("/usr/sbin/named" if Path("/usr/sbin/named").exists() else None)
        if binary is None:
            raise BindNotFoundError("named is not installed (Debian: apt-get install bind9)")
        directory.mkdir(parents=True, exist_ok=True)
        self.zone = zone
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.tsig_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        for name in (zone, *more_zones):
            extra = "".join(f"{record}\n" for record in records) if name == zone else ""
            (directory / f"{name}.zone").write_text(
                f"$TTL 60\n"
                f"@ IN SOA ns.{name}. hostmaster.{name}. 1 60 60 600 60\n"
                f"@ IN NS ns.{name}.\n"
                f"ns IN A 127.0.0.1\n"
                f"@ IN A 127.0.0.1\n"
                f"* IN A 127.0.0.1\n" + extra
            )
        zones = "".join(
            f'zone "{name}" {{ type primary; file "{directory}/{name}.zone";\n'
            f'  allow-update {{ key "{TSIG_KEY_NAME}"; }}; }};\n'
            for name in (zone, *more_zones)
        )
        (directory / "named.conf").write_text(
            f'options {{ directory "{directory}"; pid-file "{directory}/named.pid";\n'
            f"  listen-on port {self.port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n"
            f"  {'recursion yes; allow-recursion { 127.0.0.1; }' if recursive else 'recursion no'};\n"
            f"  allow-query {{ any; }}; dnssec-validation no; }};\n"
            f'key "{TSIG_KEY_NAME}" {{ algorithm hmac-sha256; secret "{self.tsig_secret}"; }};\n'
            f"{zones}"
            f"controls {{ }};\n"
        )
        self._argv = [binary, "-g", "-n", "1", "-c", str(directory / "named.conf")]
        self._log = directory / "named.log"

    def __enter__(self) -> Bind:
        self._process = start_until_ready("named", self._argv, self._log, self._answers, _READY_TIMEOUT)
        return self

    def txt(self, name: str) -> set[str]:
        """The TXT values at `name`, as the server answers now."""
        response = self._query(name, dns.rdatatype.TXT)
        if response is None:
            return set()
        return {
            b"".join(item.strings).decode()
            for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.TXT
            for item in rrset
        }

    def _answers(self) -> bool:
        response = self._query(self.zone, dns.rdatatype.SOA)
        return response is not None and bool(response.answer)

    def _query(self, name: str, kind: dns.rdatatype.RdataType) -> dns.message.Message | None:
        try:
            return dns.query.udp(dns.message.make_query(name, kind), "127.0.0.1", 1.0, self.port)
        except (dns.exception.DNSException, OSError):
            return None
