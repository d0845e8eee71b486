"""Where the dev tooling finds its files: data shipped inside this package (so an installed
certsmith-devtools works from any folder), and the operator's source tree, which the image and kind
builders are given explicitly because they build the operator from a checkout."""

from __future__ import annotations

from pathlib import Path

_DATA = Path(__file__).with_name("data")
CRDS = _DATA / "crds"
"""certsmith's CRDs and admission policies (the repository's crds/)."""
INSTALL = _DATA / "install.yaml"
"""What deploy/ installs, rendered into one file (the repository's deploy/install.yaml)."""
DEMO = _DATA / "demo.yaml"
"""The demo certificate chain (the repository's docs/demo/chain.yaml)."""
MONITORING_RULES = _DATA / "monitoring-rules.yaml"
"""The shipped alert rules (the repository's deploy/monitoring/rules.yaml)."""
INVALID_EXAMPLES = _DATA / "invalid-examples"
"""Manifests the API rejects, one per rule (the repository's docs/examples/invalid/)."""


class SourceTreeError(ValueError):
    """A folder given as certsmith's source tree is not one."""


def source_tree(path: Path) -> Path:
    """`path`, checked to be a checkout of certsmith (its Dockerfile, pyproject.toml and operator/)."""
    tree = path.resolve()
    missing = [
        name for name in ("Dockerfile", "pyproject.toml", "operator/certsmith") if not (tree / name).exists()
    ]
    if missing:
        raise SourceTreeError(
            f"{tree} is not certsmith's source tree (no {', '.join(missing)}): run from the top of a "
            f"checkout, or name one (python -m certsmith_devtools.kind takes --source DIR)"
        )
    return tree
