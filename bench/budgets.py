"""The budget in bench/budgets.toml, and the checks a bench run is judged by."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

BUDGETS_FILE = Path(__file__).with_name("budgets.toml")
PROFILES = ("full", "smoke")

Budgets = dict[str, dict[str, float]]


def load(profile: str = "full", path: Path = BUDGETS_FILE) -> Budgets:
    """Every section of the file; a profile other than "full" overlays its own tables."""
    data = tomllib.loads(path.read_text())
    budgets: Budgets = {
        name: {key: float(value) for key, value in table.items()}
        for name, table in data.items()
        if name not in PROFILES
    }
    if profile == "full":
        return budgets
    if profile not in data:
        raise ValueError(f"no profile {profile!r} in {path}")
    for name, table in data[profile].items():
        budgets.setdefault(name, {}).update({k: float(v) for k, v in table.items()})
    return budgets


@dataclass(frozen=True)
class Check:
    """One number held against one budget line."""

    name: str
    measured: float | None  # None: the run could not measure it (which fails the check)
    limit: float
    op: str  # "<=" or ">="
    unit: str = ""
    judged: bool = True  # False: shown for information, with `note` saying why
    note: str = ""

    @property
    def ok(self) -> bool:
        if not self.judged:
            return True
        if self.measured is None:
            return False
        if self.op == "<=":
            return self.measured <= self.limit
        return self.measured >= self.limit

    @property
    def verdict(self) -> str:
        if not self.judged:
            return "not judged"
        return "ok" if self.ok else "MISSED"

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "measured": self.measured,
            "limit": self.limit,
            "op": self.op,
            "unit": self.unit,
            "verdict": self.verdict,
            "note": self.note,
        }


def all_ok(checks: list[Check]) -> bool:
    return all(check.ok for check in checks)
