"""Pure parts of the backup benchmark: fleet generation, the emulator's ideal-time model, metric aggregation.

Nothing here does I/O; tests/bench/test_bench_smoke.py covers it.
"""

from __future__ import annotations

import fnmatch
import heapq
import json
import math
import os
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.paths import portable

# The emulator's defaults (emulator/ecs/timings.py); the harness reads the live values over the admin API.
DEFAULT_TIMINGS = {"image_create_base": 120.0, "image_create_per_gib": 15.0, "copy_base": 300.0,
                   "copy_per_gib": 20.0, "copy_concurrency": 5}

# Disk layouts of the generated fleet: (system disk GiB, [data disk GiB...]) with relative weights.
DISK_LAYOUTS: list[tuple[int, tuple[int, ...], int]] = [
    (40, (), 40), (40, (100,), 20), (60, (), 15), (100, (), 10), (40, (200,), 8), (100, (500,), 5), (200, (), 2),
]


@dataclass(frozen=True)
class Machine:
    """One generated instance's place and disk sizes (the emulator assigns the id)."""

    region: str
    system_disk: int
    data_disks: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        return self.system_disk + sum(self.data_disks)


def generate_fleet(n: int, regions: Sequence[str], seed: int = 5) -> list[Machine]:
    """``n`` machines spread round-robin over ``regions`` with a seeded mix of disk layouts."""
    rng = random.Random(seed)
    layouts = [(s, d) for s, d, _ in DISK_LAYOUTS]
    weights = [w for _, _, w in DISK_LAYOUTS]
    return [Machine(regions[i % len(regions)], *rng.choices(layouts, weights)[0]) for i in range(n)]


def fleet_spec(machines: Iterable[Machine], tags: Mapping[str, str]) -> dict:
    """The emulator fleet spec (``POST /_emulator/fleet``), grouping equal machines into one entry."""
    groups: dict[Machine, int] = {}
    for mach in machines:
        groups[mach] = groups.get(mach, 0) + 1
    entries = []
    for k, (mach, count) in enumerate(sorted(groups.items(), key=lambda kv: (kv[0].region, kv[0].size))):
        entries.append({"region": mach.region, "name": f"bench{k}-{{n}}", "count": count, "status": "Running",
                        "tags": dict(tags), "system_disk_size": mach.system_disk,
                        "data_disks": [{"size": s} for s in mach.data_disks]})
    return {"instances": entries}


# -- ideal wall time ------------------------------------------------------------------------------
def build_time(size: float, timings: Mapping[str, float], slowness: float = 1.0) -> float:
    return (float(timings["image_create_base"]) + float(timings["image_create_per_gib"]) * size) * slowness


def copy_time(size: float, timings: Mapping[str, float], slowness: float = 1.0) -> float:
    return (float(timings["copy_base"]) + float(timings["copy_per_gib"]) * size) * slowness


def lpt_makespan(durations: Iterable[float], slots: int) -> float:
    """Longest-processing-time-first list schedule on ``slots`` identical machines (all released at 0)."""
    loads = [0.0] * max(1, slots)
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + d)
    return max(loads)


def fifo_makespan(jobs: Iterable[tuple[float, float]], slots: int) -> float:
    """Jobs ``(release, duration)`` started in release order (ties: longest first) on ``slots`` machines.

    This is the emulator's own copy queue (first come, first served per destination region) fed by a client
    that calls CopyImage the moment each source image becomes Available.
    """
    free = [0.0] * max(1, slots)
    end = 0.0
    for release, dur in sorted(jobs, key=lambda j: (j[0], -j[1])):
        start = max(release, heapq.heappop(free))
        heapq.heappush(free, start + dur)
        end = max(end, start + dur)
    return end


def _qps_for(action: str, qps: Mapping[str, float] | None) -> float | None:
    """The strictest limit among patterns matching ``ecs:Action`` (real requests per second)."""
    rates = [float(v) for k, v in (qps or {}).items() if fnmatch.fnmatchcase(action, k)]
    return min(rates) if rates else None


@dataclass
class Ideal:
    """Simulated seconds. ``pipelined`` is the ideal: what the emulator's model allows a perfect client."""

    pipelined: float
    staged: float
    lower_bound: float
    max_build: float

    def real(self, time_scale: float) -> dict[str, float]:
        return {k: v / time_scale for k, v in self.__dict__.items()}


def ideal_times(sizes_by_source: Sequence[tuple[str, float]], destinations: Sequence[str],
                timings: Mapping[str, float] | None = None, slowness: Mapping[str, float] | None = None,
                qps: Mapping[str, float] | None = None, time_scale: float = 1.0) -> Ideal:
    """Critical path of a backup of instances ``(source region, total disk GiB)`` to ``destinations``.

    * builds all start at 0 (no build queue in the model) unless ``ecs:CreateImage`` has a QPS limit; a
      limit of q real calls/s releases the k-th CreateImage at ``k / q`` real = ``k * time_scale / q``
      simulated seconds (longest build+copy first);
    * ``pipelined``: every copy is submitted when its image is ready (also QPS-limited for CopyImage) into
      a first-come-first-served queue of ``copy_concurrency`` slots per destination region;
    * ``staged``: the brief's formula, all copies only after the last build: ``max build + LPT makespan``
      (what a DAG with a barrier between a create task and a copy task can reach at best);
    * ``lower_bound``: ``max(max_i build_i + copy_i, min build + sum(copy) / slots)`` per destination.
    """
    t = {**DEFAULT_TIMINGS, **(timings or {})}
    slow = slowness or {}
    slots = int(t["copy_concurrency"])
    if not sizes_by_source or not destinations:
        return Ideal(0.0, 0.0, 0.0, 0.0)
    builds = [build_time(size, t, slow.get(src, 1.0)) for src, size in sizes_by_source]
    copies = {d: [copy_time(size, t, slow.get(d, 1.0)) for _, size in sizes_by_source] for d in destinations}
    order = sorted(range(len(builds)), key=lambda i: -(builds[i] + max(c[i] for c in copies.values())))
    q_create = _qps_for("ecs:CreateImage", qps)
    release = [0.0] * len(builds)
    for k, i in enumerate(order):
        release[i] = (k * time_scale / q_create if q_create else 0.0) + builds[i]
    q_copy = _qps_for("ecs:CopyImage", qps)
    copy_release = {d: list(release) for d in destinations}
    if q_copy:
        submitted = sorted((release[i], i, d) for i in range(len(builds)) for d in destinations)
        gap = time_scale / q_copy
        last = -math.inf
        for r, i, d in submitted:
            last = max(r, last + gap)
            copy_release[d][i] = last
    max_build = max(release)
    pipelined = max(fifo_makespan(zip(copy_release[d], copies[d], strict=True), slots) for d in destinations)
    staged = max_build + max(lpt_makespan(copies[d], slots) for d in destinations)
    lower = max(max(release[i] + copies[d][i] for i in range(len(builds))) for d in destinations)
    lower = max(lower, *(min(copy_release[d]) + sum(copies[d]) / slots for d in destinations))
    return Ideal(pipelined=pipelined, staged=staged, lower_bound=lower, max_build=max_build)


# -- metrics --------------------------------------------------------------------------------------
def calls_per_instance(counters: Mapping[str, Mapping[str, int]], instances: int,
                       prefix: str = "ecs:") -> dict[str, float]:
    """``{"ecs:Action": calls / instances, ..., "total": ...}`` from the emulator's ``calls()`` counters."""
    n = max(1, instances)
    out = {k: v["calls"] / n for k, v in sorted(counters.items()) if k.startswith(prefix)}
    out["total"] = sum(out.values())
    return out


def error_counts(counters: Mapping[str, Mapping]) -> dict[str, int]:
    return {k: int(v.get("errors", 0)) for k, v in counters.items() if v.get("errors")}


def merge_intervals(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by the union of ``(start, end)`` intervals."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted((s, e) for s, e in intervals if e > s):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def slot_seconds(samples: Sequence[tuple[float, int]]) -> float:
    """Integrate a step function of running task count: samples ``(monotonic time, running)``.

    Each sample's count holds until the next sample (left Riemann sum), so the last sample adds nothing.
    """
    return sum(n * (t2 - t1) for (t1, n), (t2, _) in zip(samples, samples[1:], strict=False) if t2 > t1)


def running_intervals(observations: Mapping[str, Sequence[tuple[float, str]]]) -> float:
    """Worker-slot seconds from per-task-instance state observations ``{ti key: [(t, state), ...]}``.

    A task instance occupies a slot from the first sample it is seen ``running`` until the first later
    sample it is not; ``deferred``, ``queued``, ``scheduled`` and final states occupy none.
    """
    total = 0.0
    for obs in observations.values():
        started = None
        for t, state in obs:
            if state == "running" and started is None:
                started = t
            elif state != "running" and started is not None:
                total += t - started
                started = None
        if started is not None and obs:
            total += obs[-1][0] - started
    return total


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """Per component CPU seconds between two tree snapshots (components missing before count from 0)."""
    out = {k: max(0.0, after[k] - before.get(k, 0.0)) for k in after}
    out["total"] = sum(out.values())
    return out


TARGETS = {"wall_ratio": 1.10, "slot_s_per_instance": 1.0, "cpu_s_per_instance": 0.5}


def target_checks(row: Mapping, destinations: int) -> dict[str, bool | None]:
    """Which of issue 5's targets a result row meets (None: not measured)."""
    def le(key: str, limit: float) -> bool | None:
        value = row.get(key)
        return None if value is None else value <= limit

    calls = row.get("calls_per_instance", {}).get("total") if row.get("calls_per_instance") else None
    return {
        "wall<=1.10x ideal": le("ratio", TARGETS["wall_ratio"]),
        f"calls<=2+D ({2 + destinations})": None if calls is None else calls <= 2 + destinations,
        "slot s/instance<=1": le("slot_s_per_instance", TARGETS["slot_s_per_instance"]),
        "Airflow CPU s/instance<=0.5": le("cpu_s_per_instance", TARGETS["cpu_s_per_instance"]),
    }


def summarize(name: str, instances: int, destinations: int, wall_real: float, ideal_real: float,
              counters: Mapping[str, Mapping[str, int]], **extra) -> dict:
    """One result row (plain data, JSON-ready)."""
    row = {"approach": name, "instances": instances, "wall_s": round(wall_real, 3),
           "ideal_s": round(ideal_real, 3), "ratio": round(wall_real / ideal_real, 3) if ideal_real > 0 else None,
           "calls_per_instance": {k: round(v, 3) for k, v in calls_per_instance(counters, instances).items()},
           "api_errors": error_counts(counters), **extra}
    row["targets"] = target_checks(row, destinations)
    return row


# -- reporting --------------------------------------------------------------------------------------
def markdown_table(rows: Sequence[Mapping]) -> str:
    """The README results table."""
    head = ("| size | approach | wall s | ideal s | wall/ideal | ECS calls/inst (by action) | slot s/inst "
            "| Airflow CPU s/inst | peak RSS MiB | time scale |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        calls = r.get("calls_per_instance") or {}
        by_action = ", ".join(f"{k.removeprefix('ecs:')} {v:g}" for k, v in calls.items() if k != "total")

        def fmt(key: str, digits: int = 2, row: Mapping = r) -> str:
            v = row.get(key)
            return "–" if v is None else f"{v:.{digits}f}"

        rss = r.get("peak_rss_bytes")
        lines.append(f"| {r['instances']} | {r['approach']} | {fmt('wall_s', 1)} | {fmt('ideal_s', 1)} "
                     f"| {fmt('ratio')} | **{calls.get('total', 0):.2f}** ({by_action}) | {fmt('slot_s_per_instance')} "
                     f"| {fmt('cpu_s_per_instance')} | {'–' if rss is None else f'{rss / 2**20:.0f}'} "
                     f"| {r.get('time_scale', '–')} |")
    return "\n".join(lines)


def svg_chart(rows: Sequence[Mapping], metric: str = "ratio", title: str = "wall / ideal",
              width: int = 640, height: int = 320) -> str:
    """A hand-written grouped bar chart (no matplotlib in the venv): one group per size, one bar per approach."""
    sizes = sorted({r["instances"] for r in rows})
    approaches = list(dict.fromkeys(r["approach"] for r in rows))
    values = {(r["instances"], r["approach"]): r.get(metric) for r in rows}
    vmax = max([v for v in values.values() if isinstance(v, int | float)] or [1.0]) * 1.15
    colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2"]
    left, bottom, top = 50, 40, 30
    plot_w, plot_h = width - left - 170, height - top - bottom
    group_w = plot_w / max(1, len(sizes))
    bar_w = group_w * 0.8 / max(1, len(approaches))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="11">', f'<text x="{left}" y="18" font-size="13">{title}</text>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>']
    for k in range(5):
        v = vmax * k / 4
        y = top + plot_h - plot_h * k / 4
        out.append(f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    for gi, size in enumerate(sizes):
        gx = left + gi * group_w + group_w * 0.1
        out.append(f'<text x="{gx + group_w * 0.4:.1f}" y="{top + plot_h + 15}" text-anchor="middle">'
                   f'{size} instances</text>')
        for ai, name in enumerate(approaches):
            v = values.get((size, name))
            if not isinstance(v, int | float):
                continue
            h = plot_h * v / vmax
            x = gx + ai * bar_w
            out.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w * 0.9:.1f}" height="{h:.1f}" '
                       f'fill="{colors[ai % len(colors)]}"><title>{name}: {v:.3g}</title></rect>')
            out.append(f'<text x="{x + bar_w * 0.45:.1f}" y="{top + plot_h - h - 3:.1f}" text-anchor="middle" '
                       f'font-size="9">{v:.3g}</text>')
    for ai, name in enumerate(approaches):
        y = top + 10 + ai * 16
        out.append(f'<rect x="{left + plot_w + 10}" y="{y - 9}" width="10" height="10" '
                   f'fill="{colors[ai % len(colors)]}"/>')
        out.append(f'<text x="{left + plot_w + 25}" y="{y}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out)


# -- the harness (I/O from here on; imports are lazy so the pure parts above stay cheap) -------------
DAG_ID = "ecs_cross_region_backup"
FLEET_TAGS = {"backup": "daily"}


@dataclass
class Options:
    sizes: Sequence[int] = (10, 100)
    approaches: Sequence[str] = ("seed", "oos", "dag", "dag-celery")  # dag-celery: skipped without PG/Redis
    sources: Sequence[str] = ("cn-hangzhou", "cn-beijing", "cn-shenzhen", "cn-qingdao")  # issue 5: 4 sources, D = 2
    destinations: Sequence[str] = ("cn-shanghai", "ap-southeast-1")
    dag_ideal_seconds: float = 240.0        # pick the time scale so the ideal run takes this many real seconds
    baseline_ideal_seconds: float = 40.0
    time_scale: float | None = None          # fixed scale for everything (overrides the two above)
    qps: Mapping[str, float] | None = None   # emulator per-action QPS limits, real seconds
    poll_interval: int = 1                   # DAG param, real seconds
    concurrency: int | str = "100%"          # DAG param: every build and copy in flight (the ideal assumes it)
    parallelism: int = 8                     # Airflow [core] parallelism (LocalExecutor processes)
    seed_mode: str = "intended"
    faithful_seed_sizes: Sequence[int] = (10,)
    dag_timeout: float = 1500.0
    idle_seconds: float = 20.0               # measure Airflow's idle CPU rate before triggering
    baseline_timeout: float = 1200.0
    out_dir: str = "bench/results"
    backend: str = "sqlite"                  # metadata DB of the LocalExecutor run ("dag"); dag-celery: PostgreSQL


def _scale_for(ideal_sim: float, target_real: float) -> float:
    """A round time scale that makes ``ideal_sim`` take about ``target_real`` real seconds."""
    raw = max(1.0, ideal_sim / max(1.0, target_real))
    mag = 10 ** math.floor(math.log10(raw))
    return float(max(1, round(raw / mag * 2) / 2) * mag)


def _prepare_emulator(emu, machines: Sequence[Machine], time_scale: float, qps: Mapping | None) -> dict:
    """Reset, configure and seed the emulator; return ``{instance_id: (region, total GiB)}``."""
    emu.admin.reset()
    emu.admin.request("POST", "timings", {"image_quota": 100000})  # 1,000 instances need more than 100 images
    emu.admin.set_faults({"qps": dict(qps or {})})
    emu.admin.clock(time_scale=time_scale, freeze=False)
    emu.admin.load_fleet(fleet_spec(machines, FLEET_TAGS))
    sizes: dict[str, int] = {}
    for disk in emu.admin.table("ecs.disks").values():
        if disk.get("InstanceId"):
            sizes[disk["InstanceId"]] = sizes.get(disk["InstanceId"], 0) + int(disk["Size"])
    insts = {i["InstanceId"]: (i["RegionId"], sizes.get(i["InstanceId"], 0))
             for i in emu.admin.table("ecs.instances").values() if i.get("Tags", {}).get("backup") == "daily"}
    emu.admin.clear_calls()
    return insts


def _copies_available(emu, destinations: Sequence[str]) -> int:
    return sum(1 for i in emu.admin.table("ecs.images").values()
               if i.get("RegionId") in destinations and i.get("IsCopied") and i.get("Status") == "Available")


def _ideal_for(insts: Mapping[str, tuple[str, int]], opts: Options, emu, time_scale: float) -> Ideal:
    timings = emu.admin.request("GET", "timings")
    return ideal_times(list(insts.values()), list(opts.destinations), timings, None, opts.qps, time_scale)


def run_baseline(kind: str, emu, machines: Sequence[Machine], opts: Options, ideal_sim: float, log) -> dict:
    from . import baselines as b

    scale = opts.time_scale or _scale_for(ideal_sim, opts.baseline_ideal_seconds)
    insts = _prepare_emulator(emu, machines, scale, opts.qps)
    ideal = _ideal_for(insts, opts, emu, scale)
    targets = [b.Target(iid, region) for iid, (region, _) in sorted(insts.items(), key=lambda kv: (kv[1][0], kv[0]))]
    client = b.ecs_client_factory(emu.endpoint, emu.access_key_id, emu.access_key_secret)
    sim = b.Sim(scale, emu.admin.clock()["now"], time.monotonic() + opts.baseline_timeout)
    mode = kind.split(":", 1)[1] if ":" in kind else opts.seed_mode
    log(f"  {kind}: {len(targets)} instances at time scale {scale:g} (ideal {ideal.pipelined / scale:.1f}s real)")
    if kind.startswith("seed"):
        res = b.seed_script(client, targets, list(opts.destinations), sim, mode=mode)
    else:
        res = b.oos_loop(client, targets, list(opts.destinations), sim)
    counters = emu.admin.calls()["counters"]
    row = summarize(res.name, len(targets), len(opts.destinations), res.wall_real, ideal.pipelined / scale, counters,
                    time_scale=scale, ideal_staged_s=round(ideal.staged / scale, 3),
                    wall_sim_h=round(res.wall_real * scale / 3600, 2), ideal_sim_h=round(ideal.pipelined / 3600, 2),
                    completed_copies=res.completed, expected_copies=len(targets) * len(opts.destinations),
                    failed=res.failed[:20], client_errors=res.client_errors)
    log(f"    wall {res.wall_real:.1f}s ratio {row['ratio']} calls/inst {row['calls_per_instance']['total']:.2f} "
        f"copies {res.completed}/{row['expected_copies']}")
    return row


def _rest_trigger(port: int, conf: dict, run_id: str, dag_id: str = DAG_ID) -> bool:
    """Trigger through the REST API (token from the simple auth manager); False if that is not possible."""
    import urllib.request

    base = f"http://127.0.0.1:{port}"
    try:
        with urllib.request.urlopen(f"{base}/auth/token", timeout=10) as r:  # all-admins: GET, no credentials
            token = json.loads(r.read())["access_token"]
        body = json.dumps({"dag_run_id": run_id, "logical_date": None, "conf": conf}).encode()
        req = urllib.request.Request(f"{base}/api/v2/dags/{dag_id}/dagRuns", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status in (200, 201)
    except Exception:
        return False


def run_dag(emu, machines: Sequence[Machine], opts: Options, ideal_sim: float, work: Path, log,
            executor: str = "local") -> dict:
    """One DAG run on a fresh deployment: LocalExecutor on ``opts.backend``, or CeleryExecutor (two workers,
    ``opts.parallelism`` / 2 slots each) on PostgreSQL and Redis."""
    import threading

    from deploy.airflow_cluster import AirflowCluster

    scale = opts.time_scale or _scale_for(ideal_sim, opts.dag_ideal_seconds)
    insts = _prepare_emulator(emu, machines, scale, opts.qps)
    ideal = _ideal_for(insts, opts, emu, scale)
    n = len(insts)
    connection = {"conn_type": "aliyun", "extra": {"access_key_id": emu.access_key_id,
                                                   "access_key_secret": emu.access_key_secret,
                                                   "region": opts.sources[0], "endpoint": emu.base_url}}
    conf = {"source_regions": list(opts.sources), "destination_regions": list(opts.destinations),
            "tags": FLEET_TAGS, "poll_interval": opts.poll_interval, "concurrency": opts.concurrency,
            "timeout_minutes": max(5, int(opts.dag_timeout * 2 / 60)), "max_errors": 0}
    backend = "postgres" if executor == "celery" else opts.backend
    cluster = AirflowCluster(work / f"dag-{executor}-{n}", connection, parallelism=opts.parallelism, backend=backend,
                             executor=executor, workers=2, worker_concurrency=max(1, opts.parallelism // 2))
    label = f"Airflow DAG ({cluster.backend}, {'CeleryExecutor' if executor == 'celery' else 'LocalExecutor'})"
    row: dict = {"approach": label, "instances": n}
    try:
        db_s = cluster.prepare_db()
        up_s = cluster.start()
        log(f"  dag: Airflow ({cluster.backend}) up in {up_s:.0f}s (db {db_s:.0f}s); {n} instances at time scale "
            f"{scale:g} (ideal {ideal.pipelined / scale:.1f}s real)")
        idle0, t_idle = cluster.cpu_snapshot(), time.monotonic()
        time.sleep(opts.idle_seconds)  # idle CPU rate: what every hour of a long real run costs on its own
        idle = cpu_delta(idle0, cluster.cpu_snapshot())
        idle_rate = {k: round(v / (time.monotonic() - t_idle), 4) for k, v in idle.items()}
        emu.admin.clock(time_scale=scale, freeze=False)
        emu.admin.clear_calls()
        run_id = f"bench-{n}-{int(time.time())}"
        cpu0 = cluster.cpu_snapshot()
        observations: dict[str, list[tuple[float, str]]] = {}
        peak = {"rss": cluster.rss(), "procs": cluster.process_count()}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                t = time.monotonic()
                try:
                    for key, state in cluster.task_states(DAG_ID, run_id).items():
                        observations.setdefault("/".join(map(str, key)), []).append((t, state))
                except Exception:
                    pass
                peak["rss"] = max(peak["rss"], cluster.rss())
                peak["procs"] = max(peak["procs"], cluster.process_count())
                stop.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.monotonic()
        via = "rest" if _rest_trigger(cluster.port, conf, run_id) else "cli"
        if via == "cli":
            cluster.trigger(DAG_ID, conf, run_id)
        sampler.start()
        state = None
        deadline = started + opts.dag_timeout
        while time.monotonic() < deadline:
            state = cluster.run_state(DAG_ID, run_id)
            if state in ("success", "failed"):
                break
            if not cluster.alive() or len(cluster.alive()) < len(cluster.procs):
                raise RuntimeError(f"an Airflow component died; logs in {cluster.logs}")
            time.sleep(0.25)
        wall = time.monotonic() - started
        stop.set()
        sampler.join(timeout=10)
        cpu = cpu_delta(cpu0, cluster.cpu_snapshot())
        counters = emu.admin.calls()["counters"]
        tasks = cluster.task_rows(DAG_ID, run_id)
        slot_s = running_intervals(observations)
        copies = _copies_available(emu, opts.destinations)
        row = summarize(label, n, len(opts.destinations), wall, ideal.pipelined / scale, counters,
                        time_scale=scale, ideal_staged_s=round(ideal.staged / scale, 3), run_state=state,
                        triggered_via=via, poll_interval_sim_s=opts.poll_interval * scale,
                        wall_sim_h=round(wall * scale / 3600, 2), ideal_sim_h=round(ideal.pipelined / 3600, 2),
                        slot_s=round(slot_s, 2), slot_s_per_instance=round(slot_s / n, 4),
                        cpu_s=cpu, cpu_s_per_instance=round(cpu["total"] / n, 4),
                        peak_rss_bytes=peak["rss"], peak_processes=peak["procs"],
                        completed_copies=copies, expected_copies=n * len(opts.destinations),
                        task_instances=len([t for t in tasks if not t.get("history")]),
                        task_tries=len(tasks), task_summary=_task_summary(tasks), backend=cluster.backend,
                        airflow_start_s=round(up_s, 1), logs=str(cluster.logs), idle_cpu_per_s=idle_rate,
                        projected_cpu_s_per_instance_at_scale_1=round(
                            (cpu["total"] + idle_rate["total"] * (ideal.pipelined - wall)) / n, 3))
        log(f"    {state} in {wall:.1f}s ratio {row['ratio']} calls/inst {row['calls_per_instance']['total']:.2f} "
            f"slot s/inst {row['slot_s_per_instance']} cpu s/inst {row['cpu_s_per_instance']} "
            f"copies {copies}/{row['expected_copies']}")
        if state not in ("success", "failed"):
            row["error"] = f"run did not finish within {opts.dag_timeout:.0f}s (state {state})"
    except Exception as exc:  # keep the baselines' results; say what broke
        row["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        row["logs"] = str(cluster.logs)
        log(f"    DAG run failed: {row['error'][:500]}")
    finally:
        cluster.stop()
        cluster.drop_db()
    return row


def _task_summary(tasks: Sequence[Mapping]) -> dict[str, dict]:
    """Per task id: count of task instances, states, and the sum of (end - start) durations in seconds."""
    out: dict[str, dict] = {}
    for t in tasks:
        entry = out.setdefault(t["task_id"], {"tis": 0, "states": {}, "duration_s": 0.0})
        entry["tis"] += 1
        entry["states"][t["state"]] = entry["states"].get(t["state"], 0) + 1
        try:
            entry["duration_s"] = round(entry["duration_s"] + float(t.get("duration") or 0), 2)
        except (TypeError, ValueError):
            pass
    return out


def run(opts: Options, log=print) -> list[dict]:
    """Every size and approach against one emulator process; writes JSON, Markdown and SVG to ``out_dir``."""
    import platform
    import tempfile

    from deploy.airflow_cluster import celery_unavailable
    from emulator.control import EmulatorProcess

    out_dir = Path(opts.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp, EmulatorProcess(time_scale=100) as emu:
        work = Path(tmp)
        for n in opts.sizes:
            machines = generate_fleet(n, list(opts.sources))
            ideal = ideal_times([(mach.region, mach.size) for mach in machines], list(opts.destinations))
            log(f"size {n}: ideal {ideal.pipelined / 3600:.2f} simulated hours (staged {ideal.staged / 3600:.2f} h)")
            for kind in opts.approaches:
                try:
                    if kind == "dag":
                        rows.append(run_dag(emu, machines, opts, ideal.pipelined, work, log))
                    elif kind == "dag-celery":
                        reason = celery_unavailable()
                        if reason:
                            log(f"  dag-celery skipped: {reason}")
                            continue
                        rows.append(run_dag(emu, machines, opts, ideal.pipelined, work, log, executor="celery"))
                    else:
                        rows.append(run_baseline(kind, emu, machines, opts, ideal.pipelined, log))
                        if kind == "seed" and opts.seed_mode == "intended" and n in opts.faithful_seed_sizes:
                            rows.append(run_baseline("seed:faithful", emu, machines, opts, ideal.pipelined, log))
                except Exception as exc:
                    log(f"  {kind} failed: {type(exc).__name__}: {exc}")
                    rows.append({"approach": kind, "instances": n, "error": f"{type(exc).__name__}: {exc}"[:2000]})
                _save(out_dir, stamp, rows, opts, platform)
    return rows


def _save(out_dir: Path, stamp: str, rows: list[dict], opts: Options, platform) -> None:
    import dataclasses

    meta = {"machine": {"nproc": os.cpu_count(), "ram_gib": round(_ram_bytes() / 2**30, 1),
                        "python": platform.python_version(), "airflow": _airflow_version()},
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(opts).items()}}
    data = {"meta": meta, "rows": rows}
    for name in (f"backup_scale-{stamp}.json", "backup_scale-latest.json"):
        (out_dir / name).write_text(json.dumps(portable(data), indent=2, default=str))
    ok = [r for r in rows if "error" not in r or r.get("wall_s")]
    (out_dir / "backup_scale-latest.md").write_text(markdown_table(ok) + "\n")
    (out_dir / "backup_scale-ratio.svg").write_text(svg_chart(ok, "ratio", "wall time / ideal (lower is better)"))
    calls = [{**r, "calls": (r.get("calls_per_instance") or {}).get("total")} for r in ok]
    (out_dir / "backup_scale-calls.svg").write_text(svg_chart(calls, "calls", "ECS API calls per instance"))


def _ram_bytes() -> int:
    try:
        import psutil

        return psutil.virtual_memory().total
    except Exception:
        return 0


def _airflow_version() -> str:
    try:
        from importlib.metadata import version

        return version("apache-airflow")
    except Exception:
        return "?"
