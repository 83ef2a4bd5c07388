"""Errors raised by the aliyun_ops hooks.

Every failure of an Alibaba Cloud API call made through a hook surfaces as
:class:`AliyunApiError`, whatever the SDK (tea-openapi, darabonba, OSS v2) raised. The original
exception is kept as ``__cause__``.
"""

from __future__ import annotations

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
    against ``max_errors``): :func:`aliyun_ops.batch.run_batch` records it ``skipped`` with the message.

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


def _fail_exception_base() -> type[Exception]:
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException


class AliyunPermissionError(AliyunApiError, _fail_exception_base()):  # type: ignore[misc]
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


class TooManyItemFailures(_fail_exception_base()):  # type: ignore[misc]
    """More items failed than ``max_errors`` allows.

    The per-item results are final (every API call was already retried by the hook), so the
    task fails without an Airflow retry; clear the task or re-run the DAG to try the failed items
    again: what succeeded is found again by provenance tags and ClientToken, not redone.

    Example::

        if budget.exhausted:
            raise TooManyItemFailures(f"{failed} of {total} instances failed (max_errors={max_errors})")
    """
