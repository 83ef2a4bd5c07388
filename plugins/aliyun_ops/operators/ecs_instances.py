"""ECS instance operators: select, start, stop, replace system disk, run and delete temporary instances.

Every operator here takes its instances in the same loose forms (so they chain without glue):
a single id (``"i-1"``), a comma-separated string, a list of ids, or a list of objects with an
``instance_id`` (and optionally ``region``) key, e.g. the output of :class:`SelectInstancesOperator`
or of any other operator in this module.

Per-instance results (the XCom of Start/Stop/ReplaceSystemDisk/Delete) are a list of::

    {"instance_id": "i-1", "region": "cn-hangzhou", "status": "success" | "failed" | "skipped",
     "reason": "already Running", "instance_status": "Running"}

``status`` is what this task did for the instance (the project-wide per-item convention, as in
:class:`aliyun_ops.actions.pool.ItemResult`); ``instance_status`` is the last ECS status seen. A task fails only
when the failures exceed ``max_errors`` (a count or a percentage, as in Alibaba OOS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aliyun_ops.actions.pool import ItemResult, run_batch
from aliyun_ops.actions.power import (  # noqa: F401 - re-exported for one release (moved to actions.power)
    call_power,
    describe_targets,
    lease_items,
    mark_paused,
    next_wave,
    plan_waves,
    result,
    select_by_tags,
    triage,
    unmark_paused,
)
from aliyun_ops.actions.temporary import INTERNAL_SERVICES_CIDR, isolated_security_group, temporary_tags
from aliyun_ops.exceptions import AliyunApiError, WaitFailed
from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.logic import ids as id_rules
from aliyun_ops.logic import pause
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.args import as_number, check_count, check_lease_wait  # noqa: F401 - re-exported
from aliyun_ops.logic.args import check_wait_args as _check_wait_args
from aliyun_ops.logic.budget import check_concurrency
from aliyun_ops.logic.outcome import FAILED, SKIPPED, SUCCESS
from aliyun_ops.logic.provenance import (
    DAG_ID,
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    RUN_ID,
    merge_tags,
    provenance_tags,
    validate_tags,
)
from aliyun_ops.logic.selection import INSTANCE_STATUSES, Criteria, compact, select
from aliyun_ops.logic.targets import by_region, normalize_instances, normalize_regions
from aliyun_ops.operators.base import AliyunBaseOperator, AliyunItemsOperator, aliyun_template_fields
from aliyun_ops.operators.base.instances import InstanceWaitMixin
from aliyun_ops.waiting import deadline_from
from aliyun_ops.waiting.drivers import poll_instances, wait_for_resource
from aliyun_ops.waiting.instances import DELETED, InstanceWatch

MAX_IDS = 100


class InstanceItemsOperator(InstanceWaitMixin, AliyunItemsOperator):
    """Deprecated (kept for one release): build on ``InstanceWaitMixin, AliyunItemsOperator`` instead."""


# -- select --------------------------------------------------------------------------------------
class SelectInstancesOperator(AliyunBaseOperator):
    """Select ECS instances by tags, ids, name pattern and status across regions; returns compact records.

    Server-side filters are used where DescribeInstances has them (``Tag.N``, ``Status`` when one
    status is asked for, ``InstanceIds`` in chunks of 100, ``InstanceName`` for ``*``-only patterns);
    :mod:`aliyun_ops.logic.selection` applies the rest, so the result is exact. Every page is read.
    Selecting with no tags, ids or name pattern is refused (it would select the whole account).

    Return value (XCom ``return_value``): ``[{"instance_id", "instance_name", "region", "zone", "status",
    "tags"}]`` sorted by region, name, id. Ids asked for but not found in any region are logged as a
    warning and pushed as a separate XCom key ``missing`` (a list of ids), so the main result stays a
    clean list you can hand to the next operator or ``.expand()``; with ``fail_on_missing=True`` they
    fail the task instead. With ``allow_empty=False`` a selection that matches nothing fails the task
    with a message naming the criteria (a typo in a tag must not make a green, empty run).

    Example::

        select = SelectInstancesOperator(task_id="select", regions=["cn-hangzhou", "cn-shanghai"],
                                         tags={"env": "test"}, statuses=["Running"])
        StopInstancesOperator(task_id="stop", instances=select.output)
    """

    template_fields = aliyun_template_fields("regions", "tags", "instance_ids", "name_pattern", "statuses",
                                             "allow_empty")
    hook_class = EcsHook

    def __init__(self, *, regions: Sequence[str] | str | None = None, tags: Mapping[str, str] | None = None,
                 instance_ids: Sequence[str] | str | None = None, name_pattern: str | None = None,
                 statuses: Sequence[str] | str | None = None, fail_on_missing: bool = False,
                 allow_empty: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_empty = allow_empty
        self.regions = regions
        self.tags = tags
        self.instance_ids = instance_ids
        self.name_pattern = name_pattern
        self.statuses = statuses
        self.fail_on_missing = fail_on_missing

    def criteria(self) -> Criteria:
        """Validated criteria (``ValueError`` on bad input; no API call)."""
        regions = normalize_regions(self.regions) or [self.resolve_region()]
        ids = self.instance_ids
        if isinstance(ids, str):
            ids = [s.strip() for s in ids.split(",") if s.strip()]
        statuses = self.statuses
        if isinstance(statuses, str):
            statuses = [s.strip() for s in statuses.split(",") if s.strip()]
        tags = validate_tags(self.tags or {}, what="tags")
        crit = Criteria(regions=tuple(regions), tags=tags, instance_ids=tuple(ids or ()),
                        name_pattern=self.name_pattern or None, statuses=tuple(statuses or ()))
        crit.validate()
        return crit

    def execute(self, context: Any) -> list[dict]:
        crit = self.criteria()
        hook = self.hook
        status = crit.statuses[0] if len(crit.statuses) == 1 else None
        name = crit.name_pattern if crit.name_pattern and not set("?[]") & set(crit.name_pattern) else None
        records: list[dict] = []
        for region in crit.regions:
            found = hook.describe_instances(region, instance_ids=list(crit.instance_ids) or None,
                                            tags=dict(crit.tags) or None, status=status, name=name)
            self.log.info("%s: %d instance(s) match the server-side filters", region, len(found))
            records.extend(found)
        # an id may exist but be filtered out server-side: it is not "missing", only excluded
        missing: list[str] = []
        if crit.instance_ids:
            seen = {r["InstanceId"] for r in records}
            unseen = [i for i in crit.instance_ids if i not in seen]
            if unseen and (crit.tags or status or name):
                for region in crit.regions:
                    seen |= {r["InstanceId"] for r in hook.describe_instances(region, instance_ids=unseen)}
            missing = [i for i in crit.instance_ids if i not in seen]
        selection = select(records, crit)
        for ex in selection.excluded:
            self.log.info("excluded %s (%s): %s", ex["instance_id"], ex["region"], ex.get("reason"))
        self.log.info("selected %d instance(s) in %s", len(selection.selected), ", ".join(crit.regions))
        if missing:
            self.log.warning("%d instance id(s) not found in %s: %s", len(missing), ", ".join(crit.regions),
                             ", ".join(missing))
        context["ti"].xcom_push(key="missing", value=missing)
        if missing and self.fail_on_missing:
            raise RuntimeError(f"instance id(s) not found in {list(crit.regions)}: {missing}")
        if not selection.selected and not missing and not self.allow_empty:
            from airflow.sdk.exceptions import AirflowFailException

            what = " and ".join(filter(None, [f"tags {dict(crit.tags)}" if crit.tags else "",
                                              f"ids {list(crit.instance_ids)}" if crit.instance_ids else "",
                                              f"name {crit.name_pattern!r}" if crit.name_pattern else "",
                                              f"status {list(crit.statuses)}" if crit.statuses else ""]))
            raise AirflowFailException(f"no instance in {', '.join(crit.regions)} matches {what}: nothing to do. "
                                       f"Check the selection (set allow_empty to accept an empty run)")
        return selection.selected


# -- start / stop --------------------------------------------------------------------------------
class _PowerMixin(InstanceWaitMixin):
    """Shared by Start/Stop (with :class:`AliyunItemsOperator`): skip instances already there, batch the API calls,
    wait, report per instance."""

    template_fields = aliyun_template_fields("instances", "regions", "tags", "concurrency", "max_errors",
                                             "poll_interval", "wait_timeout", "lease_wait")
    target_status = ""
    from_status = ""         # status an instance must have for the API call
    heading = ("",)          # statuses already on the way to the target: wait only
    pause_mode: str | None = None  # with mark_paused=True, the ops:paused-mode tag written before the call

    def __init__(self, *, instances: Any = None, regions: Sequence[str] | str | None = None,
                 tags: Mapping[str, str] | None = None, concurrency: int | str = "100%",
                 max_errors: int | str = 0, wait_for_completion: bool = True, deferrable: bool = True,
                 poll_interval: float = 15.0, wait_timeout: float | None = 1800.0, mark_paused: bool = False,
                 lease_wait: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instances = instances
        self.regions = regions
        self.tags = tags
        self.mark_paused = mark_paused
        self.lease_wait = lease_wait
        self.concurrency = concurrency
        self.max_errors = max_errors
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout

    # -- validation and targets -------------------------------------------------------------------
    def validate(self) -> None:
        self.poll_interval, self.wait_timeout = as_number(self.poll_interval), as_number(self.wait_timeout)
        check_concurrency(self.concurrency)
        check_count(self.max_errors, "max_errors")
        _check_wait_args(self.poll_interval, self.wait_timeout)
        self.lease_wait = check_lease_wait(self.lease_wait)
        if self.instances is None and not self.tags:
            raise ValueError("give instances (ids or selected records) or tags to select them by")
        if self.tags is not None:
            validate_tags(self.tags, what="tags")
            if not self.tags:
                raise ValueError("tags must not be empty: refusing to act on every instance")
        normalize_regions(self.regions)

    def targets(self, hook: EcsHook) -> list[dict]:
        default = self.region or hook.region
        items = normalize_instances(self.instances, default) if self.instances is not None else []
        if self.tags:
            regions = normalize_regions(self.regions) or [self.resolve_region()]
            known = {i["instance_id"] for i in items}
            items += [i for i in select_by_tags(hook, regions, self.tags) if i["instance_id"] not in known]
        return items

    def call_api(self, hook: EcsHook, region: str, ids: list[str]) -> list[dict]:
        raise NotImplementedError

    def _mark_paused(self, context: Any, hook: EcsHook, region: str, ids: list[str]) -> str | None:
        if not (self.mark_paused and self.pause_mode):
            return None
        return mark_paused(hook, context, region, ids, self.pause_mode, f"not {self.target_status.lower()}")

    def _unmark_refused(self, hook: EcsHook, region: str, ids: list[str]) -> None:
        """Instances whose stop was refused and that never left ``from_status`` were not paused: drop the tags,
        so that no resume ever acts on them (someone may stop them on purpose later)."""
        if ids and self.mark_paused and self.pause_mode:
            unmark_paused(hook, region, ids, self.log, f"{self.from_status} and leave them alone")

    def _call_idempotent(self, hook: EcsHook, region: str, ids: list[str]) -> dict[str, dict]:
        return call_power(hook, lambda: self.call_api(hook, region, ids), region, ids,
                          {self.target_status, *self.heading}, self.log)

    # -- flow ---------------------------------------------------------------------------------------
    def execute(self, context: Any) -> list[dict]:
        self.validate()
        items = self.targets(self.hook)
        leased, refused = items, {}
        if self.mark_paused and self.pause_mode and items:  # a pause is taken under this run's lease only
            leased, refused = lease_items(self.hook, context, items, purpose=self.pause_mode,
                                          wait_seconds=self.lease_wait, poll_interval=self.poll_interval, log=self.log)
        settled, todo = triage(self.hook, leased, self._decide)
        return self._run_waves(context, plan_waves(items, {**refused, **settled}, todo, self.concurrency,
                                                   self.target_status, self.log))

    def _decide(self, item: Mapping[str, Any], record: Mapping[str, Any]) -> tuple[str, str] | None:
        status = item["status"]
        if status == self.target_status:
            return SKIPPED, f"already {status}"
        if status == self.from_status or status in self.heading:
            return None
        return FAILED, f"cannot go {status} -> {self.target_status}; retry when it settles"

    def _run_waves(self, context: Any, state: dict) -> list[dict]:
        hook = self.hook
        results = state["results"]
        while (wave_items := next_wave(state, self.max_errors)) is not None:
            waiting: dict[str, list[str]] = {}
            for region, ids in by_region([i for i in wave_items if i["status"] == self.from_status]).items():
                not_marked = self._mark_paused(context, hook, region, ids)
                if not_marked:
                    for item in (i for i in wave_items if i["region"] == region and i["instance_id"] in ids):
                        results[item["instance_id"]] = result(item, FAILED, item["status"], not_marked)
                    continue
                answered = self._call_idempotent(hook, region, ids)
                self._unmark_refused(hook, region, [i for i in ids if str(answered[i].get("Code")) != "200"
                                                    and answered[i].get("CurrentStatus") == self.from_status])
                for item in (i for i in wave_items if i["region"] == region and i["instance_id"] in ids):
                    resp = answered.get(item["instance_id"], {"Code": "NoResponse", "Message": "no answer"})
                    if str(resp.get("Code")) == "200":
                        waiting.setdefault(region, []).append(item["instance_id"])
                    else:
                        results[item["instance_id"]] = result(item, FAILED, resp.get("CurrentStatus") or item["status"],
                                                              f"{resp.get('Code')}: {resp.get('Message')}")
            for item in wave_items:
                if item["status"] in self.heading:
                    waiting.setdefault(item["region"], []).append(item["instance_id"])
            for item in wave_items:
                if item["instance_id"] not in results:
                    results[item["instance_id"]] = result(item, SUCCESS, self.target_status if not
                                                          self.wait_for_completion else item["status"],
                                                          "requested" if not self.wait_for_completion else "")
            if not waiting or not self.wait_for_completion:
                continue
            self._apply_event(state, self.wait_for_instances(waiting, self.target_status, carry=state))
        results = [state["results"][iid] for iid in state["order"]]
        return self.conclude(context, results, title=f"{type(self).__name__} -> {self.target_status}")

    def resume(self, context: Any, carry: dict, event: Mapping[str, Any]) -> list[dict]:
        self._apply_event(carry, event)
        return self._run_waves(context, carry)

    def _apply_event(self, state: dict, event: Mapping[str, Any]) -> None:
        results = state["results"]
        if event.get("status") == "error":
            self.log.error("waiting failed: %s", event.get("message"))
        for iid, info in (event.get("instances") or {}).items():
            res = results.get(iid)
            if res is None:
                continue
            res["instance_status"] = info.get("status", res.get("instance_status", ""))
            if info.get("reached"):
                res["status"], res["reason"] = SUCCESS, res.get("reason") or ""
            else:
                res["status"] = FAILED
                res["reason"] = (f"did not reach {self.target_status} (last status {info.get('status')}; "
                                 f"wait {event.get('status')}: {event.get('message', '')})")


class StartInstancesOperator(_PowerMixin, AliyunItemsOperator):
    """Start ECS instances (ids, selected records, or by tags) and wait until they are Running.

    Instances already Running are reported ``skipped`` ("already Running"); ``Starting`` ones are only
    waited for. StartInstances is called with up to 100 ids per call (``BatchOptimization=SuccessFirst``,
    so one bad instance does not fail its batch). ``concurrency`` (number or percentage, default
    ``"100%"``) makes rolling waves: each wave is started and waited for before the next begins.
    Once failures exceed ``max_errors`` no new wave starts. Waiting is deferred to
    :class:`~aliyun_ops.triggers.ecs_instances.InstanceStatusTrigger` unless ``deferrable=False``.

    Returns the per-instance results described in :mod:`aliyun_ops.operators.ecs_instances`.

    Example::

        StartInstancesOperator(task_id="start_test_env", regions=["cn-hangzhou"], tags={"env": "test"},
                               concurrency="25%", max_errors=1)
    """

    def __init__(self, **kwargs: Any) -> None:  # its own, so that Airflow applies default_args to it
        super().__init__(**kwargs)


    target_status = st.RUNNING
    from_status = st.STOPPED
    heading = (st.STARTING, st.PENDING)

    def call_api(self, hook: EcsHook, region: str, ids: list[str]) -> list[dict]:
        return hook.start_instances(region, ids)


class StopInstancesOperator(_PowerMixin, AliyunItemsOperator):
    """Stop ECS instances (ids, selected records, or by tags) and wait until they are Stopped.

    ``force_stop`` (power off), ``stopped_mode`` (``KeepCharging`` / ``StopCharging``; None: the account
    default). Already Stopped instances are ``skipped``; ``Stopping`` ones are only waited for.
    Batching, waves, ``max_errors`` and deferral are as in :class:`StartInstancesOperator`.

    ``mark_paused=True`` tags each instance ``ops:paused-by``/``ops:paused-mode=stop`` (see
    :mod:`aliyun_ops.logic.pause`) *before* stopping it, so that
    :class:`~aliyun_ops.operators.ecs_pause.ResumePausedOperator` starts exactly what this run stopped,
    whatever fails later (as a teardown whose setup runs before the stop: see its example). An instance
    that cannot be tagged is not stopped; one whose stop is refused and stays Running is untagged again.
    With ``mark_paused`` every instance, already Stopped ones included, is first leased to this run
    (:mod:`aliyun_ops.leases`, tag ``ops:lease-holder``, released by the resume teardown): one that another live
    run holds (an overlapping backfill, a second deployment, another restore) is waited for up to ``lease_wait``
    seconds (default 0), then reported failed with who holds it, and left alone.
    The per-instance results are also pushed as XCom ``results`` before the task fails on ``max_errors``.
    A StopInstances answer lost to the network, or a retried call answered ``IncorrectInstanceStatus``,
    is checked with DescribeInstances: an instance already Stopping or Stopped counts as stopped.

    Example::

        StopInstancesOperator(task_id="stop_test_env", instances=select.output,
                              stopped_mode="StopCharging", max_errors="10%")
    """

    template_fields = (*_PowerMixin.template_fields, "stopped_mode", "force_stop")
    target_status = st.STOPPED
    from_status = st.RUNNING
    heading = (st.STOPPING,)
    pause_mode = pause.STOP

    def __init__(self, *, force_stop: bool = False, stopped_mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.force_stop = force_stop
        self.stopped_mode = stopped_mode

    def validate(self) -> None:
        super().validate()
        if self.stopped_mode not in (None, "", "KeepCharging", "StopCharging"):
            raise ValueError(f"stopped_mode must be KeepCharging or StopCharging, got {self.stopped_mode!r}")

    def call_api(self, hook: EcsHook, region: str, ids: list[str]) -> list[dict]:
        if ids:  # what is stopped must be startable again: a missing ecs:StartInstances fails here, not later
            hook.check_allowed("StartInstances", region, ids[0])
        return hook.stop_instances(region, ids, force_stop=bool(self.force_stop),
                                   stopped_mode=self.stopped_mode or None)


# -- replace system disk ---------------------------------------------------------------------------
class ReplaceSystemDiskOperator(AliyunItemsOperator):
    """Replace the system disk of instances with ``image_id``: stop, replace, wait In_use, start, wait Running.

    The OOS ``ACS::ECS::ReplaceSystemDisk`` sequence per instance, run over many instances with
    ``concurrency`` and ``max_errors``. On a retry an instance whose system disk already comes from
    ``image_id`` is not replaced again (only started if needed), and ReplaceSystemDisk carries a stable
    ClientToken. ``password`` / ``key_pair_name`` (optional, mutually exclusive) are sent to the API
    and never logged; ``password`` is deliberately not a templated field (rendered fields are shown in
    the UI). This operator is **not deferrable**: it is a multi-step state machine per instance whose
    steps take seconds to a few minutes; it polls in process with ``poll_interval``.

    Returns per-instance results with ``disk_id`` (the new system disk) and ``image_id``.

    Example::

        ReplaceSystemDiskOperator(task_id="reimage", instances=["i-1", "i-2"], image_id="m-golden",
                                  region="cn-hangzhou", key_pair_name="ops", concurrency=2, max_errors=0)
    """

    template_fields = aliyun_template_fields("instances", "image_id", "key_pair_name")
    hook_class = EcsHook

    def __init__(self, *, instances: Any, image_id: str, password: str | None = None,
                 key_pair_name: str | None = None, password_inherit: bool | None = None,
                 system_disk_size: int | None = None, concurrency: int | str = 10, max_errors: int | str = 0,
                 poll_interval: float = 5.0, step_timeout: float = 1800.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instances = instances
        self.image_id = image_id
        self.password = password
        self.key_pair_name = key_pair_name
        self.password_inherit = password_inherit
        self.system_disk_size = system_disk_size
        self.concurrency = concurrency
        self.max_errors = max_errors
        self.poll_interval = poll_interval
        self.step_timeout = step_timeout
        if password:
            _mask(password)

    def validate(self) -> list[dict]:
        if not isinstance(self.image_id, str) or not self.image_id.strip():
            raise ValueError("image_id is required")
        if self.password and self.key_pair_name:
            raise ValueError("give password or key_pair_name, not both")
        if self.password and self.password_inherit:
            raise ValueError("password and password_inherit=True exclude each other")
        if self.password is not None and not (8 <= len(self.password) <= 30):
            raise ValueError("password must be 8-30 characters (Alibaba's rule)")
        if self.system_disk_size is not None and not (20 <= int(self.system_disk_size) <= 2048):
            raise ValueError("system_disk_size must be 20-2048 GiB")
        check_concurrency(self.concurrency)
        check_count(self.max_errors, "max_errors")
        _check_wait_args(self.poll_interval, self.step_timeout)
        items = normalize_instances(self.instances, self.region or self.hook.region)
        if not items:
            raise ValueError("instances is empty")
        return items

    def _wait(self, hook: EcsHook, item: Mapping[str, str], target: str) -> str:
        event = poll_instances(hook, InstanceWatch({item["region"]: [item["instance_id"]]}, target),
                               poll_interval=self.poll_interval, deadline=deadline_from(self.step_timeout))
        info = event["instances"][item["instance_id"]]
        if not info["reached"]:
            raise WaitFailed(f"did not reach {target}: {event['message']}")
        return info["status"]

    def _wait_disk(self, hook: EcsHook, region: str, disk_id: str) -> None:
        wait_for_resource(hook, region, "disk", disk_id, what=f"new system disk {disk_id}", timeout=self.step_timeout,
                          poll_interval=self.poll_interval, error=WaitFailed, missing_polls=5, log=self.log)

    def _system_disk(self, hook: EcsHook, region: str, instance_id: str) -> dict | None:
        disks = hook.describe_disks(region, instance_id=instance_id, disk_type="system")
        return disks[0] if disks else None

    def _one(self, context: Any, hook: EcsHook, item: dict) -> dict:
        region, iid = item["region"], item["instance_id"]
        recs = hook.describe_instances(region, instance_ids=[iid])
        if not recs:
            raise RuntimeError(f"instance not found in {region}")
        status = recs[0].get("Status")
        disk = self._system_disk(hook, region, iid)
        if disk is not None and disk.get("ImageId") == self.image_id:
            self.log.info("%s: system disk %s already comes from %s; not replacing", iid, disk["DiskId"],
                          self.image_id)
            disk_id, replaced = disk["DiskId"], False
        else:
            hook.check_allowed("DescribeDisks", region, iid)  # the new disk must be watchable before it is made
            if status in (st.RUNNING, st.STOPPING, st.STARTING, st.PENDING):
                hook.check_allowed("StartInstance", region, iid)  # it must be startable again before it stops
            if status == st.RUNNING:
                hook.stop_instance(region, iid)
                status = self._wait(hook, item, st.STOPPED)
            elif status in (st.STOPPING, st.STARTING, st.PENDING):
                status = self._wait(hook, item, st.STOPPED if status == st.STOPPING else st.RUNNING)
                if status == st.RUNNING:
                    hook.stop_instance(region, iid)
                    status = self._wait(hook, item, st.STOPPED)
            extra = {"password": self.password} if self.password else {}
            disk_id = hook.replace_system_disk(
                region, iid, self.image_id, client_token=self.client_token(context, "replace-disk", iid,
                                                                           self.image_id),
                system_disk_size=self.system_disk_size, password_inherit=self.password_inherit,
                key_pair_name=self.key_pair_name or None, **extra)
            self.log.info("%s: new system disk %s from %s", iid, disk_id, self.image_id)
            self._wait_disk(hook, region, disk_id)
            replaced = True
            status = st.STOPPED
        if status != st.RUNNING:
            recs = hook.describe_instances(region, instance_ids=[iid])
            status = recs[0].get("Status") if recs else "Missing"
            if status == st.STOPPED:
                hook.start_instance(region, iid)
            status = self._wait(hook, item, st.RUNNING)
        return {"disk_id": disk_id, "replaced": replaced, "status": status}

    def execute(self, context: Any) -> list[dict]:
        items = self.validate()
        hook = self.hook
        batch: list[ItemResult] = run_batch(items, lambda item: self._one(context, hook, item),
                                            key=lambda i: i["instance_id"], concurrency=self.concurrency,
                                            max_errors=self.max_errors)
        results = []
        for item, res in zip(items, batch, strict=True):
            value = res.value or {}
            reason = res.error or ("replaced" if value.get("replaced") else
                                   "system disk already from image" if res.status == SUCCESS else "")
            results.append(result(item, res.status, value.get("status", ""), reason, image_id=self.image_id,
                                  disk_id=value.get("disk_id")))
        return self.conclude(context, results, title=f"ReplaceSystemDisk -> {self.image_id}")


def _mask(secret: str) -> None:
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)
    except Exception:  # masking is best effort; the value is never logged by us anyway
        pass


# -- temporary instances -----------------------------------------------------------------------------
def default_network(hook: EcsHook, region: str, zone: str | None = None) -> tuple[str, str]:
    """``(vswitch_id, security_group_id)`` of the region's default VPC: see :meth:`EcsHook.default_network`."""
    return hook.default_network(region, zone)


class RunInstancesOperator(InstanceWaitMixin, AliyunItemsOperator):
    """Create temporary ECS instances (repair/update jobs) and wait until they are Running.

    Network: ``vswitch_id`` / ``security_group_id`` if given, otherwise the region's default VPC
    vSwitch (in ``zone_id`` if given) and, with ``purpose``, a security group of the run's own (no inbound rule,
    outbound only to ``egress_cidrs``: Alibaba's internal services by default, ``["0.0.0.0/0"]`` for a build that
    downloads packages), else the VPC's default group. The instances carry your ``tags`` plus provenance tags
    (``ops:managed-by``, ``ops:dag-id``, ``ops:run-id``), and with ``purpose`` the temporary tags
    (``ops:temporary=true``, ``ops:purpose``), so :class:`ReleaseTemporaryResourcesOperator` (or
    :class:`DeleteInstancesOperator` with ``include_run_instances=True``) finds them even when this task died before
    pushing its XCom. RunInstances uses a ClientToken derived from the run, so a retried try gets the same instances
    back instead of new ones.

    Returns compact records ``[{"instance_id", "instance_name", "region", "zone", "status", "tags"}]``.
    Pair it with :class:`DeleteInstancesOperator` as setup/teardown::

        with DAG("repair", schedule=None) as dag:
            create = RunInstancesOperator(task_id="create_worker", image_id="m-repair", region="cn-hangzhou",
                                          instance_type="ecs.g7.large", tags={"purpose": "repair"})
            work = RunCommandOperator(task_id="repair", instances=create.output, content="fsck -n /dev/vdb")
            delete = DeleteInstancesOperator(task_id="delete_worker", instances=create.output,
                                             include_run_instances=True)
            create >> work >> delete.as_teardown(setups=create)
    """

    template_fields = aliyun_template_fields("image_id", "instance_type", "vswitch_id", "zone_id",
                                             "security_group_id", "instance_name", "tags", "amount", "purpose",
                                             "egress_cidrs", "poll_interval")
    hook_class = EcsHook

    def __init__(self, *, image_id: str, instance_type: str, amount: int = 1, vswitch_id: str | None = None,
                 zone_id: str | None = None, security_group_id: str | None = None,
                 instance_name: str | None = None, tags: Mapping[str, str] | None = None,
                 system_disk_size: int | None = None, system_disk_category: str | None = None,
                 internet_max_bandwidth_out: int | None = None, run_instances_extra: Mapping[str, Any] | None = None,
                 wait_for_running: bool = True, deferrable: bool = True, poll_interval: float = 10.0,
                 wait_timeout: float | None = 900.0, purpose: str | None = None,
                 egress_cidrs: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.purpose = purpose
        self.egress_cidrs = egress_cidrs
        self.image_id = image_id
        self.instance_type = instance_type
        self.amount = amount
        self.vswitch_id = vswitch_id
        self.zone_id = zone_id
        self.security_group_id = security_group_id
        self.instance_name = instance_name
        self.tags = tags
        self.system_disk_size = system_disk_size
        self.system_disk_category = system_disk_category
        self.internet_max_bandwidth_out = internet_max_bandwidth_out
        self.run_instances_extra = run_instances_extra
        self.wait_for_running = wait_for_running
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout

    def validate(self, context: Any) -> dict[str, str]:
        if not self.image_id or not self.instance_type:
            raise ValueError("image_id and instance_type are required")
        id_rules.check("instance_type", self.instance_type, "instance_type")
        try:
            amount = int(self.amount)
        except (TypeError, ValueError):
            raise ValueError(f"amount must be an integer, got {self.amount!r}") from None
        if not 1 <= amount <= 100:
            raise ValueError("amount must be 1-100 (RunInstances' limit)")
        self.poll_interval = as_number(self.poll_interval)
        _check_wait_args(self.poll_interval, self.wait_timeout)
        ti = context["ti"]
        ours = provenance_tags(run_id=context["run_id"], dag_id=ti.dag_id)
        if self.purpose:
            ours.update(temporary_tags(context, str(self.purpose)))
        return merge_tags(self.tags, ours)

    def execute(self, context: Any) -> list[dict]:
        tags = self.validate(context)
        region = self.resolve_region()
        hook = self.hook
        ids = self.recall(context, "run_instances_ids")
        if not ids:
            # what is made must be releasable: a missing ecs:DeleteInstance fails here, before anything exists
            for needed in ("DescribeInstances", "DeleteInstance"):
                hook.check_allowed(needed, region, "i-permission-check")
            vswitch_id, group_id = self.network(context, hook, region)
            ids = hook.run_instances(
                region, self.image_id, self.instance_type, amount=int(self.amount), security_group_id=group_id,
                v_switch_id=vswitch_id, instance_name=self.instance_name, tags=tags,
                client_token=self.client_token(context, "run-instances", region),
                system_disk_size=self.system_disk_size, system_disk_category=self.system_disk_category,
                internet_max_bandwidth_out=self.internet_max_bandwidth_out, **dict(self.run_instances_extra or {}))
            self.remember(context, "run_instances_ids", ids)
        self.log.info("instances %s in %s", ", ".join(ids), region)
        if self.wait_for_running:
            carry = {"region": region, "ids": ids}
            return self.resume(context, carry, self.wait_for_instances({region: ids}, st.RUNNING, carry=carry))
        return [compact(r) for r in hook.describe_instances(region, instance_ids=ids)]

    def network(self, context: Any, hook: EcsHook, region: str) -> tuple[str, str]:
        """The vSwitch and group given, else the default vSwitch and (with ``purpose``) the run's own group."""
        vswitch_id, group_id = self.vswitch_id, self.security_group_id
        if vswitch_id and group_id:
            return vswitch_id, group_id
        if self.purpose:
            vsw = hook.default_vswitch(region, self.zone_id, vswitch_id=vswitch_id or None)
            group_id = group_id or isolated_security_group(
                hook, context, region, vsw["VpcId"], purpose=str(self.purpose),
                allowed_cidrs=list(self.egress_cidrs or (INTERNAL_SERVICES_CIDR,)), log=self.log)
            return vsw["VSwitchId"], group_id
        default_vsw, default_group = default_network(hook, region, self.zone_id)
        self.log.info("network: vSwitch %s, security group %s", vswitch_id or default_vsw, group_id or default_group)
        return vswitch_id or default_vsw, group_id or default_group

    def resume(self, context: Any, carry: Mapping[str, Any], event: Mapping[str, Any]) -> list[dict]:
        region, ids = carry["region"], list(carry["ids"])
        records = {r["InstanceId"]: compact(r) for r in self.hook.describe_instances(region, instance_ids=ids)}
        out = [records.get(i) or {"instance_id": i, "instance_name": "", "region": region, "zone": "",
                                  "status": "Missing", "tags": {}} for i in ids]
        if event.get("status") != "success" or any(r["status"] != st.RUNNING for r in out):
            raise WaitFailed(f"instances {ids} did not all reach Running: {event.get('message')} "
                               f"(the teardown task should delete them)")
        return out


class DeleteInstancesOperator(InstanceWaitMixin, AliyunItemsOperator):
    """Delete (release) ECS instances and wait until they are gone; "already gone" is success.

    ``instances``: ids or records (e.g. a :class:`RunInstancesOperator` output; ``None`` is accepted,
    which happens when a setup task failed before pushing its XCom). ``include_run_instances=True``
    also deletes every instance in ``region`` (or each of ``regions``) carrying this DAG run's provenance
    tags, which is what a teardown wants. ``force=True`` (default) releases Running instances too; with ``force=False`` a
    Running instance fails. Deletion is per instance with ``max_errors``; the wait is deferred unless
    ``deferrable=False``.

    Example (teardown of temporary instances)::

        create = RunInstancesOperator(task_id="create", image_id="m-1", instance_type="ecs.g7.large")
        delete = DeleteInstancesOperator(task_id="delete", instances=create.output, include_run_instances=True)
        create >> work >> delete.as_teardown(setups=create)
    """

    template_fields = aliyun_template_fields("regions", "instances")
    hook_class = EcsHook

    def __init__(self, *, instances: Any = None, force: bool = True, include_run_instances: bool = False,
                 regions: Sequence[str] | None = None,
                 max_errors: int | str = 0, wait_for_deletion: bool = True, deferrable: bool = True,
                 poll_interval: float = 10.0, wait_timeout: float | None = 900.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instances = instances
        self.force = force
        self.include_run_instances = include_run_instances
        self.regions = regions
        self.max_errors = max_errors
        self.wait_for_deletion = wait_for_deletion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout

    def execute(self, context: Any) -> list[dict]:
        check_count(self.max_errors, "max_errors")
        _check_wait_args(self.poll_interval, self.wait_timeout)
        hook = self.hook
        items = normalize_instances(self.instances, self.region or hook.region)
        if self.include_run_instances:
            tags = {MANAGED_BY_KEY: MANAGED_BY_VALUE, RUN_ID: str(context["run_id"])[:128],
                    DAG_ID: context["ti"].dag_id}
            known = {i["instance_id"] for i in items}
            for region in list(self.regions or []) or [self.resolve_region()]:
                items += [{"instance_id": r["InstanceId"], "region": region}
                          for r in hook.describe_instances(region, tags=tags) if r["InstanceId"] not in known]
        if not items:
            self.log.info("nothing to delete")
            return []
        results: dict[str, dict] = {}
        waiting: dict[str, list[str]] = {}
        for item in items:
            try:
                hook.delete_instance(item["region"], item["instance_id"], force=bool(self.force))
                results[item["instance_id"]] = result(item, SUCCESS, "Deleting", "delete requested")
                waiting.setdefault(item["region"], []).append(item["instance_id"])
            except AliyunApiError as err:
                if err.is_not_found:
                    results[item["instance_id"]] = result(item, SKIPPED, DELETED, "already gone")
                else:
                    results[item["instance_id"]] = result(item, FAILED, "", f"{err.code}: {err.message}")
        state = {"order": [i["instance_id"] for i in items], "results": results}
        if waiting and self.wait_for_deletion:
            return self.resume(context, state, self.wait_for_instances(waiting, DELETED, carry=state))
        return self.resume(context, state, {})

    def resume(self, context: Any, carry: dict, event: Mapping[str, Any]) -> list[dict]:
        for iid, info in (event.get("instances") or {}).items():
            res = carry["results"].get(iid)
            if res is None:
                continue
            res["instance_status"] = info.get("status", "")
            if info.get("reached"):
                res["reason"] = "deleted"
            else:
                res["status"], res["reason"] = FAILED, f"still {info.get('status')}: {event.get('message')}"
        return self.conclude(context, [carry["results"][i] for i in carry["order"]], title="DeleteInstances")


__all__ = [
    "INSTANCE_STATUSES",
    "DeleteInstancesOperator",
    "ReplaceSystemDiskOperator",
    "RunInstancesOperator",
    "SelectInstancesOperator",
    "StartInstancesOperator",
    "StopInstancesOperator",
    "default_network",
    "normalize_instances",
]
