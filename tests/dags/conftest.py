"""Every DAG run in these tests uses a key that holds only the DAG's RAM policy (``include/ram/<dag_id>.json``).

So each end-to-end test also proves the policy is enough, and a DAG that starts calling an action its policy does
not list fails its tests with ``Forbidden.RAM`` naming the action. DAGs without a policy file (test DAGs) run with
the emulator's all-powerful key. ``ALIYUN_OPS_RAM_DISCOVER=<dir>`` instead gives every DAG an allow-all key and
writes the actions each DAG called to ``<dir>/<dag_id>.json`` (how a policy is drafted; review before use).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

POLICIES = Path(__file__).resolve().parents[2] / "include" / "ram"
ALLOW_ALL = {"Version": "1", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def policy_of(dag_id: str) -> dict | None:
    path = POLICIES / f"{dag_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


def install_key(emulator, dag_id: str, policy: dict, monkeypatch) -> str:
    """A key holding ``policy`` only, made the ``aliyun_default`` connection's."""
    key_id = "RamTest" + "".join(ch for ch in dag_id.title() if ch.isalnum())
    emulator.admin.put_keys({"access_key_id": key_id, "access_key_secret": f"{key_id}-secret",
                             "principal": f"airflow-{dag_id}", "policy": policy})
    conn = json.loads(os.environ["AIRFLOW_CONN_ALIYUN_DEFAULT"])
    conn["extra"].update(access_key_id=key_id, access_key_secret=f"{key_id}-secret")
    monkeypatch.setenv("AIRFLOW_CONN_ALIYUN_DEFAULT", json.dumps(conn))
    return key_id


@pytest.fixture
def run_dag(run_dag, emulator, monkeypatch):
    discover = os.environ.get("ALIYUN_OPS_RAM_DISCOVER")

    def run(dag_id: str, conf: dict | None = None, logical_date=None, *, policy: dict | None = None, **kwargs):
        policy = policy or (ALLOW_ALL if discover else policy_of(dag_id))
        if policy is None:
            return run_dag(dag_id, conf=conf, logical_date=logical_date, **kwargs)
        key_id = install_key(emulator, dag_id, policy, monkeypatch)
        try:
            return run_dag(dag_id, conf=conf, logical_date=logical_date, **kwargs)
        finally:
            if discover:
                out = Path(discover) / f"{dag_id}.json"
                seen = set(json.loads(out.read_text())) if out.exists() else set()
                seen |= {c["action"] for c in emulator.admin.calls(limit=20000)["recent"]
                         if c.get("access_key_id") == key_id}
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(sorted(seen), indent=1))

    return run
