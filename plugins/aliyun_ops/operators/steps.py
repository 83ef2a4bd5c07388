"""Deprecated: the restore's and verification's steps moved. Health checks are in
:mod:`aliyun_ops.actions.health`, the waits in :mod:`aliyun_ops.waiting.drivers` (``wait_for_instance``,
``wait_for_resource``). This module re-exports them for one release."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection

from aliyun_ops.actions.health import (  # noqa: F401 - re-exported
    BOOTING_STATES,
    STILL_BOOTING,
    HealthCheckFailed,
    run_health_command,
)
from aliyun_ops.waiting.drivers import wait_for_instance, wait_until  # noqa: F401 - re-exported

warnings.warn("aliyun_ops.operators.steps is deprecated: use aliyun_ops.actions.health and aliyun_ops.waiting.drivers",
              DeprecationWarning, stacklevel=2)


def wait_for_status(fetch: Callable[[], str], *, done: str, failed: Collection[str] = ("missing",), what: str,
                    timeout: float, poll_interval: float, error: type[Exception] = RuntimeError) -> None:
    """Deprecated: ``wait_for_resource`` (images, snapshots, disks) or ``wait_until``."""
    import time

    seen: dict[str, str] = {}

    def check() -> str | None:
        seen["status"] = status = fetch()
        return status if status == done or status in failed else None

    event = wait_until(check, poll_interval=poll_interval, deadline=time.time() + timeout, what=what)
    status = event.get("value") or seen.get("status") or "unknown"
    if status != done:
        raise error(f"{what} is {status}, not {done}" + ("" if status in failed else f", after {timeout:.0f}s"))
