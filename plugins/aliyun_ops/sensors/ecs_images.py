"""Sensor waiting for custom images to become Available (deferrable, batched)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout

from aliyun_ops.exceptions import WaitFailed
from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.logic import statuses as st
from aliyun_ops.runtime import DEFAULT_CONN_ID, AliyunOperatorMixin, aliyun_template_fields
from aliyun_ops.triggers.ecs_images import ImagesAvailableTrigger
from aliyun_ops.waiting.images import MISSING, ResourceWatch, normalize_items

OK_STATES = (st.IMAGE_AVAILABLE,)


class WaitForImageAvailableSensor(AliyunOperatorMixin, BaseSensorOperator):
    """Wait until every image is ``Available``; fail at once when one reaches a ``fail_on`` state or vanishes.

    :param image_ids: an image id or a list (in ``region``, default the connection's); or
    :param images: ``[{"region", "image_id"}]`` (e.g. CreateImage/CopyImage results), across regions
    :param deferrable: wait in the triggerer (default True); poke mode makes one batched DescribeImages
        call per region per poke
    :param fail_on: statuses that fail the sensor immediately (default CreateFailed, UnAvailable)

    Returns ``{image_id: {"region", "status", "progress", "size_gib", ...}}``.

    Example::

        WaitForImageAvailableSensor(task_id="wait_copies", images=copy.output, poke_interval=60,
                                    timeout=4 * 3600)
    """

    template_fields = aliyun_template_fields("image_ids", "images")
    hook_class = EcsHook

    def __init__(self, *, image_ids: str | Sequence[str] | None = None, images: Sequence[Mapping] | None = None,
                 aliyun_conn_id: str = DEFAULT_CONN_ID, region: str | None = None, deferrable: bool = True,
                 fail_on: Sequence[str] = (st.IMAGE_CREATE_FAILED, st.IMAGE_UNAVAILABLE), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aliyun_conn_id = aliyun_conn_id
        self.region = region
        self.image_ids = image_ids
        self.images = images
        self.deferrable = deferrable
        self.fail_on = tuple(fail_on)
        if (image_ids is None) == (images is None):
            raise ValueError("pass exactly one of image_ids or images")

    def _items(self) -> list[dict]:
        if self.images is not None:
            rows = [i for i in self.images if not isinstance(i, Mapping) or i.get("image_id") or "status" not in i]
            return normalize_items(rows, default_region=self.region or self._default_region())
        return normalize_items(self.image_ids or [], default_region=self.region or self._default_region())

    def _default_region(self) -> str | None:
        try:
            return self.hook.region
        except ValueError:
            return None

    def _check(self, watch: ResourceWatch) -> dict | None:
        """Raise on a failed image; the final states once all are Available; None while waiting."""
        bad = {rid: t for rid, t in watch.items.items()
               if t.terminal and (t.status in self.fail_on or t.status == MISSING)}
        if bad:
            raise WaitFailed("image(s) will not become Available: " + ", ".join(
                f"{rid} {t.status} in {t.region}" for rid, t in sorted(bad.items())))
        if all(t.ok for t in watch.items.values()):
            return {rid: t.to_dict() for rid, t in watch.items.items()}
        return None

    def poke(self, context: Any) -> PokeReturnValue | bool:
        items = self._items()
        if not items:
            return PokeReturnValue(is_done=True, xcom_value={})
        watch = ResourceWatch(items, kind="image", missing_polls=1)
        for region, ids in watch.pending_by_region().items():
            watch.update(region, ids, self.hook.describe_images(region, image_ids=ids), time.time())
        self.log.info("images: %s", watch.summary())
        done = self._check(watch)
        return PokeReturnValue(is_done=done is not None, xcom_value=done)

    def execute(self, context: Any) -> Any:
        items = self._items()  # ValueError on bad input, before any API call
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self.defer(trigger=ImagesAvailableTrigger(items=items, aliyun_conn_id=self.aliyun_conn_id,
                                                  region=self.region, poll_interval=float(self.poke_interval),
                                                  deadline=time.time() + float(self.timeout)),
                   method_name="execute_complete", timeout=timedelta(seconds=float(self.timeout) + 600))

    def execute_complete(self, context: Any, event: Mapping | None = None) -> dict:
        if not event:
            raise WaitFailed(f"{self.task_id}: resumed without a trigger event")
        if event.get("status") == "error":
            raise WaitFailed(f"waiting for images failed: {event.get('message')}")
        items = event.get("items") or {}
        bad = {rid: s for rid, s in items.items() if s.get("status") not in OK_STATES
               and rid not in (event.get("timed_out") or [])}
        if bad:
            raise WaitFailed("image(s) will not become Available: " + ", ".join(
                f"{rid} {s.get('status')} in {s.get('region')}" for rid, s in sorted(bad.items())))
        if event.get("status") == "timeout" or event.get("timed_out"):
            raise AirflowSensorTimeout(f"images not Available in time: {', '.join(event.get('timed_out') or [])}")
        return dict(items)
