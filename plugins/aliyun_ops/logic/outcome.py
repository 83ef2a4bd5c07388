"""The one status vocabulary of per-item results, reports and plans.

``status`` of an item says what this task did with it: ``success``, ``failed`` or ``skipped`` (left alone on
purpose, or never started), ``pending`` (submitted, not final yet: an image still being made, a backup still
running) and ``queued`` (not submitted yet: waiting for a slot of ``concurrency``).
"""

from __future__ import annotations

SUCCESS, FAILED, SKIPPED, PENDING, QUEUED = "success", "failed", "skipped", "pending", "queued"
FINAL = frozenset({SUCCESS, FAILED, SKIPPED})

__all__ = ["FAILED", "FINAL", "PENDING", "QUEUED", "SKIPPED", "SUCCESS"]
