"""The errors of aliyun_ops: one small hierarchy, no message-prefix protocols.

- Bad input: ``ValueError`` (or a Param's schema error in the trigger form), raised before any API call.
- A failed API call: :class:`AliyunApiError` (the SDK's exception, whatever the SDK, kept as ``__cause__``);
  :class:`AliyunPermissionError` when RAM refused it (fails the task at once: a retry cannot help).
- An item left alone on purpose: :class:`ItemSkipped` (per-item actions; not counted as an error).
- Everything else a task of ours fails with is an :class:`AliyunOpsError`:
  :class:`WaitFailed` (a wait ended without what it waited for), :class:`TooManyItemFailures` (more items
  failed than ``max_errors`` allows; no retry) and :class:`RunIncomplete` (a report task found that something
  the run promised did not happen; raised after the report is written).
- A task with nothing to do says so with Airflow's ``AirflowSkipException``.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException, AirflowFailException

THROTTLING_CODES = frozenset({
    "Throttling", "Throttling.User", "Throttling.Api", "Throttling.Concurrent", "ServiceUnavailable",
    "RequestLimitExceeded", "Throttling.Resource",
})
"""Error codes that mean "slow down" and are always retried."""

SERVER_CODES = frozenset({"InternalError", "UnknownError", "ServiceUnavailable", "InternalServerError"})
"""Error codes of transient server-side failures, retried like any 5xx."""

TRANSIENT_CODES = frozenset({
    "OperationConflict", "LastTokenProcessing", "IdempotenceProcessing", "ServiceBusy", "InternalError.Dispatch",
    "RequestTimeout",
})
"""4xx codes Alibaba documents as "try again later" (a concurrent operation, a ClientToken still being processed)."""

PERMISSION_CODES = frozenset({"Forbidden.RAM", "Forbidden.NoPermission", "NoPermission", "Forbidden", "AccessDenied"})
"""Codes of a request the caller is not allowed to make (403): retrying will not help until a policy changes."""

NETWORK_ERROR_CODE = "NetworkError"
"""Code given to connection errors, resets and timeouts (no HTTP response was received)."""


class AliyunApiError(RuntimeError):
    """A failed Alibaba Cloud API call.

    ``str(err)`` looks like::

        ECS CreateImage failed: InvalidInstanceId.NotFound (HTTP 404): The specified InstanceId does not exist.
        RequestId=5A1B...

    :param action: API action name, e.g. ``"CreateImage"``
    :param code: Alibaba error code (``"InvalidInstanceId.NotFound"``); ``"NetworkError"`` when no response came
    :param message: the error message without the SDK's "code: 404, ... request id: ..." decoration
    :param request_id: ``RequestId`` of the failed response, if any
    :param status_code: HTTP status, or None for network errors
    :param retryable: whether the hook's retry policy considers the error transient
    :param service: product label (``"ECS"``, ``"RDS"``, ``"OSS"``), used in the message
    :param retry_after: server-requested minimum wait in seconds (``x-acs-retry-after``), if any
    :param attempts: how many attempts were made before giving up
    """

    def __init__(self, action: str, code: str | None, message: str | None, request_id: str | None = None,
                 status_code: int | None = None, retryable: bool = False, *, service: str | None = None,
                 retry_after: float | None = None, attempts: int | None = None) -> None:
        self.action = action
        self.code = code
        self.message = message
        self.request_id = request_id
        self.status_code = status_code
        self.retryable = retryable
        self.service = service
        self.retry_after = retry_after
        self.attempts = attempts
        super().__init__(self._render())

    def _render(self) -> str:
        label = f"{self.service} {self.action}" if self.service else self.action
        http = f" (HTTP {self.status_code})" if self.status_code else ""
        text = f"{label} failed: {self.code or 'UnknownError'}{http}: {self.message or ''}".rstrip(": ")
        if self.request_id:
            text += f" RequestId={self.request_id}"
        if self.attempts and self.attempts > 1:
            text += f" (after {self.attempts} attempts)"
        return text

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self):
        return (_rebuild, (self.__class__, self.to_dict()))

    @property
    def is_not_found(self) -> bool:
        """True for ``*.NotFound`` codes and HTTP 404 (the resource does not exist, or not yet)."""
        return self.status_code == 404 or bool(self.code and (self.code.endswith("NotFound")
                                                              or self.code.startswith("NoSuch")))

    @property
    def is_throttling(self) -> bool:
        return bool(self.code and (self.code in THROTTLING_CODES or self.code.startswith("Throttling")))

    def to_dict(self) -> dict:
        """JSON-safe description (for trigger events and per-item reports)."""
        return {"action": self.action, "code": self.code, "message": self.message, "request_id": self.request_id,
                "status_code": self.status_code, "retryable": self.retryable, "service": self.service,
                "retry_after": self.retry_after, "attempts": self.attempts}


class ItemSkipped(Exception):
    """Raised by a per-item action for an item that is left alone on purpose (not an error, not counted
    against ``max_errors``): :func:`aliyun_ops.actions.pool.run_batch` records it ``skipped`` with the message.

    Example::

        if in_use:
            raise ItemSkipped("in use by an instance")
    """


def error_reason(exc: BaseException) -> str:
    """A short reason for a per-item result: ``"Code: message (RequestId ...)"`` for API errors.

    >>> error_reason(ValueError("bad"))
    'ValueError: bad'
    """
    if isinstance(exc, AliyunApiError):
        rid = f" (RequestId {exc.request_id})" if exc.request_id else ""
        return f"{exc.code}: {exc.message}{rid}"
    return f"{type(exc).__name__}: {exc}"


def _rebuild(cls, data: dict) -> AliyunApiError:
    data = dict(data)
    args = [data.pop(k) for k in ("action", "code", "message", "request_id", "status_code", "retryable")]
    return cls(*args, **data)


class AliyunOpsError(AirflowException, RuntimeError):
    """Base of the errors our tasks fail with (an ``AirflowException``, and a ``RuntimeError`` as before)."""


class WaitFailed(AliyunOpsError):
    """A wait ended without what it waited for: a timeout, a resource that failed, a resume without its event.

    Example::

        raise WaitFailed(f"instances {ids} did not all reach Running: {event['message']}")
    """


class RunIncomplete(AliyunOpsError):
    """Something the run promised did not happen (a start, a thaw, a delete, an archive): raised by a report
    task after it wrote the report, so the run is not green.

    Example::

        raise RunIncomplete(f"{len(problems)} problem(s) (report: {path})")
    """


class AliyunPermissionError(AliyunApiError, AirflowFailException):  # type: ignore[misc]
    """An API call the connection's RAM user or role may not make (``Forbidden.RAM``, OSS ``AccessDenied``).

    It is an :class:`AliyunApiError` (per-item code handles it like any other failure) and an
    ``AirflowFailException``: a task it escapes from fails at once instead of waiting for retries that cannot
    succeed until the policy is fixed. The message names the missing permission when the cloud says which.
    """


def denied(reason: str) -> bool:
    """Whether a per-item reason (from :func:`error_reason`) is a permission error.

    >>> denied("Forbidden.RAM: User not authorized ... [missing RAM permission: ecs:StartInstances (ImplicitDeny)]")
    True
    """
    return any(f"{code}:" in reason for code in PERMISSION_CODES) or "missing RAM permission" in reason


class TooManyItemFailures(AliyunOpsError, AirflowFailException):
    """More items failed than ``max_errors`` allows.

    The per-item results are final (every API call was already retried by the hook), so the
    task fails without an Airflow retry; clear the task or re-run the DAG to try the failed items
    again: what succeeded is found again by provenance tags and ClientToken, not redone.

    Example::

        if budget.exhausted:
            raise TooManyItemFailures(f"{failed} of {total} instances failed (max_errors={max_errors})")
    """
