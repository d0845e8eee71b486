"""The operator's settings: one documented dataclass; a field with flag metadata (flags.py) is a flag of
`certsmith run`, with the field's default."""

from __future__ import annotations

import datetime
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from certsmith.flags import flag
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
    lease_duration: seconds a Lease (the leader's or a shard's) outlives its last renewal by the
        others' clocks; its holder renews every duration/7.5 and stops writing after 2/3 of it.
    shards: with N > 1, each Certificate and CertificateRequest belongs to shard
        sha256("namespace/name")[:8] mod N, guarded by the Lease `<lease_name>-shard-<i>-of-<N>` in
        `lease_namespace`; the running replicas share the shards fairly (see certsmith.kube.shards).
    acme_http01_port, acme_http01_address: where the operator answers ACME HTTP-01 challenges
        (/.well-known/acme-challenge/TOKEN); port 0 turns the solver off.
    acme_solver_service: NAMESPACE/NAME of the Service in front of the HTTP-01 solver (in a cluster:
        certsmith/certsmith-acme-solver). When set, each HTTP-01 challenge gets an Ingress for its name
        (and, beside it, an ExternalName Service to the solver Service), removed when it is done.
    acme_orders_per_hour: new ACME orders allowed per Certificate in any hour, so that no
        misconfiguration can hammer a CA (Let's Encrypt allows 300 new orders per account per 3 h).
    acme_ari_interval: seconds between two ARI requests (RFC 9773) for one certificate; 0 follows the
        CA's Retry-After, clamped to 1 minute .. 1 day. For tests and impatient operators.
    acme_timeout: seconds to wait for an ACME server's answer to one request; a CA that does not answer
        in time twice in a row is CAUnreachable (its certificates wait, probed once per back-off).
    dns01_recursive_nameservers: where `cnameStrategy: Follow` looks up the CNAMEs at
        `_acme-challenge.<name>` (host, host:port or [ipv6]:port); none: the system's resolver.
    trust_namespace: where Bundles read their configMap, secret and Issuer sources (trust-manager's
        trust namespace); ClusterIssuers' CA Secrets stay in `cluster_resource_namespace`.
    auto_approve: approve every CertificateRequest (the Approved condition, as certsmith's own
        ServiceAccount, which the approval policy lets approve); off, each waits for an approver.
    spiffe_trust_domain: the trust domain of the SPIFFE IDs in pod certificates
        (spiffe://DOMAIN/ns/NAMESPACE/sa/SERVICEACCOUNT).
    """

    namespaces: tuple[str, ...] = field(
        default=(),
        metadata=flag(
            "-n",
            "--namespace",
            metavar="NS",
            help="watch this namespace (repeatable; globs such as 'team-*' and '!kube-*'); default: all",
        ),
    )
    namespaced: bool = field(
        default=False,
        metadata=flag(
            "--namespaced",
            help="run with rights in the --namespace namespaces only (a Role, no ClusterRole): "
            "no ClusterIssuers, no watching of CRDs and namespaces",
        ),
    )
    cluster_resource_namespace: str = field(
        default="certsmith",
        metadata=flag(
            "--cluster-resource-namespace", metavar="NS", help="namespace of the CA Secrets of ClusterIssuers"
        ),
    )
    secret_owner_references: bool = field(
        default=False,
        metadata=flag(
            "--secret-owner-references",
            help="make each Certificate own its Secret, so deleting the Certificate deletes the Secret",
        ),
    )
    backoff: BackoffSettings = field(default_factory=BackoffSettings)
    workers: int = field(default=8, metadata=flag("--workers", help="certificates reconciled at once"))
    rewrite_limit: int = 5
    rewrite_window: datetime.timedelta = datetime.timedelta(minutes=10)
    issuance_limit: int = field(
        default=10,
        metadata=flag(
            "--max-issuances-per-hour",
            metavar="N",
            help="issuances allowed per Certificate in any hour, a bound against loops",
        ),
    )
    kube_api_qps: float = field(
        default=1000.0,
        metadata=flag(
            "--kube-api-qps",
            metavar="QPS",
            help="sustained API requests per second by certsmith's client; 0: no limit",
        ),
    )
    kube_api_burst: int = field(
        default=2000,
        metadata=flag(
            "--kube-api-burst", metavar="N", help="API requests allowed at once before --kube-api-qps applies"
        ),
    )
    health_port: int = field(
        default=8080,
        metadata=flag(
            "--health-port",
            metavar="PORT",
            help="serve /healthz (liveness) and /readyz (readiness) on PORT; 0: off",
        ),
    )
    metrics_port: int = field(
        default=9402,
        metadata=flag(
            "--metrics-port",
            metavar="PORT",
            help="serve Prometheus metrics at /metrics on PORT; 0 turns them off",
        ),
    )
    metrics_address: str = field(
        default="0.0.0.0",  # noqa: S104 -- Prometheus scrapes the Pod from outside
        metadata=flag("--metrics-address", metavar="ADDRESS", help="address the metrics server listens on"),
    )
    metrics_tls_cert: str | None = field(
        default=None,
        metadata=flag(
            "--metrics-tls-cert", metavar="FILE", help="serve metrics over HTTPS with this PEM certificate"
        ),
    )
    metrics_tls_key: str | None = field(
        default=None,
        metadata=flag(
            "--metrics-tls-key", metavar="FILE", help="the private key of --metrics-tls-cert (PEM)"
        ),
    )
    scan_tls_secrets: bool = field(
        default=True,
        metadata=flag(
            "--no-tls-secret-metrics",
            help="do not watch every kubernetes.io/tls Secret for the expiry metrics",
        ),
    )
    leader_election: bool = field(
        default=False,
        metadata=flag(
            "--leader-elect",
            help="act only while holding a Lease, so that of several replicas one acts at a time",
        ),
    )
    lease_namespace: str = field(
        default="certsmith",
        metadata=flag(
            "--leader-elect-namespace", metavar="NS", help="namespace of the leader-election Lease"
        ),
    )
    lease_name: str = field(
        default="certsmith",
        metadata=flag("--leader-elect-lease", metavar="NAME", help="name of the leader-election Lease"),
    )
    lease_duration: int = field(
        default=15,
        metadata=flag(
            "--leader-elect-lease-duration",
            metavar="SECONDS",
            help="how long a Lease (the leader's or a shard's) outlives its last renewal; its holder stops "
            "writing after two thirds of it without renewal",
        ),
    )
    shards: int = field(
        default=1,
        metadata=flag(
            "--shards",
            metavar="N",
            help="split the Certificates into N shards, each guarded by a Lease, shared by all running "
            "replicas (N > 1 needs no --leader-elect); 1: one replica acts (with --leader-elect)",
        ),
    )
    acme_http01_port: int = field(
        default=8089,
        metadata=flag(
            "--acme-http01-port",
            metavar="PORT",
            help="answer ACME HTTP-01 challenges on PORT; 0 turns the solver off",
        ),
    )
    acme_http01_address: str = field(
        default="0.0.0.0",  # noqa: S104 -- the CA's validator connects from outside
        metadata=flag(
            "--acme-http01-address", metavar="ADDRESS", help="address the HTTP-01 solver listens on"
        ),
    )
    acme_solver_service: str = field(
        default="",
        metadata=flag(
            "--acme-solver-service",
            metavar="NAMESPACE/NAME",
            help="the Service in front of the HTTP-01 solver: each HTTP-01 challenge then gets an Ingress "
            "routing its path to it (in a cluster: certsmith/certsmith-acme-solver)",
        ),
    )
    acme_orders_per_hour: int = field(
        default=6,
        metadata=flag(
            "--acme-orders-per-hour", metavar="N", help="new ACME orders allowed per Certificate in any hour"
        ),
    )
    acme_ari_interval: int = field(
        default=0,
        metadata=flag(
            "--acme-ari-interval",
            metavar="SECONDS",
            help="ask the ACME CA for each certificate's renewal information (ARI) every SECONDS; "
            "0: as the CA's Retry-After says (clamped to 1 minute .. 1 day; 6 hours when it names none)",
        ),
    )
    acme_timeout: int = field(
        default=30,
        metadata=flag(
            "--acme-timeout",
            metavar="SECONDS",
            help="wait SECONDS for an ACME server's answer to one request; a CA that does not answer "
            "in time twice in a row is unreachable and its certificates wait",
        ),
    )
    dns01_recursive_nameservers: tuple[str, ...] = field(
        default=(),
        metadata=flag(
            "--dns01-recursive-nameserver",
            metavar="HOST[:PORT]",
            help="look up the CNAMEs that DNS-01 solvers with cnameStrategy Follow follow, the CAA "
            "records and the dns-persist-01 records checked before ordering here (repeatable); "
            "default: the system's resolver",
        ),
    )
    auto_approve: bool = field(
        default=True,
        metadata=flag(
            "--auto-approve",
            help="approve every CertificateRequest; with --no-auto-approve each waits for "
            "`certsmith approve` by someone allowed the verb approve on signers.certsmith.dev",
        ),
    )
    trust_namespace: str = field(
        default="certsmith",
        metadata=flag(
            "--trust-namespace",
            metavar="NS",
            help="namespace of the ConfigMaps, Secrets and Issuers that Bundles read their certificates from",
        ),
    )
    spiffe_trust_domain: str = field(
        default="cluster.local",
        metadata=flag(
            "--spiffe-trust-domain",
            metavar="DOMAIN",
            help="trust domain of the SPIFFE IDs in pod certificates: spiffe://DOMAIN/ns/NS/sa/SA",
        ),
    )

    @property
    def renewal_info_interval(self) -> datetime.timedelta | None:
        """--acme-ari-interval as a duration; None: the CA's Retry-After decides."""
        return datetime.timedelta(seconds=self.acme_ari_interval) if self.acme_ari_interval > 0 else None

    @property
    def lease(self) -> tuple[datetime.timedelta, datetime.timedelta, datetime.timedelta]:
        """The Leases' duration, renew deadline (2/3 of it) and retry period (1/7.5 of it: 2 s of 15 s)."""
        duration = datetime.timedelta(seconds=self.lease_duration)
        return duration, duration * 2 / 3, duration * 2 / 15

    @property
    def threads(self) -> int:
        """The thread pool's size, and the connections certsmith's client keeps open to the API
        server: one per worker, plus a few for what runs beside them (the initial listing, the Lease,
        recording a failure), so that no worker waits for a thread or a connection."""
        return self.workers + 4


def is_namespace_pattern(namespace: str) -> bool:
    """Whether a --namespace value is a pattern (a glob, a negation, a list) rather than a name."""
    return bool(set(namespace) & set("*?!,"))


def namespace_filter(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """kopf's namespace patterns: names or globs to include, `!glob` to exclude; none means all."""
    include = [p for pattern in patterns for p in pattern.split(",") if p and not p.startswith("!")]
    exclude = [p[1:] for pattern in patterns for p in pattern.split(",") if p.startswith("!")]

    def watched(namespace: str) -> bool:
        if any(fnmatch.fnmatchcase(namespace, pattern) for pattern in exclude):
            return False
        return not include or any(fnmatch.fnmatchcase(namespace, pattern) for pattern in include)

    return watched
