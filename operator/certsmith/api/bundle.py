"""The Bundle spec: where trusted certificates come from and where the bundle goes.

trust-manager's `trust.cert-manager.io/v1alpha1` fields, so that its manifests move over by changing the
apiVersion, plus `issuerRef` (a certsmith issuer's CA, followed through its rotations) and the
`clusterTrustBundle` target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from certsmith.api import SpecError
from certsmith.api.references import IssuerKind, IssuerRef

BUNDLES = "bundles"
BUNDLE_LABEL = "certsmith.dev/bundle"
"""On every ConfigMap and Secret a Bundle made: the Bundle's name. Only these are ever changed or deleted."""
BUNDLE_HASH = "certsmith.dev/bundle-hash"
"""On every target: a digest of what it was written with, so that an equal target is not written again
(a PKCS#12 file differs byte for byte each time it is made)."""


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector (matchLabels and matchExpressions); empty selects everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(key) != value for key, value in self.match_labels):
            return False
        return all(_expression_holds(labels, *expression) for expression in self.match_expressions)

    def query(self) -> str:
        """As a `labelSelector` query parameter."""
        terms = [f"{key}={value}" for key, value in self.match_labels]
        for key, operator, values in self.match_expressions:
            terms.append(
                {
                    "In": f"{key} in ({','.join(values)})",
                    "NotIn": f"{key} notin ({','.join(values)})",
                    "Exists": key,
                    "DoesNotExist": f"!{key}",
                }[operator]
            )
        return ",".join(terms)


def _expression_holds(labels: Mapping[str, str], key: str, operator: str, values: tuple[str, ...]) -> bool:
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    return key not in labels  # DoesNotExist


@dataclass(frozen=True)
class ConfigMapSource:
    """A key of a ConfigMap in the trust namespace, by name or of every ConfigMap a selector picks."""

    name: str | None
    selector: LabelSelector | None
    key: str | None
    include_all_keys: bool


@dataclass(frozen=True)
class SecretSource:
    name: str | None
    selector: LabelSelector | None
    key: str | None
    include_all_keys: bool


@dataclass(frozen=True)
class InLineSource:
    pem: str


@dataclass(frozen=True)
class DefaultCAsSource:
    """The image's system trust store (Debian's ca-certificates)."""


@dataclass(frozen=True)
class IssuerSource:
    """The CA certificate of a certsmith CA issuer, as its Secret holds it now."""

    issuer: IssuerRef


Source = ConfigMapSource | SecretSource | InLineSource | DefaultCAsSource | IssuerSource


@dataclass(frozen=True)
class PKCS12Format:
    key: str
    password: str


@dataclass(frozen=True)
class ClusterTrustBundleTarget:
    name: str
    signer_name: str | None


@dataclass(frozen=True)
class BundleSpec:
    sources: tuple[Source, ...]
    config_map_key: str | None
    secret_key: str | None
    pkcs12: PKCS12Format | None
    namespace_selector: LabelSelector
    cluster_trust_bundle: ClusterTrustBundleTarget | None


def parse_bundle_spec(name: str, spec: Mapping[str, Any]) -> BundleSpec:
    """`name`: the Bundle's, which is its targets' name too."""
    sources = tuple(_source(index, source) for index, source in enumerate(spec.get("sources") or ()))
    if not sources:
        raise SpecError("sources", "name at least one source of certificates")
    target = spec.get("target") or {}
    config_map_key = (target.get("configMap") or {}).get("key")
    secret_key = (target.get("secret") or {}).get("key")
    formats = target.get("additionalFormats") or {}
    if formats.get("jks") is not None:
        raise SpecError(
            "target.additionalFormats.jks", "JKS is not written; use pkcs12, which Java reads too"
        )
    pkcs12 = formats.get("pkcs12")
    trust_bundle = target.get("clusterTrustBundle")
    if not (config_map_key or secret_key or trust_bundle is not None):
        raise SpecError("target", "name a configMap key, a secret key or a clusterTrustBundle")
    if pkcs12 is not None and not (config_map_key or secret_key):
        raise SpecError("target.additionalFormats.pkcs12", "needs a configMap or secret target to live in")
    cluster_trust_bundle = None
    if trust_bundle is not None:
        signer = trust_bundle.get("signerName") or None
        cluster_trust_bundle = ClusterTrustBundleTarget(
            trust_bundle.get("name") or _trust_bundle_name(signer, name), signer
        )
    return BundleSpec(
        sources,
        config_map_key,
        secret_key,
        PKCS12Format(pkcs12["key"], pkcs12.get("password", "")) if pkcs12 is not None else None,
        label_selector(target.get("namespaceSelector") or {}),
        cluster_trust_bundle,
    )


def _trust_bundle_name(signer: str | None, name: str) -> str:
    """The API server requires a signer's ClusterTrustBundles to be named `<signer with : for />:<...>`."""
    return f"{signer.replace('/', ':')}:{name}" if signer else name


def _source(index: int, source: Mapping[str, Any]) -> Source:
    field = f"sources[{index}]"
    kinds = [
        kind for kind in ("configMap", "secret", "inLine", "useDefaultCAs", "issuerRef") if kind in source
    ]
    if len(kinds) != 1:
        raise SpecError(field, "set exactly one of configMap, secret, inLine, useDefaultCAs or issuerRef")
    kind = kinds[0]
    if kind == "inLine":
        return InLineSource(source["inLine"])
    if kind == "useDefaultCAs":
        if source["useDefaultCAs"] is not True:
            raise SpecError(f"{field}.useDefaultCAs", "is true or absent")
        return DefaultCAsSource()
    if kind == "issuerRef":
        reference = source["issuerRef"]
        return IssuerSource(IssuerRef(reference["name"], IssuerKind(reference.get("kind") or "Issuer")))
    reference = source[kind]
    selector = reference.get("selector")
    if bool(reference.get("name")) == (selector is not None):
        raise SpecError(f"{field}.{kind}", "set exactly one of name or selector")
    include_all = bool(reference.get("includeAllKeys"))
    if include_all == bool(reference.get("key")):
        raise SpecError(f"{field}.{kind}", "set exactly one of key or includeAllKeys")
    parsed = (
        reference.get("name"),
        label_selector(selector) if selector is not None else None,
        reference.get("key"),
        include_all,
    )
    return ConfigMapSource(*parsed) if kind == "configMap" else SecretSource(*parsed)


def label_selector(selector: Mapping[str, Any]) -> LabelSelector:
    return LabelSelector(
        tuple(sorted((selector.get("matchLabels") or {}).items())),
        tuple(
            (expression["key"], expression["operator"], tuple(expression.get("values") or ()))
            for expression in selector.get("matchExpressions") or ()
        ),
    )
