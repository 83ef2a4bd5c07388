"""``python -m bench`` (``make bench``): the backup-at-scale benchmark of issue 5 with sane defaults.

Examples::

    python -m bench                                  # sizes 10 and 100: seed port, OOS loop, the Airflow DAG on
                                                     # SQLite/LocalExecutor and PostgreSQL/CeleryExecutor
    python -m bench --sizes 10,100,1000              # add 1,000 (about 20 more minutes)
    python -m bench --sizes 10 --approaches seed,oos # baselines only
    python -m bench --time-scale 2000 --qps '{"ecs:DescribeImages": 20}'

The other benchmarks run on their own: ``python -m bench.emulator_rpc``, ``python -m bench.oss_stream``.
Results: bench/results/backup_scale-latest.{json,md} and *.svg; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .backup_scale import Options, markdown_table, run


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _strs(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    d = Options()
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=_ints, default=list(d.sizes), help="fleet sizes, e.g. 10,100,1000")
    ap.add_argument("--approaches", type=_strs, default=list(d.approaches),
                    help="seed,oos,dag,dag-celery (dag-celery needs PostgreSQL and Redis on loopback)")
    ap.add_argument("--source-regions", type=_strs, default=list(d.sources),
                    help=f"comma-separated source regions (default {','.join(d.sources)})")
    ap.add_argument("--destination-regions", type=_strs, default=list(d.destinations),
                    help=f"comma-separated destination regions (default {','.join(d.destinations)})")
    ap.add_argument("--dag-ideal-seconds", type=float, default=d.dag_ideal_seconds,
                    help="choose the DAG run's time scale so the ideal takes this many real seconds")
    ap.add_argument("--baseline-ideal-seconds", type=float, default=d.baseline_ideal_seconds)
    ap.add_argument("--time-scale", type=float, default=None, help="one fixed time scale for every run")
    ap.add_argument("--qps", type=json.loads, default=None, help='emulator QPS limits, e.g. {"ecs:DescribeImages": 20}')
    ap.add_argument("--poll-interval", type=int, default=d.poll_interval, help="DAG param (real seconds)")
    ap.add_argument("--concurrency", default=d.concurrency, help="DAG param: number or percentage")
    ap.add_argument("--parallelism", type=int, default=d.parallelism, help="Airflow [core] parallelism")
    ap.add_argument("--seed-mode", choices=("intended", "faithful"), default=d.seed_mode)
    ap.add_argument("--faithful-seed-sizes", type=_ints, default=list(d.faithful_seed_sizes),
                    help="sizes at which the byte-for-byte seed loop (hot loop) also runs")
    ap.add_argument("--dag-timeout", type=float, default=d.dag_timeout, help="real seconds per DAG run")
    ap.add_argument("--baseline-timeout", type=float, default=d.baseline_timeout)
    ap.add_argument("--backend", choices=("auto", "postgres", "sqlite"), default=d.backend,
                    help="metadata DB of the LocalExecutor run (dag-celery always uses PostgreSQL)")
    ap.add_argument("--out", default=d.out_dir)
    a = ap.parse_args(argv)
    concurrency = int(a.concurrency) if str(a.concurrency).isdigit() else a.concurrency
    opts = Options(sizes=a.sizes, approaches=a.approaches, sources=a.source_regions,
                   destinations=a.destination_regions, dag_ideal_seconds=a.dag_ideal_seconds,
                   baseline_ideal_seconds=a.baseline_ideal_seconds, time_scale=a.time_scale, qps=a.qps,
                   poll_interval=a.poll_interval, concurrency=concurrency, parallelism=a.parallelism,
                   seed_mode=a.seed_mode, faithful_seed_sizes=a.faithful_seed_sizes, dag_timeout=a.dag_timeout,
                   baseline_timeout=a.baseline_timeout, out_dir=a.out, backend=a.backend)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)  # darabonba ignores NO_PROXY: keep loopback calls local
    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {msg}", flush=True)

    rows = run(opts, log=log)
    print(markdown_table([r for r in rows if r.get("wall_s")]))
    for r in rows:
        if r.get("error"):
            print(f"ERROR {r['instances']} {r['approach']}: {r['error'][:300]}", file=sys.stderr)
    return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
