"""The golden-image update (Alibaba's OOS ACS-ECS-UpdateImage, with a test stage and an approval): the steps of
``ecs_update_image`` that are not an operator of their own.

plan (no change: source image, target name free, script) -> [build instance, update command, stop: operators]
-> the image of the build instance -> [test: VerifyBackupsOperator] -> keep or discard -> [approval] -> publish
(copies in other regions, shared with accounts).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..exceptions import AliyunApiError, RunIncomplete, error_reason
from ..hooks.ecs import EcsHook
from ..logic import ids
from ..logic import provenance as pv
from ..logic import statuses as st
from ..logic.naming import client_token, render_image_name
from ..logic.outcome import SUCCESS
from ..logic.policies import GOLDEN_POLICY
from ..runtime import naming_values
from ..waiting.drivers import wait_for_resource, wait_until

log = logging.getLogger(__name__)

SOURCE_IMAGE = pv.SOURCE_IMAGE
SCRIPT_SHA = "ops:script-sha256"
TESTED_AT = pv.VERIFIED_AT


def find_source_image(hook: EcsHook, region: str, image_id: str | None, tags: Mapping[str, str] | None) -> dict:
    """The image to update: ``image_id``, or the newest Available image (ours or public) carrying all ``tags``."""
    if image_id:
        found = hook.describe_images(region, image_ids=[image_id], owner=None)
    elif tags:
        found = [i for i in hook.describe_images(region, tags=dict(tags), status=st.IMAGE_AVAILABLE)]
        found = sorted(found, key=lambda i: (i.get("CreationTime", ""), i["ImageId"]))[-1:]
    else:
        raise ValueError("give source_image_id or source_image_tags")
    if not found:
        raise ValueError(f"no source image {image_id or dict(tags or {})} in {region}")
    if found[0].get("Status") != st.IMAGE_AVAILABLE:
        raise ValueError(f"source image {found[0]['ImageId']} is {found[0].get('Status')}, not Available")
    return found[0]


def plan_update(hook: EcsHook, params: Mapping[str, Any], context: Any, scripts: Path) -> dict:
    """Everything checked before anything is made: the region, the source image, the update command and the target
    name, which must not exist yet in the region (ECS refuses a duplicate name; the template fails late on it).
    ``ValueError`` says what is wrong."""
    region = params.get("region") or hook.resolve_region()
    ids.check("region", region)
    source = find_source_image(hook, region, params.get("source_image_id"), params.get("source_image_tags"))
    if bool(params.get("update_command")) == bool(params.get("update_script")):
        raise ValueError("give exactly one of update_command and update_script")
    script = params.get("update_command") or ""
    if params.get("update_script"):
        path = scripts / str(params["update_script"])
        if not path.is_file() or path.resolve().parent != scripts.resolve():
            raise ValueError(f"include/scripts/{params['update_script']} does not exist")
        script = path.read_text()
    name = render_image_name(str(params.get("image_name_template") or ""),
                             {**naming_values(context), "region": region, "instance_id": ""})
    if hook.describe_images(region, image_name=name, owner="self"):
        raise ValueError(f"an image named {name!r} already exists in {region}: nothing was created")
    for account in params.get("share_with_accounts") or []:
        if not str(account).isdigit():
            raise ValueError(f"share_with_accounts: {account!r} is not an Alibaba Cloud account id (digits)")
    return {"region": region, "source_image_id": source["ImageId"], "source_image_name": source.get("ImageName", ""),
            "image_name": name, "script": script, "script_sha256": hashlib.sha256(script.encode()).hexdigest(),
            "copy_to_regions": [r for r in params.get("copy_to_regions") or [] if r != region],
            "share_with_accounts": [str(a) for a in params.get("share_with_accounts") or []]}


def wait_agent_ready(hook: EcsHook, region: str, instance_id: str, *, timeout: float, poll_interval: float) -> str:
    """Wait until Cloud Assistant is online on the build instance; install it (and reboot) once when it is not, as
    the template does. ``RunIncomplete`` if it never comes online."""
    def online() -> bool | None:
        rec = hook.describe_cloud_assistant_status(region, [instance_id]).get(instance_id) or {}
        return True if str(rec.get("CloudAssistantStatus")).lower() == "true" else None

    if online():
        return "online"
    log.info("%s: Cloud Assistant not online: installing it and rebooting", instance_id)
    hook.install_cloud_assistant(region, [instance_id])
    hook.reboot_instance(region, instance_id)
    event = wait_until(online, poll_interval=poll_interval, deadline=time.time() + timeout,
                       what=f"Cloud Assistant on {instance_id}")
    if not event.get("value"):
        raise RunIncomplete(f"Cloud Assistant never came online on {instance_id} ({event['message']}); the build "
                            "instance is released by the teardown")
    return "installed, online after a reboot"


def create_golden_image(hook: EcsHook, context: Any, plan: Mapping[str, Any], instance_id: str, *,
                        timeout: float, poll_interval: float) -> str:
    """The image of the (stopped) build instance, tagged with its source image, the script's hash and the run; found
    again by those tags on a retry (and a stable ClientToken), then waited for until Available."""
    ti, region = context["ti"], plan["region"]
    tags = {**pv.provenance_tags(source_instance=instance_id, source_region=region, run_id=context["run_id"],
                                 dag_id=ti.dag_id, policy=GOLDEN_POLICY),
            SOURCE_IMAGE: plan["source_image_id"], SCRIPT_SHA: plan["script_sha256"][:64]}
    made = hook.describe_images(region, tags={pv.RUN_ID: str(context["run_id"])[:128], pv.DAG_ID: ti.dag_id,
                                              pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE})
    made = [i for i in made if i.get("Status") not in st.IMAGE_FAILED]
    image_id = made[0]["ImageId"] if made else hook.create_image(
        region, instance_id, image_name=plan["image_name"], tags=tags,
        description=f"updated from {plan['source_image_id']} by {ti.dag_id}"[:256],
        client_token=client_token(ti.dag_id, str(context["run_id"]), "golden", instance_id))
    wait_for_resource(hook, region, "image", image_id, what=f"golden image {image_id}", timeout=timeout,
                      poll_interval=poll_interval, error=RunIncomplete)
    return image_id


def discard_image(hook: EcsHook, region: str, image_id: str) -> list[str]:
    """Delete a golden image that failed its test, then its snapshots (no failed image is kept); the snapshots
    deleted."""
    rec = (hook.describe_images(region, image_ids=[image_id]) or [{}])[0]
    snapshots = [m.get("SnapshotId") for m in (rec.get("DiskDeviceMappings") or {}).get("DiskDeviceMapping") or []
                 if m.get("SnapshotId")]
    if snapshots:  # ours, so that a policy limited to what we manage may delete them
        hook.tag_resources(region, "snapshot", snapshots, {pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE,
                                                           pv.SOURCE_IMAGE: image_id})
    hook.delete_image(region, image_id, force=True)
    deleted = []
    for sid in snapshots:
        try:
            hook.delete_snapshot(region, sid, force=True)
            deleted.append(sid)
        except AliyunApiError as err:
            log.warning("snapshot %s of the discarded image %s not deleted: %s", sid, image_id, error_reason(err))
    return deleted


def judge_test(rows: Sequence[Mapping[str, Any]] | None) -> tuple[bool, str]:
    """Whether the test stage proved the image (one row, success), and what it said."""
    if not rows:
        return False, "the test stage left no result"
    row = rows[0]
    return row.get("status") == SUCCESS, str(row.get("reason") or row.get("status") or "")


def publish(hook: EcsHook, context: Any, plan: Mapping[str, Any], image_id: str, *, timeout: float,
            poll_interval: float) -> dict[str, str]:
    """Copy the golden image to ``copy_to_regions`` (stable ClientTokens, waited for) and share it, and each copy,
    with ``share_with_accounts``; ``{region: image_id}`` of what was published."""
    ti, region = context["ti"], plan["region"]
    published = {region: image_id}
    tags = {pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE, pv.POLICY: GOLDEN_POLICY, SOURCE_IMAGE: image_id,
            pv.SOURCE_REGION: region, pv.RUN_ID: str(context["run_id"])[:128], pv.DAG_ID: ti.dag_id,
            SCRIPT_SHA: plan["script_sha256"][:64]}
    for dest in plan["copy_to_regions"]:
        published[dest] = hook.copy_image(region, image_id, dest, name=plan["image_name"], tags=tags,
                                          client_token=client_token(ti.dag_id, str(context["run_id"]), "publish",
                                                                    image_id, dest))
    for dest, copy_id in published.items():
        wait_for_resource(hook, dest, "image", copy_id, what=f"golden image {copy_id} in {dest}", timeout=timeout,
                          poll_interval=poll_interval, error=RunIncomplete)
        if plan["share_with_accounts"]:
            hook.modify_image_share_permission(dest, copy_id, add_accounts=plan["share_with_accounts"])
    return published
