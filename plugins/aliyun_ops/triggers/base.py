"""Base class of our triggers: serialisation from declared fields, connection, region, poll interval, deadline.

The waiting itself is :func:`aliyun_ops.waiting.drivers.adrive` over a plan of :mod:`aliyun_ops.waiting`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger

from aliyun_ops.waiting.images import PROBE_STATUSES, Request


def async_fetch(hook: Any) -> Callable[[Request], Awaitable[Any]]:
    """Answer a plan's requests (instances, invocations, images, snapshots, a count of images in progress) with the
    hook's async methods, one client per region: the async twin of :func:`aliyun_ops.waiting.drivers.sync_fetch`."""
    clients: dict[str, Any] = {}

    async def fetch(request: Request) -> Any:
        what, region, arg = request
        client = clients.get(region) or clients.setdefault(region, hook.get_async_client(region))
        if what == "instances":
            return await hook.describe_instances_async(region, arg, client=client)
        if what == "invocations":
            return await hook.describe_invocations_async(region, arg, client=client)
        if what == "images":
            return await hook.describe_images_async(region, arg, client=client)
        if what == "snapshots":
            return await hook.describe_snapshots_async(region, arg, client=client)
        if what == "count":
            return await hook.count_images_async(region, arg, status=PROBE_STATUSES, client=client)
        raise ValueError(f"a wait asked for {what!r}, which no trigger answers")

    return fetch


class AliyunBaseTrigger(BaseTrigger):
    """A trigger whose ``serialize()`` is built from ``serialized_fields``.

    ``deadline`` is an absolute epoch time (so a triggerer restart keeps the same deadline);
    ``poll_interval`` is the longest wait between polls in seconds.

    Example::

        class MyTrigger(AliyunBaseTrigger):
            serialized_fields = ("image_ids",)
            def __init__(self, *, image_ids, **kwargs):
                super().__init__(**kwargs)
                self.image_ids = image_ids
            async def run(self): ...
    """

    serialized_fields: ClassVar[tuple[str, ...]] = ()
    base_fields: ClassVar[tuple[str, ...]] = ("aliyun_conn_id", "region", "poll_interval", "deadline")

    def __init__(self, *, aliyun_conn_id: str = "aliyun_default", region: str | None = None,
                 poll_interval: float = 30.0, deadline: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.aliyun_conn_id = aliyun_conn_id
        self.region = region
        self.poll_interval = float(poll_interval)
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        cls = type(self)
        fields = {name: getattr(self, name) for name in (*self.base_fields, *self.serialized_fields)}
        return f"{cls.__module__}.{cls.__qualname__}", fields
