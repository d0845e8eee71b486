"""kopf wiring, and nothing else: watch events go to the runtime, which does the work."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import kopf
from kopf._cogs.structs import bodies, dicts, ephemera
from kopf._core.reactor import inventory

from certsmith.api import (
    CERTIFICATE_REQUESTS,
    CERTIFICATES,
    CLUSTER_ISSUERS,
    GATEWAYS,
    GROUP,
    INGRESSES,
    ISSUERS,
    VERSION,
)
from certsmith.api.bundle import BUNDLE_LABEL, BUNDLES
from certsmith.api.pod_certificate_request import (
    POD_CERTIFICATE_REQUESTS,
    POD_CERTIFICATES_GROUP,
    POD_CERTIFICATES_VERSION,
)
from certsmith.kube.client import in_cluster
from certsmith.kube.trust import CONFIG_MAPS
from certsmith.runtime import Runtime
from certsmith.tls_secret import MANAGED_LABEL


def operator_settings(namespaced: bool) -> kopf.OperatorSettings:
    """`namespaced`: no cluster-wide rights, so kopf neither watches CRDs nor namespaces."""
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # certsmith posts its own Events, one per outcome
    settings.watching.label_selectors["v1", "secrets"] = f"{MANAGED_LABEL}=true"  # filtered by the API server
    settings.watching.label_selectors["v1", "configmaps"] = BUNDLE_LABEL  # only Bundles' targets
    settings.scanning.disabled = namespaced
    settings.queueing.idle_timeout = _IDLE_WORKER_SECONDS
    settings.persistence.diffbase_storage = NoDiffBase()
    return settings


_IDLE_WORKER_SECONDS = 0.5
"""How long kopf keeps an object's worker after its last event (kopf's default: 5 s). The worker holds
that event's whole body meanwhile: in a burst, every object of the cluster that changed within the last
5 s, held shard or not. With 4 replicas issuing 10,000 Certificates at 75 per second, each replica
peaked at 105-106 MiB with 0.5 s against 119-120 MiB with 5 s (bench/shards.py). certsmith's handlers
take an event and return at once, so a worker is worth keeping only for the events that follow right
after (a status patch's, a Secret write's)."""


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf extracts each event's "essence" (a deep copy of the body without its status and system
    fields) to diff it with the last handled one, which only change handlers (`kopf.on.create`,
    `.update`, ...) use. certsmith registers event handlers only, so the essence is empty: that copy
    was an eighth of the operator's busiest thread in a burst of 1,000 Certificates (py-spy)."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[dicts.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()


class NoMemories(inventory.ResourceMemories):
    """kopf keeps a memory of every object it has seen until the object is deleted (for daemons,
    timers, indexes and the progress of change handlers): about 1 KiB for each Certificate and managed
    Secret of the cluster, in every replica, held or not. certsmith registers event handlers only,
    which need none of it, so no object is remembered between its events."""

    async def recall(
        self,
        raw_body: bodies.RawBody,
        *,
        memobase: ephemera.AnyMemo | None = None,
        noticed_by_listing: bool = False,
        ephemeral: bool = False,
    ) -> inventory.ResourceMemory:
        return await super().recall(
            raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing, ephemeral=True
        )


def operator_registry(runtime: Runtime) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(
        settings: kopf.OperatorSettings, logger: kopf.Logger, **_: object
    ) -> kopf.ConnectionInfo | None:
        """kopf's watches use the credentials of certsmith's own client, so both act as one identity."""
        if in_cluster():
            return kopf.login_with_service_account(settings=settings, logger=logger)
        configuration = runtime.api.configuration
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
        runtime.start()

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: object) -> None:
        runtime.shutdown()

    plurals = (CERTIFICATES, CERTIFICATE_REQUESTS, ISSUERS) + (
        () if runtime.settings.namespaced else (CLUSTER_ISSUERS,)
    )
    for plural in plurals:
        _watch(registry, GROUP, VERSION, plural, functools.partial(runtime.custom_object_event, plural))
    _watch(registry, "", "v1", "secrets", runtime.secret_event)
    _watch(
        registry,
        "networking.k8s.io",
        "v1",
        INGRESSES,
        functools.partial(runtime.custom_object_event, INGRESSES),
    )
    if not runtime.settings.namespaced:  # signing for a signer name needs a ClusterRole
        _watch(
            registry,
            POD_CERTIFICATES_GROUP,
            POD_CERTIFICATES_VERSION,
            POD_CERTIFICATE_REQUESTS,
            functools.partial(runtime.custom_object_event, POD_CERTIFICATE_REQUESTS),
        )
    if not runtime.settings.namespaced:  # served if the Gateway API is installed when kopf scans (at start)
        _watch(
            registry,
            "gateway.networking.k8s.io",
            "v1",
            GATEWAYS,
            functools.partial(runtime.custom_object_event, GATEWAYS),
        )

    if not runtime.settings.namespaced:  # Bundles are cluster-scoped and write into any namespace
        _watch(registry, GROUP, VERSION, BUNDLES, functools.partial(runtime.custom_object_event, BUNDLES))
        _watch(registry, "", "v1", "namespaces", runtime.namespace_event)
        _watch(registry, "", "v1", CONFIG_MAPS, functools.partial(runtime.bundle_target_event, CONFIG_MAPS))

    return registry


def _watch(
    registry: kopf.OperatorRegistry,
    group: str,
    version: str,
    plural: str,
    deliver: Callable[[str | None, Mapping[str, Any]], None],
) -> None:
    @kopf.on.event(group, version, plural, registry=registry)
    async def changed(event: kopf.RawEvent, **_: object) -> None:
        deliver(event.get("type"), event["object"])
