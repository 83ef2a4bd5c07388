"""STS API (2015-04-01): AssumeRole.

``alibabacloud-credentials`` (type ``ram_role_arn``) calls AssumeRole with a classic
``HMAC-SHA1`` signed GET, which the server has already verified. Every role ARN of the right
shape is accepted (the emulator keeps no RAM roles). The temporary key is an
:class:`emulator.keys.AccessKey` stored in the state table ``sts.keys``, where the server's
:class:`~emulator.keys.KeyStore` finds it; it carries a security token.

Temporary keys live by the **real wall clock**, not the simulated one: the SDKs compare the
``Expiration`` they are given with their own clock to decide when to refresh, so an expiry in
simulated time (1000 times faster in the tests) would have them use keys the emulator already
refuses. :func:`credential_now` is that clock: real time plus an offset that only
``POST /_emulator/sts/clock {"advance": s}`` moves (to age keys in a test without waiting).
Expired keys are answered ``InvalidSecurityToken.Expired`` for a day, then forgotten.
:func:`mint_key` is shared with the ECS metadata service (:mod:`emulator.metadata`).

An optional session ``Policy`` restricts the key: the actions of its ``Allow`` statements
become the key's allow list (``ecs:Describe*``, ``ecs:*``, ``*``). ``Deny`` statements and
``Resource``/``Condition`` are not evaluated. Without a policy the key may do everything.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time

from .clock import iso
from .errors import ApiError
from .keys import ACCOUNT_ID, AccessKey
from .registry import admin_route
from .rpc import Call, Params, action
from .state import State, on_event

ROLE_ARN = re.compile(r"^acs:ram::(\d+):role/([A-Za-z0-9.\-_]{1,64})$")
SESSION_NAME = re.compile(r"^[\w.@\-]{2,64}$")
MIN_DURATION, MAX_DURATION, DEFAULT_DURATION = 900, 43200, 3600
KEEP_EXPIRED = 86400  # expired keys are forgotten a day (credential clock) later; until then: "Expired"
TABLE = "sts.keys"
CLOCK_TABLE = "sts.clock"
MAX_CLOCK_ADVANCE = 366 * 86400
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


def credential_now(state: State) -> float:
    """The clock temporary keys live by: real epoch seconds plus the ``sts/clock`` offset (0 unless a test moved
    it). The simulated clock never moves it: its time scale and ``advance`` do not age credentials."""
    return time.time() + float(state.table(CLOCK_TABLE).get("offset", 0.0))


def mint_key(state: State, role_arn: str, session: str, duration: int, allow: list[str] | None = None) -> AccessKey:
    """A new temporary key (``STS.`` id, secret, ``CAIS`` security token) for ``role_arn``/``session``, valid
    ``duration`` seconds of :func:`credential_now`; stored in ``sts.keys`` where the key store finds it."""
    forget_expired(state)
    rng = state.rng("sts")
    key_id = "STS.NT" + "".join(rng.choice(_ALPHABET) for _ in range(24))
    secret = "".join(rng.choice(_ALPHABET) for _ in range(44))
    token = "CAIS" + base64.b64encode(rng.randbytes(180)).decode().rstrip("=")
    role_name = role_arn.rsplit("/", 1)[-1]
    key = AccessKey(key_id, secret, allow=allow, security_token=token, expires_at=credential_now(state) + duration,
                    principal=f"{role_name}:{session}", role_arn=role_arn)
    state.table(TABLE)[key_id] = key
    state.dirty = True
    return key


def forget_expired(state: State) -> int:
    """Drop the temporary keys that expired more than :data:`KEEP_EXPIRED` seconds ago; how many."""
    table = state.table(TABLE)
    horizon = credential_now(state) - KEEP_EXPIRED
    old = [k for k, key in table.items() if key.expires_at is not None and key.expires_at <= horizon]
    for key_id in old:
        del table[key_id]
    if old:
        state.dirty = True
    return len(old)


def credentials_of(key: AccessKey) -> dict:
    """The ``Credentials`` block of an AssumeRole answer (and the body of the metadata service's)."""
    return {"AccessKeyId": key.access_key_id, "AccessKeySecret": key.secret, "SecurityToken": key.security_token,
            "Expiration": iso(key.expires_at or 0)}


def _bad(code: str, message: str) -> ApiError:
    return ApiError(code, message, 400)


def policy_actions(policy_text: str) -> list[str]:
    """The action patterns a session policy allows; raises ``InvalidParameter.PolicyGrammar``."""
    if len(policy_text) > 2048:
        raise _bad("InvalidParameter.PolicyLength", "The parameter Policy has exceeded the max length (2048).")
    try:
        policy = json.loads(policy_text)
    except ValueError:
        policy = None
    statements = policy.get("Statement") if isinstance(policy, dict) else None
    if not isinstance(statements, list) or not statements:
        raise _bad("InvalidParameter.PolicyGrammar", "The parameter Policy has not passed grammar check.")
    allowed: list[str] = []
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
            raise _bad("InvalidParameter.PolicyGrammar", "The parameter Policy has not passed grammar check.")
        actions = statement.get("Action", [])
        if isinstance(actions, str):
            actions = [actions]
        if not isinstance(actions, list) or not all(isinstance(a, str) and a for a in actions):
            raise _bad("InvalidParameter.PolicyGrammar", "The parameter Policy has not passed grammar check.")
        if statement["Effect"] == "Allow":
            allowed.extend(actions)
    return allowed


@action("sts", "AssumeRole")
def assume_role(call: Call, p: Params) -> dict:
    role_arn = p.str("RoleArn")
    if not role_arn:
        raise _bad("MissingRoleArn", "RoleArn is mandatory for this action.")
    m = ROLE_ARN.match(role_arn)
    if not m:
        raise _bad("InvalidParameter.RoleArn", "The parameter RoleArn is wrongly formed.")
    account_id, role_name = m.group(1), m.group(2)
    session = p.str("RoleSessionName")
    if not session:
        raise _bad("MissingRoleSessionName", "RoleSessionName is mandatory for this action.")
    if not SESSION_NAME.match(session):
        raise _bad("InvalidParameter.RoleSessionName", "The parameter RoleSessionName is wrongly formed.")
    raw_duration = p.str("DurationSeconds")
    try:
        duration = int(raw_duration) if raw_duration is not None else DEFAULT_DURATION
    except ValueError:
        duration = -1
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise _bad("InvalidParameter.DurationSeconds", "The Min/Max value of DurationSeconds is 15min/12hr.")
    policy = p.str("Policy")
    allow = policy_actions(policy) if policy else None

    key = mint_key(call.state, role_arn, session, duration, allow)
    role_id = str(300000000000000000 + int(account_id) % 10**15 + len(role_name))
    return {
        "SourceIdentity": "",
        "AssumedRoleUser": {"Arn": f"acs:ram::{account_id}:role/{role_name.lower()}/{session}",
                            "AssumedRoleId": f"{role_id}:{session}"},
        "Credentials": credentials_of(key),
    }


@action("sts", "GetCallerIdentity")
def get_caller_identity(call: Call, p: Params) -> dict:
    key = call.extra.get("key")
    role_arn = getattr(key, "role_arn", None)
    if role_arn:
        role = role_arn.rsplit("/", 1)[-1]
        session = key.principal.split(":", 1)[-1]
        return {"IdentityType": "AssumedRoleUser", "AccountId": ACCOUNT_ID, "UserId": f"{role}:{session}",
                "PrincipalId": f"{role}:{session}", "RoleId": role,
                "Arn": f"acs:ram::{ACCOUNT_ID}:assumed-role/{role}/{session}"}
    return {"IdentityType": "Account", "AccountId": ACCOUNT_ID, "UserId": ACCOUNT_ID, "PrincipalId": ACCOUNT_ID,
            "Arn": f"acs:ram::{ACCOUNT_ID}:root"}


@on_event("sts.key.forget")
def _forget_key(state: State, event) -> None:
    """Events of states saved before keys lived by the credential clock: forget only what is long expired."""
    forget_expired(state)


@admin_route("GET", "sts/clock")
def _get_clock(emulator, body: dict, query: dict) -> dict:
    now = credential_now(emulator.state)
    return {"offset": emulator.state.table(CLOCK_TABLE).get("offset", 0.0), "now": now, "iso": iso(now)}


@admin_route("POST", "sts/clock")
def _move_clock(emulator, body: dict, query: dict) -> dict:
    """``{"advance": seconds}``: age every temporary key (and move the ``Expiration`` of new ones) by that much."""
    unknown = set(body) - {"advance"}
    if unknown:
        raise ValueError(f"unknown sts/clock fields: {', '.join(sorted(unknown))}")
    advance = body.get("advance", 0)
    if isinstance(advance, bool) or not isinstance(advance, int | float) or not math.isfinite(advance) \
            or not 0 <= advance <= MAX_CLOCK_ADVANCE:
        raise ValueError(f"advance must be a number of seconds from 0 to {MAX_CLOCK_ADVANCE}")
    table = emulator.state.table(CLOCK_TABLE)
    table["offset"] = float(table.get("offset", 0.0)) + float(advance)
    return _get_clock(emulator, {}, query)
