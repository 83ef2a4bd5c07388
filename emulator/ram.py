"""RAM policy documents, evaluated as RAM does for the parts the emulator can see.

A key may carry a policy document (``Version`` "1", ``Statement`` list)::

    {"Version": "1", "Statement": [
      {"Effect": "Allow", "Action": ["ecs:Describe*", "ecs:CreateImage"], "Resource": "*"},
      {"Effect": "Allow", "Action": "ecs:DeleteImage", "Resource": "acs:ecs:*:*:image/*",
       "Condition": {"StringEquals": {"acs:ResourceTag/ops:managed-by": "airflow-aliyun-ops"}}},
      {"Effect": "Deny", "Action": "ecs:DeleteInstance*", "Resource": "*"}]}

Enforced:

* ``Action`` / ``NotAction`` patterns (``*`` and ``?`` wildcards, case-insensitive);
* ``Resource`` ARNs (``*`` and ``?`` wildcards, case-sensitive, a ``*`` spans ``:`` and ``/``), matched against
  the ARNs of the resources the call names (:mod:`emulator.arns`: ``acs:ecs:<region>:<account>:instance/<id>``,
  ``...:image/*`` for an image the call creates or a list call, ``acs:oss:*:<account>:<bucket>/<key>``...). A
  call naming several resources (batch APIs, CreateImage from an instance, CopyImage's source image and
  destination region) is allowed only if every one of them is; a statement applies to the resources its
  ``Resource`` matches. An action the emulator names no resource for is checked as
  ``acs:<service>:<region>:<account>:*``, and a check given no resources at all as ``*``: only ``"*"`` (or a
  pattern matching that) authorises them, as RAM's "all resources" actions need;
* an explicit ``Deny`` over any ``Allow``;
* tag conditions (``StringEquals``/``StringLike``/``StringNotEquals`` on ``acs:ResourceTag/<key>``), read from
  the existing ECS and RDS resources the call names: a conditioned statement applies to a resource only when
  the condition holds on its tags; the key is absent (the condition fails) for a resource the emulator cannot
  read tags of (one the call creates, an OSS object). A named resource that does not exist is left to the
  handler (NotFound): conditions hold on it, so a retry after a lost answer stays idempotent.

A document that breaks these rules is refused when loaded (:class:`InvalidPolicy`). ``decide`` is lazy: ARNs
are built only when a statement naming the action is narrower than ``"*"``, and tags read only for a
conditioned statement.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ALLOW, DENY = "Allow", "Deny"
EXPLICIT_DENY, IMPLICIT_DENY = "ExplicitDeny", "ImplicitDeny"
TAG_KEY_PREFIX = "acs:ResourceTag/"
OPERATORS = ("StringEquals", "StringLike", "StringNotEquals")
ANY_RESOURCE = "*"  # what a check given no resources is matched as: only a "*" pattern authorises it


class InvalidPolicy(ValueError):
    """The policy document is not one RAM would accept."""


@functools.lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


def wildcard_match(pattern: str, text: str) -> bool:
    """RAM's wildcard match: ``*`` is any run of characters (``:`` and ``/`` included), ``?`` one character,
    everything else literal (no ``[...]`` classes), case-sensitive; the whole text must match."""
    return _regex(pattern).fullmatch(text) is not None


class _Gone:
    """Tags of a named resource that does not exist (the handler answers NotFound)."""


GONE = _Gone()
Tags = Mapping[str, str] | _Gone | None  # None: the emulator cannot read the resource's tags


@dataclass
class Named:
    """One resource a call names: its ARN, and how to read its tags (only when a tag condition asks)."""

    arn: str
    read_tags: Callable[[], Tags] | None = None
    _tags: list = field(default_factory=list, repr=False)

    def tags(self) -> Tags:
        if not self._tags:
            self._tags.append(self.read_tags() if self.read_tags is not None else None)
        return self._tags[0]


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
            return not any(wildcard_match(p.lower(), low) for p in self.not_actions)
        return any(wildcard_match(p.lower(), low) for p in self.actions)

    @property
    def everywhere(self) -> bool:
        """Applies to any resource, whatever its tags: deciding needs no resource at all."""
        return "*" in self.resources and not self.tag_conditions

    def covers(self, arn: str) -> bool:
        return any(wildcard_match(p, arn) for p in self.resources)

    def conditions_hold(self, tags: Tags) -> bool:
        if not self.tag_conditions or isinstance(tags, _Gone):
            return True
        if tags is None:  # the emulator cannot read this resource's tags: the condition key is absent
            return False
        return all(_holds(op, key, values, tags) for op, key, values in self.tag_conditions)


def _holds(op: str, key: str, values: tuple[str, ...], tags: Mapping[str, str]) -> bool:
    actual = tags.get(key)
    if op == "StringEquals":
        return actual in values
    if op == "StringNotEquals":
        return actual not in values
    return actual is not None and any(wildcard_match(v, actual) for v in values)


def _verdict(statements: Sequence[Statement], resource: Named) -> str:
    """The decision for one resource: Deny over Allow among the statements that apply to it."""
    allowed = False
    for s in statements:
        if not s.covers(resource.arn) or (s.tag_conditions and not s.conditions_hold(resource.tags())):
            continue
        if s.effect == DENY:
            return EXPLICIT_DENY
        allowed = True
    return ALLOW if allowed else IMPLICIT_DENY


Resources = Callable[[], Sequence[Named]]


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...] = field(default_factory=tuple)

    def decide(self, action: str, resources: Resources | None = None) -> str:
        """``Allow``, ``ExplicitDeny`` or ``ImplicitDeny``. ``resources()`` (called only when a statement naming
        the action is narrower than ``"*"`` or conditioned) lists what the call names; every one must be
        allowed. Without it the call is matched as the resource ``*``."""
        statements = [s for s in self.statements if s.names(action)]
        if all(s.everywhere for s in statements):
            if any(s.effect == DENY for s in statements):
                return EXPLICIT_DENY
            return ALLOW if statements else IMPLICIT_DENY
        named = list(resources()) if resources is not None else []
        verdicts = {_verdict(statements, r) for r in named or [Named(ANY_RESOURCE)]}
        for decision in (EXPLICIT_DENY, IMPLICIT_DENY):
            if decision in verdicts:
                return decision
        return ALLOW

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
