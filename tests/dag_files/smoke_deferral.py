"""A tiny DAG the harness test runs: checks dag.test() runs deferrable tasks inline."""

from __future__ import annotations

import asyncio

from airflow.sdk import DAG, BaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent


class SleepTrigger(BaseTrigger):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def serialize(self):
        return (f"{__name__}.SleepTrigger", {"seconds": self.seconds})

    async def run(self):
        await asyncio.sleep(self.seconds)
        yield TriggerEvent({"slept": self.seconds})


class DeferOnce(BaseOperator):
    def execute(self, context):
        self.defer(trigger=SleepTrigger(0.1), method_name="done")

    def done(self, context, event):
        return event


with DAG("harness_smoke_deferral", schedule=None):
    DeferOnce(task_id="defer")
