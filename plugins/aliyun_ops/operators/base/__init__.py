"""The bases every aliyun-ops operator builds on (what sensors share with them is in :mod:`aliyun_ops.runtime`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator

from ...exceptions import TooManyItemFailures, WaitFailed
from ...logic.budget import ErrorBudget
from ...logic.outcome import FAILED
from ...runtime import DEFAULT_CONN_ID, AliyunOperatorMixin, aliyun_template_fields, run_key

__all__ = ["DEFAULT_CONN_ID", "AliyunBaseOperator", "AliyunItemsOperator", "AliyunOperatorMixin",
           "aliyun_template_fields", "log_item_results", "run_key"]


class AliyunBaseOperator(AliyunOperatorMixin, BaseOperator):
    """Base operator: ``aliyun_conn_id`` (default ``aliyun_default``) and an optional ``region``.

    Example::

        class RebootOperator(AliyunBaseOperator):
            hook_class = EcsHook
            def execute(self, context):
                region = self.resolve_region()
                ...
    """

    template_fields: Sequence[str] = aliyun_template_fields()
    ui_color = "#ffd8b5"

    def __init__(self, *, aliyun_conn_id: str = DEFAULT_CONN_ID, region: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aliyun_conn_id = aliyun_conn_id
        self.region = region


class AliyunItemsOperator(AliyunBaseOperator):
    """Base of the operators that act on many items (instances, images, invocations) with one result each.

    It owns what they share, written once: the hand-off to a wait (:meth:`hand_off`: deferred to a trigger when
    ``deferrable``, else driven in the worker), the one :meth:`execute_complete` (what the task needs after
    the wait rides in the trigger's ``carry`` and comes back to :meth:`resume`), and the end
    (:meth:`conclude`: log every item, push the results as XCom ``results``, fail past ``max_errors`` with
    :class:`~aliyun_ops.exceptions.TooManyItemFailures`). A subclass writes only its own steps: find its
    targets, look up what an earlier try made, act on the rest, and read the wait's event.

    Example::

        class RebootInstancesOperator(AliyunItemsOperator):
            hook_class = EcsHook
            item_noun = "instances"

            def execute(self, context):
                results = [...]  # one dict per instance: instance_id, region, status, reason
                event = self.hand_off(InstanceStatusTrigger(targets=..., target_status="Running", carry=results),
                                      wait_here=lambda: poll_instances(...), timeout=timedelta(hours=1))
                return self.resume(context, results, event)

            def resume(self, context, carry, event):
                ...  # mark each result from the event
                return self.conclude(context, carry)
    """

    item_noun = "item(s)"
    """What the items are called in the failure message (``"2 of 6 instances failed"``)."""
    result_key_fields: tuple[str, ...] = ("instance_id",)
    """The fields naming an item in the log and in the failure message."""
    state_field = "instance_status"
    """The field holding the cloud's last status of an item, shown in the log."""
    max_errors: int | str = 0
    deferrable: bool = True

    def hand_off(self, trigger: Any, *, wait_here: Callable[[], Mapping[str, Any]],
                 timeout: timedelta | None) -> Mapping[str, Any]:
        """Wait: deferred to ``trigger`` when ``deferrable`` (this try ends there, and :meth:`resume` gets the
        trigger's event), else ``wait_here()`` in the worker, whose event (same shape) is returned."""
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete", timeout=timeout)
        return wait_here()

    def execute_complete(self, context: Any, event: Mapping[str, Any] | None = None) -> Any:
        """Resumed after a deferral: hand the trigger's ``carry`` and event to :meth:`resume`."""
        if event is None:
            raise WaitFailed(f"{self.task_id}: resumed without a trigger event")
        carry = event.get("carry")
        if carry is None:
            carry = event.get("echo")  # events of image triggers stored before the rename to carry
        if carry is None:
            raise WaitFailed(f"{self.task_id}: the trigger event carries no state to resume from")
        return self.resume(context, carry, event)

    def resume(self, context: Any, carry: Any, event: Mapping[str, Any]) -> Any:
        """Go on after a wait with what was carried through it (subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} defers but cannot resume")

    def conclude(self, context: Any, results: list[dict], *, title: str | None = None,
                 counted: Sequence[Mapping[str, Any]] | None = None) -> list[dict]:
        """Log the results, push them as XCom ``results`` (readable when the task then fails) and raise
        :meth:`too_many_failures` when the failures exceed ``max_errors`` (of ``counted``, by default every result:
        an operator may leave out rows nothing was tried for); returns ``results``."""
        for r in results:
            for key in [k for k in r if k.startswith("_")]:
                del r[key]
        title = title or type(self).__name__
        log_item_results(self.log, title, results, self.result_key_fields, self.state_field)
        if context is not None:
            context["ti"].xcom_push(key="results", value=results)
        counted = results if counted is None else counted
        budget = ErrorBudget.after((r.get("status", "") for r in counted), self.max_errors)
        if budget.exhausted:
            raise self.too_many_failures(title, [r for r in results if r.get("status") == FAILED], len(counted),
                                         budget.allowed)
        return results

    def too_many_failures(self, title: str, failed: list[dict], total: int, allowed: int) -> Exception:
        """The error a task fails with past ``max_errors``: :class:`TooManyItemFailures` (no retry: every call was
        retried already), naming the failed items. An operator whose failures deserve a retry overrides it."""
        lines = "\n".join(f"  {item_name(r, self.result_key_fields)}: {r.get('reason') or 'failed'}"
                          for r in failed[:20])
        more = f"\n  ... and {len(failed) - 20} more" if len(failed) > 20 else ""
        return TooManyItemFailures(
            f"{title}: {len(failed)} of {total} {self.item_noun} failed, more than max_errors={self.max_errors!r} "
            f"allows ({allowed}):\n{lines}{more}")


def item_name(result: Mapping[str, Any], key_fields: Sequence[str]) -> str:
    """``"i-1"``, ``"m-1/cn-shanghai"``: the key fields of a result that are set, joined by ``/``."""
    return "/".join(str(result.get(k)) for k in key_fields if result.get(k)) or "?"


def log_item_results(log: Any, title: str, results: Sequence[Mapping[str, Any]],
                     key_fields: Sequence[str] = ("instance_id",), state_field: str = "instance_status") -> None:
    """One line of counts, then one line per item (name, region, status, the cloud's status, reason)."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.get("status", "")] = counts.get(r.get("status", ""), 0) + 1
    log.info("%s: %s", title, ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to do")
    for r in results:
        log.info("  %-28s %-14s %-8s %-12s %s", item_name(r, key_fields), r.get("region", ""), r.get("status", ""),
                 r.get(state_field) or "", r.get("reason") or "")
