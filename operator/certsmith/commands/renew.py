"""`certsmith renew`: ask the operator to renew Certificates now (the renew-requested-at annotation),
and with --wait report each once it is Ready with a new certificate."""

from __future__ import annotations

import datetime
import time
from typing import Any

from kubernetes import client

from certsmith.api import CERTIFICATES, GROUP, VERSION
from certsmith.commands.common import CommandError, ExitCode, body_of, listing, talking
from certsmith.commands.status import Scope, condition_summary
from certsmith.tls_secret import RENEW_REQUEST

_POLL_SECONDS = 0.5


def renew(
    api: client.ApiClient,
    scope: Scope,
    names: list[str],
    selector: str | None,
    wait: float | None,
) -> int:
    """Renew `names`, or every Certificate in scope matching `selector` when `names` is empty."""
    objects = client.CustomObjectsApi(api)
    targets = [(scope.namespace, name) for name in names] or _selected(objects, scope, selector)
    if not targets:
        raise CommandError(ExitCode.NOT_FOUND, "no Certificate matches")
    requested = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    revisions = {}
    for namespace, name in targets:
        where = f"certificates.{GROUP} {name} in namespace {namespace}"
        with talking(f"get {where}"):
            body = body_of(
                objects.get_namespaced_custom_object(GROUP, VERSION, namespace, CERTIFICATES, name)
            )
        revisions[(namespace, name)] = (body.get("status") or {}).get("revision") or 0
        with talking(f"patch {where}"):
            objects.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                CERTIFICATES,
                name,
                {"metadata": {"annotations": {RENEW_REQUEST: requested}}},
            )
        print(f"certificate {namespace}/{name}: renewal requested")
    if wait is None:
        return ExitCode.OK
    return _wait(objects, revisions, time.monotonic() + wait)


def _selected(objects: client.CustomObjectsApi, scope: Scope, selector: str | None) -> list[tuple[str, str]]:
    options: dict[str, Any] = {"label_selector": selector} if selector else {}
    if scope.all_namespaces:
        with listing(f"list certificates.{GROUP} in all namespaces"):
            listed = objects.list_cluster_custom_object(GROUP, VERSION, CERTIFICATES, **options)
    else:
        with listing(f"list certificates.{GROUP} in namespace {scope.namespace}"):
            listed = objects.list_namespaced_custom_object(
                GROUP, VERSION, scope.namespace, CERTIFICATES, **options
            )
    return sorted(
        (item["metadata"]["namespace"], item["metadata"]["name"]) for item in body_of(listed)["items"]
    )


def _wait(objects: client.CustomObjectsApi, revisions: dict[tuple[str, str], int], deadline: float) -> int:
    waiting = dict(revisions)
    while waiting:
        for (namespace, name), before in list(waiting.items()):
            with talking(f"get certificates.{GROUP} {name} in namespace {namespace}"):
                body = body_of(
                    objects.get_namespaced_custom_object(GROUP, VERSION, namespace, CERTIFICATES, name)
                )
            status = body.get("status") or {}
            ready = condition_summary(body)["status"] == "True"
            if ready and int(status.get("revision") or 0) > before:
                revision, until = status["revision"], status.get("notAfter")
                print(f"certificate {namespace}/{name}: renewed (revision {revision}, valid until {until})")
                del waiting[(namespace, name)]
        if waiting and time.monotonic() > deadline:
            for namespace, name in waiting:
                hint = f"certsmith status {name} -n {namespace} says why"
                print(f"certificate {namespace}/{name}: not renewed yet ({hint})")
            return ExitCode.NOT_READY
        if waiting:
            time.sleep(_POLL_SECONDS)
    return ExitCode.OK
