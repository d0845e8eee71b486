"""Child processes that never outlive certsmith: stopped in order on exit, killed by the kernel if we die."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType

logger = logging.getLogger("certsmith_devtools")

_PR_SET_PDEATHSIG = 1
OWNER_ENVIRONMENT_VARIABLE = "CERTSMITH_CONTROLPLANE_OWNER"
_LIBC = ctypes.CDLL(None, use_errno=True)
_STOP_GRACE_SECONDS = 10.0


class ManagedProcess:
    """A named child process whose output goes to a log file, or to our own stderr when log_path is None."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path | None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("wb") if log_path else contextlib.nullcontext(None) as log:
            self._popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
                env={**os.environ, **(environment or {}), OWNER_ENVIRONMENT_VARIABLE: str(os.getpid())},
                start_new_session=True,  # Ctrl-C reaches us, and we stop the children in order
                preexec_fn=_die_with_parent,  # noqa: PLW1509 -- only async-signal-safe work, before exec
            )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def exit_code(self) -> int | None:
        return self._popen.poll()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; always reaps the child."""
        if self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s did not stop within %.0fs of SIGTERM; killing it", self.name, _STOP_GRACE_SECONDS
                )
                self._popen.kill()
                self._popen.wait()

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None:
            return "(printed above)"
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this child when the thread that started it dies, even by SIGKILL.

    Runs in the child between fork and exec. Children must therefore be started from a thread that
    lives as long as the control plane (the main thread, in the CLI and in pytest).
    """
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent already died between fork and prctl
        os._exit(1)


class LocalServer:
    """A server process started by a subclass's `__enter__` (into `_process`) and stopped on exit."""

    _process: ManagedProcess | None = None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None


def start_until_ready(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    ready: Callable[[], bool],
    timeout: float,
    environment: Mapping[str, str] | None = None,
) -> ManagedProcess:
    """Start a server and return once `ready()` says it serves; if it exits or `timeout` seconds pass
    first, stop it and raise with the end of its log."""
    process = ManagedProcess(name, argv, log_path, environment)
    deadline = time.monotonic() + timeout
    while not ready():
        if process.exit_code() is not None or time.monotonic() > deadline:
            tail = process.log_tail()
            process.stop()
            raise RuntimeError(f"{name} did not start; its log ends:\n{tail}")
        time.sleep(0.1)
    return process


def orphaned_processes() -> list[str]:
    """Component processes whose owner is gone: each as "pid command". Should always be empty."""
    orphans = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environment = (proc / "environ").read_bytes().split(b"\0")
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # exited meanwhile, or not ours to read
            continue
        marker = f"{OWNER_ENVIRONMENT_VARIABLE}=".encode()
        owner = next((entry[len(marker) :] for entry in environment if entry.startswith(marker)), None)
        if owner is not None and not Path(f"/proc/{owner.decode()}").exists():
            orphans.append(f"{proc.name} {command.strip()}")
    return orphans


@contextmanager
def stop_signals_raise_keyboard_interrupt() -> Iterator[None]:
    """Treat SIGTERM and SIGINT as Ctrl-C while the block runs, so that `finally:` clean-up runs.

    SIGINT is set explicitly: a shell without job control starts background commands with SIGINT
    ignored, and Python then leaves it ignored, so `kill -INT` would not stop us. A no-op outside
    the main thread, where Python cannot install signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"received signal {signal.Signals(signum).name}")

    previous = {stop: signal.signal(stop, interrupt) for stop in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


class CommandFailedError(RuntimeError):
    """A command of the dev tooling failed; the message names it and ends with what it printed."""


def run_command(
    argv: Sequence[str], stdin: bytes | None = None, environment: Mapping[str, str] | None = None
) -> str:
    """Run a build or setup step to its end; its standard output, or CommandFailedError."""
    done = subprocess.run(
        argv, input=stdin, capture_output=True, check=False, env={**os.environ, **(environment or {})}
    )
    stdout, stderr = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    if done.returncode != 0:
        tail = "\n".join((stdout + stderr).splitlines()[-40:])
        raise CommandFailedError(
            f"`{' '.join(argv[:4])} ...` failed with exit code {done.returncode}:\n{tail}"
        )
    return stdout
