"""Triggers that wait for many ECS images (or snapshots) at once, across regions.

They poll **by prediction**, per region (:class:`PollPlan`), not by interval:

* Spacing: after each look at a region the plan estimates the region's remaining time (per-item
  ``Progress`` rates, a duration-per-GiB model learnt from them for items not yet running, and a
  first-come-first-served queue simulation with as many slots as copies were seen running at once)
  and looks again after about **half** of it, never sooner than ``poll_interval`` and never past the
  absolute ``deadline``. The number of looks grows like ``log2(duration / poll_interval)``; the last
  completion is noticed within about ``poll_interval``. No estimate yet: ``poll_interval``.
* What is read: without ``probe_tags``, every pending id (batches of 100). With ``probe_tags`` (tags
  that every watched image carries, e.g. the run's ``ops:run-key``/``ops:dag-id``/``ops:managed-by``),
  a look starts with one cheap probe, ``DescribeImages Tag.N=... Status=Creating,Waiting PageSize=1``
  -> ``TotalCount``; only the front of the queue (items finished since the last look plus the running
  ones, at least one batch of 100) is read, and all pending ids once the count reaches 0. If a final
  read finds an item in progress that the probe did not count, the region falls back to reading every
  pending id.

An item stops being read once it is terminal; ``observed_at`` is when the watch saw it terminal (with
probing, possibly well after the fact). Exactly one :class:`TriggerEvent` is yielded::

    {"status": "success" | "timeout" | "error",
     "items": {"m-1": {"region", "status", "progress", "size_gib", "reason", "observed_at"}, ...},
     "timed_out": ["m-7"],            # still not terminal at the deadline
     "message": "...", "error": {...} | None, "polls": 3, "api_calls": 4,
     "carry": ...}                    # the trigger's ``carry`` argument, unchanged (if given)

``carry`` (the same name as the instance triggers') takes the deferring operator's in-flight results through the
deferral: ``dag.test()`` resumes a task with ``next_kwargs={"event": ...}`` only, dropping ``defer(kwargs=...)``.

With ``return_when="first"`` (an operator's sliding window waiting for a free slot) the trigger ends as
soon as any item is terminal, with ``status == "progress"``; the others are still pending. It does so no
sooner than ``min_partial_seconds`` (default ``min(30, 5 x poll_interval)``) after it started: an event
fired within seconds of the deferral races the scheduler's processing of the deferring worker's exit,
and Airflow 3.3 then fails the resumed task ("state changed externally", apache/airflow#67287, #72716).

``status == "success"`` means every item reached a terminal state (some may have failed: look at
each item's ``status``). ``"error"`` is a permanent API error (the hook already retried the
transient ones); the items carry what was known at that point.

The watch logic (:class:`ResourceWatch`) is plain Python shared with the operators' in-process
(non-deferrable) polling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent

from aliyun_ops.triggers.base import AliyunBaseTrigger, async_fetch
from aliyun_ops.waiting.drivers import adrive
from aliyun_ops.waiting.images import (
    MISSING,
    PROGRESS,
    RETURN_WHEN,
    PollPlan,
    ResourceWatch,
    normalize_items,
)

__all__ = ["MISSING", "PROGRESS", "ImagesAvailableTrigger", "PollPlan", "ResourceWatch", "SnapshotsReadyTrigger",
           "normalize_items"]

class _BatchWatchTrigger(AliyunBaseTrigger):
    """Polls many resources per region, by prediction (:class:`PollPlan`), until all are terminal or the deadline."""

    kind: ClassVar[str] = "image"
    id_key: ClassVar[str] = "image_id"
    serialized_fields: ClassVar[tuple[str, ...]] = ("items", "missing_polls", "carry", "probe_tags", "return_when",
                                                    "min_partial_seconds")

    def __init__(self, *, items: Sequence[Mapping[str, str]], missing_polls: int = 2, carry: Any = None,
                 probe_tags: Mapping[str, str] | None = None, return_when: str = "all",
                 min_partial_seconds: float | None = None, **kwargs: Any) -> None:
        legacy = kwargs.pop("echo", None)  # the old name, in triggers serialized before the rename
        super().__init__(**kwargs)
        if return_when not in RETURN_WHEN:
            raise ValueError(f"return_when must be one of {RETURN_WHEN}, got {return_when!r}")
        self.return_when = return_when
        self.min_partial_seconds = float(min_partial_seconds if min_partial_seconds is not None
                                         else min(30.0, 5 * self.poll_interval))
        self.carry = carry if carry is not None else legacy  # JSON-safe, handed back unchanged in the event
        self.items = [{"region": i["region"], "id": i["id"]} for i in normalize_items(
            items, default_region=kwargs.get("region"), id_key=self.id_key)]
        self.missing_polls = int(missing_polls)
        self.probe_tags = dict(probe_tags) if probe_tags else None

    def make_hook(self):
        from aliyun_ops.hooks.ecs import EcsHook

        return EcsHook(aliyun_conn_id=self.aliyun_conn_id, region=self.region)

    async def run(self):
        watch = ResourceWatch(self.items, kind=self.kind, missing_polls=self.missing_polls)
        if not self.items:
            yield TriggerEvent(self._carry(watch.event("success", message="nothing to wait for")))
            return
        plan = PollPlan(watch, poll_interval=self.poll_interval, deadline=self.deadline, probe_tags=self.probe_tags)
        try:
            hook = self.make_hook()
            await hook.asettings()
            event = await adrive(plan, async_fetch(hook), log=self.log, label=f"{self.kind} wait", return_when=self.return_when,
                                 min_partial_seconds=self.min_partial_seconds)
        except ValueError as err:  # e.g. a broken connection definition
            event = watch.event("error", message=str(err), error={"code": "ValueError", "message": str(err)})
        yield TriggerEvent(self._carry(event))

    def _carry(self, event: dict) -> dict:
        if self.carry is not None:
            event["carry"] = self.carry
        return event


class ImagesAvailableTrigger(_BatchWatchTrigger):
    """Wait for many custom images (in one or more regions) to become Available, CreateFailed or gone.

    Example::

        ImagesAvailableTrigger(images=[{"region": "cn-hangzhou", "image_id": "m-1"},
                                       {"region": "cn-shanghai", "image_id": "m-2"}],
                               poll_interval=60, deadline=time.time() + 7200,
                               probe_tags={"ops:run-key": "2024-05-01T00:00:00+00:00", "ops:dag-id": "backup"})

    ``probe_tags`` (optional): tags every watched image carries; with them a look at a region costs one
    ``TotalCount`` probe plus a read of the queue's front (see :class:`PollPlan`).

    The event's ``items`` maps each image id to ``{"region", "status", "progress", "size_gib",
    "reason", "observed_at", "snapshot_ids"}``; ``timed_out`` lists ids still pending at the deadline.
    """

    kind = "image"
    id_key = "image_id"

    def __init__(self, *, images: Sequence[Mapping[str, str]] | None = None,
                 items: Sequence[Mapping[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(items=items if items is not None else (images or []), **kwargs)



class SnapshotsReadyTrigger(_BatchWatchTrigger):
    """Wait for many snapshots to be ``accomplished`` (or ``failed``/gone); batched DescribeSnapshots.

    Example::

        SnapshotsReadyTrigger(items=[{"region": "cn-hangzhou", "id": "s-1"}], poll_interval=30,
                              deadline=time.time() + 3600)
    """

    kind = "snapshot"
    id_key = "snapshot_id"

