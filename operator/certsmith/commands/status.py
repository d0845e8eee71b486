"""`certsmith status`: a table of Certificates, or one Certificate's whole story — spec, Secret, issuer,
Events, ACME order — ending with what the operator's own policy would do now, and why."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from certsmith.api import CERTIFICATES, CLUSTER_ISSUERS, GROUP, ISSUERS, VERSION, SpecError
from certsmith.api.acme import parse_acme_spec
from certsmith.api.certificate import CertificateSpec, parse_certificate_spec
from certsmith.api.status import parse_timestamp, timestamp
from certsmith.commands.common import (
    CommandError,
    ExitCode,
    body_of,
    listing,
    print_structured,
    print_table,
    talking,
)
from certsmith.issuers import IssuerNotReadyError
from certsmith.issuers.acme.dns_persist01 import certificate_records
from certsmith.issuers.acme.http01 import HTTP01Responder
from certsmith.issuers.acme.signer import AcmeContext
from certsmith.issuers.resolver import IssuerResolver, Resolved, issuer_id
from certsmith.kube.port import ApiServer, Key
from certsmith.kube.secrets import ObservedSecret
from certsmith.pki import PKIError
from certsmith.pki.report import TLSReport, tls_report
from certsmith.policy import Decision, decide
from certsmith.reconcile.certificate import Surroundings, observation_of
from certsmith.renewal import BackoffSettings
from certsmith.settings import OperatorSettings
from certsmith.tls_secret import CERTIFICATE_NAME

_EVENTS_SHOWN = 5


@dataclass(frozen=True)
class Scope:
    namespace: str
    all_namespaces: bool


def status(api: client.ApiClient, scope: Scope, name: str | None, output: str | None, crn: str) -> int:
    """`crn`: the operator's cluster resource namespace (where ClusterIssuers keep their Secrets)."""
    if name is not None:
        story = certificate_story(api, (scope.namespace, name), crn, datetime.datetime.now(datetime.UTC))
        if output:
            print_structured(story, output)
        else:
            print(render_story(story))
        return ExitCode.OK if story["ready"]["status"] == "True" else ExitCode.NOT_READY
    bodies = _certificates(api, scope)
    if output:
        print_structured([_summary(body) for body in bodies], output)
        return ExitCode.OK
    now = datetime.datetime.now(datetime.UTC)
    headers = ["NAME", "READY", "REASON", "SECRET", "ISSUER", "EXPIRES", "RENEWS", "REVISION"]
    rows = [_row(body, now) for body in bodies]
    if scope.all_namespaces:
        headers.insert(0, "NAMESPACE")
        rows = [[body["metadata"]["namespace"], *row] for body, row in zip(bodies, rows, strict=True)]
    if not rows:
        where = "any namespace" if scope.all_namespaces else f"namespace {scope.namespace}"
        print(f"No Certificates in {where}.")
        return ExitCode.OK
    print_table(headers, rows)
    return ExitCode.OK


def certificate_story(api: client.ApiClient, key: Key, crn: str, now: datetime.datetime) -> dict[str, Any]:
    """Everything worth knowing about one Certificate, as plain data (for -o json|yaml and for text)."""
    namespace, name = key
    objects = client.CustomObjectsApi(api)
    with talking(f"get certificates.{GROUP} {name} in namespace {namespace}"):
        body = body_of(objects.get_namespaced_custom_object(GROUP, VERSION, namespace, CERTIFICATES, name))
    port = ApiServer(api)
    story: dict[str, Any] = {"certificate": f"{namespace}/{name}", **_summary(body)}
    try:
        spec = parse_certificate_spec(body.get("spec") or {})
    except SpecError as error:
        story["decision"] = {"action": "Blocked", "reason": "InvalidSpec", "message": str(error)}
        return story
    with talking(f"get secrets {spec.secret_name} in namespace {namespace}"):
        observed = port.read_secret(namespace, spec.secret_name)
    story["secret"] = _secret_story(observed, now)
    issuer_plural, issuer_key = issuer_id(spec.issuer_ref, namespace)
    issuer_body = _issuer_body(objects, issuer_plural, issuer_key)
    story["issuer"] = {"name": str(spec.issuer_ref), **condition_summary(issuer_body or {})}
    persistent = _persistent_records(body, issuer_body)
    if persistent:
        story["dnsPersist01"] = persistent
    order = ((body.get("status") or {}).get("acme") or {}).get("order")
    if order:
        story["order"] = order
    renewal_information = (body.get("status") or {}).get("renewalInformation")
    if renewal_information:
        story["renewalInformation"] = renewal_information
    story["events"] = _events(api, namespace, name)
    decision = _decision(port, body, spec, observed, issuer_body, crn, now)
    story["decision"] = {
        "action": decision.action.value,
        "reason": decision.reason.value,
        "message": decision.message,
        "renewalTime": timestamp(decision.renewal_time) if decision.renewal_time else None,
        "notBefore": timestamp(decision.not_before) if decision.not_before else None,
    }
    return story


def _decision(
    port: ApiServer,
    body: Mapping[str, Any],
    spec: CertificateSpec,
    observed: ObservedSecret | None,
    issuer_body: Mapping[str, Any] | None,
    crn: str,
    now: datetime.datetime,
) -> Decision:
    """The operator's own decision, on what the API server holds now (with the default back-off; the
    operator's in-memory budgets are not known here)."""
    key = namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    issuer: Resolved | IssuerNotReadyError | None = None
    if issuer_body is not None and "acme" not in (issuer_body.get("spec") or {}):
        acme = AcmeContext(HTTP01Responder(), 0, OperatorSettings().acme_timeout)  # asks no ACME CA
        resolver = IssuerResolver(lambda plural, key: issuer_body, {}, port, crn, acme)
        try:
            issuer = resolver.resolve(spec.issuer_ref, namespace, now)
        except IssuerNotReadyError as error:
            issuer = error
    owner = observed.contents.annotations.get(CERTIFICATE_NAME) if observed else None
    owner_exists = not owner or owner == name or port.certificate_exists(namespace, owner)
    password_secret = None
    if spec.pkcs12 is not None:
        password_secret = port.read_secret(namespace, spec.pkcs12.password.name)
    ready = condition_summary(issuer_body or {})
    around = Surroundings(
        owner_exists=owner_exists,
        issuer=issuer,
        issuer_body=issuer_body or {},
        issuer_ready_since=parse_timestamp(ready.get("since")) if ready.get("status") == "True" else None,
        password_secret=password_secret,
    )
    secret = observed.contents if observed else None
    return decide(observation_of(key, body, spec, secret, now, around), BackoffSettings())


def render_story(story: Mapping[str, Any]) -> str:
    ready = story["ready"]
    lines = [
        f"Certificate {story['certificate']}: Ready={ready['status']} ({ready['reason']}) {ready['message']}"
    ]
    if story.get("issuing"):
        issuing = story["issuing"]
        lines.append(f"  Issuing: {issuing['reason']}: {issuing['message']}")
    names = ", ".join(story["names"]) or "-"
    lines.append(f"Spec:      names {names}; issuer {story['issuerRef']}; Secret {story['secretName']}")
    secret = story.get("secret")
    if secret is None:
        lines.append("Secret:    (none)")
    else:
        lines += ["Secret:    " + secret["summary"], *(f"  {line}" for line in secret["details"])]
    issuer = story.get("issuer")
    if issuer:
        state = f"Ready={issuer.get('status', '?')} ({issuer.get('reason', '-')})"
        lines.append(f"Issuer:    {issuer['name']}: {state} {issuer.get('message', '')}")
    persistent = story.get("dnsPersist01")
    if persistent:
        lines.append(
            "DNS:       dns-persist-01 needs these TXT records (create them once, at your DNS provider):"
        )
        lines += [f"  {record}" for record in persistent]
    order = story.get("order")
    if order:
        lines.append(f"Order:     {order.get('url')} {order.get('state')}")
        for authorization in order.get("authorizations") or ():
            challenge = authorization.get("challenge") or {}
            error = f": {challenge['error']}" if challenge.get("error") else ""
            lines.append(
                f"  {authorization.get('identifier')}: {authorization.get('state')}, "
                f"{challenge.get('type', 'no challenge')} {challenge.get('state', '')}{error}"
            )
    renewal_information = story.get("renewalInformation")
    if renewal_information:
        lines.append(_renewal_information_line(renewal_information))
    if story.get("events"):
        lines.append("Events:")
        lines += [
            f"  {event['time']}  {event['type']:<7} {event['reason']}: {event['message']}"
            for event in story["events"]
        ]
    decision = story.get("decision")
    if decision:
        when = ""
        if decision.get("renewalTime"):
            when = f"; renews at {decision['renewalTime']}"
        if decision.get("notBefore"):
            when = f"; not before {decision['notBefore']}"
        lines.append(f"Now:       {decision['action']} ({decision['reason']}): {decision['message']}{when}")
    return "\n".join(lines)


def _renewal_information_line(shown: Mapping[str, Any]) -> str:
    """The CA's ARI window for the current certificate, and when certsmith asks again."""
    window = shown.get("suggestedWindow") or {}
    if window:
        line = f"Renewal:   the CA's ARI window is {window.get('start')} to {window.get('end')}"
    else:
        line = "Renewal:   the CA has not given an ARI window yet"
    if shown.get("explanationURL"):
        line += f" (explained at {shown['explanationURL']})"
    if shown.get("retrieved"):
        line += f"; asked at {shown['retrieved']}"
    line += f"; next at {shown.get('nextUpdate')}"
    if shown.get("error"):
        line += f"; the last {shown.get('failures', 1)} requests failed: {shown['error']}"
    return line


def _certificates(api: client.ApiClient, scope: Scope) -> list[dict[str, Any]]:
    objects = client.CustomObjectsApi(api)
    if scope.all_namespaces:
        with listing(f"list certificates.{GROUP} in all namespaces"):
            listed = objects.list_cluster_custom_object(GROUP, VERSION, CERTIFICATES)
    else:
        with listing(f"list certificates.{GROUP} in namespace {scope.namespace}"):
            listed = objects.list_namespaced_custom_object(GROUP, VERSION, scope.namespace, CERTIFICATES)
    items: list[dict[str, Any]] = body_of(listed)["items"]
    return sorted(items, key=lambda body: (body["metadata"]["namespace"], body["metadata"]["name"]))


def _persistent_records(body: Mapping[str, Any], issuer_body: Mapping[str, Any] | None) -> list[str]:
    """The dns-persist-01 records the Certificate's names need, as its issuer's status gives them."""
    acme = ((issuer_body or {}).get("spec") or {}).get("acme")
    shown = (((issuer_body or {}).get("status") or {}).get("acme") or {}).get("dnsPersist01")
    if not acme or not shown:
        return []
    try:
        solvers = parse_acme_spec(acme).solvers
    except SpecError:
        return []
    spec = body.get("spec") or {}
    names = [*(spec.get("dnsNames") or ()), *([spec["commonName"]] if spec.get("commonName") else [])]
    labels = (body.get("metadata") or {}).get("labels") or {}
    return certificate_records(names, solvers, labels, shown)


def _summary(body: Mapping[str, Any]) -> dict[str, Any]:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    reference = spec.get("issuerRef") or {}
    summary: dict[str, Any] = {
        "namespace": body["metadata"]["namespace"],
        "name": body["metadata"]["name"],
        "ready": condition_summary(body),
        "secretName": spec.get("secretName"),
        "issuerRef": f"{reference.get('kind', 'Issuer')}/{reference.get('name')}",
        "names": [*(spec.get("dnsNames") or ()), *(spec.get("ipAddresses") or ())],
        "notAfter": status.get("notAfter"),
        "renewalTime": status.get("renewalTime"),
        "revision": status.get("revision"),
    }
    issuing = condition_summary(body, "Issuing")
    if issuing.get("status") == "True":
        summary["issuing"] = issuing
    return summary


def _row(body: Mapping[str, Any], now: datetime.datetime) -> list[str]:
    summary = _summary(body)
    not_after = parse_timestamp(summary["notAfter"])
    expires = "-"
    if not_after is not None:
        days = (not_after - now).total_seconds() / 86400
        expires = f"{summary['notAfter']} ({days:.0f}d)" if days >= 0 else f"{summary['notAfter']} (expired)"
    return [
        summary["name"],
        summary["ready"]["status"],
        summary["ready"]["reason"],
        summary["secretName"] or "-",
        summary["issuerRef"],
        expires,
        summary["renewalTime"] or "-",
        str(summary["revision"] or "-"),
    ]


def condition_summary(body: Mapping[str, Any], kind: str = "Ready") -> dict[str, Any]:
    """An object's condition `kind` as status, reason, message and since; Unknown when not reported."""
    for item in (body.get("status") or {}).get("conditions") or ():
        if item.get("type") == kind:
            return {
                "status": item.get("status", "Unknown"),
                "reason": item.get("reason", ""),
                "message": item.get("message", ""),
                "since": item.get("lastTransitionTime"),
            }
    return {"status": "Unknown", "reason": "NoStatus", "message": "the operator has not reported on it yet"}


def _issuer_body(objects: client.CustomObjectsApi, plural: str, key: Key) -> dict[str, Any] | None:
    namespace, name = key
    try:
        with talking(f"get {plural}.{GROUP} {name}" + (f" in namespace {namespace}" if namespace else "")):
            if plural == CLUSTER_ISSUERS:
                body = objects.get_cluster_custom_object(GROUP, VERSION, plural, name)
            else:
                body = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, ISSUERS, name)
    except CommandError as error:
        if error.code is ExitCode.NOT_FOUND:
            return None
        raise
    return body_of(body)


def _secret_story(observed: ObservedSecret | None, now: datetime.datetime) -> dict[str, Any] | None:
    if observed is None:
        return None
    contents = observed.contents
    revision = contents.annotations.get("certsmith.dev/revision", "-")
    try:
        report = tls_report(contents.data, now)
    except PKIError as error:
        return {
            "summary": f"{contents.type}, revision {revision}: {error}",
            "details": [],
            "warnings": [str(error)],
        }
    return {
        "summary": f"{contents.type}, revision {revision}",
        "details": report_lines(report, now),
        "warnings": list(report.warnings),
    }


def report_lines(report: TLSReport, now: datetime.datetime) -> list[str]:
    """The TLS report as indented lines (shared with `certsmith inspect secret`)."""
    lines = []
    for position, facts in enumerate(report.chain):
        left = (facts.not_after - now).total_seconds() / 86400
        usages = ", ".join(facts.usages) or "-"
        lines += [
            f"tls.crt [{position}] {facts.subject}",
            f"    issuer   {facts.issuer}",
            f"    names    {', '.join(facts.names) or '-'}",
            f"    key      {facts.key}; usages {usages}{'; CA' if facts.is_ca else ''}",
            f"    valid    {timestamp(facts.not_before)} to {timestamp(facts.not_after)} ({left:.0f}d left)",
            f"    serial   {facts.serial}",
            f"    sha256   {facts.sha256}",
        ]
    lines += [f"ca.crt  {facts.subject} (sha256 {facts.sha256[:23]}...)" for facts in report.roots]
    lines.append(f"tls.key {report.key or '(none)'}")
    lines += [f"WARNING: {warning}" for warning in report.warnings]
    return lines


def _events(api: client.ApiClient, namespace: str, name: str) -> list[dict[str, str]]:
    with talking(f"list events in namespace {namespace}"):
        listed = client.CoreV1Api(api).list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=Certificate"
        )

    def when(event: client.CoreV1Event) -> str:
        moment = event.last_timestamp or event.event_time or event.first_timestamp
        return timestamp(moment) if isinstance(moment, datetime.datetime) else "-"

    events = sorted(listed.items, key=when)[-_EVENTS_SHOWN:]
    return [
        {
            "time": when(event),
            "type": event.type or "",
            "reason": event.reason or "",
            "message": event.message or "",
        }
        for event in events
    ]
