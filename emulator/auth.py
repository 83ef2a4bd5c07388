"""Access keys, RAM-style allow lists and request signature checks.

Three signature schemes are verified, exactly as the official SDKs compute them:

* ``ACS3-HMAC-SHA256`` (tea-openapi, today's ECS/RDS/VPC SDKs),
* the classic RPC ``HMAC-SHA1`` signature (``aliyun-python-sdk-core``, the aliyun CLI, STS
  AssumeRole from ``alibabacloud-credentials``),
* ``OSS4-HMAC-SHA256`` (``alibabacloud-oss-v2``), verified in :mod:`emulator.oss.auth`.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

from .errors import ApiError
from .ram import Policy, Resources, parse_policy

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


def _signature_mismatch() -> ApiError:
    return ApiError("SignatureDoesNotMatch", "Specified signature is not matched with our calculation.", 400)


def parse_acs3_authorization(header: str) -> dict[str, str]:
    """``ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=a;b,Signature=hex`` -> dict."""
    _, _, rest = header.partition(" ")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        k, _, v = item.strip().partition("=")
        parts[k] = v
    return parts


def verify_acs3(method: str, path: str, query: dict[str, str], headers, body: bytes, secret: str,
                authorization: str) -> None:
    """Check an ``ACS3-HMAC-SHA256`` signature as tea-openapi computes it."""
    parts = parse_acs3_authorization(authorization)
    signed = parts.get("SignedHeaders", "")
    signature = parts.get("Signature", "")
    if not signed or not signature:
        raise ApiError("IncompleteSignature", "The request signature does not conform to Aliyun standards.", 400)
    canon_query = "&".join(f"{k}={quote(query[k], safe='~')}" for k in sorted(query))
    canon_headers = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed.split(";"))
    payload = headers.get("x-acs-content-sha256") or hashlib.sha256(body).hexdigest()
    if payload != hashlib.sha256(body).hexdigest():
        raise _signature_mismatch()
    canonical = f"{method}\n{path or '/'}\n{canon_query}\n{canon_headers}\n{signed}\n{payload}"
    string_to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise _signature_mismatch()


def _percent_encode(value: str) -> str:
    return quote(value, safe="~")


def verify_rpc_v1(method: str, params: dict[str, str], secret: str) -> None:
    """Check the classic RPC signature (``SignatureMethod=HMAC-SHA1``).

    aliyun-python-sdk-core percent-encodes spaces as ``%20``; alibabacloud-credentials' STS
    client uses ``quote_plus`` (space as ``+``). Either canonical form is accepted.
    """
    signature = params.get("Signature")
    if not signature:
        raise ApiError("IncompleteSignature", "The request signature does not conform to Aliyun standards.", 400)
    items = sorted((k, v) for k, v in params.items() if k != "Signature")
    key = f"{secret}&".encode()
    for encode in (_percent_encode, quote_plus):
        canonical = "&".join(f"{encode(k)}={encode(v)}" for k, v in items)
        string_to_sign = f"{method}&{encode('/')}&{encode(canonical)}"
        expected = base64.b64encode(hmac.new(key, string_to_sign.encode(), hashlib.sha1).digest()).decode()
        if hmac.compare_digest(expected, signature):
            return
    raise _signature_mismatch()
