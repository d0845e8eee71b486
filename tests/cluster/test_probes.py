"""Watches that stop delivering: a connection to the API server that goes silent (frozen in a proxy
between them) is given up and listed again, and a watch thread that is stuck fails liveness."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from kubernetes import client

from certsmith.health import HealthApp
from certsmith.kube.client import api_client_from_kubeconfig
from certsmith.kube.watch import Changed, Listed, SecretWatch
from tests.cluster.support import eventually
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster


class FreezingProxy:
    """A TCP proxy on loopback to the API server whose connections can be frozen: while frozen it
    forwards nothing either way and closes nothing, as a network path that died silently."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self.flowing.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with source, sink:
            while not self._closed.is_set():
                try:
                    data = source.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                self.flowing.wait()
                try:
                    sink.sendall(data)
                except OSError:
                    return


@pytest.fixture
def proxy(cluster: Cluster) -> Iterator[FreezingProxy]:
    server = urlparse(cluster.api.configuration.host)
    running = FreezingProxy((server.hostname or "127.0.0.1", server.port or 443))
    yield running
    running.close()


def _proxied_api(cluster: Cluster, proxy: FreezingProxy) -> client.ApiClient:
    api = api_client_from_kubeconfig(cluster.kubeconfig)
    api.configuration.host = f"https://127.0.0.1:{proxy.port}"
    return api


def test_a_watch_whose_connection_goes_silent_gives_up_and_lists_again(
    cluster: Cluster, proxy: FreezingProxy, namespace: str
) -> None:
    listed: list[Listed] = []

    def deliver(event: Listed | Changed) -> None:
        if isinstance(event, Listed):
            listed.append(event)

    watch = SecretWatch(
        _proxied_api(cluster, proxy), namespace, "type=Opaque", deliver, watch_seconds=2, read_grace=2
    )
    watch.start()
    try:
        eventually(lambda: len(listed) == 1, 10, "the first listing")
        proxy.flowing.clear()
        frozen_at = time.monotonic()
        time.sleep(6)
        assert watch.last_active > frozen_at, "the watch gave up its silent connection and retried"
        assert watch.stuck(time.monotonic()) is None
        proxy.flowing.set()
        eventually(lambda: len(listed) >= 2, 30, "a new listing once the connection works again")
    finally:
        watch.stop()


def test_a_stuck_watch_fails_liveness(cluster: Cluster, namespace: str) -> None:
    release = threading.Event()

    def deliver(event: Listed | Changed) -> None:
        release.wait()

    watch = SecretWatch(cluster.api, namespace, "type=Opaque", deliver, watch_seconds=2)
    watch.start()
    try:
        time.sleep(1)
        app = HealthApp(time.monotonic, lambda: None, lambda: watch.stuck(time.monotonic() + 300))
        statuses: list[str] = []
        body = b"".join(app({"PATH_INFO": "/healthz"}, lambda status, headers: statuses.append(status)))
        assert statuses == ["503 Service Unavailable"], body
        assert f"the watch {watch.name} has made no progress" in body.decode()
        assert watch.stuck(time.monotonic()) is None, "a watch blocked for a moment is not stuck yet"
    finally:
        release.set()
        watch.stop()
