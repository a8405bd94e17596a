"""A destination's settings per kind: which are required, which are secret, their forms."""

from __future__ import annotations

import re
from collections.abc import Mapping

from control.destinations import presets
from control.errors import Unprocessable
from control.settings import ControlSettings
from control.webhooks.service import clean_url

MAX_VALUE = 2048
_FORMS: dict[str, tuple[re.Pattern[str], str]] = {
    "measurement_id": (re.compile(r"^[A-Za-z0-9-]{1,64}$"), "a GA4 measurement id (G-…)"),
    "pixel_id": (re.compile(r"^[0-9]{1,32}$"), "a Meta pixel (dataset) id: digits"),
    "api_version": (re.compile(r"^v[0-9]{1,3}\.[0-9]{1,3}$"), "a Graph API version (v23.0)"),
    "test_event_code": (re.compile(r"^[A-Za-z0-9_-]{1,64}$"), "a test event code"),
}


def _invalid(field: str, detail: str) -> Unprocessable:
    return Unprocessable("invalid_config", detail, field=f"config.{field}")


def _url(settings: ControlSettings, name: str, value: str) -> str:
    try:
        return clean_url(value, settings)
    except Unprocessable as exc:
        raise _invalid(name, exc.detail) from None


def clean(
    settings: ControlSettings,
    kind: str,
    raw: Mapping[str, str | None],
    config: dict[str, str],
    secret_values: dict[str, str],
) -> tuple[dict[str, str], dict[str, str]]:
    """`raw` applied over the stored (`config`, `secret_values`); 422 invalid_config.

    A null value removes an optional setting; required ones must end up present.
    """
    spec = presets.KINDS[kind]
    config, secret_values = dict(config), dict(secret_values)
    for name, value in raw.items():
        if name not in spec.config and name not in spec.secrets:
            known = ", ".join((*spec.config, *spec.secrets)) or "none"
            raise _invalid(name, f"A {kind} destination has no {name!r} setting (known: {known}).")
        target = secret_values if name in spec.secrets else config
        if value is None:
            target.pop(name, None)
            continue
        value = value.strip()
        if not value or len(value) > MAX_VALUE:
            raise _invalid(name, f"A setting is 1 to {MAX_VALUE} characters.")
        if name in ("base_url", "webhook_url"):
            value = _url(settings, name, value)
        elif name in _FORMS:
            pattern, what = _FORMS[name]
            if not pattern.match(value):
                raise _invalid(name, f"{name} is {what}.")
        elif not value.isprintable() or not value.isascii():
            raise _invalid(name, f"{name} is visible ASCII text.")
        target[name] = value
    for name in (*spec.required_config, *spec.secrets):
        if name not in config and name not in secret_values:
            raise _invalid(name, f"A {kind} destination needs {name}.")
    return config, secret_values
