"""Params (the public interface) of ``ecs_cross_region_backup`` and their validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param

from ..logic import ids, naming
from ..logic.budget import CONCURRENCY, COUNT_OR_PERCENT, check_concurrency, resolve_count
from ..logic.provenance import RETENTION_DAYS_MAX, validate_tags

DEFAULT_CONCURRENCY = "100%"
"""Every instance's build and copy in flight at once: the night is as short as the cloud allows, and with
``consistency=stop`` no instance waits stopped for a slot (ECS queues copies itself, 5 per region)."""
DEFAULT_LEASE_WAIT_MINUTES = 30
"""How long a stop or freeze waits for another run's lease on the instance (it holds it until its resume)."""
DEFAULT_SELECTION_TAGS = {"backup": "daily"}
"""Selection of a scheduled run: instances tagged ``backup=daily``."""


def backup_params() -> dict[str, Param]:
    """The trigger form. Defaults suit the nightly run; ``source_regions=[]`` means the connection's region."""
    return {
        "source_regions": Param([], type="array", items=ids.schema("region"),
                                uniqueItems=True, title="Source regions",
                                description="Regions to back up. Empty: the aliyun_default connection's region."),
        "tags": Param(None, type=["null", "object"], additionalProperties={"type": "string"},
                      title="Selection tags",
                      description="Instances carrying all of these tags are backed up. Empty: "
                                  f"{DEFAULT_SELECTION_TAGS} when no instance ids are given, no tag filter when "
                                  "they are."),
        "instance_ids": Param([], type="array", items=ids.schema("instance"),
                              uniqueItems=True, title="Instance ids",
                              description="Optional: only these instances (tags apply too only if you set them)."),
        "allow_empty": Param(False, type="boolean", title="Allow an empty selection",
                             description="Off: a run that selects no instance fails (a typo must not look green)."),
        "destination_regions": Param(["cn-shanghai"], type="array", minItems=1, uniqueItems=True,
                                     items=ids.schema("region"),
                                     title="Destination regions", description="Disaster-recovery regions."),
        "consistency": Param("none", enum=["none", "command", "stop"], title="Consistency",
                             description="none: crash-consistent; command: run include/scripts pre/post "
                                         "scripts with Cloud Assistant; stop: stop, image, start again."),
        "image_name_template": Param(naming.DEFAULT_IMAGE_NAME_TEMPLATE, type="string", minLength=2, maxLength=128,
                                     title="Image name template",
                                     description="Fields: " + ", ".join(sorted(naming.NAME_FIELDS))),
        "extra_tags": Param({}, type="object", additionalProperties={"type": "string"}, title="Extra tags",
                            description="Added to every image and copy (keys may not start with aliyun or acs:)."),
        "encrypted": Param(False, type="boolean", title="Encrypt copies"),
        "kms_key_id": Param(None, type=["null", "string"], title="KMS key id",
                            description="Requires encrypted; empty uses the default service key."),
        "concurrency": Param(DEFAULT_CONCURRENCY, **CONCURRENCY, title="Concurrency",
                             description="Items in flight at once (builds running, copies not finished, stops and "
                                         "commands per wave): a number, or a percentage rounded up to at least 1. "
                                         "Lower it to spread the load; every queued instance stays paused longer."),
        "max_errors": Param(0, **COUNT_OR_PERCENT, title="Max errors",
                            description="Failures tolerated before the run fails (OOS semantics)."),
        "timeout_minutes": Param(360, type="integer", minimum=5, maximum=2880, title="Timeout (minutes)"),
        "lease_wait_minutes": Param(DEFAULT_LEASE_WAIT_MINUTES, type="integer", minimum=0, maximum=1440,
                                    title="Wait for another run (minutes)",
                                    description="With consistency stop or command: how long an instance another "
                                                "run holds (an overlapping backfill, a second deployment) is waited "
                                                "for before it is reported failed. 0: refuse at once."),
        "poll_interval": Param(60, type="integer", minimum=1, maximum=1800, title="Poll interval (seconds)"),
        "retention_days": Param(7, type="integer", minimum=1, maximum=RETENTION_DAYS_MAX, title="Retention days",
                                description="Written as the ops:retention-days tag for the pruning DAG."),
        "notify_emails": Param([], type="array", items={"type": "string", "format": "email"},
                               title="Report recipients", description="Email the HTML report (smtp_default)."),
    }


def resolve_backup_config(params: Mapping[str, Any], default_region: str | None) -> dict[str, Any]:
    """Check what JSON schema cannot and resolve defaults; raises ``ValueError`` before any API call.

    ``tags`` left empty (None) means ``backup=daily`` unless ``instance_ids`` are given: explicit ids are
    not filtered by a default tag they may not carry.

    >>> resolve_backup_config({"destination_regions": ["cn-shanghai"], "instance_ids": ["i-abcd"]},
    ...                       "cn-hangzhou")["tags"]
    {}
    """
    errors: list[str] = []
    sources = list(params.get("source_regions") or ([default_region] if default_region else []))
    if not sources:
        errors.append("source_regions is empty and the aliyun_default connection has no region")
    destinations = list(params.get("destination_regions") or [])
    if not destinations:
        errors.append("destination_regions needs at least one region")
    same = sorted(set(sources) & set(destinations))
    if same:
        errors.append(f"regions {same} are both source and destination: a copy must go to another region")
    ids = list(params.get("instance_ids") or [])
    explicit_tags = params.get("tags")
    tags = dict(explicit_tags) if explicit_tags is not None else ({} if ids else dict(DEFAULT_SELECTION_TAGS))
    if not tags and not ids:
        errors.append("give selection tags or instance_ids: refusing to back up every instance")
    try:
        validate_tags(tags, what="tags")
        validate_tags(dict(params.get("extra_tags") or {}), what="extra_tags")
    except ValueError as exc:
        errors.append(str(exc))
    template = params.get("image_name_template") or naming.DEFAULT_IMAGE_NAME_TEMPLATE
    try:
        naming.validate_image_name_template(template)
    except ValueError as exc:
        errors.append(str(exc))
    kms = params.get("kms_key_id") or None
    encrypted = bool(params.get("encrypted", False))
    if kms and not encrypted:
        errors.append("kms_key_id is set but encrypted is false")
    consistency = params.get("consistency", "none")
    if consistency not in ("none", "command", "stop"):
        errors.append(f"consistency must be none, command or stop, not {consistency!r}")
    for name, check in (("concurrency", lambda v: check_concurrency(v if v is not None else DEFAULT_CONCURRENCY)),
                        ("max_errors", lambda v: resolve_count(v if v is not None else 0, 100, name="max_errors"))):
        try:
            check(params.get(name))
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        raise ValueError("invalid backup parameters:\n- " + "\n- ".join(errors))
    return {
        "source_regions": sources, "destination_regions": destinations, "tags": tags, "instance_ids": ids,
        "allow_empty": bool(params.get("allow_empty", False)),
        "consistency": consistency, "pauses": consistency != "none", "image_name_template": template,
        "extra_tags": dict(params.get("extra_tags") or {}), "encrypted": encrypted, "kms_key_id": kms,
        "concurrency": params.get("concurrency", DEFAULT_CONCURRENCY), "max_errors": params.get("max_errors", 0),
        "timeout_seconds": int(params.get("timeout_minutes", 360)) * 60,
        "lease_wait_seconds": int(params.get("lease_wait_minutes", DEFAULT_LEASE_WAIT_MINUTES)) * 60,
        "poll_interval": int(params.get("poll_interval", 60)),
        "retention_days": int(params.get("retention_days", 7)),
        "notify_emails": list(params.get("notify_emails") or []),
    }
