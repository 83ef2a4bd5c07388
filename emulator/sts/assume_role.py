"""STS AssumeRole.

``alibabacloud-credentials`` (type ``ram_role_arn``) calls it with a classic ``HMAC-SHA1`` signed GET, which the
server has already verified. Every role ARN of the right shape is accepted (the emulator keeps no RAM roles). An
optional session ``Policy`` restricts the key: the actions of its ``Allow`` statements become the key's allow list
(``ecs:Describe*``, ``ecs:*``, ``*``). ``Deny`` statements and ``Resource``/``Condition`` are not evaluated.
Without a policy the key may do everything.
"""

from __future__ import annotations

import json
import re

from ..errors import ApiError
from ..rpc import Call, Params, action
from .credentials import DEFAULT_DURATION, MAX_DURATION, MIN_DURATION, credentials_of, mint_key

ROLE_ARN = re.compile(r"^acs:ram::(\d+):role/([A-Za-z0-9.\-_]{1,64})$")
SESSION_NAME = re.compile(r"^[\w.@\-]{2,64}$")


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
