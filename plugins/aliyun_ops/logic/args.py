"""Checks of operator arguments, pure: numbers rendered from templates, counts and waits. Each raises ValueError
before any API call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from .budget import ErrorBudget, check_concurrency, resolve_count
from .provenance import RETENTION_DAYS_MAX


def as_number(value: Any) -> Any:
    """``"15"`` -> ``15.0`` for values rendered from templates without native rendering; others unchanged."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def check_wait_args(poll_interval: Any, wait_timeout: Any) -> None:
    """``poll_interval`` a positive number of seconds; ``wait_timeout`` one too, or None (no deadline)."""
    if not isinstance(poll_interval, (int, float)) or poll_interval <= 0:
        raise ValueError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
    if wait_timeout is not None and (not isinstance(wait_timeout, (int, float)) or wait_timeout <= 0):
        raise ValueError(f"wait_timeout must be a positive number of seconds or None, got {wait_timeout!r}")


def check_count(value: Any, name: str, *, minimum: int = 0) -> None:
    """Validate a ``concurrency``/``max_errors`` value (number or percentage) before any call."""
    resolve_count(value, 100, name=name, minimum=minimum)


def check_lease_wait(value: Any) -> float:
    """``lease_wait`` (seconds, a number >= 0, maybe rendered as a string) as a float; ValueError otherwise."""
    wait = as_number(value if value is not None else 0)
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0:
        raise ValueError(f"lease_wait must be a number of seconds >= 0, got {value!r}")
    return float(wait)


def is_templated(value: Any) -> bool:
    """True when ``value`` will only be known at run time (Jinja string or XComArg)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return hasattr(value, "resolve") or type(value).__name__.endswith("XComArg")


def all_static(*values: Any) -> bool:
    """None of ``values`` is templated: they can be checked when the task is built."""
    return not any(is_templated(v) for v in values)


def check_batch_args(concurrency: Any, max_errors: Any) -> None:
    """ValueError unless ``concurrency`` >= 1 and ``max_errors`` are a count or a percentage."""
    check_concurrency(concurrency)
    ErrorBudget.of(max_errors, 100)


def check_seconds(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    """A positive number of seconds (or a timedelta) as a float; None when allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number of seconds, not a boolean")
    try:
        number = float(value.total_seconds() if isinstance(value, timedelta) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return number


def check_retention_days(value: Any) -> int | None:
    """An ``ops:retention-days`` value: None, or a whole number 1..``RETENTION_DAYS_MAX`` (the one bound of the
    forms, the operators that write the tag and the retention planner that reads it)."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise ValueError("retention_days must be a whole number of days")
    try:
        days = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"retention_days must be a whole number of days, got {value!r}") from None
    if days < 1 or days > RETENTION_DAYS_MAX:
        raise ValueError(f"retention_days must be between 1 and {RETENTION_DAYS_MAX}, got {value!r}")
    return days


def as_list(value: Any, name: str) -> list:
    """One value or many as a list (a string or a mapping is one value)."""
    if value is None:
        return []
    if isinstance(value, (str, Mapping)):
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    raise ValueError(f"{name} must be a string or a list, got {type(value).__name__}")
