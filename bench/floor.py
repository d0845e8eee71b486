"""The floor: what issuing N Certificates costs without certsmith's engine — the same key
generations and signatures, and the same Secret writes and status patches, made directly with the
same client from 16 threads. certsmith's burst time is reported as a ratio to it (bench/ratio.py).

Two floors. **From creation**: the Certificates are made inside the timing by the same 8 threads
that make them for certsmith (bench/harness.py), and each is issued as soon as it exists; certsmith
is timed the same way, from the first Certificate made, so this is what an operator that wasted
nothing would take. **Issuing only**: the Certificates exist before the timing starts (the floor of
2026-12-06 to 12-08); lower, as it leaves out making the Certificates, which on 2 cores competes with
the issuing for the same CPU.

    python bench/floor.py --count 1000
"""

from __future__ import annotations

import argparse
import datetime
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from harness import Cluster, cluster, create_certificates, create_namespace, machine, print_table
from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith.api.status import timestamp
from certsmith.kube.client import api_client_from_kubeconfig
from certsmith.kube.core import Resources
from certsmith.kube.secrets import secret_body
from certsmith.pki.encodings import certificates_pem
from certsmith.pki.keys import KeyAlgorithm, KeyEncoding, KeySpec, encode_private_key, generate_private_key
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import SigningAuthority, self_sign, sign_with_authority
from certsmith.tls_secret import CERTIFICATE_NAME, MANAGED_LABEL, SecretContents

THREADS = 16
KEYS = {"ecdsa": KeySpec(KeyAlgorithm.ECDSA, 256), "rsa": KeySpec(KeyAlgorithm.RSA, 2048)}
"""As bench/burst.py's private keys."""


def floor_seconds(bench: Cluster, namespace: str, count: int, key: str, from_creation: bool) -> float:
    """Issue `count` Certificates (named as bench/harness.py names them) by hand: seconds to the last
    status patch from the first Certificate made (`from_creation`) or, with the Certificates made
    before, from the first key generation."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = generate_private_key(KEYS["ecdsa"])
    ca = self_sign(CertificateTemplate(common_name="floor root", is_ca=True), ca_key, now)
    authority = SigningAuthority(ca.certificate, ca_key, (), ca.certificate)
    api = api_client_from_kubeconfig(bench.control_plane.kubeconfig, connections=THREADS)
    core, objects = Resources(api), client.CustomObjectsApi(api)

    def issue(index: int) -> None:
        name = f"cert-{index:05d}"
        key_pair = generate_private_key(KEYS[key])
        template = CertificateTemplate(dns_names=(f"host-{index}.example.com",))
        issued = sign_with_authority(template, key_pair.public_key(), authority, now)
        contents = SecretContents(
            labels={MANAGED_LABEL: "true"},
            annotations={CERTIFICATE_NAME: name},
            data={
                "tls.crt": certificates_pem([issued.certificate]),
                "tls.key": encode_private_key(key_pair, KeyEncoding.PKCS1),
                "ca.crt": certificates_pem([ca.certificate]),
            },
        )
        core.create("secrets", namespace, secret_body(namespace, name, contents, None, None))
        status: dict[str, Any] = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Issued",
                    "message": "issued by the floor",
                    "lastTransitionTime": timestamp(now),
                    "observedGeneration": 1,
                }
            ],
            "notBefore": timestamp(issued.certificate.not_valid_before_utc),
            "notAfter": timestamp(issued.certificate.not_valid_after_utc),
            "revision": 1,
        }
        objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "certificates", name, {"status": status}
        )

    private_key = {"algorithm": KEYS[key].algorithm.value}
    if not from_creation:
        create_certificates(bench, namespace, count, private_key, "nobody")
    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        issued: list[Future[None]] = []
        if from_creation:
            create_certificates(
                bench,
                namespace,
                count,
                private_key,
                "nobody",
                then=lambda index: issued.append(pool.submit(issue, index)),
            )
        else:
            issued = [pool.submit(issue, index) for index in range(count)]
        for done in issued:
            done.result()
    return time.monotonic() - started


def floor(count: int, key: str, from_creation: bool) -> float:
    """`floor_seconds` on a control plane of its own."""
    with cluster() as bench:
        namespace = f"floor-{uuid.uuid4().hex[:6]}"
        create_namespace(bench, namespace)
        return floor_seconds(bench, namespace, count, key, from_creation)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, action="append", help="certificates per run (repeatable)")
    parser.add_argument("--key", choices=sorted(KEYS), default="ecdsa")
    arguments = parser.parse_args()
    rows = [
        {
            "certificates": f"{count} {arguments.key}",
            "floor from creation (s)": f"{floor(count, arguments.key, True):.1f}",
            "floor, issuing only (s)": f"{floor(count, arguments.key, False):.1f}",
        }
        for count in arguments.count or [1000]
    ]
    print(f"Machine: {machine()}\n")
    print_table(rows)


if __name__ == "__main__":
    main()
