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
from typing import Any, TypeVar, get_type_hints

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


def _raw(name: str, env: Mapping[str, str], problems: list[str]) -> str | None:
    # Empty means unset, so that `RICOCHET_X=` in a shell does not become "" silently.
    direct = env.get(name) or None
    file_name = name + "_FILE"
    path = env.get(file_name) or None
    if direct is not None and path is not None:
        problems.append(f"{name} and {file_name} are both set; set only one")
        return None
    if path is None:
        return direct
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        problems.append(f"{file_name}: cannot read {path!r} ({exc.strerror})")
    except UnicodeDecodeError:
        problems.append(f"{file_name}: {path!r} is not UTF-8 text")
    return None


def load_settings(cls: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Build `cls` from the environment; raise `SettingsError` listing every problem."""
    env = os.environ if environ is None else environ
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in msgspec.structs.fields(cls):
        name = env_name(field.name)
        raw = _raw(name, env, problems)
        if raw is None:
            if field.required and not any(p.startswith(name) for p in problems):
                problems.append(f"{name} is required")
            continue
        try:
            values[field.name] = msgspec.convert(raw, hints[field.name], strict=False)
        except msgspec.ValidationError as exc:
            problems.append(f"{name}: {str(exc).split(' - at ')[0]} (got {raw!r})")
    if problems:
        raise SettingsError(problems)
    settings = cls(**values)
    check = getattr(settings, "validate", None)
    if callable(check) and (more := check()):
        raise SettingsError(list(more))
    return settings
