"""What keeps an emulator that is left running safe: the admin token, request freshness and replay checks,
body limits and the redaction of secrets in state dumps.

* :func:`is_loopback` -- whether ``--host`` only listens on this machine (anything else logs a WARNING).
* admin token: :func:`new_token`, :func:`write_token_file` / :func:`read_token_file`
  (``<data-dir>/admin-token``, mode 0600), :func:`token_matches` (constant time).
* :class:`NonceCache` -- signature nonces seen in the last 15 real minutes (bounded).
* :func:`check_fresh` -- a request timestamp within 15 minutes of the REAL wall clock (never the simulated one).
* :func:`read_limited` -- read a request body, refusing it by ``Content-Length`` before reading, and while
  reading when the body has no length (chunked).
* :func:`redact` -- a JSON-able copy of state with every secret replaced by ``"***"``.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import os
import re
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ApiError

MAX_SKEW = 15 * 60                 # seconds a signed timestamp may be off the real clock, either way
NONCE_TTL = 15 * 60                # a nonce is remembered that long (real seconds)
NONCE_CAP = 100_000                # at most that many nonces (oldest forgotten first)
MAX_RPC_BODY = 1024 * 1024         # RPC form body (parameters); the query is capped by the request line (128 KB)
MAX_XML_BODY = 2 * 1024 * 1024     # OSS XML configuration bodies (lifecycle, complete multipart, delete multiple)
MAX_OBJECT_SIZE = 5 * 1024 ** 3    # OSS PutObject / UploadPart / AppendObject: 5 GiB
MAX_ADMIN_BODY = 16 * 1024 * 1024  # admin JSON bodies (fleet specs)
TOKEN_FILE = "admin-token"
TOKEN_ENV = "EMULATOR_ADMIN_TOKEN"
REDACTED = "***"


# -- bind address ----------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%", 1)[0]).is_loopback for info in infos)


# -- admin token -----------------------------------------------------------------------------------
def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_token_file(data_dir: str | Path, token: str) -> Path:
    """``<data_dir>/admin-token``, readable by its owner only (mode 0600 even if the file existed)."""
    path = Path(data_dir) / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    return path


def read_token_file(data_dir: str | Path) -> str | None:
    try:
        return (Path(data_dir) / TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def token_matches(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time (bytes: any header value is comparable)."""
    if not header or not header.startswith("Bearer "):
        return False
    given = header[len("Bearer "):].strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, token.encode("utf-8", "surrogateescape"))


# -- freshness and replay ----------------------------------------------------------------------------
_ISO_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso_utc(value: str) -> float | None:
    """``2024-01-01T00:00:00Z`` (RPC ``Timestamp``, ``x-acs-date``) as epoch seconds; None if malformed."""
    for fmt in _ISO_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except (ValueError, OverflowError):
            continue
    return None


def check_fresh(value: str | None, *, now: float | None = None) -> None:
    """Raise unless ``value`` (ISO 8601 UTC) is within :data:`MAX_SKEW` of the real wall clock."""
    if not value:
        raise ApiError("MissingTimestamp", "Timestamp is mandatory for this action.", 400)
    when = parse_iso_utc(value)
    if when is None:
        raise ApiError("InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.", 400)
    if abs((time.time() if now is None else now) - when) > MAX_SKEW:
        raise ApiError("InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", 400)


class NonceCache:
    """Signature nonces seen within :data:`NONCE_TTL` real seconds, at most ``cap`` of them.

    Only requests whose signature verified are remembered, so a caller without a key cannot fill it.
    """

    def __init__(self, ttl: float = NONCE_TTL, cap: int = NONCE_CAP, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.cap = cap
        self.clock = clock
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()  # (access key, nonce) -> expiry

    def __len__(self) -> int:
        return len(self._seen)

    def use(self, access_key_id: str, nonce: str | None) -> None:
        """Remember ``nonce``; raise ``SignatureNonceUsed`` if it was used in the window."""
        if not nonce:
            raise ApiError("MissingSignatureNonce", "SignatureNonce is mandatory for this action.", 400)
        now = self.clock()
        while self._seen:
            oldest = next(iter(self._seen.values()))
            if oldest > now:
                break
            self._seen.popitem(last=False)
        key = (access_key_id, nonce)
        if key in self._seen:
            raise ApiError("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
        self._seen[key] = now + self.ttl
        while len(self._seen) > self.cap:
            self._seen.popitem(last=False)


# -- bodies -------------------------------------------------------------------------------------------
def declared_length(request) -> int | None:
    """The request's ``Content-Length`` (None if absent); a malformed one is refused by aiohttp's parser."""
    return request.content_length


async def read_limited(request, limit: int, too_large: Callable[[], ApiError]) -> bytes:
    """The whole body, at most ``limit`` bytes: refused by ``Content-Length`` before reading a byte,
    or as soon as a body without a length (chunked) passes the limit."""
    length = declared_length(request)
    if length is not None and length > limit:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def has_body(request) -> bool:
    length = declared_length(request)
    return bool(length) or (length is None and "chunked" in request.headers.get("Transfer-Encoding", "").lower())


# -- redaction ----------------------------------------------------------------------------------------
_SECRET_NAME = re.compile(r"secret|token|passw(or)?d|credential|private[_-]?key|signature", re.IGNORECASE)
# names that contain a sensitive word but hold no secret (idempotency tokens, paging markers)
_NOT_SECRET = re.compile(r"^(client_?tokens?|next_?token|continuation[_-]?token)$", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET.match(name)


def redact(value: Any, secret_values: Iterable[str] = ()) -> Any:
    """A JSON-able copy of ``value``: dataclasses (e.g. STS :class:`~emulator.keys.AccessKey`) become dicts,
    fields named like a secret and any string equal to a known secret become ``"***"``."""
    known = {s for s in secret_values if s}
    return _redact(value, known)


def _redact(value: Any, known: set[str]) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            name = str(k)
            if is_secret_name(name) and v not in (None, ""):
                out[name] = REDACTED
            else:
                out[REDACTED if name in known else name] = _redact(v, known)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(v, known) for v in value]
    if isinstance(value, str):
        return REDACTED if value in known else value
    if value is None or isinstance(value, bool | int | float):
        return value
    return _redact(str(value), known)
