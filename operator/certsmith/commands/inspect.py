"""`certsmith inspect secret NAME`: any TLS Secret, managed by certsmith or not, told for people."""

from __future__ import annotations

import base64
import datetime

from kubernetes import client

from certsmith.commands.common import CommandError, ExitCode, print_structured, talking
from certsmith.commands.status import report_lines
from certsmith.pki import PKIError
from certsmith.pki.report import tls_report


def inspect_secret(api: client.ApiClient, namespace: str, name: str, output: str | None) -> int:
    with talking(f"get secrets {name} in namespace {namespace}"):
        secret = client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    data = {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}
    now = datetime.datetime.now(datetime.UTC)
    try:
        report = tls_report(data, now)
    except PKIError as error:
        raise CommandError(ExitCode.FAILED, f"Secret {namespace}/{name}: {error}") from None
    if output:
        print_structured(
            {
                "secret": f"{namespace}/{name}",
                "type": secret.type,
                "chain": [facts.__dict__ for facts in report.chain],
                "roots": [facts.__dict__ for facts in report.roots],
                "key": report.key,
                "warnings": list(report.warnings),
            },
            output,
        )
    else:
        print(f"Secret {namespace}/{name} ({secret.type})")
        for line in report_lines(report, now):
            print(f"  {line}")
    return ExitCode.OK
