"""kopf wiring, and nothing else: watch events go to the runtime, which does the work."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from certsmith.api import GROUP, VERSION
from certsmith.controller import CERTIFICATES, CLUSTER_ISSUERS, ISSUERS
from certsmith.kube.client import in_cluster
from certsmith.runtime import DELETED, Runtime
from certsmith.tls_secret import MANAGED_LABEL


def operator_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # certsmith posts its own Events, one per outcome
    settings.watching.label_selectors["v1", "secrets"] = f"{MANAGED_LABEL}=true"  # filtered by the API server
    return settings


def operator_registry(runtime: Runtime) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    tasks: list[asyncio.Task[None]] = []

    @kopf.on.login(registry=registry)
    def login(
        settings: kopf.OperatorSettings, logger: kopf.Logger, **_: object
    ) -> kopf.ConnectionInfo | None:
        """kopf's watches use the credentials of certsmith's own client, so both act as one identity."""
        if in_cluster():
            return kopf.login_with_service_account(settings=settings, logger=logger)
        configuration = runtime.controller.api.configuration
        header = configuration.get_api_key_with_prefix("BearerToken") or ""
        scheme, _separator, token = header.rpartition(" ")
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
            scheme=scheme or None,
            token=token or None,
        )

    @kopf.on.startup(registry=registry)
    async def start(**_: object) -> None:
        tasks.append(asyncio.create_task(runtime.run(), name="certsmith-runtime"))

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: object) -> None:
        for task in tasks:
            task.cancel()

    @kopf.on.event(GROUP, VERSION, CERTIFICATES, registry=registry)
    async def certificate_changed(event: kopf.RawEvent, **_: object) -> None:
        runtime.custom_object_event(CERTIFICATES, event.get("type"), event["object"])

    for plural in (ISSUERS, CLUSTER_ISSUERS):
        _watch_before_certificates(registry, plural, functools.partial(runtime.custom_object_event, plural))
    _watch_before_certificates(registry, "secrets", runtime.secret_event)

    return registry


def _watch_before_certificates(
    registry: kopf.OperatorRegistry, plural: str, deliver: Callable[[str | None, Mapping[str, Any]], None]
) -> None:
    """Watch Issuers, ClusterIssuers or Secrets so that their initial listing is complete before the
    first Certificate event is handled.

    kopf holds back every handler until all resources with an index handler are fully listed, and
    runs index handlers during that listing; so the store sees each Secret and issuer first, and a
    restart never mistakes a not-yet-listed Secret for a missing one. The index itself stays empty.
    Index handlers are not called for deletions, which the event handler delivers. Both handlers
    are coroutines: kopf would run plain functions in threads, and the runtime's queue is not
    thread-safe.
    """
    group, version = ("", "v1") if plural == "secrets" else (GROUP, VERSION)

    @kopf.index(group, version, plural, registry=registry)
    async def listed(body: kopf.Body, **_: object) -> dict[str, object]:
        deliver(None, _plain(body))
        return {}

    @kopf.on.event(group, version, plural, registry=registry)
    async def deleted(event: kopf.RawEvent, **_: object) -> None:
        if event.get("type") == DELETED:
            deliver(DELETED, event["object"])


def _plain(value: Any) -> Any:  # noqa: ANN401 -- any JSON value
    """A plain-dict copy of a kopf body view, detached from kopf's memory."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
