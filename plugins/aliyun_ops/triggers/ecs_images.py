"""Triggers that wait for many ECS images (or snapshots) at once, across regions.

They poll in batches (one ``DescribeImages`` call per region per poll for up to 100 ids), estimate
completion from the ``Progress`` the API reports, and sleep until about then (never longer than
``poll_interval``, never past the absolute ``deadline``). An item stops being polled once it reaches
a terminal state. Exactly one :class:`TriggerEvent` is yielded::

    {"status": "success" | "timeout" | "error",
     "items": {"m-1": {"region", "status", "progress", "size_gib", "reason", "observed_at"}, ...},
     "timed_out": ["m-7"],            # still not terminal at the deadline
     "message": "...", "error": {...} | None, "polls": 3, "api_calls": 4,
     "echo": ...}                     # the trigger's ``echo`` argument, unchanged (if given)

``echo`` carries the deferring operator's in-flight results through the deferral: ``dag.test()``
resumes a task with ``next_kwargs={"event": ...}`` only, dropping ``defer(kwargs=...)``.

``status == "success"`` means every item reached a terminal state (some may have failed: look at
each item's ``status``). ``"error"`` is a permanent API error (the hook already retried the
transient ones); the items carry what was known at that point.

The watch logic (:class:`ResourceWatch`) is plain Python shared with the operators' in-process
(non-deferrable) polling.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent

from aliyun_ops.exceptions import AliyunApiError
from aliyun_ops.triggers.base import AliyunBaseTrigger

MISSING = "Missing"
"""Status given to an id the API no longer (or never) returns: deleted, or a wrong id."""

IMAGE_OK = frozenset({"Available", "Deprecated"})
IMAGE_FAILED = frozenset({"CreateFailed", "UnAvailable", MISSING})
SNAPSHOT_OK = frozenset({"accomplished"})
SNAPSHOT_FAILED = frozenset({"failed", MISSING})

KINDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "image": (IMAGE_OK, IMAGE_FAILED),
    "snapshot": (SNAPSHOT_OK, SNAPSHOT_FAILED),
}


def parse_progress(value: Any) -> float | None:
    """``"45%"`` -> 45.0; None when absent or malformed."""
    if value is None or value == "":
        return None
    try:
        return max(0.0, min(100.0, float(str(value).strip().rstrip("%"))))
    except ValueError:
        return None


def normalize_items(items: Any, *, default_region: str | None = None, id_key: str = "image_id") -> list[dict]:
    """``[{"region", "image_id"}]`` (or ``"id"``/``id_key`` keys, or plain ids with a default region)
    -> ``[{"region", "id"}]``, duplicates removed. Raises ``ValueError`` on malformed input."""
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, Iterable) or isinstance(items, Mapping):
        raise ValueError(f"expected a list of ids or of {{'region', '{id_key}'}} objects, got {type(items).__name__}")
    out: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for item in items:
        if isinstance(item, str):
            rid, region = item, default_region
        elif isinstance(item, Mapping):
            rid = item.get(id_key) or item.get("id")
            region = item.get("region") or default_region
        else:
            raise ValueError(f"cannot read an id from {item!r}")
        if not rid or not isinstance(rid, str):
            raise ValueError(f"missing {id_key} in {item!r}")
        if not region or not isinstance(region, str):
            raise ValueError(f"no region for {rid!r}: give each item a 'region' or pass region=...")
        if (region, rid) not in seen:
            seen.add((region, rid))
            out.append({"region": region, "id": rid})
    return out


@dataclass
class Tracked:
    """What the watch knows about one resource."""

    region: str
    rid: str
    status: str = "Unknown"
    progress: float | None = None
    size_gib: int | None = None
    reason: str = ""
    terminal: bool = False
    ok: bool = False
    misses: int = 0
    observed_at: float | None = None
    first: tuple[float, float] | None = None    # (time, progress) of the first sample with progress
    last: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)

    def eta(self, now: float) -> float | None:
        """Seconds until done, estimated from the progress rate seen so far (None if unknown)."""
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return None
        rate = (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])
        if rate <= 0:
            return None
        return max(0.0, (100.0 - self.last[1]) / rate - (now - self.last[0]))

    def to_dict(self) -> dict:
        return {"region": self.region, "status": self.status,
                "progress": None if self.progress is None else f"{int(self.progress)}%",
                "size_gib": self.size_gib, "reason": self.reason, "observed_at": self.observed_at, **self.extra}


class ResourceWatch:
    """Tracks many images or snapshots until each is terminal. Pure: fed with DescribeX records.

    Example::

        watch = ResourceWatch([{"region": "cn-hangzhou", "id": "m-1"}], kind="image")
        watch.update("cn-hangzhou", ["m-1"], hook.describe_images("cn-hangzhou", ["m-1"]), time.time())
        watch.done, watch.summary()
    """

    def __init__(self, items: Sequence[Mapping[str, str]], *, kind: str = "image", missing_polls: int = 2) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}")
        self.kind = kind
        self.ok_states, self.failed_states = KINDS[kind]
        self.missing_polls = max(1, int(missing_polls))
        self.items: dict[str, Tracked] = {}
        for item in items:
            self.items[item["id"]] = Tracked(region=item["region"], rid=item["id"])
        self.polls = 0
        self.api_calls = 0

    # -- feeding --------------------------------------------------------------------------------
    def pending_by_region(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for t in self.items.values():
            if not t.terminal:
                out.setdefault(t.region, []).append(t.rid)
        return out

    def _record_id(self, rec: Mapping[str, Any]) -> str | None:
        return rec.get("ImageId") if self.kind == "image" else rec.get("SnapshotId")

    def update(self, region: str, asked: Sequence[str], records: Iterable[Mapping[str, Any]], now: float) -> None:
        """Apply one poll's answer for ``asked`` ids in ``region``."""
        found = {self._record_id(r): r for r in records}
        for rid in asked:
            t = self.items.get(rid)
            if t is None or t.terminal:
                continue
            rec = found.get(rid)
            if rec is None:
                t.misses += 1
                if t.misses >= self.missing_polls:
                    self._finish(t, MISSING, now, reason=f"{self.kind} {rid} not found in {region} (deleted?)")
                continue
            t.misses = 0
            status = str(rec.get("Status") or "Unknown")
            progress = parse_progress(rec.get("Progress"))
            t.status, t.progress = status, progress if progress is not None else t.progress
            size = rec.get("Size") if self.kind == "image" else rec.get("SourceDiskSize")
            try:
                t.size_gib = int(size) if size not in (None, "") else t.size_gib
            except (TypeError, ValueError):
                pass
            if self.kind == "image":
                mappings = (rec.get("DiskDeviceMappings") or {}).get("DiskDeviceMapping") or []
                snaps = [m.get("SnapshotId") for m in mappings if m.get("SnapshotId")]
                if snaps:
                    t.extra["snapshot_ids"] = snaps
            if progress is not None and status not in ("Waiting",):
                if t.first is None or progress < t.first[1]:
                    t.first = (now, progress)
                t.last = (now, progress)
            elif status == "Waiting":
                t.first = t.last = None  # queued: no rate yet
            if status in self.ok_states:
                self._finish(t, status, now, ok=True)
            elif status in self.failed_states:
                self._finish(t, status, now, reason=f"{self.kind} {rid} is {status}")

    def _finish(self, t: Tracked, status: str, now: float, *, ok: bool = False, reason: str = "") -> None:
        t.status, t.terminal, t.ok, t.observed_at, t.reason = status, True, ok, now, reason
        if ok:
            t.progress = 100.0

    # -- reading --------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return all(t.terminal for t in self.items.values())

    def next_eta(self, now: float) -> float | None:
        """Seconds until the soonest pending item is expected to finish (None: no estimate yet)."""
        etas = [e for t in self.items.values() if not t.terminal and (e := t.eta(now)) is not None]
        return min(etas) if etas else None

    def overall_eta(self, now: float) -> float | None:
        etas = [e for t in self.items.values() if not t.terminal and (e := t.eta(now)) is not None]
        return max(etas) if etas else None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.items.values():
            out[t.status] = out.get(t.status, 0) + 1
        return out

    def summary(self, now: float | None = None) -> str:
        """``"12/40 Available, 1 CreateFailed, 27 Creating, ETA ~6 min"``."""
        now = time.time() if now is None else now
        counts = self.counts()
        ok = sum(n for s, n in counts.items() if s in self.ok_states)
        main = next(iter(sorted(self.ok_states)))
        parts = [f"{ok}/{len(self.items)} {main if self.kind == 'image' else 'accomplished'}"]
        parts += [f"{n} {s}" for s, n in sorted(counts.items()) if s not in self.ok_states]
        eta = self.overall_eta(now)
        if not self.done:
            parts.append(f"ETA ~{_human(eta)}" if eta is not None else "ETA unknown")
        return ", ".join(parts)

    def pending_ids(self) -> list[str]:
        return [t.rid for t in self.items.values() if not t.terminal]

    def event(self, status: str, *, message: str = "", error: dict | None = None) -> dict:
        return {"status": status, "kind": self.kind,
                "items": {rid: t.to_dict() for rid, t in self.items.items()},
                "timed_out": self.pending_ids() if status != "success" else [],
                "message": message or self.summary(), "error": error, "polls": self.polls,
                "api_calls": self.api_calls}


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{int(seconds)} s"
    return f"{round(seconds / 60)} min"


async def _prime_hook(hook: Any) -> None:
    """Load the connection without blocking the event loop (the hook's ``settings`` is a cached property)."""
    if "settings" in hook.__dict__:
        return
    try:
        from aliyun_ops.hooks.base import ConnectionSettings

        conn = await hook.aget_connection(hook.aliyun_conn_id)
        hook.__dict__["settings"] = ConnectionSettings.from_connection(conn)
    except Exception:  # fall back to the synchronous lookup in a thread
        await asyncio.to_thread(lambda: hook.settings)


class _BatchWatchTrigger(AliyunBaseTrigger):
    """Polls many resources per region in batches until all are terminal or the deadline passes."""

    kind: ClassVar[str] = "image"
    id_key: ClassVar[str] = "image_id"
    serialized_fields: ClassVar[tuple[str, ...]] = ("items", "missing_polls", "echo")

    def __init__(self, *, items: Sequence[Mapping[str, str]], missing_polls: int = 2, echo: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.echo = echo  # JSON-safe data handed back unchanged in the event (the operator's in-flight state)
        self.items = [{"region": i["region"], "id": i["id"]} for i in normalize_items(
            items, default_region=kwargs.get("region"), id_key=self.id_key)]
        self.missing_polls = int(missing_polls)

    def make_hook(self):
        from aliyun_ops.hooks.ecs import EcsHook

        return EcsHook(aliyun_conn_id=self.aliyun_conn_id, region=self.region)

    async def fetch(self, hook: Any, client: Any, region: str, ids: list[str]) -> list[dict]:
        raise NotImplementedError

    async def run(self):
        watch = ResourceWatch(self.items, kind=self.kind, missing_polls=self.missing_polls)
        if not self.items:
            yield TriggerEvent(self._event(watch, "success", message="nothing to wait for"))
            return
        try:
            hook = self.make_hook()
            await _prime_hook(hook)
            clients: dict[str, Any] = {}
            while True:
                for region, ids in watch.pending_by_region().items():
                    client = clients.get(region)
                    if client is None:
                        client = clients[region] = hook.get_async_client(region)
                    for start in range(0, len(ids), 100):
                        batch = ids[start:start + 100]
                        records = await self.fetch(hook, client, region, batch)
                        watch.api_calls += 1
                        watch.update(region, batch, records, time.time())
                watch.polls += 1
                now = time.time()
                self.log.info("%s wait: %s", self.kind, watch.summary(now))
                if watch.done:
                    yield TriggerEvent(self._event(watch, "success"))
                    return
                if self.expired():
                    yield TriggerEvent(self._event(watch, "timeout", message=f"deadline passed: {watch.summary(now)}"))
                    return
                await asyncio.sleep(self.next_wait(watch.next_eta(now)))
        except AliyunApiError as err:
            self.log.error("%s wait stopped by a permanent API error: %s", self.kind, err)
            yield TriggerEvent(self._event(watch, "error", message=str(err), error=err.to_dict()))
        except ValueError as err:  # e.g. a broken connection definition
            yield TriggerEvent(self._event(watch, "error", message=str(err),
                                           error={"code": "ValueError", "message": str(err)}))

    def _event(self, watch: ResourceWatch, status: str, **kwargs: Any) -> dict:
        event = watch.event(status, **kwargs)
        if self.echo is not None:
            event["echo"] = self.echo
        return event


class ImagesAvailableTrigger(_BatchWatchTrigger):
    """Wait for many custom images (in one or more regions) to become Available, CreateFailed or gone.

    Example::

        ImagesAvailableTrigger(images=[{"region": "cn-hangzhou", "image_id": "m-1"},
                                       {"region": "cn-shanghai", "image_id": "m-2"}],
                               poll_interval=60, deadline=time.time() + 7200)

    The event's ``items`` maps each image id to ``{"region", "status", "progress", "size_gib",
    "reason", "observed_at", "snapshot_ids"}``; ``timed_out`` lists ids still pending at the deadline.
    """

    kind = "image"
    id_key = "image_id"

    def __init__(self, *, images: Sequence[Mapping[str, str]] | None = None,
                 items: Sequence[Mapping[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(items=items if items is not None else (images or []), **kwargs)

    async def fetch(self, hook: Any, client: Any, region: str, ids: list[str]) -> list[dict]:
        return await hook.describe_images_async(region, ids, client=client)


class SnapshotsReadyTrigger(_BatchWatchTrigger):
    """Wait for many snapshots to be ``accomplished`` (or ``failed``/gone); batched DescribeSnapshots.

    Example::

        SnapshotsReadyTrigger(items=[{"region": "cn-hangzhou", "id": "s-1"}], poll_interval=30,
                              deadline=time.time() + 3600)
    """

    kind = "snapshot"
    id_key = "snapshot_id"

    async def fetch(self, hook: Any, client: Any, region: str, ids: list[str]) -> list[dict]:
        import json

        from alibabacloud_ecs20140526 import models

        out: list[dict] = []
        token: str | None = None
        while True:
            request = models.DescribeSnapshotsRequest(region_id=region, snapshot_ids=json.dumps(ids),
                                                      max_results=100, next_token=token)
            response = await hook.acall("DescribeSnapshots", client.describe_snapshots_async, request, region=region)
            body = response.body.to_map() if response.body is not None else {}
            out.extend((body.get("Snapshots") or {}).get("Snapshot") or [])
            token = body.get("NextToken") or None
            if not token:
                return out
