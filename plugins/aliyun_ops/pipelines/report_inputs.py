"""What a report task reads of the tasks before it, the same way whatever their state.

Every per-item task of the library pushes its rows as XCom ``results`` *before* it fails (the return value only
exists when it succeeded), so a report reads ``results`` first and the return value second. A task that left
neither (it did not run, was skipped, or failed before it knew anything) is **unknown**: the report says so and
never turns it into "none" (an empty list is a real answer: nothing was there to do).

Example::

    released = task_results(ti, "release_temporary_instances")
    meta["temporary instances released"] = describe_rows(released, "release_temporary_instances",
                                                         lambda r: r["instance_id"], empty="none left over")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..logic.outcome import FAILED

RESULTS_KEY = "results"


def _rows(value: Any) -> list[dict] | None:
    """A list of row dicts from an XCom value; a mapped task's per-index lists are flattened; None if it is not
    a list of rows (nothing pushed, or something else)."""
    if value is None or isinstance(value, (str, bytes, Mapping)):
        return None
    try:
        items = list(value)
    except TypeError:
        return None
    rows: list[dict] = []
    for item in items:
        if isinstance(item, Mapping):
            rows.append(dict(item))
        elif item is None:          # a mapped index that left nothing
            continue
        elif isinstance(item, Sequence) and not isinstance(item, (str, bytes)):
            rows.extend(dict(r) for r in item if isinstance(r, Mapping))
        else:
            return None
    return rows


def task_results(ti: Any, task_id: str) -> list[dict] | None:
    """The per-item rows ``task_id`` left in this run: XCom ``results`` (pushed even when it failed), else its return
    value; ``None`` when it left neither (unknown, not "none")."""
    for key in (RESULTS_KEY, None):
        value = ti.xcom_pull(task_ids=task_id, key=key) if key else ti.xcom_pull(task_ids=task_id)
        rows = _rows(value)
        if rows is not None:
            return rows
    return None


def unknown(task_id: str) -> str:
    """The words a report uses for an input that is missing."""
    return f"UNKNOWN: {task_id} left no result (see its log)"


def describe_rows(rows: Sequence[Mapping[str, Any]] | None, task_id: str, fmt: Callable[[Mapping[str, Any]], str],
                  *, empty: str) -> str:
    """A report line: ``fmt`` of each row, ``empty`` for an empty list, :func:`unknown` for a missing input."""
    if rows is None:
        return unknown(task_id)
    return ", ".join(fmt(r) for r in rows) or empty


def failed_rows(rows: Sequence[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    """The rows that failed (a missing input has none: check it with ``is None`` first)."""
    return [r for r in rows or [] if r.get("status") == FAILED]
