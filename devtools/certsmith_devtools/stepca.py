"""A second real ACME CA on loopback: smallstep's step-ca, built from its Go module into the cache.

step-ca serves its ACME provisioner `acme` at `url`; its validator resolves names through
`dns_server` (its `--resolver`) and connects to port `http01_port` for HTTP-01 (`--insecure
--acme-http-port`, step-ca's testing flags). Its root and intermediate CA are made here, unencrypted
(no password to type); the root's PEM is `ca_bundle`, which also signed step-ca's own TLS certificate.
`caa_identities` are the domains its directory names in `meta.caaIdentities`.
"""

from __future__ import annotations

import datetime
import json
import ssl
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

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
from certsmith_devtools.processes import LocalServer, start_until_ready
from certsmith_devtools.versions import STEP_CA_VERSION

MODULE = "github.com/smallstep/certificates"
PROVISIONER = "acme"
_READY_TIMEOUT = 30.0


def ensure_step_ca(cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """The `step-ca` command of STEP_CA_VERSION, built from its module the first time."""
    step_ca = (cache_dir or default_cache_dir()) / f"step-ca-{STEP_CA_VERSION}" / "bin" / "step-ca"

    def build(go: str, work: Path, staged: Path) -> None:
        (progress or print_progress)(f"certsmith: building step-ca {STEP_CA_VERSION} (first run only)")
        requirement = f"{MODULE} {STEP_CA_VERSION}"
        build_go_module(go, work / "step-ca", requirement, [f"{MODULE}/cmd/step-ca"], staged)

    if not step_ca.is_file():
        build_cached(step_ca.parent, step_ca.is_file, build)
    return step_ca


class StepCA(LocalServer):
    """Started on entry, stopped on exit."""

    def __init__(
        self, directory: Path, http01_port: int, dns_server: str, caa_identities: Sequence[str] = ()
    ) -> None:
        self._binary = ensure_step_ca()
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self.http01_port = http01_port
        self.dns_server = dns_server
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}/acme/{PROVISIONER}/directory"
        self.ca_bundle = _write_authority(directory)
        config = {
            "root": str(directory / "root.crt"),
            "crt": str(directory / "intermediate.crt"),
            "key": str(directory / "intermediate.key"),
            "address": f"127.0.0.1:{self.port}",
            "dnsNames": ["127.0.0.1", "localhost"],
            "logger": {"format": "text"},
            "db": {"type": "bbolt", "dataSource": str(directory / "db")},
            "authority": {
                "provisioners": [{"type": "ACME", "name": PROVISIONER, "caaIdentities": list(caa_identities)}]
            },
        }
        (directory / "ca.json").write_text(json.dumps(config))

    def __enter__(self) -> StepCA:
        argv = [
            str(self._binary),
            str(self._directory / "ca.json"),
            f"--resolver={self.dns_server}",
            "--insecure",
            f"--acme-http-port={self.http01_port}",
        ]
        log = self._directory / f"step-ca-{int(time.time() * 1000)}.log"
        self._process = start_until_ready("step-ca", argv, log, self._ready, _READY_TIMEOUT)
        return self

    def _ready(self) -> bool:
        context = ssl.create_default_context(cadata=self.ca_bundle.decode("ascii"))
        try:
            with urllib.request.urlopen(self.url, context=context, timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False


def _write_authority(directory: Path) -> bytes:
    """Write step-ca's root certificate and its intermediate CA's key pair; the root's PEM."""
    now = datetime.datetime.now(datetime.UTC)
    spec = KeySpec(KeyAlgorithm.ECDSA, 256)
    root_key = generate_private_key(spec)
    lifetime = datetime.timedelta(days=30)
    root = self_sign(
        CertificateTemplate(common_name="certsmith test step-ca root", is_ca=True, duration=lifetime),
        root_key,
        now,
    ).certificate
    key = generate_private_key(spec)
    intermediate = sign_with_authority(
        CertificateTemplate(
            common_name="certsmith test step-ca intermediate",
            is_ca=True,
            duration=lifetime,
        ),
        key.public_key(),
        SigningAuthority(root, root_key, (), root),
        now,
    )
    (directory / "root.crt").write_bytes(certificates_pem([root]))
    (directory / "intermediate.crt").write_bytes(certificates_pem([intermediate.certificate]))
    (directory / "intermediate.key").write_bytes(encode_private_key(key, KeyEncoding.PKCS8))
    return certificates_pem([root])


if __name__ == "__main__":
    print(ensure_step_ca())
