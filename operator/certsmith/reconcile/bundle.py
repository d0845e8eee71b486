"""Keep a Bundle's targets: its sources' certificates, sorted and de-duplicated, in a ConfigMap (and, opted
in, a Secret) of every namespace its namespaceSelector picks, and nowhere else.

A target is written only when what it should hold differs from what it was written with (the digest
in its `certsmith.dev/bundle-hash` annotation), so a reconcile that finds nothing new makes no request
for it. Every target carries the label `certsmith.dev/bundle: <name>` and the Bundle as its owner: only
those are ever replaced or deleted (the garbage collector removes them with the Bundle too). A
ConfigMap or Secret of that name that is not the Bundle's is left alone, and the status names it.

If a source cannot be read, no target changes: a half bundle would make clients distrust servers they
trusted a moment ago.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from certsmith.api import API_VERSION, CLUSTER_ISSUERS, ISSUERS, SpecError
from certsmith.api.bundle import (
    BUNDLE_HASH,
    BUNDLE_LABEL,
    BUNDLES,
    BundleSpec,
    ClusterTrustBundleTarget,
    ConfigMapSource,
    DefaultCAsSource,
    InLineSource,
    IssuerSource,
    SecretSource,
    parse_bundle_spec,
)
from certsmith.api.issuer import CAIssuerSpec, parse_issuer_spec
from certsmith.api.references import IssuerKind
from certsmith.api.status import condition, status_differs
from certsmith.kube.port import (
    HTTP_CONFLICT,
    ApiAccessError,
    EventRecord,
    Key,
    KubePort,
    ObjectRef,
    owner_reference,
)
from certsmith.kube.trust import (
    CLUSTER_TRUST_BUNDLES,
    CONFIG_MAPS,
    SECRETS,
    Target,
    TargetBody,
    TargetExistsError,
    TrustBundleUnavailableError,
    TrustPort,
)
from certsmith.pki.system_trust import SystemTrust
from certsmith.pki.trust import (
    BadCertificatesError,
    TrustBundle,
    certificate_authorities,
    parse_certificates,
    trust_bundle,
)
from certsmith.reconcile.plan import Outcome
from certsmith.reconcile.store import Store
from certsmith.settings import OperatorSettings, namespace_filter

logger = logging.getLogger("certsmith")

SOURCE_RESYNC = datetime.timedelta(minutes=5)
"""How often a Bundle with ConfigMap sources, or Secret sources picked by a selector, reads them again:
those are read, not watched (issuers' CA Secrets and Secrets named by a source are watched)."""
MAX_LISTED = 20
"""Namespaces named in the status and Events at most (with the count of the rest)."""
_KIND = {CONFIG_MAPS: "ConfigMap", SECRETS: "Secret", CLUSTER_TRUST_BUNDLES: "ClusterTrustBundle"}


class SourceError(RuntimeError):
    """A source that cannot be read now; names the source's field and what to do."""


class NotYetReadError(RuntimeError):
    """A watched source whose first listing has not arrived: its watch queues the Bundle again."""


class TargetWriteError(RuntimeError):
    """Targets that could not be written; the Bundle is retried with back-off."""


@dataclass(frozen=True)
class Refusal:
    kind: str
    namespace: str
    reason: str


def issuer_ca_secret(spec: Mapping[str, Any]) -> str | None:
    """The CA Secret a CA issuer signs with; None for other issuers and broken specs."""
    try:
        parsed = parse_issuer_spec(spec)
    except SpecError:
        return None
    return parsed.secret_name if isinstance(parsed, CAIssuerSpec) else None


class BundleReconciler:
    def __init__(
        self,
        store: Store,
        port: KubePort,
        trust: TrustPort,
        settings: OperatorSettings,
        clock: Callable[[], datetime.datetime],
        system: Callable[[], SystemTrust],
    ) -> None:
        self._store = store
        self._port = port
        self._trust = trust
        self._settings = settings
        self._clock = clock
        self._system = system
        self._in_scope = namespace_filter(settings.namespaces)

    def issuer_secret(self, source: IssuerSource) -> Key | None:
        """The Secret an issuerRef source reads (to be watched), if the issuer is known and a CA issuer."""
        cluster = source.issuer.kind is IssuerKind.CLUSTER_ISSUER
        plural = CLUSTER_ISSUERS if cluster else ISSUERS
        key = ("", source.issuer.name) if cluster else (self._settings.trust_namespace, source.issuer.name)
        body = self._store.objects(plural).get(key)
        secret = issuer_ca_secret(body.get("spec") or {}) if body else None
        if secret is None:
            return None
        namespace = self._settings.cluster_resource_namespace if cluster else self._settings.trust_namespace
        return (namespace, secret)

    def reconcile(self, name: str) -> Outcome:
        body = self._store.bundles.get(("", name))
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            self._remove(name, lambda _: True)
            if body is None or (body.get("status") or {}).get("clusterTrustBundle"):
                self._remove_trust_bundles(name)
            return Outcome()
        metadata = body["metadata"]
        regarding = ObjectRef("Bundle", None, name, metadata.get("uid"), metadata.get("resourceVersion"))
        try:
            spec = parse_bundle_spec(name, body.get("spec") or {})
        except SpecError as error:
            self._status(body, regarding, False, "InvalidSpec", str(error), {})
            return Outcome()
        try:
            bundle, version = self._gather(spec)
        except NotYetReadError:
            return Outcome()
        except (SourceError, BadCertificatesError, ApiAccessError) as error:
            self._status(body, regarding, False, "SourceNotReady", f"{error}; no target was changed", {})
            return Outcome(recheck_at=self._clock() + SOURCE_RESYNC)
        recheck = self._clock() + SOURCE_RESYNC if _reads_unwatched(spec) else None
        if not bundle.certificates:
            message = "the sources hold no certificate; no target was changed"
            self._status(body, regarding, False, "NoCertificates", message, {})
            return Outcome(recheck_at=recheck)
        wanted = self._wanted(spec)
        uid = metadata.get("uid", "")
        refusals, failures = self._converge(name, uid, spec, bundle, wanted)
        trust_bundle_name, unavailable = self._trust_bundle(name, uid, spec, bundle, body, refusals, failures)
        in_namespaces = {refusal.namespace for refusal in refusals if refusal.namespace}
        extra: dict[str, Any] = {
            "defaultCAVersion": version,
            "targetNamespaces": len(wanted) - len(in_namespaces) if _namespaced(spec) else None,
            "clusterTrustBundle": trust_bundle_name,
            "notOwned": [
                {"kind": _KIND[refusal.kind], "namespace": refusal.namespace, "reason": refusal.reason}
                if refusal.namespace
                else {"kind": _KIND[refusal.kind], "reason": refusal.reason}
                for refusal in refusals[:MAX_LISTED]
            ]
            or None,
            "certificates": len(bundle.certificates),
        }
        if failures:
            self._status(body, regarding, False, "WriteFailed", "; ".join(failures[:3]), extra)
            raise TargetWriteError(
                f"bundle {name}: {len(failures)} targets not written, first: {failures[0]}"
            )
        if unavailable is not None:
            self._status(body, regarding, False, "ClusterTrustBundleUnavailable", unavailable, extra)
        elif refusals:
            named = ", ".join(_describe(refusal, name) for refusal in refusals[:MAX_LISTED])
            more = f" and {len(refusals) - MAX_LISTED} more" if len(refusals) > MAX_LISTED else ""
            message = (
                f"not written: {named}{more}; an object certsmith did not make is never overwritten (delete "
                f"or rename it, or label it certsmith.dev/bundle: {name} to hand it over)"
            )
            self._status(body, regarding, False, "TargetNotOwned", message, extra)
        else:
            places = [f"{extra['targetNamespaces']} namespaces"] if _namespaced(spec) else []
            places += [f"ClusterTrustBundle {trust_bundle_name}"] if trust_bundle_name else []
            message = f"{len(bundle.certificates)} certificates in {' and '.join(places)}"
            self._status(body, regarding, True, "Synced", message, extra)
        if spec.cluster_trust_bundle is not None:  # not watched: read again now and then
            recheck = recheck or self._clock() + SOURCE_RESYNC
        return Outcome(recheck_at=recheck)

    def _trust_bundle(
        self,
        name: str,
        uid: str,
        spec: BundleSpec,
        bundle: TrustBundle,
        body: Mapping[str, Any],
        refusals: list[Refusal],
        failures: list[str],
    ) -> tuple[str | None, str | None]:
        """Keep the ClusterTrustBundle target (and delete one the spec no longer names): its name if it
        holds the bundle, and why the API is unavailable, if it is. One LIST (by label) per reconcile."""
        target = spec.cluster_trust_bundle
        if target is None and not (body.get("status") or {}).get("clusterTrustBundle"):
            return None, None
        try:
            listed = self._trust.trust_bundles(f"{BUNDLE_LABEL}={name}")
        except TrustBundleUnavailableError as error:
            return None, f"spec.target.clusterTrustBundle: {error}"
        except ApiAccessError as error:
            failures.append(str(error))
            return None, None
        existing = {item["metadata"]["name"]: item for item in listed}
        for other, item in existing.items():
            if target is None or other != target.name:
                try:
                    self._trust.delete_trust_bundle(other, item["metadata"].get("resourceVersion", ""))
                except ApiAccessError as error:
                    failures.append(str(error))
                else:
                    logger.info("bundle %s: ClusterTrustBundle %s deleted", name, other)
        if target is None:
            return None, None
        try:
            refused = self._put_trust_bundle(name, uid, target, bundle, existing.get(target.name))
        except ApiAccessError as error:
            refused = None
            failures.append(str(error))
        if refused is not None:
            refusals.append(Refusal(CLUSTER_TRUST_BUNDLES, "", refused))
        return (None if refused is not None or failures else target.name), None

    def _remove_trust_bundles(self, name: str) -> None:
        """Those the deleted Bundle made (the garbage collector would, a little later); none to remove
        where the API is not served."""
        try:
            listed = self._trust.trust_bundles(f"{BUNDLE_LABEL}={name}")
            for item in listed:
                self._trust.delete_trust_bundle(item["metadata"]["name"], item["metadata"]["resourceVersion"])
                logger.info("bundle %s: ClusterTrustBundle %s deleted", name, item["metadata"]["name"])
        except TrustBundleUnavailableError:
            return
        except ApiAccessError as error:
            logger.warning(
                "bundle %s: its ClusterTrustBundles are left to the garbage collector: %s", name, error
            )

    def _put_trust_bundle(
        self,
        name: str,
        uid: str,
        target: ClusterTrustBundleTarget,
        bundle: TrustBundle,
        current: Mapping[str, Any] | None,
    ) -> str | None:
        """Write the ClusterTrustBundle unless it holds this digest already; why not, if it cannot be."""
        authorities = trust_bundle(certificate_authorities(bundle.certificates))
        if not authorities.certificates:
            return "the bundle holds no CA certificate (basicConstraints CA:TRUE), the only kind it takes"
        digest = authorities.digest(f"signer={target.signer_name or ''}")
        if current is not None and (current["metadata"].get("annotations") or {}).get(BUNDLE_HASH) == digest:
            return None
        owner = {"apiVersion": API_VERSION, "kind": "Bundle", "name": name, "uid": uid, "controller": True}
        metadata = {
            "labels": {BUNDLE_LABEL: name},
            "annotations": {BUNDLE_HASH: digest},
            "ownerReferences": [owner | {"blockOwnerDeletion": False}],
        }
        version = current["metadata"].get("resourceVersion") if current is not None else None
        try:
            self._trust.write_trust_bundle(
                target.name, target.signer_name, authorities.pem, metadata, version
            )
        except TargetExistsError:
            return f"exists without the label {BUNDLE_LABEL}: {name}, so certsmith did not make it"
        logger.info("bundle %s: ClusterTrustBundle %s written", name, target.name)
        return None

    def _gather(self, spec: BundleSpec) -> tuple[TrustBundle, str | None]:
        certificates: list[x509.Certificate] = []
        version = None
        namespace = self._settings.trust_namespace
        for index, source in enumerate(spec.sources):
            field = f"spec.sources[{index}]"
            if isinstance(source, InLineSource):
                certificates += parse_certificates(source.pem, f"{field}.inLine")
            elif isinstance(source, DefaultCAsSource):
                try:
                    system = self._system()
                except OSError as error:
                    raise SourceError(f"{field}.useDefaultCAs: the system trust store: {error}") from None
                certificates += system.certificates
                version = system.version
            elif isinstance(source, IssuerSource):
                certificates += self._issuer_certificates(field, source)
            else:
                certificates += self._object_certificates(field, namespace, source)
        return trust_bundle(certificates), version

    def _issuer_certificates(self, field: str, source: IssuerSource) -> list[x509.Certificate]:
        where = f"{field}.issuerRef ({source.issuer})"
        key = self.issuer_secret(source)
        if key is None:
            namespace = (
                "" if source.issuer.kind is IssuerKind.CLUSTER_ISSUER else self._settings.trust_namespace
            )
            raise SourceError(
                f"{where}: no CA issuer of that name{' in namespace ' + namespace if namespace else ''} "
                "(only a CA issuer has a CA certificate to trust; Issuers are read from the trust namespace)"
            )
        if key not in self._store.referenced:
            raise NotYetReadError(where)
        secret = self._store.referenced[key]
        if secret is None:
            raise SourceError(f"{where}: its CA Secret {key[0]}/{key[1]} does not exist")
        data = secret.contents.data
        texts = [data[name] for name in ("tls.crt", "ca.crt") if data.get(name)]
        if not texts:
            raise SourceError(f"{where}: its CA Secret {key[0]}/{key[1]} has no tls.crt")
        return [
            certificate
            for text in texts
            for certificate in parse_certificates(text, f"{where}: Secret {key[0]}/{key[1]}")
        ]

    def _object_certificates(
        self, field: str, namespace: str, source: ConfigMapSource | SecretSource
    ) -> list[x509.Certificate]:
        kind = CONFIG_MAPS if isinstance(source, ConfigMapSource) else SECRETS
        label = "configMap" if kind == CONFIG_MAPS else "secret"
        where = f"{field}.{label}"
        if kind == SECRETS and source.name is not None:
            if (namespace, source.name) not in self._store.referenced:
                raise NotYetReadError(where)
            observed = self._store.referenced[(namespace, source.name)]
            found = {source.name: dict(observed.contents.data)} if observed is not None else {}
        else:
            selector = source.selector.query() if source.selector is not None else None
            found = self._trust.source_texts(kind, namespace, source.name, selector)
        if source.name is not None and not found:
            raise SourceError(f"{where}: {_KIND[kind]} {namespace}/{source.name} does not exist")
        certificates = []
        for name, data in sorted(found.items()):
            keys = sorted(data) if source.include_all_keys else [source.key or ""]
            for key in keys:
                if key not in data:
                    raise SourceError(f"{where}: {_KIND[kind]} {namespace}/{name} has no key {key!r}")
                certificates += parse_certificates(
                    data[key], f"{where}: {_KIND[kind]} {namespace}/{name}[{key}]"
                )
        return certificates

    def _wanted(self, spec: BundleSpec) -> set[str]:
        return {
            namespace
            for namespace, labels in list(self._store.namespaces.items())
            if self._in_scope(namespace) and spec.namespace_selector.matches(labels)
        }

    def _converge(
        self, name: str, uid: str, spec: BundleSpec, bundle: TrustBundle, wanted: set[str]
    ) -> tuple[list[Refusal], list[str]]:
        owner = owner_reference(ObjectRef("Bundle", None, name, uid))
        kinds = {CONFIG_MAPS: spec.config_map_key, SECRETS: spec.secret_key}
        pkcs12 = spec.pkcs12
        binary = {pkcs12.key: bundle.pkcs12(pkcs12.password)} if pkcs12 is not None else {}
        digest = bundle.digest(
            *(f"{kind}={key}" for kind, key in sorted(kinds.items()) if key),
            *((f"pkcs12={pkcs12.key}", pkcs12.password) if pkcs12 is not None else ()),
        )
        refusals: list[Refusal] = []
        failures: list[str] = []
        for kind, key in kinds.items():
            if key is None:
                continue
            contents = TargetBody({key: bundle.pem}, binary)
            for namespace in sorted(wanted):
                try:
                    refused = self._put(kind, (namespace, name), owner, digest, contents)
                except ApiAccessError as error:
                    failures.append(str(error))
                    continue
                if refused is not None:
                    refusals.append(Refusal(kind, namespace, refused))
        known = set(self._store.namespaces)

        def unwanted(target: Target) -> bool:
            """Not in a namespace the Bundle selects (a namespace not known yet, or going, is left be)."""
            if kinds[target.kind] is None:
                return True
            return target.namespace in known and target.namespace not in wanted

        failures += self._remove(name, unwanted)
        return refusals, failures

    def _put(
        self, kind: str, key: Key, owner: Mapping[str, Any], digest: str, contents: TargetBody
    ) -> str | None:
        """Write the target unless it holds this digest already; why not, if it is someone else's."""
        labels = {BUNDLE_LABEL: key[1]}
        annotations = {BUNDLE_HASH: digest}
        existing = self._store.bundle_targets.get((kind, key))
        if existing is not None and existing.labels.get(BUNDLE_LABEL) == key[1]:
            if existing.annotations.get(BUNDLE_HASH) == digest:
                return None
            version: str | None = existing.resource_version
        else:
            version = None
        for _attempt in range(2):  # the store may lag behind the watch: read once, then decide again
            try:
                self._trust.write(kind, key, labels, annotations, owner, contents, version)
            except TargetExistsError:
                pass
            except ApiAccessError as error:
                if error.status != HTTP_CONFLICT:
                    raise
            else:
                logger.info("bundle %s: %s %s/%s written", key[1], _KIND[kind], *key)
                return None
            current = self._trust.read(kind, key)
            if current is not None and current.labels.get(BUNDLE_LABEL) != key[1]:
                return f"exists without the label {BUNDLE_LABEL}: {key[1]}, so certsmith did not make it"
            if current is not None and current.annotations.get(BUNDLE_HASH) == digest:
                return None
            version = current.resource_version if current is not None else None
        return "changed by someone else while certsmith wrote it; tried again later"

    def _remove(self, name: str, unwanted: Callable[[Target], bool]) -> list[str]:
        """Delete this Bundle's targets that `unwanted` picks; what failed."""
        failures = []
        for (_kind, _key), target in list(self._store.bundle_targets.items()):
            if target.labels.get(BUNDLE_LABEL) != name or not unwanted(target):
                continue
            try:
                self._trust.delete(target)
            except ApiAccessError as error:
                failures.append(str(error))
                continue
            logger.info("bundle %s: %s %s/%s deleted", name, _KIND[target.kind], target.namespace, name)
        return failures

    def _status(
        self,
        body: Mapping[str, Any],
        regarding: ObjectRef,
        ready: bool,
        reason: str,
        message: str,
        extra: Mapping[str, Any],
    ) -> None:
        current = body.get("status") or {}
        generation = body["metadata"].get("generation")
        previous = current.get("conditions") or []
        status = {
            "conditions": [condition("Ready", ready, reason, message, generation, previous, self._clock())],
            "observedGeneration": generation,
            "defaultCAVersion": None,
            "targetNamespaces": None,
            "notOwned": None,
            "certificates": None,
            "clusterTrustBundle": None,
            **extra,
        }
        if not status_differs(current, status):
            return
        self._port.patch_status(BUNDLES, None, regarding.name, status)
        earlier: Mapping[str, Any] = next((item for item in previous if item.get("type") == "Ready"), {})
        if not ready and (earlier.get("reason"), earlier.get("message")) != (reason, message):
            self._say(EventRecord(regarding, True, reason, message))
        elif ready and earlier.get("status") != "True":
            self._say(EventRecord(regarding, False, reason, message))

    def _say(self, event: EventRecord) -> None:
        try:
            self._port.post_event(event)
        except ApiAccessError as error:
            logger.warning("Bundle %s: %s (Event not posted: %s)", event.regarding.name, event.message, error)


def _namespaced(spec: BundleSpec) -> bool:
    return bool(spec.config_map_key or spec.secret_key)


def _describe(refusal: Refusal, name: str) -> str:
    where = f"{refusal.namespace}/{name}" if refusal.namespace else "the target"
    return f"{_KIND[refusal.kind]} {where}: {refusal.reason}"


def _reads_unwatched(spec: BundleSpec) -> bool:
    return any(
        isinstance(source, ConfigMapSource) or (isinstance(source, SecretSource) and source.name is None)
        for source in spec.sources
    )
