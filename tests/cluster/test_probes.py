"""Watches that stop delivering: a connection to the API server that goes silent (frozen in a proxy
between them) is given up and listed again, and a watch thread that is stuck fails liveness."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client

from certsmith.health import HealthApp
from certsmith.kube.client import api_client_from_kubeconfig
from certsmith.kube.secrets import ObservedSecret
from certsmith.kube.watch import Listed, SecretEvent, SecretWatch, Selection, WatchTiming, as_is
from tests.cluster.proxy import ApiProxy
from tests.cluster.support import eventually
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster


def _proxied_api(cluster: Cluster, proxy: ApiProxy) -> client.ApiClient:
    api = api_client_from_kubeconfig(cluster.kubeconfig)
    api.configuration.host = f"https://127.0.0.1:{proxy.port}"
    return api


def test_a_watch_whose_connection_goes_silent_gives_up_and_lists_again(
    cluster: Cluster, proxy: ApiProxy, namespace: str
) -> None:
    listed: list[Listed[ObservedSecret]] = []

    def deliver(event: SecretEvent) -> None:
        if isinstance(event, Listed):
            listed.append(event)

    watch = SecretWatch(
        _proxied_api(cluster, proxy),
        namespace,
        Selection("type=Opaque"),
        deliver,
        as_is,
        WatchTiming(watch_seconds=2, read_grace=2),
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

    def deliver(event: SecretEvent) -> None:
        release.wait()

    timing = WatchTiming(watch_seconds=2)
    watch = SecretWatch(cluster.api, namespace, Selection("type=Opaque"), deliver, as_is, timing)
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
