"""`certsmith convert`: cert-manager and trust-manager manifests in, certsmith manifests out (stdout),
and a line on stderr for every field that was not carried over as it was, and every object refused."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from certsmith.api.cert_manager import convert_all, is_cert_manager
from certsmith.api.trust_manager import convert_bundle, is_trust_manager
from certsmith.commands.common import CommandError, ExitCode


@dataclass(frozen=True)
class Document:
    """One object read: where it was (file, document, List item) and its body."""

    where: str
    body: Any

    def __str__(self) -> str:
        metadata = self.body.get("metadata") if isinstance(self.body, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        return f"{self.where} ({self.body.get('kind')} {name})"


def convert_files(paths: list[Path], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Convert each document of `paths` (stdin for "-"; a List's items one by one); others pass through
    unchanged. Exit 5 when a field or a behaviour was not carried over or an object was refused (each
    said on `err`, with its path); notes that change nothing of what was asked leave it 0."""
    documents = [document for path in paths for document in read_documents(path)]
    ours = [
        document
        for document in documents
        if isinstance(document.body, dict) and is_cert_manager(document.body)
    ]
    results = dict(zip(map(id, ours), convert_all([document.body for document in ours]), strict=True))
    for document in documents:
        if isinstance(document.body, dict) and is_trust_manager(document.body):
            results[id(document)] = convert_bundle(document.body)
    emitted: list[Any] = []
    incomplete = False
    for document in documents:
        result = results.get(id(document))
        if result is None:
            emitted.append(document.body)
            continue
        for note in result.notes:
            print(f"certsmith convert: {document}: {note}", file=err)
        incomplete = incomplete or not result.faithful
        if result.manifest is not None:
            emitted.append(result.manifest)
    yaml.safe_dump_all(emitted, out, sort_keys=False)
    return ExitCode.INCOMPLETE if incomplete else ExitCode.OK


def read_documents(path: Path) -> list[Document]:
    """Each document of `path` (stdin for "-"), a List's items one by one."""
    where = "stdin" if str(path) == "-" else str(path)
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        bodies = [body for body in yaml.safe_load_all(text) if body]
    except (OSError, yaml.YAMLError) as error:
        raise CommandError(ExitCode.FAILED, f"{where}: {error}") from None
    documents: list[Document] = []
    for index, body in enumerate(bodies, start=1):
        items = body.get("items") if isinstance(body, dict) and body.get("kind") == "List" else None
        if isinstance(items, list):
            documents.extend(
                Document(f"{where}, document {index}, item {number}", item)
                for number, item in enumerate(items, start=1)
            )
        else:
            documents.append(Document(f"{where}, document {index}", body))
    return documents
