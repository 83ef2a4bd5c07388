"""STS GetCallerIdentity: the account, or the assumed role and session of an STS key."""

from __future__ import annotations

from ..keys import ACCOUNT_ID
from ..rpc import Call, Params, action


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
