"""The Kubernetes port: every API call a reconcile makes, behind one small interface.

`KubePort` is what reconcilers and the plan applier see; `ApiServer` implements it with the official
client. Tests use an in-memory implementation (tests/unit/fakekube.py), so the reconcile paths run in
milliseconds without a cluster.

Errors cross this boundary as two types: `SecretConflictError` (read again, then decide again) and
`ApiAccessError` (the API server refused: status and reason, never a response body, which for a
Secret could echo its data; `NamespaceNotFoundError` when a 404's details say the namespace is missing).
"""

from __future__ import annotations

import collections
import datetime
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.api import API_VERSION, GROUP, VERSION
from certsmith.kube.secrets import ObservedSecret, observed_from_model, secret_model
from certsmith.tls_secret import SecretContents

HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409
COMPONENT = "certsmith"
_CLUSTER_SCOPED_EVENT_NAMESPACE = "default"
_MAX_MESSAGE = 1024
EVENT_AGGREGATION_WINDOW = datetime.timedelta(hours=1)
"""A repeat of an Event (same object, type and reason) within this window updates the first one's
count, message and lastTimestamp instead of creating another object."""

Key = tuple[str, str]
"""(namespace, name); the namespace is "" for cluster-scoped objects."""


@dataclass(frozen=True)
class ObjectRef:
    """One of certsmith's objects, as an Event's subject or a Secret's owner."""

    kind: str
    namespace: str | None
    name: str
    uid: str | None = None
    resource_version: str | None = None
    api_version: str = API_VERSION
    """certsmith.dev/v1alpha1 unless the object is someone else's (an Ingress, a Gateway)."""


@dataclass(frozen=True)
class EventRecord:
    regarding: ObjectRef
    warning: bool
    reason: str
    message: str


class SecretConflictError(RuntimeError):
    """The Secret is not as last observed (changed, created or deleted by someone else): read it again."""


class ApiAccessError(RuntimeError):
    """The API server refused a request; `status` and `reason` say why (e.g. 403 Forbidden, 429)."""

    def __init__(self, action: str, status: int, reason: str) -> None:
        super().__init__(f"{action}: the API server answered {status} {reason}")
        self.status = status
        self.reason = reason


class NamespaceNotFoundError(ApiAccessError):
    """A write into a namespace that does not exist (a 404 whose details name `namespaces`)."""

    def __init__(self, action: str, namespace: str) -> None:
        super().__init__(action, HTTP_NOT_FOUND, "NotFound")
        self.namespace = namespace

    def __str__(self) -> str:
        return (
            f"{super().__str__()}: namespace {self.namespace} does not exist; create it "
            f"(kubectl create namespace {self.namespace})"
        )


class KubePort(Protocol):
    def read_secret(self, namespace: str, name: str) -> ObservedSecret | None:
        """The Secret as it is now, or None when it does not exist."""
        ...

    def write_secret(
        self,
        namespace: str,
        name: str,
        contents: SecretContents,
        resource_version: str | None,
        owner: ObjectRef | None,
    ) -> ObservedSecret:
        """Create the Secret (resource_version None) or replace it if unchanged since `resource_version`;
        SecretConflictError when it is not as observed (so two writers can never both take it)."""
        ...

    def patch_status(self, plural: str, namespace: str | None, name: str, status: Mapping[str, Any]) -> None:
        """Merge `status` into the status of one of certsmith's objects (None deletes a field)."""
        ...

    def post_event(self, event: EventRecord) -> None: ...

    def certificate_exists(self, namespace: str, name: str) -> bool: ...

    def list_secrets(self, namespace: str | None, label_selector: str) -> list[tuple[Key, ObservedSecret]]:
        """Secrets matching `label_selector`, in `namespace` or in all namespaces if None."""
        ...

    def list_objects(self, plural: str, namespace: str | None) -> list[Mapping[str, Any]]:
        """certsmith's objects of `plural`, in `namespace` (all, or cluster-scoped, if None)."""
        ...


class ApiServer:
    """`KubePort` over the official client. Thread-safe: worker threads share one instance."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._core = client.CoreV1Api(api)
        self._objects = client.CustomObjectsApi(api)
        self._events = _EventLog()

    def read_secret(self, namespace: str, name: str) -> ObservedSecret | None:
        try:
            return observed_from_model(self._core.read_namespaced_secret(name, namespace))
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND:
                return None
            raise access_error(f"reading Secret {namespace}/{name}", error) from None

    def write_secret(
        self,
        namespace: str,
        name: str,
        contents: SecretContents,
        resource_version: str | None,
        owner: ObjectRef | None,
    ) -> ObservedSecret:
        model = secret_model(namespace, name, contents, resource_version, owner_reference(owner))
        try:
            if resource_version is None:
                written = self._core.create_namespaced_secret(namespace, model)
            else:
                written = self._core.replace_namespaced_secret(name, namespace, model)
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND and _missing_kind(error) == "namespaces":
                raise NamespaceNotFoundError(f"writing Secret {namespace}/{name}", namespace) from None
            if error.status in (HTTP_CONFLICT, HTTP_NOT_FOUND):
                raise SecretConflictError(
                    f"Secret {namespace}/{name} changed while certsmith was writing it"
                ) from None
            raise access_error(f"writing Secret {namespace}/{name}", error) from None
        return ObservedSecret(
            contents, (written.metadata.resource_version if written.metadata else None) or ""
        )

    def patch_status(self, plural: str, namespace: str | None, name: str, status: Mapping[str, Any]) -> None:
        body = {"status": dict(status)}
        try:
            if namespace is None:
                self._objects.patch_cluster_custom_object_status(GROUP, VERSION, plural, name, body)
            else:
                self._objects.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, plural, name, body
                )
        except ApiException as error:
            where = f"{namespace}/{name}" if namespace else name
            raise access_error(f"patching the status of {plural}/{where}", error) from None

    def post_event(self, event: EventRecord) -> None:
        regarding = event.regarding
        namespace = regarding.namespace or _CLUSTER_SCOPED_EVENT_NAMESPACE
        now = datetime.datetime.now(datetime.UTC)
        message = event.message[:_MAX_MESSAGE]
        aggregate = (regarding.kind, regarding.namespace, regarding.name, event.warning, event.reason)
        earlier = self._events.recent(aggregate, now)
        try:
            if earlier is not None:
                name, count = earlier
                try:
                    self._core.patch_namespaced_event(
                        name, namespace, {"count": count + 1, "lastTimestamp": now, "message": message}
                    )
                except ApiException as error:
                    if error.status != HTTP_NOT_FOUND:  # the API server drops Events after an hour
                        raise
                else:
                    self._events.remember(aggregate, name, count + 1, now)
                    return
            created = self._core.create_namespaced_event(namespace, _event_model(event, namespace, now))
        except ApiException as error:
            raise access_error(f"posting an Event about {regarding.kind} {regarding.name}", error) from None
        if created.metadata and created.metadata.name:
            self._events.remember(aggregate, created.metadata.name, 1, now)

    def certificate_exists(self, namespace: str, name: str) -> bool:
        try:
            self._objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "certificates", name)
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND:
                return False
            raise access_error(f"reading Certificate {namespace}/{name}", error) from None
        return True

    def list_secrets(self, namespace: str | None, label_selector: str) -> list[tuple[Key, ObservedSecret]]:
        listed = (
            self._core.list_secret_for_all_namespaces(label_selector=label_selector)
            if namespace is None
            else self._core.list_namespaced_secret(namespace, label_selector=label_selector)
        )
        return [
            ((secret.metadata.namespace or "", secret.metadata.name or ""), observed_from_model(secret))
            for secret in listed.items
            if secret.metadata is not None
        ]

    def list_objects(self, plural: str, namespace: str | None) -> list[Mapping[str, Any]]:
        listed = (
            self._objects.list_cluster_custom_object(GROUP, VERSION, plural)
            if namespace is None
            else self._objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        )
        if not isinstance(listed, dict):
            raise TypeError(f"listing {plural} returned {type(listed).__name__}, not an object")
        items: list[Mapping[str, Any]] = listed["items"]
        return items


class _EventLog:
    """The Events posted within the aggregation window, oldest first, so pruning is cheap."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posted: collections.OrderedDict[tuple[Any, ...], tuple[str, int, datetime.datetime]] = (
            collections.OrderedDict()
        )

    def recent(self, aggregate: tuple[Any, ...], now: datetime.datetime) -> tuple[str, int] | None:
        with self._lock:
            while self._posted:
                oldest = next(iter(self._posted.values()))
                if now - oldest[2] < EVENT_AGGREGATION_WINDOW:
                    break
                self._posted.popitem(last=False)
            found = self._posted.get(aggregate)
        return (found[0], found[1]) if found else None

    def remember(self, aggregate: tuple[Any, ...], name: str, count: int, now: datetime.datetime) -> None:
        with self._lock:
            self._posted[aggregate] = (name, count, now)
            self._posted.move_to_end(aggregate)


def _event_model(event: EventRecord, namespace: str, now: datetime.datetime) -> client.CoreV1Event:
    regarding = event.regarding
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{regarding.name}.", namespace=namespace),
        involved_object=client.V1ObjectReference(
            api_version=regarding.api_version,
            kind=regarding.kind,
            name=regarding.name,
            namespace=regarding.namespace,
            uid=regarding.uid,
            resource_version=regarding.resource_version,
        ),
        reason=event.reason,
        message=event.message[:_MAX_MESSAGE],
        type="Warning" if event.warning else "Normal",
        first_timestamp=now,
        last_timestamp=now,
        count=1,
        source=client.V1EventSource(component=COMPONENT),
        reporting_component=COMPONENT,
    )


def owner_reference(owner: ObjectRef | None) -> client.V1OwnerReference | None:
    if owner is None:
        return None
    return client.V1OwnerReference(
        api_version=owner.api_version,
        kind=owner.kind,
        name=owner.name,
        uid=owner.uid or "",
        controller=True,
        block_owner_deletion=False,
    )


def _missing_kind(error: ApiException) -> str | None:
    """The kind a 404 says is missing (its Status details), e.g. "namespaces" or "secrets"."""
    try:
        details = json.loads(error.body or "{}").get("details") or {}
    except (ValueError, AttributeError):
        return None
    kind = details.get("kind")
    return kind if isinstance(kind, str) else None


def access_error(action: str, error: ApiException) -> ApiAccessError:
    return ApiAccessError(action, int(error.status or 0), str(error.reason or ""))
