"""Background processes of a local deployment: started in their own session, tracked by pid files, stopped
with their children. Shared by ``make demo`` and ``make cluster``.

Example::

    spawn(state_dir, "emulator", [sys.executable, "-m", "emulator", "serve"], env=os.environ.copy(), cwd=ROOT)
    wait_http("http://127.0.0.1:9100/_emulator/health", 30, "emulator")
    stop_all(state_dir)
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil


def spawn(state_dir: Path, name: str, cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """Start ``cmd`` in its own session, log to ``<state_dir>/<name>.log``, pid in ``<name>.pid``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    record(state_dir, name, proc.pid)
    print(f"started {name} (pid {proc.pid}, log {state_dir / (name + '.log')})")
    return proc


def record(state_dir: Path, name: str, pid: int) -> None:
    """Remember a process started elsewhere so that :func:`stop_all` stops it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / f"{name}.pid").write_text(str(pid))


def wait_http(url: str, timeout: float, what: str) -> None:
    """Return once ``url`` answers below 500; exit with a pointer to the logs after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status < 500:
                    return
        except Exception:
            time.sleep(1)
    raise SystemExit(f"{what} did not come up at {url} within {timeout:.0f}s: see the logs next to its pid file")


def stop_all(state_dir: Path, quiet: bool = False) -> None:
    """Stop every process with a pid file in ``state_dir``, with its children: SIGTERM, 20 s, SIGKILL."""
    for pidfile in sorted(state_dir.glob("*.pid")) if state_dir.exists() else []:
        pid = int(pidfile.read_text())
        pidfile.unlink()
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=20)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        if not quiet:
            print(f"stopped {pidfile.stem} (pid {pid}, {len(procs)} processes)")
