"""``concurrency`` and ``max_errors`` with the meaning Alibaba OOS gives them.

Both accept a number (``10``) or a percentage of the items (``"10%"``). The run stops taking
new items once the number of failures exceeds ``max_errors``; ``0`` means the first failure
stops it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


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

    def fail(self, n: int = 1) -> None:
        self.failures += n

    @property
    def exhausted(self) -> bool:
        return self.failures > self.allowed
