"""Temporary resources of a run: what it makes for itself only (a clone booted to verify a backup, the closed
security group it boots in), tagged so that a teardown, or a later run, finds and releases them whatever failed::

    ops:managed-by = airflow-aliyun-ops   ops:temporary = true   ops:purpose = <what for>
    ops:run-id     = <run id>             ops:dag-id    = <dag id>

Example::

    group = isolated_security_group(hook, context, "cn-shanghai", vpc_id, purpose="verify")
    ...                                          # boot the clone in it, check it, delete it
    release_security_groups(hook, context, ["cn-shanghai"])      # in the teardown, after the instances are gone
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..exceptions import AliyunApiError, error_reason
from ..hooks.ecs import EcsHook
from ..logic import provenance as pv
from ..logic.naming import client_token
from ..logic.outcome import FAILED, SKIPPED, SUCCESS

INTERNAL_SERVICES_CIDR = "100.100.0.0/16"
"""Alibaba Cloud's internal service addresses (the metadata service 100.100.100.200, the VPC DNS, the Cloud Assistant
endpoints): what a clone needs to reach for its health check to run and report."""


def temporary_tags(context: Any, purpose: str) -> dict[str, str]:
    """The tags of a temporary resource of this run."""
    ti = context["ti"]
    return {pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE, pv.TEMPORARY: "true", pv.PURPOSE: purpose[:128],
            pv.RUN_ID: str(context["run_id"])[:128], pv.DAG_ID: str(ti.dag_id)[:128]}


def closed_egress_rules(allowed_cidrs: Sequence[str]) -> list[dict[str, Any]]:
    """Egress rules letting out only what goes to ``allowed_cidrs``; a basic group with no ingress rule lets nothing
    in. (A basic group allows all egress until a rule says otherwise: hence the final drop.)"""
    rules = [{"ip_protocol": "all", "port_range": "-1/-1", "dest_cidr_ip": cidr, "policy": "accept", "priority": 1,
              "description": "aliyun-ops: internal services (metadata, DNS, Cloud Assistant)"}
             for cidr in allowed_cidrs]
    rules.append({"ip_protocol": "all", "port_range": "-1/-1", "dest_cidr_ip": "0.0.0.0/0", "policy": "drop",
                  "priority": 100, "description": "aliyun-ops: nothing else leaves this group"})
    return rules


def isolated_security_group(hook: EcsHook, context: Any, region: str, vpc_id: str, *, purpose: str,
                            allowed_cidrs: Sequence[str] = (INTERNAL_SERVICES_CIDR,), log: Any = None) -> str:
    """This run's closed security group for ``purpose`` in ``vpc_id``: no inbound rule, outbound only to
    ``allowed_cidrs``; found again on a retry (its tags), else created (a stable ClientToken) with its rules."""
    tags = temporary_tags(context, purpose)
    for group in hook.describe_security_groups(region, vpc_id=vpc_id, tags=tags):
        return group["SecurityGroupId"]
    ti = context["ti"]
    name = f"aliyun-ops-{purpose}-{str(context['run_id'])}"[:128]
    name = "".join(ch if ch.isalnum() or ch in "-_.:" else "-" for ch in name)
    group_id = hook.create_security_group(
        region, vpc_id, name, tags=tags, description=f"Temporary, closed: {purpose} of {ti.dag_id}"[:256],
        client_token=client_token(ti.dag_id, str(context["run_id"]), "security-group", purpose, region, vpc_id))
    hook.authorize_security_group_egress(region, group_id, closed_egress_rules(allowed_cidrs))
    if log:
        log.info("closed security group %s for %s in %s (egress only to %s)", group_id, purpose, vpc_id,
                 ", ".join(allowed_cidrs))
    return group_id


def temporary_filter(*, run_id: str | None = None, dag_id: str | None = None, purpose: str | None = None) -> dict:
    """The tag filter of temporary resources: every one we made, narrowed to a run, a DAG or a purpose if given."""
    tags = {pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE, pv.TEMPORARY: "true"}
    for key, value in ((pv.RUN_ID, run_id), (pv.DAG_ID, dag_id), (pv.PURPOSE, purpose)):
        if value:
            tags[key] = str(value)[:128]
    return tags


def find_temporary(hook: EcsHook, region: str, tags: Mapping[str, str]) -> list[dict]:
    """Temporary instances and security groups of ``region`` carrying ``tags`` (:func:`temporary_filter`):
    ``[{"resource_type": "instance" | "securitygroup", "resource_id", "region", "created", "run_id", "purpose"}]``."""
    found = []
    for kind, records, key in (("instance", hook.describe_instances(region, tags=dict(tags)), "InstanceId"),
                               ("securitygroup", hook.describe_security_groups(region, tags=dict(tags)),
                                "SecurityGroupId")):
        for rec in records:
            rtags = pv.tags_from_api(rec.get("Tags"))
            found.append({"resource_type": kind, "resource_id": rec[key], "region": region,
                          "created": rec.get("CreationTime", ""), "run_id": rtags.get(pv.RUN_ID, ""),
                          "purpose": rtags.get(pv.PURPOSE, "")})
    return found


def delete_temporary(hook: EcsHook, item: Mapping[str, Any]) -> dict:
    """Delete one temporary resource (an instance with ``Force``: it may be running); a row with ``status`` success
    (asked), skipped (already gone) or failed, and the ``reason``."""
    row = {**item, "status": SUCCESS, "reason": "delete requested"}
    try:
        if item["resource_type"] == "instance":
            hook.delete_instance(item["region"], item["resource_id"], force=True)
        else:
            hook.delete_security_group(item["region"], item["resource_id"])
            row["reason"] = "deleted"
    except AliyunApiError as err:
        row.update(status=SKIPPED if err.is_not_found else FAILED,
                   reason="already gone" if err.is_not_found else error_reason(err))
    return row


def release_security_groups(hook: EcsHook, context: Any, regions: Sequence[str], *, purpose: str | None = None,
                            log: Any = None) -> list[dict]:
    """Delete this run's temporary security groups in ``regions`` (after its instances are gone); one row per group:
    ``{"security_group_id", "region", "status", "reason"}``. A group still in use stays and is reported failed."""
    tags = {k: v for k, v in temporary_tags(context, purpose or "").items() if purpose or k != pv.PURPOSE}
    rows = []
    for region in regions:
        for group in hook.describe_security_groups(region, tags=tags):
            gid = group["SecurityGroupId"]
            try:
                hook.delete_security_group(region, gid)
                rows.append({"security_group_id": gid, "region": region, "status": SUCCESS, "reason": "deleted"})
            except AliyunApiError as err:
                status = SKIPPED if err.is_not_found else FAILED
                rows.append({"security_group_id": gid, "region": region, "status": status,
                             "reason": "already gone" if err.is_not_found else error_reason(err)})
    if log and rows:
        log.info("temporary security groups: %s", "; ".join(f"{r['security_group_id']} {r['status']}" for r in rows))
    return rows
