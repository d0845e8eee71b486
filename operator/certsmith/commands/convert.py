"""`certsmith convert`: cert-manager manifests in, certsmith manifests out (stdout), and a line on
stderr for every field that could not be carried over."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from certsmith.api.cert_manager import convert, is_cert_manager
from certsmith.commands.common import CommandError, ExitCode


def convert_files(paths: list[Path], out: TextIO = sys.stdout) -> int:
    """Convert each document of `paths` (stdin for "-"); others pass through unchanged. Exit 5 when a
    field, a solver or a whole issuer could not be converted (each said on stderr)."""
    converted: list[dict[str, Any]] = []
    incomplete = False
    for path in paths:
        where = "stdin" if str(path) == "-" else str(path)
        try:
            text = sys.stdin.read() if str(path) == "-" else path.read_text()
            documents = [document for document in yaml.safe_load_all(text) if document]
        except (OSError, yaml.YAMLError) as error:
            raise CommandError(ExitCode.FAILED, f"{where}: {error}") from None
        for index, document in enumerate(documents):
            if not isinstance(document, dict) or not is_cert_manager(document):
                converted.append(document)
                continue
            result = convert(document)
            name = f"{document.get('kind')} {(document.get('metadata') or {}).get('name')}"
            for note in result.notes:
                print(f"certsmith convert: {where}, document {index + 1} ({name}): {note}", file=sys.stderr)
                incomplete = True
            if result.manifest is not None:
                converted.append(result.manifest)
    yaml.safe_dump_all(converted, out, sort_keys=False)
    return ExitCode.INCOMPLETE if incomplete else ExitCode.OK
