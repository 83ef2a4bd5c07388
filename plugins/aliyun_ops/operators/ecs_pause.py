"""Undo pauses: start what a run stopped, thaw what it froze, then remove the pause tags.

:mod:`aliyun_ops.logic.pause` describes the tags. :class:`ResumePausedOperator` works only from
them (never from an upstream task's XCom, which a failed task does not push), so it can run as a
teardown whatever happened upstream, and as the first task of the next run to finish the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from aliyun_ops.actions import leases
from aliyun_ops.actions.pause import STARTED, resume_early, run_query  # noqa: F401 - resume_early re-exported
from aliyun_ops.actions.power import call_power
from aliyun_ops.exceptions import AliyunApiError, RunIncomplete, denied, error_reason
from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.logic import lease as lz
from aliyun_ops.logic import pause
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.args import as_number
from aliyun_ops.logic.commands import COMMAND_TYPES, MAX_INSTANCES_PER_CALL
from aliyun_ops.logic.outcome import FAILED, SUCCESS
from aliyun_ops.logic.provenance import tags_from_api
from aliyun_ops.logic.targets import by_region, normalize_regions
from aliyun_ops.operators.base import AliyunItemsOperator, aliyun_template_fields, run_key
from aliyun_ops.waiting import deadline_from
from aliyun_ops.waiting.drivers import poll_instances, poll_invocations
from aliyun_ops.waiting.instances import MISSING, SETTLED, InstanceWatch, InvocationWatch

SCOPES = ("run", "dag")


class ResumePausedOperator(AliyunItemsOperator):
    """Resume every instance a run paused (found by its ``ops:paused-*`` tags); fail if any stays paused.

    :param scope: ``"run"`` (default): instances paused by this run (its run key) of this DAG, the
        teardown of a backup; ``"dag"``: paused by *any* run of this DAG, the safety net a run starts
        with (a run marked failed by hand, a killed scheduler, a teardown that could not run). Only use
        ``"dag"`` in a DAG with ``max_active_runs=1``: it cannot tell a concurrent run's pause from a
        forgotten one.
    :param regions: where to look; empty: every region of the account (DescribeRegions), so a pause
        in a region a later run no longer backs up is still found
    :param thaw_command: the script that undoes a freeze (Cloud Assistant); required to thaw, and
        it must be safe to run on an instance that is not frozen
    :param thaw_command_type: ``RunShellScript`` (default) or another Cloud Assistant type
    :param dag_id: whose pauses to resume (default: this task's DAG)
    :param poll_interval: seconds between looks while waiting; ``timeout``: the whole resume (seconds)

    Per instance: Stopped by a ``stop`` pause -> StartInstances, wait for Running; Running with a
    ``freeze`` pause -> thaw command, wait for its result; already undone (Running after a stop,
    Stopped after a freeze) -> nothing to do; in transition -> wait until it settles. Only then are
    the pause tags removed: an instance that could not be resumed keeps them, for the next run.

    Returns (and pushes as XCom ``results`` *before* failing) one dict per instance::

        {"instance_id", "region", "status": "success" | "failed", "action": "start" | "thaw" | "done",
         "mode", "paused_by", "paused_at", "resumed_at", "paused_seconds", "reason", "instance_status"}

    The task fails (after writing the results) when any instance is still paused: a resume is an
    undo, there is no error budget for it.

    Example (teardown of a cold backup). The setup must be a step that succeeds before anything is paused,
    not the stop itself: Airflow skips a teardown whose setups all failed, which is the case of a stop that
    failed half-way::

        @task
        def begin(regions):                         # setup: nothing paused yet
            return regions

        scope = begin(["cn-hangzhou"])
        stop = StopInstancesOperator(task_id="stop", instances=select.output, mark_paused=True)
        resume = ResumePausedOperator(task_id="resume", regions=scope).as_teardown(setups=scope)
        scope >> stop >> create_images >> resume
    """

    template_fields = aliyun_template_fields("regions", "scope", "thaw_command", "dag_id_filter", "poll_interval",
                                             "timeout")
    template_fields_renderers = {"thaw_command": "bash"}
    template_ext = (".sh", ".ps1", ".bat", ".py")
    hook_class = EcsHook
    ui_color = "#c8e6c9"
    item_noun = "paused instances"
    max_errors = 0     # an undo has no error budget
    def __init__(self, *, scope: str = "run", regions: Sequence[str] | str | None = None,
                 thaw_command: str | None = None, thaw_command_type: str = "RunShellScript",
                 dag_id: str | None = None, poll_interval: float = 10.0, timeout: float = 1800.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scope = scope
        self.regions = regions
        self.thaw_command = thaw_command
        self.thaw_command_type = thaw_command_type
        self.dag_id_filter = dag_id
        self.poll_interval = poll_interval
        self.timeout = timeout

    # -- validation and discovery ---------------------------------------------------------------------
    def validate(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {self.scope!r}")
        if self.thaw_command_type not in COMMAND_TYPES:
            raise ValueError(f"thaw_command_type must be one of {sorted(COMMAND_TYPES)}")
        self.poll_interval, self.timeout = as_number(self.poll_interval), as_number(self.timeout)
        for name in ("poll_interval", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        normalize_regions(self.regions)

    def search_tags(self, context: Any) -> dict[str, str]:
        tags = {pause.PAUSED_DAG: str(self.dag_id_filter or context["ti"].dag_id)[:128]}
        if self.scope == "run":
            tags[pause.PAUSED_BY] = run_key(context)[:128]
        return tags

    def find_paused(self, hook: EcsHook, context: Any) -> tuple[list[dict], list[str]]:
        """Instances carrying this scope's pause tags, and the regions looked in. Given ``regions`` must all be
        readable; when scanning every region of the account, a region that refuses (a RAM policy limited to the
        regions in use, a region not open to the account) is skipped with a warning and pushed as XCom
        ``unscanned_regions``."""
        explicit = normalize_regions(self.regions)
        regions = explicit or [r["RegionId"] for r in hook.describe_regions()]
        tags = self.search_tags(context)
        found: list[dict] = []
        unscanned: list[str] = []
        for region in regions:
            try:
                records = hook.describe_instances(region, tags=tags)
            except AliyunApiError as err:
                if explicit:
                    raise
                self.log.warning("cannot look for paused instances in %s (%s): skipped", region, error_reason(err))
                unscanned.append(region)
                continue
            for rec in records:
                rec_tags = tags_from_api(rec.get("Tags"))
                info = pause.paused_info(rec_tags) or {}
                lease = lz.read_lease(rec_tags)
                found.append({"instance_id": rec["InstanceId"], "region": region, "status": rec.get("Status", ""),
                              "mode": info.get("mode", ""), "paused_by": info.get("run_key", ""),
                              "paused_at": info.get("paused_at", ""), "resumed_at": info.get("resumed_at", ""),
                              "thaw_invoke": info.get("thaw_invoke", ""),
                              "lease_holder": lease.holder if lease else "",
                              "lease_live": bool(lease) and lz.verdict(rec_tags, "", datetime.now(UTC)) == lz.HELD})
        scanned = [r for r in regions if r not in unscanned]
        self.log.info("%d paused instance(s) found with tags %s in %d region(s)", len(found), tags, len(scanned))
        context["ti"].xcom_push(key="unscanned_regions", value=unscanned)
        return found, scanned

    # -- flow ---------------------------------------------------------------------------------------------
    def execute(self, context: Any) -> list[dict]:
        self.validate()
        hook = self.hook
        deadline = deadline_from(float(self.timeout))
        items, scanned = self.find_paused(hook, context)
        if self.scope == "dag":
            items = self.not_in_progress(context, items)
        results: dict[str, dict] = {}
        for item in items:
            results[item["instance_id"]] = {**{k: item[k] for k in ("instance_id", "region", "mode", "paused_by",
                                                                     "paused_at")},
                                            "status": FAILED, "action": "", "reason": "", "resumed_at": None,
                                            "paused_seconds": None, "instance_status": item["status"],
                                            "_early": item["resumed_at"]}
        plans = self.settle(hook, items, deadline)
        groups: dict[str, list[dict]] = {}
        for item in items:
            groups.setdefault(plans[item["instance_id"]], []).append(item)
        for item in groups.get(pause.WAIT, []):
            results[item["instance_id"]]["reason"] = f"still {item['status']} when the resume timed out"
        for item in groups.get(pause.GONE, []):
            self._done(results[item["instance_id"]], "done", "instance no longer exists")
        for item in groups.get(pause.DONE, []):
            self._done(results[item["instance_id"]], "done", f"already {item['status']}: nothing to undo")
        self.start(hook, groups.get(pause.START, []), results, deadline)
        self.thaw(context, hook, self.thawed_early(hook, groups.get(pause.THAW, []), results), results, deadline)
        self.untag(context, hook, [i for i in items if plans[i["instance_id"]] != pause.GONE], results)
        released = self.release_leases(context, hook, scanned, {i["instance_id"] for i in items}) \
            if self.scope == "run" else []
        return self.conclude(context, [results[i["instance_id"]] for i in items] + released,
                             title=f"resume ({self.scope})")

    def not_in_progress(self, context: Any, items: list[dict]) -> list[dict]:
        """The paused instances whose run is over: not queued or running here, and, when a live lease still guards
        the instance, a run this deployment knows (a run of another deployment against the same account is
        invisible here: its live lease says it may still be working)."""
        busy = self.runs_in_progress(context, {i["paused_by"] for i in items})
        dag_id = str(self.dag_id_filter or context["ti"].dag_id)
        leased = {i["paused_by"] for i in items if i["lease_live"] and i["paused_by"] not in busy}
        unknown = {k for k in leased if not self.run_known(context, dag_id, k)}
        for item in (i for i in items if i["paused_by"] in busy | unknown):
            why = "still in progress" if item["paused_by"] in busy else \
                f"unknown to this Airflow and still leased ({item['lease_holder']})"
            self.log.warning("%s: paused by run %s, %s: left to it", item["instance_id"], item["paused_by"], why)
        return [i for i in items if i["paused_by"] not in busy | unknown]

    def run_known(self, context: Any, dag_id: str, key: str) -> bool:
        """Whether this Airflow has a run of ``dag_id`` with run key ``key`` (any state); True when it cannot tell
        (an operator run outside a task runner: the pre-lease behaviour)."""
        try:
            return bool(context["ti"].get_dr_count(dag_id=dag_id, **run_query(key)))
        except Exception as exc:  # noqa: BLE001 - no supervisor to ask
            self.log.info("cannot tell whether run %s exists here (%s): treating it as ours", key, exc)
            return True

    def runs_in_progress(self, context: Any, run_keys: set[str]) -> set[str]:
        """Run keys (logical dates, else run ids) of other runs of the DAG still queued or running: their pauses
        are theirs to undo (backfills run several at once). Without the Task SDK's DagRun look-up (e.g. an
        operator run outside a task runner) nothing is considered in progress."""
        ti, this_run = context["ti"], run_key(context)
        dag_id = str(self.dag_id_filter or ti.dag_id)
        busy: set[str] = set()
        for key in sorted(k for k in run_keys if k and k != this_run):
            try:
                if ti.get_dr_count(dag_id=dag_id, states=["queued", "running"], **run_query(key)):
                    busy.add(key)
            except Exception as exc:  # noqa: BLE001 - no supervisor to ask: resume (the safe default for an undo)
                self.log.info("cannot tell whether run %s is in progress (%s): treating it as finished", key, exc)
        return busy

    def settle(self, hook: EcsHook, items: list[dict], deadline: float | None) -> dict[str, str]:
        """Plan every instance; wait (an ``InstanceWatch`` for Running or Stopped) while any is in a transition, until
        the deadline; an instance that vanished meanwhile is gone."""
        plans = {i["instance_id"]: pause.plan_resume(i["mode"], i["status"]) for i in items}
        waiting = [i for i in items if plans[i["instance_id"]] == pause.WAIT]
        if not waiting:
            return plans
        self.log.info("waiting for %d instance(s) to settle: %s", len(waiting),
                      ", ".join(f"{i['instance_id']} {i['status']}" for i in waiting[:10]))
        watch = InstanceWatch(by_region(waiting), SETTLED)
        event = poll_instances(hook, watch, poll_interval=float(self.poll_interval), deadline=deadline, log=self.log)
        for item in waiting:
            info = (event.get("instances") or {}).get(item["instance_id"]) or {}
            status = info.get("status")
            item["status"] = None if status == MISSING else status if status not in (None, "Unknown") else \
                item["status"]
        return {i["instance_id"]: pause.plan_resume(i["mode"], i["status"]) for i in items}

    def start(self, hook: EcsHook, items: list[dict], results: dict[str, dict], deadline: float | None) -> None:
        """StartInstances, re-checked with DescribeInstances (a dropped answer or a retried call that finds
        the instance Starting is a success), then wait for Running."""
        if not items:
            return
        for region, ids in by_region(items).items():
            answers = call_power(hook, lambda r=region, i=ids: hook.start_instances(r, i), region, ids, STARTED, self.log)
            for iid, answer in answers.items():
                if str(answer.get("Code")) != "200":
                    results[iid].update(action="start", instance_status=answer.get("CurrentStatus") or "",
                                        reason=f"StartInstances refused: {answer.get('Code')}: {answer.get('Message')}")
        targets = {region: [i for i in ids if not results[i]["reason"]] for region, ids in by_region(items).items()}
        event = poll_instances(hook, InstanceWatch(targets, st.RUNNING), poll_interval=float(self.poll_interval),
                               deadline=deadline, log=self.log)
        for iid, info in (event.get("instances") or {}).items():
            if info.get("reached"):
                self._done(results[iid], "start", "started", status=st.RUNNING)
            else:
                results[iid].update(action="start", instance_status=info.get("status", ""),
                                    reason=f"did not reach Running (last {info.get('status')}): {event.get('message')}")

    def thaw(self, context: Any, hook: EcsHook, items: list[dict], results: dict[str, dict],
             deadline: float | None) -> None:
        """Run the thaw command on the frozen instances (≤100 per call, stable ClientToken) and check each result."""
        if not items:
            return
        if not self.thaw_command:
            for item in items:
                results[item["instance_id"]].update(action="thaw", reason="frozen, but no thaw_command was given")
            return
        invocations: dict[str, tuple[str, list[str]]] = {}
        by_id = {i["instance_id"]: i for i in items}
        try_number = str(getattr(context["ti"], "try_number", 1))
        for region, ids in by_region(items).items():
            for n in range(0, len(ids), MAX_INSTANCES_PER_CALL):
                chunk = ids[n:n + MAX_INSTANCES_PER_CALL]
                # new per pause and per try: a retried teardown sends the thaw again, never gets an old answer
                token = self.client_token(context, "thaw", region, try_number,
                                          pause.pause_digest(by_id[i] for i in chunk))
                try:
                    invoke_id = hook.run_command(region, chunk, self.thaw_command, type=self.thaw_command_type,
                                                 timeout=600, name=f"aliyun-ops-thaw-{context['ti'].dag_id}"[:128],
                                                 client_token=token)
                except AliyunApiError as err:
                    for iid in chunk:
                        results[iid].update(action="thaw", reason=f"thaw command not sent: {error_reason(err)}")
                    continue
                invocations[invoke_id] = (region, chunk)
        if not invocations:
            return
        targets: dict[str, list[str]] = {}
        for invoke_id, (region, _) in invocations.items():
            targets.setdefault(region, []).append(invoke_id)
        poll_invocations(hook, InvocationWatch(targets), poll_interval=float(self.poll_interval), deadline=deadline,
                         log=self.log)
        for invoke_id, (region, chunk) in invocations.items():
            try:
                records = {r.get("InstanceId"): r for r in hook.describe_invocation_results(region, invoke_id)}
            except AliyunApiError as err:
                records = {}
                self.log.error("DescribeInvocationResults %s failed: %s", invoke_id, err)
            for iid in chunk:
                rec = records.get(iid) or {}
                if rec.get("InvocationStatus") == st.INVOCATION_SUCCESS:
                    self._done(results[iid], "thaw", f"thawed ({invoke_id})")
                else:
                    results[iid].update(action="thaw", reason=f"thaw {invoke_id} {rec.get('InvocationStatus') or 'unknown'}"
                                                              f": {rec.get('ErrorInfo') or ''} exit {rec.get('ExitCode')}")

    def thawed_early(self, hook: EcsHook, items: list[dict], results: dict[str, dict]) -> list[dict]:
        """Check the thaw commands sent early (``ops:thaw-invoke``, one DescribeInvocationResults per invocation:
        an early thaw covers up to 100 instances); returns the instances still to thaw."""
        invocations: dict[tuple[str, str], dict[str, dict]] = {}
        for item in items:
            if item.get("thaw_invoke"):
                invocations.setdefault((item["region"], item["thaw_invoke"]), {})
        for (region, invoke_id), records in invocations.items():
            try:
                records.update({r.get("InstanceId"): r for r in hook.describe_invocation_results(region, invoke_id)})
            except AliyunApiError as err:
                self.log.warning("early thaw %s unknown (%s): its instances are thawed again", invoke_id, err)
        todo = []
        for item in items:
            key = (item["region"], item.get("thaw_invoke") or "")
            rec = invocations.get(key, {}).get(item["instance_id"]) or {}
            if rec.get("InvocationStatus") == st.INVOCATION_SUCCESS:
                self._done(results[item["instance_id"]], "thaw", f"thawed early ({item['thaw_invoke']})")
            else:
                todo.append(item)
        return todo

    def untag(self, context: Any, hook: EcsHook, items: list[dict], results: dict[str, dict]) -> None:
        """Remove the pause tags of what was resumed, and its lease when the pausing run (or this one) holds it; a
        failure leaves the instance reported failed. What could not be resumed keeps both, for the next run."""
        groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        dag_id = str(self.dag_id_filter or context["ti"].dag_id)
        for item in items:
            if results[item["instance_id"]]["status"] != SUCCESS:
                continue
            holder = item["lease_holder"]
            owned = bool(holder) and (holder == leases.run_holder(context)
                                      or holder.startswith(f"{dag_id}|{item['paused_by']}|"))
            keys = pause.PAUSE_TAG_KEYS + (lz.LEASE_TAG_KEYS if owned else ())
            groups.setdefault((item["region"], keys), []).append(item["instance_id"])
        for (region, keys), ids in groups.items():
            try:
                hook.untag_resources(region, "instance", ids, keys)
            except AliyunApiError as err:
                for iid in ids:
                    r = results[iid]
                    r.update(status=FAILED, reason=f"{r['reason']}; pause tags not removed: {error_reason(err)}")

    def release_leases(self, context: Any, hook: EcsHook, regions: list[str], paused: set[str]) -> list[dict]:
        """Release this run's leases on instances it did not pause (already Stopped when it came, a restore of a
        Stopped instance); returns a failed result per lease that could not be released (it blocks other runs
        until it expires)."""
        failed = []
        for region in regions:
            try:
                ids = [r["InstanceId"] for r in leases.held_by_run(hook, context, region)
                       if r["InstanceId"] not in paused]
                leases.release(hook, region, ids)
            except AliyunApiError as err:
                failed.append({"instance_id": f"leases of this run in {region}", "region": region, "mode": "", "paused_by": "", "paused_at": "",
                               "status": FAILED, "action": "release", "instance_status": "", "resumed_at": None,
                               "paused_seconds": None,
                               "reason": f"this run's leases not released (they block other runs until they expire): "
                                         f"{error_reason(err)}"})
                continue
            if ids:
                self.log.info("released this run's lease on %s (nothing paused there)", ", ".join(ids))
        return failed

    @staticmethod
    def _done(res: dict, action: str, reason: str, status: str | None = None) -> None:
        """Mark resumed; the resume time is the early resume's (``ops:resumed-at``) when there was one."""
        early = pause.parse_time(res.get("_early"))
        when = early or datetime.now(UTC)
        resumed = action in ("start", "thaw") or early is not None   # "done" with no resume: nothing was down
        res.update(status=SUCCESS, action=action, reason=reason, resumed_at=when.isoformat(timespec="seconds"),
                   paused_seconds=pause.paused_seconds(res.get("paused_at"), when) if resumed else None)
        if status:
            res["instance_status"] = status

    def too_many_failures(self, title: str, failed: list[dict], total: int, allowed: int) -> Exception:
        """A resume is an undo, with no error budget: any instance still paused fails the task, with a retry
        (:class:`RunIncomplete`) unless every failure is a missing RAM permission, which a retry cannot fix."""
        sample = "; ".join(f"{r['instance_id']} ({r['region']}): {r['reason']}" for r in failed[:10])
        message = (f"{len(failed)} of {total} paused instance(s) could not be resumed and keep their "
                   f"ops:paused-* tags for the next run: {sample}")
        if all(denied(r["reason"]) for r in failed):
            return AirflowFailException(message)
        return RunIncomplete(message)


__all__ = ["ResumePausedOperator", "resume_early"]   # resume_early: moved to aliyun_ops.actions.pause
