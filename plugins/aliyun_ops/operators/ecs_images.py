"""Image lifecycle operators: create, copy, delete and prune custom images; create snapshots.

Every operator here works on many items at once with OOS semantics (``concurrency``, ``max_errors``)
and returns one small JSON-safe dict per item (``status``: success | failed | skipped, ``reason``),
so downstream tasks and the run report see every item. The task fails only when failures exceed
``max_errors``.

Creates are idempotent: a stable ``ClientToken`` per (run, task, item), a look-up of what an
earlier try made (by provenance tags, and by the ids kept in Airflow's task state store) before
creating anything. Waiting is deferred by default to a batched trigger
(:class:`aliyun_ops.triggers.ecs_images.ImagesAvailableTrigger`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowException

from aliyun_ops.batch import errors_exceeded, run_batch
from aliyun_ops.exceptions import AliyunApiError, TooManyItemFailures
from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.logic import provenance as pv
from aliyun_ops.logic.budget import ErrorBudget, resolve_count
from aliyun_ops.logic.naming import (
    DEFAULT_IMAGE_NAME_TEMPLATE,
    render_image_name,
    sanitize_image_name,
    validate_name_template,
)
from aliyun_ops.logic.retention import ImageFacts, RetentionPolicy
from aliyun_ops.logic.retention import plan as retention_plan
from aliyun_ops.operators.base import AliyunBaseOperator, run_key
from aliyun_ops.triggers.base import deadline_from
from aliyun_ops.triggers.ecs_images import (
    ImagesAvailableTrigger,
    PollPlan,
    ResourceWatch,
    SnapshotsReadyTrigger,
    probe_request,
    total_count,
)

SUCCESS, FAILED, SKIPPED = "success", "failed", "skipped"
SOURCE_DISK = "ops:source-disk"
"""Provenance tag of snapshots we create (the disk they were taken of)."""
STATE_CREATE = "aliyun_ops.create_image"
STATE_COPY = "aliyun_ops.copy_image"
STATE_SNAPSHOT = "aliyun_ops.create_snapshot"
STATE_DELETE = "aliyun_ops.delete_image_snapshots"
DELETE_BATCH_HINT = 50


# -- small helpers ----------------------------------------------------------------------------
def is_templated(value: Any) -> bool:
    """True when ``value`` will only be known at run time (Jinja string or XComArg)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return hasattr(value, "resolve") or type(value).__name__.endswith("XComArg")


def _static(*values: Any) -> bool:
    return not any(is_templated(v) for v in values)


def check_batch_args(concurrency: Any, max_errors: Any) -> None:
    """ValueError unless ``concurrency`` >= 1 and ``max_errors`` are a count or a percentage."""
    resolve_count(concurrency, 100, name="concurrency", minimum=1)
    ErrorBudget.of(max_errors, 100)


def check_seconds(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number of seconds, not a boolean")
    try:
        number = float(value.total_seconds() if isinstance(value, timedelta) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return number


def check_retention_days(value: Any) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise ValueError("retention_days must be a whole number of days")
    try:
        days = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"retention_days must be a whole number of days, got {value!r}") from None
    if days < 1 or days > 65536:
        raise ValueError(f"retention_days must be between 1 and 65536, got {value!r}")
    return days


def as_list(value: Any, name: str) -> list:
    if value is None:
        return []
    if isinstance(value, (str, Mapping)):
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    raise ValueError(f"{name} must be a string or a list, got {type(value).__name__}")


def run_info(context: Any) -> dict[str, str]:
    ti = context["ti"]
    return {"dag_id": str(ti.dag_id), "run_id": str(context["run_id"]), "run_key": run_key(context),
            "task_id": str(ti.task_id)}


def run_date(context: Any) -> datetime:
    """The run's logical date (stable across retries); now for runs without one."""
    for key in ("logical_date", "data_interval_end"):
        value = context.get(key) if hasattr(context, "get") else None
        if isinstance(value, datetime):
            return value
    dag_run = context.get("dag_run") if hasattr(context, "get") else None
    value = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)
    if isinstance(value, datetime):
        return value
    return datetime.now(UTC)


def api_reason(exc: BaseException) -> str:
    if isinstance(exc, AliyunApiError):
        rid = f" (RequestId {exc.request_id})" if exc.request_id else ""
        return f"{exc.code}: {exc.message}{rid}"
    return f"{type(exc).__name__}: {exc}"


def _short(text: str, n: int = 6) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def describe_by_region(hook: Any, wanted: Mapping[str, Iterable[str]]) -> dict[str, dict]:
    """``{region: [image ids]}`` -> ``{image_id: record}`` (one batched DescribeImages per region)."""
    out: dict[str, dict] = {}
    for region, ids in wanted.items():
        ids = list(dict.fromkeys(ids))
        if ids:
            for rec in hook.describe_images(region, image_ids=ids):
                out[rec["ImageId"]] = rec
    return out


def failure_summary(results: Sequence[Mapping], key_fields: Sequence[str]) -> str:
    lines = []
    for r in results:
        if r.get("status") == FAILED:
            key = "/".join(str(r.get(k) or "") for k in key_fields)
            lines.append(f"  {key}: {r.get('reason') or 'failed'}")
    return "\n".join(lines)


# -- the shared base ----------------------------------------------------------------------------
class _BatchImageOperator(AliyunBaseOperator):
    """Batch settings, waiting (deferred or in-process), result bookkeeping."""

    hook_class = EcsHook
    result_key_fields: tuple[str, ...] = ("image_id",)
    watch_kind = "image"
    default_timeout = 4 * 3600.0

    def __init__(self, *, concurrency: int | str = 10, max_errors: int | str = 0,
                 wait_for_completion: bool = True, deferrable: bool = True, poll_interval: float = 30.0,
                 timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.concurrency = concurrency
        self.max_errors = max_errors
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        if _static(concurrency, max_errors):
            check_batch_args(concurrency, max_errors)
        if _static(poll_interval):
            check_seconds("poll_interval", poll_interval)
        if _static(timeout):
            check_seconds("timeout", timeout, allow_none=True)

    # validation shared by execute()
    def _check_common(self) -> None:
        check_batch_args(self.concurrency, self.max_errors)
        check_seconds("poll_interval", self.poll_interval)
        check_seconds("timeout", self.timeout, allow_none=True)

    @property
    def _timeout_seconds(self) -> float:
        return float(self.timeout) if self.timeout is not None else self.default_timeout

    # -- waiting -------------------------------------------------------------------------------
    def _wait_items(self, results: Sequence[Mapping]) -> list[dict]:
        """``[{"region", "id"}]`` of results still in flight (``status == "pending"``)."""
        return [{"region": r["region"], "id": r[self._id_field]} for r in results if r.get("status") == "pending"]

    _id_field = "image_id"

    def _probe_tags(self, context: Any) -> dict[str, str] | None:
        """Tags every image this task makes carries (provenance): the watch's cheap per-region probe."""
        if self.watch_kind != "image":
            return None
        info = run_info(context)
        return {pv.RUN_KEY: info["run_key"], pv.DAG_ID: info["dag_id"], pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}

    def _wait_then_finish(self, context: Any, results: list[dict]) -> list[dict]:
        items = self._wait_items(results)
        if not items or not self.wait_for_completion:
            return self._finish(context, results, None)
        deadline = deadline_from(self._timeout_seconds)
        trigger_cls = ImagesAvailableTrigger if self.watch_kind == "image" else SnapshotsReadyTrigger
        probe_tags = self._probe_tags(context)
        if self.deferrable:
            self.log.info("Deferring: waiting for %d %s(s) (timeout %.0fs)", len(items), self.watch_kind,
                          self._timeout_seconds)
            # the results travel in the trigger's echo: dag.test() drops defer(kwargs=...) on resume
            self.defer(trigger=trigger_cls(items=items, aliyun_conn_id=self.aliyun_conn_id, region=self.region,
                                           poll_interval=float(self.poll_interval), deadline=deadline,
                                           echo={"results": results}, probe_tags=probe_tags),
                       method_name="execute_complete", timeout=timedelta(seconds=self._timeout_seconds + 600))
        event = self._poll_in_process(items, deadline, probe_tags)
        return self._finish(context, results, event)

    def _poll_in_process(self, items: list[dict], deadline: float | None,
                         probe_tags: Mapping[str, str] | None = None) -> dict:
        """Same logic as the trigger (:class:`PollPlan`: probe, read the front, sleep by prediction) in the worker."""
        watch = ResourceWatch(items, kind=self.watch_kind)
        plan = PollPlan(watch, poll_interval=float(self.poll_interval), deadline=deadline, probe_tags=probe_tags)
        hook = self.hook

        def answer(request: tuple) -> Any:
            what, region, arg = request
            if what == "count":
                return total_count(hook.call("DescribeImages", hook.get_client(region).describe_images,
                                             probe_request(region, arg), region=region))
            if self.watch_kind == "image":
                return hook.describe_images(region, image_ids=arg)
            return hook.describe_snapshots(region, snapshot_ids=arg)

        try:
            while True:
                due = plan.due(time.time())
                for region in due:
                    plan.drive(region, answer)
                now = time.time()
                if due:
                    watch.polls += 1
                    self.log.info("%s wait: %s", self.watch_kind, watch.summary(now))
                if watch.done:
                    return watch.event("success")
                if plan.expired(now):
                    return watch.event("timeout", message=f"deadline passed: {watch.summary(now)}")
                time.sleep(plan.wait(now))
        except AliyunApiError as err:
            return watch.event("error", message=str(err), error=err.to_dict())

    def execute_complete(self, context: Any, event: Mapping | None = None, results: list[dict] | None = None):
        if event is None:
            raise AirflowException(f"{self.task_id}: resumed without a trigger event")
        if results is None:
            results = ((event.get("echo") or {}).get("results")) or []
        return self._finish(context, [dict(r) for r in results], event)

    def _apply_event(self, results: list[dict], event: Mapping | None) -> None:
        """Turn pending results into success/failed from the watch event (None: not waited for)."""
        items = (event or {}).get("items") or {}
        timed_out = set((event or {}).get("timed_out") or [])
        err_msg = (event or {}).get("message") if (event or {}).get("status") == "error" else None
        for r in results:
            if r.get("status") != "pending":
                continue
            rid = r[self._id_field]
            t0 = r.pop("_t0", None)
            if event is None:
                r["status"] = SUCCESS
                r["reason"] = r.get("reason") or "submitted (not waiting for completion)"
                continue
            state = items.get(rid) or {}
            r[f"{self.watch_kind}_status"] = state.get("status", r.get(f"{self.watch_kind}_status"))
            if state.get("size_gib") is not None:
                r["size_gib"] = state["size_gib"]
            if state.get("snapshot_ids"):
                r["snapshot_ids"] = state["snapshot_ids"]
            observed = state.get("observed_at")
            if observed and t0:
                r["seconds"] = round(max(0.0, observed - t0), 1)
            status = state.get("status")
            if rid in timed_out or not state.get("observed_at"):
                r["status"] = FAILED
                why = err_msg or f"timed out after {self._timeout_seconds:.0f}s"
                r["reason"] = f"{why} (last status {status or 'unknown'}, progress {state.get('progress') or '?'})"
            elif status in (("Available", "Deprecated") if self.watch_kind == "image" else ("accomplished",)):
                r["status"] = SUCCESS
            else:
                r["status"] = FAILED
                r["reason"] = state.get("reason") or f"{self.watch_kind} is {status}"
        for r in results:
            r.pop("_t0", None)

    def _conclude(self, results: list[dict]) -> list[dict]:
        counts = {s: sum(1 for r in results if r.get("status") == s) for s in (SUCCESS, FAILED, SKIPPED)}
        self.log.info("%s: %d succeeded, %d failed, %d skipped", self.task_id, counts[SUCCESS], counts[FAILED],
                      counts[SKIPPED])
        failed = [r for r in results if r.get("status") == FAILED]
        if failed and errors_exceeded([_Status(r["status"]) for r in results], self.max_errors):
            raise TooManyItemFailures(
                f"{len(failed)} of {len(results)} item(s) failed, more than max_errors={self.max_errors!r}:\n"
                + failure_summary(results, self.result_key_fields))
        return results

    def _finish(self, context: Any, results: list[dict], event: Mapping | None) -> list[dict]:
        self._apply_event(results, event)
        return self._conclude(results)


class _Status:
    """Adapter so :func:`errors_exceeded` can count our dict results."""

    def __init__(self, status: str) -> None:
        self.status = status


def _run(items: Sequence[dict], action, *, key, concurrency, max_errors) -> list:
    return run_batch(items, action, key=key, concurrency=concurrency, max_errors=max_errors)


# -- CreateImage ----------------------------------------------------------------------------
def normalize_instances(instances: Any, default_region: str | None) -> list[dict]:
    """One id, a list of ids, or SelectInstancesOperator's dicts -> ``[{"instance_id", "instance_name", "region"}]``.

    Duplicates are dropped (first wins). Raises ``ValueError`` for anything else.
    """
    out: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for item in as_list(instances, "instances"):
        if isinstance(item, str):
            iid, name, region = item.strip(), "", default_region
        elif isinstance(item, Mapping):
            iid = str(item.get("instance_id") or item.get("InstanceId") or "").strip()
            name = str(item.get("instance_name") or item.get("InstanceName") or "")
            region = item.get("region") or item.get("RegionId") or default_region
        else:
            raise ValueError(f"instances: cannot read an instance from {item!r}")
        if not iid.startswith("i-"):
            raise ValueError(f"instances: {iid!r} does not look like an ECS instance id (i-...)")
        if not region:
            raise ValueError(f"instances: no region for {iid}; pass region=... or give each item a 'region'")
        if (region, iid) in seen:
            continue
        seen.add((region, iid))
        out.append({"instance_id": iid, "instance_name": name, "region": str(region)})
    return out


class CreateImageOperator(_BatchImageOperator):
    """Create a custom image of each instance, idempotently, and wait until the images are Available.

    :param instances: an instance id, a list of ids, or the list of dicts ``SelectInstancesOperator``
        returns (``{"instance_id", "instance_name", "region", ...}``); or
    :param instance_tags: select the (Running or Stopped) instances of ``region`` carrying all these tags
    :param region: region of plain ids (default: the connection's region)
    :param image_name_template: ``logic.naming`` template (``{instance_name}``, ``{instance_id}``, ``{region}``,
        ``{date}``, ``{datetime}``, ``{run_id}``, ``{dag_id}``); default ``backup-{instance_name}-{instance_id}-{date}``
    :param description: image description
    :param tags: user tags; provenance tags (``ops:managed-by``, source instance/region, run id, DAG id,
        policy, retention days) are always added and cannot be overridden
    :param policy: value of the ``ops:policy`` tag (retention filters on it)
    :param retention_days: value of the ``ops:retention-days`` tag
    :param concurrency: images created at once (number or ``"10%"``); ``max_errors`` as in OOS
    :param wait_for_completion: wait until every image is Available/CreateFailed (default True)
    :param deferrable: wait in the triggerer (default True) rather than polling in the worker
    :param poll_interval: longest wait between polls (seconds); ``timeout``: total wait (default 4 h)

    Returns ``[{"instance_id", "instance_name", "region", "image_id", "image_name", "status", "reason",
    "image_status", "size_gib", "seconds", "snapshot_ids"}]``.

    Example::

        CreateImageOperator(task_id="create_images", instances=select.output, policy="nightly",
                            retention_days=7, concurrency=5, max_errors="10%")
    """

    template_fields = ("aliyun_conn_id", "region", "instances", "instance_tags", "image_name_template",
                       "description", "tags", "policy", "retention_days", "concurrency", "max_errors",
                       "poll_interval", "timeout")
    template_fields_renderers = {"tags": "json", "instances": "json"}
    result_key_fields = ("region", "instance_id")

    def __init__(self, *, instances: Any = None, instance_tags: Mapping[str, str] | None = None,
                 image_name_template: str = DEFAULT_IMAGE_NAME_TEMPLATE,
                 description: str | None = None, tags: Mapping[str, str] | None = None, policy: str | None = None,
                 retention_days: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instances = instances
        self.instance_tags = instance_tags
        if _static(instances, instance_tags):
            self._check_selection()
        self.image_name_template = image_name_template
        self.description = description
        self.tags = tags
        self.policy = policy
        self.retention_days = retention_days
        if _static(image_name_template):
            validate_name_template(image_name_template or "")
        if _static(tags) and tags is not None:
            pv.validate_tags(tags, what="tags")
        if _static(retention_days):
            check_retention_days(retention_days)
        if _static(instances) and isinstance(instances, (str, list, tuple)):
            normalize_instances(instances, "placeholder-region")

    def _check_selection(self) -> None:
        if (self.instances is None) == (not self.instance_tags):
            raise ValueError("pass exactly one of instances or instance_tags")
        if self.instance_tags:
            pv.validate_tags(self.instance_tags, what="instance_tags")

    def _validate(self) -> tuple[list[dict], int | None]:
        self._check_common()
        self._check_selection()
        validate_name_template(self.image_name_template or "")
        days = check_retention_days(self.retention_days)
        pv.merge_tags(self.tags, pv.provenance_tags(source_instance="i-x", source_region="r", run_id="r",
                                                   dag_id="d", policy=self.policy, retention_days=days))
        if self.description is not None and not isinstance(self.description, str):
            raise ValueError("description must be a string")
        if self.instance_tags:
            region = self.resolve_region()
            return [{"instance_id": r["InstanceId"], "instance_name": r.get("InstanceName", ""), "region": region}
                    for r in self.hook.describe_instances(region, tags=dict(self.instance_tags))
                    if r.get("Status") in ("Running", "Stopped")], days
        items = normalize_instances(self.instances, self.region or "__default__")
        if any(i["region"] == "__default__" for i in items):
            default = self.resolve_region()
            for i in items:
                if i["region"] == "__default__":
                    i["region"] = default
        return items, days

    def execute(self, context: Any) -> list[dict]:
        items, days = self._validate()
        if not items:
            self.log.info("No instances to image")
            return []
        info = run_info(context)
        date = run_date(context)
        hook = self.hook
        by_region: dict[str, list[dict]] = {}
        for item in items:
            by_region.setdefault(item["region"], []).append(item)

        # 1. the instances (existence, state, names): one batched DescribeInstances per region
        found: dict[str, dict] = {}
        for region, group in by_region.items():
            for rec in hook.describe_instances(region, instance_ids=[i["instance_id"] for i in group]):
                found[rec["InstanceId"]] = rec
        # 2. what earlier tries of this task made: tags (per region) + the task state store
        remembered: dict[str, str] = dict(self.recall(context, STATE_CREATE) or {})
        existing: dict[str, list[dict]] = {}
        for region in by_region:
            for rec in hook.describe_images(region, tags={pv.RUN_KEY: info["run_key"], pv.DAG_ID: info["dag_id"],
                                                          pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}):
                src = pv.tags_from_api(rec.get("Tags")).get(pv.SOURCE_INSTANCE)
                if src:
                    existing.setdefault(f"{region}/{src}", []).append(rec)
        missing_remembered: dict[str, list[str]] = {}
        for key, image_id in remembered.items():
            if not any(r["ImageId"] == image_id for r in existing.get(key, [])):
                missing_remembered.setdefault(key.split("/", 1)[0], []).append(image_id)
        for image_id, rec in describe_by_region(hook, missing_remembered).items():
            key = next(k for k, v in remembered.items() if v == image_id)
            existing.setdefault(key, []).append(rec)

        results: list[dict] = []
        to_create: list[dict] = []
        now = time.time()
        for item in items:
            iid, region = item["instance_id"], item["region"]
            inst = found.get(iid)
            res = {"instance_id": iid, "instance_name": item["instance_name"], "region": region, "image_id": "",
                   "image_name": "", "status": FAILED, "reason": "", "image_status": None, "size_gib": None,
                   "seconds": None}
            results.append(res)
            if inst is None:
                res["reason"] = f"instance {iid} not found in {region}"
                continue
            res["instance_name"] = res["instance_name"] or inst.get("InstanceName", "")
            prior = existing.get(f"{region}/{iid}", [])
            good = [r for r in prior if r.get("Status") not in ("CreateFailed", "UnAvailable")]
            if good:
                rec = sorted(good, key=lambda r: r.get("CreationTime", ""))[-1]
                res.update(image_id=rec["ImageId"], image_name=rec.get("ImageName", ""), status="pending",
                           image_status=rec.get("Status"), reason="already created by an earlier try", _t0=now)
                self.log.info("%s: image %s already exists (%s), not creating another", iid, rec["ImageId"],
                              rec.get("Status"))
                continue
            if inst.get("Status") not in ("Running", "Stopped"):
                res["reason"] = f"instance {iid} is {inst.get('Status')}; CreateImage needs Running or Stopped"
                continue
            res["_attempt"] = len(prior)  # earlier CreateFailed images: a new, still stable, token
            to_create.append(res)

        values_base = {"date": date.strftime("%Y%m%d"), "datetime": date.strftime("%Y%m%d-%H%M%S"),
                       "run_id": info["run_id"], "dag_id": info["dag_id"]}
        lock = threading.Lock()

        def create_one(res: dict) -> str:
            iid, region = res["instance_id"], res["region"]
            name = render_image_name(self.image_name_template, {**values_base, "instance_id": iid,
                                                                "instance_name": res["instance_name"],
                                                                "region": region})
            if res["_attempt"]:
                name = sanitize_image_name(f"{name}-r{res['_attempt']}")
            tags = pv.merge_tags(self.tags, pv.provenance_tags(
                source_instance=iid, source_region=region, run_id=info["run_id"], run_key=info["run_key"],
                dag_id=info["dag_id"],
                policy=self.policy, retention_days=days))
            parts = ["create-image", iid] + ([f"attempt-{res['_attempt']}"] if res["_attempt"] else [])
            token = self.client_token(context, *parts)
            try:
                image_id = hook.create_image(region, iid, name, self.description or None, tags, token)
            except AliyunApiError as err:
                if err.code != "InvalidImageName.Duplicated":
                    raise
                same = [r for r in hook.describe_images(region, image_name=name)
                        if pv.tags_from_api(r.get("Tags")).get(pv.SOURCE_INSTANCE) == iid
                        and pv.tags_from_api(r.get("Tags")).get(pv.RUN_KEY) == info["run_key"]]
                if same:
                    image_id = same[0]["ImageId"]
                else:  # the name is taken by another run's image: keep ours distinct, still deterministic
                    name = sanitize_image_name(f"{name}-{_short(info['run_id'])}")
                    image_id = hook.create_image(region, iid, name, self.description or None, tags,
                                                 self.client_token(context, *parts, "renamed"))
            with lock:
                res.update(image_id=image_id, image_name=name)
            return image_id

        if to_create:
            self.log.info("Creating %d image(s) (concurrency %s, max_errors %s)", len(to_create), self.concurrency,
                          self.max_errors)
            outcomes = _run(to_create, create_one, key=lambda r: r["instance_id"], concurrency=self.concurrency,
                            max_errors=self.max_errors)
            for res, outcome in zip(to_create, outcomes, strict=True):
                res.pop("_attempt", None)
                if outcome.status == SUCCESS:
                    res.update(status="pending", image_status="Creating", _t0=time.time())
                    remembered[f"{res['region']}/{res['instance_id']}"] = res["image_id"]
                else:
                    res.update(status=outcome.status, reason=outcome.error)
            self.remember(context, STATE_CREATE, remembered)
        return self._wait_then_finish(context, results)


# -- CopyImage ------------------------------------------------------------------------------------
def source_size_gib(rec: Mapping[str, Any]) -> float:
    """All disks of an image (DescribeImages ``DiskDeviceMappings``; ``Size`` is the system disk only)."""
    mappings = (rec.get("DiskDeviceMappings") or {}).get("DiskDeviceMapping") or []
    total = 0.0
    for m in mappings:
        try:
            total += float(m.get("Size") or 0)
        except (TypeError, ValueError):
            pass
    try:
        return total or float(rec.get("Size") or 0)
    except (TypeError, ValueError):
        return 0.0


def normalize_images(images: Any, default_region: str | None, *, id_key: str = "image_id",
                     region_key: str = "region") -> list[dict]:
    """An image id, a list of ids, or a results list -> ``[{"image_id", "region", "upstream": dict|None}]``."""
    out: list[dict] = []
    for item in as_list(images, "images"):
        if isinstance(item, str):
            image_id, region, upstream = item.strip(), default_region, None
        elif isinstance(item, Mapping):
            image_id = str(item.get(id_key) or item.get("ImageId") or "").strip()
            region = item.get(region_key) or item.get("RegionId") or default_region
            upstream = dict(item)
        else:
            raise ValueError(f"images: cannot read an image from {item!r}")
        if image_id and not image_id.startswith("m-"):
            raise ValueError(f"images: {image_id!r} does not look like a custom image id (m-...)")
        if not image_id and (upstream is None or upstream.get("status") in (None, SUCCESS)):
            raise ValueError(f"images: item without an image id: {item!r}")
        if not region:
            raise ValueError(f"images: no region for {image_id}; pass region=... or give each item a 'region'")
        out.append({"image_id": image_id, "region": str(region), "upstream": upstream})
    return out


class CopyImageOperator(_BatchImageOperator):
    """Copy images to one or more regions, idempotently; wait; tag finished copies ``ops:copy-status=complete``.

    :param images: an image id (with ``region``), a list of ids, or ``CreateImageOperator``'s results
        (only items with ``status == "success"`` are copied; the others come back as ``skipped`` with the
        upstream reason)
    :param destination_regions: one region or a list; a destination equal to a source region is rejected
    :param name_template: copy name; naming fields plus ``{image_id}`` and ``{source_image_name}``
        (default: the source image's name)
    :param description: copy description
    :param tags: user tags; provenance (``ops:source-image``, ``ops:source-region``, source instance, run, ...)
        is always added
    :param encrypted: encrypt the copies; ``kms_key_id`` (needs ``encrypted=True``)
    :param mark_complete: tag each Available copy ``ops:copy-status=complete`` (batched TagResources)
    :param concurrency: copies started at once; ``max_errors``, ``wait_for_completion``, ``deferrable``,
        ``poll_interval``, ``timeout`` (default 8 h) as in :class:`CreateImageOperator`

    Copies queued by Alibaba (``Waiting``; the emulator runs 5 per destination region) are waited for,
    not failed. Returns one dict per (image, destination): ``{"source_image_id", "source_region",
    "destination_region", "image_id" (the copy), "region" (= destination), "image_name", "instance_id",
    "instance_name", "status", "reason", "image_status", "size_gib", "seconds"}``.

    Example::

        CopyImageOperator(task_id="copy_images", images=create.output, destination_regions=["cn-shanghai"],
                          policy="nightly", retention_days=30)
    """

    template_fields = ("aliyun_conn_id", "region", "images", "destination_regions", "name_template", "description",
                       "tags", "policy", "retention_days", "encrypted", "kms_key_id", "concurrency", "max_errors",
                       "poll_interval", "timeout")
    template_fields_renderers = {"tags": "json", "images": "json"}
    result_key_fields = ("source_image_id", "destination_region")
    default_timeout = 8 * 3600.0

    def __init__(self, *, images: Any, destination_regions: str | Sequence[str], name_template: str | None = None,
                 description: str | None = None, tags: Mapping[str, str] | None = None, policy: str | None = None,
                 retention_days: int | None = None, encrypted: bool = False, kms_key_id: str | None = None,
                 mark_complete: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.images = images
        self.destination_regions = destination_regions
        self.name_template = name_template
        self.description = description
        self.tags = tags
        self.policy = policy
        self.retention_days = retention_days
        self.encrypted = encrypted
        self.kms_key_id = kms_key_id
        self.mark_complete = mark_complete
        if _static(destination_regions):
            self._destinations()
        if _static(encrypted, kms_key_id):
            self._check_encryption()
        if _static(tags) and tags is not None:
            pv.validate_tags(tags, what="tags")
        if _static(retention_days):
            check_retention_days(retention_days)
        if _static(name_template) and name_template:
            validate_name_template(self._plain_template(name_template))
        if _static(images, self.region, destination_regions) and isinstance(images, (str, list, tuple)):
            self._pairs(normalize_images(images, self.region or "__default__"), self._destinations(),
                        check_only=True)

    @staticmethod
    def _plain_template(template: str) -> str:
        return template.replace("{image_id}", "").replace("{source_image_name}", "")

    def _destinations(self) -> list[str]:
        dests = [d.strip() for d in as_list(self.destination_regions, "destination_regions")
                 if isinstance(d, str) and d.strip()]
        if not dests or len(dests) != len(as_list(self.destination_regions, "destination_regions")):
            raise ValueError("destination_regions must be one region or a non-empty list of region ids")
        return list(dict.fromkeys(dests))

    def _check_encryption(self) -> None:
        if not isinstance(self.encrypted, bool):
            raise ValueError(f"encrypted must be true or false, got {self.encrypted!r}")
        if self.kms_key_id and not self.encrypted:
            raise ValueError("kms_key_id needs encrypted=True")

    @staticmethod
    def _pairs(sources: list[dict], dests: list[str], *, check_only: bool = False) -> list[tuple[dict, str]]:
        pairs = []
        for src in sources:
            for dest in dests:
                if dest == src["region"] and not (src["upstream"] and src["upstream"].get("status") not in
                                                  (None, SUCCESS)):
                    raise ValueError(f"destination region {dest} is the source region of {src['image_id']}: "
                                     "a copy must go to another region")
                pairs.append((src, dest))
        return pairs

    def _validate(self) -> tuple[list[tuple[dict, str]], int | None]:
        self._check_common()
        self._check_encryption()
        days = check_retention_days(self.retention_days)
        if self.name_template:
            validate_name_template(self._plain_template(self.name_template))
        pv.merge_tags(self.tags, pv.provenance_tags(source_instance="i-x", source_region="r", source_image="m-x",
                                                   run_id="r", dag_id="d", policy=self.policy, retention_days=days))
        dests = self._destinations()
        sources = normalize_images(self.images, self.region or "__default__")
        if any(s["region"] == "__default__" for s in sources):
            default = self.resolve_region()
            for s in sources:
                if s["region"] == "__default__":
                    s["region"] = default
        return self._pairs(sources, dests), days

    def execute(self, context: Any) -> list[dict]:
        pairs, days = self._validate()
        if not pairs:
            self.log.info("No images to copy")
            return []
        info = run_info(context)
        date = run_date(context)
        hook = self.hook
        now = time.time()

        results: list[dict] = []
        live: list[tuple[dict, dict, str]] = []
        for src, dest in pairs:
            up = src["upstream"] or {}
            res = {"source_image_id": src["image_id"], "source_region": src["region"], "destination_region": dest,
                   "image_id": "", "region": dest, "image_name": "", "instance_id": up.get("instance_id", ""),
                   "instance_name": up.get("instance_name", ""), "status": FAILED, "reason": "",
                   "image_status": None, "size_gib": up.get("size_gib"), "seconds": None}
            results.append(res)
            if src["upstream"] is not None and up.get("status") not in (None, SUCCESS):
                res.update(status=SKIPPED, reason=f"upstream {up.get('status')}: {up.get('reason') or 'no image'}")
                continue
            live.append((src, res, dest))
        if not live:
            return self._conclude(results)

        # source images: exist, Available, their tags/names (one batched DescribeImages per source region)
        wanted: dict[str, list[str]] = {}
        for src, _, _ in live:
            wanted.setdefault(src["region"], []).append(src["image_id"])
        sources = describe_by_region(hook, wanted)
        # copies made by earlier tries: tags in each destination + task state store
        remembered: dict[str, str] = dict(self.recall(context, STATE_COPY) or {})
        existing: dict[str, dict] = {}
        for dest in {d for _, _, d in live}:
            for rec in hook.describe_images(dest, tags={pv.RUN_KEY: info["run_key"], pv.DAG_ID: info["dag_id"],
                                                        pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}):
                src_id = pv.tags_from_api(rec.get("Tags")).get(pv.SOURCE_IMAGE)
                if src_id and rec.get("Status") not in ("CreateFailed", "UnAvailable"):
                    existing[f"{src_id}/{dest}"] = rec
        lost: dict[str, list[str]] = {}
        for key, copy_id in remembered.items():
            if key not in existing:
                lost.setdefault(key.split("/", 1)[1], []).append(copy_id)
        for copy_id, rec in describe_by_region(hook, lost).items():
            key = next(k for k, v in remembered.items() if v == copy_id)
            if rec.get("Status") not in ("CreateFailed", "UnAvailable"):
                existing[key] = rec

        to_copy: list[tuple[dict, dict, str, dict]] = []
        for src, res, dest in live:
            rec = sources.get(src["image_id"])
            key = f"{src['image_id']}/{dest}"
            if key in existing:
                prior = existing[key]
                res.update(image_id=prior["ImageId"], image_name=prior.get("ImageName", ""), status="pending",
                           image_status=prior.get("Status"), reason="already copied by an earlier try", _t0=now,
                           _tagged=pv.tags_from_api(prior.get("Tags")).get(pv.COPY_STATUS) == pv.COPY_COMPLETE)
                continue
            if rec is None:
                res["reason"] = f"source image {src['image_id']} not found in {src['region']}"
                continue
            if rec.get("Status") != "Available":
                res["reason"] = f"source image {src['image_id']} is {rec.get('Status')}, not Available"
                continue
            src_tags = pv.tags_from_api(rec.get("Tags"))
            res["instance_id"] = res["instance_id"] or src_tags.get(pv.SOURCE_INSTANCE, "")
            res["size_gib"] = res["size_gib"] or rec.get("Size")
            to_copy.append((src, res, dest, rec))

        values_base = {"date": date.strftime("%Y%m%d"), "datetime": date.strftime("%Y%m%d-%H%M%S"),
                       "run_id": info["run_id"], "dag_id": info["dag_id"]}

        def copy_one(job: tuple[dict, dict, str, dict]) -> str:
            src, res, dest, rec = job
            src_tags = pv.tags_from_api(rec.get("Tags"))
            if self.name_template:
                template = self.name_template.replace("{image_id}", src["image_id"]).replace(
                    "{source_image_name}", rec.get("ImageName", ""))
                name = render_image_name(template, {**values_base, "instance_id": res["instance_id"],
                                                    "instance_name": res["instance_name"], "region": src["region"],
                                                    "destination_region": dest})
            else:
                name = sanitize_image_name(rec.get("ImageName") or f"copy-{src['image_id']}")
            tags = pv.merge_tags(self.tags, pv.provenance_tags(
                source_instance=res["instance_id"] or src_tags.get(pv.SOURCE_INSTANCE), source_region=src["region"],
                source_image=src["image_id"], run_id=info["run_id"], run_key=info["run_key"],
                dag_id=info["dag_id"],
                policy=self.policy or src_tags.get(pv.POLICY), retention_days=days or src_tags.get(pv.RETENTION_DAYS)))
            description = self.description or f"Copy of {src['image_id']} from {src['region']}"
            copy_id = hook.copy_image(src["region"], src["image_id"], dest, name, description, tags,
                                      self.encrypted or None, self.kms_key_id or None,
                                      self.client_token(context, "copy-image", src["image_id"], dest))
            res.update(image_id=copy_id, image_name=name)
            return copy_id

        # ECS runs each destination's copy queue first come, first served: submitting the largest images
        # first turns that into longest-processing-time-first (the copy phase's makespan drops ~10%)
        to_copy.sort(key=lambda job: -source_size_gib(job[3]))
        self._submit_order = {}
        if to_copy:
            self.log.info("Copying %d image(s) to %s (concurrency %s)", len(to_copy),
                          sorted({d for _, _, d, _ in to_copy}), self.concurrency)
            outcomes = _run(to_copy, copy_one, key=lambda j: f"{j[0]['image_id']}->{j[2]}",
                            concurrency=self.concurrency, max_errors=self.max_errors)
            for n, ((src, res, dest, _), outcome) in enumerate(zip(to_copy, outcomes, strict=True)):
                self._submit_order[res["image_id"]] = n
                if outcome.status == SUCCESS:
                    res.update(status="pending", image_status="Waiting", _t0=time.time(), _tagged=False)
                    remembered[f"{src['image_id']}/{dest}"] = res["image_id"]
                else:
                    res.update(status=outcome.status, reason=outcome.error)
            self.remember(context, STATE_COPY, remembered)
        return self._wait_then_finish(context, results)

    def _wait_items(self, results: Sequence[Mapping]) -> list[dict]:
        """In-flight copies in queue order (earlier tries' copies first, then as submitted): the watch
        predicts each destination's first-come-first-served queue from this order."""
        order = getattr(self, "_submit_order", None) or {}
        items = super()._wait_items(results)
        return sorted(items, key=lambda i: order.get(i["id"], -1))

    def _finish(self, context: Any, results: list[dict], event: Mapping | None) -> list[dict]:
        tagged = {r["image_id"] for r in results if r.pop("_tagged", False)}
        self._apply_event(results, event)
        if self.mark_complete and event is not None:
            by_dest: dict[str, list[dict]] = {}
            for r in results:
                if r["status"] == SUCCESS and r["image_id"] and r["image_id"] not in tagged:
                    by_dest.setdefault(r["destination_region"], []).append(r)
            for dest, rows in by_dest.items():
                try:
                    self.hook.tag_resources(dest, "image", [r["image_id"] for r in rows],
                                            {pv.COPY_STATUS: pv.COPY_COMPLETE})
                except AliyunApiError as err:  # the copy exists; retention will just treat it as incomplete
                    for r in rows:
                        r["reason"] = f"copy done, but tagging {pv.COPY_STATUS} failed: {api_reason(err)}"
        return self._conclude(results)


# -- DeleteImages ---------------------------------------------------------------------------------
class DeleteImagesOperator(_BatchImageOperator):
    """Delete images and then their snapshots, with guards; per-item results.

    :param images: an image id, a list of ids (with ``region``), or a results list from Create/Copy
        (``image_key``/``region_key`` name the fields to read, e.g. ``"source_image_id"``/``"source_region"``
        to delete the sources of copies)
    :param require_success: with a results list, delete an image only if every row naming it has
        ``status == "success"`` (e.g. delete a source only when all its copies succeeded)
    :param delete_snapshots: delete the image's snapshots (from ``DiskDeviceMappings``) afterwards
    :param force: ``DeleteImage Force`` (also for images in use) and cancel an in-progress copy
        (``OperationDenied.ImageCopying`` -> ``CancelCopyImage``)
    :param dry_run: report what would be deleted; no Delete/Cancel API call is made
    :param only_managed: refuse images without our ``ops:managed-by`` tag (default True)

    Images in use by an instance are skipped (unless ``force``); an image that is already gone is a success
    (its snapshots, if an earlier try recorded them, are still cleaned up). Returns ``[{"image_id", "region",
    "status", "reason", "snapshot_ids", "deleted_snapshots", "dry_run"}]``.

    Example::

        DeleteImagesOperator(task_id="delete_sources", images=copy.output, image_key="source_image_id",
                             region_key="source_region", require_success=True)
    """

    template_fields = ("aliyun_conn_id", "region", "images", "image_key", "region_key", "delete_snapshots", "force",
                       "dry_run", "only_managed", "concurrency", "max_errors")
    template_fields_renderers = {"images": "json"}
    result_key_fields = ("region", "image_id")

    def __init__(self, *, images: Any, image_key: str = "image_id", region_key: str = "region",
                 require_success: bool = False, delete_snapshots: bool = True, force: bool = False,
                 dry_run: bool = False, only_managed: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("wait_for_completion", False)
        super().__init__(**kwargs)
        self.images = images
        self.image_key = image_key
        self.region_key = region_key
        self.require_success = require_success
        self.delete_snapshots = delete_snapshots
        self.force = force
        self.dry_run = dry_run
        self.only_managed = only_managed
        if _static(delete_snapshots, force, dry_run, only_managed):
            self._check_flags()
        if _static(images, self.region) and isinstance(images, (str, list, tuple)):
            normalize_images(images, self.region or "__default__", id_key=image_key, region_key=region_key)

    def _check_flags(self) -> None:
        for name in ("delete_snapshots", "force", "dry_run", "only_managed", "require_success"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")

    def _targets(self) -> tuple[list[dict], list[dict]]:
        """``(targets [{"image_id", "region"}], skipped results)`` from the input."""
        items = normalize_images(self.images, self.region or "__default__", id_key=self.image_key,
                                 region_key=self.region_key)
        if any(i["region"] == "__default__" for i in items):
            default = self.resolve_region()
            for i in items:
                if i["region"] == "__default__":
                    i["region"] = default
        rows: dict[tuple[str, str], list[dict | None]] = {}
        skipped: list[dict] = []
        for i in items:
            if not i["image_id"]:
                up = i["upstream"] or {}
                skipped.append({"image_id": "", "region": i["region"], "status": SKIPPED,
                                "reason": f"no image (upstream {up.get('status')}: {up.get('reason') or ''})",
                                "snapshot_ids": [], "deleted_snapshots": [], "dry_run": self.dry_run,
                                "instance_id": up.get("instance_id", "")})
                continue
            rows.setdefault((i["region"], i["image_id"]), []).append(i["upstream"])
        targets = []
        for (region, image_id), ups in rows.items():
            bad = [u for u in ups if u is not None and u.get("status") not in (None, SUCCESS)]
            if self.require_success and bad:
                skipped.append({"image_id": image_id, "region": region, "status": SKIPPED,
                                "reason": f"not deleted: an upstream row is {bad[0].get('status')} "
                                          f"({bad[0].get('reason') or ''})".rstrip(" ()"),
                                "snapshot_ids": [], "deleted_snapshots": [], "dry_run": self.dry_run})
                continue
            targets.append({"image_id": image_id, "region": region})
        return targets, skipped

    def execute(self, context: Any) -> list[dict]:
        self._check_common()
        self._check_flags()
        targets, results = self._targets()
        if not targets:
            return self._conclude(results)
        return self._conclude(results + self.delete_images(context, targets))

    def delete_images(self, context: Any, targets: list[dict]) -> list[dict]:
        """The delete path (shared with pruning): describe in batches, guard, delete, clean snapshots."""
        hook = self.hook
        wanted: dict[str, list[str]] = {}
        for t in targets:
            wanted.setdefault(t["region"], []).append(t["image_id"])
        records = describe_by_region(hook, wanted)
        remembered: dict[str, list[str]] = dict(self.recall(context, STATE_DELETE) or {})
        results: list[dict] = []
        jobs: list[dict] = []
        for t in targets:
            rec = records.get(t["image_id"])
            res = {"image_id": t["image_id"], "region": t["region"], "status": SUCCESS, "reason": "",
                   "snapshot_ids": [], "deleted_snapshots": [], "dry_run": self.dry_run}
            results.append(res)
            if rec is None:
                res["snapshot_ids"] = remembered.get(t["image_id"], [])
                res["reason"] = "not found (already deleted)"
                if res["snapshot_ids"] and self.delete_snapshots and not self.dry_run:
                    jobs.append(res)
                continue
            tags = pv.tags_from_api(rec.get("Tags"))
            mappings = (rec.get("DiskDeviceMappings") or {}).get("DiskDeviceMapping") or []
            res["snapshot_ids"] = [m["SnapshotId"] for m in mappings if m.get("SnapshotId")]
            res["image_status"] = rec.get("Status")
            if rec.get("ImageOwnerAlias", "self") != "self":
                res.update(status=SKIPPED, reason=f"not our image (owner {rec.get('ImageOwnerAlias')})")
            elif self.only_managed and not pv.is_managed(tags):
                res.update(status=SKIPPED, reason=f"not managed by aliyun-ops (no {pv.MANAGED_BY_KEY} tag); "
                                                  "pass only_managed=False to delete it")
            elif rec.get("Usage") == "instance" and not self.force:
                res.update(status=SKIPPED, reason="in use by an instance")
            elif self.dry_run:
                snaps = f" and snapshots {', '.join(res['snapshot_ids'])}" if self.delete_snapshots and \
                    res["snapshot_ids"] else ""
                res.update(status=SKIPPED, reason=f"dry run: would delete {t['image_id']}{snaps}")
            else:
                res["_delete_image"] = True
                jobs.append(res)
        if jobs:
            to_remember = {r["image_id"]: r["snapshot_ids"] for r in jobs if r["snapshot_ids"]}
            if to_remember and self.delete_snapshots:
                self.remember(context, STATE_DELETE, {**remembered, **to_remember})
            outcomes = _run(jobs, self._delete_one, key=lambda r: r["image_id"], concurrency=self.concurrency,
                            max_errors=self.max_errors)
            for res, outcome in zip(jobs, outcomes, strict=True):
                res.pop("_delete_image", None)
                if outcome.status == FAILED:
                    skip = outcome.error.startswith("SKIP:")
                    res.update(status=SKIPPED if skip else FAILED, reason=outcome.error.removeprefix("SKIP:").strip())
                elif outcome.status == SKIPPED:
                    res.update(status=SKIPPED, reason=outcome.error)
        return results

    def _delete_one(self, res: dict) -> None:
        hook = self.hook
        region, image_id = res["region"], res["image_id"]
        if res.get("_delete_image"):
            try:
                hook.delete_image(region, image_id, force=self.force)
            except AliyunApiError as err:
                if err.is_not_found:
                    res["reason"] = "not found (already deleted)"
                elif err.code == "OperationDenied.ImageCopying" and self.force:
                    self.log.info("%s is being copied: cancelling the copy (force=True)", image_id)
                    self._cancel_copy(region, image_id)
                    try:
                        hook.delete_image(region, image_id, force=True)
                    except AliyunApiError as again:
                        if not again.is_not_found:  # CancelCopyImage of a copy target deletes it
                            raise
                elif err.code in ("ImageUsingByInstance", "OperationDenied.ImageUsingByInstance"):
                    raise RuntimeError(f"SKIP: in use by an instance ({err.code})") from None
                elif err.code == "OperationDenied.ImageCopying":
                    raise RuntimeError(f"SKIP: a copy is in progress ({err.code}); pass force=True to cancel it") \
                        from None
                else:
                    raise RuntimeError(api_reason(err)) from None
        if not self.delete_snapshots:
            return
        problems = []
        for sid in res["snapshot_ids"]:
            try:
                hook.delete_snapshot(region, sid, force=True)
                res["deleted_snapshots"].append(sid)
            except AliyunApiError as err:
                if err.is_not_found:
                    res["deleted_snapshots"].append(sid)
                else:
                    problems.append(f"{sid}: {api_reason(err)}")
        if problems:
            raise RuntimeError("image deleted, but snapshot(s) not: " + "; ".join(problems))

    def _cancel_copy(self, region: str, image_id: str) -> None:
        from alibabacloud_ecs20140526 import models

        client = self.hook.get_client(region)
        try:
            self.hook.call("CancelCopyImage", client.cancel_copy_image,
                           models.CancelCopyImageRequest(region_id=region, image_id=image_id), region=region)
        except AliyunApiError as err:
            if not err.is_not_found:
                raise


# -- PruneBackupImages ----------------------------------------------------------------------------
class PruneBackupImagesOperator(DeleteImagesOperator):
    """Delete our old backup images by retention policy (``logic.retention.plan``), then their snapshots.

    Only images tagged ``ops:managed-by`` are considered; the newest ``keep_last`` complete backups per
    (instance, region) are always kept, as are images in use or shared.

    :param regions: regions to prune (one or a list)
    :param retention_days: delete backups older than this; ``keep_last``: keep at least this many per instance
    :param policy: only images tagged with this ``ops:policy`` (None: any of ours)
    :param delete_failed: also delete ``CreateFailed`` leftovers
    :param dry_run: report the plan, delete nothing
    :param now: the time the plan is made at (epoch seconds; default now; tests against the emulator's clock)

    Returns the delete results plus one ``{"image_id", "region", "status": "skipped", "reason": "kept: ..."}``
    per kept image.

    Example::

        PruneBackupImagesOperator(task_id="prune", regions=["cn-hangzhou", "cn-shanghai"], retention_days=7,
                                  keep_last=3, policy="nightly")
    """

    template_fields = ("aliyun_conn_id", "regions", "retention_days", "keep_last", "policy", "delete_failed", "dry_run",
                       "concurrency", "max_errors")

    def __init__(self, *, regions: str | Sequence[str], retention_days: int, keep_last: int = 1,
                 policy: str | None = None, delete_failed: bool = False, dry_run: bool = False,
                 now: float | None = None, **kwargs: Any) -> None:
        super().__init__(images=[], dry_run=dry_run, **kwargs)
        self.now = now
        self.regions = regions
        self.retention_days = retention_days
        self.keep_last = keep_last
        self.policy = policy
        self.delete_failed = delete_failed
        if _static(retention_days, keep_last):
            self._policy()

    def _policy(self) -> RetentionPolicy:
        try:
            policy = RetentionPolicy(retention_days=int(self.retention_days), keep_last=int(self.keep_last),
                                     delete_failed=bool(self.delete_failed), policy=self.policy or None)
        except (TypeError, ValueError):
            raise ValueError("retention_days and keep_last must be whole numbers") from None
        policy.validate()
        return policy

    def execute(self, context: Any) -> list[dict]:
        self._check_common()
        policy = self._policy()
        regions = [r for r in as_list(self.regions, "regions") if isinstance(r, str) and r]
        if not regions:
            raise ValueError("regions must be one region or a non-empty list")
        now = float(self.now) if self.now is not None else time.time()
        facts: list[ImageFacts] = []
        for region in dict.fromkeys(regions):
            filters = {pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}
            if policy.policy:
                filters[pv.POLICY] = policy.policy
            for rec in self.hook.describe_images(region, tags=filters):
                facts.append(ImageFacts(
                    image_id=rec["ImageId"], region=region, created_at=parse_creation_time(rec.get("CreationTime")),
                    status=rec.get("Status", ""), tags=pv.tags_from_api(rec.get("Tags")),
                    in_use=rec.get("Usage") == "instance", shared=str(rec.get("IsSelfShared")) == "True"))
        decisions = retention_plan(facts, policy, now)
        kept = [{"image_id": d.image_id, "region": d.region, "status": SKIPPED, "reason": f"kept: {d.reason}",
                 "snapshot_ids": [], "deleted_snapshots": [], "dry_run": self.dry_run}
                for d in decisions if not d.delete]
        doomed = [d for d in decisions if d.delete]
        self.log.info("Retention plan: %d to delete, %d kept", len(doomed), len(kept))
        results = self.delete_images(context, [{"image_id": d.image_id, "region": d.region} for d in doomed])
        reasons = {d.image_id: d.reason for d in doomed}
        for r in results:
            r["reason"] = "; ".join(x for x in (reasons.get(r["image_id"], ""), r["reason"]) if x)
        return self._conclude(results + kept)


def parse_creation_time(value: Any) -> float:
    """ECS ``CreationTime`` (``2024-01-01T00:00Z`` or with seconds) -> epoch seconds (0 if unreadable)."""
    if not value:
        return 0.0
    text = str(value).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return 0.0
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# -- CreateSnapshot -------------------------------------------------------------------------------
DEFAULT_SNAPSHOT_NAME = "backup-{instance_id}-{disk_id}-{date}"
SNAPSHOT_NAME_FIELDS = frozenset({"disk_id", "instance_id", "region", "date", "datetime", "run_id", "dag_id",
                                  "disk_type"})


def render_snapshot_name(template: str, values: Mapping[str, str]) -> str:
    """Snapshot names follow the image-name rules and may not start with ``auto``."""
    import string

    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"snapshot name {template!r} is malformed: {exc}") from None
    unknown = fields - SNAPSHOT_NAME_FIELDS
    if unknown:
        raise ValueError(f"snapshot name uses unknown fields {sorted(unknown)}; allowed: {sorted(SNAPSHOT_NAME_FIELDS)}")
    name = sanitize_image_name(template.format(**{k: str(values.get(k, "")) for k in SNAPSHOT_NAME_FIELDS}))
    return "snap-" + name if name.lower().startswith("auto") else name


class CreateSnapshotOperator(_BatchImageOperator):
    """Snapshot disks (given directly, or the system/all disks of instances), idempotently, and wait.

    :param disk_ids: disk ids (``region`` for all) or ``[{"disk_id", "region"}]``; or
    :param instances: instance ids or ``SelectInstancesOperator`` dicts, with ``disk_type`` ``system``
        (default), ``data`` or ``all``
    :param name: name template (``{disk_id}``, ``{instance_id}``, ``{region}``, ``{date}``, ``{datetime}``,
        ``{run_id}``, ``{dag_id}``, ``{disk_type}``)
    :param retention_days: Alibaba deletes the snapshot automatically after this many days (1-65536)
    :param tags: user tags; provenance (``ops:source-disk``, source instance/region, run id, ...) is added

    Idempotent like :class:`CreateImageOperator` (ClientToken per disk, look-up by ``ops:source-disk`` +
    ``ops:run-id``). Returns ``[{"disk_id", "instance_id", "region", "snapshot_id", "snapshot_name",
    "status", "reason", "snapshot_status", "size_gib", "seconds"}]``.

    Example::

        CreateSnapshotOperator(task_id="snapshot_system_disks", instances=select.output, retention_days=7)
    """

    template_fields = ("aliyun_conn_id", "region", "disk_ids", "instances", "disk_type", "name", "description",
                       "tags", "retention_days", "policy", "concurrency", "max_errors", "poll_interval", "timeout")
    template_fields_renderers = {"tags": "json", "instances": "json", "disk_ids": "json"}
    result_key_fields = ("region", "disk_id")
    watch_kind = "snapshot"
    _id_field = "snapshot_id"
    default_timeout = 2 * 3600.0

    def __init__(self, *, disk_ids: Any = None, instances: Any = None, disk_type: str = "system",
                 name: str = DEFAULT_SNAPSHOT_NAME, description: str | None = None,
                 tags: Mapping[str, str] | None = None, retention_days: int | None = None,
                 policy: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.disk_ids = disk_ids
        self.instances = instances
        self.disk_type = disk_type
        self.name = name
        self.description = description
        self.tags = tags
        self.retention_days = retention_days
        self.policy = policy
        if _static(disk_ids, instances, disk_type, name, tags, retention_days):
            self._check_args()

    def _check_args(self) -> None:
        if bool(self.disk_ids) == bool(self.instances) and (self.disk_ids or self.instances is None):
            raise ValueError("pass exactly one of disk_ids or instances")
        if self.disk_type not in ("system", "data", "all"):
            raise ValueError(f"disk_type must be system, data or all, got {self.disk_type!r}")
        render_snapshot_name(self.name or "", {})
        check_retention_days(self.retention_days)
        if self.tags is not None:
            pv.validate_tags(self.tags, what="tags")
        for d in as_list(self.disk_ids, "disk_ids"):
            did = d if isinstance(d, str) else (d.get("disk_id") if isinstance(d, Mapping) else None)
            if not isinstance(did, str) or not did.startswith("d-"):
                raise ValueError(f"disk_ids: {d!r} does not look like a disk id (d-...)")

    def _targets(self) -> list[dict]:
        """``[{"disk_id", "instance_id", "region", "disk_type", "size_gib", "status"}]`` (batched lookups)."""
        hook = self.hook
        if self.disk_ids:
            wanted: dict[str, list[str]] = {}
            for d in as_list(self.disk_ids, "disk_ids"):
                did = d if isinstance(d, str) else d["disk_id"]
                region = (d.get("region") if isinstance(d, Mapping) else None) or self.resolve_region()
                wanted.setdefault(region, []).append(did)
            out = []
            for region, ids in wanted.items():
                found = {r["DiskId"]: r for r in hook.describe_disks(region, disk_ids=ids)}
                for did in dict.fromkeys(ids):
                    rec = found.get(did)
                    out.append({"disk_id": did, "region": region, "instance_id": (rec or {}).get("InstanceId", ""),
                                "disk_type": (rec or {}).get("Type", ""), "size_gib": (rec or {}).get("Size"),
                                "found": rec is not None})
            return out
        instances = normalize_instances(self.instances, self.region or "__default__")
        by_region: dict[str, list[str]] = {}
        for i in instances:
            region = self.resolve_region() if i["region"] == "__default__" else i["region"]
            by_region.setdefault(region, []).append(i["instance_id"])
        out = []
        for region, ids in by_region.items():
            disks = hook.describe_disks(region, disk_type=None if self.disk_type == "all" else self.disk_type)
            for iid in ids:
                mine = [d for d in disks if d.get("InstanceId") == iid]
                if not mine:
                    out.append({"disk_id": "", "region": region, "instance_id": iid, "disk_type": self.disk_type,
                                "size_gib": None, "found": False})
                for d in mine:
                    out.append({"disk_id": d["DiskId"], "region": region, "instance_id": iid,
                                "disk_type": d.get("Type", ""), "size_gib": d.get("Size"), "found": True})
        return out

    def execute(self, context: Any) -> list[dict]:
        self._check_common()
        self._check_args()
        days = check_retention_days(self.retention_days)
        info = run_info(context)
        date = run_date(context)
        hook = self.hook
        targets = self._targets()
        remembered: dict[str, str] = dict(self.recall(context, STATE_SNAPSHOT) or {})
        existing: dict[str, dict] = {}
        for region in {t["region"] for t in targets}:
            for rec in hook.describe_snapshots(region, tags={pv.RUN_KEY: info["run_key"], pv.DAG_ID: info["dag_id"],
                                                             pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}):
                disk = pv.tags_from_api(rec.get("Tags")).get(SOURCE_DISK)
                if disk and rec.get("Status") != "failed":
                    existing[f"{region}/{disk}"] = rec
        lost = {k: v for k, v in remembered.items() if k not in existing}
        for key, sid in lost.items():
            for rec in hook.describe_snapshots(key.split("/", 1)[0], snapshot_ids=[sid]):
                if rec.get("Status") != "failed":
                    existing[key] = rec
        results: list[dict] = []
        jobs: list[dict] = []
        now = time.time()
        for t in targets:
            res = {"disk_id": t["disk_id"], "instance_id": t["instance_id"], "region": t["region"], "snapshot_id": "",
                   "snapshot_name": "", "status": FAILED, "reason": "", "snapshot_status": None,
                   "size_gib": t["size_gib"], "seconds": None}
            results.append(res)
            if not t["found"]:
                res["reason"] = (f"disk {t['disk_id']} not found in {t['region']}" if t["disk_id"] else
                                 f"no {self.disk_type} disk found for instance {t['instance_id']} in {t['region']}")
                continue
            prior = existing.get(f"{t['region']}/{t['disk_id']}")
            if prior is not None:
                res.update(snapshot_id=prior["SnapshotId"], snapshot_name=prior.get("SnapshotName", ""),
                           status="pending", snapshot_status=prior.get("Status"), _t0=now,
                           reason="already created by an earlier try")
                continue
            res["_disk_type"] = t["disk_type"]
            jobs.append(res)
        values = {"date": date.strftime("%Y%m%d"), "datetime": date.strftime("%Y%m%d-%H%M%S"),
                  "run_id": info["run_id"], "dag_id": info["dag_id"]}

        def snap_one(res: dict) -> str:
            name = render_snapshot_name(self.name, {**values, "disk_id": res["disk_id"],
                                                    "instance_id": res["instance_id"], "region": res["region"],
                                                    "disk_type": res.get("_disk_type", "")})
            tags = pv.merge_tags(self.tags, {**pv.provenance_tags(
                source_instance=res["instance_id"], source_region=res["region"], run_id=info["run_id"],
                run_key=info["run_key"], dag_id=info["dag_id"], policy=self.policy, retention_days=days),
                SOURCE_DISK: res["disk_id"]})
            sid = hook.create_snapshot(res["region"], res["disk_id"], name, self.description or None, tags,
                                       self.client_token(context, "create-snapshot", res["disk_id"]),
                                       retention_days=days)
            res.update(snapshot_id=sid, snapshot_name=name)
            return sid

        if jobs:
            outcomes = _run(jobs, snap_one, key=lambda r: r["disk_id"], concurrency=self.concurrency,
                            max_errors=self.max_errors)
            for res, outcome in zip(jobs, outcomes, strict=True):
                res.pop("_disk_type", None)
                if outcome.status == SUCCESS:
                    res.update(status="pending", snapshot_status="progressing", _t0=time.time())
                    remembered[f"{res['region']}/{res['disk_id']}"] = res["snapshot_id"]
                else:
                    res.update(status=outcome.status, reason=outcome.error)
            self.remember(context, STATE_SNAPSHOT, remembered)
        return self._wait_then_finish(context, results)
