"""Serving /metrics: the registry (certsmith's collector, its counters, the process metrics) rendered
per scrape, followed by the TLS-Secret series, rendered only when the scanner's facts change — they are
most of the series on a cluster with many TLS Secrets, and formatting them is most of a scrape's cost."""

from __future__ import annotations

import logging
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest

from certsmith.metrics.collector import TLSSecretCollector
from certsmith.metrics.scanner import TLSSecretScanner
from certsmith.settings import OperatorSettings

logger = logging.getLogger("certsmith")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def metrics_registry() -> CollectorRegistry:
    """A registry with the process and platform metrics; certsmith's own join it."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class MetricsApp:
    """The WSGI application behind /metrics.

    A scrape's answer is two parts, the TLS-Secret series being the rendered bytes themselves, never
    a copy joined to the rest: each scrape is served by a thread of its own, and the operator has more
    threads than glibc has malloc arenas (8 per core), so each new thread takes the next arena in turn,
    which keeps a freed buffer of that size (1.6 MB with 2,000 TLS Secrets). A body joined anew per
    scrape left one in every arena: +23 MiB RSS within 20 scrapes in bench/metrics.py."""

    def __init__(self, registry: CollectorRegistry, tls_secrets: TLSSecretScanner | None) -> None:
        self._registry = registry
        self._tls_secrets = tls_secrets
        self._lock = threading.Lock()
        self._rendered: tuple[int, bytes] = (-1, b"")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"certsmith serves /metrics\n"]
        series = generate_latest(self._registry)
        tls_secrets = self.tls_secret_series()
        length = str(len(series) + len(tls_secrets))
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", length)])
        return [series, tls_secrets]

    def tls_secret_series(self) -> bytes:
        if self._tls_secrets is None:
            return b""
        version, facts = self._tls_secrets.snapshot()
        with self._lock:
            if self._rendered[0] != version:
                registry = CollectorRegistry(auto_describe=False)
                registry.register(TLSSecretCollector(facts))
                self._rendered = (version, generate_latest(registry))
            return self._rendered[1]


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """One line per scrape would drown the operator's own log."""


def serve_metrics(app: MetricsApp, settings: OperatorSettings) -> None:
    """Serve `app` from a daemon thread, unless metrics_port is 0."""
    if not settings.metrics_port:
        return
    serve_wsgi(
        app,
        settings.metrics_address,
        settings.metrics_port,
        "metrics",
        settings.metrics_tls_cert,
        settings.metrics_tls_key,
    )


def serve_wsgi(
    app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
    address: str,
    port: int,
    name: str,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> None:
    """Serve a WSGI application from daemon threads (one per request), over HTTPS given a certificate."""
    server = make_server(address, port, app, _Server, handler_class=_QuietHandler)
    if certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    logger.info("serving %s at %s://%s:%d", name, "https" if certfile else "http", address, port)
