"""Run one action over many items with OOS-style ``concurrency`` and ``max_errors``.

Every item gets a result (``success``, ``failed`` or ``skipped`` with a reason): nothing is
silently dropped. Once failures exceed ``max_errors`` no new item starts; items already
running finish; items never started are reported as skipped, as are items whose action raises
:class:`~aliyun_ops.exceptions.ItemSkipped` (not counted as errors).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from ..exceptions import ItemSkipped
from ..logic.budget import ErrorBudget, resolve_concurrency
from ..logic.outcome import FAILED, SKIPPED, SUCCESS

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class ItemResult:
    """The outcome of one item: ``ItemResult("i-1", "success", value="m-1")``."""

    key: str
    status: str               # success | failed | skipped
    value: Any = None         # what the action returned (JSON-safe)
    error: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def run_batch(items: Sequence[T], action: Callable[[T], Any], *, key: Callable[[T], str],
              concurrency: int | str = 10, max_errors: int | str = 0,
              skip: Callable[[T], str | None] | None = None) -> list[ItemResult]:
    """Apply ``action`` to every item; returns results in the items' order.

    Example::

        results = run_batch(instances, start_one, key=lambda i: i["instance_id"], concurrency=5, max_errors="10%")
    """
    total = len(items)
    workers = resolve_concurrency(concurrency, total)
    budget = ErrorBudget.of(max_errors, total)
    results: dict[int, ItemResult] = {}
    pending: dict[Future, int] = {}
    queue = list(enumerate(items))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aliyun-batch") as pool:
        while queue or pending:
            while queue and len(pending) < workers and not budget.exhausted:
                index, item = queue.pop(0)
                reason = skip(item) if skip else None
                if reason:
                    results[index] = ItemResult(key(item), SKIPPED, error=reason)
                    continue
                pending[pool.submit(action, item)] = index
            if budget.exhausted and queue:
                for index, item in queue:
                    results[index] = ItemResult(key(item), SKIPPED, error=budget.not_started)
                queue = []
            if not pending:
                continue
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                item_key = key(items[index])
                try:
                    results[index] = ItemResult(item_key, SUCCESS, future.result())
                except ItemSkipped as exc:  # left alone on purpose: not an error
                    results[index] = ItemResult(item_key, SKIPPED, error=str(exc))
                except Exception as exc:  # one item's failure must not stop the others
                    budget.fail()
                    log.warning("%s failed: %s", item_key, exc)
                    results[index] = ItemResult(item_key, FAILED, error=str(exc))
    return [results[i] for i in range(total)]


def errors_exceeded(results: Sequence[ItemResult], max_errors: int | str) -> bool:
    """Whether the failures in ``results`` exceed ``max_errors``."""
    return ErrorBudget.after((r.status for r in results), max_errors).exhausted
