"""Access keys: who may call, with what secret, allowed what; the key store the server checks callers against.

* :class:`AccessKey`: one key pair, with an optional RAM-style allow list and RAM policy (:mod:`emulator.ram`),
  and, for STS temporary keys (:mod:`emulator.sts`), a security token and an expiry;
* :class:`KeyStore`: the static keys (command line, ``--keys-file``, ``POST /_emulator/keys``) and the STS keys;
* the admin endpoints ``POST /_emulator/keys`` and ``GET /_emulator/keys``.

Signatures are checked in :mod:`emulator.auth` (RPC) and :mod:`emulator.oss.auth` (OSS); policies are evaluated
in :mod:`emulator.ram`, which imports nothing of the emulator.
"""

from __future__ import annotations

import base64
import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ApiError
from .ram import InvalidPolicy, Policy, Resources, parse_policy
from .registry import admin_route

DEFAULT_ACCESS_KEY_ID = "LOCAL_EMULATOR_AK"
DEFAULT_ACCESS_KEY_SECRET = "local-emulator-secret-not-for-production"
ACCOUNT_ID = "1234567890123456"


@dataclass
class AccessKey:
    """One access key pair and what it may do.

    ``allow`` is a list of RAM-style action patterns (``ecs:CreateImage``, ``oss:*``,
    ``ecs:Describe*``); ``policy`` a RAM policy document (:mod:`emulator.ram`); with neither, everything
    is allowed. With both, an action must pass both.
    """

    access_key_id: str
    secret: str
    allow: list[str] | None = None
    security_token: str | None = None
    expires_at: float | None = None
    principal: str = "root"
    role_arn: str | None = None
    policy: Policy | None = None

    def decide(self, action: str, resources: Resources | None = None) -> str:
        """``Allow``, ``ExplicitDeny`` or ``ImplicitDeny`` (see :meth:`emulator.ram.Policy.decide`)."""
        if self.allow is not None and not any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in self.allow):
            return "ImplicitDeny"
        return self.policy.decide(action, resources) if self.policy is not None else "Allow"

    def permits(self, action: str) -> bool:
        return self.decide(action) == "Allow"


@dataclass
class KeyStore:
    """Static keys from the command line or a keys file, plus STS temporary keys."""

    keys: dict[str, AccessKey] = field(default_factory=dict)
    temporary: dict[str, AccessKey] = field(default_factory=dict)  # STS keys, kept in the state

    @classmethod
    def default(cls, access_key_id: str = DEFAULT_ACCESS_KEY_ID,
                access_key_secret: str = DEFAULT_ACCESS_KEY_SECRET) -> KeyStore:
        store = cls()
        store.add(AccessKey(access_key_id, access_key_secret))
        return store

    def add(self, key: AccessKey) -> None:
        self.keys[key.access_key_id] = key

    def load_file(self, path: str | Path) -> None:
        """Keys file: JSON list of ``{"access_key_id", "access_key_secret", "allow"?, "policy"?, "principal"?}``;
        ``policy`` is a RAM policy document or the path of one (relative to the keys file)."""
        path = Path(path)
        for entry in json.loads(path.read_text()):
            policy = entry.get("policy")
            if isinstance(policy, str):
                policy = json.loads((path.parent / policy).read_text())
            self.add(AccessKey(entry["access_key_id"], entry["access_key_secret"], entry.get("allow"),
                               principal=entry.get("principal", "user"),
                               policy=parse_policy(policy) if policy is not None else None))

    def lookup(self, access_key_id: str | None, now: float, security_token: str | None = None) -> AccessKey:
        """The key, checked against its security token; ``now`` is the credential clock
        (:func:`emulator.sts.credential_now`: real time, never the simulated one) that STS keys expire by."""
        key = self.keys.get(access_key_id or "") or self.temporary.get(access_key_id or "")
        if key is None:
            raise ApiError("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        if key.security_token is not None:
            if not security_token:
                raise ApiError("MissingSecurityToken", "SecurityToken is mandatory for this action.", 400)
            if security_token != key.security_token:
                raise ApiError("InvalidSecurityToken.MismatchWithAccessKey",
                               "The specified SecurityToken is mismatch with the AccessKey.", 400)
            if key.expires_at is not None and now >= key.expires_at:
                raise ApiError("InvalidSecurityToken.Expired", "Specified SecurityToken is expired.", 400)
        return key

    def check_permission(self, key: AccessKey, action: str, resources: Resources | None = None) -> None:
        """Raise ``Forbidden.RAM`` (403, ``AccessDeniedDetail`` naming the action) unless the key may call it;
        ``resources()`` lists the resources the call names (:func:`emulator.arns.call_resources`), for
        ``Resource`` patterns and tag conditions."""
        decision = key.decide(action, resources)
        if decision == "Allow":
            return
        detail = {
            "PolicyType": "AccountLevelIdentityBasedPolicy",
            "AuthPrincipalOwnerId": ACCOUNT_ID,
            "AuthPrincipalType": "SubUser" if key.role_arn is None else "AssumedRoleUser",
            "AuthPrincipalDisplayName": key.principal,
            "NoPermissionType": decision,
            "AuthAction": action,
            "EncodedDiagnosticMessage": base64.b64encode(action.encode()).decode(),
        }
        raise ApiError("Forbidden.RAM",
                       "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
                       403, extra={"AccessDeniedDetail": detail})


# -- admin: keys with policies, installed at run time (tests use one emulator for many keys) ---------------
@admin_route("POST", "keys")
def put_keys(emulator: Any, body: dict, query: dict) -> dict:
    """``{"keys": [{"access_key_id", "access_key_secret", "policy"?, "allow"?, "principal"?}]}``: add or replace
    static keys; a key's policy is validated first (``InvalidPolicy``, 400) and nothing is changed on error."""
    entries = body.get("keys")
    if not isinstance(entries, list) or not entries:
        raise ValueError("keys must be a non-empty list")
    built = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not e.get("access_key_id") or not e.get("access_key_secret"):
            raise ValueError(f"keys[{i}] needs access_key_id and access_key_secret")
        try:
            policy = parse_policy(e["policy"]) if e.get("policy") is not None else None
        except InvalidPolicy as err:
            raise ValueError(f"keys[{i}].policy: {err}") from None
        built.append(AccessKey(str(e["access_key_id"]), str(e["access_key_secret"]), e.get("allow"),
                               principal=str(e.get("principal") or "user"), policy=policy))
    for key in built:
        emulator.keys.add(key)
    return {"keys": [k.access_key_id for k in built]}


@admin_route("GET", "keys")
def list_keys(emulator: Any, body: dict, query: dict) -> dict:
    """Static key ids and whether each has an allow list or a policy (never a secret)."""
    return {"keys": [{"access_key_id": k.access_key_id, "principal": k.principal, "allow": k.allow is not None,
                      "policy": k.policy is not None} for k in emulator.keys.keys.values()]}
