"""The ``aliyun`` connection type and the base hook every aliyun_ops hook builds on.

Connection (all fields optional; ``login``/``password`` may carry the key pair instead)::

    AIRFLOW_CONN_ALIYUN_DEFAULT='{"conn_type": "aliyun", "extra": {
        "access_key_id": "LTAI...", "access_key_secret": "...", "security_token": null,
        "ram_role_arn": null, "role_session_name": "aliyun-ops", "role_session_duration": 3600,
        "ecs_ram_role": null, "ecs_metadata_endpoint": null,
        "region": "cn-hangzhou", "endpoint": "http://127.0.0.1:9100",
        "rate_limits": {"DescribeImages": 10, "*": 20}, "max_attempts": 6,
        "read_timeout": 30, "connect_timeout": 5, "retry_base_delay": 1.0, "retry_max_delay": 20}}'

Credential modes (:attr:`ConnectionSettings.credential_mode`): ``access_key`` (key pair), ``sts`` (key pair +
``security_token``), ``ram_role_arn`` (AssumeRole with ``role_session_name`` for ``role_session_duration``
seconds, from the key pair, the ECS RAM role or the credentials chain; refreshed 15 minutes before expiry),
``ecs_ram_role`` (the instance's RAM role from the ECS metadata service; ``true`` instead of a name asks the
service for it) and ``default`` (no keys: the Alibaba credentials chain: env, OIDC, CLI profile, ini file, ECS RAM
role). ``endpoint`` replaces every service endpoint (ECS, VPC, RDS, OSS, STS): the bundled emulator;
``ecs_metadata_endpoint`` replaces the metadata service's ``100.100.100.200`` (tests and the emulator only).
Temporary keys the SDK fetches (AssumeRole, metadata) are registered with Airflow's secrets masker.

The hook owns every API call (:meth:`AliyunBaseHook.call` / :meth:`AliyunBaseHook.acall`):
client-side rate limit per (region, action), retries with exponential backoff and full jitter on
throttling, 5xx and network errors (honouring ``x-acs-retry-after``), one log line per call with the
RequestId, and SDK errors turned into :class:`aliyun_ops.exceptions.AliyunApiError`.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from aliyun_ops.exceptions import (
    NETWORK_ERROR_CODE,
    PERMISSION_CODES,
    SERVER_CODES,
    THROTTLING_CODES,
    TRANSIENT_CODES,
    AliyunApiError,
    AliyunPermissionError,
)
from aliyun_ops.ratelimit import RateLimiter, backoff_delay, shared_limiter

if TYPE_CHECKING:
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_tea_openapi.models import Config as OpenApiConfig

T = TypeVar("T")

DEFAULT_CONN_ID = "aliyun_default"
DEFAULT_ROLE_SESSION_NAME = "aliyun-ops"
DEFAULT_ROLE_SESSION_DURATION = 3600
MIN_ROLE_SESSION_DURATION, MAX_ROLE_SESSION_DURATION = 900, 43200
DEFAULT_MAX_ATTEMPTS = 6
MAX_RETRY_AFTER = 300.0
"""Longest server-requested wait we honour (seconds); longer values are clamped."""

_KNOWN_EXTRAS = (
    "access_key_id", "access_key_secret", "security_token", "ram_role_arn", "role_session_name",
    "role_session_duration", "ecs_ram_role", "ecs_metadata_endpoint", "region", "endpoint", "rate_limits",
    "max_attempts", "read_timeout", "connect_timeout", "retry_base_delay", "retry_max_delay",
)
_ROLE_NAME = re.compile(r"^[A-Za-z0-9.\-_]{1,64}$")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _number(name: str, value: Any, default: float, *, minimum: float = 0.0) -> float:
    value = _clean(value)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"aliyun connection extra {name!r} must be a number, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"aliyun connection extra {name!r} must be >= {minimum}, got {value!r}")
    return number


def _base_url(conn_id: str, name: str, value: Any) -> str | None:
    """``http(s)://host[:port]`` (no scheme: https), trailing slash dropped; ValueError for anything else."""
    if value is None:
        return None
    value = str(value).rstrip("/")
    parts = urlsplit(value if "://" in value else f"https://{value}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"aliyun connection {conn_id!r}: {name} must look like http://host:port, got {value!r}")
    return value


def _mask(value: str | None) -> str | None:
    if not value:
        return value
    return value[:4] + "***" if len(value) > 8 else "***"


@dataclass(frozen=True, repr=False)
class ConnectionSettings:
    """Everything an ``aliyun`` connection says, parsed and validated once.

    Timeouts and delays are in seconds. ``repr()`` never shows the secret or the token.

    Example::

        settings = ConnectionSettings.from_extras({"region": "cn-hangzhou", "endpoint": "http://127.0.0.1:9100"},
                                                  conn_id="aliyun_default", login="AK", password="SK")
        settings.credential_mode   # "access_key"
    """

    conn_id: str = DEFAULT_CONN_ID
    access_key_id: str | None = None
    access_key_secret: str | None = None
    security_token: str | None = None
    ram_role_arn: str | None = None
    role_session_name: str = DEFAULT_ROLE_SESSION_NAME
    role_session_duration: int = DEFAULT_ROLE_SESSION_DURATION
    ecs_ram_role: str | bool | None = None
    """Role name of the ECS instance RAM role; ``True``: ask the metadata service for it."""
    ecs_metadata_endpoint: str | None = None
    """Base URL of the ECS metadata service instead of ``http://100.100.100.200`` (tests/emulator only)."""
    region: str | None = None
    endpoint: str | None = None
    rate_limits: Mapping[str, float] = field(default_factory=dict, hash=False)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    read_timeout: float = 30.0
    connect_timeout: float = 5.0
    retry_base_delay: float = 1.0
    retry_max_delay: float = 20.0

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_extras(cls, extras: Mapping[str, Any] | None, *, conn_id: str = DEFAULT_CONN_ID,
                    login: str | None = None, password: str | None = None) -> ConnectionSettings:
        """Parse connection extras (plain keys or the UI's ``extra__aliyun__<name>`` form)."""
        raw: dict[str, Any] = {}
        for key, value in (extras or {}).items():
            name = key.removeprefix("extra__aliyun__")
            if name in _KNOWN_EXTRAS:
                raw[name] = _clean(value)
        access_key_id = raw.get("access_key_id") or _clean(login)
        access_key_secret = raw.get("access_key_secret") or _clean(password)
        if bool(access_key_id) != bool(access_key_secret):
            raise ValueError(f"aliyun connection {conn_id!r}: access_key_id and access_key_secret must be given "
                             "together (extras, or login/password)")
        security_token = raw.get("security_token")
        if security_token and not access_key_id:
            raise ValueError(f"aliyun connection {conn_id!r}: security_token needs access_key_id/access_key_secret")
        endpoint = _base_url(conn_id, "endpoint", raw.get("endpoint"))
        ecs_ram_role = raw.get("ecs_ram_role")
        if ecs_ram_role is False:
            ecs_ram_role = None
        if ecs_ram_role is not None and ecs_ram_role is not True and not (
                isinstance(ecs_ram_role, str) and _ROLE_NAME.match(ecs_ram_role)):
            raise ValueError(f"aliyun connection {conn_id!r}: ecs_ram_role must be the instance's RAM role name "
                             f"(or true: ask the metadata service), got {ecs_ram_role!r}")
        if ecs_ram_role is not None and access_key_id:
            raise ValueError(f"aliyun connection {conn_id!r}: give either ecs_ram_role or access_key_id/"
                             "access_key_secret, not both")
        ecs_metadata_endpoint = _base_url(conn_id, "ecs_metadata_endpoint", raw.get("ecs_metadata_endpoint"))
        if ecs_metadata_endpoint and ecs_ram_role is None:
            raise ValueError(f"aliyun connection {conn_id!r}: ecs_metadata_endpoint needs ecs_ram_role")
        duration = _number("role_session_duration", raw.get("role_session_duration"), DEFAULT_ROLE_SESSION_DURATION,
                           minimum=MIN_ROLE_SESSION_DURATION)
        if duration > MAX_ROLE_SESSION_DURATION or duration != int(duration):
            raise ValueError(f"aliyun connection {conn_id!r}: role_session_duration must be whole seconds from "
                             f"{MIN_ROLE_SESSION_DURATION} to {MAX_ROLE_SESSION_DURATION}, got {duration!r}")
        rate_limits = raw.get("rate_limits") or {}
        if isinstance(rate_limits, str):
            try:
                rate_limits = json.loads(rate_limits)
            except ValueError:
                raise ValueError(f"aliyun connection {conn_id!r}: rate_limits must be a JSON object") from None
        if not isinstance(rate_limits, Mapping):
            raise ValueError(f"aliyun connection {conn_id!r}: rate_limits must be an object like "
                             '{"DescribeImages": 10, "*": 20}')
        limits = {str(k): _number(f"rate_limits.{k}", v, 0.0) for k, v in rate_limits.items()}
        max_attempts = int(_number("max_attempts", raw.get("max_attempts"), DEFAULT_MAX_ATTEMPTS, minimum=1))
        base = _number("retry_base_delay", raw.get("retry_base_delay"), 1.0)
        return cls(
            conn_id=conn_id,
            access_key_id=access_key_id,
            access_key_secret=access_key_secret,
            security_token=security_token,
            ram_role_arn=raw.get("ram_role_arn"),
            role_session_name=raw.get("role_session_name") or DEFAULT_ROLE_SESSION_NAME,
            role_session_duration=int(duration),
            ecs_ram_role=ecs_ram_role,
            ecs_metadata_endpoint=ecs_metadata_endpoint,
            region=raw.get("region"),
            endpoint=endpoint,
            rate_limits={k: v for k, v in limits.items() if v > 0},
            max_attempts=max_attempts,
            read_timeout=_number("read_timeout", raw.get("read_timeout"), 30.0, minimum=0.001),
            connect_timeout=_number("connect_timeout", raw.get("connect_timeout"), 5.0, minimum=0.001),
            retry_base_delay=base,
            retry_max_delay=max(base, _number("retry_max_delay", raw.get("retry_max_delay"), 20.0)),
        )

    @classmethod
    def from_connection(cls, conn: Any) -> ConnectionSettings:
        """From an Airflow ``Connection`` (``extra_dejson``, ``login``, ``password``)."""
        conn_type = getattr(conn, "conn_type", None)
        if conn_type not in (None, "", "aliyun"):
            # Allowed (e.g. a generic connection holding the keys) but worth knowing about.
            import logging

            logging.getLogger(__name__).warning("Connection %r has conn_type %r, expected 'aliyun'",
                                                conn.conn_id, conn_type)
        return cls.from_extras(conn.extra_dejson, conn_id=conn.conn_id, login=conn.login, password=conn.password)

    # -- derived ----------------------------------------------------------------------------
    @property
    def credential_mode(self) -> str:
        """``ram_role_arn``, ``sts`` (key pair + token), ``access_key``, ``ecs_ram_role`` (instance RAM role) or
        ``default`` (credentials chain)."""
        if self.ram_role_arn:
            return "ram_role_arn"
        if self.access_key_id and self.security_token:
            return "sts"
        if self.access_key_id:
            return "access_key"
        if self.ecs_ram_role is not None:
            return "ecs_ram_role"
        return "default"

    @property
    def endpoint_protocol(self) -> str | None:
        """``http``/``https`` of the endpoint override (``https`` when it has no scheme); None without one."""
        if not self.endpoint:
            return None
        return urlsplit(self.endpoint).scheme if "://" in self.endpoint else "https"

    @property
    def endpoint_host(self) -> str | None:
        """``host[:port]`` of the endpoint override, as tea-openapi's ``Config.endpoint`` wants it."""
        if not self.endpoint:
            return None
        return urlsplit(self.endpoint).netloc if "://" in self.endpoint else self.endpoint

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint override with its scheme (``http://127.0.0.1:9100``)."""
        if not self.endpoint:
            return None
        return f"{self.endpoint_protocol}://{self.endpoint_host}"

    def __repr__(self) -> str:
        return (f"ConnectionSettings(conn_id={self.conn_id!r}, credential_mode={self.credential_mode!r}, "
                f"access_key_id={_mask(self.access_key_id)!r}, "
                f"access_key_secret={'***' if self.access_key_secret else None!r}, "
                f"security_token={'***' if self.security_token else None!r}, ram_role_arn={self.ram_role_arn!r}, "
                f"role_session_name={self.role_session_name!r}, "
                f"role_session_duration={self.role_session_duration}, ecs_ram_role={self.ecs_ram_role!r}, "
                f"ecs_metadata_endpoint={self.ecs_metadata_endpoint!r}, region={self.region!r}, "
                f"endpoint={self.endpoint!r}, rate_limits={dict(self.rate_limits)!r}, "
                f"max_attempts={self.max_attempts}, read_timeout={self.read_timeout}, "
                f"connect_timeout={self.connect_timeout}, retry_base_delay={self.retry_base_delay}, "
                f"retry_max_delay={self.retry_max_delay})")

    __str__ = __repr__


def build_credential_client(settings: ConnectionSettings) -> CredentialClient:
    """An ``alibabacloud_credentials`` client for the connection's credential mode.

    Temporary credentials (``ram_role_arn``, ``ecs_ram_role``) are refreshed by the SDK on use, before they expire
    (AssumeRole: 15 minutes before ``Expiration``; metadata: the same, and every hour), so a hook kept for hours
    (a long wait) keeps working. Every key secret and security token the client hands out is registered with
    Airflow's secrets masker.
    """
    from alibabacloud_credentials.models import Config as CredConfig

    client_class = _masking_client_class()
    mode = settings.credential_mode
    if mode == "access_key":
        return client_class(CredConfig(type="access_key", access_key_id=settings.access_key_id,
                                       access_key_secret=settings.access_key_secret))
    if mode == "sts":
        return client_class(CredConfig(type="sts", access_key_id=settings.access_key_id,
                                       access_key_secret=settings.access_key_secret,
                                       security_token=settings.security_token))
    if mode == "ecs_ram_role":
        return client_class(provider=_ecs_ram_role_provider(settings))
    if mode == "ram_role_arn":
        sts_endpoint = settings.endpoint_url  # with a scheme: the provider would force https otherwise
        if settings.access_key_id:
            return client_class(CredConfig(
                type="ram_role_arn", access_key_id=settings.access_key_id,
                access_key_secret=settings.access_key_secret, security_token=settings.security_token,
                role_arn=settings.ram_role_arn, role_session_name=settings.role_session_name,
                role_session_expiration=settings.role_session_duration, sts_endpoint=sts_endpoint))
        # No base keys: assume the role from the instance's RAM role, else from whatever the default chain finds.
        from alibabacloud_credentials.provider.default import DefaultCredentialsProvider
        from alibabacloud_credentials.provider.ram_role_arn import RamRoleArnCredentialsProvider

        source = (_ecs_ram_role_provider(settings) if settings.ecs_ram_role is not None
                  else DefaultCredentialsProvider())
        provider = RamRoleArnCredentialsProvider(credentials_provider=source, role_arn=settings.ram_role_arn,
                                                 role_session_name=settings.role_session_name,
                                                 duration_seconds=settings.role_session_duration,
                                                 sts_endpoint=sts_endpoint)
        return client_class(provider=provider)
    return client_class()


def _ecs_ram_role_provider(settings: ConnectionSettings):
    """``EcsRamRoleCredentialsProvider`` for the connection's role, at ``ecs_metadata_endpoint`` if one is given.

    The SDK hard-codes the metadata host (``100.100.100.200``, a name-mangled private attribute and no
    parameter); a subclass sets it after construction, for the emulator. No background refresh thread
    (``async_update_enabled=False``): the provider refreshes on use, and a hook must not leave a scheduler thread
    behind per instance. ``ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`` (read by the SDK at import) is honoured:
    ``ValueError``.
    """
    from alibabacloud_credentials.provider.ecs_ram_role import EcsRamRoleCredentialsProvider

    class _EcsRamRoleProvider(EcsRamRoleCredentialsProvider):
        def __init__(self, *, metadata_host: str | None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            if metadata_host:
                self._EcsRamRoleCredentialsProvider__metadata_service_host = metadata_host

    host = None
    if settings.ecs_metadata_endpoint:  # http: host[:port] (TeaRequest defaults to http); https: the whole URL
        url = settings.ecs_metadata_endpoint if "://" in settings.ecs_metadata_endpoint \
            else f"https://{settings.ecs_metadata_endpoint}"
        parts = urlsplit(url)
        host = parts.netloc if parts.scheme == "http" else f"{parts.scheme}://{parts.netloc}"
    role = settings.ecs_ram_role if isinstance(settings.ecs_ram_role, str) else None
    try:
        return _EcsRamRoleProvider(metadata_host=host, role_name=role, async_update_enabled=False)
    except ValueError as exc:  # the SDK's "IMDS credentials is disabled"
        raise ValueError(f"aliyun connection {settings.conn_id!r}: ecs_ram_role needs the ECS metadata service, "
                         f"but ALIBABA_CLOUD_ECS_METADATA_DISABLED=true disables it ({exc})") from None


def _register_secrets(*values: str | None) -> None:
    """Tell Airflow's secrets masker (task process and, outside an event loop, the supervisor) about ``values``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        from airflow.sdk.log import mask_secret
    else:  # a sync call on the event loop thread must not block on the supervisor: this process only
        from airflow.sdk._shared.secrets_masker import mask_secret
    for value in values:
        if value:
            mask_secret(value)


async def _aregister_secrets(*values: str | None) -> None:
    from airflow.sdk.log import amask_secret

    for value in values:
        if value:
            await amask_secret(value)


def _masking_client_class() -> type:
    """``alibabacloud_credentials.client.Client`` that registers each new secret and token it hands out."""
    global _MASKING_CLIENT
    if _MASKING_CLIENT is None:
        from alibabacloud_credentials.client import Client as CredentialClient

        class MaskingCredentialClient(CredentialClient):
            _masked: frozenset[str] = frozenset()

            def _new(self, cred: Any) -> tuple[str, ...]:
                values = tuple(v for v in (cred.access_key_secret, cred.security_token) if v and v not in self._masked)
                self._masked = self._masked | set(values)
                return values

            def get_credential(self):
                cred = super().get_credential()
                if values := self._new(cred):
                    _register_secrets(*values)
                return cred

            async def get_credential_async(self):
                cred = await super().get_credential_async()
                if values := self._new(cred):
                    await _aregister_secrets(*values)
                return cred

        _MASKING_CLIENT = MaskingCredentialClient
    return _MASKING_CLIENT


_MASKING_CLIENT: type | None = None


# -- error classification -------------------------------------------------------------------

def _network_exception_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [ConnectionError, TimeoutError, asyncio.TimeoutError]
    try:  # darabonba turns any IOError during the HTTP exchange into its RetryError(str(err))
        from darabonba.exceptions import RetryError as DaraRetryError
        from Tea.exceptions import RetryError as TeaRetryError

        types += [DaraRetryError, TeaRetryError]
    except ImportError:  # pragma: no cover
        pass
    try:
        import requests

        types += [requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                  requests.exceptions.ChunkedEncodingError]
    except ImportError:  # pragma: no cover
        pass
    try:
        import aiohttp

        types += [aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, aiohttp.ServerTimeoutError]
    except ImportError:  # pragma: no cover
        pass
    try:
        import urllib3.exceptions

        types += [urllib3.exceptions.ProtocolError, urllib3.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


_NETWORK_TYPES = _network_exception_types()


def _strip_sdk_message(message: str | None, data: Any) -> str | None:
    """tea-openapi renders ``"code: 404, <Message> request id: <id>"``; keep only the server's message."""
    if isinstance(data, Mapping):
        msg = data.get("Message") or data.get("message")
        if msg:
            return str(msg)
    if message and message.startswith("code: ") and ", " in message:
        message = message.split(", ", 1)[1]
        message = message.rsplit(" request id: ", 1)[0]
    return message


def oss_access_denied_detail(body: Any) -> dict[str, str] | None:
    """``<AccessDeniedDetail>`` of an OSS error body as a dict (``AuthAction``, ``NoPermissionType``, ...).

    >>> oss_access_denied_detail(b"<Error><AccessDeniedDetail><AuthAction>oss:PutObject</AuthAction>"
    ...                          b"</AccessDeniedDetail></Error>")
    {'AuthAction': 'oss:PutObject'}
    """
    if not isinstance(body, bytes | bytearray) or b"AccessDeniedDetail" not in body:
        return None
    import xml.etree.ElementTree as ET

    try:
        node = ET.fromstring(bytes(body)).find("AccessDeniedDetail")
    except ET.ParseError:
        return None
    return None if node is None else {child.tag: (child.text or "") for child in node}


def classify_error(action: str, exc: BaseException, *, service: str | None = None) -> AliyunApiError | None:
    """Turn an SDK exception into :class:`AliyunApiError`; None if it is not an API/network error."""
    if isinstance(exc, AliyunApiError):
        return exc
    # Unwrap darabonba/Tea UnretryableException and OSS OperationError/RequestError/ResponseError.
    inner = exc
    for _ in range(4):
        nxt = getattr(inner, "inner_exception", None)
        if nxt is None and hasattr(inner, "unwrap") and callable(inner.unwrap):
            try:
                nxt = inner.unwrap()
            except Exception:  # pragma: no cover - defensive
                nxt = None
        if nxt is None or nxt is inner:
            break
        inner = nxt
    if isinstance(inner, _NETWORK_TYPES):
        cause = inner.__cause__ or inner.__context__
        shown = cause if isinstance(cause, BaseException) and type(inner).__name__ == "RetryError" else inner
        return AliyunApiError(action, NETWORK_ERROR_CODE, f"{type(shown).__name__}: {shown}", None, None, True,
                              service=service)
    code = getattr(inner, "code", None)
    status = getattr(inner, "status_code", None) or getattr(inner, "statusCode", None)
    data = getattr(inner, "data", None)
    if status is None and isinstance(data, Mapping):
        status = data.get("statusCode")
    try:
        status = int(status) if status is not None else None
    except (TypeError, ValueError):
        status = None
    is_sdk_error = code is not None or status is not None or type(inner).__module__.split(".")[0] in (
        "Tea", "darabonba", "alibabacloud_tea_openapi", "alibabacloud_oss_v2", "alibabacloud_credentials")
    if not is_sdk_error:
        return None
    request_id = getattr(inner, "request_id", None)
    if (not request_id or request_id == "None") and isinstance(data, Mapping):
        request_id = data.get("RequestId") or data.get("requestId")
    if request_id == "None":
        request_id = None
    message = _strip_sdk_message(getattr(inner, "message", None), data) or str(inner)
    code = None if code in (None, "None") else str(code)
    denied = data.get("AccessDeniedDetail") if isinstance(data, Mapping) else None
    if denied is None and code == "AccessDenied":  # OSS: the SDK keeps only flat fields; the detail is in the body
        denied = oss_access_denied_detail(getattr(inner, "snapshot", None))
    if isinstance(denied, Mapping) and denied.get("AuthAction"):
        # name the missing permission: a user fixes a RAM policy from this line alone
        message = (f"{message} [missing RAM permission: {denied['AuthAction']} "
                   f"({denied.get('NoPermissionType') or 'denied'})]")
    retry_after_ms = getattr(inner, "retry_after", None)
    retry_after = None
    if isinstance(retry_after_ms, (int, float)) and retry_after_ms > 0:
        retry_after = min(MAX_RETRY_AFTER, retry_after_ms / 1000.0)
    retryable = bool(
        retry_after is not None
        or (code and (code in THROTTLING_CODES or code.startswith("Throttling") or code in SERVER_CODES))
        or (status is not None and (status >= 500 or status in (408, 429)))
    )
    if status is not None and 400 <= status < 500 and not (code and (code in THROTTLING_CODES
                                                                     or code.startswith("Throttling"))):
        retryable = retryable and status in (408, 429)
    if code in TRANSIENT_CODES:
        retryable = True
    if code is None and status is None:
        # e.g. a non-JSON error body: report it, don't retry blindly
        code = type(inner).__name__
    kind = AliyunPermissionError if code in PERMISSION_CODES and status == 403 else AliyunApiError
    return kind(action, code, message, request_id, status, retryable, service=service, retry_after=retry_after)


def _request_id_of(response: Any) -> str | None:
    """RequestId of an SDK response: tea ``resp.body.request_id``, OSS ``result.request_id``, or a header."""
    body = getattr(response, "body", None)
    rid = getattr(body, "request_id", None) or getattr(response, "request_id", None)
    if rid:
        return str(rid)
    headers = getattr(response, "headers", None)
    if isinstance(headers, Mapping):
        for key in ("x-acs-request-id", "x-oss-request-id"):
            if headers.get(key):
                return str(headers[key])
    return None


class AliyunBaseHook(BaseHook):
    """Credentials, client configuration, rate limiting, retries and logging for Alibaba Cloud calls.

    :param aliyun_conn_id: Airflow connection of type ``aliyun`` (default ``aliyun_default``)
    :param region: region used when a method is given none; defaults to the connection's ``region`` extra

    No connection lookup or API call happens in ``__init__``.

    Example::

        hook = AliyunBaseHook(region="cn-hangzhou")
        ok, message = hook.test_connection()
    """

    conn_name_attr = "aliyun_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "aliyun"
    hook_name = "Alibaba Cloud (aliyun-ops)"
    service_name = "ECS"
    """Label for log lines and errors of :meth:`call`; subclasses set their product."""

    def __init__(self, aliyun_conn_id: str = DEFAULT_CONN_ID, region: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aliyun_conn_id = aliyun_conn_id
        self.region_name = region
        self._clients_lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._sleep: Callable[[float], None] = time.sleep
        self._asleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    # -- connection form --------------------------------------------------------------------
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hide host/schema/port, relabel login/password as the AccessKey pair, show an extras example."""
        return {
            "hidden_fields": ["host", "schema", "port"],
            "relabeling": {"login": "AccessKey ID", "password": "AccessKey Secret"},
            "placeholders": {
                "login": "LTAI... (empty: credentials chain / RAM role)",
                "password": "AccessKey Secret",
                "extra": json.dumps({"region": "cn-hangzhou", "endpoint": "http://127.0.0.1:9100",
                                     "ram_role_arn": "acs:ram::123456789012:role/airflow",
                                     "rate_limits": {"DescribeImages": 10, "*": 20}, "max_attempts": 6},
                                    indent=2),
            },
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form (wtforms imported lazily: only the UI has them)."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import PasswordField, StringField

        return {
            "region": StringField(lazy_gettext("Region"), widget=BS3TextFieldWidget(),
                                  description="Default region, e.g. cn-hangzhou"),
            "endpoint": StringField(lazy_gettext("Endpoint override"), widget=BS3TextFieldWidget(),
                                    description="Base URL replacing every service endpoint (the emulator)"),
            "ram_role_arn": StringField(lazy_gettext("RAM role ARN"), widget=BS3TextFieldWidget()),
            "ecs_ram_role": StringField(lazy_gettext("ECS instance RAM role"), widget=BS3TextFieldWidget(),
                                        description="Role name attached to the worker's ECS instance "
                                                    "(metadata credentials); leave the keys empty"),
            "security_token": PasswordField(lazy_gettext("STS security token"), widget=BS3PasswordFieldWidget()),
        }

    # -- settings ---------------------------------------------------------------------------
    @cached_property
    def settings(self) -> ConnectionSettings:
        """The connection, parsed once (first use)."""
        return ConnectionSettings.from_connection(self.get_connection(self.aliyun_conn_id))

    async def asettings(self) -> ConnectionSettings:
        """Load :attr:`settings` with the async connection lookup (use first thing in triggers)."""
        if "settings" not in self.__dict__:
            try:
                conn = await self.aget_connection(self.aliyun_conn_id)
            except Exception:  # no async lookup here (e.g. inline under dag.test()): sync lookup in a thread
                return await asyncio.to_thread(lambda: self.settings)
            self.__dict__["settings"] = ConnectionSettings.from_connection(conn)
        return self.settings

    def resolve_region(self, region: str | None = None) -> str:
        """``region`` argument, else the hook's, else the connection's; ValueError if none."""
        resolved = region or self.region_name or self.settings.region
        if not resolved:
            raise ValueError(f"No region: pass region=... or set the 'region' extra of connection "
                             f"{self.aliyun_conn_id!r}")
        return resolved

    @property
    def region(self) -> str | None:
        """The hook's region, else the connection's ``region`` extra; None if neither is set."""
        return self.region_name or self.settings.region

    @cached_property
    def credential_client(self) -> CredentialClient:
        return build_credential_client(self.settings)

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        return shared_limiter(self.aliyun_conn_id, self.settings.rate_limits)

    def openapi_config(self, region: str | None = None) -> OpenApiConfig:
        """tea-openapi ``Config`` for ECS/RDS/VPC clients in ``region`` (endpoint override applied)."""
        from alibabacloud_tea_openapi.models import Config

        s = self.settings
        config = Config(credential=self.credential_client, region_id=self.resolve_region(region),
                        read_timeout=int(s.read_timeout * 1000), connect_timeout=int(s.connect_timeout * 1000),
                        user_agent="aliyun-ops")
        if s.endpoint:
            config.endpoint = s.endpoint_host
            config.protocol = s.endpoint_protocol
        return config

    def oss_credentials_provider(self):
        """OSS v2 credentials provider backed by the connection's credential client (refreshes STS)."""
        import alibabacloud_oss_v2 as oss

        client = self.credential_client

        def _credentials() -> oss.credentials.Credentials:
            cred = client.get_credential()
            return oss.credentials.Credentials(cred.access_key_id, cred.access_key_secret, cred.security_token)

        return oss.credentials.CredentialsProviderFunc(_credentials)

    def get_conn(self) -> CredentialClient:
        return self.credential_client

    # -- SDK clients ------------------------------------------------------------------------
    def new_client(self, region: str) -> Any:
        """A new SDK client for ``region``: product hooks say which SDK."""
        raise NotImplementedError(f"{type(self).__name__} has no SDK client")

    def get_client(self, region: str | None = None) -> Any:
        """The SDK client for ``region`` (default: the hook's), cached per region on this hook."""
        region = self.resolve_region(region)
        with self._clients_lock:
            client = self._clients.get(region)
            if client is None:
                client = self._clients[region] = self.new_client(region)
            return client

    def get_async_client(self, region: str | None = None) -> Any:
        """A fresh client for the SDK's ``*_async`` methods (one per trigger run is fine)."""
        return self.new_client(self.resolve_region(region))

    # -- calls ------------------------------------------------------------------------------
    def _attempts(self, max_attempts: int | None) -> int:
        return max(1, int(max_attempts if max_attempts is not None else self.settings.max_attempts))

    def _retry_wait(self, err: AliyunApiError, attempt: int) -> float:
        s = self.settings
        return backoff_delay(attempt, s.retry_base_delay, s.retry_max_delay, retry_after=err.retry_after)

    def _log_ok(self, label: str, action: str, region: str | None, response: Any, attempt: int, total: int,
                started: float) -> None:
        self.log.info("%s %s region=%s RequestId=%s (attempt %d/%d, %.0f ms)", label, action, region or "-",
                      _request_id_of(response) or "-", attempt, total, (time.monotonic() - started) * 1000)

    def _log_retry(self, err: AliyunApiError, region: str | None, attempt: int, total: int, wait: float) -> None:
        detail = f" (HTTP {err.status_code})" if err.status_code else f" ({err.message})"
        self.log.warning("%s %s region=%s failed: %s%s RequestId=%s; retrying in %.2fs (attempt %d/%d)",
                         err.service, err.action, region or "-", err.code, detail, err.request_id or "-",
                         wait, attempt, total)

    def _final_error(self, err: AliyunApiError, attempt: int, region: str | None) -> AliyunApiError:
        err.attempts = attempt
        # A NotFound is often the expected answer (idempotency look-ups, eventual consistency): INFO.
        log = self.log.info if (err.is_not_found or err.code == "DryRunOperation") and not err.retryable \
            else self.log.warning
        log("%s region=%s", err, region or "-")
        return err

    def call(self, action: str, fn: Callable[..., T], request: Any = None, region: str | None = None, *,
             service: str | None = None, max_attempts: int | None = None) -> T:
        """Call a synchronous SDK method ``fn(request)`` with rate limiting, retries and logging.

        :param action: API action name for limits, logs and errors (``"DescribeImages"``)
        :param fn: bound SDK method, e.g. ``client.describe_images``; called as ``fn(request)``
            (``fn()`` if request is None)
        :param region: region for the rate-limit bucket and the log line
        :param service: label override (default :attr:`service_name`)
        :param max_attempts: override of the connection's ``max_attempts`` (1 = no retry)
        :return: whatever ``fn`` returns (the SDK response)
        :raises AliyunApiError: on an API or network error that is not retryable or outlived the retries
        """
        label = service or self.service_name
        total = self._attempts(max_attempts)
        for attempt in range(1, total + 1):
            self.rate_limiter.acquire(region, action)
            started = time.monotonic()
            try:
                response = fn(request) if request is not None else fn()
            except Exception as exc:
                err = classify_error(action, exc, service=label)
                if err is None:
                    raise
                if not err.retryable or attempt >= total:
                    raise self._final_error(err, attempt, region) from exc
                wait = self._retry_wait(err, attempt)
                self._log_retry(err, region, attempt, total, wait)
                self._sleep(wait)
                continue
            self._log_ok(label, action, region, response, attempt, total, started)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def acall(self, action: str, coro_fn: Callable[..., Awaitable[T]], request: Any = None,
                    region: str | None = None, *, service: str | None = None,
                    max_attempts: int | None = None) -> T:
        """Async twin of :meth:`call` for the SDK's ``*_async`` methods; never blocks the event loop."""
        await self.asettings()
        label = service or self.service_name
        total = self._attempts(max_attempts)
        for attempt in range(1, total + 1):
            await self.rate_limiter.acquire_async(region, action)
            started = time.monotonic()
            try:
                response = await (coro_fn(request) if request is not None else coro_fn())
            except Exception as exc:
                err = classify_error(action, exc, service=label)
                if err is None:
                    raise
                if not err.retryable or attempt >= total:
                    raise self._final_error(err, attempt, region) from exc
                wait = self._retry_wait(err, attempt)
                self._log_retry(err, region, attempt, total, wait)
                await self._asleep(wait)
                continue
            self._log_ok(label, action, region, response, attempt, total, started)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    # -- connection test --------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Call ECS DescribeRegions once (no retries); ``(True, message)`` or ``(False, error)``."""
        try:
            from alibabacloud_ecs20140526 import models as ecs_models
            from alibabacloud_ecs20140526.client import Client as EcsClient

            region = self.region_name or self.settings.region or "cn-hangzhou"
            client = EcsClient(self.openapi_config(region))
            resp = self.call("DescribeRegions", client.describe_regions, ecs_models.DescribeRegionsRequest(),
                             region=region, service="ECS", max_attempts=1)
            regions = [r.region_id for r in (resp.body.regions.region or [])] if resp.body.regions else []
            return True, (f"Connection OK: ECS DescribeRegions returned {len(regions)} regions "
                          f"(credentials: {self.settings.credential_mode}, "
                          f"endpoint: {self.settings.endpoint or 'default'}, RequestId={resp.body.request_id})")
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
