"""RDS → OSS archive throughput and worker memory (issue 12): ``python -m bench.rds_archive``.

For each backup size, one emulator (time scale 1) gets one RDS instance with ``--backups`` backups of that size
and a bucket. Then, in the same run and for the same bytes, two kinds of worker subprocess copy every backup
from its ``BackupDownloadURL`` into the bucket with ``--concurrency`` threads:

* ``archive``: :class:`aliyun_ops.operators.rds.ArchiveRdsBackupsToOssOperator` ``.execute(context)``
  (default ``parallel_num``: 1 per backup when several stream at once, and ``part_size`` derived from its 24 MiB
  memory budget: 6 MiB at concurrency 4; ``--parallel`` and ``--part-mib`` fix them), with
  ``AIRFLOW_CONN_ALIYUN_DEFAULT`` pointing at the emulator and a fake task-instance context;
* ``raw``: the baseline, a plain loopback copy: ``urlopen(url)`` streamed as the body of one ``PutObject``
  (``alibabacloud_oss_v2``, the SDK's own upload CRC-64 check off: no integrity work at all). ``--raw`` also
  accepts ``put-crc`` (the same with the SDK's CRC-64 check on) and ``uploader`` (the SDK uploader's
  ``upload_from`` on the download stream, same part size and parallelism as the archive; it reads a
  non-seekable stream ahead without bound, so its memory grows with the backup: it is skipped when
  ``concurrency x size`` is more than half the available memory).

Each worker imports everything, says it is ready, and only then does the timed work: the parent records the
worker's RSS at that moment (the baseline) and samples its RSS (children included) every 50 ms, plus the
emulator's RSS and the CPU time of both. Throughput is the bytes copied over the worker's own wall seconds.
Objects are deleted after every phase, so the disk holds at most one phase's objects. Besides the ratio of the
median runs, each row gives the ratio per repeat (each archive run against the raw run just before it) and the
CPU ratio (worker + emulator CPU seconds, raw over archive: the ratio if both were CPU-bound on the same
cores); ``python -m bench.rds_archive_profile`` shows where the archive worker's CPU goes.

    .venv/bin/python -m bench.rds_archive --sizes 1,5 --backups 4          # 1 GiB and 5 GiB, 4 backups each
    .venv/bin/python -m bench.rds_archive --sizes-mib 8 --backups 2        # a quick run (a few seconds)

Results: ``bench/results/rds-archive/rds_archive-<stamp>.json`` and ``rds_archive-latest.json``; a table is
printed. The pure parts (sizes, fleet, aggregation, targets, tables) are covered by
tests/bench/test_rds_archive_bench.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.paths import portable

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results" / "rds-archive"
MIB = 1024 * 1024
GIB = 1024 * MIB
REGION = "cn-hangzhou"
BUCKET = "bench-archive"
WINDOW_START = "2024-01-01T00:00Z"
RATIO_TARGET = 0.8
RSS_TARGET_BYTES = 200 * 1000 * 1000  # "under 200 MB": decimal megabytes, 190.7 MiB (the stricter reading)
RAW_MODES = ("put", "put-pipe", "put-crc", "uploader")
# Investigation only (issue 12's bottleneck): the archive with the hook patched *in the worker process*; the
# plugin's files are not touched. "archive" alone is the operator as it is.
DISK_RESERVE = 2 * GIB  # left free on the emulator's disk
FAST_RETRIES = {"retry_base_delay": 0.01, "retry_max_delay": 0.05}  # as tests/aliyun_ops/conftest.py


# -- pure parts ---------------------------------------------------------------------------------
def parse_sizes(sizes_gib: str | None, sizes_mib: str | None) -> list[int]:
    """Backup sizes in bytes from ``--sizes`` (GiB) or ``--sizes-mib`` (MiB; wins when given).

    >>> parse_sizes("1,5", None), parse_sizes("1", "8")
    ([1073741824, 5368709120], [8388608])
    """
    text, unit = (sizes_mib, MIB) if sizes_mib else (sizes_gib or "", GIB)
    sizes = [int(float(s) * unit) for s in text.split(",") if s.strip()]
    if not sizes or any(s <= 0 for s in sizes):
        raise ValueError(f"sizes must be positive numbers, got {text!r}")
    return sizes


def size_label(size: int) -> str:
    """``1 GiB``, ``512 MiB``, ``300 KiB`` or ``17 B``."""
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (1024, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    if size >= MIB:
        return f"{size / MIB:.1f} MiB"
    return f"{size} B"


def instance_id(size: int) -> str:
    """A valid RDS instance id per size, e.g. ``rm-bench1g``, ``rm-bench8m``."""
    if size % GIB == 0:
        return f"rm-bench{size // GIB}g"
    if size % MIB == 0:
        return f"rm-bench{size // MIB}m"
    return f"rm-bench{size}b"


def fleet_spec(size: int, backups: int) -> dict:
    """The emulator fleet: one MySQL instance with ``backups`` Success backups of ``size`` bytes, and the bucket."""
    return {
        "rds_instances": [{"region": REGION, "id": instance_id(size), "engine": "MySQL", "backup_size": size,
                           "backups": [{"size": size, "start_time": f"2024-01-{day:02d}T01:00:00Z"}
                                       for day in range(1, backups + 1)]}],
        "buckets": [{"name": BUCKET, "region": REGION}],
    }


def backups_that_fit(free_bytes: int, size: int, wanted: int, reserve: int = DISK_RESERVE) -> int:
    """How many of ``wanted`` backups of ``size`` one phase can write with ``reserve`` bytes left free (0 if none)."""
    return max(0, min(wanted, (free_bytes - reserve) // size))


def raw_mode_fits(mode: str, size: int, concurrency: int, available_memory: int) -> bool:
    """The SDK uploader reads a stream ahead without bound: run it only if ``concurrency x size`` fits in half
    the available memory. The streaming modes always fit."""
    return mode != "uploader" or concurrency * size <= available_memory // 2


def phase_names(order: Sequence[str], raw_modes: Sequence[str], archive_variants: Sequence[str] = ("as-is",)) -> list:
    """The phases of one size in order: ``raw`` expands to the raw modes, ``archive`` to ``archive`` (the operator
    as it is) and ``archive:<variant>`` for the investigation variants.

    >>> phase_names(["raw", "archive"], ["put"], ["as-is", "one-pass"])
    ['put', 'archive', 'archive:one-pass']
    """
    out: list[str] = []
    for p in order:
        if p == "raw":
            out += list(raw_modes)
        elif p == "archive":
            out += ["archive" if v == "as-is" else f"archive:{v}" for v in archive_variants]
        else:
            raise ValueError(f"unknown phase {p!r}: archive or raw")
    return out


def throughput(nbytes: int, seconds: float) -> float:
    """MiB per second (0 for no time)."""
    return nbytes / MIB / seconds if seconds > 0 else 0.0


def phase_summary(nbytes: int, seconds: float, worker_peak: int, worker_baseline: int, emulator_peak: int,
                  worker_cpu: float = 0.0, emulator_cpu: float = 0.0, ok: bool = True, **extra: Any) -> dict:
    """One phase's figures: bytes, seconds, MiB/s, RSS in MiB, CPU seconds and CPU per GiB."""
    gib = nbytes / GIB
    return {"bytes": nbytes, "seconds": round(seconds, 3), "mib_per_s": round(throughput(nbytes, seconds), 1),
            "worker_peak_rss_mib": round(worker_peak / MIB, 1), "worker_baseline_rss_mib": round(worker_baseline / MIB, 1),
            "worker_growth_mib": round((worker_peak - worker_baseline) / MIB, 1),
            "emulator_peak_rss_mib": round(emulator_peak / MIB, 1),
            "worker_cpu_s": round(worker_cpu, 2), "emulator_cpu_s": round(emulator_cpu, 2),
            "worker_cpu_s_per_gib": round(worker_cpu / gib, 2) if gib else 0.0,
            "emulator_cpu_s_per_gib": round(emulator_cpu / gib, 2) if gib else 0.0,
            "ok": ok, **extra}


def aggregate_runs(runs: Sequence[Mapping[str, Any]]) -> dict:
    """Repeated runs of one phase -> the run with the median time (the lower one for an even count), with the
    largest peak RSS of all runs (memory is judged on the worst run) and every run kept under ``runs``."""
    if not runs:
        raise ValueError("no runs")
    ordered = sorted(runs, key=lambda r: r["seconds"])
    out = dict(ordered[(len(ordered) - 1) // 2])
    out["worker_peak_rss_mib"] = max(r["worker_peak_rss_mib"] for r in runs)
    out["emulator_peak_rss_mib"] = max(r["emulator_peak_rss_mib"] for r in runs)
    out["ok"] = all(r["ok"] for r in runs)
    out["seconds_all"] = [r["seconds"] for r in runs]
    out["runs"] = [dict(r) for r in runs]
    return out


def case_row(size: int, backups: int, phases: Mapping[str, Mapping[str, Any]], raw: str = "put") -> dict:
    """The table row of one size: the archive against the ``raw`` baseline (ratio = raw s / archive s, i.e.
    archive throughput / raw throughput, since both copy the same bytes)."""
    arch, base = phases.get("archive") or {}, phases.get(raw) or {}
    ratio = (base["seconds"] / arch["seconds"]) if arch.get("seconds") and base.get("seconds") else None
    return {"size": size_label(size), "size_bytes": size, "backups": backups, "bytes": arch.get("bytes", 0),
            "archive_s": arch.get("seconds"), "raw_s": base.get("seconds"), "raw_mode": raw,
            "ratio": round(ratio, 3) if ratio is not None else None, "archive_mib_s": arch.get("mib_per_s"),
            "raw_mib_s": base.get("mib_per_s"), "worker_peak_rss_mib": arch.get("worker_peak_rss_mib"),
            "baseline_rss_mib": arch.get("worker_baseline_rss_mib"),
            "emulator_peak_rss_mib": max((p.get("emulator_peak_rss_mib") or 0) for p in phases.values()) if phases
            else None,
            "archive_ok": bool(arch.get("ok")), "raw_ok": bool(base.get("ok")),
            "worker_cpu_s_per_gib": arch.get("worker_cpu_s_per_gib"),
            "raw_worker_cpu_s_per_gib": base.get("worker_cpu_s_per_gib"),
            "emulator_cpu_s_per_gib": arch.get("emulator_cpu_s_per_gib"),
            "other_cores": _pair(base.get("other_cores"), arch.get("other_cores")),
            "ratio_pairs": paired_ratios(base, arch), "cpu_ratio": cpu_ratio(base, arch)}


def paired_ratios(raw: Mapping[str, Any], archive: Mapping[str, Any]) -> list[float]:
    """Raw s / archive s of each repeat, the archive run paired with the raw run of the same repeat (the two ran
    back to back, so under the same outside load more than the medians of each phase did).

    >>> paired_ratios({"runs": [{"run": 1, "seconds": 30.0}, {"run": 2, "seconds": 40.0}]},
    ...               {"runs": [{"run": 1, "seconds": 33.0}, {"run": 2, "seconds": 40.0}]})
    [0.909, 1.0]
    """
    raw_s = {r.get("run"): r["seconds"] for r in raw.get("runs") or [] if r.get("seconds")}
    return [round(raw_s[r.get("run")] / r["seconds"], 3) for r in archive.get("runs") or []
            if r.get("seconds") and r.get("run") in raw_s]


def cpu_ratio(raw: Mapping[str, Any], archive: Mapping[str, Any]) -> float | None:
    """(worker + emulator CPU seconds of the raw copy) / (the same for the archive), over all repeats: the ratio
    the two would reach if both were CPU-bound on the same cores (they copy the same bytes), whatever the
    outside load did to their wall times. None without CPU figures.

    >>> cpu_ratio({"runs": [{"worker_cpu_s": 5.0, "emulator_cpu_s": 30.0}]},
    ...           {"runs": [{"worker_cpu_s": 13.0, "emulator_cpu_s": 27.0}]})
    0.875
    """
    def total(phase: Mapping[str, Any]) -> float:
        return sum(r.get("worker_cpu_s", 0.0) + r.get("emulator_cpu_s", 0.0) for r in phase.get("runs") or [phase])

    arch, base = total(archive), total(raw)
    return round(base / arch, 3) if arch > 0 and base > 0 else None


def _pair(raw: Any, archive: Any) -> str | None:
    return None if raw is None and archive is None else f"{_cell(raw)} / {_cell(archive)}"


def target_checks(rows: Iterable[Mapping[str, Any]], ratio_target: float = RATIO_TARGET,
                  rss_target: int = RSS_TARGET_BYTES) -> list[dict]:
    """Per row: ``{"size", "ratio_met", "rss_met"}`` (None when not measured)."""
    out = []
    for r in rows:
        ratio, rss = r.get("ratio"), r.get("worker_peak_rss_mib")
        out.append({"size": r["size"], "ratio_pairs": r.get("ratio_pairs") or [], "cpu_ratio": r.get("cpu_ratio"),
                    "ratio": ratio, "ratio_met": None if ratio is None else ratio >= ratio_target,
                    "worker_peak_rss_mib": rss,
                    "rss_met": None if rss is None else rss * MIB < rss_target})
    return out


COLUMNS = (("size", "size"), ("backups", "backups"), ("bytes", "bytes"), ("archive_s", "archive s"),
           ("raw_s", "raw s"), ("ratio", "ratio archive/raw"), ("archive_mib_s", "archive MiB/s"),
           ("raw_mib_s", "raw MiB/s"), ("worker_peak_rss_mib", "worker peak RSS MiB"),
           ("baseline_rss_mib", "baseline RSS MiB"), ("emulator_peak_rss_mib", "emulator peak RSS MiB"),
           ("other_cores", "other load, cores (raw / archive)"), ("ratio_pairs", "ratio per repeat"),
           ("cpu_ratio", "CPU ratio raw/archive"))


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) if value else "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The README table."""
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(k)) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def text_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The printed table: aligned columns."""
    cells = [[h for _, h in COLUMNS]] + [[_cell(r.get(k)) for k, _ in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells)


# -- sampling -----------------------------------------------------------------------------------
def tree_rss(proc: Any) -> int:
    """RSS of a psutil process and all its children (0 for a process that is gone)."""
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def cpu_seconds(proc: Any) -> float:
    import psutil

    try:
        t = proc.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


class PeakSampler(threading.Thread):
    """Peak RSS (children included) of a few processes, sampled every ``interval`` seconds."""

    def __init__(self, procs: Mapping[str, Any], interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.procs = dict(procs)
        self.interval = interval
        self.peak = {name: tree_rss(p) for name, p in self.procs.items()}
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for name, proc in self.procs.items():
                self.peak[name] = max(self.peak[name], tree_rss(proc))
            self.samples += 1
            self._halt.wait(self.interval)

    def stop(self) -> dict[str, int]:
        self._halt.set()
        self.join()
        for name, proc in self.procs.items():
            self.peak[name] = max(self.peak[name], tree_rss(proc))
        return self.peak


# -- the worker subprocess ----------------------------------------------------------------------
def _oss_client(spec: Mapping[str, Any], crc_check: bool):
    import alibabacloud_oss_v2 as oss

    cfg = oss.config.load_default()
    cfg.region, cfg.endpoint, cfg.use_path_style = REGION, spec["endpoint"], True
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(spec["access_key_id"],
                                                                         spec["access_key_secret"])
    cfg.disable_upload_crc64_check = not crc_check
    return oss.Client(cfg)


class SizedStream:
    """A download of known length as an upload body: ``len()`` makes requests send ``Content-Length`` (not
    chunked), iteration hands it 1 MiB blocks, and ``read``/``seek`` let the SDK's CRC tee wrap it."""

    def __init__(self, source: Any, size: int, block: int = MIB) -> None:
        self.source, self.size, self.block = source, size, block

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        while chunk := self.source.read(self.block):
            yield chunk

    def read(self, n: int = -1) -> bytes:
        return self.source.read(n)

    def seekable(self) -> bool:
        return False

    def seek(self, *args: Any) -> int:
        raise io.UnsupportedOperation("a download stream is not seekable")

    def tell(self) -> int:
        raise io.UnsupportedOperation("a download stream is not seekable")


class PipedStream(SizedStream):
    """:class:`SizedStream` whose blocks are read by a thread ``depth`` blocks ahead, so the download and the
    upload of one backup overlap (``put`` alternates: read a block, send it)."""

    def __init__(self, source: Any, size: int, block: int = MIB, depth: int = 4) -> None:
        super().__init__(source, size, block)
        self.depth = depth

    def __iter__(self):
        import queue

        blocks: queue.Queue = queue.Queue(maxsize=self.depth)
        failure: list[BaseException] = []

        def pump() -> None:
            try:
                while chunk := self.source.read(self.block):
                    blocks.put(chunk)
            except BaseException as err:  # noqa: BLE001 - handed to the consumer
                failure.append(err)
            finally:
                blocks.put(None)

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        while (chunk := blocks.get()) is not None:
            yield chunk
        thread.join()
        if failure:
            raise failure[0]


def _ready_then_wait() -> None:
    print(json.dumps({"event": "ready", "pid": os.getpid()}), flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("the parent did not say go")


def _worker_archive(spec: Mapping[str, Any]) -> dict:
    # what execute() imports lazily, imported now: the baseline is "after imports" and the timing excludes them
    import alibabacloud_oss_v2  # noqa: F401
    import alibabacloud_oss_v2.crc  # noqa: F401
    import alibabacloud_rds20140815.client  # noqa: F401

    from aliyun_ops.logic.crc64 import BACKEND
    from aliyun_ops.operators.rds import ArchiveRdsBackupsToOssOperator

    class FakeTI:
        dag_id, task_id, map_index, try_number = "bench_rds_archive", "archive_backups", -1, 1

        def __init__(self) -> None:
            self.xcom: dict[str, Any] = {}

        def xcom_push(self, key: str, value: Any) -> None:
            self.xcom[key] = value

    op = ArchiveRdsBackupsToOssOperator(task_id="archive_backups", instance_ids=[spec["instance_id"]],
                                        region=REGION, bucket=BUCKET, start=WINDOW_START,
                                        concurrency=spec["concurrency"], **spec.get("operator_kwargs", {}))
    context = {"ti": FakeTI(), "run_id": spec.get("run_id", "bench__1")}
    _ready_then_wait()
    c0, t0 = time.process_time(), time.perf_counter()
    rows = op.execute(context)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    done = [r for r in rows if r["status"] == "success"]
    return {"seconds": seconds, "cpu_s": cpu, "bytes": sum(int(r["size"]) for r in done), "objects": len(done),
            "statuses": sorted({r["status"] for r in rows}), "ok": len(done) == len(spec["backups"]),
            "crc_backend": BACKEND}


def _worker_raw(spec: Mapping[str, Any], mode: str) -> dict:
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    import alibabacloud_oss_v2 as oss

    client = _oss_client(spec, crc_check=mode not in ("put", "put-pipe"))
    uploader = client.uploader(part_size=spec["part_size"], parallel_num=spec["parallel_num"])

    def copy(backup: Mapping[str, Any]) -> int:
        key = f"raw/{backup['BackupId']}.tar"
        with urllib.request.urlopen(backup["BackupDownloadURL"], timeout=60) as response:  # noqa: S310
            if mode == "uploader":
                uploader.upload_from(oss.PutObjectRequest(bucket=BUCKET, key=key), response)
            else:
                body = (PipedStream if mode == "put-pipe" else SizedStream)(response, int(backup["BackupSize"]))
                client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=body))
        head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))
        return int(head.content_length)

    _ready_then_wait()
    c0, t0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=spec["concurrency"]) as pool:
        sizes = list(pool.map(copy, spec["backups"]))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    expected = [int(b["BackupSize"]) for b in spec["backups"]]
    return {"seconds": seconds, "cpu_s": cpu, "bytes": sum(sizes), "objects": len(sizes), "ok": sizes == expected}


def worker_main(phase: str, spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    if phase == "archive":
        result = _worker_archive(spec)
    else:
        result = _worker_raw(spec, phase)
    print(json.dumps({"event": "done", **result}), flush=True)
    return 0


# -- the parent ---------------------------------------------------------------------------------
def _worker_env(emu: Any, airflow_home: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH", "")]),
        "AIRFLOW_HOME": airflow_home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False", "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "AIRFLOW_CONN_ALIYUN_DEFAULT": json.dumps({"conn_type": "aliyun", "extra": {
            "access_key_id": emu.access_key_id, "access_key_secret": emu.access_key_secret, "region": REGION,
            "endpoint": emu.base_url, **FAST_RETRIES}}),
    })
    return env


def _describe_backups(emu: Any, instance: str) -> list[dict]:
    from alibabacloud_rds20140815 import models
    from alibabacloud_rds20140815.client import Client
    from alibabacloud_tea_openapi.models import Config

    client = Client(Config(access_key_id=emu.access_key_id, access_key_secret=emu.access_key_secret,
                           region_id=REGION, endpoint=emu.endpoint, protocol="http"))
    res = client.describe_backups(models.DescribeBackupsRequest(dbinstance_id=instance, page_size=100))
    return [b.to_map() for b in res.body.items.backup]


def _delete_all(emu: Any) -> int:
    """Delete every object of the bucket (and abort open uploads); returns how many objects were deleted."""
    import alibabacloud_oss_v2 as oss

    client = _oss_client({"endpoint": emu.base_url, "access_key_id": emu.access_key_id,
                          "access_key_secret": emu.access_key_secret}, crc_check=False)
    deleted = 0
    for page in client.list_objects_v2_paginator().iter_page(oss.ListObjectsV2Request(bucket=BUCKET)):
        for obj in page.contents or []:
            client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key=obj.key))
            deleted += 1
    uploads = client.list_multipart_uploads(oss.ListMultipartUploadsRequest(bucket=BUCKET))
    for up in uploads.uploads or []:
        client.abort_multipart_upload(oss.AbortMultipartUploadRequest(bucket=BUCKET, key=up.key,
                                                                      upload_id=up.upload_id))
    return deleted


def _read_event(stream: Any, log: Any) -> dict | None:
    """The next protocol line (``{"event": ...}``) of a worker's stdout; other lines (logs) go to ``log``."""
    for line in stream:
        if line.startswith('{"event"'):
            return json.loads(line)
        log.write(line)
        log.flush()
    return None


def system_cpu() -> tuple[float, float]:
    """``(busy, steal)`` CPU seconds of the whole machine so far (all cores; busy leaves out idle, iowait and
    steal)."""
    import psutil

    t = psutil.cpu_times()
    steal = getattr(t, "steal", 0.0)
    busy = sum(t) - t.idle - getattr(t, "iowait", 0.0) - steal - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
    return busy, steal


def wait_quiet(exclude: Sequence[Any], max_wait: float, threshold: float = 0.15, window: float = 3.0) -> dict:
    """Wait (at most ``max_wait`` s) until the other processes of the machine use less than ``threshold`` of a
    core over ``window`` seconds: other people's tests on a shared 2-core machine skew a phase. Returns
    ``{"waited_s", "other_cores"}`` (the last window's load)."""
    start = time.monotonic()
    while True:
        busy0, own0 = system_cpu()[0], sum(cpu_seconds(p) for p in exclude)
        time.sleep(window)
        other = (system_cpu()[0] - busy0 - (sum(cpu_seconds(p) for p in exclude) - own0)) / window
        waited = time.monotonic() - start
        if other < threshold or waited >= max_wait:
            return {"waited_s": round(waited, 1), "other_cores": round(max(other, 0.0), 2)}


def run_phase(emu: Any, phase: str, spec: dict, workdir: Path, log: Any,
              worker_env: Mapping[str, str] | None = None) -> dict:
    """Start a worker for ``phase``, take its baseline RSS when it is ready, sample it while it works; also the
    CPU the rest of the machine used meanwhile (``other_cores``: load from outside the benchmark)."""
    import psutil

    spec_path = workdir / f"spec-{phase.replace(':', '-')}.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "bench.rds_archive", "--worker", phase, "--spec", str(spec_path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=ROOT,
                            env={**_worker_env(emu, str(workdir / "airflow")), **(worker_env or {})}, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if _read_event(proc.stdout, log) is None:
            proc.wait(timeout=30)
            raise RuntimeError(f"{phase} worker did not start (exit {proc.returncode}); see the log")
        worker, emulator = psutil.Process(proc.pid), psutil.Process(emu.proc.pid)
        baseline = tree_rss(worker)
        emu_cpu0, worker_cpu0 = cpu_seconds(emulator), cpu_seconds(worker)
        (busy0, steal0), t0 = system_cpu(), time.perf_counter()
        sampler = PeakSampler({"worker": worker, "emulator": emulator})
        sampler.start()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        res = _read_event(proc.stdout, log)
        (busy1, steal1), wall = system_cpu(), time.perf_counter() - t0
        worker_cpu = cpu_seconds(worker) - worker_cpu0
        peaks = sampler.stop()
        emu_cpu = cpu_seconds(emulator) - emu_cpu0
        proc.stdin.close()
        _read_event(proc.stdout, log)  # drain the rest (logs) to the log
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if res is None:
        raise RuntimeError(f"{phase} worker failed (exit {proc.returncode}); see the log")
    other = max(0.0, busy1 - busy0 - worker_cpu - emu_cpu)
    return phase_summary(res["bytes"], res["seconds"], peaks["worker"], baseline, peaks["emulator"],
                         worker_cpu=res["cpu_s"], emulator_cpu=emu_cpu, ok=bool(res["ok"]),
                         objects=res["objects"], rss_samples=sampler.samples, crc_backend=res.get("crc_backend"),
                         other_cores=round(other / wall, 2) if wall else 0.0,
                         steal_cores=round((steal1 - steal0) / wall, 2) if wall else 0.0)


def _machine() -> dict:
    import psutil

    model = ""
    try:
        model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), "")
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "plugins", "emulator"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", []
    return {"commit": commit, "uncommitted_in_plugins_or_emulator": [ln[3:] for ln in dirty if ln.strip()], "nproc": os.cpu_count(), "cpu_model": model, "ram_gib": round(psutil.virtual_memory().total / GIB, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def run(sizes: Sequence[int], backups: int, concurrency: int, raw_modes: Sequence[str], part_size: int | None,
        parallel_num: int | None, order: Sequence[str], data_dir: str | None, log_path: Path,
        worker_env: Mapping[str, str] | None = None,
        repeat: int = 1, quiet_wait: float = 0.0) -> dict:
    import psutil

    from emulator.control import EmulatorProcess

    cases = []
    with tempfile.TemporaryDirectory(prefix="bench-rds-archive-") as tmp, open(log_path, "a") as log, \
            EmulatorProcess(time_scale=1, data_dir=data_dir) as emu:
        workdir = Path(tmp)
        emulator = psutil.Process(emu.proc.pid)
        for size in sizes:
            free = shutil.disk_usage(emu.data_dir).free
            n = backups_that_fit(free, size, backups)
            note = "" if n == backups else f"{backups} backups asked, {n} fit on the disk ({free / GIB:.1f} GiB free)"
            if n == 0:
                cases.append({"size_bytes": size, "backups": 0, "skipped": note})
                print(f"[rds_archive] {size_label(size)}: skipped, {note}", flush=True)
                continue
            emu.admin.load_fleet(fleet_spec(size, n))
            listed = _describe_backups(emu, instance_id(size))
            spec = {"endpoint": emu.base_url, "access_key_id": emu.access_key_id,
                    "access_key_secret": emu.access_key_secret, "instance_id": instance_id(size),
                    "concurrency": concurrency, "part_size": part_size or 8 * MIB, "parallel_num": parallel_num or 2,
                    "operator_kwargs": {k: v for k, v in {"part_size": part_size, "parallel_num": parallel_num}.items()
                                        if v},
                    "backups": [{k: b[k] for k in ("BackupId", "BackupSize", "BackupDownloadURL")} for b in listed]}
            runs: dict[str, list[dict]] = {}
            skipped: dict[str, str] = {}
            for rep in range(1, repeat + 1):
                for phase in phase_names(order, raw_modes):
                    if not raw_mode_fits(phase, size, concurrency, psutil.virtual_memory().available):
                        skipped[phase] = "concurrency x size is more than half the available memory"
                        continue
                    quiet = wait_quiet([emulator], quiet_wait) if quiet_wait > 0 else {}
                    spec["run_id"] = f"bench__{size}_{rep}_{phase.replace(':', '-')}"
                    print(f"[rds_archive] {size_label(size)} x {n}, run {rep}/{repeat}: {phase} "
                          f"(other load before: {quiet.get('other_cores', '?')} cores, waited "
                          f"{quiet.get('waited_s', 0)} s; load average {os.getloadavg()[0]:.2f}) ...", flush=True)
                    free, load = shutil.disk_usage(emu.data_dir).free, [round(x, 2) for x in os.getloadavg()]
                    p = run_phase(emu, phase, spec, workdir, log, worker_env)
                    p.update(run=rep, disk_free_gib_before=round(free / GIB, 1), objects_deleted=_delete_all(emu),
                             quiet_wait=quiet, loadavg_before=load)
                    runs.setdefault(phase, []).append(p)
                    print(f"[rds_archive]   {p['seconds']:.1f} s, {p['mib_per_s']:.1f} MiB/s, worker peak "
                          f"{p['worker_peak_rss_mib']:.1f} MiB (baseline {p['worker_baseline_rss_mib']:.1f}), "
                          f"CPU s worker {p['worker_cpu_s']:.1f} emulator {p['emulator_cpu_s']:.1f}, other load "
                          f"{p['other_cores']:.2f} cores, ok {p['ok']}", flush=True)
            phases = {name: aggregate_runs(rs) for name, rs in runs.items()}
            cases.append({"size_bytes": size, "backups": n, "disk_note": note, "phases": phases,
                          "skipped_phases": skipped, "backup_ids": [b["BackupId"] for b in listed]})
    return {"cases": cases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5", help="backup sizes in GiB, comma separated (default 1,5)")
    parser.add_argument("--sizes-mib", default=None, help="backup sizes in MiB instead (quick runs), e.g. 8")
    parser.add_argument("--backups", type=int, default=4, help="backups per size (default 4; fewer if the disk "
                                                               "cannot hold them)")
    parser.add_argument("--concurrency", type=int, default=4, help="backups copied at once (default 4)")
    parser.add_argument("--raw", default="put", help=f"baseline modes, comma separated, from {','.join(RAW_MODES)}; "
                                                     "the first one is the ratio's baseline (default put)")
    parser.add_argument("--part-mib", type=int, default=None, help="part size in MiB (default: the operator's, "
                                                                   "derived from its memory budget)")
    parser.add_argument("--parallel", type=int, default=None, help="parts in flight per backup (default: the "
                                                                   "operator's)")
    parser.add_argument("--order", default="raw,archive", help="phase order per size (default raw,archive)")
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE",
                        help="investigation: extra environment for the workers (e.g. MALLOC_ARENA_MAX=2)")
    parser.add_argument("--repeat", type=int, default=1, help="run each size's phase sequence this many times "
                                                               "(interleaved); the median run is reported")
    parser.add_argument("--quiet-wait", type=float, default=0.0, metavar="S",
                        help="before each phase, wait up to S seconds for the rest of the machine to use less than "
                             "0.15 core (shared machines)")
    parser.add_argument("--data-dir", default=None, help="emulator data directory (default: a temp directory)")
    parser.add_argument("--out", default=str(RESULTS_DIR), help="results directory")
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.spec)

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)
    sizes = parse_sizes(args.sizes, args.sizes_mib)
    raw_modes = [m.strip() for m in args.raw.split(",") if m.strip()]
    if not raw_modes or set(raw_modes) - set(RAW_MODES):
        parser.error(f"--raw takes modes from {RAW_MODES}")
    order = [p.strip() for p in args.order.split(",") if p.strip()]
    if set(order) - {"archive", "raw"} or len(set(order)) != len(order):
        parser.error("--order takes archive and/or raw")
    worker_env = dict(kv.split("=", 1) for kv in args.worker_env)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    log_path = (out_dir if not args.no_save else Path(tempfile.gettempdir())) / f"rds_archive-{stamp}.log"
    started, machine = time.time(), _machine()  # the code's commit as the run starts
    part_size = args.part_mib * MIB if args.part_mib else None
    result = run(sizes, args.backups, args.concurrency, raw_modes, part_size, args.parallel, order,
                 args.data_dir, log_path, worker_env, args.repeat, args.quiet_wait)
    rows = [case_row(c["size_bytes"], c["backups"], c["phases"], raw_modes[0]) for c in result["cases"]
            if c.get("phases")]
    targets = target_checks(rows)
    doc = {"benchmark": "rds_archive", "issue": 12, "stamp": stamp, "wall_s": round(time.time() - started, 1),
           "command": "python -m bench.rds_archive " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": machine, "machine_at_end": _machine(),
           "config": {"sizes": sizes, "backups": args.backups, "concurrency": args.concurrency, "raw": raw_modes,
                      "part_size": part_size, "parallel_num": args.parallel, "order": order,
                      "worker_env": worker_env, "repeat": args.repeat,
                      "quiet_wait_s": args.quiet_wait,
                      "ratio_target": RATIO_TARGET, "rss_target_bytes": RSS_TARGET_BYTES},
           "rows": rows, "targets": targets, **result}
    print()
    print(f"RDS archive vs raw loopback copy ({raw_modes[0]}), concurrency {args.concurrency}, "
          f"parts of {f'{args.part_mib} MiB' if part_size else 'the operator size'} x "
          f"{args.parallel or 'the operator number'}")
    print(text_table(rows))
    for t in targets:
        print(f"  {t['size']}: ratio {t['ratio']} (>= {RATIO_TARGET}: {t['ratio_met']}; per repeat "
              f"{_cell(t['ratio_pairs'])}; CPU ratio {_cell(t['cpu_ratio'])}), worker peak RSS "
              f"{t['worker_peak_rss_mib']} MiB (< 200 MB: {t['rss_met']})")
    if not args.no_save:
        text = json.dumps(portable(doc), indent=2)
        (out_dir / f"rds_archive-{stamp}.json").write_text(text)
        (out_dir / "rds_archive-latest.json").write_text(text)
        print(f"saved {out_dir / f'rds_archive-{stamp}.json'} (log {log_path.name})")
    ok = all(c.get("phases") and all(p["ok"] for p in c["phases"].values()) for c in result["cases"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
