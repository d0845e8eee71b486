"""Expiry facts of every kubernetes.io/tls Secret in the watched namespaces, managed or not.

Secrets are selected by type on the server (`type=kubernetes.io/tls`) and listed in pages; each is
parsed as it arrives and only its `TLSSecretFacts` are kept (about 0.4 KiB for a leaf and its CA,
whose facts are shared), never the Secret, so memory follows the number of TLS certificates, not the
size of the cluster's Secrets.

With shards, a replica keeps the facts of the Secrets whose own key (namespace, name) falls in the
shards it holds: each Secret's series come from one replica, and the fleet exports every Secret once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kubernetes import client

from certsmith.kube.secrets import ObservedSecret
from certsmith.kube.watch import Changed, Key, Listed, SecretWatch, Selection, WatchTiming
from certsmith.metrics.tls_secrets import TLSSecretFacts, tls_secret_facts
from certsmith.settings import namespace_filter
from certsmith.tls_secret import MANAGED_LABEL, SECRET_TYPE

_TIMING = WatchTiming(watch_seconds=15)
"""A relisting for gained shards waits for the watch request under way to end: at most 15 s."""


class TLSSecretScanner:
    def __init__(
        self,
        api: client.ApiClient,
        namespaces: tuple[str, ...],
        holds: Callable[[Key], bool] = lambda key: True,
    ) -> None:
        """`holds`: whether this replica exports the Secret `key` (its shard is held)."""
        self._facts: dict[Key, TLSSecretFacts] = {}
        self._holds = holds
        self._started = False
        self._version = 0
        self._lock = threading.Lock()
        watched = namespace_filter(namespaces)
        explicit = [n for n in namespaces if not set(n) & set("*?!,")] if namespaces else []
        scopes: list[str | None] = list(explicit) if explicit and len(explicit) == len(namespaces) else [None]
        selection = Selection(f"type={SECRET_TYPE}", keys=lambda key: watched(key[0]) and holds(key))
        self._watches = [
            SecretWatch(api, scope, selection, self._receiver(scope), _facts, _TIMING) for scope in scopes
        ]

    @property
    def watches(self) -> tuple[SecretWatch[TLSSecretFacts], ...]:
        return tuple(self._watches)

    def start(self) -> None:
        self._started = True
        for watch in self._watches:
            watch.start()

    def stop(self) -> None:
        for watch in self._watches:
            watch.stop()

    def shards_changed(self, gained: bool) -> None:
        """Forget the Secrets no longer held at once; list again for those gained (or start: with
        shards, the scanner starts once the first are taken, so as not to list for none)."""
        with self._lock:
            for key in [key for key in self._facts if not self._holds(key)]:
                del self._facts[key]
            self._version += 1
        if gained and not self._started:
            self.start()
        elif gained:
            for watch in self._watches:
                watch.relist()

    def snapshot(self) -> tuple[int, dict[Key, TLSSecretFacts]]:
        """(version, facts): the version changes whenever the facts do."""
        with self._lock:
            return self._version, dict(self._facts)

    def _receiver(
        self, scope: str | None
    ) -> Callable[[Listed[TLSSecretFacts] | Changed[TLSSecretFacts]], None]:
        def receive(event: Listed[TLSSecretFacts] | Changed[TLSSecretFacts]) -> None:
            """The watch's selection asked `holds` before it parsed each Secret; it is asked again here,
            under the lock `shards_changed` takes: a shard lost in between (its facts forgotten
            meanwhile) would otherwise leave its Secrets exported by this replica and by the new
            holder, until this replica next gains a shard."""
            with self._lock:
                if isinstance(event, Listed):
                    for key in [key for key in self._facts if scope is None or key[0] == scope]:
                        del self._facts[key]
                    held = ((key, facts) for key, facts in event.secrets.items() if self._holds(key))
                    self._facts.update(held)
                elif event.secret is not None and self._holds(event.key):
                    self._facts[event.key] = event.secret
                elif self._facts.pop(event.key, None) is None:
                    return  # another replica's Secret, or one gone already: nothing to render anew
                self._version += 1

        return receive


def _facts(secret: ObservedSecret) -> TLSSecretFacts:
    return tls_secret_facts(secret.contents.data, secret.contents.labels.get(MANAGED_LABEL) == "true")
