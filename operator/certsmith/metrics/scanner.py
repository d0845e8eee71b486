"""Expiry facts of every kubernetes.io/tls Secret in the watched namespaces, managed or not.

Secrets are selected by type on the server (`type=kubernetes.io/tls`) and listed in pages; each is
parsed as it arrives and only its `TLSSecretFacts` are kept — a few dozen bytes per certificate, never
the Secret, so memory follows the number of TLS certificates, not the size of the cluster's Secrets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from kubernetes import client

from certsmith.kube.watch import Changed, Key, Listed, SecretWatch
from certsmith.metrics.tls_secrets import TLSSecretFacts, tls_secret_facts
from certsmith.settings import namespace_filter
from certsmith.tls_secret import MANAGED_LABEL, SECRET_TYPE


class TLSSecretScanner:
    def __init__(self, api: client.ApiClient, namespaces: tuple[str, ...]) -> None:
        self._facts: dict[Key, TLSSecretFacts] = {}
        self._version = 0
        self._lock = threading.Lock()
        self._watched = namespace_filter(namespaces)
        explicit = [n for n in namespaces if not set(n) & set("*?!,")] if namespaces else []
        scopes: list[str | None] = list(explicit) if explicit and len(explicit) == len(namespaces) else [None]
        self._watches = [
            SecretWatch(api, scope, f"type={SECRET_TYPE}", self._receiver(scope)) for scope in scopes
        ]

    @property
    def watches(self) -> tuple[SecretWatch, ...]:
        return tuple(self._watches)

    def start(self) -> None:
        for watch in self._watches:
            watch.start()

    def stop(self) -> None:
        for watch in self._watches:
            watch.stop()

    def snapshot(self) -> tuple[int, dict[Key, TLSSecretFacts]]:
        """(version, facts): the version changes whenever the facts do."""
        with self._lock:
            return self._version, dict(self._facts)

    def _receiver(self, scope: str | None) -> Callable[[Listed | Changed], None]:
        def receive(event: Listed | Changed) -> None:
            if isinstance(event, Listed):
                parsed = {
                    key: tls_secret_facts(secret.contents.data, _managed(secret.contents.labels))
                    for key, secret in event.secrets.items()
                    if self._watched(key[0])
                }
                with self._lock:
                    for key in [key for key in self._facts if scope is None or key[0] == scope]:
                        del self._facts[key]
                    self._facts.update(parsed)
                    self._version += 1
                return
            if not self._watched(event.key[0]):
                return
            if event.secret is None:
                with self._lock:
                    self._facts.pop(event.key, None)
                    self._version += 1
                return
            facts = tls_secret_facts(event.secret.contents.data, _managed(event.secret.contents.labels))
            with self._lock:
                self._facts[event.key] = facts
                self._version += 1

        return receive


def _managed(labels: Mapping[str, str]) -> bool:
    return labels.get(MANAGED_LABEL) == "true"
