"""Keep the Certificates an annotated Ingress or Gateway asks for: create those missing, update those
whose Ingress changed, delete those whose TLS entry went.

Each Certificate it makes is owned by its Ingress or Gateway (deleting that deletes them) and carries
the spec it was given in an annotation: a Certificate is updated only when the Ingress asks for
something else than it last did, so the API server's defaults and people's edits of the Certificate
are never fought over. A Certificate of that name that the object does not own is left alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from certsmith.api import API_VERSION, INGRESSES
from certsmith.api.shim import (
    GATEWAY_API_VERSION,
    INGRESS_API_VERSION,
    Wanted,
    gateway_certificates,
    ingress_certificates,
)
from certsmith.kube.certificates import CertificateWriter
from certsmith.kube.port import ApiAccessError, EventRecord, KubePort, ObjectRef
from certsmith.reconcile.plan import Outcome
from certsmith.reconcile.store import Store, WorkItem

logger = logging.getLogger("certsmith")

APPLIED = "certsmith.dev/applied-spec"
"""On a Certificate made for an Ingress or Gateway: the spec it was last given, as JSON."""


class ShimReconciler:
    def __init__(self, store: Store, port: KubePort, writer: CertificateWriter) -> None:
        self._store = store
        self._port = port
        self._writer = writer

    def reconcile(self, item: WorkItem) -> Outcome:
        body = self._store.objects(item.plural).get(item.key)
        if body is None:
            return Outcome()  # the garbage collector deletes what it owned
        ingress = item.plural == INGRESSES
        wanted = ingress_certificates(body) if ingress else gateway_certificates(body)
        namespace, name = item.key
        metadata = body["metadata"]
        owner = ObjectRef(
            "Ingress" if ingress else "Gateway",
            namespace,
            name,
            metadata.get("uid"),
            metadata.get("resourceVersion"),
            INGRESS_API_VERSION if ingress else GATEWAY_API_VERSION,
        )
        problems = list(wanted.problems)
        unusable = bool(wanted.problems) and not wanted.certificates  # nothing is deleted over a typo
        if wanted.annotated and not unusable:
            problems += self._converge(owner, wanted)
        for problem in problems:
            self._say(EventRecord(owner, True, "BadCertificateConfig", problem))
        return Outcome()

    def _converge(self, owner: ObjectRef, wanted: Wanted) -> list[str]:
        namespace = owner.namespace or ""
        owned = {
            key[1]: body
            for key, body in list(self._store.certificates.items())
            if key[0] == namespace and _owned_by(body, owner.uid)
        }
        problems = []
        for name, spec in wanted.certificates.items():
            existing = self._store.certificates.get((namespace, name))
            if existing is not None and name not in owned:
                problems.append(
                    f"Certificate {name} exists and is not this {owner.kind}'s; left as it is (rename the "
                    f"Secret in the {owner.kind}, or delete that Certificate)"
                )
                continue
            try:
                if self._put(owner, name, spec, existing):
                    logger.info(
                        "certificate %s/%s written for %s %s", namespace, name, owner.kind, owner.name
                    )
            except ApiAccessError as error:
                logger.warning(
                    "certificate %s/%s for %s %s not written: %s",
                    namespace,
                    name,
                    owner.kind,
                    owner.name,
                    error,
                )
                problems.append(f"Certificate {name} could not be written: {error}")
        for name, body in owned.items():
            if name in wanted.certificates:
                continue
            try:
                self._writer.delete(namespace, name, body["metadata"].get("uid", ""))
            except ApiAccessError as error:
                logger.warning("certificate %s/%s not deleted: %s", namespace, name, error)
                problems.append(f"Certificate {name}, no longer asked for, could not be deleted: {error}")
                continue
            logger.info(
                "certificate %s/%s deleted: %s %s no longer asks for it",
                namespace,
                name,
                owner.kind,
                owner.name,
            )
        return problems

    def _put(
        self, owner: ObjectRef, name: str, spec: Mapping[str, Any], existing: Mapping[str, Any] | None
    ) -> bool:
        """Create the Certificate, or update it if the spec asked for changed; whether it wrote."""
        applied = json.dumps(spec, sort_keys=True)
        namespace = owner.namespace or ""
        if existing is None:
            self._writer.create(
                namespace,
                {
                    "apiVersion": API_VERSION,
                    "kind": "Certificate",
                    "metadata": {
                        "name": name,
                        "annotations": {APPLIED: applied},
                        "ownerReferences": [_owner_reference(owner)],
                    },
                    "spec": dict(spec),
                },
            )
            return True
        before = (existing["metadata"].get("annotations") or {}).get(APPLIED)
        if before == applied:
            return False
        previous = json.loads(before) if before else {}
        patch = {"metadata": {"annotations": {APPLIED: applied}}, "spec": spec_patch(previous, spec)}
        self._writer.patch(namespace, name, patch)
        return True

    def _say(self, event: EventRecord) -> None:
        try:
            self._port.post_event(event)
        except ApiAccessError as error:
            logger.warning(
                "%s %s/%s: %s (Event not posted: %s)",
                event.regarding.kind,
                event.regarding.namespace,
                event.regarding.name,
                event.message,
                error,
            )


def _owned_by(body: Mapping[str, Any], uid: str | None) -> bool:
    """Made by the shim for the object with `uid`: owned by it and carrying the spec it was given, so
    that a Certificate someone else made (even one owned by the Ingress) is never deleted."""
    metadata = body["metadata"]
    return (
        bool(uid)
        and APPLIED in (metadata.get("annotations") or {})
        and any(reference.get("uid") == uid for reference in metadata.get("ownerReferences") or [])
    )


def _owner_reference(owner: ObjectRef) -> dict[str, Any]:
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }


def spec_patch(previous: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """From the spec last given to the one wanted: what was given and is no longer wanted is removed."""
    patch: dict[str, Any] = {key: None for key in previous if key not in wanted}
    for key, value in wanted.items():
        before = previous.get(key)
        patch[key] = (
            spec_patch(before, value) if isinstance(value, dict) and isinstance(before, dict) else value
        )
    return patch
