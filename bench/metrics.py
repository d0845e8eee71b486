"""Metrics at scale: scrape time and RSS with every kubernetes.io/tls Secret of the cluster exported.

    python bench/metrics.py --tls-secrets 2000 --other-secrets 5000 --certificates 100

Two runs on fresh control planes, the operator watching all namespaces: one with only the
Certificates, one with the unmanaged TLS Secrets and other Secrets added. In each, once the scrape
shows every Secret, 30 scrapes are timed (from the request to the last byte, on loopback).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import statistics
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

from harness import (
    Cluster,
    ca_issuer,
    cluster,
    create_certificates,
    create_namespace,
    machine,
    operator,
    print_table,
    wait_all_ready,
)
from kubernetes import client

from certsmith.pki.encodings import certificates_pem
from certsmith.pki.keys import KeyAlgorithm, KeyEncoding, KeySpec, encode_private_key, generate_private_key
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import self_sign
from certsmith_devtools.kit import free_port

ECDSA = {"algorithm": "ECDSA", "size": 256}
SCRAPES = 30


def _create_secrets(bench: Cluster, tls: int, other: int) -> None:
    """`tls` unmanaged kubernetes.io/tls Secrets (one 2-certificate chain each) and `other` Opaque ones."""
    core = client.CoreV1Api(bench.api)
    namespaces = [f"legacy-{index}" for index in range(10)]
    for name in namespaces:
        create_namespace(bench, name)
    key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    now = datetime.datetime.now(datetime.UTC)
    leaf = self_sign(
        CertificateTemplate(common_name="legacy", duration=datetime.timedelta(days=20)), key, now
    )
    tls_data: dict[str, bytes | str] = {
        "tls.crt": base64.b64encode(certificates_pem([leaf.certificate, leaf.certificate])).decode(),
        "tls.key": base64.b64encode(encode_private_key(key, KeyEncoding.PKCS8)).decode(),
    }

    other_data: dict[str, bytes | str] = {"blob": base64.b64encode(b"x" * 2048).decode()}

    def create(index: int) -> None:
        is_tls = index < tls
        core.create_namespaced_secret(
            namespaces[index % 10],
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=f"{'tls' if is_tls else 'other'}-{index}"),
                type="kubernetes.io/tls" if is_tls else "Opaque",
                data=tls_data if is_tls else other_data,
            ),
        )

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(tls + other)))
    print(f"created {tls} TLS and {other} other Secrets in {time.monotonic() - started:.0f}s", flush=True)


def _scrape(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 -- loopback
        text = response.read().decode()
    return time.perf_counter() - started, text


def run(tls: int, other: int, certificates: int) -> dict[str, str]:
    with cluster() as bench:
        if tls or other:
            _create_secrets(bench, tls, other)
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        create_namespace(bench, namespace)
        port = free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        with operator(bench, "--metrics-port", str(port), "--metrics-address", "127.0.0.1") as running:
            issuer = ca_issuer(bench, namespace)
            create_certificates(bench, namespace, certificates, ECDSA, issuer)
            wait_all_ready(bench, namespace, certificates + 1, timeout=300)
            unmanaged = 'managed="false"'
            deadline = time.monotonic() + 120
            while _scrape(url)[1].count(unmanaged) < 2 * tls:  # tls.crt holds 2 certificates each
                if time.monotonic() > deadline:
                    raise TimeoutError("the scrape never showed every TLS Secret")
                time.sleep(0.5)
            seconds = [_scrape(url)[0] for _ in range(SCRAPES)]
            _, text = _scrape(url)
            rss = running.peak_rss_mib()
    return {
        "unmanaged TLS Secrets": str(tls),
        "other Secrets": str(other),
        "certificates": str(certificates),
        "series": str(sum(1 for line in text.splitlines() if line and not line.startswith("#"))),
        "bytes": str(len(text)),
        "scrape median (ms)": f"{statistics.median(seconds) * 1000:.1f}",
        "scrape max (ms)": f"{max(seconds) * 1000:.1f}",
        "peak RSS (MiB)": f"{rss:.0f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tls-secrets", type=int, default=2000)
    parser.add_argument("--other-secrets", type=int, default=5000)
    parser.add_argument("--certificates", type=int, default=100)
    arguments = parser.parse_args()
    print(f"Machine: {machine()}\n", flush=True)
    rows = [
        run(0, 0, arguments.certificates),
        run(arguments.tls_secrets, arguments.other_secrets, arguments.certificates),
    ]
    print_table(rows)


if __name__ == "__main__":
    main()
