"""HTTP-01: the operator answers /.well-known/acme-challenge/<token> itself, from memory.

No Pod or Service per challenge: the CA's validator reaches the operator's solver port (in a cluster,
through the solver Service and an Ingress route for the name).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

PATH_PREFIX = "/.well-known/acme-challenge/"
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class HTTP01Responder:
    """Tokens being validated and their key authorizations; a WSGI application that serves them.

    Tokens this process presented are answered from memory; any other from `lookup`, which finds them
    in the Certificates' status, so a standby replica, or this one after a restart, answers too.
    """

    def __init__(self, lookup: Callable[[str], str | None] = lambda token: None) -> None:
        self._answers: dict[str, str] = {}
        self._lock = threading.Lock()
        self._lookup = lookup

    def present(self, token: str, key_authorization: str) -> None:
        with self._lock:
            self._answers[token] = key_authorization

    def cleanup(self, token: str) -> None:
        with self._lock:
            self._answers.pop(token, None)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        with self._lock:
            token = path.removeprefix(PATH_PREFIX) if path.startswith(PATH_PREFIX) else None
            answer = self._answers.get(token) if token else None
        if answer is None and token:
            answer = self._lookup(token)
        if answer is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such challenge\n"]
        body = answer.encode("ascii")
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
