"""The API calls of trust distribution: reading a Bundle's ConfigMap and Secret sources, and writing its
targets (ConfigMaps, Secrets, a ClusterTrustBundle). Writes are conditional: a create never replaces,
a replace or a delete holds the resourceVersion it saw, so that an object someone else made or
changed meanwhile is never overwritten."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.kube.core import Resources
from certsmith.kube.port import HTTP_CONFLICT, HTTP_NOT_FOUND, Key, OwnWrites, access_error
from certsmith.kube.secrets import ObservedSecret

CONFIG_MAPS = "configmaps"
SECRETS = "secrets"
CLUSTER_TRUST_BUNDLES = "clustertrustbundles"
TRUST_GROUP = "certificates.k8s.io"
TRUST_VERSIONS = ("v1", "v1beta1")
"""ClusterTrustBundle: GA (v1) since Kubernetes 1.37; beta (v1beta1, off by default) in 1.33 to 1.36."""


@dataclass(frozen=True)
class Target:
    """A ConfigMap or Secret as certsmith needs to know it: whose it is and what it was written with."""

    kind: str
    """CONFIG_MAPS or SECRETS."""
    namespace: str
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    resource_version: str


@dataclass(frozen=True)
class TargetBody:
    """What a target holds: text keys and binary keys (a Secret's are all bytes)."""

    text: Mapping[str, str]
    binary: Mapping[str, bytes] = field(default_factory=dict)


def target_from_secret(key: Key, observed: ObservedSecret) -> Target:
    """From the Secret watch of Bundles' Secrets."""
    contents = observed.contents
    return Target(SECRETS, *key, contents.labels, contents.annotations, observed.resource_version)


def observed_target(kind: str, body: Mapping[str, Any]) -> Target:
    """From a watch event's object (a dict)."""
    metadata = body.get("metadata") or {}
    return Target(
        kind,
        metadata.get("namespace", ""),
        metadata.get("name", ""),
        dict(metadata.get("labels") or {}),
        dict(metadata.get("annotations") or {}),
        metadata.get("resourceVersion", ""),
    )


class TargetExistsError(RuntimeError):
    """A create found an object of that name already there."""


class TrustBundleUnavailableError(RuntimeError):
    """The API server serves no ClusterTrustBundle API."""


class TrustPort(Protocol):
    """What the Bundle reconcile asks of the API server; `TrustApi` over the client, a fake in the unit
    tests (tests/unit/test_bundle_reconcile.py)."""

    def source_texts(
        self, kind: str, namespace: str, name: str | None, selector: str | None
    ) -> dict[str, dict[str, bytes]]: ...

    def write(
        self,
        kind: str,
        target: Key,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        owner: Mapping[str, Any],
        body: TargetBody,
        resource_version: str | None,
    ) -> Target: ...

    def read(self, kind: str, target: Key) -> Target | None: ...

    def delete(self, target: Target) -> None: ...

    def trust_bundles(self, label_selector: str) -> list[Mapping[str, Any]]: ...

    def write_trust_bundle(
        self,
        name: str,
        signer: str | None,
        pem: str,
        metadata: Mapping[str, Any],
        resource_version: str | None,
    ) -> None: ...

    def delete_trust_bundle(self, name: str, resource_version: str) -> None: ...


class TrustApi:
    def __init__(self, api: client.ApiClient, own_writes: OwnWrites) -> None:
        self._core = Resources(api)
        self._objects = client.CustomObjectsApi(api)
        self._own_writes = own_writes
        self._trust_version: str | None = None

    def trust_bundle_version(self) -> str:
        """The served version of the ClusterTrustBundle API (asked once per process, while found)."""
        if self._trust_version is None:
            for version in TRUST_VERSIONS:
                try:
                    resources = self._objects.get_api_resources(TRUST_GROUP, version)
                except ApiException as error:
                    if error.status == HTTP_NOT_FOUND:
                        continue
                    raise access_error(f"discovering {TRUST_GROUP}/{version}", error) from None
                if any(resource.name == CLUSTER_TRUST_BUNDLES for resource in resources.resources or ()):
                    self._trust_version = version
                    break
            else:
                raise TrustBundleUnavailableError(
                    f"the API server serves no ClusterTrustBundle ({TRUST_GROUP} "
                    f"{' or '.join(TRUST_VERSIONS)}: GA in Kubernetes 1.37; in 1.33 to 1.36 enable the "
                    "ClusterTrustBundle feature gate and "
                    f"--runtime-config={TRUST_GROUP}/v1beta1/clustertrustbundles=true)"
                )
        return self._trust_version

    def trust_bundles(self, label_selector: str) -> list[Mapping[str, Any]]:
        """The ClusterTrustBundles with these labels."""
        version = self.trust_bundle_version()
        try:
            listed = self._objects.list_cluster_custom_object(
                TRUST_GROUP, version, CLUSTER_TRUST_BUNDLES, label_selector=label_selector
            )
        except ApiException as error:
            raise access_error(f"listing ClusterTrustBundles ({label_selector})", error) from None
        if not isinstance(listed, dict):
            raise TypeError(f"listing ClusterTrustBundles returned {type(listed).__name__}, not an object")
        items: list[Mapping[str, Any]] = listed["items"]
        return items

    def write_trust_bundle(
        self,
        name: str,
        signer: str | None,
        pem: str,
        metadata: Mapping[str, Any],
        resource_version: str | None,
    ) -> None:
        """Create (resource_version None: TargetExistsError if the name is taken) or replace."""
        version = self.trust_bundle_version()
        body = {
            "apiVersion": f"{TRUST_GROUP}/{version}",
            "kind": "ClusterTrustBundle",
            "metadata": {**metadata, "name": name}
            | ({"resourceVersion": resource_version} if resource_version else {}),
            "spec": {"trustBundle": pem} | ({"signerName": signer} if signer else {}),
        }
        try:
            if resource_version is None:
                self._objects.create_cluster_custom_object(TRUST_GROUP, version, CLUSTER_TRUST_BUNDLES, body)
            else:
                self._objects.replace_cluster_custom_object(
                    TRUST_GROUP, version, CLUSTER_TRUST_BUNDLES, name, body
                )
        except ApiException as error:
            if error.status == HTTP_CONFLICT and resource_version is None:
                raise TargetExistsError(f"ClusterTrustBundle {name} exists") from None
            raise access_error(f"writing ClusterTrustBundle {name}", error) from None

    def delete_trust_bundle(self, name: str, resource_version: str) -> None:
        options = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=resource_version)
        )
        try:
            self._objects.delete_cluster_custom_object(
                TRUST_GROUP, self.trust_bundle_version(), CLUSTER_TRUST_BUNDLES, name, body=options
            )
        except ApiException as error:
            if error.status not in (HTTP_NOT_FOUND, HTTP_CONFLICT):
                raise access_error(f"deleting ClusterTrustBundle {name}", error) from None

    def source_texts(
        self, kind: str, namespace: str, name: str | None, selector: str | None
    ) -> dict[str, dict[str, bytes]]:
        """The data of a named ConfigMap or Secret (missing: empty), or of every one `selector` picks,
        by object name."""
        try:
            if name is not None:
                items: list[dict[str, Any]] = [self._core.read(kind, namespace, name)]
            else:
                items = self._core.list(kind, namespace, {"labelSelector": selector}).get("items") or []
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND:
                return {}
            what = name or f"selected by {selector}"
            raise access_error(f"reading {kind} {namespace}/{what}", error) from None
        return {(item.get("metadata") or {}).get("name") or "": _data(kind, item) for item in items}

    def write(
        self,
        kind: str,
        target: Key,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        owner: Mapping[str, Any],
        body: TargetBody,
        resource_version: str | None,
    ) -> Target:
        """Create (resource_version None: TargetExistsError if the name is taken) or replace."""
        namespace, name = target
        metadata = {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": dict(annotations),
            "ownerReferences": [dict(owner)],
        } | ({"resourceVersion": resource_version} if resource_version is not None else {})
        written: dict[str, Any]
        model: dict[str, Any]
        if kind == CONFIG_MAPS:
            model = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
            model |= {"data": dict(body.text)} if body.text else {}
            model |= {"binaryData": _encoded(body.binary)} if body.binary else {}
        else:
            data = {key: value.encode() for key, value in body.text.items()} | dict(body.binary)
            model = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque"}
            model |= {"data": _encoded(data)} if data else {}
        try:
            written = (
                self._core.create(kind, namespace, model)
                if resource_version is None
                else self._core.replace(kind, namespace, name, model)
            )
        except ApiException as error:
            if error.status == HTTP_CONFLICT and resource_version is None:
                raise TargetExistsError(f"{kind} {namespace}/{name} exists") from None
            raise access_error(f"writing {kind} {namespace}/{name}", error) from None
        written_target = _target(kind, written)
        self._own_writes.record(kind, target, written_target.resource_version)
        return written_target

    def read(self, kind: str, target: Key) -> Target | None:
        namespace, name = target
        try:
            read = self._core.read(kind, namespace, name)
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND:
                return None
            raise access_error(f"reading {kind} {namespace}/{name}", error) from None
        return _target(kind, read)

    def delete(self, target: Target) -> None:
        """Only the object as observed (its resourceVersion): never one someone changed or made again
        under that name since (a conflict: its watch event makes the Bundle look again)."""
        options = {"preconditions": {"resourceVersion": target.resource_version}}
        try:
            self._core.delete(target.kind, target.namespace, target.name, options)
        except ApiException as error:
            if error.status not in (HTTP_NOT_FOUND, HTTP_CONFLICT):
                raise access_error(
                    f"deleting {target.kind} {target.namespace}/{target.name}", error
                ) from None


def _target(kind: str, body: Mapping[str, Any]) -> Target:
    metadata = body.get("metadata") or {}
    return Target(
        kind,
        metadata.get("namespace") or "",
        metadata.get("name") or "",
        dict(metadata.get("labels") or {}),
        dict(metadata.get("annotations") or {}),
        metadata.get("resourceVersion") or "",
    )


def _data(kind: str, body: Mapping[str, Any]) -> dict[str, bytes]:
    if kind == CONFIG_MAPS:
        return {key: value.encode() for key, value in (body.get("data") or {}).items()}
    return {key: base64.b64decode(value) for key, value in (body.get("data") or {}).items()}


def _encoded(data: Mapping[str, bytes]) -> dict[str, bytes | str]:
    return {key: base64.b64encode(value).decode() for key, value in data.items()}
