"""Where the RDS archive worker's CPU goes (issue 12): ``python -m bench.rds_archive_profile``.

Runs :class:`aliyun_ops.operators.rds.ArchiveRdsBackupsToOssOperator` in this process against a fresh emulator
(the fleet and the operator of ``python -m bench.rds_archive``), with cProfile on a per-thread CPU clock in every
thread (``threading.setprofile``), and prints the worker's and the emulator's CPU seconds and the top functions by
their own CPU time. cProfile inflates Python-level code far more than C calls (os.environ's iteration by 30x,
a CRC call hardly at all): ``--no-profile`` gives the unprofiled CPU figures to set beside it.

    .venv/bin/python -m bench.rds_archive_profile --size-gib 1 --backups 4 --out /tmp/archive.pstats
    PYTHONPATH=/tmp/scratch .venv/bin/python -m bench.rds_archive_profile   # with a package from a scratch dir
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import rds_archive as bench


class FakeTI:
    dag_id, task_id, map_index, try_number = "bench_rds_archive", "archive_backups", -1, 1

    def xcom_push(self, key: str, value: object) -> None:
        pass


def profile_threads() -> tuple[list[cProfile.Profile], cProfile.Profile]:
    """A profiler for this thread, and one started in each thread that starts from now on (until
    ``threading.setprofile(None)``)."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def boot(frame: object, event: str, arg: object) -> None:
        prof = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(prof)
        sys.setprofile(None)
        prof.enable()

    threading.setprofile(boot)
    main = cProfile.Profile(time.thread_time)
    main.enable()
    return profiles, main


def run(size: int, backups: int, concurrency: int, profile: bool, out: str | None, top: int) -> None:
    import psutil

    from emulator.control import EmulatorProcess

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)
    with tempfile.TemporaryDirectory() as tmp, EmulatorProcess(time_scale=1) as emu:
        emu.admin.load_fleet(bench.fleet_spec(size, backups))
        os.environ.update(bench._worker_env(emu, str(Path(tmp) / "airflow")))
        # what execute() imports lazily, imported now: neither the figures nor the profile count imports
        import alibabacloud_oss_v2  # noqa: F401
        import alibabacloud_rds20140815.client  # noqa: F401

        from aliyun_ops.logic import crc64
        from aliyun_ops.operators.rds import ArchiveRdsBackupsToOssOperator

        op = ArchiveRdsBackupsToOssOperator(task_id="archive_backups", instance_ids=[bench.instance_id(size)],
                                            region=bench.REGION, bucket=bench.BUCKET, start=bench.WINDOW_START,
                                            concurrency=concurrency)
        emulator = psutil.Process(emu.proc.pid)
        e0, c0, t0 = bench.cpu_seconds(emulator), time.process_time(), time.perf_counter()
        profiles, main = profile_threads() if profile else ([], None)
        rows = op.execute({"ti": FakeTI(), "run_id": "profile"})
        if main is not None:
            main.disable()
            threading.setprofile(None)
        wall, cpu, ecpu = time.perf_counter() - t0, time.process_time() - c0, bench.cpu_seconds(emulator) - e0
    gib = size * backups / bench.GIB
    backend = getattr(crc64, "BACKEND", "crcmod")  # the module before 2026-11-30 had crcmod only
    print(f"{backups} x {bench.size_label(size)}, concurrency {concurrency}, CRC-64 {backend}: wall {wall:.1f} s, "
          f"worker CPU {cpu:.1f} s ({cpu / gib:.2f}/GiB), emulator CPU {ecpu:.1f} s ({ecpu / gib:.2f}/GiB), "
          f"statuses {sorted({r['status'] for r in rows})}{' (profiled)' if main else ''}")
    if main is not None:
        stats = pstats.Stats(main)
        for prof in profiles:
            stats.add(prof)
        if out:
            stats.dump_stats(out)
        stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=1.0, help="backup size in GiB (default 1)")
    parser.add_argument("--backups", type=int, default=4, help="backups (default 4)")
    parser.add_argument("--concurrency", type=int, default=4, help="the operator's concurrency (default 4)")
    parser.add_argument("--no-profile", action="store_true", help="CPU figures only, no profiler")
    parser.add_argument("--out", default=None, help="also save the pstats here")
    parser.add_argument("--top", type=int, default=30, help="functions to print (default 30)")
    args = parser.parse_args(argv)
    run(int(args.size_gib * bench.GIB), args.backups, args.concurrency, not args.no_profile, args.out, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
