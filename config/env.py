"""Read settings from the environment: one helper per type, each failing loudly on nonsense."""

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    """Return the variable, or `default` when it is unset."""
    return os.environ.get(name, default)


def env_required(name: str) -> str:
    """Return the variable; refuse to start when it is unset or empty."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"The environment variable {name} is required.")
    return value


def env_bool(name: str, default: bool) -> bool:
    """Return `true`/`false` (and 1/0, yes/no, on/off) as a bool."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


# The longest duration a setting may give, in seconds: a deadline this far away is still a
# date every part can represent (Python's datetime ends at year 9999).
MAX_SECONDS = 100 * 365 * 24 * 3600


def env_seconds(name: str, default: int, *, minimum: int = 0) -> int:
    """Return a duration in seconds, at least `minimum` and at most MAX_SECONDS (about 100 years).

    A longer one is refused at start-up: its deadlines could not be represented, and a
    sign-in would fail after its session had been committed.
    """
    return env_int(name, default, minimum=minimum, maximum=MAX_SECONDS)


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    """Return a whole number no smaller than `minimum` (and no larger than `maximum`)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}.")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    """Return a comma-separated list without blanks."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_rate(name: str, default: str) -> tuple[int, int] | None:
    """Return a rate `N/SECONDS` as (N, SECONDS), or None when it is `off`."""
    raw = os.environ.get(name, default).strip().lower()
    if raw in {"off", "none", "0"}:
        return None
    try:
        count, seconds = (int(part) for part in raw.split("/"))
    except ValueError:
        raise ImproperlyConfigured(f"{name} must look like 10/60 (attempts per seconds) or off.") from None
    if count < 1 or seconds < 1:
        raise ImproperlyConfigured(f"{name} must have a positive count and window.")
    return count, seconds


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """Return one of `choices`, matched ignoring case and returned in its listed spelling."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    for choice in choices:
        if raw.strip().lower() == choice.lower():
            return choice
    raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {raw!r}.")
