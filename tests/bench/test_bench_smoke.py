"""Smoke test of the benchmark's pure parts (ideal-time model, metric aggregation); the benchmark never runs here."""

from __future__ import annotations

import pytest

from bench.backup_scale import (
    DEFAULT_TIMINGS,
    build_time,
    calls_per_instance,
    copy_time,
    cpu_delta,
    fifo_makespan,
    fleet_spec,
    generate_fleet,
    ideal_times,
    lpt_makespan,
    markdown_table,
    merge_intervals,
    running_intervals,
    slot_seconds,
    summarize,
    svg_chart,
    target_checks,
)
from bench.baselines import oos_delays


def test_build_and_copy_times_follow_the_emulator_defaults():
    assert build_time(40, DEFAULT_TIMINGS) == 120 + 15 * 40
    assert copy_time(40, DEFAULT_TIMINGS) == 300 + 20 * 40
    assert copy_time(40, DEFAULT_TIMINGS, slowness=2.0) == 2 * (300 + 20 * 40)


def test_lpt_and_fifo_makespans():
    assert lpt_makespan([], 5) == 0.0
    assert lpt_makespan([10] * 10, 5) == 20
    assert lpt_makespan([7, 5, 4, 3, 3], 2) == 12  # 7|5, 7|9, 10|9, 10|12
    # released jobs: the second wave cannot start before its release
    assert fifo_makespan([(0, 10), (0, 10), (100, 1)], 2) == 101
    assert fifo_makespan([(0, 10)] * 6, 5) == 20


def test_ideal_single_instance_is_build_plus_copy():
    ideal = ideal_times([("cn-hangzhou", 40)], ["cn-shanghai", "ap-southeast-1"])
    expected = build_time(40, DEFAULT_TIMINGS) + copy_time(40, DEFAULT_TIMINGS)
    assert ideal.pipelined == ideal.staged == ideal.lower_bound == pytest.approx(expected)


def test_ideal_copy_queue_and_ordering_of_bounds():
    sizes = [("cn-hangzhou", 40)] * 20
    ideal = ideal_times(sizes, ["cn-shanghai"])
    b, c = build_time(40, DEFAULT_TIMINGS), copy_time(40, DEFAULT_TIMINGS)
    assert ideal.pipelined == pytest.approx(b + 4 * c)  # 20 copies, 5 slots, 4 waves
    assert ideal.lower_bound <= ideal.pipelined <= ideal.staged
    fleet = generate_fleet(60, ["cn-hangzhou", "cn-beijing", "cn-shenzhen"])
    mixed = ideal_times([(m.region, m.size) for m in fleet], ["cn-shanghai", "ap-southeast-1"])
    assert mixed.lower_bound <= mixed.pipelined <= mixed.staged


def test_ideal_with_qps_limit_on_create_delays_releases():
    sizes = [("cn-hangzhou", 40)] * 10
    free = ideal_times(sizes, ["cn-shanghai"], time_scale=1000)
    limited = ideal_times(sizes, ["cn-shanghai"], qps={"ecs:Create*": 1}, time_scale=1000)
    assert limited.max_build == pytest.approx(free.max_build + 9 * 1000)
    assert limited.pipelined > free.pipelined
    assert ideal_times(sizes, ["cn-shanghai"], qps={"ecs:DescribeImages": 1}).pipelined == free.pipelined


def test_fleet_generation_is_seeded_and_grouped():
    a = generate_fleet(100, ["r1", "r2", "r3"])
    assert a == generate_fleet(100, ["r1", "r2", "r3"])
    assert {m.region for m in a} == {"r1", "r2", "r3"}
    spec = fleet_spec(a, {"backup": "daily"})
    assert sum(e["count"] for e in spec["instances"]) == 100
    assert all(e["tags"] == {"backup": "daily"} for e in spec["instances"])


def test_oos_waitfor_schedule():
    delays = oos_delays()
    assert len(delays) == 296
    assert delays[:3] == [2.0, 4.0, 8.0] and max(delays) == 300.0
    assert 86_000 < sum(delays) < 88_000  # "roughly 24 h"


def test_calls_and_cpu_aggregation():
    counters = {"ecs:CreateImage": {"calls": 10, "errors": 0}, "ecs:DescribeImages": {"calls": 25, "errors": 2},
                "sts:AssumeRole": {"calls": 3, "errors": 0}}
    per = calls_per_instance(counters, 10)
    assert per == {"ecs:CreateImage": 1.0, "ecs:DescribeImages": 2.5, "total": 3.5}
    cpu = cpu_delta({"scheduler": 10.0, "triggerer": 5.0}, {"scheduler": 12.5, "triggerer": 5.5, "api-server": 1.0})
    assert cpu == {"scheduler": 2.5, "triggerer": 0.5, "api-server": 1.0, "total": 4.0}


def test_slot_seconds_methods():
    assert slot_seconds([(0, 1), (2, 3), (3, 0), (10, 0)]) == 2 + 3
    obs = {"a": [(0, "queued"), (1, "running"), (3, "deferred"), (9, "running"), (10, "success")],
           "b": [(0, "running"), (4, "running")]}
    assert running_intervals(obs) == (3 - 1) + (10 - 9) + 4
    assert merge_intervals([(0, 2), (1, 3), (5, 6), (6, 6)]) == 4


def test_summary_row_targets_table_and_svg():
    counters = {"ecs:CreateImage": {"calls": 100, "errors": 0}, "ecs:CopyImage": {"calls": 200, "errors": 0},
                "ecs:DescribeImages": {"calls": 50, "errors": 0}}
    row = summarize("Airflow DAG", 100, 2, wall_real=105.0, ideal_real=100.0, counters=counters,
                    slot_s_per_instance=0.5, cpu_s_per_instance=0.7, time_scale=1000)
    assert row["ratio"] == 1.05
    assert row["calls_per_instance"]["total"] == 3.5
    checks = target_checks(row, 2)
    assert checks["wall<=1.10x ideal"] and checks["calls<=2+D (4)"] and checks["slot s/instance<=1"]
    assert checks["Airflow CPU s/instance<=0.5"] is False
    table = markdown_table([row])
    assert "| 100 | Airflow DAG |" in table and "**3.50**" in table
    svg = svg_chart([row, {**row, "approach": "seed", "ratio": 3.0}], "ratio")
    assert svg.startswith("<svg") and svg.count("<rect") >= 4
