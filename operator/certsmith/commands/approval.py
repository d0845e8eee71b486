"""`certsmith approve` and `certsmith deny`: decide a CertificateRequest, as the person running it.

The API server checks that person's right (the approval policy: the verb approve on
signers.certsmith.dev); its refusal is printed as it gave it, since it names the missing rule.
"""

from __future__ import annotations

import datetime
import json

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.api import CERTIFICATE_REQUESTS, GROUP, VERSION
from certsmith.api.certificate_request import APPROVED, DENIED, Decision, decision_of
from certsmith.api.status import condition
from certsmith.commands.common import CommandError, ExitCode, body_of, talking
from certsmith.kube.port import HTTP_CONFLICT, HTTP_FORBIDDEN

_HTTP_INVALID = 422
_ATTEMPTS = 3


def decide(api: client.ApiClient, namespace: str, name: str, approve: bool, reason: str, message: str) -> int:
    """Set Approved (or Denied) on the CertificateRequest `name`; a decision already made is final."""
    wanted = Decision.APPROVED if approve else Decision.DENIED
    objects = client.CustomObjectsApi(api)
    where = f"certificaterequests.{GROUP} {name} in namespace {namespace}"
    for _ in range(_ATTEMPTS):
        with talking(f"get {where}"):
            body = body_of(
                objects.get_namespaced_custom_object(GROUP, VERSION, namespace, CERTIFICATE_REQUESTS, name)
            )
        status = body.get("status") or {}
        decided = decision_of(status)
        if decided is wanted:
            print(f"certificaterequest {namespace}/{name}: already {decided.value.lower()}")
            return ExitCode.OK
        if decided is not Decision.UNDECIDED:
            raise CommandError(
                ExitCode.FAILED,
                f"certificaterequest {namespace}/{name} is already {decided.value.lower()}; that is final "
                f"(create a new CertificateRequest)",
            )
        previous = status.get("conditions") or []
        now = datetime.datetime.now(datetime.UTC)
        decision = condition(APPROVED if approve else DENIED, True, reason, message, None, previous, now)
        patch = {
            "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
            "status": {"conditions": [*previous, decision]},
        }
        try:
            objects.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, CERTIFICATE_REQUESTS, name, patch
            )
        except ApiException as error:
            if error.status == HTTP_CONFLICT:
                continue  # changed since read (the operator wrote its status): read it again
            if error.status in (HTTP_FORBIDDEN, _HTTP_INVALID):
                raise CommandError(ExitCode.FAILED, f"the API server refused: {_message(error)}") from None
            with talking(f"patch {where}/status"):
                raise
        print(f"certificaterequest {namespace}/{name}: {wanted.value.lower()}")
        return ExitCode.OK
    raise CommandError(ExitCode.FAILED, f"{where} kept changing; try again")


def _message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return str(error.reason)
