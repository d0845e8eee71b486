"""Helm and kube-score, built from their Go modules into the cache once per version.

The chart's tests (`helm lint`, `helm template`, installs into the test clusters) and the manifest
lint (kube-score on deploy/install.yaml and on the chart's rendering) use these, so a clean clone
needs Go and the module proxy once and nothing afterwards. `python -m certsmith_devtools.charttools`
builds both (`make test` does, before the tests).
"""

from __future__ import annotations

from pathlib import Path

from certsmith_devtools.build import (
    Progress,
    build_cached,
    build_go_module,
    default_cache_dir,
    print_progress,
)
from certsmith_devtools.versions import HELM_VERSION, KUBE_SCORE_VERSION


def cached_helm(cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / f"helm-{HELM_VERSION}" / "bin" / "helm"


def cached_kube_score(cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / f"kube-score-{KUBE_SCORE_VERSION}" / "bin" / "kube-score"


def ensure_helm(cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """The `helm` command of HELM_VERSION, built from helm.sh/helm/v4 the first time."""
    helm = cached_helm(cache_dir)

    def build(go: str, work: Path, staged: Path) -> None:
        (progress or print_progress)(f"certsmith: building helm {HELM_VERSION} (first run only)")
        build_go_module(
            go,
            work / "helm",
            f"helm.sh/helm/v4 {HELM_VERSION}",
            ["helm.sh/helm/v4/cmd/helm"],
            staged,
            ldflags=f"-X helm.sh/helm/v4/internal/version.version={HELM_VERSION}"
            " -X helm.sh/helm/v4/internal/version.metadata=",
        )

    if not helm.is_file():
        build_cached(helm.parent, helm.is_file, build)
    return helm


def ensure_kube_score(cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """The `kube-score` command of KUBE_SCORE_VERSION, built from github.com/zegl/kube-score the first
    time."""
    kube_score = cached_kube_score(cache_dir)

    def build(go: str, work: Path, staged: Path) -> None:
        (progress or print_progress)(f"certsmith: building kube-score {KUBE_SCORE_VERSION} (first run only)")
        build_go_module(
            go,
            work / "kube-score",
            f"github.com/zegl/kube-score {KUBE_SCORE_VERSION}",
            ["github.com/zegl/kube-score/cmd/kube-score"],
            staged,
            ldflags=f"-X main.version={KUBE_SCORE_VERSION.removeprefix('v')}",
        )

    if not kube_score.is_file():
        build_cached(kube_score.parent, kube_score.is_file, build)
    return kube_score


def main() -> None:
    print(ensure_helm())
    print(ensure_kube_score())


if __name__ == "__main__":
    main()
