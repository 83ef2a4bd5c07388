"""What deleting images with their snapshots takes (:class:`ImageDeletionMixin`): the delete operator and the
retention operators build on it. Never an image that is not ours, in use, or being copied without ``force``."""

from __future__ import annotations

from typing import Any

from aliyun_ops.actions.images import describe_by_region
from aliyun_ops.actions.pool import run_batch
from aliyun_ops.exceptions import AliyunApiError, ItemSkipped, error_reason
from aliyun_ops.logic import provenance as pv
from aliyun_ops.logic.args import all_static
from aliyun_ops.logic.outcome import FAILED, SKIPPED, SUCCESS
from aliyun_ops.logic.targets import normalize_images
from aliyun_ops.operators.base.images import STATE_DELETE, ImageBatchMixin
from aliyun_ops.runtime import aliyun_template_fields


# -- the mixin ---------------------------------------------------------------------------------
class ImageDeletionMixin(ImageBatchMixin):
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

    template_fields = aliyun_template_fields("images", "image_key", "region_key", "delete_snapshots", "force",
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
            return self.conclude(context, results)
        return self.conclude(context, results + self.delete_images(context, targets))

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
                res["_snapshot_tags"] = snapshot_provenance(t["image_id"], tags)
                jobs.append(res)
        if jobs:
            to_remember = {r["image_id"]: r["snapshot_ids"] for r in jobs if r["snapshot_ids"]}
            if to_remember and self.delete_snapshots:
                self.remember(context, STATE_DELETE, {**remembered, **to_remember})
            outcomes = run_batch(jobs, self._delete_one, key=lambda r: r["image_id"], concurrency=self.concurrency,
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
            if self.delete_snapshots and res["snapshot_ids"] and res.get("_snapshot_tags"):
                self._tag_snapshots(res)
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

    def _tag_snapshots(self, res: dict) -> None:
        """Tag the image's snapshots with their provenance *before* the image goes: if a snapshot delete then
        fails, the retention sweep of a later run still finds it (``ops:source-image`` names the lost image)."""
        try:
            self.hook.tag_resources(res["region"], "snapshot", res["snapshot_ids"], res["_snapshot_tags"])
        except AliyunApiError as err:
            if not err.is_not_found:
                raise RuntimeError(f"not deleted: its snapshots could not be tagged for a later sweep "
                                   f"({error_reason(err)})") from None

    def _cancel_copy(self, region: str, image_id: str) -> None:
        try:
            self.hook.cancel_copy_image(region, image_id)
        except AliyunApiError as err:
            if not err.is_not_found:
                raise


def snapshot_provenance(image_id: str, image_tags: dict[str, str]) -> dict[str, str] | None:
    """The tags an image's snapshots get before it is deleted (None for an image that is not ours)."""
    if not pv.is_managed(image_tags):
        return None
    tags = {pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE, pv.SOURCE_IMAGE: image_id}
    for key in (pv.POLICY, pv.SOURCE_INSTANCE):
        if image_tags.get(key):
            tags[key] = image_tags[key]
    return tags
