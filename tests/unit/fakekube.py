"""An in-memory `KubePort`: Secrets with resourceVersions and conflicts, statuses, Events, and
injectable refusals (Forbidden, 429), so reconcile paths run without a cluster."""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from certsmith.kube.port import ApiAccessError, EventRecord, Key, ObjectRef, SecretConflictError
from certsmith.kube.secrets import ObservedSecret
from certsmith.tls_secret import SecretContents


@dataclass
class FakeKube:
    secrets: dict[Key, ObservedSecret] = field(default_factory=dict)
    owners: dict[Key, ObjectRef | None] = field(default_factory=dict)
    statuses: dict[tuple[str, Key], dict[str, Any]] = field(default_factory=dict)
    events: list[EventRecord] = field(default_factory=list)
    certificates: set[Key] = field(default_factory=set)
    refuse_secret_writes: tuple[int, str] | None = None
    """(status, reason) with which every Secret write is refused, e.g. (403, "Forbidden")."""
    refuse_status_patches: tuple[int, str] | None = None
    requests: list[str] = field(default_factory=list)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def put_secret(self, namespace: str, name: str, contents: SecretContents) -> ObservedSecret:
        """A Secret written by someone else (a user, another tool)."""
        observed = ObservedSecret(contents, str(next(self._versions)))
        self.secrets[(namespace, name)] = observed
        return observed

    def read_secret(self, namespace: str, name: str) -> ObservedSecret | None:
        self.requests.append(f"GET secrets/{namespace}/{name}")
        return self.secrets.get((namespace, name))

    def write_secret(
        self,
        namespace: str,
        name: str,
        contents: SecretContents,
        resource_version: str | None,
        owner: ObjectRef | None,
    ) -> ObservedSecret:
        verb = "POST" if resource_version is None else "PUT"
        self.requests.append(f"{verb} secrets/{namespace}/{name}")
        if self.refuse_secret_writes is not None:
            raise ApiAccessError(f"writing Secret {namespace}/{name}", *self.refuse_secret_writes)
        current = self.secrets.get((namespace, name))
        if (current.resource_version if current else None) != resource_version:
            raise SecretConflictError(f"Secret {namespace}/{name} changed while certsmith was writing it")
        if current is not None and current.contents.type != contents.type:
            raise ApiAccessError(f"writing Secret {namespace}/{name}", 422, "Unprocessable Entity")
        observed = ObservedSecret(contents, str(next(self._versions)))
        self.secrets[(namespace, name)] = observed
        self.owners[(namespace, name)] = owner
        return observed

    def patch_status(self, plural: str, namespace: str | None, name: str, status: Mapping[str, Any]) -> None:
        self.requests.append(f"PATCH {plural}/{namespace or ''}/{name}/status")
        if self.refuse_status_patches is not None:
            raise ApiAccessError(f"patching the status of {plural}/{name}", *self.refuse_status_patches)
        merged = {**self.statuses.get((plural, (namespace or "", name)), {}), **status}
        self.statuses[(plural, (namespace or "", name))] = {k: v for k, v in merged.items() if v is not None}

    def post_event(self, event: EventRecord) -> None:
        self.requests.append(f"POST events/{event.reason}")
        self.events.append(event)

    def certificate_exists(self, namespace: str, name: str) -> bool:
        self.requests.append(f"GET certificates/{namespace}/{name}")
        return (namespace, name) in self.certificates

    def list_objects(self, plural: str, namespace: str | None) -> list[Mapping[str, Any]]:
        raise NotImplementedError("the reconcile tests fill the store directly")

    def writes(self) -> list[str]:
        return [request for request in self.requests if not request.startswith("GET")]


class Clock:
    """Virtual time: tests move it forward instead of sleeping."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, delta: datetime.timedelta) -> None:
        self.now += delta
