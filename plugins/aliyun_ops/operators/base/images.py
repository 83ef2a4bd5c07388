"""The base of the image and snapshot operators: batch settings and the sliding window (:class:`BatchImageOperator`).

Every operator built on it works on many items at once with OOS semantics (``concurrency``, ``max_errors``) and
returns one small JSON-safe dict per item (``status``: success | failed | skipped, ``reason``). Creates are
idempotent: a stable ``ClientToken`` per (run, task, item) and a look-up of what an earlier try made (provenance
tags, Airflow's task state store) before creating.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.logic import provenance as pv
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.args import all_static, check_batch_args, check_seconds
from aliyun_ops.logic.budget import ErrorBudget, resolve_concurrency
from aliyun_ops.logic.outcome import FAILED, PENDING, QUEUED, SKIPPED, SUCCESS
from aliyun_ops.operators.base import AliyunItemsOperator
from aliyun_ops.runtime import run_info
from aliyun_ops.triggers.ecs_images import ImagesAvailableTrigger, SnapshotsReadyTrigger
from aliyun_ops.waiting import deadline_from
from aliyun_ops.waiting.drivers import drive, sync_fetch
from aliyun_ops.waiting.images import PROGRESS, PollPlan, ResourceWatch

SUBMIT_PARALLELISM = 10
"""Create/copy calls sent at once when a window opens (the hook's rate limit applies on top)."""
SOURCE_DISK = "ops:source-disk"
"""Provenance tag of snapshots we create (the disk they were taken of)."""
STATE_CREATE = "aliyun_ops.create_image"
STATE_COPY = "aliyun_ops.copy_image"
STATE_SNAPSHOT = "aliyun_ops.create_snapshot"
STATE_DELETE = "aliyun_ops.delete_image_snapshots"
DELETE_BATCH_HINT = 50



class ImageBatchMixin:
    """Batch settings and the sliding window of the image and snapshot operators: ``concurrency`` items in flight,
    waits deferred to :class:`ImagesAvailableTrigger` / :class:`SnapshotsReadyTrigger` or polled in the worker."""

    hook_class = EcsHook
    result_key_fields: tuple[str, ...] = ("image_id",)
    state_field = "image_status"
    watch_kind = "image"
    default_timeout = 4 * 3600.0

    def __init__(self, *, concurrency: int | str = 10, max_errors: int | str = 0,
                 wait_for_completion: bool = True, deferrable: bool = True, poll_interval: float = 30.0,
                 timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.concurrency = concurrency
        self.max_errors = max_errors
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        if all_static(concurrency, max_errors):
            check_batch_args(concurrency, max_errors)
        if all_static(poll_interval):
            check_seconds("poll_interval", poll_interval)
        if all_static(timeout):
            check_seconds("timeout", timeout, allow_none=True)

    def _set_made_fields(self, *, description: str | None, tags: Mapping[str, str] | None, policy: str | None,
                         retention_days: int | None) -> None:
        """What every image, copy or snapshot this task makes carries: description, user tags, and the retention
        policy and days of its provenance tags."""
        self.description = description
        self.tags = tags
        self.policy = policy
        self.retention_days = retention_days

    # validation shared by execute()
    def _check_common(self) -> None:
        check_batch_args(self.concurrency, self.max_errors)
        check_seconds("poll_interval", self.poll_interval)
        check_seconds("timeout", self.timeout, allow_none=True)

    @property
    def _timeout_seconds(self) -> float:
        return float(self.timeout) if self.timeout is not None else self.default_timeout

    # -- waiting -------------------------------------------------------------------------------
    def _wait_items(self, results: Sequence[Mapping]) -> list[dict]:
        """``[{"region", "id"}]`` of results still in flight (``status == "pending"``)."""
        return [{"region": r["region"], "id": r[self._id_field]} for r in results if r.get("status") == PENDING]

    _id_field = "image_id"

    def _probe_tags(self, context: Any) -> dict[str, str] | None:
        """Tags every image this task makes carries (provenance): the watch's cheap per-region probe."""
        if self.watch_kind != "image":
            return None
        info = run_info(context)
        return {pv.RUN_KEY: info["run_key"], pv.DAG_ID: info["dag_id"], pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}

    def _wait_then_finish(self, context: Any, results: list[dict]) -> list[dict]:
        """Submit what is queued within the window, wait, and go on until every item is final."""
        return self._run_window(context, results, deadline_from(self._timeout_seconds))

    # -- the sliding window ------------------------------------------------------------------------
    def _submit(self, context: Any, batch: list[dict]) -> None:
        """Start the queued items of ``batch`` (subclasses): each ends ``pending`` (with its id) or final."""
        raise NotImplementedError(f"{type(self).__name__} queues items but cannot submit them")

    def _released(self, context: Any, results: list[dict]) -> None:
        """Hook: these queued items will never be submitted (error budget or timeout)."""

    def _window(self, results: Sequence[Mapping]) -> int:
        """Items in flight at once: ``concurrency`` (a percentage of all items, rounded up); everything
        when not waiting (nothing would ever free a slot)."""
        if not self.wait_for_completion:
            return max(1, len(results))
        return resolve_concurrency(self.concurrency, len(results))

    def _run_window(self, context: Any, results: list[dict], deadline: float | None) -> list[dict]:
        """``concurrency`` bounds the items in flight (submitted and not final), not only the call rate: queued
        items are submitted as slots free, in their ``_order``; once failures exceed ``max_errors`` the rest
        are skipped. Waits are deferred with ``return_when="first"`` while items are queued."""
        self._deadline = deadline
        while True:
            queued = sorted((r for r in results if r.get("status") == QUEUED), key=lambda r: r.get("_order", 0))
            if queued and deadline is not None and time.time() >= deadline:
                for r in queued:
                    r.update(status=FAILED, reason=f"not started: the {self._timeout_seconds:.0f}s timeout passed")
                self._released(context, queued)
                queued = []
            if queued:
                budget = ErrorBudget.after((r.get("status", "") for r in results), self.max_errors)
                if budget.exhausted:
                    for r in queued:
                        r.update(status=SKIPPED, reason=budget.not_started)
                    self._released(context, queued)
                    queued = []
            in_flight = sum(1 for r in results if r.get("status") == PENDING)
            batch = queued[:max(0, self._window(results) - in_flight)]
            if batch:
                self.log.info("submitting %d of %d queued item(s) (%d in flight, window %d)", len(batch),
                              len(queued), in_flight, self._window(results))
                self._submit(context, batch)
                queued = [r for r in queued if r.get("status") == QUEUED]
            items = self._wait_items(results)
            if not self.wait_for_completion or (not items and not queued):
                self._apply_event(results, None if not self.wait_for_completion else {"items": {}})
                return self.conclude(context, results)
            if not items:  # everything submitted in this round failed at once: refill
                continue
            self._apply_event(results, self._wait_for_items(context, items, results, deadline, bool(queued)))

    def _wait_for_items(self, context: Any, items: list[dict], results: list[dict], deadline: float | None,
                        any_queued: bool) -> Mapping:
        """Wait for all of ``items`` (or, while items are queued, for the first to finish)."""
        return_when = "first" if any_queued else "all"
        probe_tags = self._probe_tags(context) if return_when == "all" else None
        self.log.info("waiting for %s of %d %s(s) (timeout %.0fs, %s)", "one" if any_queued else "all", len(items),
                      self.watch_kind, self._timeout_seconds, "deferred" if self.deferrable else "in the worker")
        trigger_cls = ImagesAvailableTrigger if self.watch_kind == "image" else SnapshotsReadyTrigger
        # the results travel in the trigger's carry: dag.test() drops defer(kwargs=...) on resume
        trigger = trigger_cls(items=items, aliyun_conn_id=self.aliyun_conn_id, region=self.region,
                              poll_interval=float(self.poll_interval), deadline=deadline,
                              carry={"results": results, "deadline": deadline}, probe_tags=probe_tags,
                              return_when=return_when)
        return self.hand_off(trigger, timeout=timedelta(seconds=self._timeout_seconds + 600),
                             wait_here=lambda: self._poll_in_process(items, deadline, probe_tags, return_when))

    def _poll_in_process(self, items: list[dict], deadline: float | None,
                         probe_tags: Mapping[str, str] | None = None, return_when: str = "all") -> dict:
        """Same logic as the trigger (:class:`PollPlan`: probe, read the front, sleep by prediction) in the worker."""
        watch = ResourceWatch(items, kind=self.watch_kind)
        plan = PollPlan(watch, poll_interval=float(self.poll_interval), deadline=deadline, probe_tags=probe_tags)
        return drive(plan, sync_fetch(self.hook), log=self.log, label=f"{self.watch_kind} wait",
                     return_when=return_when)

    def resume(self, context: Any, carry: Mapping, event: Mapping) -> list[dict]:
        results = [dict(r) for r in carry.get("results") or []]
        self._apply_event(results, event)
        deadline = carry.get("deadline")
        return self._run_window(context, results, float(deadline) if deadline is not None else None)

    def _apply_event(self, results: list[dict], event: Mapping | None) -> None:
        """Turn pending results into success/failed from the watch event (None: not waited for). A
        ``progress`` event (some items final) leaves the others pending."""
        items = (event or {}).get("items") or {}
        partial = (event or {}).get("status") == PROGRESS
        timed_out = set((event or {}).get("timed_out") or []) if not partial else set()
        err_msg = (event or {}).get("message") if (event or {}).get("status") == "error" else None
        for r in results:
            if r.get("status") != PENDING:
                continue
            rid = r[self._id_field]
            if event is None:
                r["status"] = SUCCESS
                r["reason"] = r.get("reason") or "submitted (not waiting for completion)"
                continue
            state = items.get(rid) or {}
            if partial and not state.get("observed_at"):
                continue
            t0 = r.pop("_t0", None)
            r[f"{self.watch_kind}_status"] = state.get("status", r.get(f"{self.watch_kind}_status"))
            if state.get("size_gib") is not None:
                r["size_gib"] = state["size_gib"]
            if state.get("snapshot_ids"):
                r["snapshot_ids"] = state["snapshot_ids"]
            observed = state.get("observed_at")
            if observed and t0:
                r["seconds"] = round(max(0.0, observed - t0), 1)
            status = state.get("status")
            if rid in timed_out or not state.get("observed_at"):
                r["status"] = FAILED
                why = err_msg or f"timed out after {self._timeout_seconds:.0f}s"
                r["reason"] = f"{why} (last status {status or 'unknown'}, progress {state.get('progress') or '?'})"
            elif status in ((st.IMAGE_AVAILABLE, st.IMAGE_DEPRECATED) if self.watch_kind == "image" else (st.SNAPSHOT_ACCOMPLISHED,)):
                r["status"] = SUCCESS
            else:
                r["status"] = FAILED
                r["reason"] = state.get("reason") or f"{self.watch_kind} is {status}"


class BatchImageOperator(ImageBatchMixin, AliyunItemsOperator):
    """Deprecated (kept for one release): build on ``ImageBatchMixin, AliyunItemsOperator`` instead."""

    def __init__(self, **kwargs: Any) -> None:  # its own, so that Airflow applies default_args to it
        super().__init__(**kwargs)

