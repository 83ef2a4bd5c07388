"""Deprecated: the thread pool of per-item calls moved to :mod:`aliyun_ops.actions.pool` (the name said ``batch``,
which it is not). Re-exported here for one release."""

from __future__ import annotations

import warnings

from aliyun_ops.actions.pool import ItemResult, run_batch  # noqa: F401 - re-exported

warnings.warn("aliyun_ops.batch is deprecated: use aliyun_ops.actions.pool", DeprecationWarning, stacklevel=2)
