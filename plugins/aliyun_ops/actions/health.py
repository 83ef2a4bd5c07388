"""Health checks through Cloud Assistant: run a command on one instance, retried while the machine boots.

Example::

    verdict = run_health_command(hook, "cn-hangzhou", "i-1", "systemctl is-system-running", name="check",
                                 timeout=600, poll_interval=5, client_token=lambda n: f"token-{n}", attempts=5)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aliyun_ops.logic import statuses as st

from ..hooks.ecs import EcsHook
from ..logic.commands import decode_output
from ..waiting import deadline_from, pause
from ..waiting.drivers import poll_invocations
from ..waiting.instances import InvocationWatch

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
    if status == st.INVOCATION_SUCCESS and int(res.get("ExitCode") or 0) == 0:
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
                pause(retry_interval)
    assert last is not None
    prefix = f"{STILL_BOOTING}: " if last.booting else ""
    raise error(f"{prefix}{last} (after {attempts} tr{'y' if attempts == 1 else 'ies'})")
