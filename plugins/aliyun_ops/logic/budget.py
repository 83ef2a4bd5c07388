"""``concurrency`` and ``max_errors`` with the meaning Alibaba OOS gives them.

Both accept a number (``10``) or a percentage of the items (``"10%"``). ``concurrency`` is how
many items are in flight at once (a sliding window); a percentage rounds *up* and is never less
than 1, as in OOS. The run stops taking new items once the number of failures exceeds
``max_errors`` (a percentage rounds down); ``0`` means the first failure stops it.
Validation and execution use the same functions (:func:`resolve_concurrency`, :func:`resolve_count`),
so what passes validation never fails at run time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .outcome import FAILED

COUNT_OR_PERCENT = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\d{1,3}%$"}]}
"""JSON schema of ``max_errors``: a count or a percentage."""
CONCURRENCY = {"anyOf": [{"type": "integer", "minimum": 1},
                         {"type": "string", "pattern": r"^(100|[1-9][0-9]?)%$"}]}
"""JSON schema of ``concurrency``: at least 1, or a percentage above 0% (rounded up to at least 1 item)."""


def resolve_count(value: int | str, total: int, *, name: str, minimum: int = 0) -> int:
    """Turn ``5`` or ``"20%"`` into an absolute count for ``total`` items.

    >>> resolve_count("10%", 25, name="max_errors")
    2
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number or a percentage string, not a boolean")
    if isinstance(value, int):
        count = value
    elif isinstance(value, str) and value.strip().endswith("%"):
        try:
            pct = float(value.strip()[:-1])
        except ValueError:
            raise ValueError(f"{name}={value!r} is not a percentage like '10%'") from None
        if not 0 <= pct <= 100:
            raise ValueError(f"{name}={value!r} must be between 0% and 100%")
        count = math.floor(total * pct / 100)
    elif isinstance(value, str) and value.strip().isdigit():
        count = int(value.strip())
    else:
        raise ValueError(f"{name}={value!r} must be a whole number or a percentage like '10%'")
    if count < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return max(count, minimum)


def resolve_concurrency(value: int | str, total: int) -> int:
    """``concurrency`` for ``total`` items: a whole number >= 1, or a percentage in (0%, 100%] rounded up.

    >>> resolve_concurrency("10%", 5), resolve_concurrency("10%", 25), resolve_concurrency(3, 0)
    (1, 3, 3)
    """
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            pct = float(value.strip()[:-1])
        except ValueError:
            raise ValueError(f"concurrency={value!r} is not a percentage like '10%'") from None
        if not 0 < pct <= 100:
            raise ValueError(f"concurrency={value!r} must be a percentage above 0% and at most 100%")
        return max(1, math.ceil(total * pct / 100))
    return resolve_count(value, total, name="concurrency", minimum=1)


def check_concurrency(value: int | str) -> int | str:
    """Validate ``concurrency`` before any call (the same rule :func:`resolve_concurrency` applies); returns it."""
    resolve_concurrency(value, 1)
    return value


@dataclass
class ErrorBudget:
    """Counts failures against ``max_errors``.

    Example::

        budget = ErrorBudget.of("10%", total=50)   # 5 failures allowed
        budget.fail(); budget.exhausted            # False
    """

    allowed: int
    failures: int = 0

    @classmethod
    def of(cls, max_errors: int | str, total: int) -> ErrorBudget:
        return cls(resolve_count(max_errors, total, name="max_errors"))

    @classmethod
    def after(cls, statuses: Iterable[str], max_errors: int | str) -> ErrorBudget:
        """The budget once items with these ``statuses`` are done: ``ErrorBudget.after(["failed"], 0).exhausted``."""
        statuses = list(statuses)
        budget = cls.of(max_errors, len(statuses))
        budget.fail(sum(1 for s in statuses if s == FAILED))
        return budget

    def fail(self, n: int = 1) -> None:
        self.failures += n

    @property
    def not_started(self) -> str:
        """The reason given to the items never started once the budget is spent."""
        return f"not started: more than {self.allowed} errors (max_errors)"

    @property
    def exhausted(self) -> bool:
        return self.failures > self.allowed
