"""Create and copy custom images of many instances (idempotent, batched waits).

See :mod:`aliyun_ops.operators.base.images` for the shared semantics (per-item results,
``concurrency``/``max_errors``, ClientToken + provenance look-up, deferred batched waits).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aliyun_ops.actions import leases
from aliyun_ops.actions.images import describe_by_region
from aliyun_ops.actions.pause import resume_early
from aliyun_ops.actions.pool import run_batch
from aliyun_ops.exceptions import AliyunApiError, error_reason
from aliyun_ops.logic import lease as lz
from aliyun_ops.logic import pause
from aliyun_ops.logic import provenance as pv
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.args import all_static, as_list, check_retention_days
from aliyun_ops.logic.naming import (
    DEFAULT_IMAGE_NAME_TEMPLATE,
    render_image_name,
    sanitize_image_name,
    short_hash,
    validate_image_name_template,
    validate_name_template,
)
from aliyun_ops.logic.outcome import FAILED, QUEUED, SKIPPED, SUCCESS
from aliyun_ops.logic.targets import normalize_images, normalize_instances, source_size_gib
from aliyun_ops.operators.base import AliyunItemsOperator, aliyun_template_fields
from aliyun_ops.operators.base.images import STATE_COPY, STATE_CREATE, SUBMIT_PARALLELISM, ImageBatchMixin
from aliyun_ops.runtime import naming_values, run_info
from aliyun_ops.waiting.drivers import drive, snapshot_point_plan, sync_fetch
from aliyun_ops.waiting.images import SnapshotPointWatch

# -- CreateImage ----------------------------------------------------------------------------
SNAPSHOT_POLL_SECONDS = 5.0
"""Longest pause between looks while waiting for snapshots to be taken (the instances are down meanwhile)."""
SNAPSHOT_PHASE_MAX_SECONDS = 1800.0
"""After this long without snapshots, paused instances wait for the image (the teardown resumes them)."""


class CreateImageOperator(ImageBatchMixin, AliyunItemsOperator):
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
    :param resume_paused_after_snapshots: resume each instance this run paused (``ops:paused-by`` = this run,
        see :mod:`aliyun_ops.logic.pause`) as soon as its image's snapshots are taken (every disk mapping has
        a snapshot id), instead of after the image is Available: start what was stopped, send
        ``thaw_command`` to what was frozen. This short phase polls in the worker (at most every 5 s) before
        the deferred wait; an instance whose image failed is resumed at once. Nothing is awaited or
        untagged here: :class:`~aliyun_ops.operators.ecs_pause.ResumePausedOperator` verifies, as teardown.
        With it, a Running instance this run did not pause (or already resumed: a retry of this task) is not
        imaged but reported failed, since its image would not be consistent; so is an instance another live run
        holds the lease of (:mod:`aliyun_ops.leases`).
    :param reuse_after_restart: whether an image an earlier try of this run made is reused although the instance
        has started since (its ``StartTime`` is not before the image's ``CreationTime``). True (default) suits
        backups; a pipeline that writes the image back onto the disk (the spot cycle) sets False, so that a re-run
        hours later never puts an image older than the disk's last writes back on it.

    Returns ``[{"instance_id", "instance_name", "region", "image_id", "image_name", "status", "reason",
    "image_status", "size_gib", "seconds", "snapshot_ids"}]``.

    Example::

        CreateImageOperator(task_id="create_images", instances=select.output, policy="nightly",
                            retention_days=7, concurrency=5, max_errors="10%")
    """

    template_fields = aliyun_template_fields("instances", "instance_tags", "image_name_template", "description",
                                             "tags", "policy", "retention_days", "concurrency", "max_errors",
                                             "poll_interval", "timeout", "thaw_command",
                                             "resume_paused_after_snapshots")
    template_fields_renderers = {"tags": "json", "instances": "json"}
    result_key_fields = ("region", "instance_id")

    def __init__(self, *, instances: Any = None, instance_tags: Mapping[str, str] | None = None,
                 image_name_template: str = DEFAULT_IMAGE_NAME_TEMPLATE,
                 description: str | None = None, tags: Mapping[str, str] | None = None, policy: str | None = None,
                 retention_days: int | None = None, resume_paused_after_snapshots: bool = False,
                 thaw_command: str | None = None, reuse_after_restart: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instances = instances
        self.reuse_after_restart = reuse_after_restart
        self.instance_tags = instance_tags
        self.resume_paused_after_snapshots = resume_paused_after_snapshots
        self.thaw_command = thaw_command
        if all_static(instances, instance_tags):
            self._check_selection()
        self.image_name_template = image_name_template
        self._set_made_fields(description=description, tags=tags, policy=policy, retention_days=retention_days)
        if all_static(image_name_template):
            validate_image_name_template(image_name_template or "")
        if all_static(tags) and tags is not None:
            pv.validate_tags(tags, what="tags")
        if all_static(retention_days):
            check_retention_days(retention_days)
        if all_static(instances) and isinstance(instances, (str, list, tuple)):
            normalize_instances(instances, "cn-hangzhou")  # the ids only: the region is known at run time

    def _check_selection(self) -> None:
        if (self.instances is None) == (not self.instance_tags):
            raise ValueError("pass exactly one of instances or instance_tags")
        if self.instance_tags:
            pv.validate_tags(self.instance_tags, what="instance_tags")

    def _validate(self) -> tuple[list[dict], int | None]:
        self._check_common()
        self._check_selection()
        validate_image_name_template(self.image_name_template or "")
        days = check_retention_days(self.retention_days)
        pv.merge_tags(self.tags, pv.provenance_tags(source_instance="i-x", source_region="r", run_id="r",
                                                   dag_id="d", policy=self.policy, retention_days=days))
        if self.description is not None and not isinstance(self.description, str):
            raise ValueError("description must be a string")
        if self.instance_tags:
            region = self.resolve_region()
            return [{"instance_id": r["InstanceId"], "instance_name": r.get("InstanceName", ""), "region": region}
                    for r in self.hook.describe_instances(region, tags=dict(self.instance_tags))
                    if r.get("Status") in (st.RUNNING, st.STOPPED)], days
        return normalize_instances(self.instances, self.region or self.hook.region, with_names=True), days

    def execute(self, context: Any) -> list[dict]:
        items, days = self._validate()
        if not items:
            self.log.info("No instances to image")
            return []
        hook = self.hook
        by_region: dict[str, list[dict]] = {}
        for item in items:
            by_region.setdefault(item["region"], []).append(item)

        # 1. the instances (existence, state, names): one batched DescribeInstances per region
        found: dict[str, dict] = {}
        for region, group in by_region.items():
            for rec in hook.describe_instances(region, instance_ids=[i["instance_id"] for i in group]):
                found[rec["InstanceId"]] = rec
        # 2. what earlier tries of this task made
        existing = self._made_before(context, list(by_region))

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
            good = [r for r in prior if r.get("Status") not in (st.IMAGE_CREATE_FAILED, st.IMAGE_UNAVAILABLE)]
            stale = [] if self.reuse_after_restart else \
                [r for r in good if pause.started_since(inst.get("StartTime"), r.get("CreationTime"))]
            if stale:
                self.log.info("%s: not reusing %s of an earlier try: the instance has started since (StartTime %s): "
                              "a new image", iid, ", ".join(r["ImageId"] for r in stale), inst.get("StartTime") or "-")
                good = [r for r in good if r not in stale]
            if good:
                rec = sorted(good, key=lambda r: r.get("CreationTime", ""))[-1]
                res.update(image_id=rec["ImageId"], image_name=rec.get("ImageName", ""), status="pending",
                           image_status=rec.get("Status"), reason="already created by an earlier try", _t0=now)
                self.log.info("%s: image %s already exists (%s), not creating another", iid, rec["ImageId"],
                              rec.get("Status"))
                continue
            if inst.get("Status") not in (st.RUNNING, st.STOPPED):
                res["reason"] = f"instance {iid} is {inst.get('Status')}; CreateImage needs Running or Stopped"
                continue
            if self.resume_paused_after_snapshots and not self._still_paused(context, inst):
                res["reason"] = (f"instance {iid} is {inst.get('Status')} and not (or no longer) paused by this run, or "
                                 f"another run holds its lease: its image would not be consistent; re-run the DAG "
                                 f"run from its preparation")
                continue
            res["_attempt"] = len(prior)  # earlier CreateFailed images: a new, still stable, token
            to_create.append(res)

        for n, res in enumerate(to_create):
            res.update(status=QUEUED, _order=n)
        if self.resume_paused_after_snapshots:  # images of an earlier try, and instances that get no image
            self._resume_others(context, items)
            self._resume_after_snapshots(context, [r for r in results if r["status"] != QUEUED])
        return self._wait_then_finish(context, results)

    def _made_before(self, context: Any, regions: list[str]) -> dict[str, list[dict]]:
        """``{"region/instance": [image records]}`` that earlier tries of this run made: found by the run's
        provenance tags (one DescribeImages per region), plus ids kept in the task state store."""
        info = run_info(context)
        hook = self.hook
        remembered: dict[str, str] = dict(self.recall(context, STATE_CREATE) or {})
        existing: dict[str, list[dict]] = {}
        for region in regions:
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
        return existing

    def _submit(self, context: Any, batch: list[dict]) -> None:
        """CreateImage for each queued result of ``batch`` (in parallel); then, if asked, the early resume."""
        info = run_info(context)
        days = check_retention_days(self.retention_days)
        hook = self.hook
        values_base = naming_values(context)
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
                    name = sanitize_image_name(f"{name}-{short_hash(info['run_id'])}")
                    image_id = hook.create_image(region, iid, name, self.description or None, tags,
                                                 self.client_token(context, *parts, "renamed"))
            with lock:
                res.update(image_id=image_id, image_name=name)
            return image_id

        self.log.info("Creating %d image(s) (concurrency %s, max_errors %s)", len(batch), self.concurrency,
                      self.max_errors)
        outcomes = run_batch(batch, create_one, key=lambda r: r["instance_id"], concurrency=SUBMIT_PARALLELISM,
                             max_errors="100%")
        remembered: dict[str, str] = dict(self.recall(context, STATE_CREATE) or {})
        for res, outcome in zip(batch, outcomes, strict=True):
            if outcome.status == SUCCESS:
                res.update(status="pending", image_status=st.IMAGE_CREATING, _t0=time.time())
                remembered[f"{res['region']}/{res['instance_id']}"] = res["image_id"]
            else:
                res.update(status=outcome.status, reason=outcome.error)
        self.remember(context, STATE_CREATE, remembered)
        if self.resume_paused_after_snapshots:
            self._resume_after_snapshots(context, batch)

    @staticmethod
    def _still_paused(context: Any, instance: Mapping[str, Any]) -> bool:
        """Stopped (cold, consistent), or paused by this run and not resumed yet (e.g. a retry of this task
        after an early resume must not image a running instance as if it were quiesced); in both cases only while
        no other live run holds the instance's lease (an overlapping run could start or thaw it mid-image)."""
        tags = pv.tags_from_api(instance.get("Tags"))
        if lz.verdict(tags, leases.run_holder(context), datetime.now(UTC)) == lz.HELD:
            return False
        if instance.get("Status") == st.STOPPED:
            return True
        info, paused = run_info(context), pause.paused_info(tags) or {}
        return (paused.get("run_key") == info["run_key"][:128] and paused.get("dag_id") == info["dag_id"][:128]
                and not paused.get("resumed_at"))

    def _released(self, context: Any, results: list[dict]) -> None:
        """Queued instances that will get no image this time: resume them now, not after the whole task."""
        if self.resume_paused_after_snapshots:
            self._resume_after_snapshots(context, results)

    def _resume_others(self, context: Any, items: list[dict]) -> None:
        """Instances this run paused that this task does not image (their preparation failed): resume now."""
        info = run_info(context)
        mine = {i["instance_id"] for i in items}
        others = []
        tags = {pause.PAUSED_BY: info["run_key"][:128], pause.PAUSED_DAG: info["dag_id"][:128]}
        for region in sorted({i["region"] for i in items}):
            for rec in self.hook.describe_instances(region, tags=tags):
                paused = pause.paused_info(pv.tags_from_api(rec.get("Tags"))) or {}
                if rec["InstanceId"] not in mine and not paused.get("resumed_at"):
                    others.append({"instance_id": rec["InstanceId"], "region": region, "mode": paused.get("mode", ""),
                                   "status": rec.get("Status"), "paused_at": paused.get("paused_at", "")})
        if others:
            self.log.info("%d paused instance(s) get no image from this task: resuming them now", len(others))
            resume_early(self.hook, context, others, thaw_command=self.thaw_command, log=self.log)

    def _resume_after_snapshots(self, context: Any, results: list[dict]) -> None:
        """Resume each instance this run paused once its image's point in time is taken (or it has no image)."""
        this_run = run_info(context)["run_key"]
        wanted: dict[str, list[str]] = {}
        for res in results:
            wanted.setdefault(res["region"], []).append(res["instance_id"])
        found = {rec["InstanceId"]: rec for region, ids in wanted.items()
                 for rec in self.hook.describe_instances(region, instance_ids=ids)}
        paused: dict[str, dict] = {}
        for res in results:
            rec = found.get(res["instance_id"]) or {}
            info = pause.paused_info(pv.tags_from_api(rec.get("Tags")))
            if info and info["run_key"] == this_run and not info["resumed_at"]:
                paused[res["instance_id"]] = {"instance_id": res["instance_id"], "region": res["region"],
                                              "mode": info["mode"], "status": rec.get("Status"),
                                              "paused_at": info["paused_at"]}
        if not paused:
            return
        waiting = {r["image_id"]: r["instance_id"] for r in results
                   if r["instance_id"] in paused and r["status"] == "pending"}
        ready = [paused[i] for i in paused if i not in waiting.values()]
        deadline = time.time() + SNAPSHOT_PHASE_MAX_SECONDS
        task_deadline = getattr(self, "_deadline", None)  # the whole task's, set by the window
        if task_deadline is not None:
            deadline = min(deadline, task_deadline)
        self.log.info("%d paused instance(s): resuming each once its image's snapshots are taken", len(paused))
        watch = SnapshotPointWatch({image_id: paused[iid]["region"] for image_id, iid in waiting.items()})
        plan = snapshot_point_plan(watch, poll_interval=min(float(self.poll_interval), SNAPSHOT_POLL_SECONDS),
                                   deadline=deadline)
        while True:
            if ready:
                resume_early(self.hook, context, ready, thaw_command=self.thaw_command, log=self.log)
            if watch.done or plan.expired(time.time()):
                break
            event = drive(plan, sync_fetch(self.hook), return_when="first", label="snapshot points")
            ready = [paused[waiting[image_id]] for image_id in watch.take()]
            if event["status"] == "error":
                self.log.warning("watching the snapshot points failed: %s", event["message"])
                break
        left = sorted(waiting[i] for i in waiting if i not in watch.ready)
        if left:
            self.log.warning("snapshots of %d image(s) not taken in time: %s stay paused until this task ends and "
                             "the resume teardown runs", len(left), ", ".join(left))


# -- CopyImage ------------------------------------------------------------------------------------




class CopyImageOperator(ImageBatchMixin, AliyunItemsOperator):
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

    template_fields = aliyun_template_fields("images", "destination_regions", "name_template", "description", "tags",
                                             "policy", "retention_days", "encrypted", "kms_key_id", "concurrency",
                                             "max_errors", "poll_interval", "timeout")
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
        self._set_made_fields(description=description, tags=tags, policy=policy, retention_days=retention_days)
        self.encrypted = encrypted
        self.kms_key_id = kms_key_id
        self.mark_complete = mark_complete
        if all_static(destination_regions):
            self._destinations()
        if all_static(encrypted, kms_key_id):
            self._check_encryption()
        if all_static(tags) and tags is not None:
            pv.validate_tags(tags, what="tags")
        if all_static(retention_days):
            check_retention_days(retention_days)
        if all_static(name_template) and name_template:
            validate_name_template(self._plain_template(name_template))
        if all_static(images, self.region, destination_regions) and isinstance(images, (str, list, tuple)):
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
            return self.conclude(context, results)

        # source images: exist, Available, their tags/names (one batched DescribeImages per source region)
        wanted: dict[str, list[str]] = {}
        for src, _, _ in live:
            wanted.setdefault(src["region"], []).append(src["image_id"])
        sources = describe_by_region(hook, wanted)
        existing, failed_before = self._made_before(context, sorted({d for _, _, d in live}))

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
            if rec.get("Status") != st.IMAGE_AVAILABLE:
                res["reason"] = f"source image {src['image_id']} is {rec.get('Status')}, not Available"
                continue
            src_tags = pv.tags_from_api(rec.get("Tags"))
            res["instance_id"] = res["instance_id"] or src_tags.get(pv.SOURCE_INSTANCE, "")
            res["size_gib"] = res["size_gib"] or rec.get("Size")
            to_copy.append((src, res, dest, rec))

        # ECS runs each destination's copy queue first come, first served: submitting the largest images
        # first turns that into longest-processing-time-first (the copy phase's makespan drops ~10%)
        to_copy.sort(key=lambda job: -source_size_gib(job[3]))
        for n, (src, res, dest, rec) in enumerate(to_copy):
            res.update(status=QUEUED, _order=n, _src_name=rec.get("ImageName", ""),
                       _src_tags=pv.tags_from_api(rec.get("Tags")),
                       _attempt=len(failed_before.get(f"{src['image_id']}/{dest}", ())))
        return self._wait_then_finish(context, results)

    def _made_before(self, context: Any, destinations: list[str]) -> tuple[dict[str, dict], dict[str, set[str]]]:
        """Copies earlier tries of this run made, by ``"source/destination"``: the live ones, and the ids of
        those that failed (the next attempt needs a new token). Run tags in each destination + state store."""
        info = run_info(context)
        hook = self.hook
        remembered: dict[str, str] = dict(self.recall(context, STATE_COPY) or {})
        existing: dict[str, dict] = {}
        failed_before: dict[str, set[str]] = {}  # copies of an earlier try that failed: the next one needs a new token
        for dest in destinations:
            for rec in hook.describe_images(dest, tags={pv.RUN_KEY: info["run_key"], pv.DAG_ID: info["dag_id"],
                                                        pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}):
                src_id = pv.tags_from_api(rec.get("Tags")).get(pv.SOURCE_IMAGE)
                if src_id and rec.get("Status") not in (st.IMAGE_CREATE_FAILED, st.IMAGE_UNAVAILABLE):
                    existing[f"{src_id}/{dest}"] = rec
                elif src_id:
                    failed_before.setdefault(f"{src_id}/{dest}", set()).add(rec["ImageId"])
        lost: dict[str, list[str]] = {}
        for key, copy_id in remembered.items():
            if key not in existing:
                lost.setdefault(key.split("/", 1)[1], []).append(copy_id)
        for copy_id, rec in describe_by_region(hook, lost).items():
            key = next(k for k, v in remembered.items() if v == copy_id)
            if rec.get("Status") not in (st.IMAGE_CREATE_FAILED, st.IMAGE_UNAVAILABLE):
                existing[key] = rec
            else:
                failed_before.setdefault(key, set()).add(copy_id)
        return existing, failed_before

    def _submit(self, context: Any, batch: list[dict]) -> None:
        """CopyImage for each queued result of ``batch`` (in parallel, in queue order)."""
        info = run_info(context)
        days = check_retention_days(self.retention_days)
        hook = self.hook
        values_base = naming_values(context)

        def copy_one(res: dict) -> str:
            source, region, dest = res["source_image_id"], res["source_region"], res["destination_region"]
            src_tags = res["_src_tags"]
            if self.name_template:
                template = self.name_template.replace("{image_id}", source).replace(
                    "{source_image_name}", res["_src_name"])
                name = render_image_name(template, {**values_base, "instance_id": res["instance_id"],
                                                    "instance_name": res["instance_name"], "region": region,
                                                    "destination_region": dest})
            else:
                name = sanitize_image_name(res["_src_name"] or f"copy-{source}")
            attempt = res["_attempt"]  # after a failed copy: a new, still stable, token and a distinct name
            if attempt:
                name = sanitize_image_name(f"{name}-r{attempt}")
            tags = pv.merge_tags(self.tags, pv.provenance_tags(
                source_instance=res["instance_id"] or src_tags.get(pv.SOURCE_INSTANCE), source_region=region,
                source_image=source, run_id=info["run_id"], run_key=info["run_key"], dag_id=info["dag_id"],
                policy=self.policy or src_tags.get(pv.POLICY), retention_days=days or src_tags.get(pv.RETENTION_DAYS)))
            description = self.description or f"Copy of {source} from {region}"
            copy_id = hook.copy_image(region, source, dest, name, description, tags, self.encrypted or None,
                                      self.kms_key_id or None,
                                      self.client_token(context, "copy-image", source, dest,
                                                        *([f"attempt-{attempt}"] if attempt else [])))
            res.update(image_id=copy_id, image_name=name)
            return copy_id

        self.log.info("Copying %d image(s) to %s (concurrency %s)", len(batch),
                      sorted({r["destination_region"] for r in batch}), self.concurrency)
        outcomes = run_batch(batch, copy_one, key=lambda r: f"{r['source_image_id']}->{r['destination_region']}",
                             concurrency=SUBMIT_PARALLELISM, max_errors="100%")
        remembered: dict[str, str] = dict(self.recall(context, STATE_COPY) or {})
        for res, outcome in zip(batch, outcomes, strict=True):
            if outcome.status == SUCCESS:
                res.update(status="pending", image_status=st.IMAGE_WAITING, _t0=time.time(), _tagged=False)
                remembered[f"{res['source_image_id']}/{res['destination_region']}"] = res["image_id"]
            else:
                res.update(status=outcome.status, reason=outcome.error)
        self.remember(context, STATE_COPY, remembered)

    def _wait_items(self, results: Sequence[Mapping]) -> list[dict]:
        """In-flight copies in queue order (earlier tries' copies first, then as submitted): the watch
        predicts each destination's first-come-first-served queue from this order."""
        order = {r["image_id"]: r.get("_order", -1) for r in results}
        return sorted(super()._wait_items(results), key=lambda i: order.get(i["id"], -1))

    def _apply_event(self, results: list[dict], event: Mapping | None) -> None:
        """Also tag each copy that just became Available ``ops:copy-status=complete`` (batched TagResources)."""
        super()._apply_event(results, event)
        if not self.mark_complete or event is None:
            return
        by_dest: dict[str, list[dict]] = {}
        for r in results:
            if r["status"] == SUCCESS and r["image_id"] and not r.get("_tagged"):
                by_dest.setdefault(r["destination_region"], []).append(r)
        for dest, rows in by_dest.items():
            try:
                self.hook.tag_resources(dest, "image", [r["image_id"] for r in rows], {pv.COPY_STATUS: pv.COPY_COMPLETE})
            except AliyunApiError as err:  # the copy exists; retention will just treat it as incomplete
                for r in rows:
                    r["reason"] = f"copy done, but tagging {pv.COPY_STATUS} failed: {error_reason(err)}"
            for r in rows:
                r["_tagged"] = True


