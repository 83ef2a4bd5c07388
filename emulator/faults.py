"""Fault injection: throttling, server errors, dropped connections, QPS limits.

The configuration is plain data set through the admin API (``PUT /_emulator/faults``)::

    {
      "seed": 7,
      "rules": [
        {"action": "ecs:CreateImage", "kind": "throttle", "count": 2, "retry_after_ms": 500},
        {"action": "ecs:Describe*", "kind": "error", "status": 503, "rate": 0.1},
        {"action": "*", "kind": "drop", "rate": 0.01}
      ],
      "qps": {"ecs:DescribeImages": 20, "ecs:*": 100},
      "image_create_fail": {"rate": 0.0, "instance_ids": ["i-..."]},
      "copy_fail": {"rate": 0.0, "regions": ["cn-beijing"]},
      "slow_regions": {"cn-beijing": 3.0}
    }

A rule with ``count`` fires on that many matching calls and is then spent; a rule with
``rate`` fires with that probability, drawn from a generator seeded by ``seed`` so a run is
repeatable. ``qps`` limits are token buckets per action pattern, in real seconds. ``x-acs-retry-after``
is sent in milliseconds, the unit tea-openapi's retry policy sleeps in.
Product modules read the ECS-specific knobs with :func:`config`.
"""

from __future__ import annotations

import fnmatch
import random
import time
from dataclasses import dataclass, field

from .errors import ApiError

DROP = "drop"

_CODES = {
    500: ("InternalError", "The request processing has failed due to some unknown error."),
    503: ("ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
}


@dataclass
class _Bucket:
    rate: float
    tokens: float
    updated: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
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
            pattern: _Bucket(float(qps), float(qps)) for pattern, qps in self.cfg.get("qps", {}).items()
        }

    def get(self, name: str, default=None):
        return self.cfg.get(name, default)

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def before_call(self, action: str) -> str | None:
        """Raise the fault's error, return ``DROP`` to cut the connection, or None."""
        for pattern, bucket in self.buckets.items():
            if fnmatch.fnmatchcase(action, pattern) and not bucket.take():
                raise throttled(1000)
        for rule in self.cfg["rules"]:
            if not fnmatch.fnmatchcase(action, rule.get("action", "*")):
                continue
            count = rule.get("count")
            if count is not None:
                if count <= 0:
                    continue
                rule["count"] = count - 1
            elif not self.roll(float(rule.get("rate", 0))):
                continue
            kind = rule.get("kind", "error")
            if kind == "throttle":
                raise throttled(int(rule.get("retry_after_ms", 1000)))
            if kind == "drop":
                return DROP
            status = int(rule.get("status", 503))
            code, message = _CODES.get(status, ("InternalError", "Injected server error."))
            raise ApiError(rule.get("code", code), rule.get("message", message), status)
        return None


def throttled(retry_after_ms: int) -> ApiError:
    """``Throttling.User``; tea-openapi reads ``x-acs-retry-after`` as milliseconds."""
    return ApiError("Throttling.User", "Request was denied due to user flow control.", 400,
                    headers={"x-acs-retry-after": str(retry_after_ms)})
