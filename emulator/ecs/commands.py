"""Cloud Assistant (ECS 2014-05-26): RunCommand, CreateCommand, InvokeCommand, DescribeCommands,
DescribeInvocations, DescribeInvocationResults, StopInvocation (the agent itself: :mod:`emulator.ecs.agent` and
:mod:`emulator.ecs.cloud_assistant`; Alibaba's public commands: :mod:`emulator.ecs.public_commands`).

Each invocation keeps one record per instance. On simulated time an instance record goes
``Pending`` -> ``Running`` (after 1 s) -> ``Success`` | ``Failed`` | ``Timeout`` (after the run's
duration, 2-5 s by default, deterministic per invocation and instance), or ``Cancelled`` /
``Terminated`` through StopInvocation. Per instance the API shows three statuses:

=============  =================  ==================  ====================================
record         InvocationStatus   InvokeRecordStatus  ErrorCode
=============  =================  ==================  ====================================
waiting        Pending            Running
running        Running            Running
exit 0         Success            Finished
exit != 0      Failed             Finished            ExitCodeNonzero
timed out      Timeout            Failed              ExecutionTimeout
not Running    Aborted            Failed              InstanceNotRunning
agent down     Failed             Failed              ClientNotRunning
stopped early  Cancelled          Stopped
stopped late   Terminated         Stopped
=============  =================  ==================  ====================================

The invocation aggregates them: ``InvocationStatus`` Pending/Running/Success/Failed/PartialFailed/
Stopped and the older ``InvokeStatus`` Running/Finished/Failed/PartialFailed/Stopped (Finished
means every instance ran to the end, whatever the exit codes, which is what OOS waits for).

**Default behaviour**: exit code 0 and, as output, the script itself after parameter
substitution (as if the script were ``echo``-ed); a public command the emulator simulates
(``ACS-ECS-ImageRepair-for-linux.sh``) has its own outcome and duration. An instance whose Cloud Assistant Agent is
not running (``agent_offline``, an InstallCloudAssistant waiting for a restart, a system disk that does not boot)
gets ``Failed`` / ``ClientNotRunning`` ("the aliyun service is not running on the instance") one second after the
call, which still answers an InvokeId. Scripts can be given other outcomes through the
admin API (``POST /_emulator/command-behaviour``, kept in ``state.table("admin")["command_behaviour"]``)::

    {"rules": [{"match": "fsfreeze", "instance_ids": ["i-..."], "exit_code": 1, "output": "boom",
                "duration": 30, "status": "Failed"}],
     "not_running": "record"}

The first rule whose ``match`` is a substring of the rendered script (and whose ``instance_ids``,
if given, contain the instance) decides exit code, output, duration (simulated seconds) and an
optional final ``status`` (Success, Failed, Timeout, Error); the fields it does not give keep the default (or
simulated) outcome's. A duration longer than the
invocation's ``Timeout`` ends in ``Timeout``. A rule with ``count`` (int >= 1) applies to that many
instance runs (one per instance of an invocation, taken when the run starts; runs on instances that
are not Running take none), then is spent and later runs fall through to the next rule or the default:
``{"match": "is-system-running", "exit_code": 1, "output": "starting", "count": 1}`` fails the first
health check and lets the retry succeed. GET shows the count left. A bad body (unknown field, wrong
type or value) gets 400 ``InvalidBody`` naming ``rules[i].field``. ``not_running``: ``record`` (default) accepts
instances that are not Running and marks them Aborted/InstanceNotRunning; ``reject`` fails the
whole call with ``InvalidInstance.NotMatch`` (403), the other documented behaviour. ``agent_offline`` (a list of
instance ids, each an existing instance) marks exactly those instances' agents offline and brings the others'
back; a body without it leaves the agents as they are.

Limits enforced: CommandContent at most 16 KB once Base64-encoded (together with Parameters;
``CmdContent.ExceedLimit``), at most 20 custom parameters (``CmdParamCount.ExceedLimit`` /
``ParameterCount.ExceedLimit``), names up to 64 chars, up to 100 instances, Name 128 chars,
Description 512, WorkingDir 200, Username 255, Timeout up to 86400 s. Only ``RepeatMode=Once``
is supported; output is cut at 24 KB (``Dropped`` counts the rest).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import json
import re
from typing import Any

from ..clock import iso
from ..errors import ApiError
from ..keys import ACCOUNT_ID
from ..registry import admin_route
from ..rpc import Call, Params, action
from ..state import State, on_event
from . import agent, public_commands
from .regions import region_or_error

COMMANDS = "ecs.commands"
INVOCATIONS = "ecs.invocations"
TOKENS = "ecs.command_tokens"
PUBLIC_INVOKES = "ecs.public_command_invokes"
INSTANCES = "ecs.instances"

TYPES = {"RunShellScript": "linux", "RunPythonScript": "linux", "RunPerlScript": "linux",
         "RunBatScript": "windows", "RunPowerShellScript": "windows"}
MAX_CONTENT_B64 = 16 * 1024
MAX_PARAMS = 20
MAX_PARAM_NAME = 64
MAX_INSTANCES = 100
MAX_OUTPUT = 24 * 1024
MAX_TIMEOUT = 86400
DEFAULT_TIMEOUT = 60
START_DELAY = 1.0
TIMEOUT_EXIT_CODE = -1

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_PARAM_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
_BUILTINS = ("ACS::RegionId", "ACS::AccountId", "ACS::InstanceId", "ACS::InstanceName", "ACS::InvokeId",
             "ACS::CommandId")

FINAL = {"Success", "Failed", "Timeout", "Error", "Aborted", "Cancelled", "Terminated"}
RECORD_STATUS = {"Pending": "Running", "Running": "Running", "Success": "Finished", "Failed": "Finished",
                 "Timeout": "Failed", "Error": "Failed", "Aborted": "Failed", "Cancelled": "Stopped",
                 "Terminated": "Stopped"}
ERRORS = {
    "Failed": ("ExitCodeNonzero", "the command execution exit code is not zero"),
    "Timeout": ("ExecutionTimeout", "the command execution has been timeout"),
    "Error": ("ExecutionException", "the command execution got an exception"),
    "Aborted": ("InstanceNotRunning", "the instance is not running when create task"),
    "Terminated": ("ExecutionInterrupted", "the command execution has been interrupted"),
    "ClientNotRunning": ("ClientNotRunning", "the aliyun service is not running on the instance"),
}


def record_status(entry: dict) -> str:
    """The per-instance ``InvokeRecordStatus`` (a run the agent never took is ``Failed``, not ``Finished``)."""
    return entry.get("_record") or RECORD_STATUS[entry["Status"]]


def _err(code: str, message: str, status: int = 400) -> ApiError:
    return ApiError(code, message, status)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- validation -------------------------------------------------------------------------------
def _content(p: Params) -> str:
    raw = p.str("CommandContent")
    if raw is None:
        raise _err("MissingParameter.CommandContent",
                   "The input parameter \"CommandContent\" that is mandatory for processing this request "
                   "is not supplied.")
    if (p.str("ContentEncoding") or "PlainText").lower() == "base64":
        try:
            return base64.b64decode(raw.encode(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _err("CmdContent.DecodeError", "The CommandContent can not be base64 decoded.") from None
    return raw


def _type(p: Params) -> str:
    value = p.str("Type")
    if value is None:
        raise _err("MissingParameter.Type",
                   "The input parameter \"Type\" that is mandatory for processing this request is not supplied.")
    if value not in TYPES:
        raise _err("InvalidCmdType.NotFound", "The specified command type does not exist.", 403)
    return value


def _limits(p: Params) -> dict:
    name = p.str("Name") or ""
    if len(name) > 128:
        raise _err("CmdName.ExceedLimit", "The length of the command name exceeds the upper limit.", 403)
    description = p.str("Description") or ""
    if len(description) > 512:
        raise _err("CmdDesc.ExceedLimit", "The length of the command description exceeds the upper limit.", 403)
    working_dir = p.str("WorkingDir") or ""
    if len(working_dir) > 200:
        raise _err("InvalidParameter.WorkingDir", "The specified parameter WorkingDir is not valid.")
    username = p.str("Username") or ""
    if len(username) > 255:
        raise _err("Username.ExceedLimit", "The length of the username exceeds the upper limit.", 403)
    raw_timeout = p.str("Timeout")
    try:
        timeout = int(raw_timeout) if raw_timeout is not None else DEFAULT_TIMEOUT
    except ValueError:
        raise _err("InvalidParameter.Timeout", "The specified parameter Timeout is not valid.") from None
    if timeout < 1:
        raise _err("InvalidParameter.Timeout", "The specified parameter Timeout is not valid.")
    if timeout > MAX_TIMEOUT:
        raise _err("InvalidTimeout.ExceedLimit", "The specified parameter Timeout exceeds the upper limit.", 403)
    return {"Name": name, "Description": description, "WorkingDir": working_dir, "Username": username,
            "Timeout": timeout}


def _repeat_mode(p: Params) -> None:
    mode = p.str("RepeatMode") or "Once"
    if p.bool("Timed") or p.str("Frequency") or mode != "Once":
        if mode not in ("Once", "Period", "NextRebootOnly", "EveryReboot", "DryRun"):
            raise _err("InvalidRepeatMode.NotFound", "The specified repeat mode does not exist.", 404)
        raise _err("InvalidParameter.RepeatMode",
                   "The emulator runs commands only once (RepeatMode=Once); scheduled runs are not supported.")


def _parameter_names(content: str, enabled: bool) -> list[str]:
    """Custom parameter names used in ``content`` (in order, without built-ins)."""
    if not enabled:
        return []
    names: list[str] = []
    seen: set[str] = set()
    for match in _PLACEHOLDER.finditer(content):
        name = match.group(1)
        if name in _BUILTINS:
            continue
        if not name:
            raise _err("CmdParam.EmptyKey", "You must specify the parameter names.")
        if not _PARAM_NAME.match(name):
            raise _err("CmdParam.InvalidParamName",
                       "Invalid parameter name. The name can contain only lowercase letters (a to z), uppercase "
                       "letters (A to Z), numbers (0 to 9), hyphens (-), and underscores (_).")
        if len(name.encode()) > MAX_PARAM_NAME:
            raise _err("CmdParamName.ExceedLimit", "The maximum length of a parameter name is exceeded.", 403)
        if name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    if len(names) > MAX_PARAMS:
        raise _err("CmdParamCount.ExceedLimit", "The maximum number of custom parameters is exceeded.", 403)
    return names


def _parameters(p: Params, enabled: bool, names: list[str], defaults: dict[str, str] | None = None) -> dict[str, str]:
    """The custom parameter values; ``defaults`` (a public command's optional parameters) fill the missing ones."""
    defaults = defaults or {}
    if "Parameters" not in p:
        if [n for n in names if n not in defaults]:
            raise _err("Parameter.MissingValue", "The parameter value of this command is required.")
        return dict(defaults)
    try:
        given = json.loads(p.str("Parameters") or "")
    except ValueError:
        raise _err("InvalidParameter.Parameters", "The specified parameter Parameters is not valid.") from None
    if not isinstance(given, dict):
        raise _err("InvalidParameter.Parameters", "The specified parameter Parameters is not valid.")
    if not given:
        return dict(defaults)
    if not enabled:
        raise _err("Parameter.Disabled",
                   "Parameters cannot be passed in when the command customization function is disabled.")
    if len(given) > MAX_PARAMS:
        raise _err("ParameterCount.ExceedLimit", "The maximum number of parameters is exceeded.", 403)
    wanted = {n.lower(): n for n in names}
    values: dict[str, str] = {}
    for key, value in given.items():
        if not key:
            raise _err("CmdParam.EmptyKey", "You must specify the parameter names.")
        if len(key) > MAX_PARAM_NAME:
            raise _err("ParameterKey.ExceedLimit", "The maximum length of a parameter name is exceeded.", 403)
        if key.lower() not in wanted:
            raise _err("Parameter.NotMatched", "The passed-in parameters do not match the parameters defined when "
                       "you created the command.", 403)
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        elif not isinstance(value, str):
            raise _err("ParameterType.NotSupported", "The type of parameter value is not supported.", 403)
        values[wanted[key.lower()]] = value
    for name, value in defaults.items():
        values.setdefault(name, value)
    missing = [n for n in names if n not in values]
    if missing:
        raise _err("Parameter.MissingValue", f"The parameter value of this command is required: {missing[0]}.")
    return values


def _check_size(content: str, p: Params) -> None:
    size = len(_b64(content)) + len(_b64(p.str("Parameters") or ""))
    if size > MAX_CONTENT_B64:
        raise _err("CmdContent.ExceedLimit", "The maximum length of a command is exceeded.", 403)


def behaviour(state: State) -> dict:
    return state.table("admin").get("command_behaviour") or {"rules": []}


def _instances(call: Call, p: Params, region: str, os_type: str) -> list[dict]:
    ids = list(dict.fromkeys(p.repeat_list("InstanceId") or p.ids("InstanceIds")))
    table = call.state.table(INSTANCES)
    resource_tags = [t for t in p.struct_list("ResourceTag")]
    if ids and resource_tags:
        raise _err("InvalidResourceTag.ConflictWithInstanceIds",
                   "The specified param ResourceTag conflicts with InstanceId.")
    if resource_tags:
        wanted = {t.get("Key", ""): t.get("Value") for t in resource_tags}
        if "" in wanted:
            raise _err("MissingParameter.ResourceTagKey", "You must specify ResourceTag.N.Key.")
        ids = sorted(r["InstanceId"] for r in table.values() if r.get("RegionId") == region and all(
            k in (r.get("Tags") or {}) and (v in (None, "") or r["Tags"][k] == v) for k, v in wanted.items()))
        if not ids:
            raise _err("InvalidResourceTag.InstanceNotFound", "InstanceIds are not found by the specified ResourceTag.")
    if not ids:
        raise _err("MissingParam.InstanceId", "The parameter instanceId is missing or empty.")
    if len(ids) > MAX_INSTANCES:
        raise _err("InstanceIds.ExceedLimit", "The number of instance IDs exceeds the upper limit.", 403)
    found = []
    for instance_id in ids:
        rec = table.get(instance_id)
        if rec is None or rec.get("RegionId") != region:
            raise _err("InvalidInstance.NotFound", f"The specified instance does not exist. ({instance_id})", 404)
        if (rec.get("OSType") or "linux").lower() != os_type:
            raise _err("InvalidInstance.NotMatch", "The specified instance type does not match the command.", 403)
        if rec.get("Status") != "Running" and behaviour(call.state).get("not_running", "record") == "reject":
            raise _err("InvalidInstance.NotMatch", f"The specified instance type does not match the command. "
                       f"(instance {instance_id} is {rec.get('Status')}, not Running)", 403)
        found.append(rec)
    return found


# -- idempotency ------------------------------------------------------------------------------
def _fingerprint(p: Params) -> str:
    ignore = {"Action", "Version", "Format", "Timestamp", "SignatureNonce", "SignatureMethod", "SignatureVersion",
              "AccessKeyId", "Signature", "SecurityToken", "ClientToken"}
    items = sorted((k, v) for k, v in p.raw.items() if k not in ignore)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def _idempotent(call: Call, p: Params, action_name: str) -> tuple[str | None, dict | None]:
    token = p.str("ClientToken")
    if token is None:
        return None, None
    if len(token) > 64 or not token.isascii():
        raise _err("InvalidClientToken.Malformed", "The specified parameter clientToken is not valid.")
    key = f"{action_name}:{call.access_key_id}:{token}"
    seen = call.state.table(TOKENS).get(key)
    if seen is None:
        return key, None
    if seen["fingerprint"] != _fingerprint(p):
        raise _err("IdempotentParameterMismatch",
                   "The specified parameter has changed while using an already used clientToken.", 403)
    return key, seen["result"]


def _remember(call: Call, p: Params, key: str | None, result: dict) -> dict:
    if key is not None:
        call.state.table(TOKENS)[key] = {"fingerprint": _fingerprint(p), "result": result}
    return result


# -- invocations ------------------------------------------------------------------------------
def _new_command(call: Call, region: str, cmd_type: str, content: str, names: list[str], limits: dict,
                 enabled: bool, keep: bool) -> dict:
    command_id = call.state.new_id("c", 32)
    command = {"CommandId": command_id, "RegionId": region, "Name": limits["Name"] or command_id,
               "Description": limits["Description"], "Type": cmd_type, "CommandContent": _b64(content),
               "WorkingDir": limits["WorkingDir"], "Timeout": limits["Timeout"], "EnableParameter": enabled,
               "ParameterNames": names, "CreationTime": iso(call.now), "Keep": keep,
               "InvokeTimes": 0}
    call.state.table(COMMANDS)[command_id] = command
    return command


def _render(content: str, values: dict[str, str], builtins: dict[str, str], enabled: bool) -> str:
    if not enabled:
        return content

    def sub(match: re.Match) -> str:
        name = match.group(1)
        if name in builtins:
            return builtins[name]
        for key, value in values.items():
            if key.lower() == name.lower():
                return value
        return match.group(0)

    return _PLACEHOLDER.sub(sub, content)


def _outcome(state: State, script: str, instance_id: str, invoke_id: str, *, consume: bool = True) -> dict:
    """The first rule that applies to one instance's run of ``script``. A rule with ``count`` applies to that many
    runs: choosing it (``consume``, when the run starts) takes one, and a spent rule (``count`` 0) is passed over.
    Without ``consume`` (a run that started under no counted rule, finishing) counted rules are passed over."""
    for rule in behaviour(state).get("rules", []):
        if rule.get("match", "") not in script:
            continue
        if rule.get("instance_ids") and instance_id not in rule["instance_ids"]:
            continue
        if "count" in rule:
            if not consume or rule["count"] <= 0:
                continue
            rule["count"] -= 1
            state.dirty = True
        return rule
    return {}


def _default_duration(invoke_id: str, instance_id: str) -> float:
    digest = hashlib.sha1(f"{invoke_id}:{instance_id}".encode()).digest()
    return 2.0 + 3.0 * int.from_bytes(digest[:4], "big") / 2**32


def _start_invocation(call: Call, command: dict, instances: list[dict], values: dict[str, str],
                      overrides: dict, client_token: str | None) -> dict:
    state = call.state
    invoke_id = state.new_id("t", 32)
    content = base64.b64decode(command["CommandContent"]).decode()
    timeout = overrides.get("Timeout") or command["Timeout"]
    now = call.now
    records = []
    for rec in instances:
        instance_id = rec["InstanceId"]
        builtins = {"ACS::RegionId": command["RegionId"], "ACS::AccountId": ACCOUNT_ID,
                    "ACS::InstanceId": instance_id, "ACS::InstanceName": rec.get("InstanceName", instance_id),
                    "ACS::InvokeId": invoke_id, "ACS::CommandId": command["CommandId"]}
        script = _render(content, values, builtins, command["EnableParameter"])
        entry = {"InstanceId": instance_id, "Status": "Pending", "ExitCode": 0, "Output": "", "Dropped": 0,
                 "ErrorCode": "", "ErrorInfo": "", "CreationTime": iso(now), "UpdateTime": iso(now),
                 "StartTime": "", "FinishTime": "", "StopTime": "", "Repeats": 0, "Script": script}
        if rec.get("Status") != "Running":
            entry.update(Status="Aborted", ErrorCode=ERRORS["Aborted"][0], ErrorInfo=ERRORS["Aborted"][1],
                         FinishTime=iso(now), ExitCode=0)
        else:
            state.schedule(START_DELAY, "ecs.invocation.start", invoke_id=invoke_id, instance_id=instance_id)
        records.append(entry)
    invocation = {
        "InvokeId": invoke_id, "CommandId": command["CommandId"], "RegionId": command["RegionId"],
        "CommandName": command["Name"], "CommandType": command["Type"], "CommandContent": command["CommandContent"],
        "CommandDescription": command["Description"], "Parameters": values, "Timeout": timeout,
        "WorkingDir": overrides.get("WorkingDir") or command["WorkingDir"],
        "Username": overrides.get("Username") or "", "CreationTime": iso(now), "RepeatMode": "Once",
        "Stopped": False, "ClientToken": client_token or "", "Instances": records, "Created": now,
        "Public": bool(command.get("Public")),
    }
    state.table(INVOCATIONS)[invoke_id] = invocation
    if command.get("Public"):  # public commands are not records of the account: count their runs aside
        counts = state.table(PUBLIC_INVOKES)
        counts[f"{command['RegionId']}/{command['CommandId']}"] = public_invoke_times(state, command) + 1
    else:
        command["InvokeTimes"] = command.get("InvokeTimes", 0) + 1
    state.dirty = True
    return invocation


def public_invoke_times(state: State, command: dict) -> int:
    return int(state.table(PUBLIC_INVOKES).get(f"{command['RegionId']}/{command['CommandId']}", 0))


def _entry(state: State, invoke_id: str, instance_id: str) -> tuple[dict | None, dict | None]:
    invocation = state.table(INVOCATIONS).get(invoke_id)
    if invocation is None:
        return None, None
    for entry in invocation["Instances"]:
        if entry["InstanceId"] == instance_id:
            return invocation, entry
    return invocation, None


@on_event("ecs.invocation.start")
def _on_start(state: State, event) -> None:
    invocation, entry = _entry(state, event.payload["invoke_id"], event.payload["instance_id"])
    if entry is None or entry["Status"] != "Pending":
        return
    instance = state.table(INSTANCES).get(entry["InstanceId"])
    if instance is None or instance.get("Status") != "Running":
        entry.update(Status="Aborted", ErrorCode=ERRORS["Aborted"][0], ErrorInfo=ERRORS["Aborted"][1],
                     FinishTime=iso(event.at), UpdateTime=iso(event.at))
        return
    if not agent.online(instance):  # the command never reaches the instance: no rule is taken
        code, info = ERRORS["ClientNotRunning"]
        entry.update(Status="Failed", ErrorCode=code, ErrorInfo=info, ExitCode=0, FinishTime=iso(event.at),
                     UpdateTime=iso(event.at), _record="Failed")
        return
    rule = _outcome(state, entry["Script"], entry["InstanceId"], invocation["InvokeId"])
    if "count" in rule:  # this run took one of the rule's uses: it ends as the rule said, whatever comes later
        entry["_rule"] = {k: v for k, v in rule.items() if k != "count"}
    simulated = public_commands.duration(state, invocation["CommandId"], invocation["Parameters"]) \
        if invocation.get("Public") else None
    default = _default_duration(invocation["InvokeId"], entry["InstanceId"]) if simulated is None else simulated
    duration = float(rule.get("duration", default))
    entry.update(Status="Running", StartTime=iso(event.at), UpdateTime=iso(event.at), Repeats=1)
    timeout = float(invocation["Timeout"])
    timed_out = duration > timeout
    state.schedule_at(event.at + (timeout if timed_out else max(0.0, duration)), "ecs.invocation.finish",
                      invoke_id=invocation["InvokeId"], instance_id=entry["InstanceId"], timed_out=timed_out)


@on_event("ecs.invocation.finish")
def _on_finish(state: State, event) -> None:
    invocation, entry = _entry(state, event.payload["invoke_id"], event.payload["instance_id"])
    if entry is None or entry["Status"] != "Running":
        return
    rule = entry.get("_rule") or _outcome(state, entry["Script"], entry["InstanceId"], invocation["InvokeId"],
                                          consume=False)
    simulated = public_commands.simulate(state, invocation["CommandId"], entry["InstanceId"],
                                         invocation["Parameters"]) if invocation.get("Public") else None
    base_exit, base_output, apply = simulated if simulated is not None else (0, entry["Script"], None)
    output = str(rule.get("output", base_output))
    exit_code = int(rule.get("exit_code", base_exit))
    if event.payload.get("timed_out"):
        status, exit_code = "Timeout", TIMEOUT_EXIT_CODE
    else:
        status = rule.get("status") or ("Success" if exit_code == 0 else "Failed")
        if status not in ("Success", "Failed", "Timeout", "Error"):
            status = "Success" if exit_code == 0 else "Failed"
    if apply is not None and status == "Success" and exit_code == 0:
        apply()
    raw = output.encode()
    dropped = max(0, len(raw) - MAX_OUTPUT)
    error_code, error_info = ERRORS.get(status, ("", ""))
    entry.update(Status=status, ExitCode=exit_code, Output=raw[:MAX_OUTPUT].decode(errors="ignore"),
                 Dropped=dropped, ErrorCode=error_code, ErrorInfo=error_info, FinishTime=iso(event.at),
                 UpdateTime=iso(event.at))


def invocation_status(invocation: dict) -> str:
    statuses = [e["Status"] for e in invocation["Instances"]]
    if all(s == "Pending" for s in statuses):
        return "Pending"
    if any(s in ("Pending", "Running") for s in statuses):
        return "Running"
    if invocation.get("Stopped") and any(s in ("Cancelled", "Terminated") for s in statuses):
        return "Stopped"
    if all(s == "Success" for s in statuses):
        return "Success"
    if any(s == "Success" for s in statuses):
        return "PartialFailed"
    return "Failed"


def invoke_status(invocation: dict) -> str:
    records = [record_status(e) for e in invocation["Instances"]]
    if any(r == "Running" for r in records):
        return "Running"
    if "Stopped" in records:
        return "Stopped"
    if all(r == "Finished" for r in records):
        return "Finished"
    if all(r == "Failed" for r in records):
        return "Failed"
    return "PartialFailed"


# -- actions ------------------------------------------------------------------------------------
@action("ecs", "RunCommand")
def run_command(call: Call, p: Params) -> dict:
    region = region_or_error(p.str("RegionId"))
    token_key, seen = _idempotent(call, p, "RunCommand")
    if seen is not None:
        return seen
    cmd_type = _type(p)
    content = _content(p)
    limits = _limits(p)
    _repeat_mode(p)
    enabled = p.bool("EnableParameter")
    names = _parameter_names(content, enabled)
    values = _parameters(p, enabled, names)
    _check_size(content, p)
    instances = _instances(call, p, region, TYPES[cmd_type])
    command = _new_command(call, region, cmd_type, content, names, limits, enabled, p.bool("KeepCommand"))
    invocation = _start_invocation(call, command, instances, values, {"Username": limits["Username"]},
                                   p.str("ClientToken"))
    return _remember(call, p, token_key, {"CommandId": command["CommandId"], "InvokeId": invocation["InvokeId"]})


@action("ecs", "CreateCommand")
def create_command(call: Call, p: Params) -> dict:
    region = region_or_error(p.str("RegionId"))
    token_key, seen = _idempotent(call, p, "CreateCommand")
    if seen is not None:
        return seen
    if p.str("Name") is None:
        raise _err("MissingParameter.Name",
                   "The input parameter \"Name\" that is mandatory for processing this request is not supplied.")
    cmd_type = _type(p)
    content = _content(p)
    limits = _limits(p)
    enabled = p.bool("EnableParameter")
    names = _parameter_names(content, enabled)
    _check_size(content, p)
    command = _new_command(call, region, cmd_type, content, names, limits, enabled, True)
    return _remember(call, p, token_key, {"CommandId": command["CommandId"]})


@action("ecs", "InvokeCommand")
def invoke_command(call: Call, p: Params) -> dict:
    region = region_or_error(p.str("RegionId"))
    token_key, seen = _idempotent(call, p, "InvokeCommand")
    if seen is not None:
        return seen
    command_id = p.str("CommandId")
    if command_id is None:
        raise _err("MissingParameter.CommandId",
                   "The input parameter \"CommandId\" that is mandatory for processing this request is not supplied.")
    command = call.state.table(COMMANDS).get(command_id) or public_commands.get(command_id, region)
    if command is None or command["RegionId"] != region or not command.get("Keep"):
        raise _err("InvalidCmdId.NotFound", "The specified command ID does not exist.", 404)
    _repeat_mode(p)
    username = p.str("Username") or ""
    if len(username) > 255:
        raise _err("Username.ExceedLimit", "The length of the username exceeds the upper limit.", 403)
    overrides: dict[str, Any] = {"Username": username}
    if "Timeout" in p:
        overrides["Timeout"] = _limits(p)["Timeout"]
    if "WorkingDir" in p:
        overrides["WorkingDir"] = _limits(p)["WorkingDir"]
    values = _parameters(p, command["EnableParameter"], command["ParameterNames"], command.get("Defaults"))
    instances = _instances(call, p, region, TYPES[command["Type"]])
    invocation = _start_invocation(call, command, instances, values, overrides, p.str("ClientToken"))
    return _remember(call, p, token_key, {"InvokeId": invocation["InvokeId"]})


def _text_matcher(pattern: str | None, fuzzy: bool):
    """DescribeCommands' Name/Description: ``*`` wildcards; otherwise exact for your commands and a substring for
    public ones ("fuzzy search is supported by default" with Provider)."""
    if not pattern:
        return None
    if "*" in pattern:
        return lambda text: fnmatch.fnmatchcase(text or "", pattern)
    if fuzzy:
        return lambda text: pattern.lower() in (text or "").lower()
    return lambda text: text == pattern


def _command_out(state: State, command: dict, encoding: str) -> dict:
    content = command["CommandContent"] if encoding == "Base64" \
        else base64.b64decode(command["CommandContent"]).decode()
    public = bool(command.get("Public"))
    out = {
        "CommandId": command["CommandId"], "Name": command["Name"], "Description": command["Description"],
        "Type": command["Type"], "CommandContent": content, "WorkingDir": command["WorkingDir"],
        "Timeout": command["Timeout"], "EnableParameter": command["EnableParameter"],
        "ParameterNames": {"ParameterName": list(command["ParameterNames"])},
        "ParameterDefinitions": {"ParameterDefinition": [{
            "ParameterName": d["ParameterName"], "Description": d["Description"], "DefaultValue": d["DefaultValue"],
            "Required": d["Required"], "PatternRegex": d["PatternRegex"],
            "PossibleValues": {"PossibleValue": list(d["PossibleValues"])}}
            for d in command.get("ParameterDefinitions", [])]},
        "InvokeTimes": public_invoke_times(state, command) if public else command.get("InvokeTimes", 0),
        "CreationTime": command["CreationTime"], "Provider": command.get("Provider", ""),
        "Category": command.get("Category", ""), "Launcher": "", "ResourceGroupId": "", "Tags": {"Tag": []},
    }
    if public:  # "not returned for the Cloud Assistant commands that you created"
        out.update(Version=command["Version"], Latest=command["Latest"])
    return out


@action("ecs", "DescribeCommands")
def describe_commands(call: Call, p: Params) -> dict:
    """Your commands of the region (those CreateCommand or RunCommand KeepCommand=true made) or, with
    ``Provider``, Alibaba Cloud's public commands (:mod:`emulator.ecs.public_commands`)."""
    region = region_or_error(p.str("RegionId"))
    provider = p.str("Provider")
    command_id, cmd_type = p.str("CommandId"), p.str("Type")
    name = _text_matcher(p.str("Name"), fuzzy=bool(provider))
    description = _text_matcher(p.str("Description"), fuzzy=bool(provider))
    encoding = _encoding(p)
    if provider:
        source = public_commands.listed(provider, region)
        if p.bool("Latest"):
            source = [c for c in source if c.get("Latest")]
    else:
        source = [c for c in reversed(call.state.table(COMMANDS).values()) if c["RegionId"] == region and c.get("Keep")]
    rows = [c for c in source if (not command_id or c["CommandId"] == command_id)
            and (not cmd_type or c["Type"] == cmd_type) and (name is None or name(c["Name"]))
            and (description is None or description(c["Description"]))]
    return paged(p, rows, "Commands", "Command", lambda c: _command_out(call.state, c, encoding))


@action("ecs", "StopInvocation")
def stop_invocation(call: Call, p: Params) -> dict:
    region = region_or_error(p.str("RegionId"))
    invoke_id = p.str("InvokeId")
    if invoke_id is None:
        raise _err("MissingParameter.InvokeId",
                   "The input parameter \"InvokeId\" that is mandatory for processing this request is not supplied.")
    invocation = call.state.table(INVOCATIONS).get(invoke_id)
    if invocation is None or invocation["RegionId"] != region:
        raise _err("InvalidInvokeId.NotFound", "The specified invoke ID does not exist.", 404)
    only = set(p.repeat_list("InstanceId"))
    known = {e["InstanceId"] for e in invocation["Instances"]}
    if only - known:
        raise _err("InvalidInstance.NotFound", f"The specified instance does not exist. ({sorted(only - known)[0]})",
                   404)
    now = iso(call.now)
    for entry in invocation["Instances"]:
        if only and entry["InstanceId"] not in only:
            continue
        if entry["Status"] == "Pending":
            entry.update(Status="Cancelled", StopTime=now, FinishTime=now, UpdateTime=now)
        elif entry["Status"] == "Running":
            code, info = ERRORS["Terminated"]
            entry.update(Status="Terminated", StopTime=now, FinishTime=now, UpdateTime=now, ErrorCode=code,
                         ErrorInfo=info, ExitCode=TIMEOUT_EXIT_CODE)
    invocation["Stopped"] = True
    call.state.dirty = True
    return {}


# -- describe -----------------------------------------------------------------------------------
def _encoding(p: Params) -> str:
    return "PlainText" if (p.str("ContentEncoding") or "").lower() == "plaintext" else "Base64"


def page(p: Params, total: int, err_prefix: str = "InvalidParam") -> tuple[int, int, int, str | None]:
    """(start, size, page_number, next_token) for PageNumber/PageSize or MaxResults/NextToken."""
    try:
        page_number = int(p.str("PageNumber") or 1)
        if page_number < 1:
            raise ValueError
    except ValueError:
        raise _err(f"{err_prefix}.PageNumber", "The specified parameter is invalid.", 403) from None
    try:
        page_size = int(p.str("PageSize") or 10)
        if not 1 <= page_size <= 50:
            raise ValueError
    except ValueError:
        raise _err(f"{err_prefix}.PageSize", "The specified parameter is invalid.", 403) from None
    if "MaxResults" in p or "NextToken" in p:
        try:
            size = int(p.str("MaxResults") or 10)
            if not 1 <= size <= 50:
                raise ValueError
        except ValueError:
            raise _err("InvalidParameter.MaxResults", "The specified parameter MaxResults is not valid.") from None
        token = p.str("NextToken")
        start = 0
        if token:
            try:
                start = int(base64.b64decode(token.encode(), validate=True).decode())
                if start < 0:
                    raise ValueError
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise _err("InvalidParameter.NextToken", "The specified parameter NextToken is not valid.") from None
        nxt = _b64(str(start + size)) if start + size < total else ""
        return start, size, 1, nxt
    return (page_number - 1) * page_size, page_size, page_number, None


def paged(p: Params, rows: list, outer: str, inner: str, render, *, whole: bool = False) -> dict:
    """``{outer: {inner: [render(row)...]}, TotalCount, PageNumber, PageSize[, NextToken]}`` for one page of
    ``rows`` (``whole``: every row, the paging parameters checked but not applied)."""
    start, size, page_number, next_token = page(p, len(rows))
    if whole:
        start, size, next_token = 0, max(len(rows), 1), (None if next_token is None else "")
    body = {outer: {inner: [render(row) for row in rows[start:start + size]]}, "TotalCount": len(rows),
            "PageNumber": page_number, "PageSize": size}
    if next_token is not None:
        body["NextToken"] = next_token
    return body


def _output(entry: dict, encoding: str) -> str:
    return entry["Output"] if encoding == "PlainText" else _b64(entry["Output"])


def _sorted_invocations(call: Call, region: str) -> list[dict]:
    rows = [i for i in call.state.table(INVOCATIONS).values() if i["RegionId"] == region]
    rows.sort(key=lambda i: (-i["Created"], i["InvokeId"]))
    return rows


@action("ecs", "DescribeInvocations")
def describe_invocations(call: Call, p: Params) -> dict:
    region = region_or_error(p.str("RegionId"))
    invoke_id, command_id, instance_id = p.str("InvokeId"), p.str("CommandId"), p.str("InstanceId")
    name, cmd_type = p.str("CommandName"), p.str("CommandType")
    status = (p.str("InvokeStatus") or "").lower()
    repeat_mode = p.str("RepeatMode")
    include_output = p.bool("IncludeOutput")
    encoding = _encoding(p)
    rows = []
    for inv in _sorted_invocations(call, region):
        if invoke_id and inv["InvokeId"] != invoke_id:
            continue
        if command_id and inv["CommandId"] != command_id:
            continue
        if instance_id and instance_id not in {e["InstanceId"] for e in inv["Instances"]}:
            continue
        if name and inv["CommandName"] != name:
            continue
        if cmd_type and inv["CommandType"] != cmd_type:
            continue
        if repeat_mode and inv["RepeatMode"] != repeat_mode:
            continue
        if status and status not in (invoke_status(inv).lower(), invocation_status(inv).lower()):
            continue
        rows.append(inv)
    start, size, page_number, next_token = page(p, len(rows), "InvalidParameter")
    out = []
    for inv in rows[start:start + size]:
        content = inv["CommandContent"] if encoding == "Base64" else base64.b64decode(inv["CommandContent"]).decode()
        instances = []
        for e in inv["Instances"]:
            item = {"InstanceId": e["InstanceId"], "InvocationStatus": e["Status"],
                    "InstanceInvokeStatus": record_status(e), "ExitCode": e["ExitCode"],
                    "ErrorCode": e["ErrorCode"], "ErrorInfo": e["ErrorInfo"], "Dropped": e["Dropped"],
                    "CreationTime": e["CreationTime"], "UpdateTime": e["UpdateTime"], "StartTime": e["StartTime"],
                    "FinishTime": e["FinishTime"], "StopTime": e["StopTime"], "Repeats": e["Repeats"],
                    "Timed": False, "Output": _output(e, encoding) if include_output else ""}
            instances.append(item)
        out.append({
            "InvokeId": inv["InvokeId"], "CommandId": inv["CommandId"], "CommandName": inv["CommandName"],
            "CommandType": inv["CommandType"], "CommandContent": content,
            "CommandDescription": inv["CommandDescription"], "Parameters": json.dumps(inv["Parameters"]),
            "InvocationStatus": invocation_status(inv), "InvokeStatus": invoke_status(inv),
            "CreationTime": inv["CreationTime"], "RepeatMode": inv["RepeatMode"], "Timed": False, "Frequency": "",
            "Timeout": inv["Timeout"], "Username": inv["Username"], "WorkingDir": inv["WorkingDir"],
            "InvokeInstances": {"InvokeInstance": instances}, "Tags": {"Tag": []},
        })
    body = {"Invocations": {"Invocation": out}, "TotalCount": len(rows), "PageNumber": page_number,
            "PageSize": size}
    if next_token is not None:
        body["NextToken"] = next_token
    return body


@action("ecs", "DescribeInvocationResults")
def describe_invocation_results(call: Call, p: Params) -> dict:
    region = region_or_error(p.str("RegionId"))
    invoke_id, command_id, instance_id = p.str("InvokeId"), p.str("CommandId"), p.str("InstanceId")
    wanted_record = (p.str("InvokeRecordStatus") or "").lower()
    encoding = _encoding(p)
    rows = []
    for inv in _sorted_invocations(call, region):
        if invoke_id and inv["InvokeId"] != invoke_id:
            continue
        if command_id and inv["CommandId"] != command_id:
            continue
        for e in inv["Instances"]:
            if instance_id and e["InstanceId"] != instance_id:
                continue
            if wanted_record and record_status(e).lower() != wanted_record:
                continue
            rows.append((inv, e))
    start, size, page_number, next_token = page(p, len(rows))
    results = [{
        "InvokeId": inv["InvokeId"], "CommandId": inv["CommandId"], "InstanceId": e["InstanceId"],
        "InvocationStatus": e["Status"], "InvokeRecordStatus": record_status(e),
        "ExitCode": e["ExitCode"], "Output": _output(e, encoding), "Dropped": e["Dropped"],
        "ErrorCode": e["ErrorCode"], "ErrorInfo": e["ErrorInfo"], "StartTime": e["StartTime"],
        "FinishedTime": e["FinishTime"], "StopTime": e["StopTime"], "Repeats": e["Repeats"],
        "Username": inv["Username"], "Tags": {"Tag": []},
    } for inv, e in rows[start:start + size]]
    invocation = {"InvocationResults": {"InvocationResult": results}, "TotalCount": len(rows),
                  "PageNumber": page_number, "PageSize": size}
    if next_token is not None:
        invocation["NextToken"] = next_token
    return {"Invocation": invocation}


# -- admin --------------------------------------------------------------------------------------
RULE_FIELDS = ("match", "instance_ids", "exit_code", "output", "duration", "status", "count")


def _bad(message: str) -> ApiError:
    return ApiError("InvalidBody", message, 400)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_rule(rule: Any, where: str) -> dict:
    if not isinstance(rule, dict):
        raise _bad(f"{where} must be an object, got {rule!r}")
    unknown = sorted(str(k) for k in rule if k not in RULE_FIELDS)
    if unknown:
        raise _bad(f"{where} has unknown field(s) {', '.join(unknown)} (allowed: {', '.join(RULE_FIELDS)})")
    if "match" in rule and not isinstance(rule["match"], str):
        raise _bad(f"{where}.match must be a string (a substring of the rendered script), got {rule['match']!r}")
    if "output" in rule and not isinstance(rule["output"], str):
        raise _bad(f"{where}.output must be a string, got {rule['output']!r}")
    if "status" in rule and rule["status"] not in ("Success", "Failed", "Timeout", "Error"):
        raise _bad(f"{where}.status must be Success, Failed, Timeout or Error, got {rule['status']!r}")
    if "exit_code" in rule and (not _is_int(rule["exit_code"]) or not -2**31 <= rule["exit_code"] < 2**31):
        raise _bad(f"{where}.exit_code must be an integer, got {rule['exit_code']!r}")
    duration = rule.get("duration", 0)
    if not isinstance(duration, int | float) or isinstance(duration, bool) or not 0 <= duration <= 10**9:
        raise _bad(f"{where}.duration must be a number of simulated seconds >= 0, got {duration!r}")
    ids = rule.get("instance_ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise _bad(f"{where}.instance_ids must be a list of instance ids, got {ids!r}")
    if "count" in rule and (not _is_int(rule["count"]) or rule["count"] < 1):
        raise _bad(f"{where}.count must be an integer >= 1 (the number of runs the rule applies to), "
                   f"got {rule['count']!r}")
    return dict(rule)


def _validate_offline(state: State, ids: Any) -> list[str]:
    if not isinstance(ids, list):
        raise _bad(f"agent_offline must be a list of instance ids, got {ids!r}")
    instances = state.table(INSTANCES)
    for n, instance_id in enumerate(ids):
        if not isinstance(instance_id, str) or instance_id not in instances:
            raise _bad(f"agent_offline[{n}] must be the id of an existing instance, got {instance_id!r}")
    return list(dict.fromkeys(ids))


def _validate_behaviour(body: dict) -> dict:
    unknown = sorted(str(k) for k in body if k not in ("rules", "not_running", "agent_offline"))
    if unknown:
        raise _bad(f"unknown key(s) {', '.join(unknown)} (allowed: rules, not_running, agent_offline)")
    rules = body.get("rules", [])
    if not isinstance(rules, list):
        raise _bad(f"rules must be a list, got {rules!r}")
    clean = [_validate_rule(rule, f"rules[{n}]") for n, rule in enumerate(rules)]
    not_running = body.get("not_running", "record")
    if not_running not in ("record", "reject"):
        raise _bad(f"not_running must be 'record' or 'reject', got {not_running!r}")
    return {"rules": clean, "not_running": not_running}


@admin_route("POST", "command-behaviour")
def set_command_behaviour(emulator, body: dict, query: dict) -> dict:
    cfg = _validate_behaviour(body)
    offline = _validate_offline(emulator.state, body["agent_offline"]) if "agent_offline" in body else None
    emulator.state.table("admin")["command_behaviour"] = cfg
    if offline is not None:
        agent.set_offline(emulator.state, offline)
    return get_command_behaviour(emulator, {}, {})


@admin_route("PUT", "command-behaviour")
def put_command_behaviour(emulator, body: dict, query: dict) -> dict:
    return set_command_behaviour(emulator, body, query)


@admin_route("GET", "command-behaviour")
def get_command_behaviour(emulator, body: dict, query: dict) -> dict:
    return {"not_running": "record", **behaviour(emulator.state), "agent_offline": agent.offline_ids(emulator.state)}
