"""The floor: what issuing N Certificates costs without certsmith's engine — the same key
generations and signatures, and the same Secret writes and status patches, made directly with the
same client from 16 threads. certsmith's burst time is reported as a ratio to it (bench/ratio.py).

Two floors, both issued by a process of their own (as the operator is one), told of each
Certificate's index as it is made. **From creation**: the Certificates are made inside the timing by
the same 8 threads that make them for certsmith (bench/harness.py), and each is issued as soon as it
exists; certsmith is timed the same way, from the first Certificate made, so this is what an operator
that spent nothing on watching and deciding would take. **Issuing only**: the Certificates exist
before the timing starts (the floor of 2026-12-06 to 12-08); lower, as it leaves out making the
Certificates, which on 2 cores takes the same CPU as the issuing.

    python bench/floor.py --count 1000
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import queue
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
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


@dataclass(frozen=True)
class FloorRun:
    seconds: float
    cpu_seconds: float
    """The issuing process's CPU time from its start."""


def floor_run(bench: Cluster, namespace: str, count: int, key: str, from_creation: bool) -> FloorRun:
    """Issue `count` Certificates (named as bench/harness.py names them) by hand, in a process of its
    own as the operator is (one process would make the issuing and the making of the Certificates
    share one GIL): seconds to the last status patch from the first Certificate made
    (`from_creation`) or, with the Certificates made before, from the first key generation."""
    spawn = multiprocessing.get_context("spawn")
    made: multiprocessing.Queue[int] = spawn.Queue()
    answers: multiprocessing.Queue[tuple[float, float] | str] = spawn.Queue()
    issuer = spawn.Process(
        target=_issue_all, args=(str(bench.control_plane.kubeconfig), namespace, count, key, made, answers)
    )
    issuer.start()
    try:
        if _answer(answers, issuer, 60) != "ready":
            raise RuntimeError("the floor's issuing process did not start")
        private_key = {"algorithm": KEYS[key].algorithm.value}
        if from_creation:
            started = time.monotonic()
            create_certificates(bench, namespace, count, private_key, "nobody", then=made.put)
        else:
            create_certificates(bench, namespace, count, private_key, "nobody")
            started = time.monotonic()
            for index in range(count):
                made.put(index)
        finished = _answer(answers, issuer, max(300.0, count * 0.5))
    finally:
        made.cancel_join_thread()  # indices the issuing process will not read never hold this one
        issuer.join(timeout=30)
        issuer.kill()
        issuer.join()
    if isinstance(finished, tuple):
        return FloorRun(finished[0] - started, finished[1])
    raise RuntimeError(f"the floor's issuing failed: {finished}")


def _answer(
    answers: multiprocessing.Queue[tuple[float, float] | str], issuer: BaseProcess, timeout: float
) -> tuple[float, float] | str:
    """The issuing process's next answer, failing as soon as it has ended without one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return answers.get(timeout=1)
        except queue.Empty:
            if not issuer.is_alive():
                raise RuntimeError(
                    f"the floor's issuing process ended (exit code {issuer.exitcode})"
                ) from None
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the floor's issuing process did not answer within {timeout:.0f}s"
                ) from None


def _issue_all(
    kubeconfig: str,
    namespace: str,
    count: int,
    key: str,
    made: multiprocessing.Queue[int],
    answers: multiprocessing.Queue[tuple[float, float] | str],
) -> None:
    """The floor's issuing process: issues each Certificate whose index arrives on `made` from 16
    threads, then answers when the last was issued (time.monotonic is the machine's, not the
    process's) and with how much CPU."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = generate_private_key(KEYS["ecdsa"])
    ca = self_sign(CertificateTemplate(common_name="floor root", is_ca=True), ca_key, now)
    authority = SigningAuthority(ca.certificate, ca_key, (), ca.certificate)
    api = api_client_from_kubeconfig(Path(kubeconfig), connections=THREADS)
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

    answers.put("ready")
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            issued = [pool.submit(issue, made.get(timeout=600)) for _ in range(count)]
            for done in issued:
                done.result()
    except Exception as error:
        answers.put(f"{type(error).__name__}: {error}")
    else:
        answers.put((time.monotonic(), time.process_time()))


def floor(count: int, key: str, from_creation: bool) -> FloorRun:
    """`floor_run` on a control plane of its own."""
    with cluster() as bench:
        namespace = f"floor-{uuid.uuid4().hex[:6]}"
        create_namespace(bench, namespace)
        return floor_run(bench, namespace, count, key, from_creation)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, action="append", help="certificates per run (repeatable)")
    parser.add_argument("--key", choices=sorted(KEYS), default="ecdsa")
    arguments = parser.parse_args()
    rows = []
    for count in arguments.count or [1000]:
        for from_creation in (True, False):
            run = floor(count, arguments.key, from_creation)
            rows.append(
                {
                    "certificates": f"{count} {arguments.key}",
                    "floor": "from creation" if from_creation else "issuing only",
                    "seconds": f"{run.seconds:.1f}",
                    "per second": f"{count / run.seconds:.1f}",
                    "issuing CPU (s)": f"{run.cpu_seconds:.1f}",
                }
            )
    print(f"Machine: {machine()}\n")
    print_table(rows)


if __name__ == "__main__":
    main()
