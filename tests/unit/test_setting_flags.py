"""`certsmith run`'s flags are made from OperatorSettings' field metadata: every flagged field, nested
ones included, can be set from the command line, and no flag means the field's own default."""

from __future__ import annotations

import datetime
from dataclasses import fields, is_dataclass
from typing import Any, get_type_hints

import pytest

from certsmith.cli import _parser, _settings, main
from certsmith.flags import FLAG, Flag
from certsmith.settings import OperatorSettings


def _flagged(settings: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Flag, Any, Any]]:
    """(path, flag, type, default) of each flagged field, depth first."""
    found = []
    types = get_type_hints(type(settings))
    for setting in fields(settings):
        value = getattr(settings, setting.name)
        if is_dataclass(value):
            found += _flagged(value, (*path, setting.name))
        elif FLAG in setting.metadata:
            found.append(((*path, setting.name), setting.metadata[FLAG], types[setting.name], value))
    return found


FLAGGED = _flagged(OperatorSettings())


def _run_settings(*arguments: str) -> OperatorSettings:
    parsed = _parser().parse_args(["run", *arguments])
    settings: OperatorSettings = _settings(parsed, OperatorSettings())
    return settings


def _value_at(settings: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        settings = getattr(settings, name)
    return settings


def _other_value(kind: Any, default: Any) -> tuple[list[str], Any]:
    """Command-line words for a value unlike `default`, and the value they should give."""
    if kind is int:
        return [str(default + 7)], default + 7
    if kind is float:
        return [str(default + 1.5)], default + 1.5
    if kind is datetime.timedelta:
        return ["2h30m"], datetime.timedelta(hours=2, minutes=30)
    if kind in (str, str | None):
        return ["other/value"], "other/value"
    raise AssertionError(f"no test value for a setting of type {kind}: extend _other_value")


def test_no_flags_give_the_settings_defaults() -> None:
    assert _run_settings() == OperatorSettings()


def test_the_settings_have_their_flags() -> None:
    names = {name for _, described, _, _ in FLAGGED for name in described.names}
    assert {"--workers", "--backoff-initial", "--backoff-max", "--namespace", "--auto-approve"} <= names


@pytest.mark.parametrize(
    ("path", "described", "kind", "default"), FLAGGED, ids=[".".join(path) for path, *_ in FLAGGED]
)
def test_each_flag_sets_its_setting_and_only_it(
    path: tuple[str, ...], described: Flag, kind: Any, default: Any
) -> None:
    name = described.names[-1]
    expected: Any
    if default == ():
        words, expected = [described.names[0], "a", name, "b"], ("a", "b")
    elif kind is bool:
        turns_off = name if name.startswith("--no-") else f"--no-{name.removeprefix('--')}"
        words, expected = [turns_off if default else name], not default
    else:
        values, expected = _other_value(kind, default)
        words = [name, *values]
    settings = _run_settings(*words)
    assert _value_at(settings, path) == expected
    defaults = OperatorSettings()
    changed = [other for other, *_ in FLAGGED if _value_at(settings, other) != _value_at(defaults, other)]
    assert changed == [path]


def test_the_help_shows_the_flags_with_their_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "--backoff-initial DURATION" in text
    assert "(default: 0h1m0s)" in text
    assert "--auto-approve, --no-auto-approve" in text
