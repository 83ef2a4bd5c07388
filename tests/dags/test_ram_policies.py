"""Least privilege, proven: each DAG's RAM policy (``include/ram/<dag_id>.json``) is complete, and without any one of
its actions the DAG fails, names the missing permission, and leaves the fleet as it found it.

Every other test in this folder already runs each DAG with a key holding only its policy (``conftest.py``), so a DAG
calling an unlisted action fails there. Here, per scenario: one run with the whole policy records the actions the
DAG called; then, for each of them, a run with that action removed must fail with ``Forbidden.RAM`` naming it
(task log) and leave every instance in the state it was found in, with no instance created or left behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pendulum
import pytest

from emulator.oss import RAM_ACTIONS as OSS_RAM_ACTIONS
from emulator.ram import parse_policy

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "include" / "ram"
NIGHT = pendulum.datetime(2026, 11, 20, 19, 0, tz="UTC")
MANAGED = {"ops:managed-by": "airflow-aliyun-ops", "ops:policy": "ecs-cross-region-backup"}


def dag_ids() -> list[str]:
    return sorted(p.stem for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))


def load(dag_id: str) -> dict:
    return json.loads((POLICIES / f"{dag_id}.json").read_text())


def without(policy: dict, action: str) -> dict:
    statements = []
    for s in policy["Statement"]:
        actions = [a for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]) if a != action]
        if actions:
            statements.append({**s, "Action": actions})
    return {**policy, "Statement": statements}


def ram_action(label: str) -> str:
    """The RAM action of a call-log label (OSS logs operations: HeadObject is authorised as oss:GetObject)."""
    product, _, op = label.partition(":")
    return OSS_RAM_ACTIONS.get(op, label) if product == "oss" else label


# -- the policies themselves ----------------------------------------------------------------------------
def test_every_dag_has_a_valid_policy_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert sorted(p.stem for p in POLICIES.glob("*.json")) == dag_ids()
    for dag_id in dag_ids():
        doc = load(dag_id)
        parse_policy(doc)
        assert f"include/ram/{dag_id}.json" in readme
        for s in doc["Statement"]:
            assert s["Effect"] == "Allow" and "*" not in "".join(s["Action"])   # no wildcard grants
            deletes = [a for a in s["Action"] if a.startswith("ecs:Delete")]
            if deletes:                                 # destroy only what we made (narrower conditions are welcome)
                assert s["Condition"]["StringEquals"]["acs:ResourceTag/ops:managed-by"] == "airflow-aliyun-ops"


# -- scenarios: name -> (dag, setup(emulator) -> (conf, logical date)); each loads its fleet --------------
def _instances(status="Running", tags=None, count=1, region="cn-hangzhou", name="w"):
    return {"region": region, "name": name, "count": count, "status": status,
            "tags": tags or {"backup": "daily"}, "system_disk_size": 20}


def _fleet(spec: dict, conf: dict, logical_date=None):
    def setup(emulator):
        emulator.admin.load_fleet(spec)
        return conf, logical_date
    return setup


def _restore(emulator):
    emulator.admin.load_fleet({"instances": [_instances(name="web", tags={"role": "web"})]})
    iid = next(iter(emulator.admin.table("ecs.instances")))
    emulator.admin.load_fleet({"images": [{"region": "cn-hangzhou", "name": "web-backup",
                                           "creation_time": NIGHT.subtract(days=1).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                           "tags": {"ops:managed-by": "airflow-aliyun-ops",
                                                    "ops:source-instance": iid}}]})
    return {"instance_id": iid, "confirm_instance_id": iid, "require_approval": False, "poll_interval": 1}, NIGHT


def _verify(emulator):
    tags = {**MANAGED, "ops:source-instance": "i-web0001", "ops:source-image": "m-src1",
            "ops:copy-status": "complete"}
    emulator.admin.load_fleet({"images": [{"region": "cn-shanghai", "name": "copy-1", "tags": tags,
                                           "creation_time": "2026-11-20T00:00:00Z"}]})
    return {}, None


def _repair(emulator):
    emulator.admin.load_fleet({"images": [{"region": "cn-hangzhou", "name": "web-broken", "broken": True}]})
    image_id = next(i for i, rec in emulator.admin.table("ecs.images").items() if rec.get("ImageName") == "web-broken")
    return {"image_id": image_id, "poll_interval": 1, "flush_wait": 0}, None


SCENARIOS = {
    "start-stop:stop": ("ecs_start_stop_by_tag", _fleet({"instances": [_instances(tags={"env": "test"}, count=2)]},
                                                        {"action": "stop", "tags": {"env": "test"}})),
    "start-stop:start": ("ecs_start_stop_by_tag", _fleet(
        {"instances": [_instances(status="Stopped", tags={"env": "test"}, count=2)]},
        {"action": "start", "tags": {"env": "test"}})),
    "backup:stop": ("ecs_cross_region_backup", _fleet(
        {"instances": [_instances()]}, {"source_regions": ["cn-hangzhou"], "destination_regions": ["cn-shanghai"],
                                        "poll_interval": 1, "consistency": "stop"})),
    "backup:command": ("ecs_cross_region_backup", _fleet(
        {"instances": [_instances()]}, {"source_regions": [], "destination_regions": ["cn-shanghai"],
                                        "poll_interval": 1, "consistency": "command"})),
    "retention": ("ecs_image_retention", _fleet({"images": [
        {"region": "cn-hangzhou", "name": f"old-{d}", "tags": {**MANAGED, "ops:source-instance": "i-gone"},
         "creation_time": NIGHT.subtract(days=d).strftime("%Y-%m-%dT%H:%M:%SZ")} for d in (1, 2, 3, 40, 60)]},
        {}, NIGHT)),
    "rds-archive": ("rds_backup_archive", _fleet({
        "rds_instances": [{"region": "cn-hangzhou", "id": "rm-ram0001", "engine": "MySQL", "tags": {"backup": "archive"},
                           "backups": [{"size": 9 * 1024 * 1024,
                                        "start_time": NIGHT.subtract(days=1).strftime("%Y-%m-%dT%H:%M:%SZ")}]}],
        "buckets": [{"name": "ops-archive", "region": "cn-shanghai"}]}, {"transition_days": 30}, NIGHT)),
    "restore": ("ecs_restore_system_disk", _restore),
    "spot-cycle": ("ecs_spot_image_cycle", _fleet(
        {"instances": [_instances(tags={"spot-image-cycle": "true"})]}, {"poll_interval": 1},
        pendulum.datetime(2026, 11, 20, 4, 0, tz="UTC"))),
    "verify": ("ecs_verify_backups", _verify),
    "update-image": ("ecs_update_image", _fleet(
        {"images": [{"region": "cn-hangzhou", "name": "base", "tags": {"role": "golden-base"},
                     "creation_time": "2026-11-01T00:00:00Z"}]},
        {"poll_interval": 1, "require_approval": False, "copy_to_regions": ["cn-shanghai"],
         "share_with_accounts": ["1987654321098765"]})),
    "repair-image": ("ecs_repair_image", _repair),
    "run-command": ("ecs_run_command", _fleet({"instances": [_instances(tags={"env": "test"}, count=2)]},
                                              {"tags": {"env": "test"}, "poll_interval": 1})),
}


# Permissions a DAG can do without, saying so: the run succeeds and its log names the missing one.
OPTIONAL = {("ecs_image_retention", "ecs:DescribeAccountAttributes"),   # the image quota line of the report
            # the wait's look-up: when it is refused the wait ends at once and each instance's result is read with
            # DescribeInvocationResults all the same (a command still running then is reported failed)
            ("ecs_run_command", "ecs:DescribeInvocations")}


def _fleet_state(emulator) -> dict:
    """What a refused permission must leave as it was: each instance's power state, its pause tags (none left
    behind: nothing still frozen) and its system disk's image (no disk replaced), and the images and snapshots
    (see :func:`_unchanged`)."""
    admin = emulator.admin
    system_disks = {d.get("InstanceId"): d.get("ImageId") for d in admin.table("ecs.disks").values()
                    if d.get("Type") == "system" and d.get("Status") != "Deleted"}
    instances = {iid: (rec["Status"], sorted(k for k in (rec.get("Tags") or {}) if k.startswith("ops:paused")),
                       system_disks.get(iid))
                 for iid, rec in admin.table("ecs.instances").items() if rec["Status"] != "Deleted"}
    return {"instances": instances, "images": set(admin.table("ecs.images")),
            "snapshots": set(admin.table("ecs.snapshots"))}


def _unchanged(before: dict, after: dict, kept: dict) -> list[str]:
    """How ``after`` breaks the promise (empty: kept): an instance changed, or an image or snapshot gone that the
    run with the whole policy keeps (``kept``: what retention plans to delete may go; what it keeps may not).
    Images, snapshots and objects a run made before it was refused may stay: they carry their run's tags."""
    problems = [f"instance {iid}: {was} -> {after['instances'].get(iid)}" for iid, was in before["instances"].items()
                if after["instances"].get(iid) != was]
    problems += [f"{kind[:-1]} {rid} deleted" for kind in ("images", "snapshots")
                 for rid in sorted((before[kind] & kept[kind]) - after[kind])]
    return problems


def _prepare(emulator, setup) -> tuple[dict, dict, object]:
    emulator.admin.reset()
    emulator.admin.clock(time_scale=float(os.environ.get("EMULATOR_TEST_TIME_SCALE", "1000")), freeze=False)
    conf, logical_date = setup(emulator)
    emulator.admin.clear_calls()
    return _fleet_state(emulator), conf, logical_date


def _called(emulator, dag_id: str) -> set[str]:
    key_id = "RamTest" + "".join(ch for ch in dag_id.title() if ch.isalnum())
    return {ram_action(c["action"]) for c in emulator.admin.calls(limit=20000)["recent"]
            if c.get("access_key_id") == key_id}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_without_any_one_action_the_dag_fails_safely_and_names_it(scenario, run_dag, emulator, capfd):
    dag_id, setup = SCENARIOS[scenario]
    policy = load(dag_id)
    _, conf, logical_date = _prepare(emulator, setup)
    full = run_dag(dag_id, conf=conf, logical_date=logical_date)
    assert full.state == "success", f"{scenario} does not succeed with its whole policy"
    kept = _fleet_state(emulator)
    called = _called(emulator, dag_id)
    listed = {a for s in policy["Statement"] for a in s["Action"]}
    assert called <= listed
    for action in sorted(called):
        found, conf, logical_date = _prepare(emulator, setup)
        capfd.readouterr()
        # no Airflow retries: a permission error stays one, and dag.test() would wait out each retry delay
        run = run_dag(dag_id, conf=conf, logical_date=logical_date, policy=without(policy, action), retries=0)
        out = "".join(capfd.readouterr())
        expected = "success" if (dag_id, action) in OPTIONAL else "failed"
        assert run.state == expected, f"{scenario}: without {action} the run ended {run.state}"
        # OSS answers AccessDenied without naming the RAM action (the emulator does not model AccessDeniedDetail)
        named = f"missing RAM permission: {action}" in out or (action.startswith("oss:") and "AccessDenied" in out)
        assert named, f"{scenario}: the log does not name {action}"
        emulator.admin.advance(600)                       # let any stop/start in flight settle
        changed = _unchanged(found, _fleet_state(emulator), kept)
        assert not changed, f"{scenario}: without {action} the fleet was left changed: {changed}"


def test_every_dag_has_a_removal_scenario():
    assert sorted({dag for dag, _ in SCENARIOS.values()}) == dag_ids()
