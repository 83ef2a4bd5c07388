"""The Cloud Assistant Agent through the API: DescribeCloudAssistantStatus and InstallCloudAssistant (the agent's
state: :mod:`emulator.ecs.agent`).

* ``DescribeCloudAssistantStatus`` (``RegionId``, ``InstanceId.N`` up to 100, ``OSType`` Windows|Linux|FreeBSD,
  ``PageNumber``/``PageSize`` or ``MaxResults``/``NextToken``, at most 50 a page; with ``InstanceId`` every named
  instance is answered, unknown ids are left out) -> ``InstanceCloudAssistantStatusSet.InstanceCloudAssistantStatus[]``
  with ``InstanceId``, ``CloudAssistantStatus`` (the string ``"true"`` while the agent answers: instance Running,
  agent online, system disk bootable; else ``"false"``), ``CloudAssistantVersion`` (``""`` while the agent is
  offline), ``OSType`` (``Linux``/``Windows``), ``LastHeartbeatTime`` (now while it answers, else the last time it
  did, ``""`` if never), ``SupportSessionManager``, ``InvocationCount``, ``ActiveTaskCount`` (Pending or Running
  runs), ``LastInvokedTime``.
* ``InstallCloudAssistant`` (``RegionId``, ``InstanceId.N``, 1 to 50 Running or Stopped instances of the region):
  an offline agent is installed and starts with the instance's next start or reboot (the OOS action
  ``ACS::ECS::InstallCloudAssistant`` reboots after it); an agent already there is left alone.
"""

from __future__ import annotations

from ..clock import iso
from ..errors import ApiError, invalid_parameter, missing_parameter
from ..rpc import Call, Params, action
from . import agent, commands, common
from .regions import region_or_error

OS_TYPES = {"windows": "Windows", "linux": "Linux", "freebsd": "FreeBSD"}


def _invocation_stats(state) -> dict[str, tuple[int, int, str]]:
    """instance id -> (runs, runs Pending or Running, last CreationTime)."""
    stats: dict[str, tuple[int, int, str]] = {}
    for inv in state.table(commands.INVOCATIONS).values():
        for e in inv["Instances"]:
            runs, active, last = stats.get(e["InstanceId"], (0, 0, ""))
            stats[e["InstanceId"]] = (runs + 1, active + (e["Status"] in ("Pending", "Running")),
                                      max(last, inv["CreationTime"]))
    return stats


def _status_out(rec: dict, now: float, stats: tuple[int, int, str]) -> dict:
    os_type = (rec.get("OSType") or "linux").lower()
    up = agent.online(rec)
    version = "" if agent.state_of(rec) == "offline" else agent.VERSIONS.get(os_type, agent.VERSIONS["linux"])
    runs, active, last = stats
    return {"InstanceId": rec["InstanceId"], "CloudAssistantStatus": "true" if up else "false",
            "CloudAssistantVersion": version, "OSType": OS_TYPES.get(os_type, "Linux"),
            "LastHeartbeatTime": agent.last_heartbeat(rec, now), "SupportSessionManager": bool(version),
            "InvocationCount": runs, "ActiveTaskCount": active, "LastInvokedTime": last}


@action("ecs", "DescribeCloudAssistantStatus")
def describe_cloud_assistant_status(call: Call, p: Params) -> dict:
    region = region_or_error(p.str("RegionId"))
    ids = list(dict.fromkeys(p.ids("InstanceId")))
    if len(ids) > 100:
        raise ApiError("InstanceIds.ExceedLimit", "The number of instance IDs exceeds the upper limit.", 403)
    os_type = p.str("OSType")
    if os_type is not None and os_type.lower() not in OS_TYPES:
        raise invalid_parameter("OSType", "Valid values: Windows, Linux, FreeBSD.")
    table = call.state.table(agent.INSTANCES)
    if ids:
        recs = [table[i] for i in ids if i in table and table[i].get("RegionId") == region]
    else:
        recs = sorted((r for r in table.values() if r.get("RegionId") == region),
                      key=lambda r: (common.created_ts(r), r["InstanceId"]))
    if os_type:
        recs = [r for r in recs if (r.get("OSType") or "linux").lower() == os_type.lower()]
    stats = _invocation_stats(call.state)
    now = call.now
    # with InstanceId, "this parameter [PageSize, MaxResults] does not take effect"
    return commands.paged(p, recs, "InstanceCloudAssistantStatusSet", "InstanceCloudAssistantStatus",
                          lambda r: _status_out(r, now, stats.get(r["InstanceId"], (0, 0, ""))), whole=bool(ids))


@action("ecs", "InstallCloudAssistant")
def install_cloud_assistant(call: Call, p: Params) -> dict:
    region = region_or_error(p.str("RegionId"))
    ids = list(dict.fromkeys(p.ids("InstanceId")))
    if not ids:
        raise missing_parameter("InstanceId")
    if len(ids) > 50:
        raise invalid_parameter("InstanceId", "You can specify 1 to 50 instance IDs.")
    recs = [common.get_instance(call.state, i, region) for i in ids]
    for rec in recs:
        if rec["Status"] not in ("Running", "Stopped"):
            raise common.incorrect_instance_status(
                detail=f"Instance {rec['InstanceId']} is {rec['Status']}; the agent installs on Running or Stopped.")
    for rec in recs:
        if agent.state_of(rec) == "offline":
            rec["_agent"] = "installing"
            rec["_agent_installed_at"] = iso(call.now)
    call.state.dirty = True
    return {}
