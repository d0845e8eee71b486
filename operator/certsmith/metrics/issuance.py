"""Counters of what the reconcilers did, kept by prometheus-client (thread-safe)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class IssuanceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.issuances = Counter(
            "certsmith_issuance",
            "Issuance attempts, by the kind of issuer asked and the result.",
            ["issuer_kind", "result"],
            registry=registry,
        )
        self.duration = Histogram(
            "certsmith_issuance_duration_seconds",
            "Time of the reconcile that writes a new certificate: the Secret write, and the key generation"
            " and signing where they run in it (self-signed and CA issuers, but not for RSA keys; ACME"
            " issuers and RSA keys are signed beforehand, in a lane).",
            ["issuer_kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.renewal_failures = Counter(
            "certsmith_renewal_failures",
            "Failed attempts to renew a certificate that is still valid.",
            ["issuer_kind"],
            registry=registry,
        )
        self.pod_certificates = Counter(
            "certsmith_pod_certificate_requests",
            "PodCertificateRequests answered, by the kind of issuer asked (none: the signer name was "
            "refused) and the answer: Issued, Denied or Failed.",
            ["issuer_kind", "result"],
            registry=registry,
        )

        self.acme_requests = Counter(
            "certsmith_acme_requests",
            "Requests to ACME servers, by action and outcome (the HTTP status, the ACME error type such as "
            "rateLimited or badNonce, or unreachable).",
            ["action", "status"],
            registry=registry,
        )
        self.acme_duration = Histogram(
            "certsmith_acme_request_duration_seconds",
            "Time of one request to an ACME server, by action.",
            ["action"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )

    def acme_request(self, action: str, status: str, seconds: float) -> None:
        self.acme_requests.labels(action, status).inc()
        self.acme_duration.labels(action).observe(seconds)

    def pod_certificate(self, issuer_kind: str, result: str) -> None:
        self.pod_certificates.labels(issuer_kind, result).inc()

    def issued(self, issuer_kind: str, seconds: float) -> None:
        self.issuances.labels(issuer_kind, "success").inc()
        self.duration.labels(issuer_kind).observe(seconds)

    def failed(self, issuer_kind: str, renewal: bool) -> None:
        self.issuances.labels(issuer_kind, "failure").inc()
        if renewal:
            self.renewal_failures.labels(issuer_kind).inc()
