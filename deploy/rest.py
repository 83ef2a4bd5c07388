"""Airflow's REST API (``/api/v2``) as the benchmarks and tests use it: a token from the simple auth manager,
JSON in and out, errors that say what was called.

Example::

    rest = AirflowRest("http://127.0.0.1:8080", username="admin", password="admin")
    rest.call("POST", "/api/v2/dags/ecs_cross_region_backup/dagRuns", {"logical_date": None})
    rest.wait_run("ecs_cross_region_backup", "manual__1", timeout=600)
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from typing import Any


class AirflowRest:
    """A REST client; without ``username`` the token comes from an all-admins simple auth manager (GET)."""

    def __init__(self, base_url: str, username: str | None = None, password: str | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.username, self.password = username, password
        self._token: str | None = None

    def token(self) -> str:
        """A JWT from ``/auth/token`` (POSTed credentials, or GET when every user is admin)."""
        if self._token is None:
            if self.username is None:
                req = urllib.request.Request(f"{self.base}/auth/token")
            else:
                body = json.dumps({"username": self.username, "password": self.password}).encode()
                req = urllib.request.Request(f"{self.base}/auth/token", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                self._token = json.loads(resp.read())["access_token"]
        return self._token

    def call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        """``method path`` with a JSON ``body``; the decoded answer, or RuntimeError naming the call and status."""
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.token()}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:800]!r}") from None

    def dag_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.call("GET", "/api/v2/dags?limit=100")["dags"]}

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        rows = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        return {ti["task_id"]: ti["state"] for ti in rows["task_instances"]}

    def wait_run(self, dag_id: str, run_id: str, timeout: float, interval: float = 3) -> str:
        """The run's final state (``success``/``failed``), or its state when ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        state = "unknown"
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, RuntimeError):  # one slow answer of a busy API server is no verdict
                state = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                break
            time.sleep(interval)
        return state
