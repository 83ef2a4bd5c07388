"""A real Airflow 3.3 deployment on this machine: api-server, scheduler, triggerer, dag-processor, and with
``executor="celery"`` Celery workers on Redis (the topology of ``docker-compose.yaml``, run natively).

Used by ``make cluster`` (:mod:`scripts.cluster`), the system test (``tests/system``) and the benchmarks.

Example::

    with AirflowCluster(tmp / "airflow", connection, executor="celery", workers=2) as cluster:
        cluster.prepare_db()
        cluster.start()
        cluster.trigger("ecs_cross_region_backup", {"poll_interval": 2}, run_id="manual__1")

Each component is its own process group (``start_new_session``); :meth:`AirflowCluster.stop` sends SIGTERM to
each group, waits, then SIGKILLs the group and any descendant that left it. Everything listens on loopback.

Metadata database: PostgreSQL at 127.0.0.1:5432 (trust auth, user ``postgres``, a fresh database per run made
with ``createdb -T`` from a migrated template) when the venv has a PostgreSQL driver (psycopg2 or psycopg 3).
Without one it falls back to SQLite (a fresh copy of a migrated template file per run). Airflow 3 accepts
LocalExecutor on SQLite. Metrics are read from the database with ``sqlite3`` or ``psql``, never through
Airflow's ORM, so the harness process stays light.

CeleryExecutor needs PostgreSQL (metadata and Celery results) and Redis (broker, ``REDIS_URL``). Each cluster
sends its tasks to its own Celery queue (``queue``), so two clusters on one Redis never take each other's tasks.
Every listening port (api-server, the workers' and triggerer's log servers) is a free loopback port unless given.

Measurement helpers:

* :meth:`AirflowCluster.cpu_snapshot`: per component, the sum over its live process tree of
  user + system + children_user + children_system (psutil). Children's times reach ``children_*`` once
  their parent reaps them, so the difference of two snapshots counts every process that lived between
  them. Orphans re-parented to init are the exception.
* :meth:`AirflowCluster.rss`: the sum of RSS over every component's tree.
* :meth:`AirflowCluster.task_states`: ``(dag_id, task_id, map_index, try_number) -> state`` for one run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
COMPONENTS = ("api-server", "scheduler", "triggerer", "dag-processor")
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_driver() -> str | None:
    """SQLAlchemy driver name for the PostgreSQL DBAPI installed in this interpreter, if any."""
    if importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2"
    if importlib.util.find_spec("psycopg"):
        return "postgresql+psycopg"
    return None


def postgres_up() -> bool:
    try:
        return subprocess.run(["pg_isready", "-h", PG_HOST, "-p", str(PG_PORT)], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def redis_up(url: str = REDIS_URL) -> bool:
    """True when the Redis server of ``url`` answers PING."""
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3).ping())
    except Exception:
        return False


def celery_unavailable(broker_url: str = REDIS_URL) -> str | None:
    """Why a Celery cluster cannot start here (``None`` when it can): for skip messages and clear errors."""
    if not importlib.util.find_spec("airflow.providers.celery"):
        return "apache-airflow-providers-celery is not installed (requirements.txt)"
    if not postgres_driver():
        return "no PostgreSQL driver (psycopg2-binary) is installed (requirements.txt)"
    if not postgres_up():
        return f"PostgreSQL does not answer at {PG_HOST}:{PG_PORT}"
    if not redis_up(broker_url):
        return f"Redis does not answer at {broker_url}"
    return None


class AirflowCluster:
    """Start/stop the Airflow components on a metadata DB; trigger and watch DAG runs.

    ``executor``: ``"local"`` (LocalExecutor, PostgreSQL or SQLite) or ``"celery"`` (CeleryExecutor with
    ``workers`` Celery workers; PostgreSQL and Redis). ``db_name``: a database kept between runs (created and
    migrated when missing, as ``make cluster`` does); default a fresh one per run, dropped on exit.
    """

    def __init__(self, work_dir: Path, connection: dict, parallelism: int = 8, backend: str = "auto",
                 extra_env: dict[str, str] | None = None, template_dir: Path | None = None,
                 dags_path: Path | None = None, dag_id: str = "ecs_cross_region_backup", *,
                 executor: str = "local", workers: int = 2, worker_concurrency: int = 8,
                 broker_url: str = REDIS_URL, db_name: str | None = None, port: int | None = None,
                 queue: str | None = None) -> None:
        if executor not in ("local", "celery"):
            raise ValueError(f"executor must be 'local' or 'celery', not {executor!r}")
        self.work_dir = Path(work_dir)
        self.home = self.work_dir / "airflow_home"
        self.logs = self.work_dir / "logs"
        self.template_dir = Path(template_dir or self.work_dir.parent / "_airflow_template")
        self.connection = connection
        self.dags_path = Path(dags_path or ROOT / "dags")
        self.dag_id = dag_id
        self.parallelism = parallelism
        self.extra_env = extra_env or {}
        driver = postgres_driver()
        if backend == "auto":
            backend = "postgres" if driver and postgres_up() else "sqlite"
        if backend == "postgres" and not driver:
            raise RuntimeError("no PostgreSQL driver in the venv: requirements.txt needs psycopg2-binary")
        if executor == "celery" and backend != "postgres":
            raise RuntimeError(f"CeleryExecutor needs PostgreSQL: {celery_unavailable(broker_url) or 'backend=sqlite'}")
        self.backend = backend
        self.driver = driver
        self.executor = executor
        self.workers = workers if executor == "celery" else 0
        self.worker_concurrency = worker_concurrency
        self.broker_url = broker_url
        self.keep_db = db_name is not None
        self.db_name = db_name or f"aliyun_bench_{os.getpid()}_{int(time.time())}"
        self.queue = queue or f"aliyun-ops-{os.getpid()}-{secrets.token_hex(3)}"
        self.port = port or free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = self._env()
        self.component_env = {name: {} for name in self.commands()}
        for name in [*(n for n in self.commands() if n.startswith("celery-worker")), "scheduler"]:
            self.component_env[name]["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
        self.component_env["triggerer"]["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(free_port())

    # -- configuration --------------------------------------------------------------------------
    def _sql_conn(self, db: str | None = None) -> str:
        if self.backend == "postgres":
            return f"{self.driver}://{PG_USER}@{PG_HOST}:{PG_PORT}/{db or self.db_name}"
        return f"sqlite:///{self.work_dir / 'airflow.db'}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy", "all_proxy") and not k.startswith("AIRFLOW")}
        base = f"http://127.0.0.1:{self.port}"
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self._sql_conn(),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if self.executor == "celery" else "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_path),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            # a task's first call to the execution API can wait on a busy 2-core machine; the default 5 s timeout
            # failed it after 4 attempts, and the DAG's retry delay then cost minutes (seen in the benchmark)
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",   # only our triggered runs, never the cron one
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([
                {"name": "project-dags", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                 "kwargs": {"path": str(self.dags_path), "refresh_interval": 0}}]),
            "AIRFLOW_CONN_ALIYUN_DEFAULT": json.dumps(self.connection),
            "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), str(ROOT / "plugins"),
                                                      os.environ.get("PYTHONPATH", "")) if p),
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        })
        if self.executor == "celery":
            env.update({
                "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self._sql_conn(),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",  # a dead worker holds at most its own tasks
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            })
        env.update(self.extra_env)
        return env

    def cli(self, *args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
        """`airflow <args>` with this deployment's environment (or ``env``), output captured."""
        return subprocess.run([str(VENV_BIN / "airflow"), *args], env=env or self.env, cwd=self.work_dir,
                              capture_output=True, text=True, timeout=timeout)

    # -- database ---------------------------------------------------------------------------------
    def _psql(self, sql: str, db: str = "postgres", timeout: float = 60) -> str:
        out = subprocess.run(["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", db, "-At",
                              "-F", "\t", "-c", sql], capture_output=True, text=True, timeout=timeout)
        if out.returncode:
            raise RuntimeError(f"psql failed: {out.stderr[-500:]}")
        return out.stdout

    def _migrate(self, env: dict) -> None:
        out = self.cli("db", "migrate", env=env, timeout=600)
        if out.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{out.stderr[-3000:]}")

    def prepare_db(self) -> float:
        """A fresh, migrated metadata DB for this run; returns the seconds it took."""
        started = time.monotonic()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.backend == "postgres" and self.keep_db:
            if not self._psql(f"SELECT 1 FROM pg_database WHERE datname='{self.db_name}'").strip():
                subprocess.run(["createdb", "-h", PG_HOST, "-U", PG_USER, self.db_name], check=True, timeout=60)
            self._migrate(self.env)  # idempotent: brings a kept database up to this Airflow version
        elif self.backend == "postgres":
            # one migrated template per Airflow version, renamed into place only once its migration finished
            from importlib.metadata import version

            template = "aliyun_bench_template_" + version("apache-airflow").replace(".", "_")
            if not self._psql(f"SELECT 1 FROM pg_database WHERE datname='{template}'").strip():
                building = f"{template}_building_{os.getpid()}"
                subprocess.run(["createdb", "-h", PG_HOST, "-U", PG_USER, building], check=True, timeout=60)
                try:
                    self._migrate({**self.env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self._sql_conn(building)})
                    self._psql(f'ALTER DATABASE "{building}" RENAME TO "{template}"')
                finally:
                    subprocess.run(["dropdb", "-h", PG_HOST, "-U", PG_USER, "--if-exists", building],
                                   capture_output=True, timeout=60)
            subprocess.run(["createdb", "-h", PG_HOST, "-U", PG_USER, "-T", template, self.db_name],
                           check=True, timeout=120)
        else:
            template = self.template_dir / "airflow.db"
            if not template.exists():
                self.template_dir.mkdir(parents=True, exist_ok=True)
                tmp = self.template_dir / "airflow.db.tmp"
                tmp.unlink(missing_ok=True)
                self._migrate({**self.env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp}",
                               "AIRFLOW_HOME": str(self.template_dir)})
                tmp.replace(template)
            shutil.copy(template, self.work_dir / "airflow.db")
        return time.monotonic() - started

    def drop_db(self) -> None:
        if self.backend == "postgres" and not self.keep_db:
            with contextlib.suppress(Exception):
                subprocess.run(["dropdb", "-h", PG_HOST, "-U", PG_USER, "--if-exists", self.db_name],
                               timeout=60, capture_output=True)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Read-only SQL on the metadata DB (``?`` placeholders; values are inlined for psql)."""
        if self.backend == "postgres":
            for p in params:
                sql = sql.replace("?", "'" + str(p).replace("'", "''") + "'", 1)
            text = self._psql(sql, db=self.db_name)
            return [tuple(line.split("\t")) for line in text.splitlines() if line]
        con = sqlite3.connect(f"file:{self.work_dir / 'airflow.db'}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    # -- processes --------------------------------------------------------------------------------
    def commands(self) -> dict[str, list[str]]:
        """Component name -> ``airflow`` arguments."""
        commands = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            "scheduler": ["scheduler"],
            "triggerer": ["triggerer"],
            "dag-processor": ["dag-processor"],
        }
        for n in range(1, self.workers + 1):
            commands[f"celery-worker-{n}"] = ["celery", "worker", "--celery-hostname", f"worker{n}-{self.queue}@%h",
                                              "--queues", self.queue, "--without-mingle", "--without-gossip"]
        return commands

    def start_component(self, name: str, note: str = "") -> None:
        """Start one component in its own session, appending to ``logs/<name>.log`` (also to restart one)."""
        with open(self.logs / f"{name}.log", "ab") as log:
            if note:
                log.write(f"\n===== {note} =====\n".encode())
                log.flush()
            self.procs[name] = subprocess.Popen([str(VENV_BIN / "airflow"), *self.commands()[name]],
                                                env={**self.env, **self.component_env[name]}, cwd=self.work_dir,
                                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str) -> None:
        """SIGKILL a component's whole process group, as a lost machine would (no clean shutdown)."""
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)

    def start(self, timeout: float = 240) -> float:
        """Start every component; returns when the api-server answers and the DAG is serialized."""
        started = time.monotonic()
        for name in self.commands():
            self.start_component(name)
        deadline = started + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"Airflow component(s) exited early: {dead}; logs in {self.logs}")
            if self._api_up() and self.dag_serialized(self.dag_id):
                return time.monotonic() - started
            time.sleep(1)
        raise TimeoutError(f"Airflow did not come up within {timeout}s; logs in {self.logs}")

    def _api_up(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/monitor/health", timeout=2) as r:
                return r.status == 200
        except Exception:
            return False

    def dag_serialized(self, dag_id: str) -> bool:
        try:
            return bool(self.query("SELECT dag_id FROM serialized_dag WHERE dag_id = ?", (dag_id,)))
        except Exception:
            return False

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def _tree(self, name: str) -> list[psutil.Process]:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return []
        try:
            root = psutil.Process(proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_snapshot(self) -> dict[str, float]:
        out = {}
        for name in self.procs:
            total = 0.0
            for p in self._tree(name):
                try:
                    t = p.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
                except psutil.Error:
                    pass
            out[name] = total
        return out

    def rss(self) -> int:
        total = 0
        for name in self.procs:
            for p in self._tree(name):
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
        return total

    def process_count(self) -> int:
        return sum(len(self._tree(n)) for n in self.procs)

    def stop(self, grace: float = 30) -> None:
        """SIGTERM every component's process group, wait ``grace`` s, then SIGKILL groups and stragglers."""
        stragglers: list[psutil.Process] = []
        for name in self.procs:
            stragglers.extend(self._tree(name))
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for p in stragglers:
            with contextlib.suppress(psutil.Error):
                if p.is_running():
                    p.kill()

    # -- runs ---------------------------------------------------------------------------------------
    def trigger(self, dag_id: str, conf: dict, run_id: str) -> None:
        out = self.cli("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf), timeout=180)
        if out.returncode:
            raise RuntimeError(f"airflow dags trigger failed:\n{out.stdout[-1500:]}\n{out.stderr[-1500:]}")

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return rows[0][0] if rows else None

    def task_states(self, dag_id: str, run_id: str) -> dict[tuple, str]:
        rows = self.query("SELECT task_id, map_index, try_number, state FROM task_instance "
                          "WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return {(r[0], int(r[1]), int(r[2] or 0)): (r[3] or "none") for r in rows}

    def task_rows(self, dag_id: str, run_id: str) -> list[dict]:
        """Final task instances (and earlier tries from task_instance_history) with their timestamps."""
        cols = ("task_id", "map_index", "try_number", "state", "start_date", "end_date", "duration", "next_method")
        rows = [dict(zip(cols, r, strict=True)) for r in self.query(
            f"SELECT {', '.join(cols)} FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))]
        try:
            hist = self.query(f"SELECT {', '.join(cols)} FROM task_instance_history WHERE dag_id = ? AND run_id = ?",
                              (dag_id, run_id))
            rows += [{**dict(zip(cols, r, strict=True)), "history": True} for r in hist]
        except Exception:
            pass
        return rows

    def __enter__(self) -> AirflowCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.drop_db()
