"""Triggers that wait on many ECS instances or Cloud Assistant invocations at once.

:class:`InstanceStatusTrigger` polls ``DescribeInstances`` with up to 100 ids per call (per region)
until every instance has reached the target status (``Running``, ``Stopped``, or ``Deleted`` =
no longer returned), has vanished, or the absolute deadline passes. It yields exactly one event::

    {"status": "success" | "timeout" | "error", "target_status": "Running",
     "instances": {"i-1": {"region": "cn-hangzhou", "status": "Running", "reached": true}, ...},
     "pending": ["i-7"],             # not at the target when the trigger gave up (timeout/error)
     "message": "...", "error": {...} | None, "polls": 3, "api_calls": 4}

:class:`InvocationTrigger` polls ``DescribeInvocations`` once per invoke id (one invocation covers
up to 100 instances) until every invocation is final. Its event carries per-instance statuses but
no command output (outputs can be 24 KB per instance; the operator fetches them on resume)::

    {"status": "success" | "timeout" | "error",
     "invocations": {"t-1": {"region": "cn-hangzhou", "status": "Success",
                             "instances": {"i-1": "Success", "i-2": "Failed"}}},
     "pending": ["t-2"], "message": "...", "error": {...} | None, "polls": 2, "api_calls": 2}

The watch classes are plain Python, shared with the operators' in-process (non-deferrable) polling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent

from aliyun_ops.exceptions import AliyunApiError
from aliyun_ops.triggers.base import AliyunBaseTrigger

DELETED = "Deleted"
"""Pseudo target status: the instance is no longer returned by DescribeInstances."""
MISSING = "Missing"
"""Status given to an instance that vanished while we waited for another status."""
INSTANCE_TARGETS = ("Running", "Stopped", DELETED)
MAX_IDS = 100

INVOCATION_FINAL = frozenset({"Success", "Failed", "PartialFailed", "Stopped"})
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
            if item["status"] == self.target:
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



class _EcsWaitTrigger(AliyunBaseTrigger):
    """``carry`` is opaque JSON handed back unchanged in the event (``event["carry"]``): the operator's
    per-item state. Defer ``kwargs`` would be the usual place, but ``dag.test()`` (Airflow 3.3) drops them
    when it resumes a task, so the state travels with the trigger instead."""

    def _event(self, payload: dict) -> TriggerEvent:
        return TriggerEvent({**payload, "carry": self.carry})

    def make_hook(self):
        from aliyun_ops.hooks.ecs import EcsHook

        return EcsHook(aliyun_conn_id=self.aliyun_conn_id, region=self.region)

    async def _wait(self, watch: Any, one_round: Any, label: str):
        """Poll with ``one_round(hook, client_for)`` until ``watch`` is done, the deadline passes or the API
        fails for good; yields the one event. Transient errors were already retried by the hook."""
        try:
            hook = self.make_hook()
            await hook.asettings()
            clients: dict[str, Any] = {}

            def client_for(region: str) -> Any:
                return clients.get(region) or clients.setdefault(region, hook.get_async_client(region))

            while True:
                await one_round(hook, client_for)
                watch.polls += 1
                self.log.info("%s: %s", label, watch.summary())
                if watch.done:
                    yield self._event(watch.event("success"))
                    return
                if self.expired():
                    yield self._event(watch.event("timeout", message=f"deadline passed: {watch.summary()}"))
                    return
                await asyncio.sleep(self.next_wait())
        except AliyunApiError as err:
            self.log.error("%s: wait stopped by a permanent API error: %s", label, err)
            yield self._event(watch.event("error", message=str(err), error=err.to_dict()))
        except ValueError as err:
            yield self._event(watch.event("error", message=str(err), error={"code": "ValueError",
                                                                           "message": str(err)}))


class InstanceStatusTrigger(_EcsWaitTrigger):
    """Wait until many instances (one or more regions) reach ``target_status``; batched DescribeInstances.

    ``target_status`` is ``Running``, ``Stopped`` or ``Deleted`` (no longer returned). An instance that
    disappears while waiting for another status ends as ``Missing`` (not reached).

    Example::

        InstanceStatusTrigger(targets={"cn-hangzhou": ["i-1", "i-2"], "cn-shanghai": ["i-3"]},
                              target_status="Running", poll_interval=10, deadline=time.time() + 1800)
    """

    serialized_fields: ClassVar[tuple[str, ...]] = ("targets", "target_status", "missing_polls", "carry")

    def __init__(self, *, targets: Mapping[str, Sequence[str]], target_status: str, missing_polls: int = 2,
                 carry: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.carry = carry
        self.targets = _by_region(targets)
        if target_status not in INSTANCE_TARGETS:
            raise ValueError(f"target_status must be one of {list(INSTANCE_TARGETS)}, got {target_status!r}")
        self.target_status = target_status
        self.missing_polls = int(missing_polls)

    async def run(self):
        watch = InstanceWatch(self.targets, self.target_status, missing_polls=self.missing_polls)
        if not watch.items:
            yield self._event(watch.event("success", message="nothing to wait for"))
            return
        async def one_round(hook: Any, client_for: Any) -> None:
            for region, ids in watch.pending_by_region().items():
                for start in range(0, len(ids), MAX_IDS):
                    batch = ids[start:start + MAX_IDS]
                    records = await hook.describe_instances_async(region, batch, client=client_for(region))
                    watch.api_calls += 1
                    watch.update(region, batch, records)

        async for event in self._wait(watch, one_round, f"instances -> {self.target_status}"):
            yield event


class InvocationTrigger(_EcsWaitTrigger):
    """Wait until Cloud Assistant invocations are final; one DescribeInvocations call per invoke id per poll.

    Example::

        InvocationTrigger(targets={"cn-hangzhou": ["t-1", "t-2"]}, poll_interval=5, deadline=time.time() + 900)
    """

    serialized_fields: ClassVar[tuple[str, ...]] = ("targets", "carry")

    def __init__(self, *, targets: Mapping[str, Sequence[str]], carry: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.carry = carry
        self.targets = _by_region(targets)

    async def run(self):
        watch = InvocationWatch(self.targets)
        if not watch.items:
            yield self._event(watch.event("success", message="nothing to wait for"))
            return
        async def one_round(hook: Any, client_for: Any) -> None:
            for invoke_id in watch.pending():
                region = watch.items[invoke_id]["region"]
                records = await hook.describe_invocations_async(region, invoke_id, client=client_for(region))
                watch.api_calls += 1
                watch.update(invoke_id, records)

        async for event in self._wait(watch, one_round, "Cloud Assistant"):
            yield event

