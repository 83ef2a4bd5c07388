"""Create snapshots of disks or of instances' disks (idempotent, batched waits)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aliyun_ops.actions.pool import run_batch
from aliyun_ops.logic import ids as id_rules
from aliyun_ops.logic import provenance as pv
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.args import all_static, as_list, check_retention_days
from aliyun_ops.logic.naming import (
    sanitize_image_name,
)
from aliyun_ops.logic.outcome import FAILED, SUCCESS
from aliyun_ops.logic.targets import normalize_instances
from aliyun_ops.operators.base import AliyunItemsOperator, aliyun_template_fields
from aliyun_ops.operators.base.images import SOURCE_DISK, STATE_SNAPSHOT, ImageBatchMixin
from aliyun_ops.runtime import run_date, run_info

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


class CreateSnapshotOperator(ImageBatchMixin, AliyunItemsOperator):
    """Snapshot disks (given directly, or the system/all disks of instances), idempotently, and wait.

    :param disk_ids: disk ids (``region`` for all) or ``[{"disk_id", "region"}]``; or
    :param instances: instance ids or ``SelectInstancesOperator`` dicts, with ``disk_type`` ``system``
        (default), ``data`` or ``all``
    :param name: name template (``{disk_id}``, ``{instance_id}``, ``{region}``, ``{date}``, ``{datetime}``,
        ``{run_id}``, ``{dag_id}``, ``{disk_type}``)
    :param retention_days: Alibaba deletes the snapshot automatically after this many days, and the
        ``ops:retention-days`` tag says the same (1..``RETENTION_DAYS_MAX``, 3650)
    :param tags: user tags; provenance (``ops:source-disk``, source instance/region, run id, ...) is added

    Idempotent like :class:`CreateImageOperator` (ClientToken per disk, look-up by ``ops:source-disk`` +
    ``ops:run-id``). Returns ``[{"disk_id", "instance_id", "region", "snapshot_id", "snapshot_name",
    "status", "reason", "snapshot_status", "size_gib", "seconds"}]``.

    Example::

        CreateSnapshotOperator(task_id="snapshot_system_disks", instances=select.output, retention_days=7)
    """

    template_fields = aliyun_template_fields("disk_ids", "instances", "disk_type", "name", "description", "tags",
                                             "retention_days", "policy", "concurrency", "max_errors",
                                             "poll_interval", "timeout")
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
        self._set_made_fields(description=description, tags=tags, policy=policy, retention_days=retention_days)
        if all_static(disk_ids, instances, disk_type, name, tags, retention_days):
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
            id_rules.check("disk", did, "disk_ids:")

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
        by_region: dict[str, list[str]] = {}
        for i in normalize_instances(self.instances, self.region or hook.region):
            by_region.setdefault(i["region"], []).append(i["instance_id"])
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
            outcomes = run_batch(jobs, snap_one, key=lambda r: r["disk_id"], concurrency=self.concurrency,
                            max_errors=self.max_errors)
            for res, outcome in zip(jobs, outcomes, strict=True):
                res.pop("_disk_type", None)
                if outcome.status == SUCCESS:
                    res.update(status="pending", snapshot_status=st.SNAPSHOT_PROGRESSING, _t0=time.time())
                    remembered[f"{res['region']}/{res['disk_id']}"] = res["snapshot_id"]
                else:
                    res.update(status=outcome.status, reason=outcome.error)
            self.remember(context, STATE_SNAPSHOT, remembered)
        return self._wait_then_finish(context, results)

