"""RAM policy documents, evaluated as RAM does for the parts the emulator can see.

A key may carry a policy document (``Version`` "1", ``Statement`` list)::

    {"Version": "1", "Statement": [
      {"Effect": "Allow", "Action": ["ecs:Describe*", "ecs:CreateImage"], "Resource": "*"},
      {"Effect": "Allow", "Action": "ecs:DeleteImage", "Resource": "acs:ecs:*:*:image/*",
       "Condition": {"StringEquals": {"acs:ResourceTag/ops:managed-by": "airflow-aliyun-ops"}}},
      {"Effect": "Deny", "Action": "ecs:DeleteInstance*", "Resource": "*"}]}

Enforced: ``Action`` / ``NotAction`` patterns (``*`` and ``?`` wildcards, case-insensitive), an explicit
``Deny`` over any ``Allow``, and tag conditions (``StringEquals``/``StringLike`` on
``acs:ResourceTag/<key>``) for the actions whose resources the emulator can name (:data:`TAGGED_RESOURCES`):
a conditioned statement applies only when every resource of the call carries the tag. ``Resource`` is
parsed and kept (it documents the narrowing) but not matched: the emulator does not build ARNs.
A document that breaks these rules is refused when loaded (:class:`InvalidPolicy`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .registry import admin_route

ALLOW, DENY = "Allow", "Deny"
TAG_KEY_PREFIX = "acs:ResourceTag/"
OPERATORS = ("StringEquals", "StringLike", "StringNotEquals")

# action -> (state table, request parameters naming its resources)
TAGGED_RESOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ecs:DeleteImage": ("ecs.images", ("ImageId",)),
    "ecs:ModifyImageSharePermission": ("ecs.images", ("ImageId",)),
    "ecs:DeleteSnapshot": ("ecs.snapshots", ("SnapshotId",)),
    "ecs:DeleteInstance": ("ecs.instances", ("InstanceId",)),
    "ecs:DeleteInstances": ("ecs.instances", ("InstanceId",)),
    "ecs:ReplaceSystemDisk": ("ecs.instances", ("InstanceId",)),
}


class InvalidPolicy(ValueError):
    """The policy document is not one RAM would accept."""


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise InvalidPolicy(f"{where} must be a non-empty string or list of strings, got {value!r}")
    return tuple(items)


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ("*",)
    tag_conditions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (operator, tag key, values)

    def names(self, action: str) -> bool:
        low = action.lower()
        if self.not_actions:
            return not any(fnmatch.fnmatchcase(low, p.lower()) for p in self.not_actions)
        return any(fnmatch.fnmatchcase(low, p.lower()) for p in self.actions)

    def conditions_hold(self, resources: list[Mapping[str, str]] | None) -> bool:
        if not self.tag_conditions:
            return True
        if resources is None:  # the call names no resource the emulator can see: the condition key is absent
            return False
        return all(_holds(op, key, values, tags) for op, key, values in self.tag_conditions for tags in resources)


def _holds(op: str, key: str, values: tuple[str, ...], tags: Mapping[str, str]) -> bool:
    actual = tags.get(key)
    if op == "StringEquals":
        return actual in values
    if op == "StringNotEquals":
        return actual not in values
    return actual is not None and any(fnmatch.fnmatchcase(actual, v) for v in values)


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...] = field(default_factory=tuple)

    def decide(self, action: str, resources: Callable[[], list[Mapping[str, str]] | None] | None = None) -> str:
        """``Allow``, ``ExplicitDeny`` or ``ImplicitDeny``; ``resources`` is called only if a condition needs it."""
        cache: list = []

        def tags() -> list[Mapping[str, str]] | None:
            if not cache:
                cache.append(resources() if resources else None)
            return cache[0]

        allowed = False
        for s in self.statements:
            if not s.names(action) or not s.conditions_hold(tags() if s.tag_conditions else None):
                continue
            if s.effect == DENY:
                return "ExplicitDeny"
            allowed = True
        return ALLOW if allowed else "ImplicitDeny"

    def actions(self) -> set[str]:
        """Every action pattern an Allow statement names (for tests that keep policies complete)."""
        return {a for s in self.statements if s.effect == ALLOW for a in s.actions}


def parse_policy(doc: Any) -> Policy:
    """Validate a RAM policy document (a dict) and compile it."""
    if not isinstance(doc, dict):
        raise InvalidPolicy(f"a policy document is a JSON object, got {type(doc).__name__}")
    unknown = set(doc) - {"Version", "Statement"}
    if unknown:
        raise InvalidPolicy(f"unknown policy keys {sorted(unknown)}")
    if doc.get("Version") != "1":
        raise InvalidPolicy(f'Version must be "1", got {doc.get("Version")!r}')
    raw = doc.get("Statement")
    if not isinstance(raw, list) or not raw:
        raise InvalidPolicy("Statement must be a non-empty list")
    return Policy(tuple(_statement(s, f"Statement[{i}]") for i, s in enumerate(raw)))


def _statement(raw: Any, where: str) -> Statement:
    if not isinstance(raw, dict):
        raise InvalidPolicy(f"{where} must be an object")
    unknown = set(raw) - {"Effect", "Action", "NotAction", "Resource", "Condition", "Sid"}
    if unknown:
        raise InvalidPolicy(f"{where}: unknown keys {sorted(unknown)}")
    if raw.get("Effect") not in (ALLOW, DENY):
        raise InvalidPolicy(f"{where}.Effect must be Allow or Deny, got {raw.get('Effect')!r}")
    if ("Action" in raw) == ("NotAction" in raw):
        raise InvalidPolicy(f"{where} needs exactly one of Action and NotAction")
    actions = _strings(raw["Action"], f"{where}.Action") if "Action" in raw else ()
    not_actions = _strings(raw["NotAction"], f"{where}.NotAction") if "NotAction" in raw else ()
    for a in actions + not_actions:
        if a != "*" and ":" not in a:
            raise InvalidPolicy(f"{where}: action {a!r} must be 'product:Action' (wildcards allowed) or '*'")
    resources = _strings(raw.get("Resource", "*"), f"{where}.Resource")
    for r in resources:
        if r != "*" and not r.startswith("acs:"):
            raise InvalidPolicy(f"{where}: resource {r!r} must be '*' or an acs: ARN")
    return Statement(raw["Effect"], actions, not_actions, resources, _conditions(raw.get("Condition"), where))


def _conditions(raw: Any, where: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise InvalidPolicy(f"{where}.Condition must be an object")
    out = []
    for op, pairs in raw.items():
        if op not in OPERATORS:
            raise InvalidPolicy(f"{where}.Condition: operator {op!r} is not supported here ({', '.join(OPERATORS)})")
        if not isinstance(pairs, dict) or not pairs:
            raise InvalidPolicy(f"{where}.Condition.{op} must be a non-empty object")
        for key, values in pairs.items():
            if not key.startswith(TAG_KEY_PREFIX) or len(key) == len(TAG_KEY_PREFIX):
                raise InvalidPolicy(f"{where}.Condition.{op}: only {TAG_KEY_PREFIX}<key> conditions are enforced, "
                                    f"got {key!r}")
            out.append((op, key[len(TAG_KEY_PREFIX):], _strings(values, f"{where}.Condition.{op}.{key}")))
    return tuple(out)


def resource_tags(state: Any, action: str, params: Mapping[str, str]) -> list[Mapping[str, str]] | None:
    """The tags of every existing resource the call names; None when the action or call names none."""
    spec = TAGGED_RESOURCES.get(action)
    if spec is None:
        return None
    table_name, names = spec
    ids = []
    for name in names:
        if params.get(name):
            ids.append(params[name])
        ids += [v for k, v in sorted(params.items()) if k.startswith(f"{name}.") and v]
        if params.get(f"{name}s"):  # JSON list form (DeleteInstances' InstanceId as a list)
            ids += [str(v) for v in _json_list(params[f"{name}s"])]
    if not ids:
        return None
    table = state.table(table_name)
    # a resource that does not exist is left to the handler (NotFound): a retry after a lost answer stays idempotent
    return [dict(rec.get("Tags") or {}) for rec in (table.get(i) for i in ids) if rec is not None]


def _json_list(text: str) -> list:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return []
    return value if isinstance(value, list) else []


# -- admin: keys with policies, installed at run time (tests use one emulator for many keys) ---------------
@admin_route("POST", "keys")
def put_keys(emulator: Any, body: dict, query: dict) -> dict:
    """``{"keys": [{"access_key_id", "access_key_secret", "policy"?, "allow"?, "principal"?}]}``: add or replace
    static keys; a key's policy is validated first (``InvalidPolicy``, 400) and nothing is changed on error."""
    from .auth import AccessKey

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
