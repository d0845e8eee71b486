"""A nameserver on loopback that answers from moto's Route53 records, as Route53's own nameservers
answer from a hosted zone: Pebble's validator (`-dnsserver`) asks it for the `_acme-challenge` TXT
records that certsmith wrote through the Route53 API. Every other name resolves to 127.0.0.1.

Pebble 2.10 asks over TCP, dnspython and BIND's tools over UDP: both are served, on the same port."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from certsmith_devtools.kit import free_port

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client

_TTL = 60


class Route53DNS:
    """Serves UDP and TCP on 127.0.0.1 from two threads, between entry and exit."""

    def __init__(self, route53: Route53Client) -> None:
        self._route53 = route53
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._threads = (
            threading.Thread(target=self._serve, name="route53-dns-udp", daemon=True),
            threading.Thread(target=self._serve_tcp, name="route53-dns-tcp", daemon=True),
        )
        self._stopping = threading.Event()
        self.answering = True
        """False: TXT questions get no answer, as from a nameserver that has not caught up."""
        self.served: list[str] = []
        """Every TXT value answered, in order."""

    def __enter__(self) -> Route53DNS:
        self._socket.bind(("127.0.0.1", self.port))
        self._socket.settimeout(0.2)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen()
        self._listener.settimeout(0.2)
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._socket.close()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                wire, peer = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(wire)
            except dns.exception.DNSException:
                continue
            self._socket.sendto(self._answer(query).to_wire(), peer)

    def _serve_tcp(self) -> None:
        """One query per connection, each answered before the next is accepted (Pebble's validator
        connects for each question)."""
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    query, _ = dns.query.receive_tcp(connection, time.time() + 2)
                    dns.query.send_tcp(connection, self._answer(query), time.time() + 2)
                except (OSError, EOFError, dns.exception.DNSException):
                    continue

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        for question in query.question:
            if question.rdtype == dns.rdatatype.A:
                response.answer.append(
                    dns.rrset.from_text(question.name, _TTL, dns.rdataclass.IN, dns.rdatatype.A, "127.0.0.1")
                )
            elif question.rdtype == dns.rdatatype.TXT:
                values = self._txt(question.name.to_text()) if self.answering else []
                self.served.extend(values)
                if values:
                    response.answer.append(
                        dns.rrset.from_text_list(
                            question.name, _TTL, dns.rdataclass.IN, dns.rdatatype.TXT, values
                        )
                    )
        return response

    def _txt(self, fqdn: str) -> list[str]:
        """The TXT values (quoted, as Route53 stores them) at `fqdn` in whichever hosted zone holds it."""
        values: list[str] = []
        for zone in self._route53.list_hosted_zones()["HostedZones"]:
            if not (fqdn == zone["Name"] or fqdn.endswith(f".{zone['Name']}")):
                continue
            records = self._route53.list_resource_record_sets(
                HostedZoneId=zone["Id"], StartRecordName=fqdn, StartRecordType="TXT", MaxItems="1"
            )["ResourceRecordSets"]
            values.extend(
                item["Value"]
                for record in records
                if record["Name"] == fqdn and record["Type"] == "TXT"
                for item in record.get("ResourceRecords", [])
            )
        return values
