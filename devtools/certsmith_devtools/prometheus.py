"""A real Prometheus server on loopback (Debian's `prometheus` package), scraping the operator with
certsmith's alert rules loaded: for `certsmith dev --monitoring` and the monitoring tests."""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from certsmith_devtools.kit import free_port
from certsmith_devtools.processes import LocalServer, start_until_ready

_READY_TIMEOUT = 60.0


class PrometheusNotFoundError(RuntimeError):
    """No `prometheus` binary: install Debian's package (`apt-get install prometheus`)."""


class Prometheus(LocalServer):
    """Started on entry, stopped on exit; scrapes `target` (host:port) every `interval_seconds`."""

    def __init__(self, directory: Path, target: str, rules: Path | None, interval_seconds: int = 1) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusNotFoundError(
                "prometheus is not installed; install it (Debian: apt-get install prometheus)"
            )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {
                "scrape_interval": f"{interval_seconds}s",
                "evaluation_interval": f"{interval_seconds}s",
            },
            "rule_files": [str(rules)] if rules else [],
            "scrape_configs": [{"job_name": "certsmith", "static_configs": [{"targets": [target]}]}],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self._argv = [
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self._log = directory / "prometheus.log"

    def __enter__(self) -> Prometheus:
        self._process = start_until_ready("prometheus", self._argv, self._log, self._ready, _READY_TIMEOUT)
        return self

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result of an instant query; raises on a query Prometheus refuses."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 -- our own loopback server
            answer = json.load(response)
        if answer.get("status") != "success":
            raise ValueError(f"Prometheus refused {expr!r}: {answer.get('error')}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/alerts", timeout=10) as response:  # noqa: S310
            alerts: list[dict[str, Any]] = json.load(response)["data"]["alerts"]
        return alerts

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False
