"""The Cloud Assistant Agent of each instance, as plain data on the instance record.

``_agent`` is absent or ``online`` (every image the emulator has ships the agent, as Alibaba's public images do),
``offline`` (the admin API said so: ``POST /_emulator/command-behaviour {"agent_offline": [ids]}``) or
``installing`` (InstallCloudAssistant on an instance whose agent was offline: the agent starts with the next start
or reboot of the instance, as the real install asks for a restart). ``_os_boots`` is ``False`` for an instance
whose system disk does not boot (made from a broken image, :mod:`emulator.ecs.detection`): its agent never
answers. The agent answers only while the instance is Running; ``_agent_heartbeat`` keeps the last moment it did
when it stops answering.
"""

from __future__ import annotations

from ..clock import iso
from ..state import State

VERSIONS = {"linux": "2.2.3.857", "windows": "2.1.3.857"}  # what DescribeCloudAssistantStatus reports
INSTANCES = "ecs.instances"


def state_of(rec: dict) -> str:
    """``online``, ``offline`` or ``installing``."""
    return rec.get("_agent") or "online"


def online(rec: dict) -> bool:
    """Whether the instance's agent takes commands now."""
    return rec.get("Status") == "Running" and state_of(rec) == "online" and rec.get("_os_boots", True)


def last_heartbeat(rec: dict, now: float) -> str:
    return iso(now) if online(rec) else rec.get("_agent_heartbeat", "")


def going_quiet(state: State, rec: dict) -> None:
    """Call before a change that stops the agent answering (stop, reboot, marked offline)."""
    if online(rec):
        rec["_agent_heartbeat"] = iso(state.now())


def started(rec: dict) -> None:
    """The instance reached Running: an agent installed meanwhile starts."""
    if state_of(rec) == "installing":
        rec["_agent"] = "online"


def offline_ids(state: State) -> list[str]:
    """Instances whose agent is offline or waits for a restart after InstallCloudAssistant."""
    return sorted(i for i, rec in state.table(INSTANCES).items() if state_of(rec) != "online")


def set_offline(state: State, ids: list[str]) -> None:
    """Exactly ``ids`` have their agent offline from now on; the others' agents are back online."""
    wanted = set(ids)
    for instance_id, rec in state.table(INSTANCES).items():
        if instance_id in wanted:
            going_quiet(state, rec)
            rec["_agent"] = "offline"
        elif state_of(rec) != "online":
            rec["_agent"] = "online"
    state.dirty = True
