"""Provenance tags: what we put on everything we create, and how we recognise it later.

Alibaba rejects tag keys that start with ``aliyun`` or ``acs:`` (and values that start with
``acs:``), so ours use the ``ops:`` prefix. Retention only ever touches resources carrying
``ops:managed-by = airflow-aliyun-ops``.
"""

from __future__ import annotations

from collections.abc import Mapping

PREFIX = "ops:"
MANAGED_BY_KEY = "ops:managed-by"
MANAGED_BY_VALUE = "airflow-aliyun-ops"
SOURCE_INSTANCE = "ops:source-instance"
SOURCE_REGION = "ops:source-region"
SOURCE_IMAGE = "ops:source-image"
RUN_ID = "ops:run-id"
RUN_KEY = "ops:run-key"  # the logical date when the run has one, else the run id: what re-runs match on
DAG_ID = "ops:dag-id"
POLICY = "ops:policy"
RETENTION_DAYS = "ops:retention-days"
RETENTION_DAYS_MAX = 3650
"""The one bound of ``ops:retention-days`` (10 years): the forms, the operators that write it and the retention
planner that reads it all accept exactly 1..3650, so no image carries a value the planner refuses."""
COPY_STATUS = "ops:copy-status"
COPY_COMPLETE = "complete"
TEMPORARY = "ops:temporary"  # "true" on what a run makes for itself only (a verification clone, its network)
PURPOSE = "ops:purpose"  # what a temporary resource is for ("verify", ...)
VERIFIED_AT = "ops:verified-at"  # written by the restore verification when a backup was booted and checked

MAX_TAGS = 20
MAX_KEY_LEN = 128
MAX_VALUE_LEN = 128
RESERVED_KEY_PREFIXES = ("aliyun", "acs:")


def validate_tags(tags: Mapping[str, str], *, what: str = "tags") -> dict[str, str]:
    """Check tags against Alibaba's rules before any API call; return them as ``str -> str``.

    >>> validate_tags({"env": "prod"})
    {'env': 'prod'}
    """
    if not isinstance(tags, Mapping):
        raise ValueError(f"{what} must be an object of key -> value, got {type(tags).__name__}")
    out: dict[str, str] = {}
    for key, value in tags.items():
        key, value = str(key), "" if value is None else str(value)
        if not key or len(key) > MAX_KEY_LEN:
            raise ValueError(f"{what}: tag key {key!r} must be 1-{MAX_KEY_LEN} characters")
        if key.lower().startswith(RESERVED_KEY_PREFIXES):
            raise ValueError(f"{what}: tag key {key!r} may not start with 'aliyun' or 'acs:' (Alibaba reserves them)")
        if "http://" in key or "https://" in key:
            raise ValueError(f"{what}: tag key {key!r} may not contain http:// or https://")
        if len(value) > MAX_VALUE_LEN:
            raise ValueError(f"{what}: value of tag {key!r} is longer than {MAX_VALUE_LEN} characters")
        if value.lower().startswith("acs:") or "http://" in value or "https://" in value:
            raise ValueError(f"{what}: value of tag {key!r} may not start with 'acs:' or contain a URL")
        out[key] = value
    if len(out) > MAX_TAGS:
        raise ValueError(f"{what}: at most {MAX_TAGS} tags per resource, got {len(out)}")
    return out


def provenance_tags(*, source_instance: str | None = None, source_region: str | None = None,
                    source_image: str | None = None, run_id: str | None = None, dag_id: str | None = None,
                    policy: str | None = None, retention_days: int | None = None,
                    run_key: str | None = None) -> dict[str, str]:
    """The tags that say who made a resource and from what.

    >>> provenance_tags(source_instance="i-1", run_id="manual__1")["ops:managed-by"]
    'airflow-aliyun-ops'
    """
    tags = {MANAGED_BY_KEY: MANAGED_BY_VALUE}
    for key, value in ((SOURCE_INSTANCE, source_instance), (SOURCE_REGION, source_region),
                       (SOURCE_IMAGE, source_image), (RUN_ID, run_id), (RUN_KEY, run_key), (DAG_ID, dag_id),
                       (POLICY, policy),
                       (RETENTION_DAYS, retention_days)):
        if value not in (None, ""):
            tags[key] = str(value)[:MAX_VALUE_LEN]
    return tags


def merge_tags(user_tags: Mapping[str, str] | None, ours: Mapping[str, str]) -> dict[str, str]:
    """User tags plus ours; ours win (a user cannot forge or drop provenance). Validated."""
    merged = {**dict(user_tags or {}), **dict(ours)}
    return validate_tags(merged)


def is_managed(tags: Mapping[str, str]) -> bool:
    return tags.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE


def tags_from_api(raw) -> dict[str, str]:
    """ECS returns ``{"Tags": {"Tag": [{"TagKey", "TagValue"}]}}`` or ``[{"Key","Value"}]``: make a dict."""
    if not raw:
        return {}
    if isinstance(raw, Mapping):
        if "Tag" in raw:
            raw = raw["Tag"]
        else:
            return {str(k): str(v) for k, v in raw.items()}
    out = {}
    for item in raw or []:
        key = item.get("TagKey", item.get("Key"))
        if key is not None:
            out[key] = item.get("TagValue", item.get("Value", ""))
    return out
