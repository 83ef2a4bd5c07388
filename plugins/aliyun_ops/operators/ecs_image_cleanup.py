"""Delete images with their snapshots (never one that is not ours, in use, or being copied without ``force``)."""

from __future__ import annotations

from typing import Any

from aliyun_ops.operators.base import AliyunItemsOperator
from aliyun_ops.operators.base.image_deletion import ImageDeletionMixin


class DeleteImagesOperator(ImageDeletionMixin, AliyunItemsOperator):
    __doc__ = ImageDeletionMixin.__doc__

    def __init__(self, **kwargs: Any) -> None:  # its own, so that Airflow applies default_args to it
        super().__init__(**kwargs)


__all__ = ["DeleteImagesOperator"]
