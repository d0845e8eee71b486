#!/usr/bin/env python3
"""Write crds/clusterissuer.yaml from crds/issuer.yaml: the same schema, cluster-scoped.

Run after editing crds/issuer.yaml (`make crds`); a unit test fails while the two differ.
"""

from pathlib import Path

HACK = Path(__file__).resolve().parent
CRDS = HACK.parent / "crds"
POLICY_ANCHOR = "              properties:\n                selfSigned:\n"
"""Where spec's properties begin in crds/issuer.yaml: spec.issuancePolicy goes first among them."""

REPLACEMENTS = (
    ("name: issuers.certsmith.dev", "name: clusterissuers.certsmith.dev"),
    ("scope: Namespaced", "scope: Cluster"),
    ("kind: Issuer\n", "kind: ClusterIssuer\n"),
    ("listKind: IssuerList", "listKind: ClusterIssuerList"),
    ("plural: issuers", "plural: clusterissuers"),
    ("singular: issuer", "singular: clusterissuer"),
    (
        "An Issuer signs certificates for Certificates in its own namespace:",
        "A ClusterIssuer signs certificates for Certificates in every namespace:",
    ),
)


def render(issuer_crd: str, issuance_policy: str) -> str:
    rendered = issuer_crd
    for old, new in (*REPLACEMENTS, (POLICY_ANCHOR, _with_policy(issuance_policy))):
        if old not in rendered:
            raise SystemExit(f"crds/issuer.yaml no longer contains {old!r}; update {__file__}")
        rendered = rendered.replace(old, new, 1)
    header = "# Generated from issuer.yaml by hack/render-clusterissuer-crd.py; edit that file instead.\n"
    return header + rendered


def _with_policy(issuance_policy: str) -> str:
    """POLICY_ANCHOR with the schema of spec.issuancePolicy (its comments dropped) before selfSigned."""
    lines = [line for line in issuance_policy.splitlines() if line and not line.startswith("#")]
    properties, self_signed = POLICY_ANCHOR.splitlines(keepends=True)
    return properties + "".join(f"                {line}\n" for line in lines) + self_signed


if __name__ == "__main__":
    (CRDS / "clusterissuer.yaml").write_text(
        render((CRDS / "issuer.yaml").read_text(), (HACK / "clusterissuer-issuance-policy.yaml").read_text())
    )
