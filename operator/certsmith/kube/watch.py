"""Watches of single Secrets that certsmith reads but does not manage (CA key pairs, keystore passwords).

Managed Secrets come from one label-selected watch. The Secrets that issuers and keystores *refer to*
carry no label of ours, and watching every Secret of the cluster to see a handful would cost memory
with each bystander Secret. So each referenced Secret gets a watch of its own, selected by name on
the server: a thread blocked in one long request, costing nothing while the Secret is unchanged.
Their number is the number of distinct referenced Secrets, not of Certificates.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from certsmith.kube.secrets import ObservedSecret, observed_from_model, observed_secret

logger = logging.getLogger("certsmith")

Deliver = Callable[[ObservedSecret | None], None]
_WATCH_SECONDS = 60
"""Each watch request ends after this long and is renewed; a stopped watch is noticed by then."""
_RETRY_SECONDS = (1, 2, 5, 10, 30)
_HTTP_GONE = 410


class SecretWatch:
    """Delivers the Secret `namespace/name` (None while it does not exist) whenever it changes,
    starting with its current state. `deliver` is called from the watch's own thread."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str, deliver: Deliver) -> None:
        self._core = client.CoreV1Api(api)
        self.namespace = namespace
        self.name = name
        self._deliver = deliver
        self._stopped = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"secret-watch-{namespace}/{name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()  # type: ignore[no-untyped-call]

    def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                self._list_and_watch()
                failures = 0
            except Exception as error:  # the API server refused, or a connection broke: watch again
                failures += 1
                delay = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS)) - 1]
                cause = (
                    f"the API server answered {error.status} {error.reason}"
                    if isinstance(error, ApiException)
                    else type(error).__name__  # never the message: it could echo a Secret
                )
                logger.warning(
                    "watching Secret %s/%s failed (%s); retrying in %ds",
                    self.namespace,
                    self.name,
                    cause,
                    delay,
                )
                self._stopped.wait(delay)

    def _list_and_watch(self) -> None:
        selector = f"metadata.name={self.name}"
        listed = self._core.list_namespaced_secret(self.namespace, field_selector=selector)
        items = [observed_from_model(item) for item in listed.items]
        self._deliver(items[0] if items else None)
        resource_version = listed.metadata.resource_version if listed.metadata else None
        while not self._stopped.is_set():
            self._watch = watch.Watch()  # type: ignore[no-untyped-call]
            stream = self._watch.stream(  # type: ignore[no-untyped-call]
                self._core.list_namespaced_secret,
                self.namespace,
                field_selector=selector,
                resource_version=resource_version,
                timeout_seconds=_WATCH_SECONDS,
            )
            for event in stream:
                if self._stopped.is_set():
                    return
                body = event["raw_object"]
                if event["type"] == "ERROR":
                    if body.get("code") == _HTTP_GONE:
                        return  # too old to resume: list again
                    raise ApiException(status=body.get("code"), reason=body.get("reason"))
                resource_version = (body.get("metadata") or {}).get("resourceVersion", resource_version)
                if event["type"] == "DELETED":
                    self._deliver(None)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    self._deliver(observed_secret(body))
