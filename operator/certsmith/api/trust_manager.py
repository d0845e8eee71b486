"""trust-manager's Bundle (trust.cert-manager.io/v1alpha1) as certsmith's: the same fields, so mostly a
new apiVersion; what certsmith does not carry over is named in a note, and a Bundle that would not work
is refused with the field. Pure."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from certsmith.api import API_VERSION, SpecError
from certsmith.api.bundle import parse_bundle_spec
from certsmith.api.cert_manager import Converted
from certsmith.api.cert_manager_fields import Note, Severity

TRUST_MANAGER_GROUP = "trust.cert-manager.io"
_SOURCE_KINDS = ("configMap", "secret", "inLine", "useDefaultCAs")
_TARGET_FIELDS = ("configMap", "secret", "additionalFormats", "namespaceSelector")
_KUBECTL_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def is_trust_manager(document: Mapping[str, Any]) -> bool:
    group = str(document.get("apiVersion", "")).partition("/")[0]
    return group == TRUST_MANAGER_GROUP and document.get("kind") == "Bundle"


def convert_bundle(document: Mapping[str, Any]) -> Converted:
    notes: list[Note] = [
        Note(
            Severity.NOTE,
            "spec.sources",
            "certsmith reads configMap and secret sources from its --trust-namespace (default certsmith; "
            "trust-manager's default is cert-manager): run it with yours",
        )
    ]
    if document.get("apiVersion") != f"{TRUST_MANAGER_GROUP}/v1alpha1":
        problem = f"{document.get('apiVersion')}: only trust-manager's v1alpha1 Bundle is converted"
        return Converted(None, [Note(Severity.REFUSED, "apiVersion", problem)])
    metadata = document.get("metadata") or {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        return Converted(None, [Note(Severity.REFUSED, "metadata.name", "is required")])
    converted_metadata: dict[str, Any] = {"name": name}
    if metadata.get("labels"):
        converted_metadata["labels"] = dict(metadata["labels"])
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if key not in _KUBECTL_ANNOTATIONS
    }
    if annotations:
        converted_metadata["annotations"] = annotations
    spec = copy.deepcopy(dict(document.get("spec") or {}))
    spec["sources"] = [
        source for index, source in enumerate(spec.get("sources") or ()) if _keep_source(index, source, notes)
    ]
    target = spec.get("target") or {}
    for key in sorted(set(target) - set(_TARGET_FIELDS)):
        notes.append(Note(Severity.DROPPED, f"spec.target.{key}", "not a field certsmith knows: left out"))
        del target[key]
    for kind in ("configMap", "secret"):
        if isinstance(target.get(kind), dict) and "metadata" in target[kind]:
            del target[kind]["metadata"]
            notes.append(
                Note(
                    Severity.DROPPED,
                    f"spec.target.{kind}.metadata",
                    "certsmith's targets carry only its own label and annotation: left out",
                )
            )
    formats = target.get("additionalFormats") or {}
    if "jks" in formats:
        del formats["jks"]
        notes.append(
            Note(
                Severity.DROPPED,
                "spec.target.additionalFormats.jks",
                "certsmith writes no JKS; Java reads the PKCS#12 format too (additionalFormats.pkcs12)",
            )
        )
        if not formats:
            del target["additionalFormats"]
    for key in sorted(set(spec) - {"sources", "target"}):
        notes.append(Note(Severity.DROPPED, f"spec.{key}", "not a field certsmith knows: left out"))
        del spec[key]
    try:
        parse_bundle_spec(name, spec)
    except SpecError as error:
        path = f"spec.{error.field}"
        return Converted(None, [*notes, Note(Severity.REFUSED, path, str(error).removeprefix(f"{path}: "))])
    manifest = {"apiVersion": API_VERSION, "kind": "Bundle", "metadata": converted_metadata, "spec": spec}
    return Converted(manifest, notes)


def _keep_source(index: int, source: Any, notes: list[Note]) -> bool:  # noqa: ANN401 -- any YAML value
    path = f"spec.sources[{index}]"
    if not isinstance(source, dict):
        return True  # parse_bundle_spec refuses it, naming the field
    if source.get("useDefaultCAs") is False and len(source) == 1:
        notes.append(Note(Severity.NOTE, f"{path}.useDefaultCAs", "false adds nothing: left out"))
        return False
    for key in sorted(set(source) - set(_SOURCE_KINDS)):
        notes.append(Note(Severity.DROPPED, f"{path}.{key}", "not a source certsmith knows: left out"))
        del source[key]
    return True
