"""The README's configuration table and command list stay true to the code."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from control.settings import ControlSettings
from edge.settings import EdgeSettings
from ricochet.cli import main
from shared.settings import env_name

README = (Path(__file__).parents[2] / "README.md").read_text()


@pytest.mark.parametrize(
    "name",
    sorted(
        {
            env_name(f.name)
            for cls in (ControlSettings, EdgeSettings)
            for f in msgspec.structs.fields(cls)
        }
    ),
)
def test_every_setting_is_in_the_readme_table(name: str) -> None:
    assert f"`{name}`" in README


def _commands(group: object, prefix: str = "") -> list[str]:
    import click

    assert isinstance(group, click.Group)
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names.extend(_commands(command, f"{prefix}{name} "))
        else:
            names.append(f"{prefix}{name}")
    return names


@pytest.mark.parametrize("command", _commands(main))
def test_every_command_is_in_the_readme_and_has_help(command: str) -> None:
    assert f"`ricochet {command}" in README
    result = CliRunner().invoke(main, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_every_route_is_in_the_readme() -> None:
    from control.app import OPERATIONS

    missing = [
        f"{op.method} {op.path}" for op in OPERATIONS if f"`{op.method} {op.path}`" not in README
    ]
    assert missing == []
