"""The CRD files themselves: every field documented, ClusterIssuer in step with Issuer, examples annotated."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from certsmith.kube.crds import load_crds
from tests.conftest import REPO

CRDS = load_crds(REPO / "crds")
CRD_OF = {crd["spec"]["names"]["kind"]: crd for crd in CRDS}


def _undocumented(schema: dict[str, Any], path: str) -> Iterator[str]:
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}"
        if name != "metadata" and not child.get("description"):
            yield child_path
        yield from _undocumented(child, child_path)
    if "items" in schema:
        yield from _undocumented(schema["items"], f"{path}[]")


@pytest.mark.parametrize("crd", CRDS, ids=lambda crd: crd["spec"]["names"]["kind"])
def test_every_field_has_a_description(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["description"]
    assert list(_undocumented(schema, crd["spec"]["names"]["kind"])) == []


@pytest.mark.parametrize("crd", CRDS, ids=lambda crd: crd["spec"]["names"]["kind"])
def test_crd_is_in_the_certsmith_category_without_short_names(crd: dict[str, Any]) -> None:
    assert crd["spec"]["names"]["categories"] == ["certsmith"]
    assert "shortNames" not in crd["spec"]["names"], "short names would collide with cert-manager's"


def test_clusterissuer_crd_is_rendered_from_the_issuer_crd() -> None:
    spec = importlib.util.spec_from_file_location("render", REPO / "hack" / "render-clusterissuer-crd.py")
    assert spec
    assert spec.loader
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    rendered = render.render(
        (REPO / "crds" / "issuer.yaml").read_text(),
        (REPO / "hack" / "clusterissuer-issuance-policy.yaml").read_text(),
    )
    assert (REPO / "crds" / "clusterissuer.yaml").read_text() == rendered, "run `make crds`"


@pytest.mark.parametrize("path", sorted((REPO / "docs" / "examples").rglob("*.yaml")), ids=lambda p: p.stem)
def test_example_is_one_certsmith_object_with_a_comment(path: Path) -> None:
    text = path.read_text()
    documents = list(yaml.safe_load_all(text))
    assert len(documents) == 1
    assert documents[0]["apiVersion"] == "certsmith.dev/v1alpha1"
    assert text.startswith("# ")
    if path.parent.name == "invalid":
        assert "# expect-field: " in text
        assert "# expect-message: " in text


INVALID = sorted((REPO / "docs" / "examples" / "invalid").glob("*.yaml"))


def _header(text: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(f"# {name}:"))


def _rules(schema: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
    """(field path, what an example must show) for each CEL rule and each enum of a schema."""
    for rule in schema.get("x-kubernetes-validations", ()):
        yield path + rule.get("fieldPath", ""), " ".join(rule["message"].split())
    if "enum" in schema:
        yield path, "Unsupported value"
    for name, child in schema.get("properties", {}).items():
        yield from _rules(child, f"{path}.{name}")
    if "items" in schema:
        yield from _rules(schema["items"], f"{path}[]")


def _examples(kinds: set[str]) -> list[tuple[str, str]]:
    """(field path with list indices dropped, expected message) of the invalid examples of `kinds`."""
    found = []
    for path in INVALID:
        text = path.read_text()
        if yaml.safe_load(text)["kind"] in kinds:
            field = re.sub(r"\[[0-9]+\]", "[]", _header(text, "expect-field"))
            found.append((field, _header(text, "expect-message")))
    return found


@pytest.mark.parametrize(
    ("crd", "kinds"),
    [
        (CRD_OF["Certificate"], {"Certificate"}),
        (CRD_OF["Issuer"], {"Issuer", "ClusterIssuer"}),
        (CRD_OF["Bundle"], {"Bundle"}),
    ],
    ids=["Certificate", "Issuer", "Bundle"],
)
def test_every_rule_of_the_crd_has_an_invalid_example(crd: dict[str, Any], kinds: set[str]) -> None:
    """Each CEL rule and enum is exercised by an example that the cluster test applies for real."""
    assert crd["spec"]["names"]["kind"] in kinds
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    examples = _examples(kinds)
    missing = [
        f"{field}: {message}"
        for field, message in _rules(schema, "spec")
        if not any(field == seen_field and expected in message for seen_field, expected in examples)
    ]
    assert not missing, "rules without an example in docs/examples/invalid/:\n" + "\n".join(missing)
