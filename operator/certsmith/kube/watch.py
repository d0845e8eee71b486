"""Watches of Secrets that kopf's one Secret watch does not see, each in a thread of its own.

Managed Secrets come from one label-selected watch (kopf). Two other views are needed, both selected
on the server so that bystander Secrets cost nothing:

- single Secrets that issuers and keystores *refer to* (CA key pairs, keystore passwords), selected
  by name: their number is the number of distinct referenced Secrets, not of Certificates;
- every `kubernetes.io/tls` Secret, selected by type, for the expiry metrics (the consumer keeps
  parsed facts, never the Secret);
- the Secrets that Bundles made (their targets), selected by the label `certsmith.dev/bundle`.

A watch lists first (paginated) and delivers the whole listing, then each change; after an error or
an expired resourceVersion it lists again, so its consumer always converges on the truth.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.kube.core import Resources, Watching
from certsmith.kube.port import key_of
from certsmith.kube.secrets import ObservedSecret, observed_secret

logger = logging.getLogger("certsmith")

Key = tuple[str, str]
_CONNECT_SECONDS = 10
_PAGE = 500
_RETRY_SECONDS = (1, 2, 5, 10, 30)
_HTTP_GONE = 410


T = TypeVar("T")


@dataclass(frozen=True)
class Listed(Generic[T]):
    """Every Secret the watch selects, as of one moment: replaces what the consumer knew."""

    secrets: dict[Key, T]


@dataclass(frozen=True)
class Changed(Generic[T]):
    key: Key
    secret: T | None
    """None: deleted, or no longer selected."""


@dataclass(frozen=True)
class Selection:
    """Which Secrets a watch delivers: those the API server selects by `fields` (and `labels`), and
    of those the ones whose key `keys` accepts (another is skipped in a listing, and delivered as
    deleted when it changes, so that a consumer that held it forgets it)."""

    fields: str
    labels: str | None = None
    keys: Callable[[Key], bool] = field(default=lambda key: True)


SecretEvent = Listed[ObservedSecret] | Changed[ObservedSecret]
"""What a watch delivers whose conversion is `as_is`."""


def as_is(secret: ObservedSecret) -> ObservedSecret:
    """The conversion of a watch that delivers Secrets as they are."""
    return secret


@dataclass(frozen=True)
class WatchTiming:
    watch_seconds: int = 60
    """Each watch request ends after this long and is renewed; a stopped watch is noticed by then."""
    read_grace: int = 30
    """A read that waits this much longer than the watch's own end means a dead connection (nothing,
    not even the server's end of the watch, arrived): it fails, and the watch lists again."""


def retry_delay(failures: int) -> int:
    """Seconds to wait after the `failures`-th failure in a row of a listing or watch (1, 2, 5, 10,
    then every 30 s): quick after a blip, gentle on an API server that is down."""
    return _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS)) - 1]


class SecretWatch(Generic[T]):
    """Delivers the Secrets `selection` selects in `namespace` (all if None), each as `convert` makes
    it of the Secret: a listing keeps only what the consumer keeps (the TLS Secret scanner keeps a few
    facts, not the Secret). `deliver` is called from the watch's own thread."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str | None,
        selection: Selection,
        deliver: Callable[[Listed[T] | Changed[T]], None],
        convert: Callable[[ObservedSecret], T],
        timing: WatchTiming = WatchTiming(),
    ) -> None:
        self._watch_seconds = timing.watch_seconds
        self._timeout = (_CONNECT_SECONDS, timing.watch_seconds + timing.read_grace)
        self.last_active = time.monotonic()
        """When the watch's thread last made progress (a request, an event, a retry), monotonic. A
        watch silent for longer than a request can take is stuck: see `stuck`."""
        self._core = Resources(api)
        self.namespace = namespace
        self._selection = selection
        self._deliver = deliver
        self._convert = convert
        self._stopped = threading.Event()
        self._relist = threading.Event()
        self._watch: Watching | None = None
        self._thread = threading.Thread(
            target=self._run,
            name=f"secret-watch {namespace or '*'} {selection.fields} {selection.labels or ''}".rstrip(),
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    @property
    def name(self) -> str:
        return self._thread.name

    def stuck(self, now: float) -> str | None:
        """Why the watch is stuck: its thread made no progress for longer than any of its requests
        (or waits between them) can take; None if it is not."""
        silent = now - self.last_active
        if not self._thread.is_alive() or silent <= sum(self._timeout) + max(_RETRY_SECONDS):
            return None
        return f"the watch {self.name} has made no progress for {silent:.0f}s"

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()

    def relist(self) -> None:
        """List again (for Secrets the selection's `keys` now accept), at the latest when the watch
        request under way ends (`watch_seconds`)."""
        self._relist.set()
        if self._watch is not None:
            self._watch.stop()

    def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            self.last_active = time.monotonic()
            try:
                self._list_and_watch()
                failures = 0
            except Exception as error:  # the API server refused, or a connection broke: watch again
                if self._stopped.is_set() or self._relist.is_set():
                    continue  # `stop` or `relist` shut the watch's connection down
                failures += 1
                delay = retry_delay(failures)
                cause = (
                    f"the API server answered {error.status} {error.reason}"
                    if isinstance(error, ApiException)
                    else type(error).__name__  # never the message: it could echo a Secret
                )
                logger.warning(
                    "watching Secrets (%s) failed (%s); retrying in %ds", self._thread.name, cause, delay
                )
                self._stopped.wait(delay)

    def _query(self) -> dict[str, str | int | None]:
        return {"fieldSelector": self._selection.fields, "labelSelector": self._selection.labels}

    def _list_and_watch(self) -> None:
        self._relist.clear()
        found: dict[Key, T] = {}
        token: str | None = None
        while True:
            self.last_active = time.monotonic()
            page = self._core.list(
                "secrets", self.namespace, {**self._query(), "limit": _PAGE, "continue": token}, self._timeout
            )
            for body in page.get("items") or []:
                metadata = body.get("metadata") or {}
                key = key_of(metadata)
                if self._selection.keys(key):
                    found[key] = self._convert(observed_secret(body))
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                break
        self._deliver(Listed(found))
        resource_version = (page.get("metadata") or {}).get("resourceVersion")
        while not self._stopped.is_set() and not self._relist.is_set():
            self.last_active = time.monotonic()
            query = {
                **self._query(),
                "resourceVersion": resource_version,
                "timeoutSeconds": self._watch_seconds,
            }
            self._watch = stream = self._core.watch("secrets", self.namespace, query, self._timeout)
            for event in stream:
                self.last_active = time.monotonic()
                if self._stopped.is_set() or self._relist.is_set():
                    return
                body = event["object"]
                if event["type"] == "ERROR":
                    if body.get("code") == _HTTP_GONE:
                        return  # too old to resume: list again
                    raise ApiException(status=body.get("code"), reason=body.get("reason"))
                metadata = body.get("metadata") or {}
                resource_version = metadata.get("resourceVersion", resource_version)
                key = key_of(metadata)
                if event["type"] == "DELETED" or not self._selection.keys(key):
                    self._deliver(Changed(key, None))
                elif event["type"] in ("ADDED", "MODIFIED"):
                    self._deliver(Changed(key, self._convert(observed_secret(body))))
