"""End-to-end: the ecs_image_retention DAG under dag.test() against the emulator, with the param defaults of a
scheduled run unless a test says otherwise. Images are pre-loaded with creation times relative to the run's
logical date (the plan's clock)."""

from __future__ import annotations

import email
import json
import threading
from pathlib import Path

import pendulum
import pytest
from alibabacloud_ecs20140526 import models as m

from tests.dags.hitl import respond, wait_for_input

DAG_ID = "ecs_image_retention"
POLICY = "ecs-cross-region-backup"
SPOT_POLICY = "ecs-spot-image-cycle"
NIGHT = pendulum.datetime(2026, 11, 20, 21, 0, tz="UTC")      # 05:00 Asia/Shanghai, the DAG's schedule
SRC, DR, SPOT = "cn-hangzhou", "cn-shanghai", "cn-beijing"
AGES = (1, 2, 3, 30)           # days: keep_last 3 keeps the first three, the last one expires


def managed(instance: str | None = "i-web0001", **extra: str) -> dict:
    tags = {"ops:managed-by": "airflow-aliyun-ops", "ops:policy": POLICY, **extra}
    if instance:
        tags["ops:source-instance"] = instance
    return tags


def spot_image(instance: str, age: float, region: str = SPOT) -> dict:
    """An image as ecs_spot_image_cycle tags it (its retention_days param defaults to 3)."""
    return {"region": region, "name": f"spot-{instance}-{age:04.1f}d", "creation_time": night(age),
            "tags": {"ops:managed-by": "airflow-aliyun-ops", "ops:policy": SPOT_POLICY, "ops:source-instance": instance,
                     "ops:retention-days": "3"}}


def night(days_before: float, at=NIGHT) -> str:
    return at.subtract(seconds=int(days_before * 86400)).strftime("%Y-%m-%dT%H:%M:%SZ")


def names(ecs_client, region: str) -> list[str]:
    body = ecs_client(region).describe_images(m.DescribeImagesRequest(
        region_id=region, image_owner_alias="self", page_size=100,
        status="Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated")).body
    return sorted(i.image_name for i in body.images.image)


def snapshot_ids(ecs_client, region: str) -> set[str]:
    body = ecs_client(region).describe_snapshots(m.DescribeSnapshotsRequest(region_id=region, max_results=100)).body
    return {s.snapshot_id for s in body.snapshots.snapshot}


def xcom(dag_run, task_id: str, key: str = "return_value"):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=DAG_ID, run_id=dag_run.run_id, task_id=task_id,
                                                 key=key).first()
        return XComModel.deserialize_value(row) if row else None


def report_json(dag_run) -> dict:
    from aliyun_ops.pipelines.report_output import report_dir

    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dag_run.run_id)
    return json.loads((report_dir() / DAG_ID / f"{safe}.json").read_text())


def delete_calls(emulator) -> int:
    return emulator.admin.calls()["counters"].get("ecs:DeleteImage", {}).get("calls", 0)


@pytest.fixture
def scheduled_runs(monkeypatch):
    """Make dag.test() create a *scheduled* run (it always creates a manual one): the code under test is unchanged,
    only the run's type differs, as when the scheduler starts it."""
    import airflow.models.dagrun as dagrun_module
    from airflow.utils.types import DagRunType

    def create_scheduled(*, dag, run_id, session, **kwargs):
        kwargs.pop("triggering_user_name", None)
        existing = session.query(dagrun_module.DagRun).filter_by(dag_id=dag.dag_id,
                                                                 logical_date=kwargs["logical_date"]).first()
        if existing:
            session.delete(existing)
            session.commit()
        run_id = dagrun_module.DagRun.generate_run_id(run_type=DagRunType.SCHEDULED,
                                                      logical_date=kwargs["logical_date"],
                                                      run_after=kwargs["run_after"])
        return dag.create_dagrun(run_id=run_id, run_type=DagRunType.SCHEDULED, state="running", session=session,
                                 **kwargs)

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", create_scheduled)


def test_defaults_prune_source_and_dr_regions_and_keep_what_tags_say(run_dag, emulator, ecs_client,
                                                                     scheduled_runs):
    images = []
    for region in (SRC, DR):
        for age in (1, 2, 3, 4, 10, 20):
            images.append({"region": region, "name": f"web-{age}d", "creation_time": night(age), "tags": managed()})
    images += [
        {"region": SRC, "name": "pre-upgrade-30d", "creation_time": night(30),
         "tags": managed(**{"ops:retention-days": "90"})},
        {"region": SRC, "name": "bad-tag-40d", "creation_time": night(40),
         "tags": managed(**{"ops:retention-days": "forever"})},
        {"region": DR, "name": "golden-copy-300d", "creation_time": night(300), "tags": managed(instance=None)},
        {"region": DR, "name": "hand-made-200d", "creation_time": night(200), "tags": {"role": "golden"}},
        {"region": DR, "name": "other-policy-200d", "creation_time": night(200),
         "tags": {**managed(), "ops:policy": "monthly"}},
    ]
    emulator.admin.load_fleet({"images": images})
    snaps_before = {r: snapshot_ids(ecs_client, r) for r in (SRC, DR)}

    run = run_dag(DAG_ID, logical_date=NIGHT)

    assert run.state == "success"
    assert run.run_type == "scheduled"
    assert names(ecs_client, SRC) == ["bad-tag-40d", "pre-upgrade-30d", "web-1d", "web-2d", "web-3d", "web-4d"]
    assert names(ecs_client, DR) == ["golden-copy-300d", "hand-made-200d", "other-policy-200d", "web-1d", "web-2d",
                                     "web-3d", "web-4d"]
    for region in (SRC, DR):                      # the deleted images' snapshots went with them
        assert len(snaps_before[region] - snapshot_ids(ecs_client, region)) == 2
    report = report_json(run)
    by_name = {r["name"]: r for r in report["rows"] if r["region"] == SRC}
    assert by_name["pre-upgrade-30d"]["rule"] == "own-retention"
    assert "fail closed" in by_name["bad-tag-40d"]["reason"]
    assert by_name["web-20d"]["action"] == "delete" and by_name["web-20d"]["status"] == "success"
    summary = xcom(run, "report")
    assert summary["deleted"] == 4 and summary["outcome"] == "success"


def test_dry_run_reports_the_same_plan_and_deletes_nothing(run_dag, emulator, ecs_client):
    emulator.admin.load_fleet({"images": [
        {"region": SRC, "name": f"web-{age}d", "creation_time": night(age), "tags": managed()} for age in (1, 2, 3, 30)]})
    run = run_dag(DAG_ID, logical_date=NIGHT, conf={"dry_run": True})
    assert run.state == "success"
    assert delete_calls(emulator) == 0 and len(names(ecs_client, SRC)) == 4
    rows = {r["name"]: r for r in report_json(run)["rows"]}
    assert rows["web-30d"]["action"] == "delete" and "dry run" in rows["web-30d"]["reason"]


def test_gfs_keeps_weekly_and_monthly_backups_over_100_nights(run_dag, emulator, ecs_client):
    emulator.admin.load_fleet({"images": [
        {"region": SRC, "name": f"web-{n:03d}", "creation_time": night(n + 0.01), "tags": managed()}
        for n in range(100)]})
    conf = {"keep_weekly": 4, "keep_monthly": 3, "max_delete_fraction": 1.0}
    run = run_dag(DAG_ID, logical_date=NIGHT, conf=conf)
    assert run.state == "success"
    zone = pendulum.timezone("Asia/Shanghai")
    made = {f"web-{n:03d}": NIGHT.subtract(seconds=int((n + 0.01) * 86400)).in_timezone(zone) for n in range(100)}
    expected = {name for name, at in made.items() if (NIGHT - at).total_seconds() <= 7 * 86400}
    for bucket, count in ((lambda t: t.isocalendar()[:2], 4), (lambda t: (t.year, t.month), 3)):
        newest_per_bucket: dict = {}
        for name, at in sorted(made.items(), key=lambda kv: kv[1], reverse=True):
            newest_per_bucket.setdefault(bucket(at), name)
        expected |= set(list(newest_per_bucket.values())[:count])
    assert set(names(ecs_client, SRC)) == expected
    rules = {r["name"]: r["rule"] for r in report_json(run)["rows"] if r["action"] == "keep"}
    assert "monthly" in rules.values() and "weekly" in rules.values()


def test_a_failed_snapshot_delete_is_swept_by_the_next_night(run_dag, emulator, ecs_client):
    emulator.admin.load_fleet({"images": [
        {"region": SRC, "name": f"web-{age}d", "creation_time": night(age), "tags": managed()} for age in (1, 2, 3, 30)]})
    doomed_snaps = snapshot_ids(ecs_client, SRC)
    emulator.admin.set_faults({"rules": [{"action": "ecs:DeleteSnapshot", "kind": "error", "status": 403,
                                          "code": "Forbidden", "count": 20}]})
    first = run_dag(DAG_ID, logical_date=NIGHT)
    assert first.state == "failed"                # the run promised the snapshot's deletion
    assert "web-30d" not in names(ecs_client, SRC)
    left = snapshot_ids(ecs_client, SRC)
    assert len(left) == 4                          # the deleted image's snapshot stayed behind
    row = next(r for r in report_json(first)["rows"] if r["name"] == "web-30d")
    assert row["status"] == "failed" and "snapshot" in row["reason"]

    emulator.admin.set_faults({})
    second = run_dag(DAG_ID, logical_date=NIGHT.add(days=1))
    assert second.state == "success"
    swept = [r for r in report_json(second)["rows"] if r["action"] == "sweep"]
    assert len(swept) == 1 and swept[0]["status"] == "success"
    assert len(snapshot_ids(ecs_client, SRC)) == 3 and doomed_snaps > snapshot_ids(ecs_client, SRC)


def held_fleet(emulator):
    emulator.admin.load_fleet({"images": [
        {"region": SRC, "name": f"web-{age}d", "creation_time": night(age), "tags": managed()}
        for age in (1, 10, 11, 12, 13, 14, 15)]})


def test_a_plan_above_the_fraction_guard_fails_a_scheduled_run_with_the_plan(run_dag, emulator, ecs_client,
                                                                             scheduled_runs):
    held_fleet(emulator)
    run = run_dag(DAG_ID, logical_date=NIGHT)
    assert run.state == "failed"
    assert delete_calls(emulator) == 0 and len(names(ecs_client, SRC)) == 7
    report = report_json(run)
    assert report["meta"]["held by max_delete_fraction"] == SRC
    assert report["meta"]["approval"] == "not asked (scheduled run)"
    held = [r for r in report["rows"] if r["action"] == "held"]
    assert len(held) == 4 and all("approve it in a manual run" in r["reason"] for r in held)


@pytest.mark.parametrize("answer", ["Approve", "Reject"])
def test_a_plan_above_the_fraction_guard_waits_for_approval_in_a_manual_run(run_dag, emulator, ecs_client, answer):
    held_fleet(emulator)
    seen: dict = {}

    def human():                                   # dag.test() runs tasks in the main thread: answer from another
        run_id = wait_for_input(DAG_ID, "approve")
        seen["deletes_while_waiting"] = delete_calls(emulator)
        respond(DAG_ID, run_id, "approve", answer)

    responder = threading.Thread(target=human, daemon=True)
    responder.start()
    run = run_dag(DAG_ID, logical_date=NIGHT)
    responder.join(timeout=10)
    assert seen["deletes_while_waiting"] == 0      # nothing deleted while the human thinks
    report = report_json(run)
    if answer == "Approve":
        assert run.state == "success" and report["meta"]["approval"] == "approved"
        assert names(ecs_client, SRC) == ["web-10d", "web-11d", "web-1d"]
    else:
        assert run.state == "failed" and report["meta"]["approval"] == "rejected"
        assert delete_calls(emulator) == 0 and len(names(ecs_client, SRC)) == 7


def test_the_quota_warning_appears_below_20_percent_headroom(run_dag, emulator, ecs_client, smtp_server):
    emulator.admin.set_faults({"image_quota": {SRC: 10}})
    emulator.admin.load_fleet({"images": [
        {"region": SRC, "name": f"web-{n}", "creation_time": night(n * 0.7), "tags": managed()}
        for n in range(1, 10)]})
    run = run_dag(DAG_ID, logical_date=NIGHT, conf={"notify_emails": ["ops@example.com"]})
    assert run.state == "success"
    received, got = smtp_server
    assert got.wait(10), "no email received"
    assert "QUOTA WARNING" in email.message_from_bytes(received[0].content)["Subject"]
    summary = xcom(run, "report")
    assert len(summary["quota_warnings"]) == 1 and "QuotaExceed.Image" in summary["quota_warnings"][0]
    assert "WARNING" in report_json(run)["meta"][f"quota {SRC}"]
    assert Path(summary["files"]["html"]).exists()


def test_throttling_server_errors_and_lost_answers_do_not_change_the_outcome(run_dag, emulator, ecs_client):
    emulator.admin.load_fleet({"images": [
        {"region": region, "name": f"web-{age}d", "creation_time": night(age), "tags": managed()}
        for region in (SRC, DR) for age in (1, 2, 3, 20)]})
    emulator.admin.set_faults({"seed": 3, "rules": [
        {"action": "ecs:DeleteImage", "kind": "drop_after", "count": 1},        # deleted, answer lost: retried
        {"action": "ecs:DeleteSnapshot", "kind": "drop", "count": 1},
        {"action": "ecs:Describe*", "kind": "throttle", "rate": 0.2, "retry_after_ms": 50},
        {"action": "ecs:*", "kind": "error", "status": 503, "rate": 0.1},
    ]})
    run = run_dag(DAG_ID, logical_date=NIGHT)
    assert run.state == "success"
    emulator.admin.set_faults({})                         # the checks below must not meet the faults
    for region in (SRC, DR):
        assert names(ecs_client, region) == ["web-1d", "web-2d", "web-3d"]
        assert len(snapshot_ids(ecs_client, region)) == 3
    assert delete_calls(emulator) == 3               # two deletions and the retry of the lost answer


# -- issue 22 case 6: the policy set ------------------------------------------------------------------------------
def test_defaults_prune_the_spot_cycles_images_and_report_the_quota_of_its_region(run_dag, emulator, ecs_client,
                                                                                   scheduled_runs):
    """The issue's fleet: ten spot instances, one image each a day for ten days, fill the default quota of 100 custom
    images in their region. A scheduled run with every default prunes them (and the backups) and writes the quota
    row of the spot region; before, its policy default left them alone and the report had no row for the region."""
    instances = [f"i-spot{k:04d}" for k in range(10)]
    images = [spot_image(iid, age + 0.2) for iid in instances for age in range(10)]
    images += [{"region": SRC, "name": f"web-{age}d", "creation_time": night(age), "tags": managed()}
               for age in (1, 2, 3, 20)]
    emulator.admin.load_fleet({"images": images})

    run = run_dag(DAG_ID, logical_date=NIGHT)

    assert run.state == "success" and run.run_type == "scheduled"
    # deadline max(retention_days 7, ops:retention-days 3): the 7.2-9.2 day old images go, 3 per instance
    assert names(ecs_client, SPOT) == sorted(f"spot-{iid}-{age + 0.2:04.1f}d" for iid in instances for age in range(7))
    assert names(ecs_client, SRC) == ["web-1d", "web-2d", "web-3d"]
    report = report_json(run)
    assert SPOT in report["meta"]["regions"]
    assert report["meta"][f"quota {SPOT}"] == "100 custom images, 70 after pruning, quota 100 (30% headroom)"
    assert not [k for k in report["meta"] if k.startswith("not covered")]
    rules = {r["name"]: r["rule"] for r in report["rows"] if r["region"] == SPOT}
    assert rules["spot-i-spot0000-09.2d"] == "expired" and rules["spot-i-spot0000-00.2d"] == "newest"
    plan = xcom(run, "plan")
    assert plan["policy"]["policy"] == [POLICY, SPOT_POLICY, "ecs-restore-undo", "ecs-golden-image"]
    assert plan["quotas"][SPOT] == {"images": 100, "after": 70, "quota": 100, "source": "DescribeAccountAttributes",
                                    "headroom": 0.3, "warning": "", "pruned": True}
    summary = xcom(run, "report")
    assert summary["deleted"] == 31 and summary["uncovered"] == {}


def test_a_managed_image_of_a_policy_the_run_does_not_cover_is_kept_and_warned_about(run_dag, emulator, ecs_client,
                                                                                      capfd):
    undo = {"ops:managed-by": "airflow-aliyun-ops", "ops:undo-for": "i-web0001", "ops:retention-days": "7"}
    emulator.admin.load_fleet({"images": [
        *[{"region": SRC, "name": f"web-{age}d", "creation_time": night(age), "tags": managed()} for age in AGES],
        {"region": SRC, "name": "monthly-200d", "creation_time": night(200),
         "tags": {**managed(), "ops:policy": "monthly"}},
        {"region": SRC, "name": "undo-i-web0001", "creation_time": night(30), "tags": undo},  # the restore's undo image
        {"region": "cn-shenzhen", "name": "monthly-400d", "creation_time": night(400),          # nothing else there
         "tags": {**managed(instance="i-db0001"), "ops:policy": "monthly"}},
    ]})
    capfd.readouterr()

    run = run_dag(DAG_ID, logical_date=NIGHT)
    out = "".join(capfd.readouterr())

    assert run.state == "success"                    # a warning, not a failure
    assert names(ecs_client, SRC) == ["monthly-200d", "undo-i-web0001", "web-1d", "web-2d", "web-3d"]
    assert names(ecs_client, "cn-shenzhen") == ["monthly-400d"]
    report = report_json(run)
    meta = report["meta"]
    assert meta["not covered monthly"].startswith("2 image(s) kept, never deleted: cn-hangzhou (1), cn-shenzhen (1)")
    assert meta["not covered (no ops:policy)"].startswith("1 image(s) kept, never deleted: cn-hangzhou (1)")
    assert "cn-shenzhen" in meta["regions"] and meta["quota cn-shenzhen"].startswith("1 custom images")
    uncovered = {r["name"]: r for r in report["rows"] if r["rule"] == "uncovered"}
    assert set(uncovered) == {"monthly-200d", "monthly-400d", "undo-i-web0001"}
    assert all(r["action"] == "keep" for r in uncovered.values())
    assert "'monthly' is not in this run's policy set" in uncovered["monthly-200d"]["reason"]
    assert xcom(run, "report")["uncovered"] == {"": 1, "monthly": 2}
    assert "managed images of policy monthly are not covered by this run: 2 image(s)" in out
    assert "managed images of policy (no ops:policy) are not covered by this run: 1 image(s)" in out


@pytest.mark.parametrize("policy", [SPOT_POLICY, None, "any"])
def test_the_single_policy_and_null_forms_still_work(run_dag, emulator, ecs_client, policy):
    adhoc = {"ops:managed-by": "airflow-aliyun-ops", "ops:source-instance": "i-web0001"}   # our operators, no policy
    emulator.admin.load_fleet({"images": [
        *[{"region": SRC, "name": f"web-{age}d", "creation_time": night(age), "tags": managed()} for age in AGES],
        *[{"region": SRC, "name": f"adhoc-{age}d", "creation_time": night(age), "tags": adhoc} for age in AGES],
        *[spot_image("i-spot0001", age) for age in AGES]]})

    run = run_dag(DAG_ID, logical_date=NIGHT, conf={"policy": policy})

    assert run.state == "success"
    assert names(ecs_client, SPOT) == ["spot-i-spot0001-01.0d", "spot-i-spot0001-02.0d", "spot-i-spot0001-03.0d"]
    summary = xcom(run, "report")
    kept = [f"{kind}-{age}d" for kind in ("adhoc", "web") for age in (1, 2, 3)]
    if policy == SPOT_POLICY:
        assert names(ecs_client, SRC) == sorted([*kept, "adhoc-30d", "web-30d"])
        assert summary["uncovered"] == {"": 4, POLICY: 4}
        assert xcom(run, "plan")["policy"]["policy"] == [SPOT_POLICY]
    else:                                             # any image we manage, with a policy or without
        assert names(ecs_client, SRC) == sorted(kept)
        assert summary["uncovered"] == {}
        assert xcom(run, "plan")["policy"]["policy"] is None
        assert "policy=any" in report_json(run)["meta"]["policy"]


def test_explicit_regions_still_report_the_quota_of_every_region_holding_our_images(run_dag, emulator, ecs_client):
    emulator.admin.set_faults({"image_quota": {SPOT: 12}})
    emulator.admin.load_fleet({"images": [
        *[{"region": SRC, "name": f"web-{age}d", "creation_time": night(age), "tags": managed()} for age in AGES],
        *[spot_image(f"i-spot{k:04d}", age) for k in range(2) for age in (1, 2, 3, 4, 30)]]})

    run = run_dag(DAG_ID, logical_date=NIGHT, conf={"regions": [SRC]})

    assert run.state == "success"
    assert names(ecs_client, SRC) == ["web-1d", "web-2d", "web-3d"]
    assert len(names(ecs_client, SPOT)) == 10                  # not a region of this run: nothing pruned there
    meta = report_json(run)["meta"]
    assert meta["regions"] == SRC
    assert meta[f"quota {SPOT}"] == ("10 custom images, not pruned by this run, quota 12 (17% headroom) "
                                     "WARNING: below 20% headroom")
    warnings = xcom(run, "report")["quota_warnings"]
    assert len(warnings) == 1 and "not pruned by this run" in warnings[0] and SPOT in warnings[0]


def test_a_blank_policy_name_is_refused_before_any_api_call(run_dag, emulator, ecs_client):
    emulator.admin.load_fleet({"images": [
        {"region": SRC, "name": f"web-{age}d", "creation_time": night(age), "tags": managed()} for age in AGES]})
    emulator.admin.clear_calls()
    run = run_dag(DAG_ID, logical_date=NIGHT, conf={"policy": [POLICY, " "]}, retries=0)
    assert run.state == "failed"
    assert not [c for c in emulator.admin.calls()["counters"] if c.startswith("ecs:")]
    assert names(ecs_client, SRC) == ["web-1d", "web-2d", "web-30d", "web-3d"]
