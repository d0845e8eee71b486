"""moto's server mode: a local emulation of AWS's APIs (Route53 and STS here) on loopback, for the
Route53 DNS-01 tests. No AWS is reachable from the tests; moto answers as Route53 does."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from certsmith_devtools.kit import free_port
from certsmith_devtools.processes import LocalServer, start_until_ready

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client

_READY_TIMEOUT = 60.0
ACCESS_KEY_ID = "AKIACERTSMITHTEST"
SECRET_ACCESS_KEY = "certsmith-test-secret-access-key-do-not-log"
"""Credentials moto accepts; the tests look for this secret in logs and statuses."""


class MotoServer(LocalServer):
    """Started on entry, stopped on exit. `environment` points boto3 at it (AWS_ENDPOINT_URL_*)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.environment = {"AWS_ENDPOINT_URL_ROUTE_53": self.url, "AWS_ENDPOINT_URL_STS": self.url}
        self._argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self._log = directory / "moto.log"

    def __enter__(self) -> MotoServer:
        self._process = start_until_ready("moto", self._argv, self._log, self._answers, _READY_TIMEOUT)
        return self

    def route53(self) -> Route53Client:
        """A client of this server with the test credentials."""
        return boto3.client(
            "route53",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def create_zone(self, name: str) -> str:
        """A public hosted zone; its ID ("/hostedzone/...")."""
        answer = self.route53().create_hosted_zone(Name=name, CallerReference=name)
        return answer["HostedZone"]["Id"]

    def txt(self, zone_id: str, name: str) -> set[str]:
        """The TXT values at `name` in the hosted zone, unquoted."""
        fqdn = name.rstrip(".") + "."
        records = self.route53().list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        return {
            item["Value"].strip('"')
            for record in records
            if record["Name"] == fqdn and record["Type"] == "TXT"
            for item in record.get("ResourceRecords", [])
        }

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1.0) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False
