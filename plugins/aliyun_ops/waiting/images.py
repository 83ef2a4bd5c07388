"""Waiting for many images or snapshots, sans I/O: :class:`ResourceWatch` and poll by prediction (:class:`PollPlan`).

Fed with DescribeImages/DescribeSnapshots records by a driver: the triggers in
:mod:`aliyun_ops.triggers.ecs_images` (async) and the operators' in-worker waits (sync). See
:mod:`aliyun_ops.triggers.ecs_images` for how a look is planned and what the event carries.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aliyun_ops.logic import statuses as st

MISSING = "Missing"
"""Status given to an id the API no longer (or never) returns: deleted, or a wrong id."""
PROGRESS = "progress"
"""Event status of a watch with ``return_when="first"`` that ends because some (not all) items are final."""
RETURN_WHEN = ("all", "first")

IMAGE_OK = st.IMAGE_OK
IMAGE_FAILED = st.IMAGE_FAILED | {MISSING}
SNAPSHOT_OK = frozenset({st.SNAPSHOT_ACCOMPLISHED})
SNAPSHOT_FAILED = frozenset({"failed", MISSING})
DISK_OK = frozenset({st.DISK_IN_USE})
DISK_FAILED = frozenset({MISSING})

KINDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "image": (IMAGE_OK, IMAGE_FAILED),
    "snapshot": (SNAPSHOT_OK, SNAPSHOT_FAILED),
    "disk": (DISK_OK, DISK_FAILED),          # a new system disk: In_use once attached
}
RECORD_IDS = {"image": "ImageId", "snapshot": "SnapshotId", "disk": "DiskId"}


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
    work_gib: float | None = None               # all disks (DiskDeviceMappings), for the duration model
    duration: float | None = None               # seconds 0 -> 100 % at the observed rate
    extra: dict = field(default_factory=dict)

    def rate(self) -> float | None:
        """Progress points per second between the first and the last sample (None if unknown)."""
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return None
        rate = (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])
        return rate if rate > 0 else None

    def eta(self, now: float) -> float | None:
        """Seconds until done, estimated from the progress rate seen so far (None if unknown)."""
        rate = self.rate()
        if rate is None or self.last is None:
            return None
        return max(0.0, (100.0 - self.last[1]) / rate - (now - self.last[0]))

    def to_dict(self) -> dict:
        return {"region": self.region, "status": self.status, "terminal": self.terminal, "ok": self.ok,
                "progress": None if self.progress is None else f"{int(self.progress)}%",
                "size_gib": self.size_gib, "reason": self.reason, "observed_at": self.observed_at, **self.extra}


class ResourceWatch:
    """Tracks many images, snapshots or disks until each is terminal. Pure: fed with DescribeX records.

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
        return rec.get(RECORD_IDS[self.kind])

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
                work = sum(_number(m.get("Size")) for m in mappings)
                t.work_gib = work or t.work_gib or (float(t.size_gib) if t.size_gib else None)
            elif t.size_gib:
                t.work_gib = float(t.size_gib)
            if progress is not None and status not in (st.IMAGE_WAITING,) and status not in self.ok_states \
                    and status not in self.failed_states:  # a terminal sample says nothing about the rate
                if t.first is None or progress < t.first[1]:
                    t.first = (now, progress)
                t.last = (now, progress)
                rate = t.rate()
                if rate is not None:
                    t.duration = 100.0 / rate
            elif status == st.IMAGE_WAITING:
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

    @property
    def any_terminal(self) -> bool:
        """Some item is final: a slot of the operator's window is free."""
        return any(t.terminal for t in self.items.values())

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
        parts = [f"{ok}/{len(self.items)} {main}"]
        parts += [f"{n} {s}" for s, n in sorted(counts.items()) if s not in self.ok_states]
        eta = self.overall_eta(now)
        if not self.done:
            parts.append(f"ETA ~{_human(eta)}" if eta is not None else "ETA unknown")
        return ", ".join(parts)

    def pending_ids(self) -> list[str]:
        return [t.rid for t in self.items.values() if not t.terminal]

    def pending_in(self, region: str) -> list[Tracked]:
        """Pending items of ``region`` in the order given (for copies: the order they were submitted)."""
        return [t for t in self.items.values() if t.region == region and not t.terminal]

    def event(self, status: str, *, message: str = "", error: dict | None = None) -> dict:
        return {"status": status, "kind": self.kind,
                "items": {rid: t.to_dict() for rid, t in self.items.items()},
                "timed_out": self.pending_ids() if status != "success" else [],
                "message": message or self.summary(), "error": error, "polls": self.polls,
                "api_calls": self.api_calls}


def _number(value: Any) -> float:
    try:
        return float(value) if value not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0


IN_PROGRESS = frozenset({st.IMAGE_CREATING, st.IMAGE_WAITING, st.SNAPSHOT_PROGRESSING})
PROBE_STATUSES = ",".join(sorted(st.IMAGE_IN_PROGRESS))
"""What a probe counts: our images still being made (the ``Status`` filter of DescribeImages)."""
BATCH = 100
"""Ids per DescribeImages / DescribeSnapshots call."""

Request = tuple
"""``("images" | "snapshots" | ..., region, ids)`` -> list of records, or ``("count", region, tags)`` -> TotalCount
of in-progress images: what a plan asks, answered by :func:`~aliyun_ops.waiting.drivers.sync_fetch` in the worker or
:func:`~aliyun_ops.triggers.base.async_fetch` in a trigger."""


@dataclass
class RegionPlan:
    """When a region is looked at next, and what the plan has learnt about it."""

    region: str
    next_at: float = 0.0
    looks: int = 0
    probe: bool = True         # the tag probe is trusted (False after it missed an item in progress)
    slots: int = 0             # most items seen Creating at once while others were Waiting
    remaining: float | None = None
    count: int | None = None   # last probe's TotalCount


class PollPlan:
    """Poll by prediction: when to look at each region and which ids to read (see the module docstring).

    Shared by :class:`ImagesAvailableTrigger` (async) and the operators' in-worker wait (sync): both hand it to a
    driver of :mod:`aliyun_ops.waiting.drivers`, which answers :meth:`look`'s requests with its own I/O. Example::

        plan = PollPlan(watch, poll_interval=60, deadline=time.time() + 3600, probe_tags={"ops:run-key": "..."})
        event = drive(plan, sync_fetch(hook))   # ("images", region, ids) -> records; ("count", ...) -> int
    """

    def __init__(self, watch: ResourceWatch, *, poll_interval: float, deadline: float | None = None,
                 probe_tags: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.watch = watch
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.probe_tags = dict(probe_tags or {}) if watch.kind == "image" else {}
        self.clock = clock
        self.regions: dict[str, RegionPlan] = {}
        for t in watch.items.values():
            self.regions.setdefault(t.region, RegionPlan(t.region))

    # -- scheduling -----------------------------------------------------------------------------
    def active(self) -> list[RegionPlan]:
        pending = {t.region for t in self.watch.items.values() if not t.terminal}
        return [p for r, p in self.regions.items() if r in pending]

    def due(self, now: float) -> list[str]:
        return [p.region for p in self.active() if p.next_at <= now or self.expired(now)]

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def wait(self, now: float) -> float:
        """Seconds until the next region is due (0: now), never past the deadline."""
        plans = self.active()
        wait = max(0.0, min(p.next_at for p in plans) - now) if plans else 0.0
        if self.deadline is not None:
            wait = max(0.0, min(wait, self.deadline - now))
        return wait

    def spacing(self, remaining: float | None, now: float) -> float:
        """Half the estimated remaining time, at least ``poll_interval``, at most until the deadline."""
        wait = self.poll_interval if remaining is None else max(self.poll_interval, remaining / 2.0)
        if self.deadline is not None:
            wait = max(0.0, min(wait, self.deadline - now))
        return wait

    # -- one look at a region (driven by waiting.drivers.drive / adrive) ----------------------------------
    def look(self, region: str) -> Generator[Request, Any, None]:
        """Probe and/or read ``region``, update the watch, and schedule the next look."""
        watch, plan = self.watch, self.regions[region]
        pending = watch.pending_in(region)
        if not pending:
            return
        count: int | None = None
        final = True
        if self.probe_tags and plan.probe and plan.looks > 0:
            count = int((yield ("count", region, dict(self.probe_tags))) or 0)
            watch.api_calls += 1
            plan.count = count
            if count > 0:
                final = False
        if final:
            ids = [t.rid for t in pending]
        else:
            in_progress = sum(1 for t in pending if t.status in IN_PROGRESS or t.status == "Unknown")
            finished_unseen = max(0, in_progress - (count or 0))
            want = finished_unseen + 2 * max(plan.slots, 1)
            want = min(len(pending), max(BATCH, math.ceil(want / BATCH) * BATCH))
            ids = [t.rid for t in self.front(region, self.clock())[:want]]
        for start in range(0, len(ids), BATCH):
            batch = ids[start:start + BATCH]
            records = yield (f"{watch.kind}s", region, batch)
            watch.api_calls += 1
            watch.update(region, batch, records or [], self.clock())
        now = self.clock()
        pending = watch.pending_in(region)
        creating = sum(1 for t in pending if t.status == st.IMAGE_CREATING)
        if any(t.status == st.IMAGE_WAITING for t in pending):
            plan.slots = max(plan.slots, creating)
        if final and count == 0 and any(t.status in IN_PROGRESS for t in pending):
            plan.probe = False  # some image we wait for lacks the tags: read every pending id from now on
        plan.looks += 1
        plan.remaining = self.remaining(region, now, count=None if final else count)
        plan.next_at = now + self.spacing(plan.remaining, now)

    # -- prediction -----------------------------------------------------------------------------
    def _model(self, region: str) -> Callable[[Tracked], float | None]:
        """Duration of an item not yet running: seconds per GiB learnt from items with a known rate."""
        known = [t for t in self.watch.items.values() if t.region == region and t.duration]
        if not known:
            return lambda t: None
        sized = [t for t in known if t.work_gib]
        per_gib = sum(t.duration for t in sized) / sum(t.work_gib for t in sized) if sized else None
        mean = sum(t.duration for t in known) / len(known)
        return lambda t: per_gib * t.work_gib if (per_gib and t.work_gib) else mean

    def _predict(self, region: str, now: float, done_unseen: int = 0) -> list[tuple[float, Tracked]] | None:
        """``[(seconds from now until done, item)]`` for the pending items of a region; None if unknown.

        Running items finish at their ETA; ``Waiting`` ones go, in the given order, to the first free of
        ``slots`` (first come, first served). ``done_unseen`` items (the probe says they are no longer in
        progress) are taken as done: the soonest-finishing running ones first, then the head of the queue.
        """
        duration_of = self._model(region)
        running: list[tuple[float, Tracked]] = []
        queued: list[Tracked] = []
        other: list[tuple[float, Tracked]] = []
        for t in self.watch.pending_in(region):
            if t.status == st.IMAGE_WAITING:
                queued.append(t)
                continue
            if t.status not in IN_PROGRESS:
                other.append((0.0, t))  # Unknown / not found yet: look again soon
                continue
            eta = t.eta(now)
            if eta is None:
                full = duration_of(t)
                if full is None:
                    return None
                eta = full * (1.0 - (t.progress or 0.0) / 100.0)
            running.append((eta, t))
        running.sort(key=lambda x: x[0])
        slots = max(self.regions[region].slots, len(running), 1)
        skip = max(0, done_unseen)
        gone = running[:skip]
        running = running[skip:]
        skip -= len(gone)
        gone += [(0.0, t) for t in queued[:skip]]
        queued = queued[skip:]
        out = [(0.0, t) for _, t in gone] + other + running
        if queued:
            free = [e for e, _ in running]
            free = [0.0] * max(0, slots - len(free)) + free
            heapq.heapify(free)
            for t in queued:
                full = duration_of(t)
                if full is None:
                    return None
                end = heapq.heappop(free) + full
                heapq.heappush(free, end)
                out.append((end, t))
        return out

    def remaining(self, region: str, now: float, *, count: int | None = None) -> float | None:
        """Estimated seconds until every pending item of ``region`` is terminal (None: no estimate yet).

        ``count`` is the probe's TotalCount of images still in progress (None: no probe).
        """
        unseen = 0
        if count is not None:
            unseen = sum(1 for t in self.watch.pending_in(region) if t.status in IN_PROGRESS) - count
        predicted = self._predict(region, now, unseen)
        if predicted is None:
            return None
        return max((e for e, _ in predicted), default=0.0)

    def front(self, region: str, now: float) -> list[Tracked]:
        """Pending items, soonest predicted completion first (items without a prediction in given order)."""
        predicted = self._predict(region, now)
        pending = self.watch.pending_in(region)
        if predicted is None:
            known = {id(t): e for t in pending if (e := t.eta(now)) is not None}
            return sorted(pending, key=lambda t: (0, known[id(t)]) if id(t) in known else (1, 0))
        return [t for _, t in sorted(predicted, key=lambda x: x[0])]


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{int(seconds)} s"
    return f"{round(seconds / 60)} min"


class SnapshotPointWatch:
    """Images being made of paused instances, until each one's point in time is taken: every disk mapping has a
    snapshot id, or the image is no longer ``Creating`` (failed, or already Available), or it is not listed twice
    in a row. From then on its instance can be resumed. Pure; fed with DescribeImages records.

    ``take()`` hands out the images that became ready since the last call, so a driver with
    ``return_when="first"`` ends each time something new is ready.

    Example::

        watch = SnapshotPointWatch({"m-1": "cn-hangzhou"})
        watch.update("cn-hangzhou", ["m-1"], hook.describe_images("cn-hangzhou", ["m-1"]))
        watch.take()        # ["m-1"] once its snapshots are taken
    """

    def __init__(self, images: Mapping[str, str], *, missing_polls: int = 2) -> None:
        self.regions = dict(images)
        self.missing_polls = max(1, int(missing_polls))
        self.misses: dict[str, int] = {}
        self.ready: set[str] = set()
        self.fresh: list[str] = []
        self.polls = 0
        self.api_calls = 0

    def pending_by_region(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for image_id, region in self.regions.items():
            if image_id not in self.ready:
                out.setdefault(region, []).append(image_id)
        return out

    def update(self, region: str, asked: Sequence[str], records: Iterable[Mapping[str, Any]],
               now: float | None = None) -> None:
        from aliyun_ops.logic.pause import image_point_in_time_taken

        found = {r.get("ImageId"): r for r in records}
        for image_id in asked:
            if image_id in self.ready or image_id not in self.regions:
                continue
            rec = found.get(image_id)
            if rec is None:  # not listed (yet): a lagging read must not resume before the point in time
                self.misses[image_id] = self.misses.get(image_id, 0) + 1
                if self.misses[image_id] < self.missing_polls:
                    continue
            if rec is None or image_point_in_time_taken(rec) or rec.get("Status") != st.IMAGE_CREATING:
                self.ready.add(image_id)
                self.fresh.append(image_id)

    def take(self) -> list[str]:
        out, self.fresh = self.fresh, []
        return out

    @property
    def done(self) -> bool:
        return len(self.ready) == len(self.regions)

    @property
    def any_terminal(self) -> bool:
        return bool(self.fresh)

    def summary(self) -> str:
        return f"{len(self.ready)}/{len(self.regions)} images past their point in time"

    def event(self, status: str, *, message: str = "", error: dict | None = None) -> dict:
        return {"status": status, "ready": sorted(self.ready), "message": message or self.summary(),
                "error": error, "polls": self.polls, "api_calls": self.api_calls}
