"""HTTP-01 in a cluster: per challenge, an Ingress that routes the challenge path for the name to the
operator's solver Service.

An Ingress can only name a Service in its own namespace, so next to it goes an ExternalName Service
pointing at the solver Service. Both are named after the token, so a restarted operator removes them
from the order in the Certificate's status alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

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
        self._core = client.CoreV1Api(api)
        self._networking = client.NetworkingV1Api(api)

    def publish(
        self, namespace: str, token: str, host: str | None, options: IngressOptions, owner: ObjectRef | None
    ) -> None:
        """Both objects are owned by `owner` (the Certificate), so they go when it goes. `host` None: a
        rule for any host (an IP address identifier, which an Ingress rule cannot name; the path is
        the token's own)."""
        name = route_name(token)
        reference = owner_reference(owner) if owner and owner.uid else None
        owners = [reference] if reference else None
        metadata = client.V1ObjectMeta(name=name, labels={CHALLENGE_LABEL: "true"}, owner_references=owners)
        service = client.V1Service(
            metadata=metadata,
            spec=client.V1ServiceSpec(
                type="ExternalName",
                external_name=self._target,
                ports=[client.V1ServicePort(name="http", port=self._port)],
            ),
        )
        annotations = dict(options.annotations)
        if options.class_annotation:
            annotations[_CLASS_ANNOTATION] = options.class_annotation
        backend = client.V1IngressBackend(
            service=client.V1IngressServiceBackend(
                name=name, port=client.V1ServiceBackendPort(number=self._port)
            )
        )
        ingress = client.V1Ingress(
            metadata=client.V1ObjectMeta(
                name=name,
                labels={CHALLENGE_LABEL: "true"},
                annotations=annotations or None,
                owner_references=owners,
            ),
            spec=client.V1IngressSpec(
                ingress_class_name=options.class_name,
                rules=[
                    client.V1IngressRule(
                        host=host,
                        http=client.V1HTTPIngressRuleValue(
                            paths=[
                                client.V1HTTPIngressPath(
                                    path=f"{_PATH_PREFIX}{token}", path_type="Exact", backend=backend
                                )
                            ]
                        ),
                    )
                ],
            ),
        )
        try:
            self._core.create_namespaced_service(namespace, service)
        except ApiException as error:
            if error.status != HTTP_CONFLICT:
                raise access_error(f"creating Service {namespace}/{name}", error) from None
        try:
            self._networking.create_namespaced_ingress(namespace, ingress)
        except ApiException as error:
            if error.status != HTTP_CONFLICT:
                raise access_error(f"creating Ingress {namespace}/{name}", error) from None

    def withdraw(self, namespace: str, token: str) -> None:
        name = route_name(token)
        try:
            self._networking.delete_namespaced_ingress(name, namespace)
        except ApiException as error:
            if error.status != HTTP_NOT_FOUND:
                raise access_error(f"deleting Ingress {namespace}/{name}", error) from None
        try:
            self._core.delete_namespaced_service(name, namespace)
        except ApiException as error:
            if error.status != HTTP_NOT_FOUND:
                raise access_error(f"deleting Service {namespace}/{name}", error) from None


def route_name(token: str) -> str:
    return f"certsmith-acme-{hashlib.sha256(token.encode()).hexdigest()[:16]}"
