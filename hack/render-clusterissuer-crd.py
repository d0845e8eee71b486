#!/usr/bin/env python3
"""Write crds/clusterissuer.yaml from crds/issuer.yaml: the same schema, cluster-scoped.

Run after editing crds/issuer.yaml (`make crds`); a unit test fails while the two differ.
"""

from pathlib import Path

CRDS = Path(__file__).resolve().parent.parent / "crds"

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


def render(issuer_crd: str) -> str:
    rendered = issuer_crd
    for old, new in REPLACEMENTS:
        if old not in rendered:
            raise SystemExit(f"crds/issuer.yaml no longer contains {old!r}; update {__file__}")
        rendered = rendered.replace(old, new, 1)
    header = "# Generated from issuer.yaml by hack/render-clusterissuer-crd.py; edit that file instead.\n"
    return header + rendered


if __name__ == "__main__":
    (CRDS / "clusterissuer.yaml").write_text(render((CRDS / "issuer.yaml").read_text()))
