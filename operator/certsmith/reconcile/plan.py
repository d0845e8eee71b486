"""A reconcile's result as data — the Secret to write, the status, the Events, a step for the I/O
layer, when to look again — and the one function that carries it out.

The order is fixed: the Secret first (conditional on the resourceVersion observed, so a stale view
costs a conflict, never a wrong write), then the status, then the Events, then the step result the
plan acted on is settled and the plan's own step is started (in its issuer's lane, never here). If
the Secret write fails, nothing else of the plan happens and the caller plans the failure instead.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from certsmith.engine.lanes import Lanes
from certsmith.engine.steps import Step
from certsmith.kube.port import ApiAccessError, EventRecord, Key, KubePort, ObjectRef
from certsmith.kube.secrets import ObservedSecret
from certsmith.reconcile.store import IssuerState, Store, WorkItem
from certsmith.tls_secret import SecretContents

logger = logging.getLogger("certsmith")


@dataclass(frozen=True)
class SecretWrite:
    namespace: str
    name: str
    contents: SecretContents
    resource_version: str | None
    """None creates the Secret; otherwise it is replaced only if still at this version."""
    owner: ObjectRef | None = None


@dataclass(frozen=True)
class StatusWrite:
    plural: str
    key: Key
    status: Mapping[str, Any]


@dataclass(frozen=True)
class Plan:
    secret: SecretWrite | None = None
    status: StatusWrite | None = None
    events: tuple[EventRecord, ...] = ()
    log: str | None = None
    log_warning: bool = False
    recheck_at: datetime.datetime | None = None
    follow_up: tuple[WorkItem, ...] = ()
    step: Step | None = None
    """A CA or DNS step to start in the I/O layer; its end queues this object again."""
    settles: Hashable | None = None
    """The owner whose step result this plan acted on, forgotten once the plan is carried out."""
    issued: bool | None = None
    """For the issuance metrics: True if the plan writes a new certificate, False if it records a
    failed attempt, None if it is neither."""


@dataclass(frozen=True)
class Written:
    """What a worker wrote or read, handed back to the event loop, which owns the store."""

    secrets: tuple[tuple[Key, ObservedSecret], ...] = ()
    statuses: tuple[StatusWrite, ...] = ()
    issuer_states: tuple[tuple[WorkItem, IssuerState | None], ...] = ()

    def __add__(self, other: Written) -> Written:
        return Written(
            self.secrets + other.secrets,
            self.statuses + other.statuses,
            self.issuer_states + other.issuer_states,
        )


@dataclass(frozen=True)
class Outcome:
    recheck_at: datetime.datetime | None = None
    follow_up: tuple[WorkItem, ...] = ()
    written: Written = field(default_factory=Written)


class SecretWriteRefusedError(RuntimeError):
    """The API server refused the plan's Secret write (403, 429, ...); nothing else was written."""

    def __init__(self, refusal: ApiAccessError) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


def apply_plan(port: KubePort, plan: Plan, lanes: Lanes | None = None) -> Written:
    """Carry out `plan`. A Secret write that conflicts (SecretConflictError) or is refused
    (SecretWriteRefusedError) stops the plan before anything else is written; a refused status patch or
    Event raises ApiAccessError after the Secret was written. `lanes` starts the plan's step."""
    secrets: tuple[tuple[Key, ObservedSecret], ...] = ()
    if plan.secret is not None:
        write = plan.secret
        try:
            observed = port.write_secret(
                write.namespace, write.name, write.contents, write.resource_version, write.owner
            )
        except ApiAccessError as refusal:
            raise SecretWriteRefusedError(refusal) from None
        secrets = (((write.namespace, write.name), observed),)
    statuses: tuple[StatusWrite, ...] = ()
    if plan.status is not None:
        status = plan.status
        namespace = status.key[0] or None
        port.patch_status(status.plural, namespace, status.key[1], status.status)
        statuses = (status,)
    for event in plan.events:
        port.post_event(event)
    if plan.settles is not None or plan.step is not None:
        if lanes is None:
            raise RuntimeError("a plan with an I/O step was applied without the I/O layer")
        if plan.settles is not None:
            lanes.settle(plan.settles)
        if plan.step is not None:
            lanes.start(plan.step)
    if plan.log:
        logger.log(logging.WARNING if plan.log_warning else logging.INFO, "%s", plan.log)
    return Written(secrets, statuses)


def merge_written(store: Store, written: Written) -> None:
    """Bring the store up to date with what a worker wrote; called on the event loop only."""
    for key, observed in written.secrets:
        store.secrets[key] = observed
    for status in written.statuses:
        store.remember_status(status.plural, status.key, status.status)
    for issuer, state in written.issuer_states:
        if state is None:
            store.issuer_states.pop(issuer, None)
        else:
            store.issuer_states[issuer] = state
