"""Small in-worker steps shared by the restore and verification operators: wait for a status, run a health
command through Cloud Assistant. They poll in the worker (each step takes seconds to minutes)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Collection

from aliyun_ops.hooks.ecs import EcsHook

FINAL_INVOCATION = ("Success", "Failed", "Timeout", "Error", "Aborted", "Cancelled", "Terminated")


def wait_for_status(fetch: Callable[[], str], *, done: str, failed: Collection[str] = ("missing",), what: str,
                    timeout: float, poll_interval: float, error: type[Exception] = RuntimeError) -> None:
    """Poll ``fetch()`` until it returns ``done``; raise ``error`` naming ``what`` on a ``failed`` status or after
    ``timeout`` seconds.

    Example: ``wait_for_status(lambda: disk_status(d), done="In_use", what=f"disk {d}", timeout=900, poll_interval=5)``
    """
    deadline = time.monotonic() + timeout
    while (status := fetch()) != done:
        if status in failed or time.monotonic() > deadline:
            raise error(f"{what} is {status or 'unknown'}, not {done}"
                        + ("" if status in failed else f", after {timeout:.0f}s"))
        time.sleep(poll_interval)


def run_health_command(hook: EcsHook, region: str, instance_id: str, command: str, *, name: str, timeout: int,
                       poll_interval: float, client_token: str, error: type[Exception] = RuntimeError) -> str:
    """Run ``command`` on one instance and wait for it; returns a short verdict when it exits 0, raises ``error``
    with the exit code and the tail of its output otherwise."""
    invoke = hook.run_command(region, [instance_id], command, timeout=timeout, name=name, client_token=client_token)
    deadline = time.monotonic() + timeout + 120
    while True:
        res = (hook.describe_invocation_results(region, invoke, instance_id) or [{}])[0]
        status = res.get("InvocationStatus", "")
        if status in FINAL_INVOCATION:
            break
        if time.monotonic() > deadline:
            raise error(f"health command {invoke} still {status or 'pending'}")
        time.sleep(poll_interval)
    if status == "Success" and int(res.get("ExitCode") or 0) == 0:
        return f"healthy ({invoke})"
    output = base64.b64decode(res.get("Output") or "").decode(errors="replace").strip()[-200:]
    raise error(f"health command {invoke} {status} (exit code {res.get('ExitCode')}): {output}")
