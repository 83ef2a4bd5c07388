"""Undoing pauses early and finding who paused: the early resume (right after an image's snapshots are taken) and
the DagRun look-up of a run key. The pause tags are described in :mod:`aliyun_ops.logic.pause`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aliyun_ops.logic import statuses as st

from ..exceptions import AliyunApiError
from ..hooks.ecs import EcsHook
from ..logic import pause
from ..logic.commands import MAX_INSTANCES_PER_CALL
from ..logic.targets import by_region
from ..runtime import task_client_token
from .power import call_power

STARTED = st.STARTED
"""Statuses that mean a StartInstances was applied, whatever its answer said."""


def run_query(key: str) -> dict[str, list]:
    """The DagRun look-up of a run key (:func:`~aliyun_ops.runtime.run_key`): a logical date, else a run id."""
    try:
        when = datetime.fromisoformat(key)
    except ValueError:
        return {"run_ids": [key]}
    return {"logical_dates": [when]} if when.tzinfo else {"run_ids": [key]}


def resume_early(hook: EcsHook, context: Any, paused: Sequence[Mapping[str, Any]], *,
                 thaw_command: str | None, log: Any) -> dict[str, str]:
    """Request the undo of these paused instances now, without waiting (the teardown verifies and untags).

    ``paused``: ``[{"instance_id", "region", "mode", "status"}]``. Stopped ones of a ``stop`` pause get
    StartInstances, Running ones of a ``freeze`` pause get the thaw command; each is tagged
    ``ops:resumed-at`` (and ``ops:thaw-invoke``). Errors are logged, never raised: the final resume
    (:class:`ResumePausedOperator`) does whatever this could not. Returns ``{instance_id: action}``.
    """
    done: dict[str, str] = {}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    plans = {p["instance_id"]: pause.plan_resume(p.get("mode", ""), p.get("status")) for p in paused}
    for region, ids in by_region([p for p in paused if plans[p["instance_id"]] == pause.START]).items():
        try:
            answers = call_power(hook, lambda r=region, i=ids: hook.start_instances(r, i), region, ids, STARTED, log)
            accepted = [i for i, answer in answers.items() if str(answer.get("Code")) == "200"]
            hook.tag_resources(region, "instance", accepted, {pause.RESUMED_AT: now})
            done.update(dict.fromkeys(accepted, "start"))
        except AliyunApiError as err:
            log.warning("early start in %s failed (%s): the resume teardown will start them", region, err)
    frozen = [p for p in paused if plans[p["instance_id"]] == pause.THAW]
    for region, ids in (by_region(frozen).items() if thaw_command else ()):
        for n in range(0, len(ids), MAX_INSTANCES_PER_CALL):
            chunk = ids[n:n + MAX_INSTANCES_PER_CALL]
            digest = pause.pause_digest(p for p in frozen if p["instance_id"] in chunk)
            ti = context["ti"]
            try:
                invoke_id = hook.run_command(region, chunk, thaw_command, timeout=600,
                                             name=f"aliyun-ops-thaw-{ti.dag_id}"[:128],
                                             client_token=task_client_token(context, "early-thaw",
                                                                                          region, digest))
                hook.tag_resources(region, "instance", chunk, {pause.RESUMED_AT: now, pause.THAW_INVOKE: invoke_id})
                done.update(dict.fromkeys(chunk, "thaw"))
            except AliyunApiError as err:
                log.warning("early thaw in %s failed (%s): the resume teardown will thaw them", region, err)
    if done:
        log.info("resumed early (snapshots taken): %s", ", ".join(f"{i} ({a})" for i, a in sorted(done.items())))
    return done
