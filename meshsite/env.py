"""Typed readers for environment variables.

Every station knob is an environment variable. Each reader raises `ImproperlyConfigured`
naming the variable, the bad value and what is accepted, so a typo stops the station at once
with a message an operator can act on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value if value != "" else None


def _fail(name: str, value: str, accepted: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not valid: expected {accepted}.")


def env_str(name: str, default: str | None = None) -> str | None:
    value = _raw(name)
    return default if value is None else value


def env_file_or_str(name: str, default: str | None = None) -> str | None:
    """`NAME` or, for secrets, `NAME_FILE` holding the value (its first line)."""
    path = _raw(f"{name}_FILE")
    if path is not None:
        try:
            return Path(path).read_text().splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise ImproperlyConfigured(
                f"{name}_FILE={path!r} could not be read: {exc}. Point it at a readable file "
                "whose first line holds the value."
            ) from exc
    return env_str(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _fail(name, value, "one of on/off, true/false, yes/no, 1/0")


def env_int(name: str, default: int, *, minimum: int | None = None,
            maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value, 10)
    except ValueError:
        number = None
    low = "-inf" if minimum is None else str(minimum)
    high = "inf" if maximum is None else str(maximum)
    accepted = f"an integer from {low} to {high}"
    if number is None:
        raise _fail(name, value, accepted)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _fail(name, value, accepted)
    return number


def env_float(name: str, default: float, *, minimum: float | None = None,
              maximum: float | None = None) -> float:
    value = _raw(name)
    if value is None:
        return default
    accepted = f"a number from {minimum if minimum is not None else '-inf'} to " \
               f"{maximum if maximum is not None else 'inf'}"
    try:
        number = float(value)
    except ValueError as exc:
        raise _fail(name, value, accepted) from exc
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _fail(name, value, accepted)
    return number


def env_choice(name: str, default: str, choices: Iterable[str]) -> str:
    options = list(choices)
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in options:
        return value.lower()
    raise _fail(name, value, "one of " + ", ".join(options))


def env_list(name: str, default: list[str]) -> list[str]:
    """Comma-separated list; empty items are dropped."""
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    value = _raw(name)
    if value is None:
        return default
    path = Path(value).expanduser()
    if "\x00" in value:
        raise _fail(name, value, "a filesystem path")
    return path.resolve()


def env_url(name: str, schemes: Iterable[str], default: str | None = None) -> str | None:
    allowed = list(schemes)
    value = _raw(name)
    if value is None:
        return default
    parsed = urlparse(value)
    if parsed.scheme not in allowed:
        raise _fail(name, value, "a URL with scheme " + " or ".join(f"{s}://" for s in allowed))
    return value
