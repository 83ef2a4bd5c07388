"""Pure logic of issue 8: the resume plan of a paused instance, pause tags, OOS concurrency."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aliyun_ops.logic import pause
from aliyun_ops.logic.budget import check_concurrency, resolve_concurrency
from aliyun_ops.logic.provenance import validate_tags
from aliyun_ops.pipelines.backup_params import resolve_backup_config

STATUSES = ["Running", "Stopped", "Starting", "Stopping", "Pending", None]


@given(st.sampled_from([*pause.MODES, "", "bogus"]), st.sampled_from(STATUSES))
def test_resume_plan_never_pauses_and_never_stops(mode, status):
    plan = pause.plan_resume(mode, status)
    assert plan in (pause.START, pause.THAW, pause.WAIT, pause.DONE, pause.GONE)
    if plan == pause.START:
        assert status == "Stopped"                      # only what is stopped is started
    if plan == pause.THAW:
        assert status == "Running"                      # a command needs a running instance
    if status in ("Starting", "Stopping", "Pending"):
        assert plan == pause.WAIT                       # never act on an instance in transition
    if mode == pause.STOP and status == "Running":
        assert plan == pause.DONE                       # already resumed (early, or by someone)


@given(st.sampled_from(pause.MODES), st.text(min_size=1, max_size=200), st.text(min_size=1, max_size=200))
def test_pause_tags_are_valid_alibaba_tags_and_read_back(mode, run_key, dag_id):
    at = datetime(2026, 11, 20, 18, tzinfo=UTC)
    tags = pause.pause_tags(run_key=run_key, dag_id=dag_id, mode=mode, at=at)
    try:
        validate_tags(tags)
    except ValueError:  # a run key or DAG id Alibaba would refuse as a tag value (a URL, acs:...)
        return
    info = pause.paused_info(tags)
    assert info["mode"] == mode and info["run_key"] == run_key[:128]
    assert pause.parse_time(info["paused_at"]) == at


def test_paused_seconds_and_bad_times():
    at = datetime(2026, 11, 20, 18, tzinfo=UTC)
    assert pause.paused_seconds(at.isoformat(), at + timedelta(minutes=3)) == 180.0
    assert pause.paused_seconds("not a time", at) is None
    assert pause.paused_seconds("2026-11-20T18:00:00", at) is None     # naive: unknown zone
    assert pause.paused_info({"env": "prod"}) is None


def test_point_in_time_needs_every_disk_snapshotted():
    def image(*ids):
        return {"DiskDeviceMappings": {"DiskDeviceMapping": [{"SnapshotId": i} for i in ids]}}

    assert pause.image_point_in_time_taken(image("s-1", "s-2"))
    assert not pause.image_point_in_time_taken(image("s-1", ""))
    assert not pause.image_point_in_time_taken(image())


@given(st.integers(min_value=0, max_value=5000), st.integers(min_value=1, max_value=100))
def test_percentage_concurrency_rounds_up_to_at_least_one(total, pct):
    n = resolve_concurrency(f"{pct}%", total)
    assert n >= 1
    assert n == max(1, math.ceil(total * pct / 100))
    check_concurrency(f"{pct}%")                        # what validation accepts, execution accepts


@pytest.mark.parametrize("bad", [0, "0%", "150%", "-1", "ten", True, "5.5"])
def test_bad_concurrency_is_refused_by_the_shared_check(bad):
    with pytest.raises(ValueError):
        check_concurrency(bad)


def test_backup_params_selection_rules():
    base = {"destination_regions": ["cn-shanghai"]}
    assert resolve_backup_config(base, "cn-hangzhou")["tags"] == {"backup": "daily"}
    assert resolve_backup_config({**base, "instance_ids": ["i-abcd1"]}, "cn-hangzhou")["tags"] == {}
    explicit = resolve_backup_config({**base, "instance_ids": ["i-abcd1"], "tags": {"env": "x"}}, "cn-hangzhou")
    assert explicit["tags"] == {"env": "x"}
    with pytest.raises(ValueError, match="must contain"):
        resolve_backup_config({**base, "image_name_template": "backup-{instance_name}-{date}"}, "cn-hangzhou")
    assert resolve_backup_config({**base, "concurrency": "10%"}, "cn-hangzhou")["concurrency"] == "10%"
