"""Commands other distributions add to `certsmith` (entry point group `certsmith.commands`): one that
cannot be loaded is reported and left out, and the operator's own commands still work."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from certsmith import cli


def test_a_command_that_cannot_load_is_reported_and_the_rest_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = EntryPoint(name="broken", value="certsmith_no_such_module:add", group="certsmith.commands")
    monkeypatch.setattr(cli, "entry_points", lambda group: [broken] if group == "certsmith.commands" else [])
    assert cli.main(["version"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().startswith("certsmith ")
    assert "cannot load the command 'broken' (certsmith_no_such_module:add)" in captured.err
    assert "reinstall" in captured.err
