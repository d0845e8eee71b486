"""The operator's settings: one documented dataclass, filled from `certsmith run`'s flags."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from certsmith.renewal import BackoffSettings


@dataclass(frozen=True)
class OperatorSettings:
    """
    namespaces: watch only these namespaces; empty means all. ClusterIssuers are watched too, unless
        `namespaced`.
    namespaced: run with rights in the watched namespaces only (a Role, no ClusterRole): no
        ClusterIssuers, and no watching of CRDs or namespaces; needs `namespaces` without patterns.
    cluster_resource_namespace: where a ClusterIssuer's CA Secret lives.
    secret_owner_references: make each Certificate own its Secret, so that deleting the Certificate
        deletes the Secret too. Off by default: deleting a Certificate must not cause an outage.
    backoff: delays between failed issuance attempts of one Certificate.
    workers: Certificates reconciled at once, each in a thread of its own (see `threads`).
    rewrite_limit, rewrite_window: a Secret that something else keeps changing (deleting, corrupting,
        stripping labels) is rewritten at most `rewrite_limit` times per `rewrite_window`; then
        certsmith waits and says so, instead of fighting the other writer in a loop.
    issuance_limit: at most this many issuances per Certificate in any hour, whatever the reason: a
        safety net that no bug can get past. The shortest allowed duration (1h) needs one or two.
    kube_api_qps, kube_api_burst: client-side token bucket on certsmith's own requests; qps 0 turns
        it off.
    health_port: /healthz (liveness: the event loop ticks) and /readyz (readiness: this replica serves)
        at http://0.0.0.0:PORT; 0 turns them off.
    metrics_port, metrics_address: Prometheus metrics at http://ADDRESS:PORT/metrics; port 0 turns
        them off. metrics_tls_cert and metrics_tls_key (PEM files) serve them over HTTPS instead.
    scan_tls_secrets: export the expiry of every kubernetes.io/tls Secret in the watched namespaces,
        managed or not (one watch selected by Secret type; only parsed facts are kept). Only with
        metrics on: the watch feeds nothing else.
    leader_election: act only while holding the Lease `lease_name` in `lease_namespace`, so that of
        several replicas one acts at a time (the others keep their caches warm and take over when it
        is gone: at once when it stops cleanly, after the Lease's 15 s otherwise).
    acme_http01_port, acme_http01_address: where the operator answers ACME HTTP-01 challenges
        (/.well-known/acme-challenge/TOKEN); port 0 turns the solver off.
    acme_solver_service: NAMESPACE/NAME of the Service in front of the HTTP-01 solver (in a cluster:
        certsmith/certsmith-acme-solver). When set, each HTTP-01 challenge gets an Ingress for its name
        (and, beside it, an ExternalName Service to the solver Service), removed when it is done.
    acme_orders_per_hour: new ACME orders allowed per Certificate in any hour, so that no
        misconfiguration can hammer a CA (Let's Encrypt allows 300 new orders per account per 3 h).
    auto_approve: approve every CertificateRequest (the Approved condition, as certsmith's own
        ServiceAccount, which the approval policy lets approve); off, each waits for an approver.
    """

    namespaces: tuple[str, ...] = ()
    namespaced: bool = False
    cluster_resource_namespace: str = "certsmith"
    secret_owner_references: bool = False
    backoff: BackoffSettings = field(default_factory=BackoffSettings)
    workers: int = 8
    rewrite_limit: int = 5
    rewrite_window: datetime.timedelta = datetime.timedelta(minutes=10)
    issuance_limit: int = 10
    kube_api_qps: float = 1000.0
    kube_api_burst: int = 2000
    health_port: int = 8080
    metrics_port: int = 9402
    metrics_address: str = "0.0.0.0"  # noqa: S104 -- Prometheus scrapes the Pod from outside
    metrics_tls_cert: str | None = None
    metrics_tls_key: str | None = None
    scan_tls_secrets: bool = True
    leader_election: bool = False
    lease_namespace: str = "certsmith"
    lease_name: str = "certsmith"
    acme_http01_port: int = 8089
    acme_http01_address: str = "0.0.0.0"  # noqa: S104 -- the CA's validator connects from outside
    acme_solver_service: str = ""
    acme_orders_per_hour: int = 6
    auto_approve: bool = True

    @property
    def threads(self) -> int:
        """The thread pool's size, and the connections certsmith's client keeps open to the API
        server: one per worker, plus a few for what runs beside them (the initial listing, the Lease,
        recording a failure), so that no worker waits for a thread or a connection."""
        return self.workers + 4


def is_namespace_pattern(namespace: str) -> bool:
    """Whether a --namespace value is a pattern (a glob, a negation, a list) rather than a name."""
    return bool(set(namespace) & set("*?!,"))
