"""The Route53 DNS-01 provider, with boto3: the TXT record set at the validation name is read and
rewritten with one value more (or less), so the records of a wildcard and its base name, which share
the name, coexist. `visible` asks Route53's API whether the record set holds the value; it does not
wait for the change to be INSYNC on every Route53 server (a provider is made per call and keeps no
change IDs), so the CA may, rarely, query a server that has not caught up, and the order is retried."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import boto3
import botocore.config
import botocore.exceptions

from certsmith.api.acme import DNS01Solver, Route53Solver
from certsmith.issuers.acme.dns01 import DNSProviderError, ProviderContext

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_route53.type_defs import ResourceRecordSetTypeDef

_TTL = 60
_CONFIG = botocore.config.Config(
    connect_timeout=10, read_timeout=10, retries={"total_max_attempts": 2, "mode": "standard"}
)
_SESSION_NAME = "certsmith"
_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)

logging.getLogger("botocore").setLevel(logging.WARNING)
"""botocore's debug lines hold request headers and response bodies: a session token, and STS's answer
with the assumed role's secret key. `certsmith run --verbose` turns debug on for every logger, so
botocore's are capped here, where boto3 is first imported."""


def route53_provider(solver: DNS01Solver, context: ProviderContext) -> Route53Provider:
    """The factory registered as `route53`."""
    route53 = solver.provider
    if not isinstance(route53, Route53Solver):
        raise DNSProviderError("the route53 provider needs dns01.route53")
    if route53.ambient and not context.ambient_credentials:
        raise DNSProviderError(
            "dns01.route53 has no secretAccessKeySecretRef, and only a ClusterIssuer may use the "
            "operator's ambient AWS credentials; put an access key in a Secret and name it in "
            "accessKeyID (or accessKeyIDSecretRef) and secretAccessKeySecretRef"
        )
    session = boto3.session.Session(region_name=route53.region)
    if route53.secret_access_key is not None:
        key_id = route53.access_key_id
        if route53.access_key_id_secret is not None:
            key_id = _text(context.read_secret(route53.access_key_id_secret, "route53.accessKeyIDSecretRef"))
        secret = _text(context.read_secret(route53.secret_access_key, "route53.secretAccessKeySecretRef"))
        session = boto3.session.Session(
            aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=route53.region
        )
    if route53.role:
        session = _assumed(session, route53)
    return Route53Provider(session.client("route53", config=_CONFIG), route53.hosted_zone_id)


class Route53Provider:
    def __init__(self, client: Route53Client, hosted_zone_id: str | None) -> None:
        self._client = client
        self._zone_id = hosted_zone_id

    def present(self, fqdn: str, value: str) -> None:
        zone = self._zone(fqdn)
        values = self._values(zone, fqdn)
        if _quoted(value) in values:
            return
        self._change(zone, fqdn, "UPSERT", [*values, _quoted(value)], f"adding TXT {fqdn}")

    def visible(self, fqdn: str, value: str) -> bool:
        return _quoted(value) in self._values(self._zone(fqdn), fqdn)

    def cleanup(self, fqdn: str, value: str) -> None:
        zone = self._zone(fqdn)
        values = self._values(zone, fqdn)
        if _quoted(value) not in values:
            return
        rest = [item for item in values if item != _quoted(value)]
        if rest:
            self._change(zone, fqdn, "UPSERT", rest, f"removing TXT {fqdn}")
        else:
            self._change(zone, fqdn, "DELETE", values, f"removing TXT {fqdn}")

    def _zone(self, fqdn: str) -> str:
        """The hosted zone given, else the public hosted zone whose name is the longest suffix of `fqdn`."""
        if self._zone_id:
            return self._zone_id
        name = fqdn.rstrip(".").lower() + "."
        best: tuple[int, str] | None = None
        try:
            pages = self._client.get_paginator("list_hosted_zones").paginate()
            for page in pages:
                for zone in page["HostedZones"]:
                    zone_name = zone["Name"].lower()
                    private = zone.get("Config", {}).get("PrivateZone", False)
                    if private or not (name == zone_name or name.endswith(f".{zone_name}")):
                        continue
                    if best is None or len(zone_name) > best[0]:
                        best = (len(zone_name), zone["Id"])
        except _ERRORS as error:
            raise DNSProviderError(f"Route53: listing the hosted zones for {fqdn}: {error}") from None
        if best is None:
            raise DNSProviderError(
                f"Route53 has no public hosted zone above {fqdn} for these credentials; set "
                f"dns01.route53.hostedZoneID, or check that the zone exists in this account"
            )
        return best[1]

    def _values(self, zone: str, fqdn: str) -> list[str]:
        name = fqdn.rstrip(".").lower() + "."
        try:
            answer = self._client.list_resource_record_sets(
                HostedZoneId=zone, StartRecordName=name, StartRecordType="TXT", MaxItems="1"
            )
        except _ERRORS as error:
            raise DNSProviderError(f"Route53: reading TXT {fqdn} in hosted zone {zone}: {error}") from None
        for record in answer["ResourceRecordSets"]:
            if record["Name"].lower() == name and record["Type"] == "TXT":
                return [item["Value"] for item in record.get("ResourceRecords", [])]
        return []

    def _change(
        self, zone: str, fqdn: str, action: Literal["UPSERT", "DELETE"], values: list[str], what: str
    ) -> None:
        record: ResourceRecordSetTypeDef = {
            "Name": fqdn,
            "Type": "TXT",
            "TTL": _TTL,
            "ResourceRecords": [{"Value": item} for item in values],
        }
        try:
            self._client.change_resource_record_sets(
                HostedZoneId=zone,
                ChangeBatch={
                    "Comment": "certsmith DNS-01",
                    "Changes": [{"Action": action, "ResourceRecordSet": record}],
                },
            )
        except _ERRORS as error:
            raise DNSProviderError(f"Route53: {what} in hosted zone {zone}: {error}") from None


def _assumed(session: boto3.session.Session, route53: Route53Solver) -> boto3.session.Session:
    try:
        answer = session.client("sts", config=_CONFIG).assume_role(
            RoleArn=route53.role or "", RoleSessionName=_SESSION_NAME
        )
    except _ERRORS as error:
        raise DNSProviderError(f"Route53: assuming dns01.route53.role {route53.role}: {error}") from None
    credentials = answer["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=route53.region,
    )


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace").strip()


def _quoted(value: str) -> str:
    return f'"{value}"'
