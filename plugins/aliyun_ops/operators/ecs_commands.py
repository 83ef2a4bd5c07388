"""Cloud Assistant: run a script on many ECS instances and collect per-instance exit codes and output."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from aliyun_ops.actions.power import lease_items, mark_paused, next_wave, plan_waves, result, triage, unmark_paused
from aliyun_ops.exceptions import TRANSIENT_CODES, AliyunApiError
from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.logic import pause
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.args import as_number, check_count, check_lease_wait
from aliyun_ops.logic.budget import check_concurrency
from aliyun_ops.logic.commands import (  # noqa: F401 - decode_output re-exported
    AGENT_OFFLINE_CODES,
    COMMAND_TYPES,
    MAX_CONTENT_B64,
    MAX_INSTANCES_PER_CALL,
    MAX_PARAMETER_NAME,
    MAX_PARAMETERS,
    MAX_TIMEOUT,
    decode_output,
)
from aliyun_ops.logic.outcome import FAILED, SKIPPED, SUCCESS
from aliyun_ops.logic.targets import by_region, normalize_instances
from aliyun_ops.operators.base import AliyunItemsOperator, aliyun_template_fields
from aliyun_ops.triggers.ecs_instances import InvocationTrigger
from aliyun_ops.waiting import deadline_from
from aliyun_ops.waiting.drivers import poll_invocations
from aliyun_ops.waiting.instances import InvocationWatch

_PARAM_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def _b64len(text: str) -> int:
    return len(base64.b64encode(text.encode()))


class RunCommandOperator(AliyunItemsOperator):
    """Run a Cloud Assistant command on ECS instances and report exit code and output per instance.

    One ``RunCommand`` call per region for up to 100 instances (larger sets are chunked), each with a
    stable ClientToken (same run, task, chunk and instance set -> the same invocation on a retry), and
    the invoke ids are kept in the task state store. Only ``Running`` instances are targeted; others
    are reported ``skipped`` (``not_running="skip"``, default) or ``failed`` (``"fail"``), as are
    instances whose OS does not fit ``command_type``. Waiting is deferred to
    :class:`~aliyun_ops.triggers.ecs_instances.InvocationTrigger` (one DescribeInvocations per invoke id
    per poll) unless ``deferrable=False``; the outputs are fetched on resume with
    DescribeInvocationResults.

    Checked before any API call (``ValueError``): ``command_type`` is one of RunShellScript (default),
    RunPythonScript, RunPerlScript, RunPowerShellScript, RunBatScript; ``command_content`` is at most 16 KB once
    Base64-encoded (Alibaba's documented limit; the parameters' JSON counts too); at most 20 custom
    ``parameters`` with names of letters, digits, ``-`` and ``_`` (≤ 64 chars) and scalar values;
    ``timeout`` 1-86400 s; ``working_dir`` ≤ 200 and ``username`` ≤ 255 characters.

    ``command_content`` (alias ``content``) is a templated field and may name a file ending in ``.sh``,
    ``.ps1``, ``.bat`` or ``.py`` (found through the DAG's ``template_searchpath``), or use
    ``{% include 'scripts/x.sh' %}``. Cloud Assistant placeholders
    (``{{name}}``) collide with Jinja: write them as ``{{ '{{name}}' }}`` or inside
    ``{% raw %}...{% endraw %}``.

    ``concurrency`` (number or percentage, default ``"100%"``) runs rolling waves: each wave is invoked and
    waited for before the next; once failures exceed ``max_errors`` no new wave starts (the rest are
    ``skipped``).

    ``mark_paused=True`` (a pre-backup freeze) tags each instance ``ops:paused-by``/``ops:paused-mode=freeze``
    before the command is sent, so :class:`~aliyun_ops.operators.ecs_pause.ResumePausedOperator` thaws every
    instance the command may have frozen, even those where it failed half-way. Each instance is leased to this run
    first (as :class:`~aliyun_ops.operators.ecs_instances.StopInstancesOperator` does; ``lease_wait`` seconds of
    waiting for another run's lease, default 0). An empty ``instances`` list is a no-op. The results are pushed as XCom ``results`` before the task fails on ``max_errors``.

    Result per instance (XCom): ``{"instance_id", "region", "status", "reason", "instance_status",
    "invoke_id", "invocation_status", "exit_code", "error_code", "output", "output_truncated", "dropped"}``;
    ``status`` is success/failed/skipped, ``invocation_status`` Cloud Assistant's (Success, Failed,
    Timeout, Aborted, ...); ``output`` is decoded and cut to ``output_limit`` characters (the full output
    is in the task log). A non-zero exit code is a failure unless ``fail_on_nonzero=False``; the task
    fails only when failures exceed ``max_errors``.

    Example::

        RunCommandOperator(task_id="flush", instances=select.output, region="cn-hangzhou",
                           command_content="sync && echo flushed {{ '{{tag}}' }}", parameters={"tag": "nightly"},
                           timeout=120, max_errors="10%")
    """

    template_fields = aliyun_template_fields("instances", "command_content", "parameters", "working_dir", "username",
                                             "command_type", "name", "concurrency", "max_errors", "poll_interval",
                                             "wait_timeout", "timeout", "lease_wait")
    template_ext = (".sh", ".ps1", ".bat", ".py")
    template_fields_renderers = {"command_content": "bash", "parameters": "json"}
    hook_class = EcsHook
    item_noun = "instances"

    def __init__(self, *, instances: Any, command_content: str | None = None, command_type: str = "RunShellScript",
                 parameters: Mapping[str, Any] | None = None, enable_parameter: bool | None = None,
                 timeout: int = 600, working_dir: str | None = None, username: str | None = None,
                 name: str | None = None, not_running: str = "skip", fail_on_nonzero: bool = True,
                 concurrency: int | str = "100%", max_errors: int | str = 0, output_limit: int = 4096,
                 deferrable: bool = True, poll_interval: float = 10.0, wait_timeout: float | None = None,
                 content: str | None = None, mark_paused: bool = False, lease_wait: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instances = instances
        self.mark_paused = mark_paused
        self.lease_wait = lease_wait
        self.command_content = command_content if command_content is not None else content
        self.concurrency = concurrency
        self.command_type = command_type
        self.parameters = parameters
        self.enable_parameter = enable_parameter
        self.timeout = timeout
        self.working_dir = working_dir
        self.username = username
        self.name = name
        self.not_running = not_running
        self.fail_on_nonzero = fail_on_nonzero
        self.max_errors = max_errors
        self.output_limit = output_limit
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout

    # -- validation -----------------------------------------------------------------------------------
    def validate(self) -> dict[str, str] | None:
        """Check every limit before any API call; returns the parameters as ``str -> str``."""
        if self.command_type not in COMMAND_TYPES:
            raise ValueError(f"command_type must be one of {sorted(COMMAND_TYPES)}, got {self.command_type!r}")
        if not isinstance(self.command_content, str) or not self.command_content.strip():
            raise ValueError("command_content (the script) must be a non-empty string")
        params: dict[str, str] | None = None
        if self.parameters is not None:
            if not isinstance(self.parameters, Mapping):
                raise ValueError("parameters must be an object of name -> value")
            if len(self.parameters) > MAX_PARAMETERS:
                raise ValueError(f"at most {MAX_PARAMETERS} custom parameters, got {len(self.parameters)}")
            params = {}
            for key, value in self.parameters.items():
                if not isinstance(key, str) or not _PARAM_NAME.match(key):
                    raise ValueError(f"parameter name {key!r} must be 1-{MAX_PARAMETER_NAME} letters, digits, "
                                     f"'-' or '_'")
                if isinstance(value, (dict, list, tuple, set)) or value is None:
                    raise ValueError(f"parameter {key!r} must be a string or a number, got {type(value).__name__}")
                params[key] = str(value).lower() if isinstance(value, bool) else str(value)
        if self.enable_parameter is False and params:
            raise ValueError("parameters given but enable_parameter=False")
        size = _b64len(self.command_content) + (_b64len(json.dumps(params)) if params else 0)
        if size > MAX_CONTENT_B64:
            raise ValueError(f"the command is {size} bytes once Base64-encoded (with its parameters); Cloud "
                             f"Assistant accepts at most {MAX_CONTENT_B64} (16 KB). Ship a bigger script as a "
                             f"file (e.g. OSS) and run a short command that fetches it")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int) or not 1 <= self.timeout <= MAX_TIMEOUT:
            raise ValueError(f"timeout must be an integer number of seconds, 1-{MAX_TIMEOUT}, got {self.timeout!r}")
        if self.working_dir is not None and len(self.working_dir) > 200:
            raise ValueError("working_dir is longer than 200 characters")
        if self.username is not None and len(self.username) > 255:
            raise ValueError("username is longer than 255 characters")
        if self.name is not None and not 1 <= len(self.name) <= 128:
            raise ValueError("name must be 1-128 characters")
        if self.not_running not in ("skip", "fail"):
            raise ValueError(f"not_running must be 'skip' or 'fail', got {self.not_running!r}")
        if not isinstance(self.output_limit, int) or self.output_limit < 0:
            raise ValueError("output_limit must be a non-negative integer")
        self.poll_interval, self.wait_timeout = as_number(self.poll_interval), as_number(self.wait_timeout)
        self.timeout = int(as_number(self.timeout)) if isinstance(self.timeout, str) else self.timeout
        if not isinstance(self.poll_interval, (int, float)) or self.poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        check_count(self.max_errors, "max_errors")
        check_concurrency(self.concurrency)
        self.lease_wait = check_lease_wait(self.lease_wait)
        return params

    # -- flow -----------------------------------------------------------------------------------------
    def execute(self, context: Any) -> list[dict]:
        self.validate()
        hook = self.hook
        items = normalize_instances(self.instances, self.region or hook.region)
        if not items:
            self.log.info("no instances: nothing to run")
            context["ti"].xcom_push(key="results", value=[])
            return []
        leased, refused = items, {}
        if self.mark_paused:  # a freeze is taken under this run's lease only
            leased, refused = lease_items(hook, context, items, purpose=pause.FREEZE, wait_seconds=self.lease_wait,
                                          poll_interval=float(self.poll_interval), log=self.log)
        settled, runnable = triage(hook, leased, self._decide)
        state = plan_waves(items, {**refused, **settled}, runnable, self.concurrency, "run on", self.log)
        return self._run_waves(context, {**state, "wave": 0, "current": {}})

    def _decide(self, item: Mapping[str, Any], record: Mapping[str, Any]) -> tuple[str, str] | None:
        os_wanted = COMMAND_TYPES[self.command_type]
        if item["status"] != st.RUNNING:
            return SKIPPED if self.not_running == "skip" else FAILED, f"instance is {item['status']}, not Running"
        if (record.get("OSType") or "linux").lower() != os_wanted:
            return FAILED, f"{self.command_type} needs a {os_wanted} instance, this one runs {record.get('OSType')}"
        return None

    def _run_waves(self, context: Any, state: dict) -> list[dict]:
        params = self.validate()
        hook = self.hook
        results = state["results"]
        wait_timeout = self.wait_timeout if self.wait_timeout is not None else self.timeout + 300
        while (wave := next_wave(state, self.max_errors)) is not None:
            invocations = self._invoke(context, hook, wave, params, results, state["wave"])
            state["wave"] += 1
            targets: dict[str, list[str]] = {}
            for invoke_id, inv in invocations.items():
                targets.setdefault(inv["region"], []).append(invoke_id)
            if not targets:
                continue
            state["current"] = invocations
            self._collect(state, self._wait_for_invocations(targets, wait_timeout, state))
        results = [state["results"][iid] for iid in state["order"]]
        return self.conclude(context, results, title=f"RunCommand {self.command_type}")

    def _wait_for_invocations(self, targets: dict[str, list[str]], wait_timeout: float,
                              state: dict) -> Mapping[str, Any]:
        deadline = deadline_from(wait_timeout)
        trigger = InvocationTrigger(targets=targets, aliyun_conn_id=self.aliyun_conn_id,
                                    poll_interval=self.poll_interval, deadline=deadline, carry=state)
        return self.hand_off(trigger, timeout=timedelta(seconds=wait_timeout + 300), wait_here=lambda: poll_invocations(
            self.hook, InvocationWatch(targets), poll_interval=self.poll_interval, deadline=deadline, log=self.log))

    def _invoke(self, context: Any, hook: EcsHook, runnable: list[dict], params: dict[str, str] | None,
                results: dict[str, dict], wave: int) -> dict[str, dict]:
        remembered: dict[str, str] = dict(self.recall(context, "run_command_invocations") or {})
        invocations: dict[str, dict] = {}
        ti = context["ti"]
        name = self.name or f"airflow-{ti.dag_id}-{ti.task_id}"[:128]
        for region, ids in by_region(runnable).items():
            for n in range(0, len(ids), MAX_INSTANCES_PER_CALL):
                chunk = ids[n:n + MAX_INSTANCES_PER_CALL]
                digest = hashlib.sha256(",".join(sorted(chunk)).encode()).hexdigest()[:16]
                key = f"{region}:{wave}:{n // MAX_INSTANCES_PER_CALL}:{digest}"
                invoke_id = remembered.get(key)
                if invoke_id:
                    self.log.info("reusing invocation %s from an earlier try for %d instance(s)", invoke_id,
                                  len(chunk))
                else:
                    not_marked = self._mark_paused(context, hook, region, chunk)
                    if not_marked:
                        for iid in chunk:
                            results[iid] = result({"instance_id": iid, "region": region}, FAILED, st.RUNNING,
                                                  not_marked)
                        continue
                    try:
                        invoke_id = hook.run_command(
                            region, chunk, self.command_content, type=self.command_type, parameters=params,
                            timeout=self.timeout, name=name,
                            # the run id too: a re-run of the same night runs the command again
                            client_token=self.client_token(context, "run-command", str(context["run_id"]), key),
                            working_dir=self.working_dir or None, username=self.username or None)
                    except AliyunApiError as err:
                        for iid in chunk:
                            results[iid] = result({"instance_id": iid, "region": region}, FAILED, st.RUNNING,
                                                  f"RunCommand failed: {err.code}: {err.message}")
                        self._unmark_refused(hook, region, chunk, err)
                        continue
                    remembered[key] = invoke_id
                    self.remember(context, "run_command_invocations", remembered)
                self.log.info("invocation %s: %d instance(s) in %s", invoke_id, len(chunk), region)
                invocations[invoke_id] = {"region": region, "instance_ids": chunk}
        return invocations

    def _mark_paused(self, context: Any, hook: EcsHook, region: str, ids: list[str]) -> str | None:
        """With ``mark_paused``: tag ``ids`` ``ops:paused-mode=freeze`` before the command; the error if that failed."""
        if not self.mark_paused:
            return None
        for needed in ("DescribeInvocations", "DescribeInvocationResults"):  # the thaw must be watchable
            hook.check_allowed(needed, region, ids[0])
        return mark_paused(hook, context, region, ids, pause.FREEZE, "not run")

    def _unmark_refused(self, hook: EcsHook, region: str, ids: list[str], err: AliyunApiError) -> None:
        """A RunCommand refused for certain (a 4xx that is not "try again") froze nothing: drop the pause tags just
        written, so no resume tries to thaw what was never frozen. A lost answer keeps them (it may have run)."""
        refused = err.status_code is not None and 400 <= err.status_code < 500 and err.code not in TRANSIENT_CODES
        if self.mark_paused and refused:
            unmark_paused(hook, region, ids, self.log, "and thaw (a no-op) before untagging")

    def resume(self, context: Any, carry: dict, event: Mapping[str, Any]) -> list[dict]:
        self._collect(carry, event)
        return self._run_waves(context, carry)

    def _collect(self, state: dict, event: Mapping[str, Any]) -> None:
        hook = self.hook
        results = state["results"]
        if event.get("status") != "success":
            self.log.warning("waiting for the invocations ended with %s: %s", event.get("status"),
                             event.get("message"))
        for invoke_id, inv in state["current"].items():
            region = inv["region"]
            try:
                records = {r.get("InstanceId"): r for r in hook.describe_invocation_results(region, invoke_id)}
            except AliyunApiError as err:
                records = {}
                self.log.error("DescribeInvocationResults %s failed: %s", invoke_id, err)
            for iid in inv["instance_ids"]:
                results[iid] = self._instance_result({"instance_id": iid, "region": region}, invoke_id,
                                                     records.get(iid))
        state["current"] = {}

    def _instance_result(self, item: dict, invoke_id: str, rec: Mapping[str, Any] | None) -> dict:
        if rec is None:
            return result(item, FAILED, st.RUNNING, "no result for this instance", invoke_id=invoke_id,
                          invocation_status="Unknown", exit_code=None, output="", output_truncated=False, dropped=0)
        status = str(rec.get("InvocationStatus") or "")
        exit_code = rec.get("ExitCode")
        output = decode_output(rec.get("Output"))
        self.log.info("---- %s (%s) %s exit=%s ----\n%s", item["instance_id"], invoke_id, status, exit_code, output)
        truncated = len(output) > self.output_limit
        extra = {"invoke_id": invoke_id, "invocation_status": status, "exit_code": exit_code,
                 "output": output[:self.output_limit], "output_truncated": truncated,
                 "dropped": int(rec.get("Dropped") or 0), "error_code": str(rec.get("ErrorCode") or "")}
        if status == st.INVOCATION_SUCCESS:
            return result(item, SUCCESS, st.RUNNING, "", **extra)
        error = f"{rec.get('ErrorCode') or status}: {rec.get('ErrorInfo') or ''}".rstrip(": ")
        if rec.get("ErrorCode") in AGENT_OFFLINE_CODES:
            error = f"not run: the Cloud Assistant agent is not reachable ({error})"
        if status == st.INVOCATION_FAILED and rec.get("ErrorCode") in ("ExitCodeNonzero", "", None) and not self.fail_on_nonzero:
            return result(item, SUCCESS, st.RUNNING, f"exit code {exit_code} (allowed: fail_on_nonzero=False)", **extra)
        if status in st.INVOCATION_IN_PROGRESS:
            error = f"still {status} when the wait ended"
        return result(item, FAILED, st.RUNNING, f"{error} (exit code {exit_code})", **extra)


__all__ = ["COMMAND_TYPES", "MAX_CONTENT_B64", "RunCommandOperator", "decode_output"]
