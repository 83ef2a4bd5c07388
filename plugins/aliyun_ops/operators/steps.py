"""Small in-worker steps shared by the restore and verification operators: wait for an instance (the project's
``InstanceWatch`` engine), wait for a snapshot/image/disk status, run a health command (``InvocationWatch``).
They poll in the worker (each step takes seconds to minutes)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection
from typing import Any

from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.operators.ecs_commands import decode_output
from aliyun_ops.waiting import deadline_from
from aliyun_ops.waiting.drivers import poll_instances, poll_invocations
from aliyun_ops.waiting.instances import InstanceWatch, InvocationWatch


def wait_for_instance(hook: EcsHook, region: str, instance_id: str, target: str, *, timeout: float,
                      poll_interval: float, error: type[Exception] = RuntimeError, log: Any = None) -> None:
    """Wait until the instance is ``target`` (``InstanceWatch``); raise ``error`` if it does not get there."""
    event = poll_instances(hook, InstanceWatch({region: [instance_id]}, target), poll_interval=poll_interval,
                           deadline=deadline_from(timeout), log=log)
    info = (event.get("instances") or {}).get(instance_id) or {}
    if not info.get("reached"):
        raise error(f"instance {instance_id} is {info.get('status') or 'unknown'}, not {target}: {event['message']}")


def wait_for_status(fetch: Callable[[], str], *, done: str, failed: Collection[str] = ("missing",), what: str,
                    timeout: float, poll_interval: float, error: type[Exception] = RuntimeError) -> None:
    """Poll ``fetch()`` (one resource: an undo snapshot, its image, a new disk) until it returns ``done``; raise
    ``error`` naming ``what`` on a ``failed`` status or after ``timeout`` seconds.

    Example: ``wait_for_status(lambda: disk_status(d), done="In_use", what=f"disk {d}", timeout=900, poll_interval=5)``
    """
    deadline = time.monotonic() + timeout
    while (status := fetch()) != done:
        if status in failed or time.monotonic() > deadline:
            raise error(f"{what} is {status or 'unknown'}, not {done}"
                        + ("" if status in failed else f", after {timeout:.0f}s"))
        time.sleep(poll_interval)


BOOTING_STATES = ("starting", "initializing")
"""``systemctl is-system-running`` states of a machine still booting: a health check saying so is retried, and at
the end reported as "still booting", not as an unhealthy system."""


STILL_BOOTING = "still booting"
_BOOTING = re.compile(rf"(^|:\s*)({'|'.join(BOOTING_STATES)})\s*$")
"""A line of output that is a booting state (``starting``, ``systemd state: starting``), not one that mentions it."""


class HealthCheckFailed(RuntimeError):
    """The health command did not exit 0; ``booting`` says whether its output shows a boot still in progress."""

    def __init__(self, message: str, *, booting: bool = False) -> None:
        super().__init__(message)
        self.booting = booting


def _health_once(hook: EcsHook, region: str, instance_id: str, command: str, *, name: str, timeout: int,
                 poll_interval: float, client_token: str) -> str:
    invoke = hook.run_command(region, [instance_id], command, timeout=timeout, name=name, client_token=client_token)
    event = poll_invocations(hook, InvocationWatch({region: [invoke]}), poll_interval=poll_interval,
                             deadline=deadline_from(timeout + 120))
    if event.get("status") != "success":
        raise HealthCheckFailed(f"health command {invoke} not finished: {event.get('message')}")
    res = (hook.describe_invocation_results(region, invoke, instance_id) or [{}])[0]
    status = res.get("InvocationStatus", "")
    if status == "Success" and int(res.get("ExitCode") or 0) == 0:
        return f"healthy ({invoke})"
    output = decode_output(res.get("Output")).strip()[-200:]
    booting = any(_BOOTING.search(line) for line in output.lower().splitlines())
    raise HealthCheckFailed(f"health command {invoke} {status} (exit code {res.get('ExitCode')}): {output}",
                            booting=booting)


def run_health_command(hook: EcsHook, region: str, instance_id: str, command: str, *, name: str, timeout: int,
                       poll_interval: float, client_token: Callable[[int], str], attempts: int = 1,
                       retry_interval: float = 30.0, error: type[Exception] = RuntimeError, log: Any = None) -> str:
    """Run ``command`` on one instance and wait for it, up to ``attempts`` times ``retry_interval`` seconds apart (a
    machine just started may still be booting: systemd ``starting``); returns a short verdict once it exits 0.
    Raises ``error`` with the exit code and the tail of the last output otherwise; its message starts with
    :data:`STILL_BOOTING` when the last output shows a boot in progress.
    ``client_token(n)`` gives the ClientToken of try ``n`` (each try is a new invocation)."""
    last: HealthCheckFailed | None = None
    for n in range(1, max(1, int(attempts)) + 1):
        try:
            verdict = _health_once(hook, region, instance_id, command, name=name, timeout=timeout,
                                   poll_interval=poll_interval, client_token=client_token(n))
            return verdict if n == 1 else f"{verdict}, on try {n}"
        except HealthCheckFailed as err:
            last = err
            if n < attempts:
                if log:
                    log.info("%s: health check try %d of %d failed (%s): again in %.0fs", instance_id, n, attempts,
                             err, retry_interval)
                time.sleep(retry_interval)
    assert last is not None
    prefix = f"{STILL_BOOTING}: " if last.booting else ""
    raise error(f"{prefix}{last} (after {attempts} tr{'y' if attempts == 1 else 'ies'})")
