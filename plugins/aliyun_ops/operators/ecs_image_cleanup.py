"""Delete images with their snapshots, and prune backups by retention policy (never the wrong image)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aliyun_ops.exceptions import AliyunApiError, ItemSkipped, error_reason
from aliyun_ops.logic import provenance as pv
from aliyun_ops.logic.retention import ImageFacts, RetentionPolicy
from aliyun_ops.logic.retention import plan as retention_plan
from aliyun_ops.operators.image_batch import (
    FAILED,
    SKIPPED,
    STATE_DELETE,
    SUCCESS,
    BatchImageOperator,
    all_static,
    as_list,
    describe_by_region,
    normalize_images,
    run_items,
)


# -- DeleteImages ---------------------------------------------------------------------------------
class DeleteImagesOperator(BatchImageOperator):
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
        if all_static(delete_snapshots, force, dry_run, only_managed):
            self._check_flags()
        if all_static(images, self.region) and isinstance(images, (str, list, tuple)):
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
            outcomes = run_items(jobs, self._delete_one, key=lambda r: r["image_id"], concurrency=self.concurrency,
                            max_errors=self.max_errors)
            for res, outcome in zip(jobs, outcomes, strict=True):
                res.pop("_delete_image", None)
                if outcome.status in (FAILED, SKIPPED):
                    res.update(status=outcome.status, reason=outcome.error)
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
                    raise ItemSkipped(f"in use by an instance ({err.code})") from None
                elif err.code == "OperationDenied.ImageCopying":
                    raise ItemSkipped(f"a copy is in progress ({err.code}); pass force=True to cancel it") from None
                else:
                    raise RuntimeError(error_reason(err)) from None
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
                    problems.append(f"{sid}: {error_reason(err)}")
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
        if all_static(retention_days, keep_last):
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


