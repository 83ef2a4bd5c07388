"""Per-action call counters and a bounded log of recent calls (benchmarks read these)."""

from __future__ import annotations

import time
from collections import defaultdict, deque


class CallLog:
    """Counts every API call by ``product:Action`` and keeps the most recent ones.

    Example::

        log = CallLog()
        log.record("ecs:CreateImage", "cn-hangzhou", 200, None, "REQ-1")
        log.counters()["ecs:CreateImage"]["calls"]   # 1
    """

    def __init__(self, keep: int = 20000) -> None:
        self._counts: dict[str, dict] = defaultdict(lambda: {"calls": 0, "errors": 0, "codes": defaultdict(int)})
        self._recent: deque = deque(maxlen=keep)

    def record(self, action: str, region: str | None, status: int, code: str | None, request_id: str,
               access_key_id: str | None = None, fault: dict | None = None) -> None:
        """``fault``: the fault injected into the call (:meth:`emulator.faults.Fired.log`), None if none."""
        entry = self._counts[action]
        entry["calls"] += 1
        if status >= 400:
            entry["errors"] += 1
            entry["codes"][code or str(status)] += 1
        self._recent.append({
            "time": time.time(), "action": action, "region": region, "status": status,
            "code": code, "request_id": request_id, "access_key_id": access_key_id, "fault": fault,
        })

    def counters(self) -> dict[str, dict]:
        return {k: {"calls": v["calls"], "errors": v["errors"], "codes": dict(v["codes"])}
                for k, v in sorted(self._counts.items())}

    def recent(self, limit: int = 1000, action: str | None = None) -> list[dict]:
        items = [e for e in self._recent if action is None or e["action"] == action]
        return items[-limit:]

    def clear(self) -> None:
        self._counts.clear()
        self._recent.clear()
