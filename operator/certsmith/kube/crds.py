"""Install certsmith's CustomResourceDefinitions and wait until the API server serves them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

_POLL_INTERVAL = 0.1
_HTTP_CONFLICT = 409


class CRDNotEstablishedError(RuntimeError):
    """The API server did not accept a CRD's names in time."""


def load_crds(directory: Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in `*.yaml` under `directory`, in file-name order."""
    documents = [
        document
        for path in sorted(directory.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]
    crds = [document for document in documents if document.get("kind") == "CustomResourceDefinition"]
    if not crds:
        raise FileNotFoundError(f"no CustomResourceDefinition found in {directory}/*.yaml")
    return crds


ADMISSION_POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def load_admission_policies(directory: Path) -> list[dict[str, Any]]:
    """The ValidatingAdmissionPolicies (and their bindings) in `*.yaml` under `directory`: the rules of
    the API that a CRD schema cannot state (who may approve a CertificateRequest)."""
    return [
        document
        for path in sorted(directory.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document and document.get("kind") in ADMISSION_POLICY_KINDS
    ]


def install_admission_policies(api: client.ApiClient, manifests: Iterable[dict[str, Any]]) -> None:
    """Create or replace each policy and binding (both kinds are cluster-scoped)."""
    admission = client.AdmissionregistrationV1Api(api)
    for manifest in manifests:
        name = manifest["metadata"]["name"]
        binding = manifest["kind"] == "ValidatingAdmissionPolicyBinding"
        try:
            if binding:
                admission.create_validating_admission_policy_binding(manifest)  # type: ignore[arg-type]
            else:
                admission.create_validating_admission_policy(manifest)  # type: ignore[arg-type]
        except ApiException as error:
            if error.status != _HTTP_CONFLICT:
                raise
            current = (
                admission.read_validating_admission_policy_binding(name)
                if binding
                else admission.read_validating_admission_policy(name)
            )
            version = current.metadata.resource_version if current and current.metadata else None
            replacement = {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": version}}
            if binding:
                admission.replace_validating_admission_policy_binding(name, replacement)  # type: ignore[arg-type]
            else:
                admission.replace_validating_admission_policy(name, replacement)  # type: ignore[arg-type]


def install_crds(
    api: client.ApiClient, manifests: Iterable[dict[str, Any]], timeout: float = 30.0
) -> list[str]:
    """Create or replace each CRD, then wait until all are Established and served. Returns their names."""
    extensions = client.ApiextensionsV1Api(api)
    installed = []
    for manifest in manifests:
        name = manifest["metadata"]["name"]
        try:
            extensions.create_custom_resource_definition(_model(manifest))
        except ApiException as error:
            if error.status != _HTTP_CONFLICT:
                raise
            current = extensions.read_custom_resource_definition(name).metadata
            resource_version = current.resource_version if current else None
            replacement = {
                **manifest,
                "metadata": {**manifest["metadata"], "resourceVersion": resource_version},
            }
            extensions.replace_custom_resource_definition(name, _model(replacement))
        installed.append(manifest)
    return wait_until_served(api, installed, timeout)


def wait_until_served(
    api: client.ApiClient, manifests: Iterable[dict[str, Any]], timeout: float = 30.0
) -> list[str]:
    """Wait until each CRD is Established and served. Returns their names."""
    extensions = client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + timeout
    names = []
    for manifest in manifests:
        name = manifest["metadata"]["name"]
        while not (_established(extensions, name) and _served(api, manifest)):
            if time.monotonic() > deadline:
                raise CRDNotEstablishedError(
                    f"CustomResourceDefinition {name} not served after {timeout:.0f}s"
                )
            time.sleep(_POLL_INTERVAL)
        names.append(name)
    return names


def _model(manifest: dict[str, Any]) -> client.V1CustomResourceDefinition:
    crd = client.V1CustomResourceDefinition.from_dict(manifest)
    if crd is None:
        raise ValueError(f"not a CustomResourceDefinition: {manifest['metadata']['name']}")
    return crd


def _served(api: client.ApiClient, manifest: dict[str, Any]) -> bool:
    """Established is not enough: for a moment after it, the API server still answers 429 "storage is
    (re)initializing" for the new resource."""
    spec = manifest["spec"]
    try:
        client.CustomObjectsApi(api).list_cluster_custom_object(
            spec["group"], spec["versions"][0]["name"], spec["names"]["plural"], limit=1
        )
    except ApiException:
        return False
    return True


def _established(extensions: client.ApiextensionsV1Api, name: str) -> bool:
    status = extensions.read_custom_resource_definition(name).status
    conditions = (status.conditions if status else None) or []
    return any(condition.type == "Established" and condition.status == "True" for condition in conditions)
