"""Serving /metrics: one registry with certsmith's collector, its counters and the process metrics."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, start_http_server

from certsmith.metrics.collector import CertsmithCollector
from certsmith.settings import OperatorSettings

logger = logging.getLogger("certsmith")


def metrics_registry() -> CollectorRegistry:
    """A registry with the process and platform metrics; certsmith's own join it."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def serve_metrics(
    registry: CollectorRegistry, collector: CertsmithCollector, settings: OperatorSettings
) -> None:
    """Serve `registry` (with `collector`) from a daemon thread, unless metrics_port is 0."""
    registry.register(collector)
    if not settings.metrics_port:
        return
    start_http_server(
        settings.metrics_port,
        settings.metrics_address,
        registry=registry,
        certfile=settings.metrics_tls_cert,
        keyfile=settings.metrics_tls_key,
    )
    scheme = "https" if settings.metrics_tls_cert else "http"
    logger.info(
        "serving metrics at %s://%s:%d/metrics", scheme, settings.metrics_address, settings.metrics_port
    )
