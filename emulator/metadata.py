"""The ECS instance metadata service, as far as the **ECS instance RAM role** needs it (IMDSv1 and IMDSv2).

On a real instance it answers at ``http://100.100.100.200``; the emulator serves the same paths on its own
port, without the admin token (as on an instance: whoever runs there may ask)::

    PUT /latest/api/token                                 header X-aliyun-ecs-metadata-token-ttl-seconds: 1..21600
        -> the IMDSv2 token (text/plain), valid that many seconds
    GET /latest/meta-data/ram/security-credentials/       -> the attached role's name (text/plain)
    GET /latest/meta-data/ram/security-credentials/<role>
        -> {"Code": "Success", "AccessKeyId": "STS.…", "AccessKeySecret", "SecurityToken", "Expiration", "LastUpdated"}

A GET may carry ``X-aliyun-ecs-metadata-token``; a token that is not one of ours or has expired gets 401.
Without a token the request is served (IMDSv1) unless ``imdsv2_required`` is set (then 401).
No role attached, another role name, or any other ``/latest/meta-data/...`` path: 404. Other methods: 405.

The credentials are STS temporary keys minted as AssumeRole does (:func:`emulator.sts.mint_key`): the server
accepts them with their security token, they expire by the credential clock
(:func:`emulator.sts.credential_now`, real time) and they are in ``sts.keys``. The same key is answered until
it has less than :data:`ROTATE_BEFORE` seconds left, then a new one is minted (the SDK treats credentials as
stale 15 minutes before their ``Expiration`` and asks again). The threshold is the emulator's choice.

Configuration (admin API, bearer token): ``GET /_emulator/metadata``; ``PUT|POST /_emulator/metadata`` with any
of ``{"role_name": "EcsRamRoleDemo" | null (no role attached), "duration": 900..43200 (default 21600),
"imdsv2_required": false, "allow": ["ecs:Describe*", ...] | null (the role may do everything)}``.

Routing: a request for these paths is the metadata service's unless it looks like OSS (an ``Authorization``
header, an ``x-oss-*`` header or a presigned-URL parameter): a bucket named ``latest`` keeps working for signed
requests; only anonymous requests to such a bucket under these two paths are shadowed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import struct
import uuid

from aiohttp import web

from .clock import iso
from .keys import ACCOUNT_ID
from .registry import admin_route
from .state import State
from .sts.clock import credential_now
from .sts.credentials import MAX_DURATION, MIN_DURATION, credentials_of, mint_key
from .sts.credentials import TABLE as STS_TABLE

TOKEN_PATH = "/latest/api/token"
META_PREFIX = "/latest/meta-data/"
CREDENTIALS_PREFIX = "/latest/meta-data/ram/security-credentials/"
TTL_HEADER = "X-aliyun-ecs-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aliyun-ecs-metadata-token"
MAX_TOKEN_TTL = 21600
DEFAULT_ROLE = "EcsRamRoleDemo"
DEFAULT_DURATION = 21600  # six hours
ROTATE_BEFORE = 1800  # a new key once the current one has less than this left
SESSION_NAME = "ecs-instance"
TABLE = "ecs.metadata"
_OSS_QUERY = ("OSSAccessKeyId", "Signature", "x-oss-signature", "x-oss-credential", "x-oss-signature-version")
_TOKEN_KEY = secrets.token_bytes(32)  # IMDSv2 tokens are signed, not stored; a restart voids them (as a reboot)


def is_metadata_request(request: web.Request) -> bool:
    """A request for the metadata paths that is not an OSS request for a bucket named ``latest``."""
    path = request.path
    if path != TOKEN_PATH and not path.startswith(META_PREFIX):
        return False
    if "Authorization" in request.headers or any(h.lower().startswith("x-oss-") for h in request.headers):
        return False
    return not any(name in request.query for name in _OSS_QUERY)


def config(state: State) -> dict:
    stored = state.table(TABLE)
    return {"role_name": stored.get("role_name", DEFAULT_ROLE), "duration": stored.get("duration", DEFAULT_DURATION),
            "imdsv2_required": stored.get("imdsv2_required", False), "allow": stored.get("allow")}


# -- IMDSv2 tokens --------------------------------------------------------------------------------
def new_token(state: State, ttl: int) -> str:
    expires = int(credential_now(state)) + ttl
    body = struct.pack(">Q", expires) + secrets.token_bytes(8)
    mac = hmac.new(_TOKEN_KEY, body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")


def token_valid(state: State, token: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, UnicodeEncodeError):
        return False
    if len(raw) != 32:
        return False
    body, mac = raw[:16], raw[16:]
    if not hmac.compare_digest(mac, hmac.new(_TOKEN_KEY, body, hashlib.sha256).digest()[:16]):
        return False
    return credential_now(state) < struct.unpack(">Q", body[:8])[0]


# -- the service ----------------------------------------------------------------------------------
def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


def _role_credentials(state: State, cfg: dict) -> dict:
    """The role's current key, or a new one when it is missing, gone or within ROTATE_BEFORE of its expiry."""
    stored = state.table(TABLE)
    current = stored.get("current") or {}
    key = state.table(STS_TABLE).get(current.get("access_key_id", ""))
    now = credential_now(state)
    if (key is None or current.get("role_name") != cfg["role_name"]
            or (key.expires_at or 0) - now < ROTATE_BEFORE):
        role_arn = f"acs:ram::{ACCOUNT_ID}:role/{cfg['role_name'].lower()}"
        key = mint_key(state, role_arn, SESSION_NAME, int(cfg["duration"]), cfg["allow"])
        current = {"role_name": cfg["role_name"], "access_key_id": key.access_key_id, "issued": now}
        stored["current"] = current
    return {"Code": "Success", **credentials_of(key), "LastUpdated": iso(current["issued"])}


def _serve(emulator, request: web.Request) -> tuple[str, web.Response]:
    state = emulator.state
    path = request.path
    if path == TOKEN_PATH:
        if request.method != "PUT":
            return "GetToken", _text(405, "405 - Method Not Allowed")
        raw = request.headers.get(TTL_HEADER, "").strip()
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_TOKEN_TTL:
            return "PutToken", _text(400, f"400 - Bad Request: {TTL_HEADER} must be 1 to {MAX_TOKEN_TTL}")
        return "PutToken", _text(200, new_token(state, int(raw)))
    op = "GetRoleName" if path == CREDENTIALS_PREFIX else (
        "GetRoleCredentials" if path.startswith(CREDENTIALS_PREFIX) else "GetMetadata")
    if request.method not in ("GET", "HEAD"):
        return op, _text(405, "405 - Method Not Allowed")
    cfg = config(state)
    token = request.headers.get(TOKEN_HEADER)
    if token is not None and not token_valid(state, token):
        return op, _text(401, "401 - Unauthorized")
    if token is None and cfg["imdsv2_required"]:
        return op, _text(401, "401 - Unauthorized")
    role = cfg["role_name"]
    if op == "GetRoleName" and role:
        return op, _text(200, role)
    if op == "GetRoleCredentials" and role and path[len(CREDENTIALS_PREFIX):] == role:
        body = json.dumps(_role_credentials(state, cfg), indent=2)
        return op, web.Response(status=200, text=body, content_type="text/plain")
    return op, _text(404, "404 - Not Found")


async def handle(emulator, request: web.Request) -> web.StreamResponse:
    """Answer a metadata request (see :func:`is_metadata_request`) and record it as ``ecs-metadata:<op>``."""
    request_id = str(uuid.uuid4()).upper()
    op, response = _serve(emulator, request)
    emulator.calls.record(f"ecs-metadata:{op}", None, response.status,
                          None if response.status < 400 else str(response.status), request_id)
    return response


# -- admin ----------------------------------------------------------------------------------------
@admin_route("GET", "metadata")
def _get_config(emulator, body: dict, query: dict) -> dict:
    return config(emulator.state)


def _set_config(emulator, body: dict, query: dict) -> dict:
    unknown = set(body) - {"role_name", "duration", "imdsv2_required", "allow"}
    if unknown:
        raise ValueError(f"unknown metadata fields: {', '.join(sorted(unknown))}")
    if "role_name" in body and body["role_name"] is not None and not (
            isinstance(body["role_name"], str) and 1 <= len(body["role_name"]) <= 64
            and all(c.isalnum() or c in ".-_" for c in body["role_name"])):
        raise ValueError("role_name must be a RAM role name (1-64 letters, digits, '.', '-', '_') or null")
    duration = body.get("duration", DEFAULT_DURATION)
    if isinstance(duration, bool) or not isinstance(duration, int) or not MIN_DURATION <= duration <= MAX_DURATION:
        raise ValueError(f"duration must be an integer from {MIN_DURATION} to {MAX_DURATION}")
    if "imdsv2_required" in body and not isinstance(body["imdsv2_required"], bool):
        raise ValueError("imdsv2_required must be true or false")
    allow = body.get("allow")
    if allow is not None and not (isinstance(allow, list) and all(isinstance(a, str) and a for a in allow)):
        raise ValueError("allow must be a list of action patterns (ecs:Describe*) or null")
    stored = emulator.state.table(TABLE)
    stored.update(body)
    stored.pop("current", None)  # new settings, new credentials
    return config(emulator.state)


admin_route("PUT", "metadata")(_set_config)
admin_route("POST", "metadata")(_set_config)
