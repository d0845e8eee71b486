"""Keep the Certificates an annotated Ingress or Gateway asks for: create those missing, update those
whose Ingress changed, delete those whose TLS entry went.

Each Certificate it makes is owned by its Ingress or Gateway (deleting that deletes them) and carries
the spec it was given in an annotation: a Certificate is updated only when the Ingress asks for
something else than it last did, so the API server's defaults and people's edits of the Certificate
are never fought over. A Certificate of that name that the object does not own is left alone.

Objects of one namespace that name the same Secret do not race for it: the oldest (first_claim) gets
its Certificate, taking it over if another made it first; the others get a Warning Event naming it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from certsmith.api import API_VERSION, GATEWAYS, INGRESSES
from certsmith.api.shim import (
    GATEWAY_API_VERSION,
    INGRESS_API_VERSION,
    Wanted,
    first_claim,
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
        follow_up: tuple[WorkItem, ...] = ()
        if wanted.annotated and not unusable:
            converged, follow_up = self._converge(owner, body, wanted)
            problems += converged
        for problem in problems:
            self._say(EventRecord(owner, True, "BadCertificateConfig", problem))
        return Outcome(follow_up=follow_up)

    def _converge(
        self, owner: ObjectRef, asking: Mapping[str, Any], wanted: Wanted
    ) -> tuple[list[str], tuple[WorkItem, ...]]:
        """Problems, and the objects that lost a Certificate to this one (to tell them so)."""
        namespace = owner.namespace or ""
        owned = {
            key[1]: body
            for key, body in self._store.certificates.referring(owner.uid or "")
            if key[0] == namespace and _owned_by(body, owner.uid)
        }
        rivals = self._rivals(namespace, owner.uid)
        problems = []
        lost: set[str] = set()
        losers: list[WorkItem] = []
        for name, spec in wanted.certificates.items():
            claimants = rivals.get(name, [])
            winner = first_claim([asking, *(other for _, other in claimants)])
            if winner is not asking:
                kind = next(_kind(item) for item, other in claimants if other is winner)
                lost.add(name)
                problems.append(
                    f"Secret {name} is also named by {kind} {winner['metadata']['name']}, which is "
                    f"older and gets its Certificate; this {owner.kind}'s hosts are not in it: name another "
                    f"Secret in this {owner.kind}, or move its hosts to {winner['metadata']['name']}"
                )
                continue
            existing = self._store.certificates.get((namespace, name))
            taken_from = next(
                (
                    item
                    for item, other in claimants
                    if existing and _owned_by(existing, other["metadata"].get("uid"))
                ),
                None,
            )
            if taken_from is not None:
                losers.append(taken_from)
            elif existing is not None and name not in owned:
                problems.append(
                    f"Certificate {name} exists and is not this {owner.kind}'s; left as it is (rename the "
                    f"Secret in the {owner.kind}, or delete that Certificate)"
                )
                continue
            try:
                if self._put(owner, name, spec, existing, take_over=taken_from is not None):
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
            if name in wanted.certificates or name in lost:  # what it lost, the winner takes over
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
        return problems, tuple(losers)

    def _rivals(self, namespace: str, uid: str | None) -> dict[str, list[tuple[WorkItem, Mapping[str, Any]]]]:
        """For each Secret name, the other annotated Ingresses and Gateways in `namespace` asking for it."""
        claims: dict[str, list[tuple[WorkItem, Mapping[str, Any]]]] = {}
        for plural in (INGRESSES, GATEWAYS):
            for key, other in list(self._store.objects(plural).items()):
                if key[0] != namespace or other["metadata"].get("uid") == uid:
                    continue
                asked = ingress_certificates(other) if plural == INGRESSES else gateway_certificates(other)
                for name in asked.certificates:
                    claims.setdefault(name, []).append((WorkItem(plural, key), other))
        return claims

    def _put(
        self,
        owner: ObjectRef,
        name: str,
        spec: Mapping[str, Any],
        existing: Mapping[str, Any] | None,
        take_over: bool = False,
    ) -> bool:
        """Create the Certificate, or update it if the spec asked for changed (taking it over from the
        object that made it: its owner reference and applied spec become this one's); whether it wrote."""
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
        if before == applied and not take_over:
            return False
        previous = json.loads(before) if before else {}
        metadata: dict[str, Any] = {"annotations": {APPLIED: applied}}
        if take_over:
            metadata["ownerReferences"] = [_owner_reference(owner)]
        self._writer.patch(namespace, name, {"metadata": metadata, "spec": spec_patch(previous, spec)})
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


def _kind(item: WorkItem) -> str:
    return "Ingress" if item.plural == INGRESSES else "Gateway"


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
