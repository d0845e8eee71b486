"""zlint, the X.509 linter of the certificate-kinds test, built from its Go module into the cache."""

from __future__ import annotations

from pathlib import Path

from certsmith_devtools.build import (
    Progress,
    build_cached,
    build_go_module,
    default_cache_dir,
    print_progress,
)
from certsmith_devtools.versions import ZLINT_VERSION

MODULE = "github.com/zmap/zlint/v3"


def ensure_zlint(cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """The `zlint` command of ZLINT_VERSION, built from its module the first time."""
    zlint = (cache_dir or default_cache_dir()) / f"zlint-{ZLINT_VERSION}" / "bin" / "zlint"

    def build(go: str, work: Path, staged: Path) -> None:
        (progress or print_progress)(f"certsmith: building zlint {ZLINT_VERSION} (first run only)")
        build_go_module(go, work / "zlint", f"{MODULE} {ZLINT_VERSION}", [f"{MODULE}/cmd/zlint"], staged)

    if not zlint.is_file():
        build_cached(zlint.parent, zlint.is_file, build)
    return zlint


if __name__ == "__main__":
    print(ensure_zlint())
