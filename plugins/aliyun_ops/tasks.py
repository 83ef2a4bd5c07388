"""Deprecated: what every aliyun-ops task shares moved to :mod:`aliyun_ops.runtime` (the name said ``@task``, which
it is not). Re-exported here for one release."""

from __future__ import annotations

import warnings

from aliyun_ops.runtime import (  # noqa: F401 - re-exported
    DEFAULT_CONN_ID,
    AliyunOperatorMixin,
    aliyun_template_fields,
    naming_values,
    run_date,
    run_info,
    run_key,
    task_client_token,
)

warnings.warn("aliyun_ops.tasks is deprecated: use aliyun_ops.runtime", DeprecationWarning, stacklevel=2)
