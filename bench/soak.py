"""Fault soak of ``ecs_cross_region_backup`` (issue 8): ``python -m bench.soak [--size 1000]``.

One emulator, one real Airflow 3.3 deployment (:mod:`deploy.airflow_cluster`), one fleet (200 instances by
default, 5% of them Stopped before the run), ``consistency=stop``, and faults on every ECS call:

* 5% ``Throttling.User``, 2% 5xx (half 500, half 503), 1% ``drop_after`` (the call is executed, the answer is
  lost), 1% of the instances (drawn with the fault seed) whose image ends ``CreateFailed``, 1% of CopyImage
  ending ``CreateFailed`` (a rate);
* while ``create_images`` runs (once half of the CreateImage calls were made), the scheduler is killed with
  SIGKILL together with every process under it (LocalExecutor workers, the running task), then started again
  the way :class:`~deploy.airflow_cluster.AirflowCluster` starts it (``--kill triggerer``: the triggerer,
  while ``create_images`` is deferred).

Then, with the faults removed, the same run is cleared and runs again (same run id, same logical date, so the
same run key ``ops:run-key``). Airflow 3.3 keeps ``(dag_id, logical_date)`` unique, so a second run *with the
same logical date* can only be this: a clear of the first (``POST /api/v2/dags/{dag}/dagRuns/{run}/clear``,
``only_failed=false``: every task runs again, as "Clear" on the run in the UI).

After each run the soak reads the run's report (XCom ``report`` of the ``report`` task) and the emulator's
state and checks: every selected instance accounted for in the report (a row per destination), no duplicate
image or copy (more than one not-failed image per instance and run key, or copy per instance, run key and
destination), every instance in its power state from before the run, no ``ops:paused-by`` tag left and,
after the re-run, one Available image and one complete copy per destination for every instance.

The pure functions (fault config, fleet spec, checks, tables) are covered by tests/bench/test_soak_smoke.py;
everything that starts processes is in :func:`run_soak`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aliyun_ops.logic import pause, provenance
from deploy.rest import AirflowRest

from .backup_scale import Machine, generate_fleet, ideal_times
from .paths import portable, portable_text

DAG_ID = "ecs_cross_region_backup"
SELECTION_TAGS = {"backup": "daily"}
# the DAG's own tag names (pure modules, no Airflow import)
PAUSED_BY, PAUSE_TAG_KEYS = pause.PAUSED_BY, pause.PAUSE_TAG_KEYS
RUN_KEY, DAG_TAG, SOURCE_INSTANCE = provenance.RUN_KEY, provenance.DAG_ID, provenance.SOURCE_INSTANCE
COPY_STATUS, COPY_COMPLETE = provenance.COPY_STATUS, provenance.COPY_COMPLETE
FAILED_IMAGE = frozenset({"CreateFailed", "UnAvailable"})
TRANSITIONS = frozenset({"Pending", "Starting", "Stopping"})
RESULTS_DIR = Path(__file__).resolve().parent / "results" / "soak"


# -- faults -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaultPlan:
    """Fractions of ECS calls (``throttle``, ``server_error``, ``drop_after``) and of operations that fail."""

    throttle: float = 0.05
    server_error: float = 0.02
    drop_after: float = 0.01
    image_create_fail: float = 0.01
    copy_fail: float = 0.01
    retry_after_ms: int = 1000
    seed: int = 8


def fault_config(plan: FaultPlan, action: str = "ecs:*", failing_instances: Sequence[str] | None = None) -> dict:
    """The emulator fault config (``PUT /_emulator/faults``) for ``plan``.

    The emulator tries rules in order and the first that fires decides the call, so each rate is made
    conditional on the earlier rules not firing: the unconditional fractions are then the plan's.
    ``failing_instances`` (see :func:`pick_failing`): their CreateImage ends CreateFailed, instead of a
    random ``image_create_fail`` rate that may well fail none (0.99^200 = 13%).

    >>> [r["kind"] for r in fault_config(FaultPlan())["rules"]]
    ['throttle', 'error', 'error', 'drop_after']
    """
    wanted: list[tuple[dict, float]] = []
    if plan.throttle:
        wanted.append(({"kind": "throttle", "retry_after_ms": plan.retry_after_ms}, plan.throttle))
    if plan.server_error:
        wanted.append(({"kind": "error", "status": 500}, plan.server_error / 2))
        wanted.append(({"kind": "error", "status": 503}, plan.server_error / 2))
    if plan.drop_after:
        wanted.append(({"kind": "drop_after"}, plan.drop_after))
    rules, taken = [], 0.0
    for rule, rate in wanted:
        if taken + rate > 1.0:
            raise ValueError("fault rates add up to more than 1")
        rules.append({"action": action, **rule, "rate": round(rate / (1.0 - taken), 6) if taken < 1 else 0.0})
        taken += rate
    cfg: dict = {"seed": plan.seed, "rules": rules}
    if failing_instances:
        cfg["image_create_fail"] = {"instance_ids": list(failing_instances)}
    elif plan.image_create_fail:
        cfg["image_create_fail"] = {"rate": plan.image_create_fail}
    if plan.copy_fail:
        cfg["copy_fail"] = {"rate": plan.copy_fail}
    return cfg


def fault_counts(calls: Iterable[Mapping]) -> dict:
    """Faults that fired, from the emulator's call log (``GET /_emulator/calls`` ``recent`` entries).

    >>> fault_counts([{"action": "ecs:StopInstances", "status": 0, "code": "ConnectionDroppedAfter"},
    ...               {"action": "ecs:DescribeImages", "status": 400, "code": "Throttling.User"}])["drop_after"]
    1
    """
    out = {"calls": 0, "throttle": 0, "server_error": 0, "drop_after": 0, "drop": 0, "other_errors": 0,
           "server_error_codes": Counter(), "drop_after_by_action": Counter(), "other_error_codes": Counter()}
    for c in calls:
        out["calls"] += 1
        code, status = c.get("code") or "", int(c.get("status") or 0)
        if code == "ConnectionDroppedAfter":
            out["drop_after"] += 1
            out["drop_after_by_action"][c.get("action", "?")] += 1
        elif code == "ConnectionDropped":
            out["drop"] += 1
        elif code.startswith("Throttling"):
            out["throttle"] += 1
        elif status >= 500:
            out["server_error"] += 1
            out["server_error_codes"][f"{status} {code}"] += 1
        elif status >= 400:
            out["other_errors"] += 1
            out["other_error_codes"][f"{c.get('action', '?')} {code}"] += 1
    for key in ("server_error_codes", "drop_after_by_action", "other_error_codes"):
        out[key] = dict(sorted(out[key].items()))
    return out


def pick_failing(instance_ids: Iterable[str], fraction: float, seed: int) -> list[str]:
    """``round(n * fraction)`` instances (at least 1 when fraction > 0), drawn with ``seed``.

    >>> len(pick_failing([f"i-{k}" for k in range(200)], 0.01, 8))
    2
    """
    import random

    ids = sorted(instance_ids)
    k = min(len(ids), max(1 if fraction > 0 else 0, round(len(ids) * fraction)))
    return sorted(random.Random(seed).sample(ids, k))


def image_fault_counts(images: Iterable[Mapping], dag_id: str = DAG_ID) -> dict:
    """Images and copies of ``dag_id`` the emulator decided to fail (``_fail``) or that ended CreateFailed."""
    out = {"image_create_failed": 0, "copy_failed": 0}
    for img in images:
        if _tags(img.get("Tags")).get(DAG_TAG) != dag_id:
            continue
        if img.get("_fail") or img.get("Status") in FAILED_IMAGE:
            out["copy_failed" if img.get("IsCopied") else "image_create_failed"] += 1
    return out


# -- fleet --------------------------------------------------------------------------------------
def stopped_indexes(n: int, fraction: float) -> set[int]:
    """Evenly spread indexes of the machines that are Stopped before the run (``round(n * fraction)``).

    >>> sorted(stopped_indexes(40, 0.05))
    [19, 39]
    """
    k = round(n * fraction)
    if k <= 0:
        return set()
    step = n / k
    return {min(n - 1, int(step * (j + 1)) - 1) for j in range(k)}


def soak_fleet_spec(machines: Sequence[Machine], tags: Mapping[str, str], stopped: set[int]) -> dict:
    """The emulator fleet spec, like :func:`bench.backup_scale.fleet_spec` but with Stopped machines."""
    groups: dict[tuple[Machine, str], int] = {}
    for i, mach in enumerate(machines):
        key = (mach, "Stopped" if i in stopped else "Running")
        groups[key] = groups.get(key, 0) + 1
    entries = []
    for k, ((mach, status), count) in enumerate(sorted(groups.items(), key=lambda kv: (kv[0][0].region,
                                                                                         kv[0][0].size, kv[0][1]))):
        entries.append({"region": mach.region, "name": f"soak{k}-{{n}}", "count": count, "status": status,
                        "tags": dict(tags), "system_disk_size": mach.system_disk,
                        "data_disks": [{"size": s} for s in mach.data_disks]})
    return {"instances": entries}


# -- checks (plain data in, plain data out) ---------------------------------------------------------
def _tags(raw) -> dict[str, str]:
    """Tags as a dict, from the emulator's records (a dict) or an API answer (``{"Tag": [...]}``/a list)."""
    return provenance.tags_from_api(raw)


def accounted(selected: Iterable[str], rows: Iterable[Mapping], destinations: Sequence[str]) -> dict:
    """Is every selected instance in the report, with a row for each destination?

    >>> accounted(["i-1", "i-2"], [{"instance_id": "i-1", "destination_region": "d"}], ["d"])["pct"]
    50.0
    """
    want = set(selected)
    dests = set(destinations)
    seen: dict[str, set[str]] = {}
    for r in rows:
        seen.setdefault(r["instance_id"], set()).add(r.get("destination_region") or "")
    full = {i for i in want if dests <= seen.get(i, set())}
    return {"instances": len(want), "accounted": len(full),
            "pct": round(100.0 * len(full) / len(want), 2) if want else 100.0,
            "missing": sorted(want - set(seen)), "partial": sorted(i for i in want if i in seen and i not in full),
            "unknown": sorted(set(seen) - want)}


def duplicates(images: Iterable[Mapping], dag_id: str = DAG_ID) -> dict:
    """Images of ``dag_id`` grouped by run key and source instance (and destination for copies).

    A duplicate is a second *not failed* image for the same key: one source image per instance per run
    key, one copy per (instance, destination) per run key. CreateFailed leftovers are counted apart.
    """
    sources: dict[tuple[str, str], list[str]] = {}
    copies: dict[tuple[str, str, str], list[str]] = {}
    for img in images:
        tags = _tags(img.get("Tags"))
        if tags.get(DAG_TAG) != dag_id:
            continue
        rk, iid = tags.get(RUN_KEY, ""), tags.get(SOURCE_INSTANCE, "")
        if img.get("IsCopied"):
            copies.setdefault((rk, iid, img.get("RegionId", "")), []).append(img.get("Status", ""))
        else:
            sources.setdefault((rk, iid), []).append(img.get("Status", ""))

    def live(statuses: list[str]) -> int:
        return sum(1 for s in statuses if s not in FAILED_IMAGE)

    dup_sources = {"/".join(k): v for k, v in sorted(sources.items()) if live(v) > 1}
    dup_copies = {"/".join(k): v for k, v in sorted(copies.items()) if live(v) > 1}
    return {"run_keys": sorted({k[0] for k in sources} | {k[0] for k in copies}),
            "source_images": sum(len(v) for v in sources.values()), "copies": sum(len(v) for v in copies.values()),
            "duplicate_sources": len(dup_sources), "duplicate_copies": len(dup_copies),
            "duplicates": len(dup_sources) + len(dup_copies),
            "failed_sources_left": sum(len(v) - live(v) for v in sources.values()),
            "failed_copies_left": sum(len(v) - live(v) for v in copies.values()),
            "examples": dict(list({**dup_sources, **dup_copies}.items())[:10])}


def power_check(before: Mapping[str, str], instances: Mapping[str, Mapping]) -> dict:
    """Compare each instance's status with its status before the run; find pause tags left behind.

    ``before``: ``{instance_id: status}``; ``instances``: the emulator's ``ecs.instances`` table.

    >>> power_check({"i-1": "Running"}, {"i-1": {"Status": "Stopped", "Tags": {"ops:paused-by": "k"}}})["left_stopped"]
    ['i-1']
    """
    left_stopped, changed, moving, tagged, pause_tags, gone = [], [], [], [], [], []
    for iid, was in sorted(before.items()):
        rec = instances.get(iid)
        if rec is None:
            gone.append(iid)
            continue
        now, tags = rec.get("Status"), _tags(rec.get("Tags"))
        if was == "Running" and now in ("Stopped", "Stopping"):
            left_stopped.append(iid)
        if now in TRANSITIONS:
            moving.append(iid)
        if now != was:
            changed.append(iid)
        if PAUSED_BY in tags:
            tagged.append(iid)
        if any(k in PAUSE_TAG_KEYS for k in tags):
            pause_tags.append(iid)
    return {"instances": len(before), "left_stopped": left_stopped, "not_in_original_state": changed,
            "in_transition": moving, "tagged_paused_by": tagged, "any_pause_tag": pause_tags, "gone": gone,
            "before": dict(Counter(before.values())),
            "after": dict(Counter((instances.get(i) or {}).get("Status", "gone") for i in before))}


def completeness(images: Iterable[Mapping], instance_ids: Iterable[str], destinations: Sequence[str],
                 dag_id: str = DAG_ID, run_key: str | None = None) -> dict:
    """Per instance: exactly one Available source image and, per destination, exactly one Available copy
    tagged ``ops:copy-status=complete`` (failed leftovers aside), for ``run_key`` if given."""
    sources: dict[str, list[Mapping]] = {}
    copies: dict[tuple[str, str], list[Mapping]] = {}
    for img in images:
        tags = _tags(img.get("Tags"))
        if tags.get(DAG_TAG) != dag_id or (run_key is not None and tags.get(RUN_KEY) != run_key):
            continue
        if img.get("Status") in FAILED_IMAGE:
            continue
        iid = tags.get(SOURCE_INSTANCE, "")
        if img.get("IsCopied"):
            copies.setdefault((iid, img.get("RegionId", "")), []).append(img)
        else:
            sources.setdefault(iid, []).append(img)
    ids = sorted(set(instance_ids))
    incomplete: dict[str, str] = {}
    for iid in ids:
        src = sources.get(iid, [])
        why = []
        if len(src) != 1 or src[0].get("Status") != "Available":
            why.append(f"source images {[s.get('Status') for s in src]}")
        for dest in destinations:
            cps = copies.get((iid, dest), [])
            if len(cps) != 1 or cps[0].get("Status") != "Available" or \
                    _tags(cps[0].get("Tags")).get(COPY_STATUS) != COPY_COMPLETE:
                why.append(f"{dest}: copies {[(c.get('Status'), _tags(c.get('Tags')).get(COPY_STATUS)) for c in cps]}")
        if why:
            incomplete[iid] = "; ".join(why)
    done = len(ids) - len(incomplete)
    return {"instances": len(ids), "complete": done, "pct": round(100.0 * done / len(ids), 2) if ids else 100.0,
            "incomplete": dict(list(incomplete.items())[:20]), "incomplete_count": len(incomplete)}


def _reason_class(reason: str) -> str:
    """A failure reason without ids and numbers, to group rows: ``image: ... i-abc ...`` -> ``image: ... i-* ...``."""
    import re

    text = re.sub(r"\b(i|m|s|d|r)-[0-9a-z]{6,}\b", r"\1-*", reason or "")
    text = re.sub(r"RequestId[=: ]\S+", "RequestId=*", text)
    text = re.sub(r"\d+(\.\d+)?", "N", text)
    return text[:140]


def report_summary(report: Mapping | None) -> dict:
    """Outcome, counts, downtime and grouped failure reasons of one run report (XCom ``report``)."""
    if not report:
        return {"present": False}
    rows = report.get("rows") or []
    paused = [r["paused_seconds"] for r in rows if isinstance(r.get("paused_seconds"), int | float)]
    per_instance = {}
    for r in rows:
        if isinstance(r.get("paused_seconds"), int | float):
            per_instance[r["instance_id"]] = r["paused_seconds"]
    reasons = Counter(_reason_class(r.get("reason", "")) for r in rows if r.get("status") != "success")
    ordered = sorted(per_instance.values())
    return {"present": True, "outcome": report.get("outcome"), "counts": report.get("counts"), "rows": len(rows),
            "instances_paused": len(per_instance),
            "max_paused_seconds": max(paused) if paused else None,
            "median_paused_seconds": ordered[len(ordered) // 2] if ordered else None,
            "failed_reasons": dict(reasons.most_common()),
            "meta_notes": {k: v for k, v in (report.get("meta") or {}).items()
                           if k.startswith(("paused by", "left paused"))}}


def report_vs_cloud(rows: Iterable[Mapping], images: Mapping[str, Mapping]) -> list[str]:
    """Rows the report calls ``success`` whose image or copy is not Available in the emulator."""
    bad = []
    for r in rows:
        if r.get("status") != "success":
            continue
        for key in ("image_id", "copy_image_id"):
            img = images.get(r.get(key) or "")
            if img is None or img.get("Status") != "Available":
                bad.append(f"{r['instance_id']}->{r.get('destination_region')}: {key} {r.get(key)!r} is "
                           f"{(img or {}).get('Status', 'missing')}")
    return bad


def report_understates(rows: Iterable[Mapping], images: Iterable[Mapping], dag_id: str = DAG_ID) -> list[str]:
    """Rows the report calls failed although the cloud holds an Available copy of that instance in that
    destination, made by ``dag_id`` (a task that failed as a whole loses its per-item results)."""
    have = set()
    for img in images:
        tags = _tags(img.get("Tags"))
        if img.get("IsCopied") and img.get("Status") == "Available" and tags.get(DAG_TAG) == dag_id:
            have.add((tags.get(SOURCE_INSTANCE, ""), img.get("RegionId", "")))
    return [f"{r['instance_id']}->{r.get('destination_region')}" for r in rows
            if r.get("status") != "success" and (r["instance_id"], r.get("destination_region")) in have]


def verdicts(result: Mapping) -> dict[str, bool]:
    """The pass/fail lines of a soak (issue 8's "done when"), from a :func:`run_soak` result."""
    first, second = result.get("first_run") or {}, result.get("rerun") or {}

    def ok(phase: Mapping, key: str, sub: str) -> bool:
        return bool(phase) and not (phase.get(key) or {}).get(sub, ["?"])

    return {
        "first run finished": first.get("state") in ("success", "failed"),
        "first run: 100% accounted for": (first.get("accounted") or {}).get("pct") == 100.0,
        "first run: 0 duplicates": (first.get("duplicates") or {}).get("duplicates") == 0,
        "first run: 0 left stopped": ok(first, "power", "left_stopped"),
        "first run: all in original power state": ok(first, "power", "not_in_original_state"),
        "first run: 0 tagged ops:paused-by": ok(first, "power", "tagged_paused_by"),
        "re-run succeeded": second.get("state") == "success",
        "re-run: 100% accounted for": (second.get("accounted") or {}).get("pct") == 100.0,
        "re-run: 0 duplicates": (second.get("duplicates") or {}).get("duplicates") == 0,
        "re-run: 0 left stopped": ok(second, "power", "left_stopped"),
        "re-run: all in original power state": ok(second, "power", "not_in_original_state"),
        "re-run: 0 tagged ops:paused-by": ok(second, "power", "tagged_paused_by"),
        "re-run: every instance complete": (second.get("complete") or {}).get("pct") == 100.0,
    }


def figures(result: Mapping) -> list[tuple[str, str]]:
    """The soak's figures as (name, value) lines: printed, and the source of the README table."""
    first, second = result.get("first_run") or {}, result.get("rerun") or {}
    f = first.get("faults") or {}
    imgf = first.get("image_faults") or {}
    kill = first.get("kill") or {}

    def rep(phase: Mapping) -> str:
        s = phase.get("report") or {}
        if not s.get("present"):
            return "no report"
        c = s.get("counts") or {}
        return f"{s.get('outcome')} ({c.get('success', 0)} ok / {c.get('failed', 0)} failed / {c.get('skipped', 0)} skipped rows)"

    def n(phase: Mapping, key: str, sub: str) -> str:
        v = (phase.get(key) or {}).get(sub)
        return "–" if v is None else str(len(v) if isinstance(v, list) else v)

    def paused(phase: Mapping) -> str:
        s = phase.get("report") or {}
        return "–" if s.get("max_paused_seconds") is None else f"{s['max_paused_seconds']:.0f}"

    killed = (f"{kill.get('component')} ({len(kill.get('pids') or [])} processes) at +{kill.get('at_s', 0):.0f} s, "
              f"{kill.get('task_state')}, {kill.get('create_calls')}/{result.get('instances')} CreateImage calls; "
              f"restarted +{kill.get('restarted_after_s', 0):.0f} s" if kill.get("done") else "none")
    return [
        ("instances (Stopped before the run)", f"{result.get('instances')} ({result.get('stopped_before', 0)})"),
        ("faults injected (first run)",
         f"{f.get('throttle', 0)} throttles, {f.get('server_error', 0)} 5xx, {f.get('drop_after', 0)} drop_after, "
         f"{imgf.get('image_create_failed', 0)} CreateFailed images, {imgf.get('copy_failed', 0)} failed copies "
         f"(of {f.get('calls', 0)} ECS calls)"),
        ("process killed", killed),
        ("run state: first run / re-run", f"{first.get('state')} / {second.get('state')}"),
        ("Airflow (scheduler log, first run): retries / state changed externally / orphans reset",
         " / ".join(str(((first.get("scheduler_log") or {}).get(k) or {}).get("count", "–"))
                    for k in ("marked up_for_retry", "task state changed externally", "orphaned tasks reset"))),
        ("highest try number (first run): create_images / copy_images",
         f"{(first.get('task_tries') or {}).get('create_images', '–')} / "
         f"{(first.get('task_tries') or {}).get('copy_images', '–')}"),
        ("report: first run", rep(first)),
        ("report: re-run", rep(second)),
        ("report rows failed although the copy is Available: first run / re-run",
         f"{first.get('report_failed_but_copy_exists', '–')} / {second.get('report_failed_but_copy_exists', '–')}"),
        ("accounted for: first run / re-run", f"{n(first, 'accounted', 'pct')}% / {n(second, 'accounted', 'pct')}%"),
        ("duplicates: first run / re-run", f"{n(first, 'duplicates', 'duplicates')} / "
                                           f"{n(second, 'duplicates', 'duplicates')}"),
        ("left stopped: first run / re-run", f"{n(first, 'power', 'left_stopped')} / {n(second, 'power', 'left_stopped')}"),
        ("not in original power state: first / re-run",
         f"{n(first, 'power', 'not_in_original_state')} / {n(second, 'power', 'not_in_original_state')}"),
        ("tagged ops:paused-by: first run / re-run",
         f"{n(first, 'power', 'tagged_paused_by')} / {n(second, 'power', 'tagged_paused_by')}"),
        ("complete after re-run (1 Available image + 1 complete copy per destination)",
         f"{n(second, 'complete', 'complete')}/{n(second, 'complete', 'instances')}"),
        ("max paused s (real): first run / re-run", f"{paused(first)} / {paused(second)}"),
        ("wall s: first run / re-run", f"{first.get('wall_s', 0):.0f} / {second.get('wall_s', 0):.0f}"),
    ]


def markdown_table(results: Sequence[Mapping]) -> str:
    """One column per soak result (size), one line per figure."""
    cols = [figures(r) for r in results]
    head = "| figure | " + " | ".join(f"{r.get('instances')} instances" for r in results) + " |"
    lines = [head, "|---|" + "---|" * len(results)]
    for k, (name, _) in enumerate(cols[0] if cols else []):
        lines.append(f"| {name} | " + " | ".join(c[k][1] for c in cols) + " |")
    return "\n".join(lines)


# -- the run (processes, REST, emulator) ---------------------------------------------------------------
@dataclass
class SoakOptions:
    size: int = 200
    sources: Sequence[str] = ("cn-hangzhou", "cn-beijing", "cn-shenzhen", "cn-qingdao")
    destinations: Sequence[str] = ("cn-shanghai", "ap-southeast-1")
    stopped_fraction: float = 0.05
    faults: FaultPlan = field(default_factory=FaultPlan)
    kill: str = "scheduler"            # scheduler | triggerer | none
    kill_fraction: float = 0.5         # scheduler: kill once this share of CreateImage calls was made
    restart_delay: float = 5.0         # real seconds between the kill and the restart
    max_errors: str = "10%"
    concurrency: int | str | None = None  # None: the DAG's default
    poll_interval: int = 1
    ideal_seconds: float = 240.0       # time scale: the fault-free ideal run takes about this many real seconds
    time_scale: float | None = None
    run_timeout: float = 3600.0        # real seconds per run
    parallelism: int = 8
    code: str = "head"                 # head: dags/plugins/include of git HEAD; worktree: the live files
    out_dir: str = str(RESULTS_DIR)
    work_dir: str | None = None


def _code_snapshot(mode: str, dest: Path) -> tuple[Path, str]:
    """dags/, plugins/, include/ to run: git HEAD extracted to ``dest`` (default), or the live tree."""
    root = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                            text=True).stdout.strip()
    if mode == "worktree":
        dirty = subprocess.run(["git", "status", "--porcelain", "dags", "plugins", "include"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return root, f"{commit} (worktree{', with uncommitted changes' if dirty else ''})"
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", "HEAD", "dags", "plugins", "include"], cwd=root,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest, commit


def _kill_tree(proc) -> list[dict]:
    """SIGKILL a component and every process under it; returns what was killed."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    killed = []
    for p in tree:
        with contextlib.suppress(psutil.Error):
            killed.append({"pid": p.pid, "cmd": " ".join(p.cmdline())[:160] or p.name()})
            p.send_signal(signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    return killed


class CallCollector:
    """Collects the emulator's call log during a run (its ring keeps 20,000 calls; merged by request id)."""

    def __init__(self, emu) -> None:
        self.emu = emu
        self.seen: dict[tuple, dict] = {}
        self.last = 0.0

    def poll(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.last < 5:
            return
        self.last = time.monotonic()
        with contextlib.suppress(Exception):
            for c in self.emu.admin.calls(limit=20000)["recent"]:
                self.seen[(c.get("request_id"), c.get("time"), c.get("action"))] = c

    def ecs(self) -> list[dict]:
        return [c for c in self.seen.values() if str(c.get("action", "")).startswith("ecs:")]

    def total_counted(self) -> int:
        with contextlib.suppress(Exception):
            return sum(v["calls"] for k, v in self.emu.admin.calls(limit=1)["counters"].items() if k.startswith("ecs:"))
        return -1


def _watch(cluster, emu, run_id: str, opts: SoakOptions, log, kill: dict | None, calls: CallCollector) -> dict:
    """Follow one run to its end; kill and restart a component on the way if ``kill`` says so."""
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    deadline = started + opts.run_timeout
    timeline: dict[str, list[tuple[float, str]]] = {}  # per task: (seconds since trigger, state) at each change
    state = None
    dead_since: dict[str, float] = {}
    while time.monotonic() < deadline:
        now = time.monotonic()
        with contextlib.suppress(Exception):
            state = cluster.run_state(DAG_ID, run_id)
        tasks: dict[str, str] = {}
        with contextlib.suppress(Exception):
            for (task_id, _, _), st in cluster.task_states(DAG_ID, run_id).items():
                tasks[task_id] = st
                seen = timeline.setdefault(task_id, [])
                if not seen or seen[-1][1] != st:
                    seen.append((round(now - started, 1), st))
        calls.poll()
        if kill is not None and not kill.get("done"):
            create = tasks.get("create_images")
            made = 0
            with contextlib.suppress(Exception):
                made = emu.admin.calls(limit=1)["counters"].get("ecs:CreateImage", {}).get("calls", 0)
            # create_images submits builds in a sliding window (concurrency) and defers between windows:
            # the scheduler dies while the task runs, the triggerer while it is deferred, once kill_fraction
            # of the CreateImage calls were made (at 90% whatever the task's state, rather than never)
            wanted = "running" if kill["component"] == "scheduler" else "deferred"
            if (create == wanted and made >= opts.kill_fraction * opts.size) or \
                    (create in ("running", "deferred") and made >= 0.9 * opts.size):
                kill.update(done=True, at_s=round(now - started, 1), task_state=create, create_calls=made,
                            wall_clock=datetime.now(UTC).isoformat(timespec="seconds"))
                kill["pids"] = _kill_tree(cluster.procs[kill["component"]])
                log(f"  KILLED {kill['component']} (SIGKILL, {len(kill['pids'])} processes) at "
                    f"+{kill['at_s']:.0f}s: create_images {create}, {made} CreateImage calls made")
                time.sleep(opts.restart_delay)
                cluster.start_component(kill["component"], note=f"soak: {kill['component']} restarted after SIGKILL")
                kill["restarted_after_s"] = round(time.monotonic() - started, 1)
                log(f"  restarted {kill['component']} at +{kill['restarted_after_s']:.0f}s")
        if state in ("success", "failed"):
            break
        for name, proc in cluster.procs.items():
            if proc.poll() is not None:
                dead_since.setdefault(name, now)
                if now - dead_since[name] > 30:
                    raise RuntimeError(f"Airflow component {name} died; logs in {cluster.logs}")
        time.sleep(0.25)
    calls.poll(force=True)
    return {"state": state, "wall_s": round(time.monotonic() - started, 1), "started_at": started_at,
            "task_timeline": timeline}


LOG_EVENTS = {  # scheduler log lines worth reporting: what Airflow did to the run's tasks
    "task state changed externally": "but the task instance's state attribute is",
    "orphaned tasks reset": "orphaned TaskInstances",
    "marked up_for_retry": "Marking task as UP_FOR_RETRY",
    "marked failed": "Marking task as FAILED",
    "tasks without heartbeat": "without heartbeat",
}


def log_events(lines: Iterable[str], since: str = "") -> dict:
    """Count (and keep the first lines of) :data:`LOG_EVENTS` in a scheduler log, from ISO time ``since`` on.

    >>> log_events(["2026-01-01T00:00:01Z [info] Marking task as UP_FOR_RETRY. dag_id=d"])["marked up_for_retry"]["count"]
    1
    """
    out = {name: {"count": 0, "first": []} for name in LOG_EVENTS}
    for line in lines:
        if since and line[:19].replace(" ", "T") < since[:19]:
            continue
        for name, needle in LOG_EVENTS.items():
            if needle in line:
                out[name]["count"] += 1
                if len(out[name]["first"]) < 3:
                    out[name]["first"].append(line.strip()[:400])
    return out


def _read_report(rest: AirflowRest, cluster, run_id: str) -> dict | None:
    """The run's report: XCom ``report`` of task ``report``; the artifact JSON if the XCom is missing."""
    try:
        entry = rest.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/report/xcomEntries/report")
        value = entry.get("value")
        if isinstance(value, str):
            value = json.loads(value)
        if isinstance(value, dict) and "rows" in value:
            return value
    except Exception:
        pass
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    path = cluster.home / "reports" / DAG_ID / f"{safe}.json"
    if path.exists():
        data = json.loads(path.read_text())
        data["_source"] = "artifact file (no XCom)"
        return data
    return None


def _phase_result(name: str, watched: dict, report: dict | None, emu, before: Mapping[str, str],
                  selected: Sequence[str], opts: SoakOptions, calls: CallCollector, cluster, run_id: str) -> dict:
    instances = emu.admin.table("ecs.instances")
    images = emu.admin.table("ecs.images")
    rows = (report or {}).get("rows") or []
    dup = duplicates(images.values())
    tasks = cluster.task_rows(DAG_ID, run_id)
    task_states = {}
    for t in tasks:
        if not t.get("history"):
            task_states[t["task_id"]] = t["state"]
    tries: dict[str, int] = {}  # the highest try number seen (a clear or a retry raises it)
    for t in tasks:
        with contextlib.suppress(TypeError, ValueError):
            tries[t["task_id"]] = max(tries.get(t["task_id"], 0), int(t["try_number"]))
    out = {
        "phase": name, "run_id": run_id, **watched,
        "tasks": task_states, "task_tries": tries,
        "report": report_summary(report),
        "report_failed_rows": [r for r in rows if r.get("status") != "success"][:200],
        "report_vs_cloud": report_vs_cloud(rows, images)[:50],
        "report_failed_but_copy_exists": len(report_understates(rows, images.values())),
        "accounted": accounted(selected, rows, opts.destinations),
        "duplicates": dup,
        "power": power_check(before, instances),
        "complete": completeness(images.values(), selected, opts.destinations,
                                 run_key=dup["run_keys"][0] if len(dup["run_keys"]) == 1 else None),
        "faults": fault_counts(calls.ecs()),
        "calls_in_log": len(calls.ecs()), "calls_counted": calls.total_counted(),
        "image_faults": image_fault_counts(images.values()),
    }
    with contextlib.suppress(OSError):
        text = (cluster.logs / "scheduler.log").read_text(errors="replace").splitlines()
        out["scheduler_log"] = log_events(text, since=watched.get("started_at", ""))
    return out


def run_soak(opts: SoakOptions, log=print) -> dict:
    """The whole soak; returns the result dict (also written under ``opts.out_dir``)."""
    import tempfile

    from deploy.airflow_cluster import AirflowCluster
    from emulator.control import EmulatorProcess

    from .backup_scale import _scale_for

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)  # darabonba ignores NO_PROXY
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = Path(opts.work_dir or tempfile.mkdtemp(prefix=f"soak-{opts.size}-{stamp}-"))
    work.mkdir(parents=True, exist_ok=True)
    code_dir, commit = _code_snapshot(opts.code, work / "src")
    result: dict = {"instances": opts.size, "started": stamp, "code": commit, "work_dir": str(work),
                    "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opts).items()}}
    machines = generate_fleet(opts.size, list(opts.sources))
    stopped = stopped_indexes(opts.size, opts.stopped_fraction)
    ideal = ideal_times([(m.region, m.size) for m in machines], list(opts.destinations))
    scale = opts.time_scale or _scale_for(ideal.pipelined, opts.ideal_seconds)
    result.update(time_scale=scale, ideal_s=round(ideal.pipelined / scale, 1), stopped_before=len(stopped))
    log(f"soak: {opts.size} instances ({len(stopped)} Stopped), time scale {scale:g} (fault-free ideal "
        f"{ideal.pipelined / scale:.0f}s real), code {commit}, work dir {work}")
    t0 = time.monotonic()
    with EmulatorProcess(time_scale=scale, data_dir=work / "emulator") as emu:
        emu.admin.reset()
        emu.admin.request("POST", "timings", {"image_quota": 100000})
        emu.admin.set_faults({})
        emu.admin.load_fleet(soak_fleet_spec(machines, SELECTION_TAGS, stopped))
        before = {i: rec["Status"] for i, rec in emu.admin.table("ecs.instances").items()
                  if _tags(rec.get("Tags")).get("backup") == "daily"}
        selected = sorted(before)
        result["before"] = dict(Counter(before.values()))
        connection = {"conn_type": "aliyun", "extra": {"access_key_id": emu.access_key_id,
                                                       "access_key_secret": emu.access_key_secret,
                                                       "region": opts.sources[0], "endpoint": emu.base_url}}
        env = {"PYTHONPATH": os.pathsep.join([str(code_dir), str(code_dir / "plugins")])}
        cluster = AirflowCluster(work / "airflow", connection, parallelism=opts.parallelism,
                                 extra_env=env, template_dir=work / "_airflow_template",
                                 dags_path=code_dir / "dags")
        result["airflow_logs"] = {"components": str(cluster.logs), "tasks": str(cluster.home / "logs")}
        try:
            cluster.prepare_db()
            up = cluster.start()
            log(f"  Airflow up in {up:.0f}s ({cluster.backend}); logs {cluster.logs}, task logs {cluster.home / 'logs'}")
            rest = AirflowRest(f"http://127.0.0.1:{cluster.port}")
            emu.admin.clock(time_scale=scale, freeze=False)
            failing = pick_failing(selected, opts.faults.image_create_fail, opts.faults.seed)
            cfg = fault_config(opts.faults, failing_instances=failing)
            emu.admin.set_faults(cfg)
            result["fault_config"] = cfg
            emu.admin.clear_calls()
            logical = (datetime.now(UTC) - timedelta(days=1)).replace(hour=18, minute=0, second=0, microsecond=0)
            run_id = f"soak-{opts.size}-{stamp}"
            conf = {"source_regions": list(opts.sources), "destination_regions": list(opts.destinations),
                    "tags": SELECTION_TAGS, "consistency": "stop", "max_errors": opts.max_errors,
                    "poll_interval": opts.poll_interval, "timeout_minutes": max(5, int(opts.run_timeout / 60))}
            if opts.concurrency is not None:
                conf["concurrency"] = opts.concurrency
            result.update(run_id=run_id, logical_date=logical.isoformat(), conf=conf)
            rest.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                      {"dag_run_id": run_id, "logical_date": logical.isoformat(), "conf": conf})
            log(f"  first run {run_id} (logical date {logical.isoformat()}) triggered, faults on")
            calls = CallCollector(emu)
            kill = None if opts.kill == "none" else {"component": opts.kill, "done": False}
            watched = _watch(cluster, emu, run_id, opts, log, kill, calls)
            watched["kill"] = kill or {"component": "none"}
            report = _read_report(rest, cluster, run_id)
            result["first_run"] = _phase_result("first run", watched, report, emu, before, selected, opts, calls,
                                                cluster, run_id)
            log(f"  first run {watched['state']} in {watched['wall_s']:.0f}s")
            _save(result, opts)

            # the re-run: faults off, the same run cleared (same run id, logical date and run key)
            emu.admin.set_faults({})
            emu.admin.clear_calls()
            calls = CallCollector(emu)
            rest.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/clear",
                      {"dry_run": False, "only_failed": False, "note": "soak: re-run of the same logical date"})
            log("  re-run: faults removed, run cleared (POST .../dagRuns/{run}/clear, only_failed=false)")
            watched = _watch(cluster, emu, run_id, opts, log, None, calls)
            report = _read_report(rest, cluster, run_id)
            result["rerun"] = _phase_result("re-run", watched, report, emu, before, selected, opts, calls, cluster,
                                            run_id)
            log(f"  re-run {watched['state']} in {watched['wall_s']:.0f}s")
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            log(f"  ERROR: {result['error'][:500]}")
        finally:
            cluster.stop()
    result["wall_s"] = round(time.monotonic() - t0, 1)
    result["verdicts"] = verdicts(result)
    _save(result, opts)
    return result


def _save(result: Mapping, opts: SoakOptions) -> None:
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(portable(result), indent=2, default=str)
    (out / f"soak-{result['instances']}-{result['started']}.json").write_text(text)
    (out / f"soak-{result['instances']}-latest.json").write_text(text)


def _strs(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    d, fd = SoakOptions(), FaultPlan()
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=d.size, help=f"instances (default {d.size}; 1000 for the full run)")
    ap.add_argument("--source-regions", type=_strs, default=list(d.sources))
    ap.add_argument("--destination-regions", type=_strs, default=list(d.destinations))
    ap.add_argument("--stopped-fraction", type=float, default=d.stopped_fraction,
                    help="share of the fleet Stopped before the run (must stay Stopped)")
    ap.add_argument("--throttle", type=float, default=fd.throttle, help="share of ECS calls throttled")
    ap.add_argument("--server-error", type=float, default=fd.server_error, help="share of ECS calls with 500/503")
    ap.add_argument("--drop-after", type=float, default=fd.drop_after, help="share of ECS calls executed, answer lost")
    ap.add_argument("--image-create-fail", type=float, default=fd.image_create_fail,
                    help="share of the instances whose image ends CreateFailed (drawn with --fault-seed)")
    ap.add_argument("--copy-fail", type=float, default=fd.copy_fail, help="share of the copies ending CreateFailed")
    ap.add_argument("--fault-seed", type=int, default=fd.seed)
    ap.add_argument("--kill", choices=("scheduler", "triggerer", "none"), default=d.kill,
                    help="scheduler: SIGKILL its process tree while create_images runs; triggerer: while it is "
                         "deferred")
    ap.add_argument("--kill-fraction", type=float, default=d.kill_fraction,
                    help="scheduler kill once this share of the CreateImage calls was made")
    ap.add_argument("--restart-delay", type=float, default=d.restart_delay)
    ap.add_argument("--max-errors", default=d.max_errors, help="DAG param (a count or a percentage)")
    ap.add_argument("--concurrency", default=None, help="DAG param (default: the DAG's own default)")
    ap.add_argument("--ideal-seconds", type=float, default=d.ideal_seconds,
                    help="pick the time scale so the fault-free ideal takes this many real seconds")
    ap.add_argument("--time-scale", type=float, default=None)
    ap.add_argument("--run-timeout", type=float, default=d.run_timeout, help="real seconds per run")
    ap.add_argument("--code", choices=("head", "worktree"), default=d.code,
                    help="head: run dags/plugins/include as committed (git archive HEAD); worktree: the live files")
    ap.add_argument("--out", default=d.out_dir)
    ap.add_argument("--work-dir", default=None, help="kept afterwards (Airflow and task logs); default a new /tmp dir")
    a = ap.parse_args(argv)
    plan = FaultPlan(throttle=a.throttle, server_error=a.server_error, drop_after=a.drop_after,
                     image_create_fail=a.image_create_fail, copy_fail=a.copy_fail, seed=a.fault_seed)
    concurrency = int(a.concurrency) if str(a.concurrency).isdigit() else a.concurrency or None
    max_errors = int(a.max_errors) if str(a.max_errors).isdigit() else a.max_errors
    opts = SoakOptions(size=a.size, sources=a.source_regions, destinations=a.destination_regions,
                       stopped_fraction=a.stopped_fraction, faults=plan, kill=a.kill, kill_fraction=a.kill_fraction,
                       restart_delay=a.restart_delay, max_errors=max_errors, concurrency=concurrency,
                       ideal_seconds=a.ideal_seconds, time_scale=a.time_scale, run_timeout=a.run_timeout,
                       code=a.code, out_dir=a.out, work_dir=a.work_dir)
    started = time.monotonic()

    def log(msg: str) -> None:
        print(portable_text(f"[{time.monotonic() - started:7.1f}s] {msg}"), flush=True)

    result = run_soak(opts, log=log)
    print()
    width = max(len(k) for k, _ in figures(result))
    for name, value in figures(result):
        print(f"{name.ljust(width)}  {value}")
    print()
    for name, ok in result["verdicts"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if result.get("error"):
        print(f"ERROR {result['error'][:500]}", file=sys.stderr)
    latest = Path(opts.out_dir) / f"soak-{opts.size}-latest.json"
    print(portable_text(f"\nresults: {latest}; work dir (logs) {result['work_dir']}"))
    return 0 if all(result["verdicts"].values()) and not result.get("error") else 1


if __name__ == "__main__":
    sys.exit(main())
