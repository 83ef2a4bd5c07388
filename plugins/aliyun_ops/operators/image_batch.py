"""Deprecated: the image operators' base moved to :mod:`aliyun_ops.operators.base.images`, argument checks to
:mod:`aliyun_ops.logic.args`, run identity to :mod:`aliyun_ops.runtime`, image look-ups to
:mod:`aliyun_ops.actions.images` and :mod:`aliyun_ops.logic.targets`. Re-exported here for one release."""

from __future__ import annotations

import warnings

from aliyun_ops.actions.images import describe_by_region  # noqa: F401
from aliyun_ops.logic.args import (  # noqa: F401
    all_static,
    as_list,
    check_batch_args,
    check_retention_days,
    check_seconds,
    is_templated,
)
from aliyun_ops.logic.naming import short_hash  # noqa: F401
from aliyun_ops.logic.targets import normalize_images, source_size_gib  # noqa: F401
from aliyun_ops.operators.base.images import (  # noqa: F401
    DELETE_BATCH_HINT,
    SOURCE_DISK,
    STATE_COPY,
    STATE_CREATE,
    STATE_DELETE,
    STATE_SNAPSHOT,
    SUBMIT_PARALLELISM,
    BatchImageOperator,
)
from aliyun_ops.runtime import naming_values, run_date, run_info  # noqa: F401

warnings.warn("aliyun_ops.operators.image_batch is deprecated: see its docstring for where each name moved",
              DeprecationWarning, stacklevel=2)
