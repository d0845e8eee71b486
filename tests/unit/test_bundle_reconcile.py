"""The Bundle reconcile against in-memory API objects: which targets it writes, that it writes none
when nothing changed, that it never overwrites what it did not make, and what the status says. The
cluster test (tests/cluster/test_bundles.py) runs the same against the real API server."""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certsmith.api.bundle import BUNDLE_LABEL, BUNDLES
from certsmith.kube.port import Key
from certsmith.kube.secrets import ObservedSecret
from certsmith.kube.trust import CONFIG_MAPS, SECRETS, Target, TargetBody, TargetExistsError
from certsmith.pki.encodings import certificates_pem
from certsmith.pki.system_trust import SystemTrust
from certsmith.reconcile.bundle import BundleReconciler
from certsmith.reconcile.store import Store
from certsmith.settings import OperatorSettings
from certsmith.tls_secret import SecretContents
from tests.unit.fakekube import Clock, FakeKube

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _ca(name: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


@dataclass
class FakeTrust:
    """ConfigMaps and Secrets by (kind, key), with resourceVersions; every request recorded."""

    objects: dict[tuple[str, Key], tuple[Target, TargetBody]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def source_texts(
        self, kind: str, namespace: str, name: str | None, selector: str | None
    ) -> dict[str, dict[str, bytes]]:
        raise AssertionError("these tests use watched sources only")

    def write(
        self,
        kind: str,
        target: Key,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        owner: Mapping[str, Any],
        body: TargetBody,
        resource_version: str | None,
    ) -> Target:
        self.requests.append(f"{'POST' if resource_version is None else 'PUT'} {kind}/{target[0]}")
        existing = self.objects.get((kind, target))
        if resource_version is None and existing is not None:
            raise TargetExistsError(f"{kind} {target} exists")
        written = Target(kind, *target, dict(labels), dict(annotations), str(next(self._versions)))
        self.objects[(kind, target)] = (written, body)
        return written

    def read(self, kind: str, target: Key) -> Target | None:
        self.requests.append(f"GET {kind}/{target[0]}")
        found = self.objects.get((kind, target))
        return found[0] if found else None

    def delete(self, target: Target) -> None:
        self.requests.append(f"DELETE {target.kind}/{target.namespace}")
        del self.objects[(target.kind, (target.namespace, target.name))]

    def trust_bundles(self, label_selector: str) -> list[Mapping[str, Any]]:
        self.requests.append(f"LIST clustertrustbundles ({label_selector})")
        return []

    def write_trust_bundle(
        self,
        name: str,
        signer: str | None,
        pem: str,
        metadata: Mapping[str, Any],
        resource_version: str | None,
    ) -> None:
        raise AssertionError("no clusterTrustBundle target here")

    def delete_trust_bundle(self, name: str, resource_version: str) -> None:
        raise AssertionError("no clusterTrustBundle target here")

    def foreign(self, kind: str, namespace: str, name: str) -> None:
        self.objects[(kind, (namespace, name))] = (
            Target(kind, namespace, name, {}, {}, str(next(self._versions))),
            TargetBody({"ca.crt": "someone else's"}),
        )


class Harness:
    def __init__(self) -> None:
        self.store = Store()
        self.kube = FakeKube()
        self.trust = FakeTrust()
        self.root = _ca("root")
        self.reconciler = BundleReconciler(
            self.store,
            self.kube,
            self.trust,
            OperatorSettings(namespaces=("!kube-*",)),
            Clock(NOW),
            lambda: SystemTrust((), "unknown"),
        )
        self.store.cluster_issuers[("", "root")] = {
            "metadata": {"name": "root"},
            "spec": {"ca": {"secretName": "root"}},
        }
        pem = certificates_pem([self.root])
        self.store.referenced[("certsmith", "root")] = ObservedSecret(
            SecretContents(labels={}, annotations={}, data={"tls.crt": pem}, type="kubernetes.io/tls"), "1"
        )
        for namespace, labels in (
            ("a", {"trust": "yes"}),
            ("b", {"trust": "yes"}),
            ("c", {}),
            ("kube-x", {"trust": "yes"}),
        ):
            self.store.namespaces[namespace] = labels

    def bundle(self, **target: Any) -> None:
        self.store.bundles[("", "trust")] = {
            "metadata": {"name": "trust", "uid": "u1", "generation": 1},
            "spec": {
                "sources": [{"issuerRef": {"name": "root", "kind": "ClusterIssuer"}}],
                "target": {
                    "configMap": {"key": "ca.crt"},
                    "namespaceSelector": {"matchLabels": {"trust": "yes"}},
                }
                | target,
            },
        }

    def reconcile(self) -> dict[str, Any]:
        """Reconcile, then let the store learn what the watches would deliver; the status written."""
        self.reconciler.reconcile("trust")
        self.store.bundle_targets = {
            key: target
            for key, (target, _body) in self.trust.objects.items()
            if target.labels.get(BUNDLE_LABEL)
        }
        status = self.kube.statuses.get((BUNDLES, ("", "trust")), {})
        body = self.store.bundles[("", "trust")]
        self.store.bundles[("", "trust")] = {**body, "status": status}
        return status

    def holding(self, kind: str = CONFIG_MAPS) -> set[str]:
        return {key[0] for (found, key) in self.trust.objects if found == kind and key[1] == "trust"}


def test_targets_go_to_the_selected_served_namespaces_and_are_not_written_again_when_equal() -> None:
    harness = Harness()
    harness.bundle()
    status = harness.reconcile()
    assert harness.holding() == {"a", "b"}, "c is not selected, kube-x is not served"
    assert status["conditions"][0]["reason"] == "Synced"
    assert (status["certificates"], status["targetNamespaces"]) == (1, 2)
    body = harness.trust.objects[(CONFIG_MAPS, ("a", "trust"))][1]
    assert body.text == {"ca.crt": certificates_pem([harness.root]).decode()}
    harness.trust.requests.clear()
    harness.kube.requests.clear()
    harness.reconcile()
    assert harness.trust.requests == []
    assert harness.kube.requests == [], "nor the status"


def test_a_namespace_unselected_loses_its_target_and_a_new_ca_reaches_the_others() -> None:
    harness = Harness()
    harness.bundle(secret={"key": "ca.crt"})
    harness.reconcile()
    assert harness.holding(SECRETS) == {"a", "b"}
    harness.store.namespaces["b"] = {}
    rotated = _ca("root, rotated")
    harness.store.referenced[("certsmith", "root")] = ObservedSecret(
        SecretContents(
            labels={}, annotations={}, data={"tls.crt": certificates_pem([rotated])}, type="kubernetes.io/tls"
        ),
        "2",
    )
    harness.trust.requests.clear()
    harness.reconcile()
    assert sorted(harness.trust.requests) == [
        "DELETE configmaps/b",
        "DELETE secrets/b",
        "PUT configmaps/a",
        "PUT secrets/a",
    ]
    assert (
        harness.trust.objects[(CONFIG_MAPS, ("a", "trust"))][1].text["ca.crt"]
        == certificates_pem([rotated]).decode()
    )


def test_a_foreign_object_is_never_overwritten_and_the_status_and_an_event_say_where() -> None:
    harness = Harness()
    harness.trust.foreign(CONFIG_MAPS, "b", "trust")
    harness.bundle()
    status = harness.reconcile()
    assert harness.trust.objects[(CONFIG_MAPS, ("b", "trust"))][1].text == {"ca.crt": "someone else's"}
    condition = status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "TargetNotOwned")
    assert "ConfigMap b/trust" in condition["message"]
    assert status["notOwned"][0]["namespace"] == "b"
    assert [event.reason for event in harness.kube.events] == ["TargetNotOwned"]
    harness.bundle(namespaceSelector={})  # every namespace: the foreign one is still not deleted
    harness.store.namespaces["b"] = {}
    harness.reconcile()
    assert (CONFIG_MAPS, ("b", "trust")) in harness.trust.objects


def test_a_missing_source_changes_no_target_and_names_the_field() -> None:
    harness = Harness()
    harness.bundle()
    harness.reconcile()
    harness.store.referenced[("certsmith", "root")] = None
    harness.trust.requests.clear()
    status = harness.reconcile()
    assert harness.trust.requests == []
    condition = status["conditions"][0]
    assert condition["reason"] == "SourceNotReady"
    assert condition["message"].startswith("spec.sources[0].issuerRef (ClusterIssuer/root): its CA Secret")


def test_a_deleted_bundle_removes_only_what_it_made() -> None:
    harness = Harness()
    harness.trust.foreign(CONFIG_MAPS, "b", "trust")
    harness.bundle()
    harness.reconcile()
    del harness.store.bundles[("", "trust")]
    harness.trust.requests.clear()
    harness.reconciler.reconcile("trust")
    assert list(harness.trust.objects) == [(CONFIG_MAPS, ("b", "trust"))]
    assert harness.trust.requests == [
        "DELETE configmaps/a",
        f"LIST clustertrustbundles ({BUNDLE_LABEL}=trust)",
    ]
