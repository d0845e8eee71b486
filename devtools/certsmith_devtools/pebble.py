"""A real ACME CA on loopback: Let's Encrypt's Pebble, built from its Go module (PEBBLE_VERSION) into the
cache, for the ACME tests, the ACME benchmark and `certsmith dev --acme`.

Pebble offers the profiles of Let's Encrypt (PROFILES); an order that names none gets one of them at
random (Pebble's deliberate chaos), so a test that needs a lifetime names its profile.

Pebble's validator resolves every name through `dns_server`; by default `pebble-challtestsrv` answers
127.0.0.1 for any name, so HTTP-01 validation reaches the operator's solver on `http01_port`. Pebble's
TLS certificate is made here, by a CA whose PEM is `ca_bundle` (what an Issuer's caBundle trusts).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from certsmith.pki.encodings import certificates_pem
from certsmith.pki.keys import KeyAlgorithm, KeyEncoding, KeySpec, encode_private_key, generate_private_key
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import SigningAuthority, self_sign, sign_with_authority
from certsmith_devtools.build import (
    Progress,
    build_cached,
    build_go_module,
    default_cache_dir,
    print_progress,
)
from certsmith_devtools.kit import free_port
from certsmith_devtools.processes import LocalServer, ManagedProcess, start_until_ready
from certsmith_devtools.versions import PEBBLE_VERSION

_READY_TIMEOUT = 30.0
EAB_KEY_ID = "certsmith-test"
EAB_MAC_KEY = base64.urlsafe_b64encode(b"certsmith-test-external-account-mac-key!").decode().rstrip("=")
MODULE = "github.com/letsencrypt/pebble/v2"


@dataclass(frozen=True)
class Profile:
    """A certificate profile as Let's Encrypt offers it: a lifetime, and whether the first name becomes
    the subject's common name."""

    lifetime: datetime.timedelta
    common_name: bool
    description: str


PROFILES = {
    "classic": Profile(datetime.timedelta(days=90), True, "Let's Encrypt's classic: 90 days, common name"),
    "tlsserver": Profile(datetime.timedelta(days=45), False, "Let's Encrypt's tlsserver: 45 days"),
    "shortlived": Profile(datetime.timedelta(hours=160), False, "Let's Encrypt's shortlived: 160 hours"),
}
"""Pebble issues for `lifetime` minus one second (its notAfter is inclusive)."""


def ensure_pebble(cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """The directory holding `pebble` and `pebble-challtestsrv` of PEBBLE_VERSION, built the first time."""
    directory = (cache_dir or default_cache_dir()) / f"pebble-{PEBBLE_VERSION}" / "bin"

    def complete() -> bool:
        return all((directory / command).is_file() for command in ("pebble", "pebble-challtestsrv"))

    def build(go: str, work: Path, staged: Path) -> None:
        (progress or print_progress)(f"certsmith: building Pebble {PEBBLE_VERSION} (first run only)")
        commands = [f"{MODULE}/cmd/pebble", f"{MODULE}/cmd/pebble-challtestsrv"]
        build_go_module(go, work / "pebble", f"{MODULE} {PEBBLE_VERSION}", commands, staged)

    if not complete():
        build_cached(directory, complete, build)
    return directory


class Pebble(LocalServer):
    """Started on entry, stopped on exit. `restart()` stops and starts Pebble alone (it forgets every
    account and order, as a CA that lost its state would)."""

    def __init__(
        self,
        directory: Path,
        http01_port: int,
        dns_server: str | None = None,
        require_eab: bool = False,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self._binaries = ensure_pebble()
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self.http01_port = http01_port
        self.port = free_port()
        self.management_port = free_port()
        self.url = f"https://127.0.0.1:{self.port}/dir"
        self._dns_port = free_port()
        self.dns_server = dns_server or f"127.0.0.1:{self._dns_port}"
        self._own_dns = dns_server is None
        self.environment = {"PEBBLE_VA_NOSLEEP": "1", **(environment or {})}
        self.ca_bundle = self._serving_certificate(directory)
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": str(directory / "cert.pem"),
                "privateKey": str(directory / "key.pem"),
                "httpPort": http01_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": require_eab,
                "externalAccountMACKeys": {EAB_KEY_ID: EAB_MAC_KEY},
                "profiles": {
                    name: {
                        "description": profile.description,
                        "validityPeriod": int(profile.lifetime.total_seconds()),
                        "promoteCommonName": profile.common_name,
                    }
                    for name, profile in PROFILES.items()
                },
            }
        }
        (directory / "pebble.json").write_text(json.dumps(config))
        self._dns: ManagedProcess | None = None

    def __enter__(self) -> Pebble:
        if self._own_dns:
            argv = [
                str(self._binaries / "pebble-challtestsrv"),
                f"-dnsserver=127.0.0.1:{self._dns_port}",
                "-doh=",
                "-http01=",
                "-https01=",
                "-tlsalpn01=",
                f"-management=127.0.0.1:{free_port()}",
                "-defaultIPv4=127.0.0.1",
                "-defaultIPv6=",
            ]
            self._dns = ManagedProcess("pebble-challtestsrv", argv, self._directory / "challtestsrv.log")
        self._start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        if self._dns is not None:
            self._dns.stop()

    def restart(self) -> None:
        self.stop()
        self._start()

    def log(self) -> str:
        """What Pebble logged, every start's, in order (it logs "Added order" for each new order)."""
        return "".join(path.read_text() for path in sorted(self._directory.glob("pebble-*.log")))

    def roots(self, index: int = 0) -> bytes:
        """PEM of Pebble's root `index` (0: the default chain's; more with PEBBLE_ALTERNATE_ROOTS)."""
        url = f"https://127.0.0.1:{self.management_port}/roots/{index}"
        with urllib.request.urlopen(url, context=self._tls(), timeout=10) as response:
            return bytes(response.read())

    def set_renewal_info(self, certificate_pem: bytes, answer: str) -> None:
        """Make Pebble answer `answer` (any text, even malformed JSON) to ARI requests for the
        certificate (its management port's POST /set-renewal-info/)."""
        body = json.dumps({"Certificate": certificate_pem.decode("ascii"), "ARIResponse": answer}).encode()
        url = f"https://127.0.0.1:{self.management_port}/set-renewal-info/"
        request = urllib.request.Request(url, body, method="POST")
        with urllib.request.urlopen(request, context=self._tls(), timeout=10) as response:  # noqa: S310
            response.read()

    def _start(self) -> None:
        config = str(self._directory / "pebble.json")
        pebble = str(self._binaries / "pebble")
        argv = [pebble, "-config", config, "-dnsserver", self.dns_server, "-strict=false"]
        log = self._directory / f"pebble-{int(time.time() * 1000)}.log"
        self._process = start_until_ready("pebble", argv, log, self._ready, _READY_TIMEOUT, self.environment)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, context=self._tls(), timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_bundle.decode("ascii"))

    @staticmethod
    def _serving_certificate(directory: Path) -> bytes:
        """Write Pebble's TLS key pair (for 127.0.0.1 and localhost); the PEM of the CA that signed it."""
        now = datetime.datetime.now(datetime.UTC)
        spec = KeySpec(KeyAlgorithm.ECDSA, 256)
        ca_key = generate_private_key(spec)
        ca = self_sign(
            CertificateTemplate(
                common_name="certsmith test ACME server CA", is_ca=True, duration=datetime.timedelta(days=30)
            ),
            ca_key,
            now,
        ).certificate
        key = generate_private_key(spec)
        served = sign_with_authority(
            CertificateTemplate(
                common_name="localhost",
                dns_names=("localhost",),
                ip_addresses=(ipaddress.ip_address("127.0.0.1"),),
                usages=frozenset({"digital signature", "server auth"}),
                duration=datetime.timedelta(days=30),
            ),
            key.public_key(),
            SigningAuthority(ca, ca_key, (), ca),
            now,
        )
        (directory / "cert.pem").write_bytes(certificates_pem([served.certificate]))
        (directory / "key.pem").write_bytes(encode_private_key(key, KeyEncoding.PKCS8))
        return certificates_pem([ca])


if __name__ == "__main__":
    print(ensure_pebble())
