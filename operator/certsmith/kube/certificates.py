"""Writing Certificates, for the Ingress and Gateway shim (the only code that makes Certificates)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.api import CERTIFICATES, GROUP, VERSION
from certsmith.kube.port import HTTP_NOT_FOUND, access_error


class CertificateWriter:
    def __init__(self, api: client.ApiClient) -> None:
        self._objects = client.CustomObjectsApi(api)

    def create(self, namespace: str, body: Mapping[str, Any]) -> None:
        try:
            self._objects.create_namespaced_custom_object(GROUP, VERSION, namespace, CERTIFICATES, dict(body))
        except ApiException as error:
            raise access_error(
                f"creating Certificate {namespace}/{body['metadata']['name']}", error
            ) from None

    def patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """A merge patch (None deletes a field)."""
        try:
            self._objects.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, CERTIFICATES, name, dict(patch)
            )
        except ApiException as error:
            raise access_error(f"updating Certificate {namespace}/{name}", error) from None

    def delete(self, namespace: str, name: str, uid: str) -> None:
        """Delete the Certificate if it is still the one with `uid` (not one made again since)."""
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            self._objects.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, CERTIFICATES, name, body=options
            )
        except ApiException as error:
            if error.status != HTTP_NOT_FOUND:
                raise access_error(f"deleting Certificate {namespace}/{name}", error) from None
