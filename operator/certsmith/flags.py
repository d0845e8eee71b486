"""How a setting appears on `certsmith run`'s command line: metadata of its dataclass field, such as
`workers: int = field(default=4, metadata=flag("--workers", help="..."))`. The command line makes a
flag of every field that has it (cli.py), with the field's type and default: adding a setting with
this metadata is all it takes to get its flag. Fields of a nested settings dataclass are read in turn."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

FLAG = "certsmith.flag"
"""The field metadata key."""


@dataclass(frozen=True)
class Flag:
    """The flag's names (`--x`, or `-x` and `--x`), its help (the default is appended when the flag
    takes a value) and the placeholder of its value in the help."""

    names: tuple[str, ...]
    help: str
    metavar: str | None = None


def flag(*names: str, help: str, metavar: str | None = None) -> Mapping[str, Flag]:
    """Field metadata that makes the setting a flag; booleans are switches (`--no-...` names turn a
    setting off, and a setting on by default gets both `--x` and `--no-x`)."""
    return {FLAG: Flag(names, help, metavar)}
