"""Waiting for many instances or Cloud Assistant invocations, sans I/O: :class:`InstanceWatch`, :class:`InvocationWatch`.

Fed with DescribeInstances/DescribeInvocations records by a driver: the triggers in
:mod:`aliyun_ops.triggers.ecs_instances` (async) or :mod:`aliyun_ops.waiting.drivers` (sync, in the worker).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aliyun_ops.logic import statuses as st

DELETED = "Deleted"
"""Pseudo target status: the instance is no longer returned by DescribeInstances."""
MISSING = "Missing"
"""Status given to an instance that vanished while we waited for another status."""
SETTLED = "Settled"
"""Pseudo target status: Running or Stopped, whichever (an instance no longer in a transition)."""
SETTLED_STATUSES = st.SETTLED
INSTANCE_TARGETS = (st.RUNNING, st.STOPPED, DELETED, SETTLED)
MAX_IDS = 100

INVOCATION_FINAL = st.INVOCATION_FINAL
"""Final ``InvocationStatus`` values of an invocation (Pending/Scheduled/Running/Stopping are not)."""


def _by_region(targets: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    if not isinstance(targets, Mapping):
        raise ValueError("targets must map region -> list of ids")
    out: dict[str, list[str]] = {}
    for region, ids in targets.items():
        if isinstance(ids, str) or not isinstance(ids, Iterable):
            raise ValueError(f"targets[{region!r}] must be a list of ids")
        clean = list(dict.fromkeys(str(i) for i in ids))
        if clean:
            out[str(region)] = clean
    return out


class InstanceWatch:
    """Tracks instances until each reached ``target_status`` (or vanished). Pure; fed with records.

    Example::

        watch = InstanceWatch({"cn-hangzhou": ["i-1", "i-2"]}, "Running")
        watch.update("cn-hangzhou", ["i-1", "i-2"], hook.describe_instances("cn-hangzhou", ["i-1", "i-2"]))
        watch.done, watch.event("success")
    """

    def __init__(self, targets: Mapping[str, Sequence[str]], target_status: str, *, missing_polls: int = 2) -> None:
        if target_status not in INSTANCE_TARGETS:
            raise ValueError(f"target_status must be one of {list(INSTANCE_TARGETS)}, got {target_status!r}")
        self.target = target_status
        self.missing_polls = max(1, int(missing_polls))
        self.items: dict[str, dict[str, Any]] = {}
        for region, ids in _by_region(targets).items():
            for iid in ids:
                self.items[iid] = {"region": region, "status": "Unknown", "reached": False, "misses": 0}
        self.polls = 0
        self.api_calls = 0

    def pending_by_region(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for iid, item in self.items.items():
            if not item["reached"] and item["status"] != MISSING:
                out.setdefault(item["region"], []).append(iid)
        return out

    def update(self, region: str, asked: Sequence[str], records: Iterable[Mapping[str, Any]]) -> None:
        found = {r.get("InstanceId"): r for r in records}
        for iid in asked:
            item = self.items.get(iid)
            if item is None or item["reached"] or item["status"] == MISSING:
                continue
            rec = found.get(iid)
            if rec is None:
                if self.target == DELETED:
                    item.update(status=DELETED, reached=True)
                    continue
                item["misses"] += 1
                if item["misses"] >= self.missing_polls:
                    item["status"] = MISSING
                continue
            item["misses"] = 0
            item["status"] = str(rec.get("Status") or "Unknown")
            if item["status"] == self.target or (self.target == SETTLED and item["status"] in SETTLED_STATUSES):
                item["reached"] = True

    @property
    def done(self) -> bool:
        return all(i["reached"] or i["status"] == MISSING for i in self.items.values())

    def pending(self) -> list[str]:
        return [iid for iid, i in self.items.items() if not i["reached"] and i["status"] != MISSING]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for item in self.items.values():
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        reached = sum(1 for i in self.items.values() if i["reached"])
        rest = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s != self.target)
        return f"{reached}/{len(self.items)} {self.target}" + (f", {rest}" if rest else "")

    def event(self, status: str, *, message: str = "", error: dict | None = None) -> dict:
        return {"status": status, "target_status": self.target,
                "instances": {iid: {"region": i["region"], "status": i["status"], "reached": i["reached"]}
                              for iid, i in self.items.items()},
                "pending": self.pending() if status != "success" else [],
                "message": message or self.summary(), "error": error, "polls": self.polls,
                "api_calls": self.api_calls}


class InvocationWatch:
    """Tracks Cloud Assistant invocations until each is final. Pure; fed with DescribeInvocations records.

    Example::

        watch = InvocationWatch({"cn-hangzhou": ["t-1"]})
        watch.update("t-1", hook.describe_invocations("cn-hangzhou", "t-1"))
    """

    def __init__(self, targets: Mapping[str, Sequence[str]], *, missing_polls: int = 3) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        for region, ids in _by_region(targets).items():
            for invoke_id in ids:
                self.items[invoke_id] = {"region": region, "status": "Unknown", "instances": {}, "misses": 0}
        self.missing_polls = max(1, int(missing_polls))
        self.polls = 0
        self.api_calls = 0

    def pending(self) -> list[str]:
        return [k for k, v in self.items.items() if not self._final(v)]

    @staticmethod
    def _final(item: Mapping[str, Any]) -> bool:
        return item["status"] in INVOCATION_FINAL or item["status"] == MISSING

    def update(self, invoke_id: str, records: Iterable[Mapping[str, Any]]) -> None:
        item = self.items.get(invoke_id)
        if item is None or self._final(item):
            return
        rec = next((r for r in records if r.get("InvokeId") == invoke_id), None)
        if rec is None:
            item["misses"] += 1
            if item["misses"] >= self.missing_polls:
                item["status"] = MISSING
            return
        item["misses"] = 0
        item["status"] = str(rec.get("InvocationStatus") or rec.get("InvokeStatus") or "Unknown")
        per = ((rec.get("InvokeInstances") or {}).get("InvokeInstance")) or []
        item["instances"] = {p.get("InstanceId"): str(p.get("InvocationStatus") or p.get("InstanceInvokeStatus")
                                                      or "Unknown") for p in per}

    @property
    def done(self) -> bool:
        return all(self._final(v) for v in self.items.values())

    def summary(self) -> str:
        statuses: dict[str, int] = {}
        for item in self.items.values():
            for status in item["instances"].values():
                statuses[status] = statuses.get(status, 0) + 1
        final = len(self.items) - len(self.pending())
        per = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        return f"{final}/{len(self.items)} invocations final" + (f" (instances: {per})" if per else "")

    def event(self, status: str, *, message: str = "", error: dict | None = None) -> dict:
        return {"status": status,
                "invocations": {k: {"region": v["region"], "status": v["status"], "instances": v["instances"]}
                                for k, v in self.items.items()},
                "pending": self.pending() if status != "success" else [],
                "message": message or self.summary(), "error": error, "polls": self.polls,
                "api_calls": self.api_calls}


class ConditionWatch:
    """Waits for one condition a caller checks (a new backup listed, a lease freed): done once the check returns
    a value other than None, which the event carries as ``value``. Pure; fed by :func:`~aliyun_ops.waiting.drivers.
    wait_until`."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.value: Any = None
        self.polls = 0
        self.api_calls = 0

    def update(self, value: Any) -> None:
        self.value = value

    @property
    def done(self) -> bool:
        return self.value is not None

    def summary(self) -> str:
        return f"{self.what}: {'done' if self.done else 'not yet'}"

    def event(self, status: str, *, message: str = "", error: dict | None = None) -> dict:
        return {"status": status, "value": self.value, "message": message or self.summary(), "error": error,
                "polls": self.polls, "api_calls": self.api_calls}
