"""OSS bucket lifecycle (Put/Get/DeleteBucketLifecycle): rules validated as OSS does and kept on the bucket
record (key ``lifecycle``), never run: no object changes storage class or expires."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import date

from aiohttp import web

from ..errors import ApiError
from . import common
from .codec import doc, el, parse
from .context import Ctx
from .errors import MALFORMED, err, invalid_digest, no_such_lifecycle
from .routing import operation

# Rules are kept as plain data keyed by the XML element names; a schema maps an element to its
# children (dict), a repeatable child ([schema]) or a leaf type. Order here is the answer's order.
_TAG = {"Key": "str", "Value": "str"}
_LIFECYCLE_RULE = {
    "ID": "str", "Prefix": "str", "Tag": [_TAG],
    "Filter": {"ObjectSizeGreaterThan": "size", "ObjectSizeLessThan": "size",
               "Not": [{"Prefix": "str", "Tag": _TAG}]},
    "Status": "str",
    "Expiration": {"Days": "days", "CreatedBeforeDate": "date", "ExpiredObjectDeleteMarker": "bool"},
    "Transition": [{"Days": "days", "CreatedBeforeDate": "date", "StorageClass": "class", "IsAccessTime": "bool",
                    "ReturnToStdWhenVisit": "bool", "AllowSmallFile": "bool"}],
    "AbortMultipartUpload": {"Days": "days", "CreatedBeforeDate": "date"},
    "NoncurrentVersionExpiration": {"NoncurrentDays": "days"},
    "NoncurrentVersionTransition": [{"NoncurrentDays": "days", "StorageClass": "class", "IsAccessTime": "bool",
                                     "ReturnToStdWhenVisit": "bool", "AllowSmallFile": "bool"}],
}
_LIFECYCLE_ACTIONS = ("Expiration", "Transition", "AbortMultipartUpload", "NoncurrentVersionExpiration",
                      "NoncurrentVersionTransition")
TRANSITION_CLASSES = ("IA", "Archive", "ColdArchive", "DeepColdArchive")
MAX_LIFECYCLE_RULES = 1000
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T00:00:00(?:\.0{1,3})?Z$")


def _lifecycle_malformed(message: str = MALFORMED) -> ApiError:
    return err("MalformedXML", message, 400, "0014-00000011")


def _lifecycle_invalid(message: str, name: str, value, ec: str = "0000-00000000") -> ApiError:
    """InvalidArgument (400) with the error-center code OSS documents for the case, where known."""
    return err("InvalidArgument", message, 400, ec, ArgumentName=name, ArgumentValue=str(value))


def _lifecycle_leaf(kind: str, text: str, path: str):
    if kind == "str":
        return text
    if kind == "bool":
        if text not in ("true", "false"):
            raise _lifecycle_invalid(f"{path} must be true or false.", path, text)
        return text == "true"
    if kind in ("days", "size"):
        number = common.ascii_decimal(text)
        value = -1 if number is None else number
        if value < (1 if kind == "days" else 0):
            what = "a positive integer" if kind == "days" else "a non-negative integer"
            raise _lifecycle_invalid(f"{path} must be {what}.", path, text,
                                     "0014-00000086" if kind == "days" else "0014-00000039")
        return value
    if kind == "class":
        if text not in TRANSITION_CLASSES:
            raise _lifecycle_invalid(f"{path} must be one of {', '.join(TRANSITION_CLASSES)}.", path, text)
        return text
    m = _DATE_RE.match(text)  # "date": midnight UTC, ISO 8601
    try:
        day = date(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
    except ValueError:
        day = None
    if day is None:
        raise _lifecycle_invalid(f"{path} must be a date at midnight UTC such as 2024-01-01T00:00:00.000Z.",
                                 path, text)
    return f"{day.isoformat()}T00:00:00.000Z"


def _lifecycle_node(node, schema: dict, path: str) -> dict:
    out: dict = {}
    for child in node:
        spec = schema.get(child.tag)
        if spec is None:
            raise err("MalformedXML", f"The node {path}/{child.tag} is not supported.", 400, "0014-00000017")
        where = f"{path}/{child.tag}"
        if isinstance(spec, list):
            out.setdefault(child.tag, []).append(_lifecycle_node(child, spec[0], where))
            continue
        if child.tag in out:
            raise err("MalformedXML", f"The node {where} appears more than once.", 400, "0014-00000089")
        if isinstance(spec, dict):
            out[child.tag] = _lifecycle_node(child, spec, where)
        elif len(child):
            raise _lifecycle_malformed(f"The node {where} must hold a value, not elements.")
        else:
            text = child.text or ""
            out[child.tag] = _lifecycle_leaf(spec, text if spec == "str" else text.strip(), where)
    return out


def _check_when(action: dict, where: str, allow_marker: bool = False) -> None:
    """Exactly one of Days or CreatedBeforeDate (or, for Expiration, ExpiredObjectDeleteMarker=true)."""
    has_days, has_date = "Days" in action, "CreatedBeforeDate" in action
    marker = allow_marker and action.get("ExpiredObjectDeleteMarker") is True
    if has_days and has_date:
        raise _lifecycle_invalid(f"{where}: Days and CreatedBeforeDate cannot both be set.", where, "",
                                 "0014-00000061")
    if marker and (has_days or has_date):
        raise _lifecycle_invalid(f"{where}: ExpiredObjectDeleteMarker cannot be set with Days or CreatedBeforeDate.",
                                 where, "")
    if not (has_days or has_date or marker):
        raise _lifecycle_invalid(f"{where} needs Days or CreatedBeforeDate.", where, "", "0014-00000060")


def _parse_lifecycle(body: bytes) -> list[dict]:
    try:
        tree = parse(body, "LifecycleConfiguration")
    except ApiError as exc:  # not XML, or another root
        ec = "0014-00000012" if exc.message.startswith("The root element") else "0014-00000011"
        raise err("MalformedXML", exc.message, 400, ec) from None
    rules = []
    for node in tree:
        if node.tag != "Rule":
            raise err("MalformedXML", f"The node {node.tag} is not supported: LifecycleConfiguration holds only "
                      "Rule nodes.", 400, "0014-00000015")
        rules.append(_lifecycle_node(node, _LIFECYCLE_RULE, "Rule"))
    if not rules:
        raise _lifecycle_malformed("The lifecycle configuration must hold at least one Rule.")
    if len(rules) > MAX_LIFECYCLE_RULES:
        raise _lifecycle_invalid(f"A lifecycle configuration holds at most {MAX_LIFECYCLE_RULES} rules.", "Rule",
                                 len(rules), "0014-00000014")
    seen: set[str] = set()
    for rule in rules:
        if rule.get("Status") not in ("Enabled", "Disabled"):
            raise _lifecycle_invalid("Status must be Enabled or Disabled.", "Status", rule.get("Status", ""))
        rule_id = rule.get("ID") or uuid.uuid4().hex  # OSS names a rule that has no ID
        if len(rule_id) > 255:
            raise _lifecycle_invalid("The rule ID must be at most 255 characters long.", "ID", rule_id,
                                     "0014-00000019")
        if rule_id in seen:
            raise _lifecycle_invalid(f"The rule ID {rule_id} is used by more than one rule.", "ID", rule_id,
                                     "0014-00000020")
        seen.add(rule_id)
        rule["ID"] = rule_id
        if not any(a in rule for a in _LIFECYCLE_ACTIONS):
            raise _lifecycle_invalid(f"Rule {rule_id} needs an action: Expiration, Transition, AbortMultipartUpload "
                                     "or a NoncurrentVersion action.", "Rule", rule_id, "0014-00000026")
        if "Expiration" in rule:
            _check_when(rule["Expiration"], "Rule/Expiration", allow_marker=True)
        for transition in rule.get("Transition", []):
            _check_when(transition, "Rule/Transition")
            if "StorageClass" not in transition:
                raise _lifecycle_invalid("Rule/Transition needs a StorageClass.", "StorageClass", "")
        if "AbortMultipartUpload" in rule:
            _check_when(rule["AbortMultipartUpload"], "Rule/AbortMultipartUpload")
        if "NoncurrentDays" not in rule.get("NoncurrentVersionExpiration", {"NoncurrentDays": 1}):
            raise _lifecycle_invalid("Rule/NoncurrentVersionExpiration needs NoncurrentDays.", "NoncurrentDays", "")
        for transition in rule.get("NoncurrentVersionTransition", []):
            if "NoncurrentDays" not in transition or "StorageClass" not in transition:
                raise _lifecycle_invalid("Rule/NoncurrentVersionTransition needs NoncurrentDays and StorageClass.",
                                         "NoncurrentVersionTransition", "")
    return rules


def _lifecycle_xml(node: dict, schema: dict) -> str:
    """The stored rule (or part of it) back as XML, children in schema order."""
    out = []
    for tag, spec in schema.items():
        if tag not in node:
            continue
        if isinstance(spec, list):
            out += [f"<{tag}>{_lifecycle_xml(v, spec[0])}</{tag}>" for v in node[tag]]
        elif isinstance(spec, dict):
            out.append(f"<{tag}>{_lifecycle_xml(node[tag], spec)}</{tag}>")
        else:
            out.append(el(tag, node[tag]))
    return "".join(out)


@operation("PutBucketLifecycle")
async def put_bucket_lifecycle(ctx: Ctx) -> web.StreamResponse:
    """Replace the bucket's lifecycle rules (validated, stored, never run)."""
    b = common.use_bucket(ctx)
    body = await common.read_xml_body(ctx)
    if not common.content_md5_ok(ctx, hashlib.md5(body).digest()):
        raise invalid_digest()
    b["lifecycle"] = _parse_lifecycle(body)
    ctx.state.dirty = True
    return ctx.empty()


@operation("GetBucketLifecycle")
async def get_bucket_lifecycle(ctx: Ctx) -> web.StreamResponse:
    b = common.use_bucket(ctx)
    rules = b.get("lifecycle")
    if not rules:
        raise no_such_lifecycle(b["name"])
    return ctx.xml(doc("LifecycleConfiguration",
                       *("<Rule>" + _lifecycle_xml(rule, _LIFECYCLE_RULE) + "</Rule>" for rule in rules)))


@operation("DeleteBucketLifecycle")
async def delete_bucket_lifecycle(ctx: Ctx) -> web.StreamResponse:
    """204 whether or not the bucket had rules, as OSS answers."""
    b = common.use_bucket(ctx)
    if b.pop("lifecycle", None) is not None:
        ctx.state.dirty = True
    return ctx.empty(204)
