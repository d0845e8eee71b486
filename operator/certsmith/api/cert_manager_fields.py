"""Reading a cert-manager manifest so that nothing is lost on the way: every field is taken with its
expected shape (a wrong shape is an error naming the field), and whatever was not taken is left over to
be reported. Notes say, with the field's path, what changed and how much it matters. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

_SHOWN = 24
"""At most this many characters of a wrongly shaped value are quoted back, and never one that may be a
credential or a key: those are described by their type only."""
_UNSHOWN = ("secret", "password", "token", "BEGIN")


class Severity(StrEnum):
    NOTE = "note"
    """Converted faithfully; something to know (exit 0)."""
    DROPPED = "dropped"
    """Converted, but a field or a behaviour of cert-manager's is not carried over (exit 5)."""
    REFUSED = "refused"
    """Not emitted: it would not work as certsmith's (exit 5)."""


@dataclass(frozen=True)
class Note:
    severity: Severity
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


class Refused(Exception):
    """The object cannot be converted into one that works; `path` names the field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class Malformed(Refused):
    """The input has the wrong shape at `path` (cert-manager's API server would refuse it too)."""

    def __init__(self, path: str, expected: str, given: object) -> None:
        super().__init__(path, f"expected {expected}, got {_shape(path, given)}; correct the manifest")


def _shape(path: str, value: object) -> str:
    if isinstance(value, str):
        hidden = len(value) > _SHOWN or any(word.lower() in f"{path} {value}".lower() for word in _UNSHOWN)
        return "a string" if hidden else f"the string {value!r}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


@dataclass
class Notes:
    items: list[Note] = field(default_factory=list)

    def note(self, path: str, message: str) -> None:
        self.items.append(Note(Severity.NOTE, path, message))

    def drop(self, path: str, message: str) -> None:
        self.items.append(Note(Severity.DROPPED, path, message))

    def leftovers(self, fields: Fields) -> None:
        """A note for every field of `fields` no converter took."""
        for key in fields.rest():
            self.drop(fields.at(key), "certsmith has no such field; dropped")


class Fields:
    """One mapping of the input at `path`. Every key read is remembered (`rest` is what was not). A
    value of null is the field's absence, as for the API server."""

    def __init__(self, value: object, path: str, expected: str = "a mapping") -> None:
        if not isinstance(value, Mapping):
            raise Malformed(path, expected, value)
        self.path = path
        self._data: Mapping[str, Any] = value
        self._taken: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return self._data.get(key) is not None

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def take(self, key: str) -> object:
        self._taken.add(key)
        return self._data.get(key)

    def rest(self) -> list[str]:
        return sorted(
            key for key, value in self._data.items() if key not in self._taken and value is not None
        )

    def text(self, key: str) -> str | None:
        value = self.take(key)
        if value is not None and not isinstance(value, str):
            raise Malformed(self.at(key), "a string", value)
        return value

    def texts(self, key: str) -> list[str] | None:
        value = self.take(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise Malformed(self.at(key), "a list of strings", value)
        return list(value)

    def flag(self, key: str) -> bool | None:
        value = self.take(key)
        if value is not None and not isinstance(value, bool):
            raise Malformed(self.at(key), "true or false", value)
        return value

    def number(self, key: str) -> int | None:
        value = self.take(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise Malformed(self.at(key), "a whole number", value)
        return value

    def labels(self, key: str) -> dict[str, str] | None:
        value = self.take(key)
        if value is None:
            return None
        if not isinstance(value, Mapping) or not all(
            isinstance(name, str) and isinstance(item, str) for name, item in value.items()
        ):
            raise Malformed(self.at(key), "a mapping of strings to strings", value)
        return dict(value)

    def fields(self, key: str, expected: str = "a mapping") -> Fields | None:
        value = self.take(key)
        return None if value is None else Fields(value, self.at(key), expected)

    def items(self, key: str, expected: str = "a mapping") -> list[Fields]:
        value = self.take(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise Malformed(self.at(key), f"a list, each item {expected}", value)
        return [Fields(item, f"{self.at(key)}[{index}]", expected) for index, item in enumerate(value)]


def put(target: dict[str, Any], key: str, value: object) -> None:
    """Set `key` unless `value` is absent (None)."""
    if value is not None:
        target[key] = value
