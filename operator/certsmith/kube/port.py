"""The Kubernetes port: every API call a reconcile makes, behind one small interface.

`KubePort` is what reconcilers and the plan applier see; `ApiServer` implements it with the official
client. Tests use an in-memory implementation (tests/unit/fakekube.py), so the reconcile paths run in
milliseconds without a cluster.

Errors cross this boundary as two types: `SecretConflictError` (read again, then decide again) and
`ApiAccessError` (the API server refused: status and reason, never a response body, which for a
Secret could echo its data; `NamespaceNotFoundError` when a 404's details say the namespace is missing).
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.api import (
    API_VERSION,
    CERTIFICATE_REQUESTS,
    CERTIFICATES,
    CLUSTER_ISSUERS,
    GROUP,
    ISSUERS,
    VERSION,
)
from certsmith.api.pod_certificate_request import (
    POD_CERTIFICATE_REQUESTS,
    POD_CERTIFICATES_GROUP,
    POD_CERTIFICATES_VERSION,
)
from certsmith.kube.core import Resources
from certsmith.kube.events import EventRecorder
from certsmith.kube.secrets import ObservedSecret, observed_secret, secret_body
from certsmith.tls_secret import CERTIFICATE_NAME, SecretContents

HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409
HTTP_UNPROCESSABLE = 422
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = 500
_KUBERNETES_STATUSES = {POD_CERTIFICATE_REQUESTS: (POD_CERTIFICATES_GROUP, POD_CERTIFICATES_VERSION)}
"""Kubernetes' own objects whose status certsmith writes (as their signer), by plural."""

Key = tuple[str, str]
"""(namespace, name); the namespace is "" for cluster-scoped objects."""


def key_of(metadata: Mapping[str, Any]) -> Key:
    """An object's key, both strings interned: the store, the schedule, the TLS Secret facts and the
    shard bookkeeping each keep the key of every object a replica holds, and without interning each
    would keep its own copy of the name, decoded from its own event."""
    return sys.intern(metadata.get("namespace") or ""), sys.intern(metadata.get("name") or "")


LIST_PAGE = 500
"""Objects per page of a LIST."""
_SHARDED = (CERTIFICATES, CERTIFICATE_REQUESTS, POD_CERTIFICATE_REQUESTS)
_ISSUERS = (ISSUERS, CLUSTER_ISSUERS)
_ISSUER_KINDS = ("Issuer", "ClusterIssuer")


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


class ShardNotHeldError(RuntimeError):
    """A write for an object of a shard this replica does not hold (any more): its holder writes it."""


class WriteGuard(Protocol):
    """Which objects this replica may write for (see `certsmith.kube.shards`)."""

    def holds(self, key: Key) -> bool: ...

    def writing(self, key: Key) -> contextlib.AbstractContextManager[None]:
        """Around one write for the object `key`; raises ShardNotHeldError if it may not."""
        ...


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
        """Merge `status` into the status of one of certsmith's objects, or of a PodCertificateRequest
        it answers (None deletes a field)."""
        ...

    def post_event(self, event: EventRecord) -> None: ...

    def certificate_exists(self, namespace: str, name: str) -> bool: ...

    def list_objects(self, plural: str, namespace: str | None) -> list[Mapping[str, Any]]:
        """certsmith's objects of `plural`, in `namespace` (all, or cluster-scoped, if None)."""
        ...


class OwnWrites:
    """The resourceVersion each of certsmith's own writes produced, per object, so that the watch event
    it causes is recognised as certsmith's own (same object, same resourceVersion: nothing new) and
    costs no reconcile. One entry per object at most, removed when its event arrives or the object
    goes. Thread-safe: workers record, the event loop checks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[tuple[str, Key], str] = {}

    def record(self, resource: str, key: Key, resource_version: str | None) -> None:
        if resource_version:
            with self._lock:
                self._versions[(resource, key)] = resource_version

    def is_own(self, resource: str, key: Key, resource_version: str | None) -> bool:
        """Whether the object is exactly as certsmith last wrote it; forgets the write once seen."""
        with self._lock:
            if resource_version is None or self._versions.get((resource, key)) != resource_version:
                return False
            del self._versions[(resource, key)]
            return True

    def forget(self, resource: str, key: Key) -> None:
        with self._lock:
            self._versions.pop((resource, key), None)


class ApiServer:
    """`KubePort` over the official client. Thread-safe: worker threads share one instance."""

    def __init__(
        self,
        api: client.ApiClient,
        events_api: client.ApiClient | None = None,
        guard: WriteGuard | None = None,
    ) -> None:
        """`events_api`: the client the Event recorder posts with (by default `api`), so that Events can
        be kept out of the rate limit of the workers' writes. `guard`: with shards, each write for a
        Certificate or CertificateRequest (its Secret, its status) is made only inside
        `guard.writing`, and an issuer's status is written by the holder of the issuer's shard only."""
        self.api = api
        self.guard = guard
        self._core = Resources(api)
        self._objects = client.CustomObjectsApi(api)
        self.events = EventRecorder(events_api or api)
        self.own_writes = OwnWrites()

    def read_secret(self, namespace: str, name: str) -> ObservedSecret | None:
        try:
            return observed_secret(self._core.read("secrets", namespace, name))
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
        body = secret_body(
            namespace, name, contents, resource_version, owner_reference(owner) if owner else None
        )
        certificate = contents.annotations.get(CERTIFICATE_NAME)
        try:
            with self._guarded((namespace, certificate) if certificate else None):
                if resource_version is None:
                    written = self._core.create("secrets", namespace, body)
                else:
                    written = self._core.replace("secrets", namespace, name, body)
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND and _missing_kind(error) == "namespaces":
                raise NamespaceNotFoundError(f"writing Secret {namespace}/{name}", namespace) from None
            if error.status in (HTTP_CONFLICT, HTTP_NOT_FOUND):
                raise SecretConflictError(
                    f"Secret {namespace}/{name} changed while certsmith was writing it"
                ) from None
            raise access_error(f"writing Secret {namespace}/{name}", error) from None
        version = (written.get("metadata") or {}).get("resourceVersion") or ""
        self.own_writes.record("secrets", (namespace, name), version)
        return ObservedSecret(contents, version)

    def patch_status(self, plural: str, namespace: str | None, name: str, status: Mapping[str, Any]) -> None:
        body = {"status": dict(status)}
        key = (namespace or "", name)
        if self.guard is not None and plural in _ISSUERS and not self.guard.holds(key):
            return  # the holder of the issuer's shard writes its status; every replica computes it
        group, version = _KUBERNETES_STATUSES.get(plural, (GROUP, VERSION))
        try:
            with self._guarded(key if plural in _SHARDED else None):
                if namespace is None:
                    patched = self._objects.patch_cluster_custom_object_status(
                        group, version, plural, name, body
                    )
                else:
                    patched = self._objects.patch_namespaced_custom_object_status(
                        group, version, namespace, plural, name, body
                    )
        except ApiException as error:
            where = f"{namespace}/{name}" if namespace else name
            refusal = access_error(f"patching the status of {plural}/{where}", error)
            if plural in _KUBERNETES_STATUSES and error.status == HTTP_UNPROCESSABLE:
                refusal = ApiAccessError(
                    f"patching the status of {plural}/{where}",
                    refusal.status,
                    f"{refusal.reason}: {_causes(error)}",
                )
            raise refusal from None
        metadata = (patched.get("metadata") if isinstance(patched, dict) else None) or {}
        self.own_writes.record(plural, (namespace or "", name), metadata.get("resourceVersion"))

    def _guarded(self, key: Key | None) -> contextlib.AbstractContextManager[None]:
        if self.guard is None or key is None:
            return contextlib.nullcontext()
        return self.guard.writing(key)

    def post_event(self, event: EventRecord) -> None:
        """Handed to the recorder, which posts it from its own thread (see `certsmith.kube.events`).
        With shards, an issuer's Events are posted by the holder of its shard only, as its status."""
        regarding = event.regarding
        key = (regarding.namespace or "", regarding.name)
        if self.guard is not None and regarding.kind in _ISSUER_KINDS and not self.guard.holds(key):
            return
        self.events.record(event)

    def certificate_exists(self, namespace: str, name: str) -> bool:
        try:
            self._objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "certificates", name)
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND:
                return False
            raise access_error(f"reading Certificate {namespace}/{name}", error) from None
        return True

    def list_objects(self, plural: str, namespace: str | None) -> list[Mapping[str, Any]]:
        return [body for page in self.object_pages(plural, namespace) for body in page]

    def secret_pages(
        self, namespace: str | None, label_selector: str
    ) -> Iterator[list[tuple[Key, ObservedSecret]]]:
        """Secrets matching `label_selector`, in `namespace` or in all namespaces if None, a page
        (`LIST_PAGE` Secrets) at a time, so that a caller that keeps a few of them never holds all at
        once, and a long listing can be given up between pages."""
        token: str | None = None
        while True:
            listed = self._core.list(
                "secrets", namespace, {"labelSelector": label_selector, "limit": LIST_PAGE, "continue": token}
            )
            yield [
                (key_of(body["metadata"]), observed_secret(body))
                for body in listed.get("items") or []
            ]
            token = (listed.get("metadata") or {}).get("continue") or None
            if not token:
                return

    def object_pages(self, plural: str, namespace: str | None) -> Iterator[list[Mapping[str, Any]]]:
        """`list_objects` a page (`LIST_PAGE` objects) at a time."""
        token: str | None = None
        while True:
            listed = (
                self._objects.list_cluster_custom_object(
                    GROUP, VERSION, plural, limit=LIST_PAGE, _continue=token
                )
                if namespace is None
                else self._objects.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, limit=LIST_PAGE, _continue=token
                )
            )
            if not isinstance(listed, dict):
                raise TypeError(f"listing {plural} returned {type(listed).__name__}, not an object")
            items: list[Mapping[str, Any]] = listed["items"]
            yield items
            token = (listed.get("metadata") or {}).get("continue") or None
            if not token:
                return


def owner_reference(owner: ObjectRef) -> dict[str, Any]:
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid or "",
        "controller": True,
        "blockOwnerDeletion": False,
    }


def _missing_kind(error: ApiException) -> str | None:
    """The kind a 404 says is missing (its Status details), e.g. "namespaces" or "secrets"."""
    try:
        details = json.loads(error.body or "{}").get("details") or {}
    except (ValueError, AttributeError):
        return None
    kind = details.get("kind")
    return kind if isinstance(kind, str) else None


def _causes(error: ApiException) -> str:
    """What a 422 about a PodCertificateRequest's status says (its causes: a signer without the verb sign,
    a leaf the API server's checks refuse). Only for those: the body of a refused Secret could echo it."""
    try:
        details = json.loads(error.body or "{}").get("details") or {}
    except (ValueError, AttributeError):
        return "no details"
    causes = details.get("causes") or []
    return "; ".join(
        f"{cause.get('reason')} {cause.get('field')}: {cause.get('message')}" for cause in causes
    )


def access_error(action: str, error: ApiException) -> ApiAccessError:
    return ApiAccessError(action, int(error.status or 0), str(error.reason or ""))


def failure_reason(error: BaseException) -> tuple[str, str]:
    """A reason (CamelCase, for a status condition) and a description for an error that escaped a
    reconcile; never a response body, which could echo a Secret."""
    if isinstance(error, ApiException):
        error = access_error("a request", error)
    if isinstance(error, ApiAccessError):
        return _refusal(error)
    if isinstance(error, TimeoutError | urllib3.exceptions.TimeoutError):
        return "APITimeout", f"the API server did not answer in time ({type(error).__name__})"
    if isinstance(error, OSError | urllib3.exceptions.HTTPError):
        return "APIUnreachable", f"the API server could not be reached ({type(error).__name__})"
    return "InternalError", f"{type(error).__name__}: {error}"


def _refusal(error: ApiAccessError) -> tuple[str, str]:
    if error.status == HTTP_FORBIDDEN:
        return "APIForbidden", f"{error}: certsmith's RBAC rights miss something (see deploy/)"
    if error.status == HTTP_TOO_MANY_REQUESTS:
        return "APIThrottled", f"{error}: the API server's priority and fairness throttled certsmith"
    if error.status >= HTTP_SERVER_ERROR:
        return "APIServerError", str(error)
    return "APIRequestFailed", str(error)
