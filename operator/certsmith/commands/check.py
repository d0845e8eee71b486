"""`certsmith check`: are the CRDs installed and served, is an operator running and leading, and may
the current user do what the commands do."""

from __future__ import annotations

import datetime

from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith.commands.common import CommandError, ExitCode, talking
from certsmith.kube.shards import LEASE_SET_LABEL

_RESOURCES = ("certificates", "certificaterequests", "issuers", "clusterissuers")
_LEASE_FRESH = datetime.timedelta(seconds=30)
_NEEDED = (
    ("list", GROUP, "certificates", "certsmith status"),
    ("patch", GROUP, "certificates", "certsmith renew"),
    ("get", "", "secrets", "certsmith status NAME, certsmith inspect"),
    ("list", "", "events", "certsmith status NAME"),
    ("patch", "", "secrets", "certsmith migrate"),
)


def check(api: client.ApiClient, namespace: str, lease_namespace: str, lease_name: str) -> int:
    problems = 0
    try:
        with talking(f"get the API group {GROUP}/{VERSION}"):
            served = client.CustomObjectsApi(api).get_api_resources(GROUP, VERSION)
        names = {resource.name for resource in served.resources}
    except CommandError as error:
        if error.code is not ExitCode.NOT_FOUND:
            raise
        names = set()
    missing = [name for name in _RESOURCES if name not in names]
    if missing:
        problems += 1
        absent = ", ".join(missing)
        print(f"FAIL  CRDs: {absent}.{GROUP} not served; install: kubectl apply --server-side -k crds/")
    else:
        print(f"ok    CRDs: {', '.join(_RESOURCES)}.{GROUP}/{VERSION} are served")
    problems += _operator(api, lease_namespace, lease_name)
    for verb, group, resource, used_by in _NEEDED:
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace, verb=verb, group=group, resource=resource
                )
            )
        )
        with talking("create selfsubjectaccessreviews"):
            answer = client.AuthorizationV1Api(api).create_self_subject_access_review(review)
        allowed = bool(answer.status and answer.status.allowed)
        qualified = f"{resource}.{group}" if group else resource
        verdict = "ok  " if allowed else "FAIL"
        print(f"{verdict}  you may {verb} {qualified} in namespace {namespace} ({used_by})")
        problems += 0 if allowed else 1
    return ExitCode.OK if problems == 0 else ExitCode.FAILED


def _operator(api: client.ApiClient, namespace: str, name: str) -> int:
    try:
        with talking(f"get leases {name} in namespace {namespace}"):
            lease = client.CoordinationV1Api(api).read_namespaced_lease(name, namespace)
    except CommandError as error:
        if error.code is not ExitCode.NOT_FOUND:
            print(f"FAIL  operator: {error}")
            return 1
        shards = _shards(api, namespace, name)
        if shards is not None:
            return shards
        print(
            f"FAIL  operator: no Lease {namespace}/{name}; it runs without --leader-elect, elsewhere "
            f"(--lease-namespace), or not at all"
        )
        return 1
    spec = lease.spec
    holder = spec.holder_identity if spec else None
    renewed = spec.renew_time if spec else None
    now = datetime.datetime.now(datetime.UTC)
    if holder and renewed and now - renewed < _LEASE_FRESH:
        ago = (now - renewed).seconds
        print(f"ok    operator: {holder} leads (Lease {namespace}/{name} renewed {ago}s ago)")
        return 0
    print(f"FAIL  operator: Lease {namespace}/{name} is not held or renewed lately: is the operator running?")
    return 1


def _shards(api: client.ApiClient, namespace: str, name: str) -> int | None:
    """With --shards: every shard Lease held and renewed lately (problems: 0 or 1); None without shards."""
    with talking(f"list leases in namespace {namespace}"):
        leases = (
            client.CoordinationV1Api(api)
            .list_namespaced_lease(namespace, label_selector=f"{LEASE_SET_LABEL}={name}")
            .items
        )
    now = datetime.datetime.now(datetime.UTC)
    shards = {
        lease.metadata.name: (lease.spec.holder_identity or "")
        if lease.spec and lease.spec.renew_time and now - lease.spec.renew_time < _LEASE_FRESH
        else ""
        for lease in leases
        if lease.metadata and lease.metadata.name and lease.metadata.name.startswith(f"{name}-shard-")
    }
    if not shards:
        return None
    orphans = sorted(shard for shard, holder in shards.items() if not holder)
    if orphans:
        print(f"FAIL  operator: shard Leases not held or renewed lately: {', '.join(orphans)}")
        return 1
    replicas = len(set(shards.values()))
    print(f"ok    operator: {len(shards)} shards held by {replicas} replicas ({namespace}/{name}-shard-*)")
    return 0
