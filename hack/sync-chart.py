#!/usr/bin/env python3
"""Copy into charts/certsmith/ the files the chart shares with crds/ and deploy/: the CRDs into its
crds/ (Helm installs them first and never deletes them), X
rules and dashboard into its files/ (its templates read them with .Files.Get, since a chart cannot
reach outside its directory).

    python hack/sync-chart.py          # copy
    python hack/sync-chart.py --check  # fail if a copy differs from its source

Edit the sources, never the copies.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "certsmith"
CRDS = ("certificate", "certificaterequest", "issuer", "clusterissuer", "bundle")


def copies() -> dict[Path, Path]:
    """Each copy in the chart and its source."""
    pairs = {CHART / "crds" / f"{name}.yaml": REPO / "crds" / f"{name}.yaml" for name in CRDS}
    for name in ("approval-policy.yaml", "issuance-policy.yaml"):
        pairs[CHART / "files" / name] = REPO / "crds" / name
    for name in ("rules.yaml", "dashboard.json"):
        pairs[CHART / "files" / name] = REPO / "deploy" / "monitoring" / name
    return pairs


def main() -> int:
    stale = [
        copy
        for copy, source in copies().items()
        if not copy.exists() or copy.read_bytes() != source.read_bytes()
    ]
    if "--check" in sys.argv:
        for copy in stale:
            print(
                f"{copy.relative_to(REPO)} differs from its source; run hack/sync-chart.py", file=sys.stderr
            )
        return 1 if stale else 0
    for copy in stale:
        copy.write_bytes(copies()[copy].read_bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
