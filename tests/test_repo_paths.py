"""Nothing committed names one machine's paths: docs, bench results and their logs name paths relative to the
repository (bench writers go through ``bench.paths.portable``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MACHINE_PATH = re.compile(r"(?<![\w.])(/work/|/root/|/home/\w|/tmp/|/private/var/|[A-Z]:\\\\Users\\\\)")
CHECKED = ("bench/results/", "docs/", "README.md", "CONTRIBUTING.md", "bench/README.md", "emulator/README.md",
           "plugins/aliyun_ops/README.md")


def committed() -> list[Path]:
    out = subprocess.run(["git", "ls-files", *CHECKED], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if line]


def test_committed_docs_and_bench_results_name_no_machine_path():
    offenders = []
    for path in committed():
        if not path.exists() or path.suffix not in (".md", ".json", ".log", ".txt", ".svg"):
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if MACHINE_PATH.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert not offenders, "\n".join(offenders[:20])


def test_bench_paths_are_made_portable():
    import tempfile

    from bench.paths import portable

    doc = {"dir": str(ROOT / "bench" / "results"), "cmd": [f"{ROOT}/.venv/bin/python", "x"],
           "work": f"{tempfile.gettempdir()}/soak/w1", "n": 3}
    out = portable(doc)
    assert out["dir"] == "bench/results" and out["work"] == "<tmp>/soak/w1" and out["n"] == 3
    assert not MACHINE_PATH.search(str(out)), out
