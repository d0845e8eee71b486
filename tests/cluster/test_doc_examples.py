"""Every YAML example in README.md and docs/ is accepted by the API server (a server-side dry run), so
an example cannot drift from the API: fenced yaml blocks, the manifests in the sh blocks' heredocs
(`kubectl apply -f - <<EOF`), and docs/demo/. docs/examples/ are created for real by test_crds.py.

Namespaced objects go to the test's namespace (a dry run creates no namespace for the next document).
"""

from __future__ import annotations

import base64
import re
import subprocess
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import Encoding

from certsmith.pki.keys import KeyAlgorithm, KeySpec, generate_private_key
from certsmith.pki.request import CertificateTemplate, build_csr
from tests.conftest import REPO, Cluster

pytestmark = pytest.mark.cluster

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_HEREDOC = re.compile(r"<<\s*'?EOF'?[^\n]*\n(.*?)^\s*EOF$", re.MULTILINE | re.DOTALL)
_CLUSTER_SCOPED = {
    "Namespace",
    "ClusterIssuer",
    "Bundle",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
}


def _csr_base64() -> str:
    key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    csr = build_csr(CertificateTemplate(common_name="app.example", dns_names=("app.example",)), key)
    return base64.b64encode(csr.public_bytes(Encoding.PEM)).decode()


SUBSTITUTIONS = {"$(base64 -w0 app.csr)": _csr_base64()}
"""What the shell would put in place of a command substitution in a heredoc, for the examples that
have one; any other substitution fails the test (so a new one is seen)."""


def _examples() -> list[tuple[str, str]]:
    """(where, YAML text) of every example."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        text = path.read_text()
        for fence in _FENCE.finditer(text):
            line = text[: fence.start()].count("\n") + 1
            where = f"{path.relative_to(REPO)}:{line}"
            language, body = fence.group(1), fence.group(2)
            if language == "yaml":
                found.append((where, body))
            elif language == "sh":
                found += [(where, heredoc.group(1)) for heredoc in _HEREDOC.finditer(body)]
    found += [
        (str(path.relative_to(REPO)), path.read_text())
        for path in sorted((REPO / "docs" / "demo").glob("*.yaml"))
    ]
    return found


EXAMPLES = _examples()


def test_the_readme_has_examples_to_check() -> None:
    wheres = [where for where, _ in EXAMPLES]
    assert sum(where.startswith("README.md") for where in wheres) >= 3, wheres


def _substituted(where: str, text: str) -> str:
    for shell, value in SUBSTITUTIONS.items():
        text = text.replace(shell, value)
    assert "$(" not in text, (
        f"{where}: a command substitution the test does not know; add it to SUBSTITUTIONS"
    )
    return text


@pytest.mark.parametrize(("where", "text"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_example_is_accepted_by_the_api_server(
    cluster: Cluster, namespace: str, where: str, text: str
) -> None:
    documents: list[dict[str, Any]] = [
        document for document in yaml.safe_load_all(_substituted(where, text)) if isinstance(document, dict)
    ]
    assert documents, f"{where}: no manifest"
    for document in documents:
        if document.get("kind") not in _CLUSTER_SCOPED:
            document.setdefault("metadata", {})["namespace"] = namespace
    applied = subprocess.run(
        [
            str(cluster.kubectl),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "apply",
            "--dry-run=server",
            "-f",
            "-",
        ],
        input=yaml.safe_dump_all(documents),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert applied.returncode == 0, f"{where}: the API server refused the example: {applied.stderr}"
    assert applied.stdout.count("(server dry run)") == len(documents), applied.stdout
