"""Fault injection: throttling, server errors, dropped connections, corrupted uploads, QPS limits, failing operations.

The configuration is plain data set through the admin API (``PUT /_emulator/faults``)::

    {
      "seed": 7,
      "rules": [
        {"action": "ecs:CreateImage", "kind": "throttle", "count": 2, "retry_after_ms": 500},
        {"action": "ecs:Describe*", "kind": "error", "status": 503, "rate": 0.1},
        {"action": "*", "kind": "drop", "rate": 0.01},
        {"action": "ecs:StartInstances", "kind": "drop_after", "count": 1},
        {"action": "ecs:StartInstance", "kind": "drop_after", "count": 1, "skip": 1,
         "resource_ids": ["i-..."], "dry_run": false},
        {"action": "oss:UploadPart", "kind": "corrupt", "count": 1}
      ],
      "qps": {"ecs:DescribeImages": 20, "ecs:*": 100},
      "image_create_fail": {"rate": 0.0, "instance_ids": ["i-..."]},
      "copy_fail": {"rate": 0.0, "regions": ["cn-beijing"]},
      "rds_backup_fail": {"rate": 1.0, "instance_ids": ["rm-..."]},
      "slow_regions": {"cn-beijing": 3.0},
      "image_quota": {"cn-hangzhou": 100}
    }

Top-level keys (every one optional; any other key is rejected):

``seed`` (int)
    seeds the generator of ``rate`` draws, so a run is repeatable.
``rules`` (list)
    each rule is an object with ``action`` (required: ``product:Action`` with ``fnmatch``
    wildcards, or ``*``; it must match at least one action the emulator serves), ``kind``
    (required, below) and exactly one of ``count`` (int >= 0: fires on that many matching calls,
    then is spent) or ``rate`` (0..1: fires with that probability). The first rule that fires
    decides the call. Kinds:

    * ``throttle``: ``Throttling.User`` (400) with ``x-acs-retry-after`` in milliseconds
      (``retry_after_ms``, int >= 0, default 1000), the unit tea-openapi's retry policy sleeps in;
      OSS answers ``ServerBusy`` (503).
    * ``error``: ``status`` (int 400-599, default 503) with ``code``/``message`` (strings; default
      ``InternalError`` for 500, ``ServiceUnavailable`` for 503, else ``InternalError``).
    * ``drop``: the connection is closed without an answer and the call is **not** executed
      (call log code ``ConnectionDropped``).
    * ``drop_after``: the call **is** executed (its state changes apply, as when the real cloud
      answers but the answer is lost), then the connection is closed without an answer (call log
      code ``ConnectionDroppedAfter``). OSS GetObject is cut before its body is sent.
    * ``corrupt``: the body of an OSS upload (``oss:PutObject``, ``oss:UploadPart``,
      ``oss:AppendObject``) is damaged in transit: its first byte arrives inverted (XOR 0xFF) and
      is stored so; ETag, ``x-oss-hash-crc64ecma`` and ``Content-MD5`` of the answer are those of
      the stored bytes, so the SDK's CRC64 check fails (``InconsistentError``, which it retries);
      a request that sent ``Content-MD5`` gets ``InvalidDigest`` (400) instead. The call log
      gives a damaged upload code ``BodyCorrupted`` (status 200). An empty body stays empty (the
      rule still counts the call). The rule's ``action`` must match at least one of those three
      (``oss:*`` and ``*`` do); calls it cannot damage never consume it.

    Three optional fields, valid for every kind, narrow which calls a rule *matches* (a call that does not
    match never consumes the rule's ``skip`` or ``count``, nor a ``rate`` draw):

    * ``skip`` (int >= 0): the first that many matching calls go through unfaulted (they do not consume
      ``count``); ``{"skip": 1, "count": 1}`` faults exactly the 2nd matching call. With ``rate`` the
      draws start after the skipped calls.
    * ``resource_ids`` (non-empty list of non-empty strings): only calls naming at least one of these ids
      match. RPC calls name the values of their id parameters, read as the handlers read them: every
      parameter whose name (``Name``, ``Name.N``, ``Struct.N.Name``) ends in ``Id`` or ``Ids`` (InstanceId,
      InstanceId.N, the JSON array InstanceIds, the comma list ImageId, ResourceId.N, SecurityGroupId,
      DataDisk.N.SnapshotId...), except RegionId, DestinationRegionId, ZoneId, ResourceGroupId, OwnerId,
      ResourceOwnerId and AccessKeyId; OSS calls name their bucket and object key.
    * ``dry_run`` (bool): ``false`` matches only real calls (a ``DryRun=true`` call never matches and
      never consumes the rule), ``true`` only DryRun calls; absent: both.

    A rule key that its kind does not use (e.g. ``status`` on a throttle) is rejected. ``skip`` and
    ``count`` are consumed in place: ``GET /_emulator/faults`` shows what is left of them.
``qps`` (object)
    action pattern -> requests per real second (> 0): token buckets (burst of ``max(1, qps)``);
    a call over the limit is throttled with a 1000 ms retry-after.
``image_create_fail`` (object)
    CreateImage ends ``CreateFailed``: always for the source ``instance_ids`` (list of ids), and
    for any other with probability ``rate``.
``copy_fail`` (object)
    CopyImage ends ``CreateFailed`` with probability ``rate`` (default 1 when ``regions`` is
    given, else 0), only for destination ``regions`` (list of region ids) when given.
``rds_backup_fail`` (object)
    CreateBackup fails with probability ``rate`` (required), only for ``instance_ids`` when given.
``slow_regions`` (object)
    region id -> factor (>= 0) that multiplies image, copy and snapshot durations there.
``image_quota`` (int or object)
    custom images per region: one number for every region, or region id -> number.

A faulted call's entry in the call log (``GET /_emulator/calls``, ``recent``) carries ``fault``:
``{"rule": i, "kind": ...}`` (``"resource_ids"``: the ids of the call the rule named, when it has
``resource_ids``), or ``{"qps": pattern, "kind": "throttle"}``; ``null`` for calls left alone.

A config that breaks these rules is refused whole by :func:`validate` (``InvalidFaultConfig``,
400, naming the key or ``rules[i].field``) and the previous one stays in force.
Product modules read the ECS-specific knobs with :meth:`Faults.get`.
"""

from __future__ import annotations

import fnmatch
import json
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError
from .fault_kinds import CORRUPT, CORRUPT_ACTIONS, DROP, DROP_AFTER

_CODES = {
    500: ("InternalError", "The request processing has failed due to some unknown error."),
    503: ("ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
}

# keys every rule may carry besides its kind's own
COMMON_KEYS = ("action", "kind", "count", "rate", "skip", "resource_ids", "dry_run")
# id parameters that name no resource a rule could target
NOT_RESOURCE_IDS = frozenset({"RegionId", "DestinationRegionId", "ZoneId", "ResourceGroupId", "OwnerId",
                              "ResourceOwnerId", "AccessKeyId", "CallerParentId", "CallerUid"})

# rule kind -> the keys it reads besides the common ones
KINDS: dict[str, tuple[str, ...]] = {
    "throttle": ("retry_after_ms",),
    "error": ("status", "code", "message"),
    DROP: (),
    DROP_AFTER: (),
    CORRUPT: (),
}


@dataclass
class _Bucket:
    rate: float
    tokens: float
    updated: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Faults:
    """Decides, per call, whether a configured fault happens."""

    def __init__(self, cfg: dict | None = None) -> None:
        self.configure(cfg or {})

    def configure(self, cfg: dict) -> None:
        self.cfg = dict(cfg)
        self.cfg.setdefault("rules", [])
        self.rng = random.Random(self.cfg.get("seed", 0))
        self.buckets: dict[str, _Bucket] = {
            pattern: _Bucket(float(qps), max(1.0, float(qps))) for pattern, qps in self.cfg.get("qps", {}).items()
        }

    def get(self, name: str, default=None):
        return self.cfg.get(name, default)

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def decide(self, action: str, params: Mapping[str, str] | None = None,
               ids: Iterable[str] | None = None) -> Fired | None:
        """The fault that applies to a call, if any, consuming what it uses (a ``qps`` token, a rule's ``skip``,
        ``count`` or ``rate`` draw). ``params`` are the call's parameters (RPC: query and form merged; they give
        ``DryRun`` and, unless ``ids`` is given, the resource ids); ``ids`` the resources it names (OSS: bucket
        and key). The first rule that fires decides; a ``corrupt`` rule only ever fires on
        :data:`CORRUPT_ACTIONS`."""
        for pattern, bucket in self.buckets.items():
            if fnmatch.fnmatchcase(action, pattern) and not bucket.take():
                return Fired("throttle", None, throttled(1000), qps=pattern)
        params = params or {}
        named: list[frozenset[str]] = [] if ids is None else [frozenset(i for i in ids if i)]

        def call_ids() -> frozenset[str]:  # read from the parameters once, and only if a rule asks
            if not named:
                named.append(frozenset(param_ids(params)))
            return named[0]

        dry_run = str(params.get("DryRun", "")).lower() in ("true", "1")
        for n, rule in enumerate(self.cfg["rules"]):
            if not fnmatch.fnmatchcase(action, rule.get("action", "*")):
                continue
            kind = rule.get("kind", "error")
            if kind == CORRUPT and action not in CORRUPT_ACTIONS:  # nothing to corrupt: not even counted
                continue
            if "dry_run" in rule and bool(rule["dry_run"]) != dry_run:
                continue
            hit: list[str] = []
            if "resource_ids" in rule:
                hit = [i for i in rule["resource_ids"] if i in call_ids()]
                if not hit:
                    continue
            count = rule.get("count")
            if count is not None and count <= 0:  # spent
                continue
            if rule.get("skip", 0) > 0:
                rule["skip"] -= 1
                continue
            if count is not None:
                rule["count"] = count - 1
            elif not self.roll(float(rule.get("rate", 0))):
                continue
            if kind == "throttle":
                return Fired(kind, n, throttled(int(rule.get("retry_after_ms", 1000))), hit)
            if kind in (DROP, DROP_AFTER, CORRUPT):
                return Fired(kind, n, None, hit)
            status = int(rule.get("status", 503))
            code, message = _CODES.get(status, ("InternalError", "Injected server error."))
            return Fired(kind, n, ApiError(rule.get("code", code), rule.get("message", message), status), hit)
        return None

    def before_call(self, action: str, params: Mapping[str, str] | None = None,
                    ids: Iterable[str] | None = None) -> str | None:
        """Raise the fault's error, return ``DROP``/``DROP_AFTER`` (cut the connection) or ``CORRUPT``
        (damage the upload body; only ever for :data:`CORRUPT_ACTIONS`), or None (see :meth:`decide`)."""
        fired = self.decide(action, params, ids)
        if fired is None:
            return None
        if fired.error is not None:
            raise fired.error
        return fired.kind


@dataclass(frozen=True)
class Fired:
    """A fault that applies to a call: its kind, the index of its rule (None: a ``qps`` bucket), the error to
    answer (throttle, error) and, for a rule with ``resource_ids``, the ids of the call it named."""

    kind: str
    rule: int | None
    error: ApiError | None = None
    resource_ids: list[str] = field(default_factory=list)
    qps: str | None = None

    def log(self) -> dict:
        """What the call log records about it."""
        if self.rule is None:
            return {"qps": self.qps, "kind": self.kind}
        out: dict[str, Any] = {"rule": self.rule, "kind": self.kind}
        if self.resource_ids:
            out["resource_ids"] = list(self.resource_ids)
        return out


def param_ids(params: Mapping[str, str]) -> list[str]:
    """The resource ids an RPC call names: the values of every parameter whose name (``Name``, ``Name.N`` or
    ``Struct.N.Name``) ends in ``Id`` or ``Ids``, but :data:`NOT_RESOURCE_IDS`; a value is one id, a JSON array
    of ids or a comma list (as :meth:`emulator.rpc.Params.ids` reads them)."""
    out: list[str] = []
    for key, value in params.items():
        if not value or not isinstance(value, str):
            continue
        name = next((part for part in reversed(key.split(".")) if not part.isdigit()), "")
        if not name.endswith(("Id", "Ids")) or name in NOT_RESOURCE_IDS:
            continue
        out.extend(_split_ids(value))
    return out


def _split_ids(value: str) -> list[str]:
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            return [text]
        return [str(i) for i in items if isinstance(i, str | int) and not isinstance(i, bool)] \
            if isinstance(items, list) else [text]
    return [v.strip() for v in text.split(",") if v.strip()]


def throttled(retry_after_ms: int) -> ApiError:
    """``Throttling.User``; tea-openapi reads ``x-acs-retry-after`` as milliseconds."""
    return ApiError("Throttling.User", "Request was denied due to user flow control.", 400,
                    headers={"x-acs-retry-after": str(retry_after_ms)})


# -- validation -----------------------------------------------------------------------------
class InvalidFaultConfig(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidFaultConfig", message, 400)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(value: Any, where: str, lo: int | None = 0, hi: int | None = None) -> None:
    if not _is_int(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        span = f" between {lo} and {hi}" if hi is not None else f" >= {lo}" if lo is not None else ""
        raise InvalidFaultConfig(f"{where} must be an integer{span}, got {value!r}")


def _number(value: Any, where: str, lo: float = 0.0, hi: float | None = None, above: bool = False) -> None:
    ok = _is_number(value) and (value > lo if above else value >= lo) and (hi is None or value <= hi)
    if not ok:
        span = f"between {lo:g} and {hi:g}" if hi is not None else f"{'>' if above else '>='} {lo:g}"
        raise InvalidFaultConfig(f"{where} must be a number {span}, got {value!r}")


def _object(value: Any, where: str, keys: tuple[str, ...] | None = None) -> dict:
    if not isinstance(value, dict):
        raise InvalidFaultConfig(f"{where} must be an object, got {value!r}")
    bad = [k for k in value if not isinstance(k, str)]
    unknown = sorted(str(k) for k in value if keys is not None and k not in keys)
    if bad or unknown:
        allowed = f" (allowed: {', '.join(keys)})" if keys is not None else ""
        raise InvalidFaultConfig(f"{where} has unknown key(s) {', '.join(map(str, bad)) or ', '.join(unknown)}"
                                 f"{allowed}")
    return value


def _ids(value: Any, where: str, known: Any = None) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidFaultConfig(f"{where} must be a list of ids (strings), got {value!r}")
    unknown = [v for v in value if known is not None and v not in known]
    if unknown:
        raise InvalidFaultConfig(f"{where} names unknown region(s) {', '.join(unknown)}")


def _resource_ids(value: Any, where: str) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise InvalidFaultConfig(f"{where} must be a non-empty list of resource ids (non-empty strings), "
                                 f"got {value!r}")


def _regions() -> Any:
    from .ecs.regions import REGIONS

    return REGIONS


def _per_region(value: Any, where: str, check) -> None:
    _object(value, where, tuple(_regions()))
    for region, v in value.items():
        check(v, f"{where}.{region}")


def _known_actions() -> set[str]:
    from . import products, registry, rpc

    products.load()
    return {f"{product}:{name}" for product, name in rpc.ACTIONS} | registry.REST_OPERATIONS


def _action(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidFaultConfig(f"{where} must be a 'product:Action' pattern such as ecs:StartInstances "
                                 f"or ecs:Describe* or *, got {value!r}")
    if not any(fnmatch.fnmatchcase(name, value) for name in _known_actions()):
        raise InvalidFaultConfig(f"{where} {value!r} matches no action the emulator serves "
                                 "(write 'product:Action', e.g. ecs:StartInstances, oss:PutObject)")


def _rule(rule: Any, where: str) -> None:
    if not isinstance(rule, dict):
        raise InvalidFaultConfig(f"{where} must be an object, got {rule!r}")
    kind = rule.get("kind")
    if kind not in KINDS:
        raise InvalidFaultConfig(f"{where}.kind must be one of {', '.join(KINDS)}, got {kind!r}")
    _object(rule, f"{where} (kind {kind})", (*COMMON_KEYS, *KINDS[kind]))
    if "action" not in rule:
        raise InvalidFaultConfig(f"{where}.action is required ('*' matches every call)")
    _action(rule["action"], f"{where}.action")
    if kind == CORRUPT and not any(fnmatch.fnmatchcase(name, rule["action"]) for name in CORRUPT_ACTIONS):
        raise InvalidFaultConfig(f"{where}.action {rule['action']!r} matches no call kind corrupt can act on: "
                                 f"it damages upload bodies, only of {', '.join(CORRUPT_ACTIONS)}")
    if ("count" in rule) == ("rate" in rule):
        raise InvalidFaultConfig(f"{where} needs exactly one of count (fires that many times) "
                                 f"or rate (probability per call), got {'both' if 'count' in rule else 'neither'}")
    if "count" in rule:
        _int(rule["count"], f"{where}.count")
    else:
        _number(rule["rate"], f"{where}.rate", 0.0, 1.0)
    if "skip" in rule:
        _int(rule["skip"], f"{where}.skip")
    if "resource_ids" in rule:
        _resource_ids(rule["resource_ids"], f"{where}.resource_ids")
    if "dry_run" in rule and not isinstance(rule["dry_run"], bool):
        raise InvalidFaultConfig(f"{where}.dry_run must be true (only DryRun calls) or false (only real calls), "
                                 f"got {rule['dry_run']!r}")
    if "retry_after_ms" in rule:
        _int(rule["retry_after_ms"], f"{where}.retry_after_ms")
    if "status" in rule:
        _int(rule["status"], f"{where}.status", 400, 599)
    for key in ("code", "message"):
        if key in rule and (not isinstance(rule[key], str) or (key == "code" and not rule[key])):
            raise InvalidFaultConfig(f"{where}.{key} must be a {'non-empty ' if key == 'code' else ''}string, "
                                     f"got {rule[key]!r}")


def _rules(value: Any, where: str) -> None:
    if not isinstance(value, list):
        raise InvalidFaultConfig(f"{where} must be a list of rules, got {value!r}")
    for n, rule in enumerate(value):
        _rule(rule, f"{where}[{n}]")


def _qps(value: Any, where: str) -> None:
    _object(value, where)
    for pattern, qps in value.items():
        _action(pattern, f"{where} key")
        _number(qps, f"{where}.{pattern}", 0.0, above=True)


def _fail_section(ids_key: str, rate_required: bool = False):
    def check(value: Any, where: str) -> None:
        _object(value, where, ("rate", ids_key))
        if "rate" in value:
            _number(value["rate"], f"{where}.rate", 0.0, 1.0)
        elif rate_required and ids_key in value:
            raise InvalidFaultConfig(f"{where}.rate is required ({where}.{ids_key} alone fails nothing)")
        if ids_key in value:
            _ids(value[ids_key], f"{where}.{ids_key}", _regions() if ids_key == "regions" else None)

    return check


def _image_quota(value: Any, where: str) -> None:
    if _is_int(value):
        _int(value, where)
    elif isinstance(value, dict):
        _per_region(value, where, _int)
    else:
        raise InvalidFaultConfig(f"{where} must be an integer >= 0 or an object region -> integer, got {value!r}")


SECTIONS = {
    "seed": lambda v, where: _int(v, where, lo=None),
    "rules": _rules,
    "qps": _qps,
    "image_create_fail": _fail_section("instance_ids"),
    "copy_fail": _fail_section("regions"),
    "rds_backup_fail": _fail_section("instance_ids", rate_required=True),
    "slow_regions": lambda v, where: _per_region(v, where, _number),
    "image_quota": _image_quota,
}


def validate(cfg: Any) -> None:
    """Raise :class:`InvalidFaultConfig` unless ``cfg`` is a fault config the emulator reads as written."""
    _object(cfg, "the fault config", tuple(SECTIONS))
    for key, check in SECTIONS.items():
        if key in cfg:
            check(cfg[key], key)
