"""One lane per issuer: a few threads of its own that run its steps, with its own health.

A CA that hangs occupies only its issuer's lane (at most `LANE_SIZE` steps at once), never a
reconcile worker, and never another issuer's lane. Every call to a CA or a nameserver has a timeout
(the ACME client's 30 s, a DNS query's 10 s); the Kubernetes calls of an HTTP-01 challenge's Ingress
are made with the API client's own settings, as every other. A lane's threads are daemons, so a call
still hanging at shutdown does not hold the process. When a step ends, its owner is queued again
(`done`), and a change of the issuer's health queues the issuer (`health_changed`).
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import queue
import threading
from collections.abc import Callable, Hashable
from dataclasses import replace
from pathlib import Path

from certsmith.engine.steps import KEY_GENERATION_LANE, RegisterStep, RenewalInfoStep, Signed, SignStep, Step
from certsmith.issuers import IssuerId, Pending, SigningFailedError
from certsmith.issuers.acme.accounts import AccountBook
from certsmith.issuers.acme.client import SERVER_UNREACHABLE, AcmeError
from certsmith.issuers.acme.signer import NOT_ABOUT_THE_CA
from certsmith.issuers.health import IssuerHealth
from certsmith.pki import PKIError
from certsmith.pki.keys import PrivateKey
from certsmith.pki.signing import IssuedCertificate
from certsmith.renewal_info import RenewalInfo, RenewalInfoError, answered, failed

logger = logging.getLogger("certsmith")

LANE_SIZE = 4
"""Steps one issuer runs at once."""


def _cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may use: those it may run on, fewer if its cgroup (v2) has a CPU quota
    (a container's CPU limit)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()
        limit = cores if quota == "max" else math.ceil(int(quota) / int(period))
    except (OSError, ValueError, ZeroDivisionError):
        return cores
    return max(1, min(cores, limit))


KEY_GENERATION_LANE_SIZE = _cores()
"""Slow keys made at once: one per core this process may use. Key generation lets go of the GIL, so
more would only take the cores from the reconcile workers and the event loop."""
RENEWAL_INFO_LANE_SIZE = 1
"""ARI requests one issuer runs at once, beside its signing steps: 10,000 certificates due together
(after a restart) are asked about one after another, a steady trickle the CA can bear."""


class Lanes:
    def __init__(
        self,
        accounts: AccountBook,
        health: IssuerHealth,
        done: Callable[[Hashable], None],
        health_changed: Callable[[IssuerId], None],
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._clock = clock
        self._accounts = accounts
        self._health = health
        self._done = done
        self._health_changed = health_changed
        self._lanes: dict[IssuerId, _Lane] = {}
        self._renewal_info_lanes: dict[IssuerId, _Lane] = {}
        self._busy: set[Hashable] = set()
        self._asking: set[Hashable] = set()
        """Owners with an ARI step queued or running (apart from `_busy`: it never delays signing)."""
        self._renewal_info: dict[Hashable, RenewalInfo] = {}
        """The outcome of owners' last ARI step, until a reconcile has written it to the status."""
        self._signed: dict[Hashable, Signed] = {}
        self._keys: dict[Hashable, PrivateKey] = {}
        """The keys of orders finalized and not yet downloaded, by owner: memory only, so after a
        restart such an order is replaced (see `orders.next_step`)."""
        self._lock = threading.Lock()

    def start(self, step: Step) -> None:
        """Run `step` in its issuer's lane, unless its owner has one running, or a result that no
        reconcile has settled yet (one that ended after the reconcile looked: it is queued again)."""
        if isinstance(step, RenewalInfoStep):
            self._start_renewal_info(step)
            return
        with self._lock:
            if step.owner in self._busy or step.owner in self._signed:
                return
            self._busy.add(step.owner)
            lane = self._lanes.get(step.lane)
            if lane is None:
                size = KEY_GENERATION_LANE_SIZE if step.lane == KEY_GENERATION_LANE else LANE_SIZE
                lane = self._lanes[step.lane] = _Lane(step.lane, size)
        lane.submit(lambda: self._run(step))

    def _start_renewal_info(self, step: RenewalInfoStep) -> None:
        with self._lock:
            if step.owner in self._asking or step.owner in self._renewal_info:
                return
            self._asking.add(step.owner)
            lane = self._renewal_info_lanes.get(step.lane)
            if lane is None:
                lane = self._renewal_info_lanes[step.lane] = _Lane(
                    step.lane, RENEWAL_INFO_LANE_SIZE, "certsmith-ari"
                )
        lane.submit(lambda: self._run_renewal_info(step))

    def renewal_info(self, owner: Hashable) -> RenewalInfo | None:
        """The outcome of `owner`'s last ARI step, until it is settled."""
        with self._lock:
            return self._renewal_info.get(owner)

    def asking(self, owner: Hashable) -> bool:
        with self._lock:
            return owner in self._asking

    def settle_renewal_info(self, owner: Hashable) -> None:
        """Forget `owner`'s ARI outcome: the status holds it now."""
        with self._lock:
            self._renewal_info.pop(owner, None)

    def busy(self, owner: Hashable) -> bool:
        with self._lock:
            return owner in self._busy

    def signed(self, owner: Hashable) -> Signed | None:
        """The result of `owner`'s last signing step, until it is settled."""
        with self._lock:
            return self._signed.get(owner)

    def settle(self, owner: Hashable) -> None:
        """Forget `owner`'s result: its reconcile has acted on it."""
        with self._lock:
            self._signed.pop(owner, None)

    def forget(self, owner: Hashable) -> None:
        """The object is gone: its result and any key kept for it too."""
        with self._lock:
            self._signed.pop(owner, None)
            self._keys.pop(owner, None)
            self._renewal_info.pop(owner, None)

    def close(self, issuer: IssuerId) -> None:
        """The issuer is gone: its lane's threads end once their steps do."""
        with self._lock:
            lanes = [self._lanes.pop(issuer, None), self._renewal_info_lanes.pop(issuer, None)]
        for lane in lanes:
            if lane is not None:
                lane.close()
        self._health.forget(issuer)
        self._accounts.forget(issuer)

    def shutdown(self) -> None:
        with self._lock:
            lanes = [*self._lanes.values(), *self._renewal_info_lanes.values()]
            self._lanes, self._renewal_info_lanes = {}, {}
        for lane in lanes:
            lane.close()

    def _run(self, step: Step) -> None:
        try:
            if isinstance(step, RegisterStep):
                self._register(step)
            elif isinstance(step, SignStep):
                self._sign(step)
        finally:
            with self._lock:
                self._busy.discard(step.owner)
            self._done(step.owner)

    def _run_renewal_info(self, step: RenewalInfoStep) -> None:
        outcome: RenewalInfo | None
        try:
            outcome = self._ask(step)
        except Exception as error:  # a bug must fail this request, not the lane
            logger.exception("asking for the renewal information of %s failed", step.owner)
            message = f"{type(error).__name__}: {error}"
            outcome = failed(step.previous, step.previous.cert_id, message, self._clock(), step.interval)
        finally:
            with self._lock:
                self._asking.discard(step.owner)
        if outcome is not None:
            with self._lock:
                self._renewal_info[step.owner] = outcome
            self._done(step.owner)

    def _ask(self, step: RenewalInfoStep) -> RenewalInfo | None:
        """The step's outcome; None if the CA offers no ARI (the reconcile then asks no more)."""
        cert = step.previous.cert_id
        now = self._clock()
        try:
            answer = step.source.renewal_info(cert)
        except AcmeError as error:
            self._reached(step, error.reason, str(error))
            logger.warning("renewal information of %s (%s): %s", step.owner, cert, error)
            outcome = failed(step.previous, cert, str(error), now, step.interval)
            if error.retry_after is not None and error.retry_after > outcome.next_update:
                outcome = replace(outcome, next_update=error.retry_after)  # a 429's Retry-After
            return outcome
        self._reached(step, None, "")
        if answer is None:
            return None
        try:
            return answered(cert, answer.body, answer.retry_after, now, step.interval)
        except RenewalInfoError as error:
            logger.warning("renewal information of %s (%s): %s", step.owner, cert, error)
            return failed(step.previous, cert, str(error), now, step.interval)

    def _register(self, step: RegisterStep) -> None:
        try:
            self._accounts.register(step.registration)
        except AcmeError as error:
            self._reached(step, error.reason, str(error))
        else:
            self._reached(step, None, "")

    def _sign(self, step: SignStep) -> None:
        request = step.request
        with self._lock:
            held = self._keys.get(step.owner)
        if held is not None and request.csr is None:
            request = replace(request, key=lambda: held, key_held=True)
        refusal = self._health.refusal(step.lane)
        result: IssuedCertificate | Pending | SigningFailedError
        if refusal is not None:  # the issuer became unreachable while this step waited for a thread
            result = SigningFailedError(refusal.reason, str(refusal))
        else:
            try:
                result = step.signer.sign(request)
            except SigningFailedError as error:
                result = error
            except PKIError as error:  # what the request asks cannot be made (a key size, a name)
                result = SigningFailedError("SigningFailed", str(error))
            except Exception as error:  # a bug must fail this step, not the lane
                logger.error(  # noqa: TRY400 -- a traceback could show the request's key
                    "signing for %s in the lane of %s failed: %s: %s",
                    step.owner,
                    step.lane,
                    type(error).__name__,
                    error,
                )
                result = SigningFailedError("SigningFailed", f"{type(error).__name__}: {error}")
            failure = result if isinstance(result, SigningFailedError) else None
            if failure is None or failure.reason not in NOT_ABOUT_THE_CA:
                self._reached(step, failure.reason if failure else None, str(failure))
        needed = isinstance(result, Pending) and result.key_needed
        key = (
            request.key()
            if request.csr is None and (needed or isinstance(result, IssuedCertificate))
            else None
        )
        with self._lock:
            self._signed[step.owner] = Signed(result, key, step.basis, self._clock())
            if key is not None and needed:
                self._keys[step.owner] = key
            else:
                self._keys.pop(step.owner, None)

    def _reached(self, step: Step, reason: str | None, message: str) -> None:
        """Count the step's outcome towards the issuer's health."""
        if reason == SERVER_UNREACHABLE:
            changed = self._health.failed(step.lane, step.address, message)
        else:
            changed = self._health.answered(step.lane)
        if changed:
            self._health_changed(step.lane)


class _Lane:
    """At most `size` daemon threads, started as steps arrive, taking steps in order."""

    def __init__(self, issuer: IssuerId, size: int, prefix: str = "certsmith-lane") -> None:
        self._name = f"{prefix}-{issuer[0]}-{'/'.join(part for part in issuer[1] if part)}"
        self._size = size
        self._steps: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = 0
        self._idle = 0
        self._waiting = 0
        self._lock = threading.Lock()

    def submit(self, run: Callable[[], None]) -> None:
        with self._lock:
            self._waiting += 1
            if self._waiting > self._idle and self._threads < self._size:
                self._threads += 1
                name = f"{self._name}-{self._threads}"
                threading.Thread(target=self._serve, name=name, daemon=True).start()
        self._steps.put(run)

    def close(self) -> None:
        with self._lock:
            threads = self._threads
            self._waiting += threads
        for _ in range(threads):
            self._steps.put(None)

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            run = self._steps.get()
            with self._lock:
                self._idle -= 1
                self._waiting -= 1
            if run is None:
                return
            run()
