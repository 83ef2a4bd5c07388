"""Base class of our triggers: serialisation from declared fields, deadline, adaptive polling."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger


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

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.time()

    def expired(self) -> bool:
        left = self.time_left()
        return left is not None and left <= 0

    def next_wait(self, eta_seconds: float | None = None) -> float:
        """Sleep until the estimated completion, but never longer than ``poll_interval`` or the deadline."""
        floor = min(1.0, self.poll_interval)
        wait = self.poll_interval if eta_seconds is None else max(floor, min(self.poll_interval, eta_seconds))
        left = self.time_left()
        if left is not None:
            wait = max(0.0, min(wait, left))
        return wait
