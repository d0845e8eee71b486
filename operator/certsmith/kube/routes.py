"""HTTP-01 in a cluster: per challenge, an Ingress that routes the challenge path for the name to the
operator's solver Service.

An Ingress can only name a Service in its own namespace, so next to it goes an ExternalName Service
pointing at the solver Service. Both are named after the token, so a restarted operator removes them
from the order in the Certificate's status alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.kube.core import NETWORKING, Resources
from certsmith.kube.port import HTTP_CONFLICT, HTTP_NOT_FOUND, ObjectRef, access_error, owner_reference

CHALLENGE_LABEL = "certsmith.dev/acme-http01"
_PATH_PREFIX = "/.well-known/acme-challenge/"
_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


@dataclass(frozen=True)
class IngressOptions:
    class_name: str | None = None
    """spec.ingressClassName."""
    class_annotation: str | None = None
    """The legacy kubernetes.io/ingress.class annotation."""
    annotations: tuple[tuple[str, str], ...] = ()


class ChallengeRoutes:
    def __init__(self, api: client.ApiClient, solver_service: str, port: int = 80) -> None:
        """`solver_service` is NAMESPACE/NAME of the Service in front of the operator's solver."""
        namespace, _, name = solver_service.partition("/")
        self._target = f"{name}.{namespace}.svc"
        self._port = port
        self._core = Resources(api)
        self._networking = Resources(api, NETWORKING)

    def publish(
        self, namespace: str, token: str, host: str | None, options: IngressOptions, owner: ObjectRef | None
    ) -> None:
        """Both objects are owned by `owner` (the Certificate), so they go when it goes. `host` None: a
        rule for any host (an IP address identifier, which an Ingress rule cannot name; the path is
        the token's own)."""
        name = route_name(token)
        reference = owner_reference(owner) if owner and owner.uid else None
        metadata: dict[str, Any] = {"name": name, "labels": {CHALLENGE_LABEL: "true"}}
        if reference:
            metadata["ownerReferences"] = [reference]
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {
                "type": "ExternalName",
                "externalName": self._target,
                "ports": [{"name": "http", "port": self._port}],
            },
        }
        annotations = dict(options.annotations)
        if options.class_annotation:
            annotations[_CLASS_ANNOTATION] = options.class_annotation
        backend = {"service": {"name": name, "port": {"number": self._port}}}
        path = {"path": f"{_PATH_PREFIX}{token}", "pathType": "Exact", "backend": backend}
        rule: dict[str, Any] = {"http": {"paths": [path]}}
        if host is not None:
            rule["host"] = host
        spec: dict[str, Any] = {"rules": [rule]}
        if options.class_name:
            spec["ingressClassName"] = options.class_name
        ingress = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {**metadata, **({"annotations": annotations} if annotations else {})},
            "spec": spec,
        }
        try:
            self._core.create("services", namespace, service)
        except ApiException as error:
            if error.status != HTTP_CONFLICT:
                raise access_error(f"creating Service {namespace}/{name}", error) from None
        try:
            self._networking.create("ingresses", namespace, ingress)
        except ApiException as error:
            if error.status != HTTP_CONFLICT:
                raise access_error(f"creating Ingress {namespace}/{name}", error) from None

    def withdraw(self, namespace: str, token: str) -> None:
        name = route_name(token)
        try:
            self._networking.delete("ingresses", namespace, name)
        except ApiException as error:
            if error.status != HTTP_NOT_FOUND:
                raise access_error(f"deleting Ingress {namespace}/{name}", error) from None
        try:
            self._core.delete("services", namespace, name)
        except ApiException as error:
            if error.status != HTTP_NOT_FOUND:
                raise access_error(f"deleting Service {namespace}/{name}", error) from None


def route_name(token: str) -> str:
    return f"certsmith-acme-{hashlib.sha256(token.encode()).hexdigest()[:16]}"
