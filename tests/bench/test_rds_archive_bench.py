"""Smoke test of bench/rds_archive.py's pure parts (sizes, fleet, aggregation, ratio, targets, tables); the
benchmark itself never runs here, and nothing asserts on a timing."""

from __future__ import annotations

import io

import pytest

from bench.rds_archive import (
    GIB,
    MIB,
    SizedStream,
    aggregate_runs,
    backups_that_fit,
    case_row,
    cpu_ratio,
    fleet_spec,
    instance_id,
    markdown_table,
    paired_ratios,
    parse_sizes,
    phase_names,
    phase_summary,
    raw_mode_fits,
    size_label,
    target_checks,
    text_table,
    throughput,
)


def test_sizes_from_gib_or_mib():
    assert parse_sizes("1,5", None) == [GIB, 5 * GIB]
    assert parse_sizes("1,5", "8") == [8 * MIB]
    assert parse_sizes(None, "0.5") == [MIB // 2]
    with pytest.raises(ValueError):
        parse_sizes("0", None)
    with pytest.raises(ValueError):
        parse_sizes("", None)


def test_labels_and_instance_ids():
    assert size_label(5 * GIB) == "5 GiB"
    assert size_label(8 * MIB) == "8 MiB"
    assert size_label(300 * 1024) == "300 KiB"
    assert size_label(17) == "17 B"
    assert instance_id(GIB) == "rm-bench1g"
    assert instance_id(8 * MIB) == "rm-bench8m"
    assert instance_id(1000) == "rm-bench1000b"


def test_fleet_has_the_backups_and_the_bucket():
    spec = fleet_spec(GIB, 3)
    (inst,) = spec["rds_instances"]
    assert inst["id"] == "rm-bench1g" and inst["engine"] == "MySQL"
    assert [b["size"] for b in inst["backups"]] == [GIB] * 3
    assert len({b["start_time"] for b in inst["backups"]}) == 3
    assert spec["buckets"] == [{"name": "bench-archive", "region": "cn-hangzhou"}]


def test_disk_and_memory_limits():
    assert backups_that_fit(80 * GIB, 5 * GIB, 4) == 4
    assert backups_that_fit(14 * GIB, 5 * GIB, 4, reserve=2 * GIB) == 2
    assert backups_that_fit(GIB, 5 * GIB, 4) == 0
    assert raw_mode_fits("put", 5 * GIB, 4, GIB)
    assert raw_mode_fits("uploader", GIB, 4, 20 * GIB)
    assert not raw_mode_fits("uploader", 5 * GIB, 4, 20 * GIB)


def test_phase_names():
    assert phase_names(["raw", "archive"], ["put", "uploader"]) == ["put", "uploader", "archive"]
    assert phase_names(["archive", "raw"], ["put"], ["as-is", "one-pass"]) == ["archive", "archive:one-pass", "put"]
    with pytest.raises(ValueError):
        phase_names(["nope"], ["put"])


def test_phase_summary_and_ratio():
    assert throughput(100 * MIB, 2.0) == 50.0
    assert throughput(1, 0.0) == 0.0
    arch = phase_summary(4 * GIB, 80.0, 250 * MIB, 150 * MIB, 70 * MIB, worker_cpu=40.0, emulator_cpu=36.0)
    raw = phase_summary(4 * GIB, 40.0, 40 * MIB, 38 * MIB, 75 * MIB, worker_cpu=8.0, emulator_cpu=36.0)
    assert arch["mib_per_s"] == 51.2 and arch["worker_growth_mib"] == 100.0
    assert arch["worker_cpu_s_per_gib"] == 10.0 and raw["emulator_cpu_s_per_gib"] == 9.0
    row = case_row(GIB, 4, {"put": raw, "archive": arch})
    assert row["ratio"] == 0.5  # same bytes: raw s / archive s = archive throughput / raw throughput
    assert row["archive_s"] == 80.0 and row["raw_s"] == 40.0 and row["raw_mode"] == "put"
    assert row["worker_peak_rss_mib"] == 250.0 and row["baseline_rss_mib"] == 150.0
    assert row["emulator_peak_rss_mib"] == 75.0  # the largest over the phases
    assert case_row(GIB, 4, {"archive": arch})["ratio"] is None


def test_targets():
    rows = [{"size": "1 GiB", "ratio": 0.85, "worker_peak_rss_mib": 180.0},
            {"size": "5 GiB", "ratio": 0.5, "worker_peak_rss_mib": 195.0},  # 195 MiB is more than 200 MB
            {"size": "8 MiB", "ratio": None, "worker_peak_rss_mib": None}]
    checks = target_checks(rows)
    assert [(c["ratio_met"], c["rss_met"]) for c in checks] == [(True, True), (False, False), (None, None)]


def test_tables():
    rows = [case_row(GIB, 4, {"put": phase_summary(4 * GIB, 40.0, 40 * MIB, 38 * MIB, 75 * MIB),
                              "archive": phase_summary(4 * GIB, 50.0, 190 * MIB, 150 * MIB, 70 * MIB)})]
    md = markdown_table(rows)
    assert md.splitlines()[0].startswith("| size | backups | bytes | archive s | raw s | ratio archive/raw")
    assert "| 1 GiB | 4 | 4,294,967,296 | 50.0 | 40.0 | 0.800 |" in md
    text = text_table(rows)
    assert len({len(line) for line in text.splitlines()}) == 1  # aligned
    assert "–" in markdown_table([{"size": "1 GiB"}])


def test_sized_stream_is_a_sized_iterable_body():
    body = SizedStream(io.BytesIO(b"x" * (3 * MIB + 5)), 3 * MIB + 5)
    assert len(body) == 3 * MIB + 5 and not body.seekable()
    assert [len(c) for c in body] == [MIB, MIB, MIB, 5]
    with pytest.raises(io.UnsupportedOperation):
        body.tell()


def test_repeated_runs_report_the_median_and_the_worst_memory():
    runs = [phase_summary(GIB, s, rss * MIB, 150 * MIB, 70 * MIB, other_cores=o)
            for s, rss, o in ((30.0, 200, 0.0), (10.0, 190, 1.0), (20.0, 180, 0.1))]
    agg = aggregate_runs(runs)
    assert agg["seconds"] == 20.0 and agg["other_cores"] == 0.1  # the median run's figures
    assert agg["worker_peak_rss_mib"] == 200.0 and agg["seconds_all"] == [30.0, 10.0, 20.0]
    assert aggregate_runs(runs[:2])["seconds"] == 10.0  # even count: the lower median
    with pytest.raises(ValueError):
        aggregate_runs([])
    row = case_row(GIB, 1, {"put": runs[1], "archive": agg})
    assert row["other_cores"] == "1.000 / 0.100"


def test_each_archive_run_is_paired_with_the_raw_run_of_its_repeat_and_cpu_decides_the_cpu_ratio():
    raw = aggregate_runs([phase_summary(GIB, s, 40 * MIB, 38 * MIB, 70 * MIB, worker_cpu=1.0, emulator_cpu=7.0,
                                        run=n) for n, s in ((1, 30.0), (2, 60.0))])
    arch = aggregate_runs([phase_summary(GIB, s, 190 * MIB, 158 * MIB, 70 * MIB, worker_cpu=3.0, emulator_cpu=7.0,
                                         run=n) for n, s in ((1, 40.0), (2, 50.0))])
    assert paired_ratios(raw, arch) == [0.75, 1.2]  # the medians alone (30 / 40) would say 0.75
    assert cpu_ratio(raw, arch) == 0.8  # (1 + 7) / (3 + 7), over both repeats
    assert paired_ratios(raw, {}) == [] and cpu_ratio({}, arch) is None
    row = case_row(GIB, 4, {"put": raw, "archive": arch})
    assert row["ratio"] == 0.75 and row["ratio_pairs"] == [0.75, 1.2] and row["cpu_ratio"] == 0.8
    assert "| 0.750, 1.200 | 0.800 |" in markdown_table([row])
    (check,) = target_checks([row])
    assert check["ratio_pairs"] == [0.75, 1.2] and check["cpu_ratio"] == 0.8


@pytest.mark.timeout(180)
def test_tiny_end_to_end_run(tmp_path):
    """Two 2 MiB backups (1 MiB parts: the multipart path) through both workers against a real emulator; checks
    that every byte arrived and was counted, never how fast."""
    from bench.rds_archive import run

    result = run([2 * MIB], backups=2, concurrency=2, raw_modes=["put"], part_size=MIB, parallel_num=2,
                 order=["raw", "archive"], data_dir=None, log_path=tmp_path / "run.log")
    (case,) = result["cases"]
    assert set(case["phases"]) == {"put", "archive"}
    for name, phase in case["phases"].items():
        assert phase["ok"], name
        assert phase["bytes"] == 4 * MIB and phase["objects"] == 2
        assert phase["worker_peak_rss_mib"] >= phase["worker_baseline_rss_mib"] > 0
    assert case["phases"]["put"]["objects_deleted"] == 2
    assert case["phases"]["archive"]["objects_deleted"] == 3  # two backups and the run's manifest
    row = case_row(2 * MIB, 2, case["phases"])
    assert row["ratio"] is not None and row["archive_ok"] and row["raw_ok"]
    assert len(row["ratio_pairs"]) == 1 and row["cpu_ratio"] > 0
    assert case["phases"]["archive"]["crc_backend"] in ("crcmod", "fastcrc")
    assert len(case["phases"]["put"]["loadavg_before"]) == 3
