"""Requests for built-in kinds (Secrets, ConfigMaps, Events, Services, Ingresses), sent and answered
as JSON through the client's `ApiClient` (its credentials, connection pool, rate limit and
`ApiException`s).

Not the client's generated `CoreV1Api`: importing it imports the models of every core kind (about
240 modules, 19 MiB in each process with kubernetes client 37), and each of its calls validates its
arguments and builds pydantic models of the answer, which the operator reads once as a dict anyway.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

Query = Mapping[str, str | int | None]
"""Query parameters by their API names (`labelSelector`, `continue`, ...); None: left out."""
Timeout = float | tuple[float, float] | None

_JSON = "application/json"
_MERGE_PATCH = "application/merge-patch+json"


CORE = "/api/v1"
NETWORKING = "/apis/networking.k8s.io/v1"


class Resources:
    """The kinds of one API group version: `base` is its path, e.g. `CORE`."""

    def __init__(self, api: client.ApiClient, base: str = CORE) -> None:
        self.api = api
        self._base = base

    def read(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return self._answer("GET", self._path(plural, namespace, name))

    def list(
        self, plural: str, namespace: str | None, query: Query, timeout: Timeout = None
    ) -> dict[str, Any]:
        """One page (`limit`, `continue` in `query`); `namespace` None: all namespaces."""
        return self._answer("GET", self._path(plural, namespace), query=query, timeout=timeout)

    def create(self, plural: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._answer("POST", self._path(plural, namespace), body=body)

    def replace(self, plural: str, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._answer("PUT", self._path(plural, namespace, name), body=body)

    def merge_patch(self, plural: str, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        path = self._path(plural, namespace, name)
        return self._answer("PATCH", path, body=body, content_type=_MERGE_PATCH)

    def delete(
        self, plural: str, namespace: str, name: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._answer("DELETE", self._path(plural, namespace, name), body=body)

    def watch(self, plural: str, namespace: str | None, query: Query, timeout: Timeout) -> Watching:
        """A watch request (`resourceVersion`, `timeoutSeconds` ... in `query`), its events as they come."""
        response = self._send(
            "GET", self._path(plural, namespace), {**query, "watch": "true"}, None, _JSON, timeout
        )
        return Watching(response)

    def _answer(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = _JSON,
        timeout: Timeout = None,
    ) -> dict[str, Any]:
        response = self._send(method, path, query or {}, body, content_type, timeout)
        try:
            answer: dict[str, Any] = json.loads(response.data)
        finally:
            response.release_conn()
        return answer

    def _send(
        self,
        method: str,
        path: str,
        query: Query,
        body: Mapping[str, Any] | None,
        content_type: str,
        timeout: Timeout,
    ) -> Any:  # noqa: ANN401 -- a urllib3 response
        """The urllib3 response of a request answered 2xx, its body not read yet; else ApiException."""
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=[(name, value) for name, value in query.items() if value is not None],
            header_params={"Accept": _JSON, **({"Content-Type": content_type} if body is not None else {})},
            body=body,
            auth_settings=["BearerToken"],
        )
        answered = self.api.call_api(*request, _request_timeout=timeout)
        if not 200 <= answered.status <= 299:
            text = answered.response.data.decode(errors="replace")
            raise ApiException.from_response(http_resp=answered, body=text, data=None)
        return answered.response

    def _path(self, plural: str, namespace: str | None, name: str | None = None) -> str:
        where = f"namespaces/{quote(namespace, safe='')}/{plural}" if namespace else plural
        return f"{self._base}/{where}/{quote(name, safe='')}" if name else f"{self._base}/{where}"


class Watching:
    """The events of one watch request, as dicts; `stop` ends it from another thread."""

    def __init__(self, response: Any) -> None:  # noqa: ANN401 -- a urllib3 response
        self._response = response

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            for line in iter_resp_lines(self._response):  # type: ignore[no-untyped-call]
                if line.strip():
                    yield json.loads(line)
        finally:
            self._response.close()
            self._response.release_conn()

    def stop(self) -> None:
        """Shut the socket down, so that a thread blocked reading it wakes at once."""
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
