"""Base class of our triggers: serialisation from declared fields, connection, region, poll interval, deadline.

The waiting itself is :func:`aliyun_ops.waiting.drivers.adrive` over a plan of :mod:`aliyun_ops.waiting`.
"""

from __future__ import annotations

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
