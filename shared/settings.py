"""Read `RICOCHET_*` environment variables once into a frozen, typed settings struct.

Each process defines its own `msgspec.Struct(frozen=True)` and calls `load_settings` at
start-up. A field `redis_url` is read from `RICOCHET_REDIS_URL`; any field may instead come
from a file named by `RICOCHET_REDIS_URL_FILE` (for secrets mounted by an orchestrator).
Values are converted with msgspec's lax rules ("8080" -> 8080, "true" -> True), and every
problem is reported at once, naming the variable, so a bad deploy fails at start, clearly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

PREFIX = "RICOCHET_"
S = TypeVar("S", bound=msgspec.Struct)


class SettingsError(Exception):
    """Configuration is missing or invalid; the message names each offending variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def _raw_values(
    cls: type[msgspec.Struct], environ: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in msgspec.structs.fields(cls):
        name = env_name(field.name)
        file_name = name + "_FILE"
        if name in environ and file_name in environ:
            problems.append(f"{name} and {file_name} are both set; set only one")
        elif name in environ:
            values[field.name] = environ[name]
        elif file_name in environ:
            try:
                values[field.name] = Path(environ[file_name]).read_text().strip()
            except OSError as exc:
                problems.append(f"{file_name}: cannot read {environ[file_name]!r} ({exc.strerror})")
    return values, problems


def load_settings(cls: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Build `cls` from the environment; raise `SettingsError` listing every problem."""
    env = os.environ if environ is None else environ
    values, problems = _raw_values(cls, env)
    # Empty strings mean "unset" so that `RICOCHET_X=` in a shell does not become "" silently.
    values = {k: v for k, v in values.items() if v != ""}
    if problems:
        raise SettingsError(problems)
    try:
        settings = msgspec.convert(values, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError([_explain(exc)]) from None
    check = getattr(settings, "validate", None)
    if callable(check):
        more = check()
        if more:
            raise SettingsError(list(more))
    return settings


def _explain(exc: msgspec.ValidationError) -> str:
    # msgspec says e.g. "Expected `int`, got `str` - at `$.edge_port`"; name the variable.
    text = str(exc)
    head, sep, where = text.rpartition(" - at `$.")
    if sep:
        field = where.rstrip("`").split(".")[0].split("[")[0]
        return f"{env_name(field)}: {head}"
    if text.startswith("Object missing required field `"):
        field = text.split("`")[1]
        return f"{env_name(field)} is required"
    return text
