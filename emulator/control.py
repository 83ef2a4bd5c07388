"""Start, stop and drive an emulator from Python: tests, benchmarks and the demo use this.

Example::

    with EmulatorProcess(time_scale=1000) as emu:
        emu.admin.load_fleet({"instances": [...]})
        print(emu.endpoint)        # "127.0.0.1:PORT" for the ECS/RDS SDK Config

The process gets a fresh admin token (``emu.admin_token``) and ``emu.admin`` sends it. To drive an
emulator started elsewhere::

    AdminClient("http://127.0.0.1:9100", token=read_admin_token(".demo/emulator"))
    AdminClient("http://127.0.0.1:9100")   # token from $EMULATOR_ADMIN_TOKEN
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .keys import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET
from .security import TOKEN_ENV, new_token, read_token_file

ROOT = Path(__file__).resolve().parent.parent


class AdminError(RuntimeError):
    """An admin call answered with an HTTP error: ``status`` and the JSON ``body`` (``{"Code", "Message"}``)."""

    def __init__(self, method: str, name: str, status: int, raw: bytes) -> None:
        super().__init__(f"admin {method} {name} failed: {status} {raw[:500]!r}")
        self.status = status
        try:
            self.body = json.loads(raw or b"{}")
        except ValueError:
            self.body = {}


def read_admin_token(data_dir: str | Path) -> str | None:
    """The admin token an emulator serving ``data_dir`` wrote to ``<data_dir>/admin-token`` (None if absent)."""
    return read_token_file(data_dir)


class AdminClient:
    """Thin JSON client of the admin API (``/_emulator/...``).

    ``token`` is the admin bearer token; without one, ``$EMULATOR_ADMIN_TOKEN`` is used (if set).
    """

    def __init__(self, base_url: str, timeout: float = 30.0, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.token = token or os.environ.get(TOKEN_ENV) or None

    def headers(self) -> dict[str, str]:
        """The headers an admin request needs (for callers that use their own HTTP client)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, name: str, body: Any = None, **query: Any) -> Any:
        url = f"{self.base_url}/_emulator/{name}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        headers = self.headers()
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AdminError(method, name, exc.code, exc.read()) from None

    def health(self) -> dict:
        return self.request("GET", "health")

    def reset(self) -> None:
        self.request("POST", "reset")

    def load_fleet(self, spec: dict) -> dict:
        return self.request("POST", "fleet", spec)

    def put_keys(self, *keys: dict) -> dict:
        """Add or replace access keys: ``{"access_key_id", "access_key_secret", "policy"?: RAM policy document}``."""
        return self.request("POST", "keys", {"keys": list(keys)})

    def set_faults(self, cfg: dict) -> dict:
        return self.request("PUT", "faults", cfg)

    def clock(self, **changes: Any) -> dict:
        return self.request("POST", "clock", changes) if changes else self.request("GET", "clock")

    def advance(self, seconds: float) -> dict:
        return self.clock(advance=seconds)

    def calls(self, limit: int = 1000) -> dict:
        return self.request("GET", "calls", limit=limit)

    def clear_calls(self) -> None:
        self.request("DELETE", "calls")

    def table(self, name: str) -> dict:
        return self.request("GET", "state", table=name)["tables"][name]


class EmulatorProcess:
    """Runs ``python -m emulator serve`` on a free loopback port for the life of a ``with``."""

    def __init__(self, time_scale: float = 1.0, data_dir: str | Path | None = None, seed_file: str | None = None,
                 port: int = 0, extra_args: list[str] | None = None, log_path: str | Path | None = None,
                 admin_token: str | None = None) -> None:
        self.time_scale = time_scale
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="emulator-")
        self.data_dir = Path(data_dir or self._tmp.name)  # type: ignore[union-attr]
        self.seed_file = seed_file
        self.port = port
        self.extra_args = extra_args or []
        self.log_path = Path(log_path) if log_path else self.data_dir / "emulator.log"
        self.proc: subprocess.Popen | None = None
        self.base_url = ""
        self.admin_token = admin_token or _given_token(self.extra_args) or new_token()

    access_key_id = DEFAULT_ACCESS_KEY_ID
    access_key_secret = DEFAULT_ACCESS_KEY_SECRET

    @property
    def endpoint(self) -> str:
        return self.base_url.removeprefix("http://")

    @property
    def admin(self) -> AdminClient:
        return AdminClient(self.base_url, token=self.admin_token)

    def start(self, timeout: float = 30.0) -> EmulatorProcess:
        cmd = [sys.executable, "-m", "emulator", "serve", "--port", str(self.port),
               "--data-dir", str(self.data_dir), "--time-scale", str(self.time_scale), *self.extra_args]
        if not _given_token(self.extra_args):
            cmd.append(f"--admin-token={self.admin_token}")  # one argument: a token may start with "-"
        if self.seed_file:
            cmd += ["--seed-file", str(self.seed_file)]
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env, cwd=ROOT)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited early; see {self.log_path}")
            if line.startswith("emulator ready on "):
                self.base_url = line.split("emulator ready on ", 1)[1].strip()
                return self
        self.stop()
        raise RuntimeError(f"emulator did not start within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _given_token(args: list[str]) -> str | None:
    """The ``--admin-token`` among ``args`` (``--admin-token T`` or ``--admin-token=T``), if any."""
    for i, arg in enumerate(args):
        if arg.startswith("--admin-token="):
            return arg.split("=", 1)[1]
        if arg == "--admin-token" and i + 1 < len(args):
            return args[i + 1]
    return None
